"""Calling responsibly, end to end: calling hours (a call outside them waits, and is
dialled when they open), the opt-out list (`/robocall optout`, press 9), the frequency
cap, and their exemptions — through signed Slack requests, the sandbox and the fake
Slack Web API. `bot/core/consent.py` holds the rules.

Times are computed from the clock when the test runs: a window opening a few seconds
from now (windows may be given to the second), numbers chosen by whether their zone is
inside 08:00-21:00 right now.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from phonenumbers import parse as parse_number
from phonenumbers import timezone as phone_zones

from bot.core.consent import CallingHours, Consent, NoCallingHours
from bot.core.models import RequestStatus
from bot.core.requests import CallOrder
from bot.input import phones
from bot.input.recipients import Recipient
from bot.providers.base import Workflow, WorkflowDraft
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import checkboxes_value, plain_text_value, radio_value

REMINDER_TEXT = "Hello [name], your appointment is on [date]. Press 1 to confirm."
VALUES = "name=Ada date=Monday"
LAGOS = ZoneInfo("Africa/Lagos")

# Numbers of one zone each, spread around the world: at any moment some are inside
# 08:00-21:00 and some outside.
ONE_ZONE = {
    "+2348031234561": "Africa/Lagos",
    "+442071234561": "Europe/London",
    "+12125550121": "America/New_York",
    "+14155550131": "America/Los_Angeles",
    "+18085550121": "Pacific/Honolulu",
    "+81312345671": "Asia/Tokyo",
    "+61212345671": "Australia/Sydney",
    "+911123456781": "Asia/Calcutta",  # phonenumbers' name for it
    "+551123456781": "America/Sao_Paulo",
}
AUSTRALIAN_MOBILE = "+61412345671"  # any of Australia's zones, Perth to Lord Howe and beyond


@pytest.fixture
async def make_harness(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Callable[..., Any]]:
    """A harness with these settings (calling hours and the cap are off by default in
    tests/harness.py); stopped at the end."""
    started: list[Harness] = []

    async def make(**overrides: Any) -> Harness:
        harness = Harness(tmp_path, fake_slack, sandbox, overrides=overrides)
        await harness.start()
        started.append(harness)
        return harness

    yield make
    for harness in started:
        await harness.stop()


async def workflow(harness: Harness, **fields: Any) -> Workflow:
    """A workflow on Intron (the sandbox) made through the app's own workflow service, as
    the workflow modal makes it, with these calling-responsibly fields."""
    draft = WorkflowDraft(
        name=f"Reminder {time.monotonic_ns()}",
        message=fields.pop("message", REMINDER_TEXT),
        keypad={"1": "Confirm"},
        **fields,
    )
    provider = harness.running.providers.get("intron")
    return await harness.running.workflows.create(provider, draft, actor="U1")


def text_of(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response.text
    body = response.json()
    return body.get("text", "") + json.dumps(body.get("blocks", []), ensure_ascii=False)


async def command(harness: Harness, text: str, **kw: Any) -> str:
    assert harness.slack is not None
    response = await harness.slack.command(text, **kw)
    assert response.status_code == 200, response.text
    return text_of(response)


def clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")


def slack_date(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^"


def called(sandbox: Sandbox) -> dict[str, int]:
    return dict(sandbox.state.numbers_called())


def request_in(harness: Harness, said: str):
    [record] = [r for r in harness.store.requests.recent(50) if r.id in said and r.part == 1]
    return record


def local_now(zone: str) -> datetime:
    return datetime.now(ZoneInfo(zone))


def seconds_of_day(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def next_eight(zone: str, now: datetime) -> datetime:
    """The next 08:00 in `zone` after `now`."""
    local = now.astimezone(ZoneInfo(zone))
    eight = local.replace(hour=8, minute=0, second=0, microsecond=0)
    if eight <= local:
        eight = (local + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    return eight.astimezone(UTC)


# ---------------------------------------------------------------- calling hours


async def test_default_hours_one_number_goes_now_the_other_waits_for_8_local(
    make_harness, sandbox: Sandbox
) -> None:
    harness = await make_harness(calling_hours="08:00-21:00")
    inside = [
        n
        for n, z in ONE_ZONE.items()
        if 8 * 3600 + 300 < seconds_of_day(local_now(z)) < 21 * 3600 - 300
    ]
    outside = [
        n
        for n, z in ONE_ZONE.items()
        if not 8 * 3600 - 300 < seconds_of_day(local_now(z)) < 21 * 3600 + 300
    ]
    assert inside and outside, "the numbers' zones should straddle the window at any moment"
    awake, asleep = inside[0], outside[0]
    wf = await workflow(harness)

    said = await command(harness, f"call {wf.id} {awake} {asleep} {VALUES}")

    opens = next_eight(ONE_ZONE[asleep], datetime.now(UTC))
    assert "accepted" in said, said
    assert "1 of 2 are outside their calling hours now and wait" in said, said
    assert slack_date(opens) in said and ONE_ZONE[asleep] in said, said
    first = request_in(harness, said)
    parts = harness.store.requests.parts(first.id)
    assert [p.recipient_count for p in parts] == [1, 1]
    waiting = parts[1]
    assert waiting.status == RequestStatus.SCHEDULED
    assert datetime.fromisoformat(waiting.scheduled_at) == opens
    assert [c.phone_number for c in harness.store.requests.calls(waiting.id)] == [asleep]
    await harness.wait_until(lambda: called(sandbox).get(awake) == 1)
    await harness.settled()
    assert asleep not in called(sandbox)
    # Its own channel message says it waits for calling hours, until when.
    await harness.parent_ts(waiting.id)
    [shown, *_] = [
        m
        for m in harness.fake.messages("C1") + harness.fake.calls("chat.update")
        if waiting.id in m.all_text() and not m.params.get("thread_ts")
    ]
    assert "outside their calling hours wait until" in shown.all_text(), shown.all_text()
    assert slack_date(opens) in shown.all_text()
    assert_valid_blocks(shown.params["blocks"])


async def test_a_waiting_call_is_dialled_once_when_its_window_opens(
    harness: Harness, sandbox: Sandbox
) -> None:
    # Whole seconds (the window is given to the second); time to make the workflow first.
    opens = (datetime.now(LAGOS) + timedelta(seconds=6)).replace(microsecond=0)
    wf = await workflow(
        harness, calling_hours=f"{clock(opens)}-{clock(opens + timedelta(hours=2))}"
    )
    number = NUMBER.format(1)  # Lagos

    said = await command(harness, f"call {wf.id} {number} {VALUES}")

    assert "scheduled" in said and "1 of 1 are outside their calling hours" in said, said
    assert slack_date(opens) in said, said
    record = request_in(harness, said)
    assert record.status == RequestStatus.SCHEDULED
    await harness.restart()  # while it waits: it is kept, and still dialled once, on time
    assert called(sandbox) == {}
    assert time.time() < opens.timestamp(), "the restart took longer than the wait"
    await harness.wait_until(lambda: called(sandbox).get(number), timeout=10)
    dialled = time.time()
    assert opens.timestamp() - 0.1 <= dialled, "dialled before its window"
    assert dialled <= opens.timestamp() + 2.5, dialled - opens.timestamp()
    await harness.wait_until(
        lambda: harness.store.requests.get(record.id).status == RequestStatus.COMPLETED
    )
    await harness.restart()
    await harness.settled()
    assert called(sandbox) == {number: 1}


async def test_a_waiting_call_can_be_cancelled_and_is_never_dialled(
    harness: Harness, sandbox: Sandbox
) -> None:
    opens = (datetime.now(LAGOS) + timedelta(seconds=4)).replace(microsecond=0)
    wf = await workflow(
        harness, calling_hours=f"{clock(opens)}-{clock(opens + timedelta(hours=1))}"
    )
    said = await command(harness, f"call {wf.id} {NUMBER.format(3)} {VALUES}")
    assert "1 of 1 are outside their calling hours" in said, said
    record = request_in(harness, said)
    assert record.status == RequestStatus.SCHEDULED

    answer = await command(harness, f"cancel {record.id}")

    assert "cancelled" in answer.lower(), answer
    await harness.wait_until(lambda: time.time() > opens.timestamp() + 1.5, timeout=8)
    await harness.settled()
    assert called(sandbox) == {}
    assert harness.store.requests.get(record.id).status == RequestStatus.CANCELLED


async def test_a_number_in_several_zones_waits_for_the_hours_valid_in_all_of_them(
    harness: Harness, sandbox: Sandbox
) -> None:
    """An Australian mobile may be anywhere from the Cocos Islands to Lord Howe: it is
    called only when the window holds in every one of those zones; a Sydney landline
    with the same workflow is called now."""
    names = phone_zones.time_zones_for_number(parse_number(AUSTRALIAN_MOBILE))
    now = datetime.now(UTC)
    offsets = {name: now.astimezone(ZoneInfo(name)).utcoffset() for name in names}
    east = max(offsets, key=offsets.get)
    spread = max(offsets.values()) - min(offsets.values())
    assert spread > timedelta(hours=2)
    # The window: from an hour ago to six hours from now, on the easternmost clock.
    start = now.astimezone(ZoneInfo(east)) - timedelta(hours=1)
    end = start + timedelta(hours=7)
    wf = await workflow(harness, calling_hours=f"{clock(start)}-{clock(end)}")
    landline = "+61212345671"  # Sydney only

    said = await command(harness, f"call {wf.id} {landline} {AUSTRALIAN_MOBILE} {VALUES}")

    # It opens once the westernmost zone's clock reaches the start too.
    expected = (start.replace(microsecond=0) + spread).astimezone(UTC)
    assert "1 of 2 are outside their calling hours" in said, said
    assert slack_date(expected) in said, (said, expected)
    assert f"all of the {len(set(names))} time zones" in said, said
    await harness.wait_until(lambda: called(sandbox).get(landline) == 1)
    await harness.settled()
    assert AUSTRALIAN_MOBILE not in called(sandbox)


async def test_urgent_escalations_ignore_calling_hours_other_calls_wait(
    harness: Harness, sandbox: Sandbox
) -> None:
    later = datetime.now(LAGOS) + timedelta(hours=1)
    wf = await workflow(
        harness, calling_hours=f"{clock(later)}-{clock(later + timedelta(hours=1))}"
    )
    service = harness.running.service

    def order(number: str, **kw: Any) -> CallOrder:
        return CallOrder(
            workflow=wf.id,
            recipients=[Recipient(number, {"name": "Ada", "date": "Monday"})],
            voice=None,
            requested_by="U1",
            channel="C1",
            **kw,
        )

    urgent, _ = service.accept(order(NUMBER.format(1), source="escalation", urgent=True))
    calm, _ = service.accept(order(NUMBER.format(2), source="escalation"))

    assert urgent.status == RequestStatus.ACCEPTED and urgent.scheduled_at is None
    assert calm.status == RequestStatus.SCHEDULED
    await harness.wait_until(lambda: called(sandbox).get(NUMBER.format(1)) == 1)
    await harness.settled()
    assert NUMBER.format(2) not in called(sandbox)


def test_a_window_never_open_in_all_zones_is_refused_saying_so(tmp_path: Path) -> None:
    from bot.store import Store

    store = Store(tmp_path / "c.db")
    consent = Consent(store)  # 08:00-21:00
    toll_free = "+18005550123"  # any of +1's zones, Guam to Pago Pago: 21 hours apart
    rules = Consent(store, hours=CallingHours.parse("08:00-12:00"))
    with pytest.raises(NoCallingHours) as refused:
        rules.next_open(toll_free, None, datetime.now(UTC))
    assert "+1•••••0123" in str(refused.value) and "calling hours" in str(refused.value)
    # The default window does hold somewhere in all of them: 22:00-00:30 UTC.
    start, end, words = consent.window(toll_free, None)
    assert (start.hour, start.minute, end.hour, end.minute) == (22, 0, 0, 30)
    assert "42 time zones" in words
    store.close()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("8-21", "HH:MM-HH:MM"),
        ("08:00-25:00", "not a time of day"),
        ("09:00-09:00", "00:00-24:00"),
        ("24:00-08:00", "cannot start at 24:00"),
    ],
)
def test_calling_hours_that_are_not_a_window_say_what_would_be(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CallingHours.parse(text)


def test_calling_hours_across_midnight_and_to_the_second() -> None:
    night = CallingHours.parse("21:00 - 02:00")
    start, end = night.spans(datetime(2026, 6, 1).date(), ZoneInfo("Europe/London"))
    assert (start.hour, end.hour, (end - start).total_seconds()) == (20, 1, 5 * 3600)
    assert str(CallingHours.parse("08:00:30\u201321:00")) == "08:00:30-21:00"


# ---------------------------------------------------------------- the opt-out list


async def test_an_opted_out_number_is_refused_naming_it_and_only_admins_remove_it(
    make_harness, sandbox: Sandbox
) -> None:
    harness = await make_harness(admin_user_ids=["UADMIN"])
    wf = await workflow(harness)
    number = NUMBER.format(1)
    masked = phones.mask(number)

    added = await command(harness, f"optout add {number}", user_id="U2")
    assert "put on the opt-out list" in added and masked in added and number not in added

    said = await command(harness, f"call {wf.id} {number} {NUMBER.format(2)} {VALUES}")
    assert "could not be placed" in said and "Nothing was sent" in said, said
    assert masked in said and "opt-out list" in said and "admin takes it off" in said, said
    assert NUMBER.format(2) not in said  # the other number is fine: not named
    assert harness.store.requests.recent(5) == []

    listed = await command(harness, "optout list")
    assert masked in listed and number not in listed and "<@U2>" in listed, listed

    refused = await command(harness, f"optout remove {number}", user_id="U2")
    assert "Only admins" in refused and harness.running.service.consent.is_opted_out(number)
    removed = await command(harness, f"optout remove {number}", user_id="UADMIN")
    assert "taken off the opt-out list" in removed and masked in removed
    assert not harness.running.service.consent.is_opted_out(number)

    again = await command(harness, f"call {wf.id} {number} {VALUES}")
    assert "accepted" in again, again
    await harness.wait_until(lambda: called(sandbox).get(number) == 1)
    await harness.settled()


async def test_optout_with_bad_numbers_changes_nothing_and_names_them(harness: Harness) -> None:
    said = await command(harness, f"optout add {NUMBER.format(1)} 12345 +999")
    assert "Nothing was changed" in said and "'12345'" in said and "'+999'" in said, said
    assert harness.store.consent.count() == 0
    usage = await command(harness, "optout frobnicate")
    assert "not an opt-out command" in usage and "optout add" in usage


async def test_opted_out_after_acceptance_is_not_called_and_shown_as_not_called(
    harness: Harness, sandbox: Sandbox
) -> None:
    wf = await workflow(harness)
    stopped, kept = NUMBER.format(1), NUMBER.format(2)
    at = datetime.fromtimestamp(int(time.time()) + 3, UTC).isoformat(timespec="seconds")
    said = await command(harness, f"call {wf.id} {stopped} {kept} {VALUES} at={at}")
    assert "scheduled" in said, said
    record = request_in(harness, said)
    alone = request_in(harness, await command(harness, f"call {wf.id} {stopped} {VALUES} at={at}"))

    await command(harness, f"optout add {stopped}")

    await harness.wait_until(
        lambda: all(
            harness.store.requests.get(r.id).status == RequestStatus.COMPLETED
            for r in (record, alone)
        ),
        timeout=10,
    )
    await harness.settled()
    assert called(sandbox) == {kept: 1}
    calls = {c.phone_number: c for c in harness.store.requests.calls(record.id)}
    assert calls[stopped].provider_status == "not called: opt-out list"
    # The results in the thread say so, masked.
    ts = await harness.parent_ts(record.id)
    thread = "\n".join(m.all_text() for m in harness.fake.thread("C1", ts))
    assert f"{phones.mask(stopped)} · 🚫 not called: opt-out list" in thread, thread
    ts_alone = await harness.parent_ts(alone.id)
    assert "not called: opt-out list" in "\n".join(
        m.all_text() for m in harness.fake.thread("C1", ts_alone)
    )


async def test_pressing_9_puts_the_callee_on_the_opt_out_list(
    harness: Harness, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 60  # we send the provider's callback ourselves
    wf = await workflow(
        harness,
        press_9_to_stop=True,
        message="Hello [name], see you [date]. Press 1 to confirm, 9 to stop these calls.",
    )
    assert sandbox.state.workflows[wf.id]["response_options"] == {
        "1": "Confirm",
        "9": "Stop these calls",
    }
    number = NUMBER.format(3)
    said = await command(harness, f"call {wf.id} {number} {VALUES}")
    record = await harness.wait_until(
        lambda: (r := harness.store.requests.get(request_in(harness, said).id)).provider_ref and r
    )
    [call] = harness.store.requests.calls(record.id)
    body = {
        "request_id": record.provider_ref,
        "status": "COMPLETED",
        "stats": {"total_calls": 1, "completed_calls": 1},
        "request_calls": [
            {
                "id": "call-1",
                "status": "COMPLETED",
                "phone_number": call.phone_number,
                "call_result_duration": 12,
                "call_result_options_selected": "9",
                "user_tag_identifiers": {
                    "robocall_request_id": record.id,
                    "robocall_recipient": "1",
                },
            }
        ],
    }
    async with httpx.AsyncClient() as http:
        answer = await http.post(harness.callback_url, json=body)
    assert answer.status_code == 200, answer.text

    await harness.wait_until(lambda: harness.running.service.consent.is_opted_out(number))
    listed = await command(harness, "optout list")
    assert phones.mask(number) in listed and "pressed 9 on a call" in listed, listed
    again = await command(harness, f"call {wf.id} {number} {VALUES}")
    assert "opt-out list" in again and "pressed 9" in again, again
    await harness.settled()


async def test_press_9_needs_the_message_to_say_so(harness: Harness) -> None:
    from bot.core.workflows import InvalidWorkflow

    with pytest.raises(InvalidWorkflow) as refused:
        await workflow(harness, press_9_to_stop=True)
    assert "Press 9 to stop these calls" in refused.value.problems["message"]
    with pytest.raises(InvalidWorkflow) as bad:
        await workflow(harness, calling_hours="late")
    assert "'late'" in bad.value.problems["calling_hours"]


# ---------------------------------------------------------------- the frequency cap


async def test_a_fourth_call_in_24_hours_is_refused_saying_when_escalations_are_exempt(
    make_harness, sandbox: Sandbox
) -> None:
    harness = await make_harness(calls_per_day_cap=3)
    wf = await workflow(harness)
    number = NUMBER.format(4)
    firsts = []
    for _ in range(3):
        said = await command(harness, f"call {wf.id} {number} {VALUES}")
        assert "accepted" in said, said
        firsts.append(request_in(harness, said))

    fourth = await command(harness, f"call {wf.id} {number} {VALUES}")

    allowed = datetime.fromisoformat(firsts[0].created_at) + timedelta(hours=24)
    assert "frequency cap" in fourth and "at most 3" in fourth, fourth
    assert phones.mask(number) in fourth and "has had 3 calls in the last 24 hours" in fourth
    assert f"can be called again from {allowed:%Y-%m-%d %H:%M} UTC" in fourth, fourth
    assert len(harness.store.requests.recent(10)) == 3

    escalation, _ = harness.running.service.accept(
        CallOrder(
            workflow=wf.id,
            recipients=[Recipient(number, {"name": "Ada", "date": "Monday"})],
            voice=None,
            requested_by="U1",
            channel="C1",
            source="escalation",
        )
    )
    assert escalation.status == RequestStatus.ACCEPTED
    await harness.wait_until(lambda: called(sandbox).get(number) == 4, timeout=10)
    await harness.settled()


# ---------------------------------------------------------------- the workflow's two fields


def workflow_form(message: str, *, hours: str | None, stop: bool, options: str = "1=Confirm"):
    return {
        BlockId.WF_NAME: {ActionId.WF_NAME_INPUT: plain_text_value("Careful reminder")},
        BlockId.WF_DESCRIPTION: {ActionId.WF_DESCRIPTION_INPUT: plain_text_value(None)},
        BlockId.WF_TYPE: {ActionId.WF_TYPE_SELECT: radio_value("robocall")},
        BlockId.WF_MESSAGE: {ActionId.WF_MESSAGE_INPUT: plain_text_value(message)},
        BlockId.WF_REPLY: {ActionId.WF_REPLY_TOGGLE: checkboxes_value(["reply"])},
        BlockId.WF_OPTIONS: {ActionId.WF_OPTIONS_INPUT: plain_text_value(options)},
        BlockId.WF_HOURS: {ActionId.WF_HOURS_INPUT: plain_text_value(hours)},
        BlockId.WF_STOP: {ActionId.WF_STOP_TOGGLE: checkboxes_value(["on"] if stop else [])},
    }


async def test_the_workflow_modal_sets_calling_hours_and_press_9(
    harness: Harness, sandbox: Sandbox
) -> None:
    assert harness.slack is not None
    fake = harness.fake
    await harness.slack.action(
        ActionId.WORKFLOW_NEW, "new", channel_id="C1", message_ts="1700000000.000001"
    )
    [opened] = await fake.wait_for(lambda f: f.calls("views.open"))
    modal = opened.params["view"]
    assert_valid_view(modal)
    blocks = {b.get("block_id"): b for b in modal["blocks"]}
    assert "08:00-21:00" in json.dumps(blocks[BlockId.WF_HOURS])
    assert "Press 9 to stop these calls" in json.dumps(blocks[BlockId.WF_STOP])

    async def save(values: dict) -> dict:
        answer = await harness.slack.submit_view(
            CallbackId.WORKFLOW_EDIT, values, private_metadata=modal["private_metadata"]
        )
        return answer.json() if answer.content else {}

    wrong = await save(workflow_form("Hello [name]. Press 1.", hours="late", stop=True))
    assert wrong["response_action"] == "errors"
    assert "'late'" in wrong["errors"][BlockId.WF_HOURS]
    assert "Press 9 to stop these calls" in wrong["errors"][BlockId.WF_MESSAGE]
    assert not sandbox.state.workflows

    message = "Hello [name]. Press 1 to confirm, 9 to stop these calls."
    saved = await save(workflow_form(message, hours="07:30-20:00", stop=True))
    assert saved["response_action"] == "update"
    await harness.wait_until(lambda: sandbox.state.workflows)
    [created] = sandbox.state.workflows.values()
    assert created["response_options"] == {"1": "Confirm", "9": "Stop these calls"}
    kept = await harness.wait_until(lambda: harness.running.workflows.get(created["id"]))
    assert (kept.calling_hours, kept.press_9_to_stop) == ("07:30-20:00", True)

    # Intron keeps neither: a refresh from its list keeps ours, and Edit shows them.
    await harness.running.workflows.refresh()
    again = harness.running.workflows.get(created["id"])
    assert (again.calling_hours, again.press_9_to_stop) == ("07:30-20:00", True)
    consent = harness.running.service.consent
    assert str(consent.hours_for(again)) == "07:30-20:00"
    await harness.slack.action(
        ActionId.WORKFLOW_EDIT, created["id"], channel_id="C1", message_ts="1700000000.000001"
    )
    edit = (await fake.wait_for(lambda f: f.calls("views.open")[1:]))[0].params["view"]
    shown = {b.get("block_id"): b for b in edit["blocks"]}
    assert shown[BlockId.WF_HOURS]["element"]["initial_value"] == "07:30-20:00"
    assert shown[BlockId.WF_STOP]["element"]["initial_options"][0]["value"] == "on"


def test_workflows_file_takes_calling_hours_and_press_9(tmp_path: Path) -> None:
    from bot.input.workflows_file import load_workflows_file

    path = tmp_path / "workflows.yaml"
    path.write_text(
        """
