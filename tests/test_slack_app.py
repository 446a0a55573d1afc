"""The Slack app end to end: signed requests in, the fake Slack records what comes out,
the sandbox plays Intron over a socket, SQLite is a real file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from bot.core.models import RequestStatus
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.providers.intron.sandbox import Fault
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.web.callbacks import callback_limit
from tests.conftest import NUMBER, Sandbox
from tests.harness import CALLBACK_TOKEN, Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    conversation_value,
    modal_view,
    plain_text_value,
    static_select_value,
)

REMINDER = WorkflowCreate(
    name="Appointment reminder",
    message="Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)


@pytest.fixture
async def reminder(harness: Harness) -> Workflow:
    return await harness.create_workflow(REMINDER)


def body_text(response: httpx.Response) -> str:
    """What the user sees of an ack: bolt answers a text-only ack as plain text."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response.text
    body = response.json()
    return body.get("text", "") + json.dumps(body.get("blocks", []), ensure_ascii=False)


def modal_values(
    workflow_id: str | None, recipients: str, channel: str = "C1", voice: str | None = None
) -> dict:
    return {
        BlockId.WORKFLOW: {ActionId.WORKFLOW_SELECT: static_select_value(workflow_id)},
        BlockId.VOICE: {ActionId.VOICE_SELECT: static_select_value(voice)},
        BlockId.RECIPIENTS: {ActionId.RECIPIENTS_INPUT: plain_text_value(recipients)},
        BlockId.CHANNEL: {ActionId.CHANNEL_SELECT: conversation_value(channel)},
    }


async def submit(harness: Harness, values: dict, view_id: str = "VSEND1") -> httpx.Response:
    assert harness.slack is not None
    context = json.dumps({"user_id": "U1", "channel_id": "C1"})
    return await harness.slack.submit_view(
        CallbackId.SEND_CALL, values, private_metadata=context, view_id=view_id
    )


async def command(harness: Harness, text: str, **kw) -> httpx.Response:
    assert harness.slack is not None
    response = await harness.slack.command(text, **kw)
    assert response.status_code == 200, response.text
    return response


# ---------------------------------------------------------------- simple commands


async def test_help_and_voices_are_ephemeral_and_valid(harness: Harness) -> None:
    help_answer = await command(harness, "help")
    assert "+234… name=value voice=accent/gender" in body_text(help_answer)
    assert "<workflow>" not in body_text(help_answer)  # Slack would read it as a link
    assert help_answer.json().get("response_type", "ephemeral") == "ephemeral"
    assert_valid_blocks(help_answer.json()["blocks"])
    voices = body_text(await command(harness, "voices"))
    assert "igbo/female" in voices and "Hausa" in voices and "zulu/female" in voices
    assert "Sandbox" not in voices  # a real key is configured in this harness
    unknown = body_text(await command(harness, "dance"))
    assert "`/robocall dance` is not a command" in unknown


async def test_workflows_lists_the_cache(harness: Harness, reminder: Workflow) -> None:
    text = body_text(await command(harness, "workflows"))
    assert "Appointment reminder" in text and reminder.id in text
    assert "`[name]`, `[date]`" in text


# ---------------------------------------------------------------- the modal


