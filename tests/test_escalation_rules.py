"""Escalations and the calling rules, end to end: a step whose callee is outside their
calling hours (the policy not urgent) or on the opt-out list is skipped, its reply says
why, and the chain moves on at once; an urgent policy calls at any hour; and when an
escalation ends nothing of it is left waiting to ring later (the sandbox is never asked
to call a skipped number, no request is left SCHEDULED). Through signed Slack requests,
the sandbox (whose outcome follows the number's last digit) and the fake Slack.

Calling hours are off in tests/harness.py's defaults; these tests set `CALLING_HOURS`
to a window computed from the clock when they run: it holds now in Tokyo (UTC+9, no
daylight saving time) and not in Lagos (UTC+1, none either), with an hour's margin.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.escalation import STEP, EscalationStatus, StepOutcome, StepState
from bot.core.jobs import Job
from bot.core.models import RequestStatus
from bot.input import phones
from bot.providers.base import Workflow
from bot.slack.ids import ActionId
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness, assert_valid_blocks
from tests.support.fake_slack import FakeSlack
from tests.test_escalation_run import (
    ON_CALL,
    WAIT,
    ended,
    escalate,
    parent_now,
    policy,
    text_of,
    thread,
)

LAGOS_1 = NUMBER.format(1)  # Africa/Lagos; the sandbox: answered, pressed 1
LAGOS_3 = NUMBER.format(3)  # Africa/Lagos; answered, no key
TOKYO_1 = "+81312345671"  # Asia/Tokyo; answered, pressed 1
OTHER_LAGOS_1 = "+2348031234511"  # another Lagos number ending in 1


def window_now_in_tokyo_not_in_lagos() -> tuple[str, datetime]:
    """CALLING_HOURS from UTC+8h to UTC+10h (local clocks): Tokyo's clock (UTC+9) is
    inside it now, Lagos's (UTC+1) is seven hours before it. Also when a Lagos number's
    window opens: the start's clock time in Lagos, seven hours from now."""
    start = (datetime.now(UTC) + timedelta(hours=8)).replace(microsecond=0)
    end = start + timedelta(hours=2)
    hours = f"{start:%H:%M:%S}-{end:%H:%M:%S}"
    return hours, start - timedelta(hours=1)  # Lagos is UTC+1 all year