workflows:
  - name: Night shift
    provider: intron-direct
    message: "Hello {{name}}. Press 1 to confirm, 9 to stop these calls."
    keypad: {"1": "Confirm"}
    calling_hours: "20:00-23:30"
    press_9_to_stop: true
  - name: Bad hours
    provider: intron-direct
    message: "Hello"
    calling_hours: "all day"
  - name: Silent nine
    provider: intron-direct
    message: "Hello {{name}}."
    press_9_to_stop: true
""",
        encoding="utf-8",
    )
    workflows, refusals = load_workflows_file(path, ["intron-direct"])
    [night] = workflows
    assert (night.calling_hours, night.press_9_to_stop) == ("20:00-23:30", True)
    assert night.keypad == {"1": "Confirm", "9": "Stop these calls"}
    text = "\n".join(refusals)
    assert "workflow 'Bad hours': calling_hours" in text and "'all day'" in text, text
    assert "workflow 'Silent nine': message" in text and "Press 9" in text, text


async def test_the_cap_is_checked_again_before_the_dial(make_harness, sandbox: Sandbox) -> None:
    """A scheduled call whose number reached the cap in the meantime is not called."""
    harness = await make_harness(calls_per_day_cap=1)
    wf = await workflow(harness)
    number = NUMBER.format(5)
    at = datetime.fromtimestamp(int(time.time()) + 3, UTC).isoformat(timespec="seconds")
    later = request_in(harness, await command(harness, f"call {wf.id} {number} {VALUES} at={at}"))
    now = await command(harness, f"call {wf.id} {number} {VALUES}")
    assert "accepted" in now, now  # before the scheduled one: within the cap then

    await harness.wait_until(
        lambda: harness.store.requests.get(later.id).status == RequestStatus.COMPLETED, timeout=10
    )
    await harness.settled()
    assert called(sandbox) == {number: 1}
    [call] = harness.store.requests.calls(later.id)
    assert call.provider_status == "not called: frequency cap"
    trail = [r for r in harness.store.audit.trail() if r["action"] == "request.not_called"]
    assert "can be called again from" in json.dumps(trail), trail


async def test_a_scheduled_call_due_after_its_hours_waits_for_the_next_window(
    harness: Harness, sandbox: Sandbox
) -> None:
    """The worker was down past the window's end: the call is not dialled at night, it
    waits for the next opening, and its message says until when."""
    now = datetime.now(LAGOS).replace(microsecond=0)
    start, end = now - timedelta(hours=1), now + timedelta(seconds=6)
    wf = await workflow(harness, calling_hours=f"{clock(start)}-{clock(end)}")
    at = (now + timedelta(seconds=3)).astimezone(UTC).isoformat(timespec="seconds")
    said = await command(harness, f"call {wf.id} {NUMBER.format(1)} {VALUES} at={at}")
    assert "scheduled" in said and "outside their calling hours" not in said, said
    record = request_in(harness, said)
    await harness.stop_worker()
    await harness.wait_until(lambda: time.time() > end.timestamp() + 0.5, timeout=10)

    await harness.start_worker()

    tomorrow = (start + timedelta(days=1)).astimezone(UTC)
    await harness.wait_until(
        lambda: (
            harness.store.requests.get(record.id).scheduled_at
            == tomorrow.isoformat(timespec="seconds")
        )
    )
    await harness.settled()
    assert called(sandbox) == {}
    assert harness.store.requests.get(record.id).status == RequestStatus.SCHEDULED
    await harness.wait_until(
        lambda: [
            m
            for m in harness.fake.calls("chat.update")
            if record.id in m.all_text() and slack_date(tomorrow) in m.all_text()
        ]
    )