async def test_the_modal_opens_and_shows_the_chosen_workflow(
    harness: Harness, reminder: Workflow
) -> None:
    answer = await command(harness, "")
    assert answer.content in (b"", b"{}") or answer.json() == {}
    opened = await harness.fake.wait_for(lambda f: f.calls("views.open"))
    view = opened[0].params["view"]
    assert view["callback_id"] == CallbackId.SEND_CALL
    assert view["title"]["text"] == "Send robo call"
    assert_valid_view(view)
    [workflow_block] = [b for b in view["blocks"] if b.get("block_id") == BlockId.WORKFLOW]
    assert [o["value"] for o in workflow_block["element"]["options"]] == [reminder.id]
    [voice_block] = [b for b in view["blocks"] if b.get("block_id") == BlockId.VOICE]
    groups = voice_block["element"]["option_groups"]
    assert groups[0]["options"][0]["value"] == "default"
    assert sum(len(g["options"]) for g in groups) == 30  # 29 premium voices + the default

    assert harness.slack is not None
    shown = modal_view(
        CallbackId.SEND_CALL, private_metadata=view["private_metadata"], view_id="VOPEN1"
    )
    await harness.slack.action(
        ActionId.WORKFLOW_SELECT,
        view=shown,
        block_id=BlockId.WORKFLOW,
        selected_option=reminder.id,
        action_type="static_select",
    )
    updated = await harness.fake.wait_for(lambda f: f.calls("views.update"))
    new_view = updated[0].params["view"]
    assert_valid_view(new_view)
    info = next(b for b in new_view["blocks"] if b.get("block_id") == BlockId.WORKFLOW_INFO)
    assert "Hello [name]" in info["text"]["text"]
    assert "`[name]`, `[date]`" in info["text"]["text"]
    assert "1 = Confirm" in info["text"]["text"]


