"""The buttons on a request's parent message, end to end: View calls, Call again (those
who did not answer), Try again (a failed request) and Check with the provider ("outcome
unknown"). Signed clicks in, the fake Slack records the answers, the sandbox plays Intron
(a number's last digit decides its call: 1-7 answered, 0 and 8 no answer, 9 failed)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.models import RequestRecord, RequestStatus
from bot.core.requests import RECONCILE, CallOrder
from bot.input.recipients import Recipient
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.providers.intron.sandbox import Fault
from bot.slack.calls import calls_view
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import modal_view

REMINDER = WorkflowCreate(
    name="Appointment reminder",
    message="Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)
VALUES = {"name": "Ada", "date": "Monday"}
CLICKS = itertools.count(1)


@pytest.fixture
async def reminder(harness: Harness) -> Workflow:
    return await harness.create_workflow(REMINDER)


def numbers(*digits: int) -> list[str]:
    return [NUMBER.format(d) for d in digits]


def many(count: int) -> list[str]:
    """`count` distinct Nigerian mobile numbers, the last digit cycling 0-9."""
    return [f"+23480312345{i:02d}" for i in range(count)]


def accept(harness: Harness, workflow: Workflow, phones: list[str]) -> RequestRecord:
    """A request as `/robocall call` stores it (the core's own door: the test is about
    the buttons, not the command)."""
    record, _ = harness.running.service.accept(
        CallOrder(
            workflow=workflow.id,
            recipients=[Recipient(phone, VALUES) for phone in phones],
            voice="igbo/female",
            requested_by="U1",
            channel="C1",
            source="test",
        )
    )
    return record


async def ended(harness: Harness, request_id: str, status: RequestStatus) -> RequestRecord:
    return await harness.wait_until(
        lambda: (r := harness.store.requests.get(request_id)) and r.status == status and r
    )


async def click(harness: Harness, action: str, record: RequestRecord, user: str = "U1") -> str:
    """Click `action` on the request's parent message; the response id its answer goes to."""
    assert harness.slack is not None
    ts = await harness.wait_until(lambda: harness.slack_store.message(record.id).ts)
    response_id = f"click-{next(CLICKS)}"  # its own, so that clicks may go at once
    response = await harness.slack.action(
        action,
        record.id,
        channel_id=record.channel,
        message_ts=ts,
        user_id=user,
        response_url=harness.fake.response_url(response_id),
    )
    assert response.status_code == 200, response.text
    return response_id


async def answer(harness: Harness, response_id: str) -> str:
    """What the clicker was told: ephemeral, and never replacing the parent message."""
    [said] = await harness.fake.wait_for(lambda f: f.responses(response_id))
    assert said.params["response_type"] == "ephemeral"
    assert said.params["replace_original"] is False
    return said.all_text()


def new_requests(harness: Harness, *old: RequestRecord) -> list[RequestRecord]:
    known = {r.id for r in old}
    return [r for r in harness.store.requests.recent(50) if r.id not in known]


# ---------------------------------------------------------------- Call again