def slack_date(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^"


@pytest.fixture
async def make_harness(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Callable[..., Any]]:
    """A harness with these settings, with the escalation workflow made in the sandbox;
    stopped at the end."""
    started: list[Harness] = []

    async def make(**overrides: Any) -> tuple[Harness, Workflow]:
        worker = overrides.pop("worker_enabled", True)
        harness = Harness(tmp_path, fake_slack, sandbox, overrides=overrides)
        harness.worker_enabled = worker
        await harness.start()
        started.append(harness)
        created = await harness.create_workflow(ON_CALL)
        workflow = harness.store.workflows.get(created.id)
        assert workflow is not None
        return harness, workflow

    yield make
    for harness in started:
        await harness.stop()


def left_waiting(harness: Harness) -> list[dict]:
    """Requests of escalations that could still ring: scheduled, or accepted not dialled."""
    return harness.store.db.query(
        "SELECT id, status FROM requests WHERE source = 'escalation' "
        "AND status IN ('scheduled', 'accepted')"
    )


def ordered_for(harness: Harness, number: str) -> list[dict]:
    """Every call ever ordered to this number (any request)."""
    return harness.store.db.query("SELECT request_id FROM calls WHERE phone_number = ?", [number])


async def test_a_step_outside_calling_hours_is_skipped_and_the_next_called_at_once(
    make_harness, sandbox: Sandbox
) -> None:
    hours, opens = window_now_in_tokyo_not_in_lagos()
    harness, on_call = await make_harness(calling_hours=hours)
    harness.store.policies.put(policy(on_call.id, LAGOS_1, TOKYO_1))
    began = time.monotonic()

    escalation_id = await escalate(harness)

    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert record.ended_by == phones.mask(TOKYO_1)  # step 2 pressed 1
    assert time.monotonic() - began < WAIT  # step 1's wait was not waited out
    replies = await thread(harness, escalation_id, "Acknowledged by")
    [skipped] = [r for r in replies if "Step 1 of 2" in r]
    assert phones.mask(LAGOS_1) in skipped and LAGOS_1 not in skipped
    assert f"outside calling hours ({hours[:5]}" in skipped, skipped
    assert "Africa/Lagos" in skipped and slack_date(opens) in skipped, skipped
    assert "mark the policy urgent to call at any hour" in skipped and "Moving on" in skipped
    steps = harness.running.escalations.steps(escalation_id)
    assert [(s.state, s.outcome) for s in steps] == [
        (StepState.SKIPPED, StepOutcome.OUTSIDE_HOURS),
        (StepState.ENDED, StepOutcome.ACKNOWLEDGED),
    ]
    await harness.settled()
    assert sandbox.state.numbers_called() == {TOKYO_1: 1}
    assert ordered_for(harness, LAGOS_1) == []  # no request at all: nothing to ring later
    assert left_waiting(harness) == []


async def test_an_urgent_policy_calls_outside_calling_hours(make_harness, sandbox: Sandbox) -> None:
    hours, _ = window_now_in_tokyo_not_in_lagos()
    harness, on_call = await make_harness(calling_hours=hours)
    harness.store.policies.put(policy(on_call.id, LAGOS_1, TOKYO_1, urgent=True))

    escalation_id = await escalate(harness)

    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert record.ended_by == phones.mask(LAGOS_1)  # step 1, at night in Lagos
    replies = await thread(harness, escalation_id, "Acknowledged by")
    assert any("Step 1 of 2" in r and "pressed 1" in r for r in replies), replies
    assert not any("outside calling hours" in r for r in replies)
    await harness.settled()
    assert sandbox.state.numbers_called() == {LAGOS_1: 1}
    assert left_waiting(harness) == []


async def test_a_step_on_the_opt_out_list_is_skipped_even_when_urgent(
    make_harness, sandbox: Sandbox
) -> None:
    harness, on_call = await make_harness()  # calling hours off: only the list applies
    harness.store.policies.put(policy(on_call.id, LAGOS_1, OTHER_LAGOS_1, urgent=True))
    assert harness.slack is not None
    added = await harness.slack.command(f"optout add {LAGOS_1}", user_id="U2")
    assert added.status_code == 200, added.text

    escalation_id = await escalate(harness)

    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert record.ended_by == phones.mask(OTHER_LAGOS_1)
    replies = await thread(harness, escalation_id, "Acknowledged by")
    [skipped] = [r for r in replies if "Step 1 of 2" in r]
    assert f"skipped: {phones.mask(LAGOS_1)} is on the opt-out list" in skipped, skipped
    assert "Moving on" in skipped
    steps = harness.running.escalations.steps(escalation_id)
    assert steps[0].outcome == StepOutcome.OPTED_OUT and steps[0].state == StepState.SKIPPED
    await harness.settled()
    assert sandbox.state.numbers_called() == {OTHER_LAGOS_1: 1}
    assert ordered_for(harness, LAGOS_1) == []
    assert left_waiting(harness) == []


@pytest.mark.parametrize(
    ("opted_out", "why"),
    [
        ((), "all 4 steps outside calling hours"),
        ((LAGOS_1,), "2 steps on the opt-out list, 2 outside calling hours"),
    ],
)
async def test_every_step_skipped_the_final_reply_pings_the_channel_and_says_why(
    make_harness, sandbox: Sandbox, opted_out: tuple[str, ...], why: str
) -> None:
    hours, _ = window_now_in_tokyo_not_in_lagos()
    harness, on_call = await make_harness(calling_hours=hours)
    harness.store.policies.put(policy(on_call.id, LAGOS_1, LAGOS_3, repeat=1))
    assert harness.slack is not None
    for number in opted_out:
        await harness.slack.command(f"optout add {number}", user_id="U2")
    began = time.monotonic()

    escalation_id = await escalate(harness)

    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.EXHAUSTED
    assert time.monotonic() - began < WAIT  # four skips, no wait waited out
    replies = await thread(harness, escalation_id, "<!channel>")
    [loud] = [r for r in replies if "<!channel>" in r]
    assert "Nobody acknowledged" in loud and "no step could be called in 2 rounds" in loud
    assert why in loud and "mark the policy urgent" in loud, loud
    assert len([r for r in replies if "Step " in r and "skipped" in r]) == 4
    parent = await parent_now(harness, escalation_id, "Nobody acknowledged")
    assert_valid_blocks(parent["blocks"])
    assert f"no step could be called (2 rounds): {why}" in text_of(parent)
    await harness.settled()
    assert sandbox.state.numbers_called() == {}
    assert ordered_for(harness, LAGOS_1) == [] and ordered_for(harness, LAGOS_3) == []
    assert left_waiting(harness) == []


async def test_a_step_call_not_dialled_yet_is_cancelled_when_the_escalation_ends(
    make_harness, sandbox: Sandbox
) -> None:
    """Belt and braces: acknowledged in Slack while step 1's call is ordered but not
    dialled yet (no worker runs to place it): that call is cancelled with the end, the
    step's reply says it was not called, and the sandbox is never asked to call it."""
    harness, on_call = await make_harness(worker_enabled=False)
    harness.store.policies.put(policy(on_call.id, LAGOS_1, TOKYO_1))
    escalation_id = await escalate(harness)
    service = harness.running.escalations
    where = {"escalation_id": escalation_id, "round": 0, "step": 0}
    await service.run_step(Job(id=0, kind=STEP, lane="calls", payload=where, run_at=0))
    [step] = service.steps(escalation_id)
    assert step.state == StepState.CALLING and step.request_id
    assert harness.store.requests.get(step.request_id).status == RequestStatus.ACCEPTED
    ts = "1.000001"  # the parent is posted by the worker's job; the click needs none
    assert harness.slack is not None

    click = await harness.slack.action(
        ActionId.ESCALATION_ACKNOWLEDGE,
        escalation_id,
        user_id="U07ACKER",
        channel_id="C1",
        message_ts=ts,
    )

    assert click.status_code == 200
    assert service.get(escalation_id).status == EscalationStatus.ACKNOWLEDGED
    assert harness.store.requests.get(step.request_id).status == RequestStatus.CANCELLED
    assert left_waiting(harness) == []
    await harness.start_worker()
    replies = await thread(harness, escalation_id, "not called")
    assert any("Step 1 of 2" in r and "escalation had ended" in r for r in replies), replies
    await harness.settled()
    assert sandbox.state.numbers_called() == {}
    assert service.steps(escalation_id)[0].outcome == StepOutcome.NOT_CALLED


async def test_a_number_opted_out_after_its_step_was_ordered_is_kept_back_at_the_dial(
    make_harness, sandbox: Sandbox
) -> None:
    """Step 1's call is ordered (no worker yet to dial it), then its number goes on the
    opt-out list: the dial keeps it back, the reply says so, and step 2 is called."""
    harness, on_call = await make_harness(worker_enabled=False)
    harness.store.policies.put(policy(on_call.id, LAGOS_1, OTHER_LAGOS_1))
    escalation_id = await escalate(harness)
    service = harness.running.escalations
    where = {"escalation_id": escalation_id, "round": 0, "step": 0}
    await service.run_step(Job(id=0, kind=STEP, lane="calls", payload=where, run_at=0))
    assert service.steps(escalation_id)[0].state == StepState.CALLING
    assert harness.slack is not None
    await harness.slack.command(f"optout add {LAGOS_1}", user_id="U2")

    await harness.start_worker()

    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert record.ended_by == phones.mask(OTHER_LAGOS_1)
    replies = await thread(harness, escalation_id, "Acknowledged by")
    [kept] = [r for r in replies if "Step 1 of 2" in r]
    assert f"not called: {phones.mask(LAGOS_1)} is on the opt-out list" in kept, kept
    assert service.steps(escalation_id)[0].outcome == StepOutcome.OPTED_OUT
    await harness.settled()
    assert sandbox.state.numbers_called() == {OTHER_LAGOS_1: 1}
    assert left_waiting(harness) == []
