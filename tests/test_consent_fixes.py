"""Calling responsibly, the reviewer's findings: an accepted request reached only after
its recipients' calling hours waits instead of ringing at night (also at the dial
itself, after a wait for the provider); only urgent requests skip that; a request whose
recipients are in several zones waits for a time inside every one's window; and
`/robocall optout remove` answers before it asks Slack who the admins are, and writes
each change with its audit row in one transaction.

Times come from the clock when the test runs (windows given to the second), as in
tests/test_consent.py, whose helpers these share.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.core import consent as consent_rules
from bot.core.consent import Consent
from bot.core.models import RequestStatus
from bot.core.requests import CallOrder
from bot.input.recipients import Recipient
from bot.providers.intron.provider import IntronProvider
from bot.store.consent import ConsentStore
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness
from tests.test_consent import (
    LAGOS,
    VALUES,
    called,
    clock,
    command,
    make_harness,  # noqa: F401  (a fixture)
    request_in,
    slack_date,
    text_of,
    workflow,
)

LONDON_NUMBER = "+442071234561"
# Zones without summer time, so their distance from Lagos (UTC+1) never changes.
SAO_PAULO = ZoneInfo("America/Sao_Paulo")  # UTC-3
SAO_PAULO_NUMBER = "+551123456781"
TOKYO = ZoneInfo("Asia/Tokyo")  # UTC+9
TOKYO_NUMBER = "+81312345671"


def scheduled_at(harness: Harness, request_id: str) -> str | None:
    record = harness.store.requests.get(request_id)
    assert record is not None
    return record.scheduled_at


# ---------------------------------------------------------------- 1. accepted, then late


async def test_an_accepted_request_reached_after_its_hours_waits_for_the_next_window(
    harness: Harness, sandbox: Sandbox
) -> None:
    """Accepted inside its hours while the worker is down; the worker is back once they
    are over: it is not dialled at night but rescheduled for their next opening
    (ACCEPTED → SCHEDULED), and its channel message says until when."""
    now = datetime.now(LAGOS).replace(microsecond=0)
    start, end = now - timedelta(hours=1), now + timedelta(seconds=5)
    wf = await workflow(harness, calling_hours=f"{clock(start)}-{clock(end)}")
    await harness.stop_worker()
    said = await command(harness, f"call {wf.id} {NUMBER.format(1)} {VALUES}")
    assert "accepted" in said and "outside their calling hours" not in said, said
    record = request_in(harness, said)
    assert record.status == RequestStatus.ACCEPTED
    await harness.wait_until(lambda: time.time() > end.timestamp() + 0.5, timeout=10)

    await harness.start_worker()

    tomorrow = (start + timedelta(days=1)).astimezone(UTC)
    await harness.wait_until(
        lambda: scheduled_at(harness, record.id) == tomorrow.isoformat(timespec="seconds")
    )
    await harness.settled()
    assert called(sandbox) == {}
    assert harness.store.requests.get(record.id).status == RequestStatus.SCHEDULED
    [(opens, why)] = harness.store.consent.waits([record.id]).values()
    assert opens == tomorrow.isoformat(timespec="seconds") and "Africa/Lagos" in why
    await harness.wait_until(
        lambda: [
            m
            for m in harness.fake.calls("chat.update") + harness.fake.messages("C1")
            if record.id in m.all_text()
            and slack_date(tomorrow) in m.all_text()
            and "wait until" in m.all_text()
        ]
    )
    # It can still be cancelled while it waits, and then is never dialled.
    assert "cancelled" in (await command(harness, f"cancel {record.id}")).lower()
    assert harness.store.requests.get(record.id).status == RequestStatus.CANCELLED


async def test_hours_over_while_waiting_for_the_provider_hold_the_request_at_the_dial(
    harness: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hours end while the request waits for the provider's rate limit (here: they
    change just as the submit starts): checked again just before it leaves, it waits for
    their opening and nothing is sent."""
    wf = await workflow(harness)  # no hours of its own: CALLING_HOURS (any time, in tests)
    opens = (datetime.now(LAGOS) + timedelta(hours=1)).replace(microsecond=0)
    closed = f"{clock(opens)}-{clock(opens + timedelta(hours=1))}"
    original = IntronProvider.submit

    async def slow_submit(self: IntronProvider, order: Any, *, before_send: Any) -> str:
        # As if the rate limiter had kept it past the end of the window.
        harness.store.consent.set_workflow_rules(wf.id, calling_hours=closed, press_9_to_stop=False)
        return await original(self, order, before_send=before_send)

    monkeypatch.setattr(IntronProvider, "submit", slow_submit)
    said = await command(harness, f"call {wf.id} {NUMBER.format(2)} {VALUES}")
    record = request_in(harness, said)

    at = opens.astimezone(UTC).isoformat(timespec="seconds")
    await harness.wait_until(lambda: scheduled_at(harness, record.id) == at)
    await harness.settled()
    assert called(sandbox) == {}
    assert harness.store.requests.get(record.id).status == RequestStatus.SCHEDULED