async def test_call_again_calls_only_those_who_did_not_answer_once(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    first = accept(harness, reminder, numbers(1, 0, 9, 8, 3))
    await ended(harness, first.id, RequestStatus.COMPLETED)

    clicked = await click(harness, ActionId.REQUEST_CALL_AGAIN, first)
    said = await answer(harness, clicked)
    double, other = await asyncio.gather(  # a double click, and a colleague at once
        click(harness, ActionId.REQUEST_CALL_AGAIN, first),
        click(harness, ActionId.REQUEST_CALL_AGAIN, first, user="U2"),
    )
    [again] = new_requests(harness, first)
    assert f"Calling the 3 recipients who did not answer of request `{first.id}` again" in said
    assert f"new request `{again.id}`" in said and "<#C1>" in said
    for response in (double, other):
        repeat = await answer(harness, response)
        assert f"already called again, as request `{again.id}`" in repeat
        assert "Nothing new was sent" in repeat

    await ended(harness, again.id, RequestStatus.COMPLETED)
    await harness.settled()
    assert sandbox.state.numbers_called() == {
        NUMBER.format(1): 1,
        NUMBER.format(3): 1,
        NUMBER.format(0): 2,
        NUMBER.format(9): 2,
        NUMBER.format(8): 2,
    }
    calls = harness.store.requests.calls(again.id)
    assert [c.phone_number for c in calls] == numbers(0, 9, 8)
    assert all(c.variables == VALUES for c in calls)
    assert (again.workflow_id, again.voice, again.channel) == (reminder.id, "igbo/female", "C1")
    assert again.requested_by == "U1"
    assert len(new_requests(harness, first)) == 1
    # The new request has its own parent message in the channel, like any other.
    assert await harness.wait_until(lambda: harness.slack_store.message(again.id).ts)


async def test_call_again_refuses_when_everyone_answered(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    first = accept(harness, reminder, numbers(1, 3))
    await ended(harness, first.id, RequestStatus.COMPLETED)
    await harness.settled()
    before = sandbox.state.numbers_called()
    said = await answer(harness, await click(harness, ActionId.REQUEST_CALL_AGAIN, first))
    assert f"Request `{first.id}` was not called again" in said
    assert "every call was answered, so nobody is left to call" in said
    assert "Nothing was sent" in said
    await harness.settled()
    assert sandbox.state.numbers_called() == before
    assert new_requests(harness, first) == []


# ---------------------------------------------------------------- Try again


async def test_try_again_sends_a_failed_request_once_the_fault_is_gone(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.faults.append(Fault("place_calls", status=401))
    first = accept(harness, reminder, numbers(1, 0))
    await ended(harness, first.id, RequestStatus.FAILED)
    await harness.settled()
    assert sandbox.state.numbers_called() == {}

    # Call again is for completed requests: refused, nothing sent.
    refused = await answer(harness, await click(harness, ActionId.REQUEST_CALL_AGAIN, first))
    assert f"Request `{first.id}` was not called again" in refused
    assert "this request is failed (nobody was called); only a completed one" in refused
    assert "use Try again" in refused
    assert new_requests(harness, first) == []

    clicks = await asyncio.gather(  # a double click: which one lands first is Slack's
        click(harness, ActionId.REQUEST_TRY_AGAIN, first),
        click(harness, ActionId.REQUEST_TRY_AGAIN, first),
    )
    answers = [await answer(harness, response) for response in clicks]
    said, repeat = sorted(answers, key=lambda text: "already" in text)
    [again] = new_requests(harness, first)
    assert f"Calling all 2 recipients of request `{first.id}` again" in said
    assert f"new request `{again.id}`" in said
    assert f"already sent again, as request `{again.id}`" in repeat

    await ended(harness, again.id, RequestStatus.COMPLETED)
    await harness.settled()
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1, NUMBER.format(0): 1}
    assert sandbox.state.requests_seen["place_calls"] == 2  # the 401, then this one
    assert [c.phone_number for c in harness.store.requests.calls(again.id)] == numbers(1, 0)


# ---------------------------------------------------------------- Check with the provider


async def test_check_now_settles_an_unknown_request_at_once(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.faults.append(Fault("place_calls", status=500))  # nothing placed
    first = accept(harness, reminder, numbers(1))
    await ended(harness, first.id, RequestStatus.UNKNOWN)
    await harness.settled()
    [timer] = harness.store.jobs.pending(RECONCILE)
    assert timer.run_at > time.time() + 500  # RECONCILE_AFTER: ten minutes away

    # Outcome unknown is not failed: Try again is refused, nothing is placed.
    refused = await answer(harness, await click(harness, ActionId.REQUEST_TRY_AGAIN, first))
    assert f"Request `{first.id}` was not sent again" in refused
    assert "outcome is unknown" in refused and "never resent blindly" in refused
    assert "only a failed one can be sent again" in refused
    assert sandbox.state.numbers_called() == {}
    assert new_requests(harness, first) == []

    said = await answer(harness, await click(harness, ActionId.REQUEST_CHECK_NOW, first))
    assert f"Asking Intron now about request `{first.id}`" in said
    assert "the thread will say what it finds" in said
    ts = await harness.parent_ts(first.id)
    found = await harness.fake.wait_for(
        lambda f: [m for m in f.thread("C1", ts) if "Checked with Intron" in m.all_text()]
    )
    assert "nobody was called" in found[0].all_text()
    checked = await ended(harness, first.id, RequestStatus.FAILED)
    assert harness.store.jobs.pending(RECONCILE) == []  # the timer was the job that ran
    trail = [(row["actor"], row["action"]) for row in harness.store.audit.trail()]
    assert ("U1", "request.check_now") in trail

    # Now it is failed, and safe to send again.
    await answer(harness, await click(harness, ActionId.REQUEST_TRY_AGAIN, checked))
    [again] = new_requests(harness, first)
    await ended(harness, again.id, RequestStatus.COMPLETED)
    await harness.settled()
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1}


async def test_check_now_is_refused_for_a_finished_request_and_from_home(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    first = accept(harness, reminder, numbers(1))
    await ended(harness, first.id, RequestStatus.COMPLETED)
    await harness.settled()
    said = await answer(harness, await click(harness, ActionId.REQUEST_CHECK_NOW, first))
    assert f"Request `{first.id}` was not checked: this request is completed" in said
    assert "Nothing was changed" in said
    # From the Home tab there is no response_url: the clicker gets a small modal.
    assert harness.slack is not None
    home = modal_view("", view_type="home", view_id="VHOME")
    await harness.slack.action(ActionId.REQUEST_CHECK_NOW, first.id, view=home)
    opened = await harness.fake.wait_for(lambda f: f.calls("views.open"))
    assert "was not checked: this request is completed" in opened[-1].all_text()
    assert_valid_view(opened[-1].params["view"])
    await harness.settled()
    # Its placing's reconcile timer is left where it was (it will find nothing to do).
    [timer] = harness.store.jobs.pending(RECONCILE)
    assert timer.run_at > time.time() + 500
    assert sandbox.state.requests_seen.get("list_workflow_calls", 0) == 0


# ---------------------------------------------------------------- View calls


def call_lines(view: dict) -> list[str]:
    return [
        line
        for block in view["blocks"]
        if block["type"] == "section"
        for line in block["text"]["text"].split("\n")
        if "•••••" in line
    ]


def page_buttons(view: dict) -> list[str]:
    return [
        element["value"]
        for block in view["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == ActionId.REQUEST_CALLS_PAGE
    ]


async def in_modal(harness: Harness, view: dict, action: str, **kw) -> dict:
    """Click `action` inside the modal `view` (as the fake last showed it); the view the
    app answers with."""
    assert harness.slack is not None
    shown = modal_view(
        CallbackId.REQUEST_CALLS, private_metadata=view["private_metadata"], view_id="VCALLS"
    )
    seen = len(harness.fake.calls("views.update"))
    response = await harness.slack.action(action, view=shown, **kw)
    assert response.status_code == 200
    updated = await harness.fake.wait_for(
        lambda f: len(f.calls("views.update")) > seen and f.calls("views.update")
    )
    assert updated[-1].params["view_id"] == "VCALLS"
    new_view = updated[-1].params["view"]
    assert_valid_view(new_view)
    return new_view


async def test_view_calls_pages_filters_and_masks(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    phones = many(45)
    first = accept(harness, reminder, phones)
    await ended(harness, first.id, RequestStatus.COMPLETED)
    await harness.settled()

    await click(harness, ActionId.REQUEST_VIEW_CALLS, first)
    [opened] = await harness.fake.wait_for(lambda f: f.calls("views.open"))
    view = opened.params["view"]
    assert_valid_view(view)
    assert view["callback_id"] == CallbackId.REQUEST_CALLS
    text = json.dumps(view, ensure_ascii=False)
    assert "Appointment reminder" in text and first.id in text
    assert not any(phone in text for phone in phones)  # masked, every one
    lines = call_lines(view)
    assert len(lines) == 20
    assert lines[0] == "+234•••••4500 · 📵 no answer"
    assert lines[1].startswith("+234•••••4501 · ✅ answered · ")
    assert lines[1].endswith(" s · pressed 1 Confirm")
    assert lines[2].endswith(" s · pressed 2 Cancel")
    assert lines[8] == "+234•••••4508 · 📵 no answer"
    assert lines[9] == "+234•••••4509 · ❌ failed"
    assert "Page 1 of 3" in text and "calls 1 to 20 of 45" in text
    assert "32 answered · 9 no answer" in text
    assert page_buttons(view) == ["2"]

    second = await in_modal(
        harness, view, ActionId.REQUEST_CALLS_PAGE, value="2", block_id=calls_view.PAGER_BLOCK
    )
    assert [line.split(" · ")[0] for line in call_lines(second)] == [
        f"+234•••••45{i:02d}" for i in range(20, 40)
    ]
    assert page_buttons(second) == ["1", "3"]
    third = await in_modal(
        harness, second, ActionId.REQUEST_CALLS_PAGE, value="3", block_id=calls_view.PAGER_BLOCK
    )
    assert len(call_lines(third)) == 5 and page_buttons(third) == ["2"]
    assert "Page 3 of 3" in json.dumps(third, ensure_ascii=False)

    # The filter: the first page of what matches, whatever page was shown.
    no_answer = await in_modal(
        harness,
        third,
        ActionId.REQUEST_CALLS_FILTER,
        block_id=BlockId.REQUEST_CALLS_FILTER,
        selected_option="no_answer",
        action_type="static_select",
    )
    lines = call_lines(no_answer)
    assert [line.split(" · ")[0][-2:] for line in lines] == [
        f"{i:02d}" for i in range(45) if i % 10 in (0, 8)
    ]
    assert all(line.endswith("📵 no answer") for line in lines)
    assert json.loads(no_answer["private_metadata"])["outcome"] == "no_answer"
    assert page_buttons(no_answer) == []
    assert "Page 1 of 1 · calls 1 to 9 of 9 · no answer" in json.dumps(
        no_answer, ensure_ascii=False
    )
    failed = await in_modal(
        harness,
        no_answer,
        ActionId.REQUEST_CALLS_FILTER,
        block_id=BlockId.REQUEST_CALLS_FILTER,
        selected_option="failed",
        action_type="static_select",
    )
    assert len(call_lines(failed)) == 4
    waiting = await in_modal(
        harness,
        failed,
        ActionId.REQUEST_CALLS_FILTER,
        block_id=BlockId.REQUEST_CALLS_FILTER,
        selected_option="waiting",
        action_type="static_select",
    )
    assert call_lines(waiting) == []
    assert "No call is *Waiting*." in json.dumps(waiting)
    await harness.settled()
    assert sandbox.state.numbers_called() == {phone: 1 for phone in phones}  # only viewed


async def test_a_part_shows_its_own_calls_and_is_called_again_alone(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = harness.running.providers.get("intron")
    monkeypatch.setattr(provider, "capabilities", replace(provider.capabilities, max_batch=20))
    phones = many(45)
    first = accept(harness, reminder, phones)
    parts = harness.store.requests.parts(first.id)
    assert [p.recipient_count for p in parts] == [20, 20, 5]
    for part in parts:
        await ended(harness, part.id, RequestStatus.COMPLETED)
    await harness.settled()
    middle = parts[1]

    await click(harness, ActionId.REQUEST_VIEW_CALLS, middle)
    [opened] = await harness.fake.wait_for(lambda f: f.calls("views.open"))
    view = opened.params["view"]
    assert_valid_view(view)
    text = json.dumps(view, ensure_ascii=False)
    assert "part 2 of 3" in text and "of 45 recipients in all" in text
    assert [line.split(" · ")[0] for line in call_lines(view)] == [
        f"+234•••••45{i:02d}" for i in range(20, 40)
    ]
    assert page_buttons(view) == []

    said = await answer(harness, await click(harness, ActionId.REQUEST_CALL_AGAIN, middle))
    assert "Calling the 6 recipients who did not answer" in said
    [again] = new_requests(harness, *parts)
    assert [c.phone_number for c in harness.store.requests.calls(again.id)] == [
        phones[i] for i in range(20, 40) if i % 10 in (0, 8, 9)
    ]
    await ended(harness, again.id, RequestStatus.COMPLETED)


def test_the_modal_escapes_what_others_wrote_and_names_the_part() -> None:
    from bot.core.models import CallRecord, Stats
    from bot.providers.base import CallOutcome
    from bot.providers.base import Workflow as CoreWorkflow

    record = RequestRecord(
        id="rq-000000000002",
        created_at="2024-05-01T10:00:00+00:00",
        updated_at="2024-05-01T10:00:00+00:00",
        status=RequestStatus.COMPLETED,
        provider="intron",
        workflow_name="<!channel> \u202eReminder",
        requested_by="U1",
        source="test",
        recipient_count=1,
        part_of="rq-000000000001",
        part=2,
        parts=3,
    )
    workflow = CoreWorkflow(
        id="wf", provider="intron", name="x", keypad={"1": "<@U999> <https://evil|Confirm>"}
    )
    call = CallRecord(
        request_id=record.id,
        position=1,
        phone_number="+2348031234561",
        variables={},
        outcome=CallOutcome.ANSWERED,
        duration=27,
        key_pressed="1",
    )
    view = calls_view.calls_modal(
        calls_view.CallsPage(request_id=record.id),
        record,
        [call],
        1,
        stats=Stats(total=1, answered=1),
        workflow=workflow,
        whole=2001,
        sandbox=True,
    ).to_dict()
    assert_valid_view(view)
    text = json.dumps(view, ensure_ascii=False)
    assert "part 2 of 3" in text and "2,001 recipients in all" in text
    assert "<!channel>" not in text and "<@U999>" not in text and "<https" not in text
    assert "\u202e" not in text and "+2348031234561" not in text
    assert "+234•••••4561 · ✅ answered · 27 s · pressed 1 &lt;@U999&gt;" in text


# ---------------------------------------------------------------- who may


async def test_a_user_who_may_not_call_is_refused(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"allowed_user_ids": ["U1"]})
    await app.start()
    try:
        workflow = await app.create_workflow(REMINDER)
        first = accept(app, workflow, numbers(0, 1))
        await ended(app, first.id, RequestStatus.COMPLETED)
        await app.settled()
        before = sandbox.state.numbers_called()
        said = await answer(app, await click(app, ActionId.REQUEST_CALL_AGAIN, first, user="U2"))
        assert f"Request `{first.id}` was not called again" in said
        assert "not on the list of people who may place calls" in said
        assert "Nothing was sent" in said
        await app.settled()
        assert sandbox.state.numbers_called() == before
        assert new_requests(app, first) == []
    finally:
        await app.stop()


# ---------------------------------------------------------------- bringing a job forward


def test_bring_forward_moves_a_waiting_job_and_keeps_its_place(tmp_path: Path) -> None:
    from bot.core.jobs import NewJob
    from bot.store import Store

    store = Store(tmp_path / "robocall.db")
    jobs = store.jobs
    later = time.time() + 600
    payload = {"request_id": "rq-1", "round": 3, "cursor": "page-4"}
    jobs.add(NewJob(RECONCILE, payload, lane="results", dedupe="k", run_at=later))
    assert jobs.add(NewJob(RECONCILE, {"request_id": "rq-1"}, dedupe="k")) is None  # deduped
    now = time.time()
    assert jobs.bring_forward("k", now) == now
    [job] = jobs.pending()
    assert job.run_at == now and job.payload == payload  # where it had got to
    assert jobs.bring_forward("k", now + 5) == now  # never later
    assert jobs.bring_forward("nothing", now) is None
    # Running: already doing it.
    [running] = jobs.claim("results", "w1", 1, 30.0)
    assert jobs.bring_forward("k", time.time()) == now
    # Held to a time the other side asked for (Retry-After): that time stays.
    jobs.retry(running, later, "the provider's quota is spent", held=True)
    assert jobs.bring_forward("k", time.time()) == later
    store.close()