async def test_a_modal_submission_places_the_call_and_reports_results(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    recipients = (
        f"{NUMBER.format(1)} name=Ada date=Monday\n"
        f"{NUMBER.format(2)} name=Bo date=Tuesday\n"
        f"{NUMBER.format(0)} name=Cy date=Friday"
    )
    answer = await submit(
        harness, modal_values(reminder.id, recipients, channel="C9", voice="yoruba/female")
    )
    assert answer.status_code == 200 and answer.content in (b"", b"{}")

    fake = harness.fake
    parent = (await fake.wait_for(lambda f: f.messages("C9")))[0]
    assert "Appointment reminder" in parent.all_text() and "3 recipients" in parent.all_text()
    assert "Yoruba (female)" in parent.all_text() and "<@U1>" in parent.all_text()
    assert_valid_blocks(parent.params["blocks"])
    record = harness.store.requests.recent(1)[0]
    ts = await harness.wait_until(lambda: harness.slack_store.message(record.id).ts)
    results = await fake.wait_for(lambda f: f.thread("C9", ts))
    text = results[0].all_text()
    assert "answered   ▓▓▓▓▓▓▓░░░  2 (67%)" in text and "no answer  ▓▓▓░░░░░░░  1 (33%)" in text
    assert "Pressed: 1 Confirm — 1 · 2 Cancel — 1" in text
    assert "+234•••••4561 · ✅ answered" in text and "pressed 1 Confirm" in text
    assert NUMBER.format(1) not in text  # numbers are masked in channels
    assert_valid_blocks(results[0].params["blocks"])
    final = fake.updates("C9", ts)[-1].all_text()
    assert final.startswith(":white_check_mark: Appointment reminder — completed, 2/3 answered")

    record = harness.store.requests.get(record.id)
    assert record.status == RequestStatus.COMPLETED
    assert record.provider_ref in sandbox.state.batches
    assert sandbox.state.numbers_called() == {NUMBER.format(d): 1 for d in "120"}
    assert [c.phone_number for c in harness.store.requests.calls(record.id)] == [
        NUMBER.format(d) for d in "120"
    ]  # whole in the database


@pytest.mark.parametrize(
    ("workflow", "recipients", "block", "expected"),
    [
        (None, "+2348031234561 name=A date=B", BlockId.WORKFLOW, "Choose a workflow"),
        (
            "wf",
            "+2348031234561 name=A date=B\n+234 80 name=B date=C",
            BlockId.RECIPIENTS,
            "line 2: phone number '+234 80' is too short",
        ),
        ("wf", "+2348031234561 name=A", BlockId.RECIPIENTS, "line 1: no value for [date]"),
        (
            "wf",
            "\n\n+2348031234561 name=A date=B\n+2348031234561 name=A date=B",
            BlockId.RECIPIENTS,
            "line 4: phone number '+2348031234561' is already recipient 1",
        ),
        (
            "wf",
            f"+2348031234561 name={'x' * 3990} date=B",
            BlockId.RECIPIENTS,
            "line 1: the message becomes 4,056 characters",
        ),
        ("wf", "+2348031234561 Ada", BlockId.RECIPIENTS, "line 1: 'Ada' is not name=value"),
        ("wf", "", BlockId.RECIPIENTS, "no recipients"),
        ("wf", "08031234561 name=A date=B", BlockId.RECIPIENTS, "has no country code"),
    ],
)
async def test_modal_errors_come_back_on_the_field_and_nothing_is_sent(
    harness: Harness,
    reminder: Workflow,
    sandbox: Sandbox,
    workflow: str | None,
    recipients: str,
    block: str,
    expected: str,
) -> None:
    chosen = reminder.id if workflow == "wf" else workflow
    answer = await submit(harness, modal_values(chosen, recipients))
    body = answer.json()
    assert body["response_action"] == "errors"
    assert expected in body["errors"][block]
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    assert harness.store.requests.recent() == []
    assert harness.fake.messages() == []


async def test_a_pasted_csv_works(harness: Harness, reminder: Workflow, sandbox: Sandbox):
    csv_text = f'phone,name,date\n{NUMBER.format(3)},"Obi, Ada",Monday\n{NUMBER.format(4)},Bo,Tue'
    answer = await submit(harness, modal_values(reminder.id, csv_text))
    assert answer.content in (b"", b"{}")
    await harness.wait_until(lambda: sandbox.state.batches)
    await harness.settled()
    [call_a, call_b] = harness.store.requests.calls(harness.store.requests.recent()[0].id)
    assert call_a.variables == {"name": "Obi, Ada", "date": "Monday"}
    assert call_b.phone_number == NUMBER.format(4)


async def test_a_resubmitted_modal_is_one_request(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    values = modal_values(reminder.id, f"{NUMBER.format(3)} name=A date=B")
    for _ in range(3):
        await submit(harness, values, view_id="VSAME")
    await harness.wait_until(lambda: sandbox.state.batches)
    await harness.settled()
    assert len(harness.store.requests.recent()) == 1
    assert sandbox.state.numbers_called() == {NUMBER.format(3): 1}


# ---------------------------------------------------------------- /robocall call


async def test_call_command_places_at_once(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    answer = await command(
        harness,
        f'call "appointment reminder" +234 803 123 4561, {NUMBER.format(5)} '
        "name=Ada date=Monday voice=igbo/female",
    )
    text = body_text(answer)
    assert "accepted: 2 recipients with *Appointment reminder*" in text
    parent = (await harness.fake.wait_for(lambda f: f.messages("C1")))[0]
    assert "Igbo (female)" in parent.all_text()
    await harness.wait_until(
        lambda: harness.store.requests.recent()[0].status == RequestStatus.COMPLETED
    )
    batch = next(iter(sandbox.state.batches.values()))
    assert [c.workflow_variables for c in batch.calls] == [{"name": "Ada", "date": "Monday"}] * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "call nope +2348031234561",
            "workflow 'nope' does not exist; known workflows: Appointment reminder",
        ),
        (
            'call "Appointment reminder" +2348031234561 name=A date=B voice=hausa/female',
            "voice 'hausa/female' is not offered; hausa comes as: male",
        ),
        ('call "Appointment reminder" name=A date=B', "no recipients"),
        ('call "Appointment reminder" +2348031234561 name=A', "recipient 1: no value for [date]"),
        (
            'call "Appointment reminder" +2348031234561 +23480312345 name=A date=B',
            "recipient 2: phone number '+23480312345'",
        ),
        ("call", "no workflow"),
    ],
)
async def test_call_command_errors_name_the_problem_and_send_nothing(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, text: str, expected: str
) -> None:
    answer = body_text(await command(harness, text))
    assert "Nothing was sent" in answer
    assert expected in answer
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    assert harness.store.requests.recent() == []


# ---------------------------------------------------------------- status