async def test_only_urgent_escalations_skip_calling_hours_at_the_dial(
    harness: Harness, sandbox: Sandbox
) -> None:
    """Both accepted inside their hours while the worker is down: once the hours are
    over, the urgent escalation's call is dialled, the other escalation's waits."""
    now = datetime.now(LAGOS).replace(microsecond=0)
    start, end = now - timedelta(hours=1), now + timedelta(seconds=4)
    wf = await workflow(harness, calling_hours=f"{clock(start)}-{clock(end)}")
    service = harness.running.service

    def order(number: str, **kw: Any) -> CallOrder:
        return CallOrder(
            workflow=wf.id,
            recipients=[Recipient(number, {"name": "Ada", "date": "Monday"})],
            voice=None,
            requested_by="U1",
            channel="C1",
            source="escalation",
            **kw,
        )

    await harness.stop_worker()
    urgent, _ = service.accept(order(NUMBER.format(1), urgent=True))
    calm, _ = service.accept(order(NUMBER.format(2)))
    assert urgent.status == calm.status == RequestStatus.ACCEPTED
    assert harness.store.consent.is_urgent(urgent.id)
    assert not harness.store.consent.is_urgent(calm.id)
    await harness.wait_until(lambda: time.time() > end.timestamp() + 0.5, timeout=10)

    await harness.start_worker()

    await harness.wait_until(lambda: called(sandbox).get(NUMBER.format(1)) == 1)
    await harness.wait_until(
        lambda: harness.store.requests.get(calm.id).status == RequestStatus.SCHEDULED
    )
    await harness.settled()
    assert NUMBER.format(2) not in called(sandbox)


# ---------------------------------------------------------------- 4. several zones


async def test_a_part_in_several_zones_waits_for_a_time_inside_every_window(
    harness: Harness, sandbox: Sandbox
) -> None:
    """Lagos and São Paulo share a part (both inside their hours when it was accepted);
    the worker comes back after Lagos's window closed, São Paulo's (4 hours behind)
    still open. It waits, not for Lagos's opening (São Paulo is then still outside its
    hours), but for the first moment inside both: São Paulo's opening."""
    now = datetime.now(LAGOS).replace(microsecond=0)
    start, end = now - timedelta(hours=5), now + timedelta(seconds=5)
    wf = await workflow(harness, calling_hours=f"{clock(start)}-{clock(end)}")
    lagos = NUMBER.format(3)
    await harness.stop_worker()
    said = await command(harness, f"call {wf.id} {lagos} {SAO_PAULO_NUMBER} {VALUES}")
    assert "outside their calling hours" not in said, said
    record = request_in(harness, said)
    assert record.parts == 1 and record.recipient_count == 2
    await harness.wait_until(lambda: time.time() > end.timestamp() + 0.5, timeout=10)

    await harness.start_worker()

    tomorrow = start.date() + timedelta(days=1)
    both = datetime.combine(tomorrow, start.time(), SAO_PAULO).astimezone(UTC)
    lagos_opens = datetime.combine(tomorrow, start.time(), LAGOS).astimezone(UTC)
    assert both - lagos_opens == timedelta(hours=4)
    await harness.wait_until(
        lambda: scheduled_at(harness, record.id) == both.isoformat(timespec="seconds")
    )
    await harness.settled()
    assert called(sandbox) == {}
    # That moment is inside every recipient's window; Lagos's opening was not.
    consent = harness.running.service.consent
    for phone in (lagos, SAO_PAULO_NUMBER):
        assert consent.waits_until(phone, wf, both) is None
    assert consent.waits_until(SAO_PAULO_NUMBER, wf, lagos_opens) is not None


