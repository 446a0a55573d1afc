"""Scheduled, cancellable calls, end to end (`at=` in `/robocall call`, *When* in the Send
modal, `/robocall cancel`, the *Cancel* button), and `bot/input/schedules.py` on its own.

A scheduled request is dialled once, on time, or told how late; a cancelled one never.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.core.models import RequestRecord, RequestStatus
from bot.core.requests import PLACE, CallOrder
from bot.input import schedules
from bot.input.recipients import Recipient, parse_call_command
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness, assert_valid_blocks
from tests.support.slack_requests import conversation_value, plain_text_value, static_select_value

REMINDER = WorkflowCreate(
    name="Appointment reminder",
    message="Hello [name], your appointment is on [date]. Press 1 to confirm.",
    include_reply=True,
    response_options={"1": "Confirm"},
)
VALUES = "name=Ada date=Monday"


@pytest.fixture
async def reminder(harness: Harness) -> Workflow:
    return await harness.create_workflow(REMINDER)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def soon(seconds: float) -> datetime:
    """A whole second at least `seconds` from now (`at=` is read to the second)."""
    return datetime.fromtimestamp(int(time.time() + seconds) + 1, UTC)


def text_of(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response.text
    body = response.json()
    return body.get("text", "") + json.dumps(body.get("blocks", []), ensure_ascii=False)


async def command(harness: Harness, text: str, **kw) -> str:
    assert harness.slack is not None
    response = await harness.slack.command(text, **kw)
    assert response.status_code == 200, response.text
    return text_of(response)


async def schedule(harness: Harness, workflow: Workflow, at: str, digit: int = 1) -> RequestRecord:
    said = await command(harness, f"call {workflow.id} {NUMBER.format(digit)} {VALUES} at={at}")
    assert "scheduled" in said, said
    [record] = [r for r in harness.store.requests.recent(50) if r.id in said]
    assert record.status == RequestStatus.SCHEDULED
    return record


def status(harness: Harness, request_id: str) -> RequestStatus:
    return harness.store.requests.get(request_id).status


async def parent(harness: Harness, record: RequestRecord):
    ts = await harness.wait_until(lambda: (m := harness.slack_store.message(record.id)) and m.ts)
    return ts


def thread_text(harness: Harness, ts: str) -> str:
    return "\n".join(m.all_text() for m in harness.fake.thread("C1", ts))


async def click(harness: Harness, action: str, record: RequestRecord, response_id: str) -> str:
    """Click `action` on the request's parent message; what the clicker alone was told."""
    assert harness.slack is not None
    ts = await parent(harness, record)
    response = await harness.slack.action(
        action,
        record.id,
        channel_id="C1",
        message_ts=ts,
        user_id="U1",
        response_url=harness.fake.response_url(response_id),
    )
    assert response.status_code == 200, response.text
    [said] = await harness.fake.wait_for(lambda f: f.responses(response_id))
    assert said.params["response_type"] == "ephemeral"
    return said.all_text()


# ---------------------------------------------------------------- dialled on time, once