async def test_status_by_batch_id_and_by_request_id(harness: Harness, reminder: Workflow):
    await command(harness, f'call "Appointment reminder" {NUMBER.format(1)} name=A date=B')
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED and r[0]
    )
    for ref in (record.provider_ref, record.id):
        text = body_text(await command(harness, f"status {ref}"))
        assert "1/1 answered (100%)" in text and record.id in text and "+234•••••4561" in text
    assert "No request or Intron batch has the id 'nope'" in body_text(
        await command(harness, "status nope")
    )


# ---------------------------------------------------------------- callbacks


async def test_callbacks_repeat_wrong_token_unknown_and_malformed(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    await command(harness, f'call "Appointment reminder" {NUMBER.format(1)} name=A date=B')
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED and r[0]
    )
    await harness.settled()
    posted = len(harness.fake.calls())
    good = next(c for c in sandbox.state.callbacks if c["request_id"] == record.provider_ref)
    assert good["attempts"] == [200]
    body = (store.requests.callback_log()[0])["body"]

    async with httpx.AsyncClient() as http:
        again = await http.post(harness.callback_url, content=body)
        assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
        wrong = await http.post(
            f"{harness.url}/callbacks/intron/not-{CALLBACK_TOKEN}", content=body
        )
        assert wrong.status_code == 404
        unknown = json.loads(body) | {"request_id": "no-such-batch", "request_calls": []}
        assert (await http.post(harness.callback_url, json=unknown)).status_code == 404
        assert (await http.post(harness.callback_url, content=b"{oops")).status_code == 400
        typed = json.loads(body) | {"request_calls": {"not": "a list"}}
        assert (await http.post(harness.callback_url, json=typed)).status_code == 422
        unreadable_stats = json.loads(body) | {"stats": {"total_calls": "lots"}}  # only shown
        again = await http.post(harness.callback_url, json=unreadable_stats)
        assert again.json()["outcome"] == "duplicate"
        huge = b'{"request_id": "' + b"x" * callback_limit(1_000) + b'"}'
        assert (await http.post(harness.callback_url, content=huge)).status_code == 413
    await harness.settled()
    assert len(harness.fake.calls()) == posted  # nothing new reached Slack
    assert store.requests.get(record.id) == record


# ---------------------------------------------------------------- restarts and failures


async def test_a_restart_between_placing_and_results_loses_nothing(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 1.0
    await command(harness, f'call "Appointment reminder" {NUMBER.format(2)} name=A date=B')
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.PLACED and r[0]
    )
    # Restart once the parent is posted *and recorded*: a kill between Slack taking a
    # post and the app storing its ts is the one window where a message may be posted
    # twice (README, "Limits"), and it is not what this test is about.
    parent_ts = await harness.wait_until(lambda: harness.slack_store.message(record.id).ts)
    parent = harness.fake.messages("C1")[0]
    await harness.restart()  # the callback arrives at the new instance
    store = harness.store
    await harness.wait_until(
        lambda: store.requests.get(record.id).status == RequestStatus.COMPLETED, timeout=10
    )
    assert harness.slack_store.message(record.id).ts == parent_ts
    replies = await harness.fake.wait_for(lambda f: f.thread("C1", parent_ts))
    assert "pressed 2 Cancel" in replies[0].all_text()
    assert len(harness.fake.messages("C1")) == 1 + len(replies)  # no second parent
    assert parent.all_text()