def test_common_opening_is_inside_every_window_or_none(tmp_path) -> None:
    from bot.store import Store

    consent = Consent(
        Store(tmp_path / "db.sqlite"), hours=consent_rules.CallingHours.parse("08:00-10:00")
    )
    noon = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    # Lagos 07:00-09:00 UTC, London 08:00-10:00 UTC: both from 08:00 UTC tomorrow.
    assert consent.common_opening(["+2348031234561", LONDON_NUMBER], None, noon) == datetime(
        2026, 12, 2, 8, 0, tzinfo=UTC
    )
    # Lagos and Tokyo (23:00-01:00 UTC) never share a moment of 08:00-10:00.
    assert consent.common_opening(["+2348031234561", "+81312345671"], None, noon) is None


async def test_a_part_whose_windows_no_longer_meet_dials_those_inside_and_says_why(
    harness: Harness, sandbox: Sandbox
) -> None:
    """Its hours changed after it was accepted, so its recipients' windows share no
    moment: those inside their hours are dialled, the others recorded as not called."""
    wf = await workflow(harness)
    lagos = NUMBER.format(4)
    await harness.stop_worker()
    said = await command(harness, f"call {wf.id} {lagos} {TOKYO_NUMBER} {VALUES}")
    record = request_in(harness, said)
    # Now: a 40-minute window around now on Tokyo's clock (Lagos's comes 8 hours later).
    start = datetime.now(TOKYO).replace(microsecond=0) - timedelta(minutes=10)
    hours = f"{clock(start)}-{clock(start + timedelta(minutes=40))}"
    harness.store.consent.set_workflow_rules(wf.id, calling_hours=hours, press_9_to_stop=False)

    await harness.start_worker()

    await harness.wait_until(lambda: called(sandbox).get(TOKYO_NUMBER) == 1)
    await harness.wait_until(
        lambda: harness.store.requests.get(record.id).status == RequestStatus.COMPLETED, timeout=10
    )
    await harness.settled()
    assert lagos not in called(sandbox)
    by_phone = {c.phone_number: c for c in harness.store.requests.calls(record.id)}
    assert by_phone[lagos].provider_status == "not called: calling hours"
    trail = [r for r in harness.store.audit.trail() if r["action"] == "request.not_called"]
    assert "shares none with the others" in str(trail), trail


# ---------------------------------------------------------------- 2. /robocall optout


