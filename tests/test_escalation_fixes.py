"""Escalation fixes, end to end: a key 1 pressed after its step's wait ran out, the
fallback's own wait, a step whose job fails for good (its watchdog), the fallback never
placed once someone acknowledged, `wait: 300` in the policies file, and an alert group
resolved in Slack. Signed Slack requests, the sandbox (a number's last digit is its
outcome: 1 pressed 1, 2 pressed 2, 0 no answer, 3 answered with no key), the fake Slack;
the helpers and fixtures of tests/test_escalation_run.py and tests/test_alerts.py."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from bot.core import escalation as core
from bot.core.escalation import EscalationService, EscalationStatus, StepOutcome, StepState
from bot.core.jobs import Job, RetryLater
from bot.input import phones
from bot.input.policies_file import file_refusals
from bot.providers.base import Workflow
from bot.providers.intron.sandbox import Fault
from bot.providers.intron_direct import sandbox as direct_sandbox
from bot.serving import start_server
from bot.slack.ids import ActionId
from tests import test_alerts, test_escalation_run
from tests.conftest import Sandbox, make_client
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.test_alerts import add_policy, alert_url, now_rfc3339, payload
from tests.test_alerts import wait_for as alert_wait_for
from tests.test_escalation_policies import ONCALL, command, shown
from tests.test_escalation_run import (
    ON_CALL,
    ended,
    escalate,
    n,
    parent_now,
    policy,
    text_of,
    thread,
)

# Their fixtures, used here too.
on_call = test_escalation_run.on_call
app = test_alerts.app
http = test_alerts.http


def worker_escalations(harness: Harness) -> EscalationService:
    """The worker's EscalationService (the worker's runtime is not the web process's)."""
    assert harness.worker is not None
    return harness.worker.kinds[core.STEP].handler.__self__  # type: ignore[attr-defined]


# ---------------------------------------------------------------- key 1 after the wait