async def test_an_accepted_request_is_sent_after_a_restart(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    from bot.core.requests import CallOrder
    from bot.input.recipients import Recipient

    await harness.stop_worker()  # accepted, never placed: as if the app had stopped there
    record, _ = harness.running.service.accept(
        CallOrder(
            workflow=reminder.id,
            recipients=[Recipient(NUMBER.format(3), {"name": "A", "date": "B"})],
            voice=None,
            requested_by="U1",
            channel="C1",
            source="test",
        )
    )
    await harness.restart()
    store = harness.store
    await harness.wait_until(
        lambda: store.requests.get(record.id).status == RequestStatus.COMPLETED
    )
    assert sandbox.state.numbers_called() == {NUMBER.format(3): 1}


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [
        (Fault("place_calls", status=401), RequestStatus.FAILED, "refused our API key"),
        (Fault("place_calls", status=500), RequestStatus.UNKNOWN, "may or may not have placed"),
        (
            Fault("place_calls", status=429, retry_after=600),
            RequestStatus.FAILED,
            "rate limit is reached, so nobody was called. Try again in 600 s",
        ),
    ],
)
async def test_intron_failing_is_reported_in_words_a_user_can_act_on(
    harness: Harness,
    reminder: Workflow,
    sandbox: Sandbox,
    fault: Fault,
    status: RequestStatus,
    words: str,
) -> None:
    sandbox.state.faults.append(fault)
    await command(harness, f'call "Appointment reminder" {NUMBER.format(1)} name=A date=B')
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == status and r[0]
    )
    ts = await harness.parent_ts(record.id)
    reply = (await harness.fake.wait_for(lambda f: f.thread("C1", ts)))[0]
    assert words in reply.all_text()
    await harness.settled()
    # The parent shows the state it had when posted, and edits follow later changes;
    # either way the last thing in the channel tells the outcome.
    edits = harness.fake.updates("C1", ts)
    shown = (edits[-1] if edits else harness.fake.messages("C1")[0]).all_text()
    assert (
        "failed, nobody was called" if status == RequestStatus.FAILED else "outcome unknown"
    ) in (shown)

    assert sandbox.state.requests_seen["place_calls"] == 1


# ---------------------------------------------------------------- serving


async def test_health_and_unsigned_requests(harness: Harness) -> None:
    async with httpx.AsyncClient() as http:
        health = await http.get(f"{harness.url}/healthz")
        assert health.json() == {
            "ok": True,
            "database": "open",
            "provider": "intron",
            "parked_jobs": 0,
            "latest_parked": [],
        }
        unsigned = await http.post(f"{harness.url}/slack/events", data={"command": "/robocall"})
        assert unsigned.status_code == 401


async def test_who_may_call(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> None:
    app = Harness(
        tmp_path,
        fake_slack,
        sandbox,
        overrides={"allowed_user_ids": ["U2"], "allowed_channel_ids": ["C1"]},
    )
    await app.start()
    try:
        workflow = await app.create_workflow(REMINDER)
        refused = body_text(
            await command(app, f"call {workflow.id} {NUMBER.format(1)} name=A date=B")
        )
        assert "not on the list of people who may place calls" in refused
        answer = await submit(app, modal_values(workflow.id, f"{NUMBER.format(1)} name=A date=B"))
        assert "ALLOWED_USER_IDS" in answer.json()["errors"][BlockId.CHANNEL]
        assert app.slack is not None
        other = body_text(
            await app.slack.command(
                f"call {workflow.id} {NUMBER.format(1)} name=A date=B",
                user_id="U2",
                channel_id="C7",
            )
        )
        assert "may not be placed from <#C7>" in other
        assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    finally:
        await app.stop()


async def test_without_an_intron_key_every_message_says_sandbox(
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    app = Harness(tmp_path, fake_slack, None)
    await app.start()
    try:
        assert app.running.providers.sandbox
        # Demo mode: a demo workflow on each of the three sandboxes; Intron's is this one.
        [demo] = [w for w in app.running.workflows.cached() if w.provider == "intron"]
        assert demo.name == "Demo reminder" and demo.callback_url == app.callback_url
        assert "Sandbox" in body_text(await command(app, "help"))
        answer = body_text(await command(app, f"call {demo.id} {NUMBER.format(1)} name=Ada"))
        assert "Sandbox" in answer
        record = await app.wait_until(
            lambda: (
                (r := app.store.requests.recent(1))
                and r[0].status == RequestStatus.COMPLETED
                and r[0]
            )
        )
        ts = await app.parent_ts(record.id)
        parent_updates = await app.fake.wait_for(lambda f: f.updates("C1", ts))
        assert all("Sandbox" in u.all_text() for u in parent_updates)
        assert "Sandbox" in app.fake.messages("C1")[0].all_text()
    finally:
        await app.stop()