async def test_optout_remove_answers_before_asking_slack_for_the_admin_group(
    make_harness,  # noqa: F811
) -> None:
    harness = await make_harness(admin_user_ids=["UADMIN"], admin_usergroup_id="SADMINS")
    number = NUMBER.format(6)
    await command(harness, f"optout add {number}", user_id="U2")
    harness.fake.answer_with(
        "usergroups.users.list", lambda call: {"ok": True, "users": ["UGROUP"]}
    )
    harness.fake.set_latency("usergroups.users.list", 1.5)
    assert harness.slack is not None

    began = time.monotonic()
    response = await harness.slack.command(f"optout remove {number}", user_id="UGROUP")
    took = time.monotonic() - began

    assert response.status_code == 200
    assert took < 1.0, f"the ack waited {took:.2f} s for Slack"
    assert "Checking" in text_of(response)
    await harness.wait_until(
        lambda: any("taken off the opt-out list" in r.all_text() for r in harness.fake.responses()),
        timeout=5,
    )
    assert not harness.store.consent.is_opted_out(number)
    # Someone outside the group: refused, through the response URL too, nothing changed.
    await command(harness, f"optout add {number}", user_id="U2")
    await harness.slack.command(f"optout remove {number}", user_id="U3")
    await harness.wait_until(
        lambda: any("Only admins" in r.all_text() for r in harness.fake.responses()), timeout=5
    )
    assert harness.store.consent.is_opted_out(number)
    # An admin by id is answered at once, without asking Slack.
    asked = len(harness.fake.calls("usergroups.users.list"))
    removed = await command(harness, f"optout remove {number}", user_id="UADMIN")
    assert "taken off the opt-out list" in removed
    assert len(harness.fake.calls("usergroups.users.list")) == asked


async def test_an_optout_change_and_its_audit_row_are_one_transaction(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = NUMBER.format(7)
    audit = harness.running.slack.store.audit

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the audit row could not be written")

    monkeypatch.setattr(audit, "record", broken)
    said = await command(harness, f"optout add {number}")

    assert "Something went wrong" in said, said
    assert not harness.store.consent.is_opted_out(number)  # undone with its audit row
    monkeypatch.undo()
    await command(harness, f"optout add {number}")
    monkeypatch.setattr(audit, "record", broken)
    await command(harness, f"optout remove {number}")
    assert harness.store.consent.is_opted_out(number)


# ---------------------------------------------------------------- 3. dead code


def test_unused_consent_helpers_are_gone() -> None:
    assert not hasattr(Consent, "refusal") and not hasattr(Consent, "hours_refusal")
    assert not hasattr(ConsentStore, "call_times")


def test_migration_12_keeps_urgent_escalations_ordered_before_it_urgent(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests an urgent policy ordered before step 12 still ignore calling hours at the
    dial; other escalations' and ordinary requests do not."""
    import json

    from bot.core.models import RequestRecord
    from bot.store.db import Database
    from bot.store.migrations import STEPS, upgrade
    from bot.store.requests import RequestStore

    monkeypatch.delitem(STEPS, 12)
    db = Database(tmp_path / "old.db")  # upgraded to step 11
    assert db.schema_version() == 11
    monkeypatch.undo()
    requests = RequestStore(db)
    for rid, source in (("rq-urgent", "escalation"), ("rq-calm", "escalation"), ("rq-x", "slack")):
        record = RequestRecord(
            id=rid,
            created_at="2026-12-01T10:00:00+00:00",
            updated_at="2026-12-01T10:00:00+00:00",
            status=RequestStatus.ACCEPTED,
            provider="intron",
            workflow_name="Page",
            requested_by="U1",
            source=source,
            recipient_count=1,
        )
        requests.add(record, [])
    with db.write():
        for eid, urgent, rid in (("es-1", True, "rq-urgent"), ("es-2", False, "rq-calm")):
            db.execute(
                "INSERT INTO escalations (id, policy_id, policy_name, channel, message, status, "
                "started_by, source, started_at, policy) VALUES (?, 'p', 'P', 'C1', 'm', "
                "'running', 'U1', 'slack', '2026-12-01T10:00:00+00:00', ?)",
                [eid, json.dumps({"name": "P", "urgent": urgent})],
            )
            db.execute(
                "INSERT INTO escalation_steps (escalation_id, round, step, call, state, "
                "request_id) VALUES (?, 0, 0, 'c', 'calling', ?)",
                [eid, rid],
            )

    upgrade(db)

    assert db.schema_version() == max(STEPS)
    store = ConsentStore(db)
    assert store.is_urgent("rq-urgent")
    assert not store.is_urgent("rq-calm") and not store.is_urgent("rq-x")