async def test_scheduled_two_seconds_ahead_is_dialled_once_on_time(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    at = soon(2)
    said = await command(harness, f"call {reminder.id} {NUMBER.format(1)} {VALUES} at={iso(at)}")
    assert "scheduled" in said and f"<!date^{int(at.timestamp())}^" in said
    assert "/robocall cancel rq-" in said
    [record] = harness.store.requests.recent()
    assert record.status == RequestStatus.SCHEDULED and record.scheduled_at == iso(at)
    [job] = harness.store.jobs.pending(PLACE)
    assert job.run_at == at.timestamp()

    # The parent says when, in Slack's date formatting, with a Cancel button.
    ts = await parent(harness, record)
    await harness.settled()
    [first] = harness.fake.messages("C1")
    assert_valid_blocks(first.params["blocks"])
    assert "Scheduled for" in first.all_text() and f"<!date^{int(at.timestamp())}^" in (
        first.all_text()
    )
    buttons = [
        e["action_id"]
        for b in first.params["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert buttons == [ActionId.REQUEST_CANCEL]
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0

    await harness.wait_until(lambda: sandbox.state.requests_seen.get("place_calls"), timeout=6)
    dialled = time.time()
    assert at.timestamp() - 0.05 <= dialled <= at.timestamp() + 1.5, dialled - at.timestamp()
    await harness.wait_until(lambda: status(harness, record.id) == RequestStatus.COMPLETED)
    await harness.settled()
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1}
    assert "late" not in thread_text(harness, ts)
    assert not harness.store.jobs.pending(PLACE)


# ---------------------------------------------------------------- cancelled: never dialled


async def test_cancel_by_command_means_never_dialled(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    record = await schedule(harness, reminder, iso(soon(2)))
    ts = await parent(harness, record)
    said = await command(harness, f"cancel {record.id}")
    assert f"Request `{record.id}` is cancelled" in said and "nobody will be called" in said
    assert status(harness, record.id) == RequestStatus.CANCELLED
    again = await command(harness, f"cancel {record.id}")
    assert f"Request `{record.id}` was not cancelled: it is already cancelled" in again
    await asyncio.sleep(3.5)  # well past its time
    await harness.settled()
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    assert status(harness, record.id) == RequestStatus.CANCELLED
    assert "Cancelled by <@U1> before it was dialled" in thread_text(harness, ts)
    last = harness.fake.updates("C1", ts)[-1].all_text()
    assert "cancelled, nobody was called" in last and "request_cancel" not in json.dumps(
        harness.fake.updates("C1", ts)[-1].params["blocks"]
    )
    [audit] = [
        r
        for r in harness.store.db.query("SELECT * FROM audit")
        if r["action"] == "request.cancelled"
    ]
    assert audit["actor"] == "U1" and audit["target"] == record.id


async def test_cancel_button_means_never_dialled(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    record = await schedule(harness, reminder, iso(soon(2)))
    said = await click(harness, ActionId.REQUEST_CANCEL, record, "cancel-1")
    assert f"Request `{record.id}` is cancelled" in said
    said = await click(harness, ActionId.REQUEST_CANCEL, record, "cancel-2")
    assert f"Request `{record.id}` was not cancelled: it is already cancelled" in said
    await asyncio.sleep(3.5)
    await harness.settled()
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    assert status(harness, record.id) == RequestStatus.CANCELLED


async def test_cancel_is_refused_once_dialled_naming_the_state(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    said = await command(harness, f"call {reminder.id} {NUMBER.format(1)} {VALUES}")
    [record] = harness.store.requests.recent()
    assert "scheduled" not in said
    await harness.wait_until(lambda: status(harness, record.id) == RequestStatus.COMPLETED)
    refused = await command(harness, f"cancel {record.id}")
    assert f"Request `{record.id}` was not cancelled: it was already dialled, and is completed" in (
        refused
    )
    unknown = await command(harness, "cancel rq-000000000000")
    assert "'rq-000000000000' was not cancelled: there is no such request here" in unknown
    assert "Which request?" in await command(harness, "cancel")
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1}


async def test_the_parts_of_a_split_request_are_scheduled_and_cancelled_together(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    phones = [f"+2348031{i:06d}" for i in range(1001)]  # two submissions' worth
    record, _ = harness.running.service.accept(
        CallOrder(
            workflow=reminder.id,
            recipients=[Recipient(p, {"name": "A", "date": "B"}) for p in phones],
            voice=None,
            requested_by="U1",
            channel="C1",
            source="test",
            at=datetime.now(UTC) + timedelta(hours=1),
        )
    )
    parts = harness.store.requests.parts(record.id)
    assert [p.status for p in parts] == [RequestStatus.SCHEDULED] * 2
    assert len({p.scheduled_at for p in parts}) == 1
    said = await command(harness, f"cancel {parts[1].id}")
    assert "(all 2 parts) is cancelled" in said and "1,001 recipients" in said
    assert [status(harness, p.id) for p in parts] == [RequestStatus.CANCELLED] * 2
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0


# ---------------------------------------------------------------- the app down at that time


async def test_app_down_at_its_time_is_dialled_once_when_back(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    """Stopped before its time, started after it (a few seconds: no note, under a minute)."""
    at = soon(1)
    record = await schedule(harness, reminder, iso(at))
    await parent(harness, record)
    await harness.stop()
    await asyncio.sleep(max(0.0, at.timestamp() - time.time()) + 1.0)
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    await harness.start()
    await harness.wait_until(lambda: status(harness, record.id) == RequestStatus.COMPLETED)
    await harness.settled()
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1}
    ts = await harness.parent_ts(record.id)
    assert "late" not in thread_text(harness, ts)


async def test_dialled_late_after_a_restart_says_how_late(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    """The app down for 12 minutes over its time. Waiting 12 minutes is out of a test's
    reach, so the stored time (and its job) are moved 12 minutes back while the app is
    stopped: the database as an app down since then would find it."""
    record = await schedule(harness, reminder, iso(soon(30)))
    await parent(harness, record)
    await harness.settled()
    await harness.stop_worker()
    then = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=12)
    db = harness.store.db
    with db.write():
        db.execute("UPDATE requests SET scheduled_at = ? WHERE id = ?", [iso(then), record.id])
        db.execute(
            "UPDATE jobs SET run_at = ? WHERE kind = ? AND payload LIKE ?",
            [then.timestamp(), PLACE, f"%{record.id}%"],
        )
    await harness.restart()
    await harness.wait_until(lambda: status(harness, record.id) == RequestStatus.COMPLETED)
    await harness.settled()
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1}
    ts = await harness.parent_ts(record.id)
    thread = thread_text(harness, ts)
    assert "Dialled 12 min late: the app was not running at" in thread
    assert f"<!date^{int(then.timestamp())}^" in thread
    notes = [m for m in harness.fake.thread("C1", ts) if "min late" in m.all_text()]
    assert len(notes) == 1


# ---------------------------------------------------------------- a cancel racing the timer


async def test_a_cancel_racing_the_timer_either_cancels_or_dials_never_both(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    at = soon(2)
    records = [(await schedule(harness, reminder, iso(at), digit)) for digit in (1, 2, 3, 4, 5, 6)]
    await asyncio.sleep(max(0.0, at.timestamp() - time.time() - 0.02))
    answers = await asyncio.gather(*(command(harness, f"cancel {r.id}") for r in records))
    await harness.wait_until(
        lambda: all(
            status(harness, r.id) in (RequestStatus.CANCELLED, RequestStatus.COMPLETED)
            for r in records
        ),
        timeout=10,
    )
    await harness.settled()
    called = sandbox.state.numbers_called()
    for record, said in zip(records, answers, strict=True):
        number = harness.store.requests.calls(record.id)[0].phone_number
        if status(harness, record.id) == RequestStatus.CANCELLED:
            assert f"Request `{record.id}` is cancelled" in said
            assert called.get(number, 0) == 0
        else:
            assert f"Request `{record.id}` was not cancelled: it " in said
            assert called[number] == 1
    assert all(n == 1 for n in called.values())


# ---------------------------------------------------------------- refused times


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("next-week", "'at=next-week' is not a time I can read"),
        ("25:61", "'at=25:61': 25:61 is not a time of day"),
        (
            "2020-01-01T09:00+00:00",
            "'at=2020-01-01T09:00+00:00' (2020-01-01 09:00 UTC) is in the past",
        ),
        ("2099-01-01T09:00+00:00", "days ahead; at most 30 days ahead can be scheduled"),
        ("2026-13-45T09:00+01:00", "'at=2026-13-45T09:00+01:00' is not a date and time"),
        ("", "at= has no value"),
        ("09:00 at=10:00", "at is given twice"),
    ],
)
async def test_a_bad_at_is_refused_naming_the_value_and_nothing_is_stored(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, typed: str, expected: str
) -> None:
    said = await command(harness, f"call {reminder.id} {NUMBER.format(1)} {VALUES} at={typed}")
    assert expected in said, said
    assert "Nothing was sent" in said
    assert harness.store.requests.recent() == []
    await harness.settled()
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0


async def test_a_bad_at_and_a_bad_number_are_told_at_once(
    harness: Harness, reminder: Workflow
) -> None:
    said = await command(harness, f"call {reminder.id} +234 80 {VALUES} at=yesterday")
    assert "'at=yesterday' is not a time I can read" in said
    assert "too short" in said
    assert harness.store.requests.recent() == []


async def test_local_times_are_read_in_the_requesters_slack_time_zone(
    harness: Harness, reminder: Workflow
) -> None:
    harness.fake.users["U7"] = {"tz": "Asia/Tokyo"}
    said = await command(
        harness, f"call {reminder.id} {NUMBER.format(1)} {VALUES} at=tomorrow 09:00", user_id="U7"
    )
    assert "scheduled" in said, said
    [record] = harness.store.requests.recent()
    tokyo = ZoneInfo("Asia/Tokyo")
    tomorrow = datetime.now(tokyo).date() + timedelta(days=1)
    expected = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, 0, tzinfo=tokyo)
    assert record.scheduled_at == iso(expected)
    # Kept: the next local time asks Slack nothing.
    asked = len(harness.fake.calls("users.info"))
    await command(
        harness, f"call {reminder.id} {NUMBER.format(2)} {VALUES} at=tomorrow 10:00", user_id="U7"
    )
    assert len(harness.fake.calls("users.info")) == asked == 1
    # An offset needs no time zone at all.
    await command(harness, f"call {reminder.id} {NUMBER.format(3)} {VALUES} at={iso(soon(600))}")
    assert len(harness.fake.calls("users.info")) == 1


async def test_a_slow_users_info_asks_for_an_offset_within_a_second(
    harness: Harness, reminder: Workflow
) -> None:
    harness.fake.set_latency("users.info", 3.0)
    started = time.monotonic()
    said = await command(
        harness, f"call {reminder.id} {NUMBER.format(1)} {VALUES} at=tomorrow 09:00", user_id="U8"
    )
    assert time.monotonic() - started < 2.0
    assert "your Slack time zone is not known here; give the offset too" in said
    assert harness.store.requests.recent() == []


# ---------------------------------------------------------------- the Send modal's When


def modal_values(workflow_id: str, when: float | None) -> dict:
    values = {
        BlockId.WORKFLOW: {ActionId.WORKFLOW_SELECT: static_select_value(workflow_id)},
        BlockId.VOICE: {ActionId.VOICE_SELECT: static_select_value(None)},
        BlockId.RECIPIENTS: {
            ActionId.RECIPIENTS_INPUT: plain_text_value(f"{NUMBER.format(1)} {VALUES}")
        },
        BlockId.CHANNEL: {ActionId.CHANNEL_SELECT: conversation_value("C1")},
    }
    if when is not None:
        values[BlockId.WHEN] = {
            ActionId.WHEN_SELECT: {"type": "datetimepicker", "selected_date_time": int(when)}
        }
    return values


async def submit(harness: Harness, values: dict, view_id: str) -> httpx.Response:
    assert harness.slack is not None
    context = json.dumps({"user_id": "U1", "channel_id": "C1"})
    return await harness.slack.submit_view(
        CallbackId.SEND_CALL, values, private_metadata=context, view_id=view_id
    )


async def test_the_modal_has_an_optional_when_and_schedules_with_it(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    await command(harness, "")
    view = harness.fake.last_view()
    [when] = [b for b in view["blocks"] if b.get("block_id") == BlockId.WHEN]
    assert when["optional"] is True and when["element"]["type"] == "datetimepicker"

    past = await submit(harness, modal_values(reminder.id, time.time() - 3600), "VWHEN0")
    assert past.json()["response_action"] == "errors"
    assert "is in the past" in past.json()["errors"][BlockId.WHEN]
    assert harness.store.requests.recent() == []

    at = soon(3600)
    answer = await submit(harness, modal_values(reminder.id, at.timestamp()), "VWHEN1")
    assert answer.content in (b"", b"{}")
    [record] = harness.store.requests.recent()
    assert record.status == RequestStatus.SCHEDULED and record.scheduled_at == iso(at)
    said = await click(harness, ActionId.REQUEST_CANCEL, record, "modal-cancel")
    assert "is cancelled" in said
    await harness.settled()
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0


async def test_status_and_home_name_the_new_states(harness: Harness, reminder: Workflow) -> None:
    record = await schedule(harness, reminder, iso(soon(600)))
    said = await command(harness, f"status {record.id}")
    assert ":clock9:" in said and "scheduled for" in said
    await command(harness, f"cancel {record.id}")
    said = await command(harness, f"status {record.id}")
    assert "cancelled, nobody was called" in said


# ---------------------------------------------------------------- bot/input/schedules.py

NOW = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # a Tuesday, 13:00 UTC


@pytest.mark.parametrize(
    ("typed", "tz", "expected"),
    [
        ("2026-12-02T09:00+01:00", None, datetime(2026, 12, 2, 8, 0, tzinfo=UTC)),
        ("2026-12-02T09:00Z", None, datetime(2026, 12, 2, 9, 0, tzinfo=UTC)),
        ("2026-12-02T09:00:30-05:00", None, datetime(2026, 12, 2, 14, 0, 30, tzinfo=UTC)),
        ("14:30", "Europe/London", datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        ("14:30", "Africa/Lagos", datetime(2026, 12, 1, 13, 30, tzinfo=UTC)),
        ("12:59", "Europe/London", datetime(2026, 12, 1, 12, 59, tzinfo=UTC)),  # grace
        ("tomorrow 09:00", "Europe/London", datetime(2026, 12, 2, 9, 0, tzinfo=UTC)),
        ("Tomorrow  9:00", "Africa/Lagos", datetime(2026, 12, 2, 8, 0, tzinfo=UTC)),
        ("tomorrow 09:00", "Asia/Tokyo", datetime(2026, 12, 2, 0, 0, tzinfo=UTC)),
        # Kiritimati (+14) is already on Wednesday: tomorrow is Thursday there.
        ("tomorrow 09:00", "Pacific/Kiritimati", datetime(2026, 12, 2, 19, 0, tzinfo=UTC)),
        ("today 23:00", "America/New_York", datetime(2026, 12, 2, 4, 0, tzinfo=UTC)),
        ("2026-12-24 18:00", "America/Los_Angeles", datetime(2026, 12, 25, 2, 0, tzinfo=UTC)),
        ("2026-12-24T18:00", "Europe/Paris", datetime(2026, 12, 24, 17, 0, tzinfo=UTC)),
    ],
)
def test_schedules_reads_each_form(typed: str, tz: str | None, expected: datetime) -> None:
    assert schedules.parse(typed, tz, now=NOW) == expected


def test_schedules_across_daylight_saving() -> None:
    spring = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)  # London goes to BST at 01:00 UTC on 28th
    # Tomorrow 09:00 is summer time: 08:00 UTC, not 09:00.
    assert schedules.parse("tomorrow 09:00", "Europe/London", now=spring) == datetime(
        2027, 3, 28, 8, 0, tzinfo=UTC
    )
    with pytest.raises(schedules.ScheduleError, match="01:30 does not exist on 2027-03-28"):
        schedules.parse("tomorrow 01:30", "Europe/London", now=spring)
    autumn = datetime(2027, 10, 30, 12, 0, tzinfo=UTC)  # back to GMT at 01:00 UTC on 31st
    # 01:30 happens twice: the first (BST, 00:30 UTC).
    assert schedules.parse("tomorrow 01:30", "Europe/London", now=autumn) == datetime(
        2027, 10, 31, 0, 30, tzinfo=UTC
    )
    assert schedules.parse("tomorrow 09:00", "Europe/London", now=autumn) == datetime(
        2027, 10, 31, 9, 0, tzinfo=UTC
    )


def test_schedules_refuses_naming_the_value_and_what_would_be_right() -> None:
    def why(typed: str, tz: str | None = "Europe/London") -> str:
        with pytest.raises(schedules.ScheduleError) as caught:
            schedules.parse(typed, tz, now=NOW)
        return str(caught.value)

    assert (
        "09:00 today (Europe/London) has already passed; for tomorrow write at=tomorrow 09:00"
        in (why("09:00"))
    )
    assert "is in the past" in why("2026-12-01T11:00+00:00")
    assert "is in the past" in why("2026-11-30 09:00")
    assert "31 days ahead; at most 30 days" in why("2027-01-01T14:00Z")
    assert "is not a time I can read" in why("noon")
    assert "is not a date" in why("2026-02-30 09:00")
    with pytest.raises(schedules.NeedsTimeZone) as caught:
        schedules.parse("09:00", None, now=NOW)
    assert isinstance(caught.value, schedules.ScheduleError)
    with pytest.raises(schedules.NeedsTimeZone, match="give the offset too"):
        schedules.parse("tomorrow 09:00", "Not/A_Zone", now=NOW)
    # Within the minute's grace, "now" is accepted as it is.
    assert schedules.parse("2026-12-01T12:59:30Z", now=NOW) == datetime(
        2026, 12, 1, 12, 59, 30, tzinfo=UTC
    )


def test_which_forms_need_a_time_zone() -> None:
    assert schedules.is_local("09:00") and schedules.is_local("tomorrow 09:00")
    assert schedules.is_local("2026-12-02 09:00") and schedules.is_local("2026-12-02T09:00")
    assert not schedules.is_local("2026-12-02T09:00+01:00")
    assert not schedules.is_local("2026-12-02T09:00Z")
    assert not schedules.is_local("whenever")


def test_the_command_takes_at_out_like_voice() -> None:
    parsed = parse_call_command(f"reminder {NUMBER.format(1)} at=tomorrow 09:00 name=Ada")
    assert parsed.at == "tomorrow 09:00" and [r.phone for r in parsed.recipients] == [
        NUMBER.format(1)
    ]
    assert parse_call_command(f'reminder {NUMBER.format(1)} "at=2026-12-02 09:00"').at == (
        "2026-12-02 09:00"
    )
    assert parse_call_command(f"reminder {NUMBER.format(1)} AT=09:00").at == "09:00"
    assert parse_call_command(f"reminder {NUMBER.format(1)}").at is None


async def test_a_large_scheduled_send_keeps_its_time_through_the_confirmation(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    count = harness.settings().confirm_above + 1
    phones = ", ".join(f"+234803{i:07d}" for i in range(count))
    at = soon(3600)
    assert harness.slack is not None
    answer = await harness.slack.command(f"call {reminder.id} {phones} {VALUES} at={iso(at)}")
    blocks = answer.json()["blocks"]
    [token] = [
        e["value"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ActionId.CONFIRM_CALL
    ]
    assert harness.store.requests.recent() == []
    response = await harness.slack.action(
        ActionId.CONFIRM_CALL, token, channel_id="C1", message_ts="1700000000.000001"
    )
    assert response.status_code == 200
    rid = harness.slack.last_response_id
    [posted] = await harness.fake.wait_for(lambda f: f.responses(rid))
    assert "scheduled" in posted.all_text()
    [record] = harness.store.requests.recent()
    assert record.status == RequestStatus.SCHEDULED and record.scheduled_at == iso(at)
    await harness.settled()
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