async def test_a_key_1_after_the_wait_acknowledges_while_the_chain_still_runs(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    """Step 1's callee presses 1 two seconds after the step's 5 s wait ran out: the chain
    has moved on to step 2, and the late key 1 acknowledges the escalation; it does not
    go on to end as "Nobody acknowledged"."""
    sandbox.state.config.callback_delay = 7.0  # every call's result: 7 s after it is placed
    harness.store.policies.put(policy(on_call.id, n(1), n(0), wait=5))
    escalation_id = await escalate(harness)
    replies = await thread(harness, escalation_id, "no result came within the step's wait")
    assert any("Step 1 of 2" in r and "Moving on" in r for r in replies), replies
    record = await ended(harness, escalation_id, timeout=20)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert record.ended_by == phones.mask(n(1))  # the callee who pressed 1, late
    first, second = harness.running.escalations.steps(escalation_id)
    assert first.outcome == StepOutcome.ACKNOWLEDGED and first.key_pressed == "1"
    assert first.detail and "after the step's wait (5s) was over" in first.detail
    assert second.state == StepState.CALLING  # step 2 was ringing: its result still comes
    parent = await parent_now(harness, escalation_id, "Acknowledged")
    assert f"by {phones.mask(n(1))} (pressed 1 on the call, after the step's wait)" in text_of(
        parent
    )
    replies = await thread(harness, escalation_id, "Acknowledged by")
    assert any("Step 1 of 2" in r and "pressed 1" in r for r in replies), replies
    # Step 2's result is reported when it comes, and the chain stops there.
    replies = await thread(harness, escalation_id, "already acknowledged")
    assert any("Step 2 of 2" in r and "did not answer" in r for r in replies), replies
    await harness.settled()
    assert not any("Nobody acknowledged" in r for r in replies), replies
    assert harness.running.escalations.get(escalation_id).status == EscalationStatus.ACKNOWLEDGED
    assert sandbox.state.numbers_called() == {n(1): 1, n(0): 1}
    [audit] = harness.store.db.query(
        "SELECT * FROM audit WHERE action = 'escalation.acknowledged' AND target = ?",
        [escalation_id],
    )
    assert "after_wait" in str(dict(audit))


async def test_a_key_1_after_the_escalation_ended_is_reported_not_credited(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    """One step, whose wait runs out: nobody acknowledged. The key 1 that comes later is
    reported in the thread; the escalation stays as it ended."""
    sandbox.state.config.callback_delay = 7.0
    harness.store.policies.put(policy(on_call.id, n(1), wait=5))
    escalation_id = await escalate(harness)
    record = await ended(harness, escalation_id, timeout=20)
    assert record.status == EscalationStatus.EXHAUSTED
    replies = await thread(harness, escalation_id, "answered and pressed 1")
    assert any("Step 1 of 1" in r and "answered and pressed 1" in r for r in replies), replies
    await harness.settled()
    record = harness.running.escalations.get(escalation_id)
    assert record.status == EscalationStatus.EXHAUSTED and record.ended_by is None
    [step] = harness.running.escalations.steps(escalation_id)
    assert step.key_pressed == "1" and "once the escalation had ended" in (step.detail or "")
    parent = await parent_now(harness, escalation_id, "Nobody acknowledged")
    assert "pressed 1 on the call" not in text_of(parent)


# ---------------------------------------------------------------- the fallback


@pytest.fixture
async def slow_direct() -> AsyncIterator:
    """The fallback provider's sandbox, whose calls' results come only after 30 s."""
    box = direct_sandbox.create_sandbox_app(
        direct_sandbox.SandboxConfig(event_delay=30.0, callback_attempts=1)
    )
    server = await start_server(box)
    yield server, box.state.sandbox
    await server.stop()


@pytest.fixture
async def quick_direct() -> AsyncIterator:
    box = direct_sandbox.create_sandbox_app(
        direct_sandbox.SandboxConfig(event_delay=0.05, callback_attempts=1)
    )
    server = await start_server(box)
    yield server, box.state.sandbox
    await server.stop()


async def with_fallback(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox, server, *calls: str
) -> tuple[Harness, Workflow]:
    overrides = {"intron_direct_api_key": "test-direct-key", "intron_direct_base_url": server.url}
    harness = Harness(tmp_path, fake_slack, sandbox, overrides=overrides)
    await harness.start()
    created = await harness.create_workflow(ON_CALL)
    fallback = Workflow(
        id="wf-direct-oncall",
        provider="intron-direct",
        name="On-call (direct)",
        message="Alert: [message]. Press 1 to acknowledge.",
        keypad={"1": "Acknowledge", "2": "Pass"},
    )
    harness.store.workflows.put(fallback)
    harness.store.policies.put(policy(created.id, *calls, wait=5, fallback_workflow=fallback.id))
    return harness, fallback


async def test_the_fallback_call_gets_the_steps_whole_wait(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox, slow_direct
) -> None:
    """The provider refuses the first call 3 s into the step's 5 s wait; the fallback's
    call (whose result never comes in time) is given 5 s of its own, not the 2 s left."""
    server, direct = slow_direct
    harness, _ = await with_fallback(tmp_path, fake_slack, sandbox, server, n(0))
    try:
        sandbox.state.faults.append(Fault("place_calls", status=400, answer_delay=3.0))
        escalation_id = await escalate(harness)
        service = harness.running.escalations
        placed = await harness.wait_until(
            lambda: (
                (s := service.steps(escalation_id)) and s[0].fallback_request_id and time.time()
            ),
            timeout=15,
        )
        record = await ended(harness, escalation_id, timeout=20)
        assert record.status == EscalationStatus.EXHAUSTED
        [step] = service.steps(escalation_id)
        assert step.outcome == StepOutcome.NO_RESULT
        assert direct.numbers_called() == {n(0): 1}
        finished = datetime.fromisoformat(step.ended_at).timestamp()
        assert finished - placed >= 4.5, finished - placed  # the fallback's own 5 s
        assert step.due_at is not None and finished >= step.due_at - 0.1
    finally:
        await harness.stop()


async def test_the_fallback_is_not_placed_once_someone_acknowledged(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox, quick_direct
) -> None:
    """Acknowledge is pressed while the worker decides to try the fallback (after it read
    the escalation, before it writes): the fallback's call is not placed."""
    server, direct = quick_direct
    harness, fallback = await with_fallback(tmp_path, fake_slack, sandbox, server, n(1), n(0))
    try:
        service = harness.running.escalations
        worker = worker_escalations(harness)
        refused = worker._refused
        acked: list[str] = []

        def refused_then_acknowledged(phone: str, workflow_ref: str, *, urgent: bool):
            if workflow_ref == fallback.id and not acked:  # the fallback's look, first time
                [running] = service.running()
                acked.append(running.id)
                service.acknowledge(running.id, "U07ACKER")  # as the click does, meanwhile
            return refused(phone, workflow_ref, urgent=urgent)

        worker._refused = refused_then_acknowledged  # type: ignore[method-assign]
        sandbox.state.faults.append(Fault("place_calls", status=400))
        escalation_id = await escalate(harness)
        replies = await thread(harness, escalation_id, "could not be placed")
        assert acked == [escalation_id]
        assert any("already acknowledged" in r for r in replies), replies
        await harness.settled()
        record = service.get(escalation_id)
        assert record.status == EscalationStatus.ACKNOWLEDGED and record.ended_by == "U07ACKER"
        [step] = service.steps(escalation_id)
        assert step.fallback_request_id is None and step.outcome == StepOutcome.NOT_PLACED
        assert direct.numbers_called() == {} and not direct.calls
        assert sandbox.state.numbers_called() == {}
    finally:
        await harness.stop()


# ---------------------------------------------------------------- the watchdog


async def test_a_step_whose_job_fails_for_good_is_skipped_and_the_chain_moves_on(
    harness: Harness, on_call: Workflow, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 1's job raises (a bug) every time, and is parked: its watchdog, due a margin
    after the step's wait, skips it and calls step 2, which acknowledges."""
    monkeypatch.setattr("bot.core.jobs.POISON_AFTER", 1)  # parked at its first failure
    monkeypatch.setattr(core, "WATCHDOG_MARGIN", 0.5, raising=False)
    service = harness.running.escalations
    worker = worker_escalations(harness)
    contact = worker._contact

    async def broken_for_step_one(call: str):
        if call == n(2):
            raise RuntimeError("a bug reading this step")
        return await contact(call)

    monkeypatch.setattr(worker, "_contact", broken_for_step_one)
    harness.store.policies.put(policy(on_call.id, n(2), n(1), wait=5))
    escalation_id = await escalate(harness)
    record = await ended(harness, escalation_id, timeout=20)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert record.ended_by == phones.mask(n(1))
    first, second = service.steps(escalation_id)
    assert first.state == StepState.SKIPPED and first.outcome == StepOutcome.NOT_ORDERED
    assert second.outcome == StepOutcome.ACKNOWLEDGED
    replies = await thread(harness, escalation_id, "Acknowledged by")
    assert any(
        "Step 1 of 2" in r and "skipped" in r and "could not be ordered" in r for r in replies
    ), replies
    assert sandbox.state.numbers_called() == {n(1): 1}
    assert any(j["kind"] == core.STEP for j in harness.store.jobs.dead())


async def test_the_watchdog_leaves_a_step_whose_job_is_still_trying(
    harness: Harness, on_call: Workflow, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's job that is slow (Slack's users.info hanging) but alive is not skipped:
    the watchdog looks again later, and the step is called."""
    service = harness.running.escalations
    worker = worker_escalations(harness)
    contact = worker._contact
    release = asyncio.Event()

    async def slow(call: str):
        await release.wait()
        return await contact(call)

    monkeypatch.setattr(worker, "_contact", slow)
    harness.store.policies.put(policy(on_call.id, n(1), wait=5))
    escalation_id = await escalate(harness)
    # The step's job has started (it is leased), and waits for the phone book.
    await harness.wait_until(
        lambda: any(j.leased_by for j in harness.store.jobs.pending(core.STEP))
    )
    where = {"escalation_id": escalation_id, "round": 0, "step": 0, "watchdog": True}
    job = Job(id=0, kind=core.TIMEOUT, lane="results", payload=where, run_at=0)
    with pytest.raises(RetryLater):
        await service.kinds()[core.TIMEOUT].handler(job)
    assert service.steps(escalation_id)[0].state == StepState.PENDING
    release.set()
    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert sandbox.state.numbers_called() == {n(1): 1}
    # Run now that the step is called, the watchdog does nothing.
    await service.kinds()[core.TIMEOUT].handler(job)
    assert service.get(escalation_id).status == EscalationStatus.ACKNOWLEDGED


# ---------------------------------------------------------------- the policies file


async def test_a_wait_written_as_a_bare_number_in_the_file_is_seconds(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    """`wait: 300` is an int to YAML: 300 seconds, not "+300". An unquoted number in
    `call` is still read as a phone number."""
    path = tmp_path / "policies.yaml"
    path.write_text(
        "policies:\n  - name: Pager\n    channel: C0123ABCD\n    workflow: On-call alert\n"
        "    steps:\n      - {call: +2348031234561, wait: 300}\n"
        '      - {call: "+2348031234562", wait: 45}\n'
    )
    async with make_client(sandbox.url) as client:
        await client.create_workflow(ONCALL)
    loaded = Harness(
        tmp_path, fake_slack, sandbox, overrides={"escalation_policies_file": str(path)}
    )
    await loaded.start()
    try:
        pager = await loaded.wait_until(lambda: loaded.store.policies.by_name("Pager"), timeout=10)
        assert [(s.call, s.wait) for s in pager.steps] == [
            ("+2348031234561", 300.0),
            ("+2348031234562", 45.0),
        ]
        assert file_refusals(loaded.store) == []
        listing = shown((await command(loaded, "escalations"))["blocks"])
        assert "5m" in listing and "45s" in listing
    finally:
        await loaded.stop()


# ---------------------------------------------------------------- alert groups


async def test_an_alert_group_resolved_in_slack_is_not_paged_again_until_it_resolves(
    app: Harness,
    http: httpx.AsyncClient,
) -> None:
    await add_policy(app)
    url = alert_url(app, policy="Payments on-call")
    answer = await http.post(url, json=payload("alertmanager-firing"))
    escalation_id = answer.json()["escalation"]
    ts = await alert_wait_for(lambda: app.store.escalations.message_ts(escalation_id))
    assert app.slack is not None
    click = await app.slack.action(
        ActionId.ESCALATION_RESOLVE,
        escalation_id,
        user_id="U09RESOLVE",
        channel_id="C1",
        message_ts=ts,
    )
    assert click.status_code == 200
    assert app.running.escalations.get(escalation_id).status == EscalationStatus.RESOLVED
    # Alertmanager sends the group again (group_interval: an alert joined; repeat_interval).
    again = payload("alertmanager-firing")
    again["alerts"].append(copy.deepcopy(again["alerts"][0]) | {"startsAt": now_rfc3339()})
    for body in (payload("alertmanager-firing"), again):
        answer = await http.post(url, json=body)
        assert answer.status_code == 200 and answer.json()["created"] is False, answer.text
        assert answer.json()["escalation"] == escalation_id
        assert "resolved in Slack" in answer.json()["detail"]
    assert app.store.db.execute("SELECT COUNT(*) FROM escalations").fetchone()[0] == 1
    # Every alert started after it was resolved: a new episode, a new escalation.
    anew = payload("alertmanager-firing")
    for alert in anew["alerts"]:
        alert["startsAt"] = now_rfc3339()
    answer = await http.post(url, json=anew)
    assert answer.json()["created"] is True and answer.json()["escalation"] != escalation_id


async def test_an_exhausted_alert_group_is_paged_again_on_its_next_notification(
    app: Harness,
    http: httpx.AsyncClient,
) -> None:
    """Nobody acknowledged: the group's next notification starts the chain again."""
    await add_policy(app)  # both steps answer without a key: over in a few seconds
    url = alert_url(app, policy="Payments on-call")
    first = (await http.post(url, json=payload("alertmanager-firing"))).json()["escalation"]
    service = app.running.escalations
    await alert_wait_for(lambda: not service.get(first).running, timeout=15)
    assert service.get(first).status == EscalationStatus.EXHAUSTED
    answer = await http.post(url, json=payload("alertmanager-firing"))
    assert answer.json()["created"] is True and answer.json()["escalation"] != first
