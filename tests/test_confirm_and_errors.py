"""A new user's trial, end to end over the real harness: large sends are confirmed first,
a provider's refusal names the recipient and the field (masked), a refused API key is
told to the admins and not spelled out in the channel, and the workflow modal answers
every field at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.models import RequestStatus
from bot.providers.base import RefusedError
from bot.providers.http import read_refusal
from bot.providers.intron.models import Workflow
from bot.providers.intron.sandbox import Fault
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER, Sandbox, make_client
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.test_slack_app import REMINDER, command, modal_values, submit
from tests.test_workflows_slack import form, from_message, next_view, save

THRESHOLD = 25  # CONFIRM_ABOVE's default
MESSAGE_TS = "1700000000.000001"  # the ephemeral question, as the click names it


@pytest.fixture
async def reminder(harness: Harness) -> Workflow:
    return await harness.create_workflow(REMINDER)


def numbers(count: int) -> list[str]:
    return [f"+234803{i:07d}" for i in range(count)]


def call_text(workflow: Workflow, count: int) -> str:
    return f"call {workflow.id} {', '.join(numbers(count))} name=Ada date=Friday"


def buttons(blocks: list[dict]) -> dict[str, dict]:
    """action_id → the button carrying it."""
    return {
        e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b.get("elements", [])
    }


async def ask(harness: Harness, workflow: Workflow, count: int) -> str:
    """`/robocall call` with `count` numbers: the question asked; returns the token."""
    answer = (await command(harness, call_text(workflow, count))).json()
    assert answer.get("response_type", "ephemeral") == "ephemeral"
    assert_valid_blocks(answer["blocks"])
    assert f"Call {count} people with *{workflow.name}*?" in json.dumps(answer)
    found = buttons(answer["blocks"])
    assert found[ActionId.CONFIRM_CALL]["text"]["text"] == f"Call {count} people"
    assert found[ActionId.CANCEL_CALL]["text"]["text"] == "Cancel"
    token = found[ActionId.CONFIRM_CALL]["value"]
    assert found[ActionId.CANCEL_CALL]["value"] == token and len(token) >= 20
    return token


async def click(harness: Harness, action: str, token: str, user: str = "U1") -> Any:
    """A click on the question; returns what the app posted to its response URL."""
    assert harness.slack is not None
    response = await harness.slack.action(
        action, token, channel_id="C1", message_ts=MESSAGE_TS, user_id=user
    )
    assert response.status_code == 200, response.text
    rid = harness.slack.last_response_id
    [posted] = await harness.fake.wait_for(lambda f: f.responses(rid))
    return posted


async def nothing_sent(harness: Harness, sandbox: Sandbox) -> None:
    await asyncio.sleep(0.1)  # time for a request that should not exist to go out
    assert harness.store.requests.recent(10) == []
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    assert harness.fake.messages("C1") == []


async def placed(harness: Harness, sandbox: Sandbox, count: int) -> None:
    """Exactly one request, completed, each number called once."""
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED and r[0],
        timeout=10,
    )
    await harness.settled()
    assert len(store.requests.recent(10)) == 1 and record.recipient_count == count
    assert sandbox.state.requests_seen["place_calls"] == 1
    assert sorted(sandbox.state.numbers_called()) == numbers(count)
    assert set(sandbox.state.numbers_called().values()) == {1}


# ---------------------------------------------------------------- /robocall call


async def test_a_large_command_asks_first_and_confirm_places_it_once(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    token = await ask(harness, reminder, THRESHOLD + 1)
    await nothing_sent(harness, sandbox)

    first = await click(harness, ActionId.CONFIRM_CALL, token)
    assert first.params["replace_original"] is True
    assert f"accepted: {THRESHOLD + 1} recipients" in first.all_text()
    # A double click, and Slack resending it: the same request, not another.
    again = await click(harness, ActionId.CONFIRM_CALL, token)
    [record] = harness.store.requests.recent(10)
    assert record.id in first.all_text() and record.id in again.all_text()
    assert record.idempotency_key == f"confirm:{token}" and record.requested_by == "U1"
    await placed(harness, sandbox, THRESHOLD + 1)
    # Cancel after Confirm changes nothing and says so.
    late = await click(harness, ActionId.CANCEL_CALL, token)
    assert "already confirmed" in late.all_text() and late.params.get("replace_original") is False


async def test_two_confirms_at_once_are_one_request(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    token = await ask(harness, reminder, THRESHOLD + 5)
    assert harness.slack is not None
    clicks = [
        harness.slack.action(ActionId.CONFIRM_CALL, token, channel_id="C1", message_ts=MESSAGE_TS)
        for _ in range(3)
    ]
    assert all(r.status_code == 200 for r in await asyncio.gather(*clicks))
    await placed(harness, sandbox, THRESHOLD + 5)


async def test_only_the_requester_can_confirm_or_cancel(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    token = await ask(harness, reminder, THRESHOLD + 1)
    for action in (ActionId.CONFIRM_CALL, ActionId.CANCEL_CALL):
        refused = await click(harness, action, token, user="U2")
        assert "Only <@U1>, who asked for these calls" in refused.all_text()
        assert refused.params.get("replace_original") is False  # the question stays
    await nothing_sent(harness, sandbox)
    assert harness.store.pending.get(token) is not None  # U1 may still answer
    await click(harness, ActionId.CONFIRM_CALL, token)
    await placed(harness, sandbox, THRESHOLD + 1)


async def test_cancel_drops_the_order(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    token = await ask(harness, reminder, THRESHOLD + 1)
    cancelled = await click(harness, ActionId.CANCEL_CALL, token)
    assert cancelled.params["replace_original"] is True
    assert "Cancelled: nobody was called" in cancelled.all_text()
    assert harness.store.pending.get(token) is None
    late = await click(harness, ActionId.CONFIRM_CALL, token)
    assert "This confirmation expired; run the command again" in late.all_text()
    await nothing_sent(harness, sandbox)


async def test_an_expired_or_made_up_token_is_refused(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    token = await ask(harness, reminder, THRESHOLD + 1)
    with harness.store.write():  # fifteen minutes later
        harness.store.db.execute("UPDATE pending_orders SET expires_at = 0")
    for value in (token, "made-up-token", ""):
        answer = await click(harness, ActionId.CONFIRM_CALL, value)
        assert "This confirmation expired; run the command again" in answer.all_text()
    await nothing_sent(harness, sandbox)
    assert harness.store.pending.get(token) is None


async def test_up_to_the_threshold_no_question_is_asked(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    answer = await command(harness, call_text(reminder, THRESHOLD))
    assert f"accepted: {THRESHOLD} recipients" in json.dumps(answer.json())
    assert ActionId.CONFIRM_CALL not in buttons(answer.json()["blocks"])
    await placed(harness, sandbox, THRESHOLD)


async def test_a_large_command_with_a_bad_number_is_refused_before_asking(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    typed = [*numbers(THRESHOLD + 1), "+234 80"]
    answer = await command(harness, f"call {reminder.id} {', '.join(typed)} name=A date=B")
    text = json.dumps(answer.json(), ensure_ascii=False)
    assert f"recipient {THRESHOLD + 2}: phone number '+234 80'" in text
    assert "Nothing was sent" in text and ActionId.CONFIRM_CALL not in text
    assert harness.store.db.one("SELECT count(*) AS n FROM pending_orders") == {"n": 0}
    await nothing_sent(harness, sandbox)


# ---------------------------------------------------------------- the Send modal


async def test_a_large_modal_pushes_a_confirmation_then_places_once(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    count = THRESHOLD + 3
    recipients = "\n".join(f"{n} name=Ada date=Friday" for n in numbers(count))
    answer = (await submit(harness, modal_values(reminder.id, recipients), "VBIG")).json()
    assert answer["response_action"] == "push"
    pushed = answer["view"]
    assert_valid_view(pushed)
    assert pushed["callback_id"] == CallbackId.CONFIRM_SEND
    assert pushed["title"]["text"] == f"Call {count} people?"
    assert pushed["submit"]["text"] == f"Place {count} calls"
    assert numbers(count)[0] not in json.dumps(pushed)  # only a token travels
    await nothing_sent(harness, sandbox)

    assert harness.slack is not None
    metadata = pushed["private_metadata"]
    other = await harness.slack.submit_view(
        CallbackId.CONFIRM_SEND, {}, private_metadata=metadata, view_id="VC1", user_id="U2"
    )
    assert other.json()["response_action"] == "update"
    assert "Only <@U1>" in json.dumps(other.json())
    await nothing_sent(harness, sandbox)
    for _ in range(2):  # submitted, then resent by Slack
        confirmed = await harness.slack.submit_view(
            CallbackId.CONFIRM_SEND, {}, private_metadata=metadata, view_id="VC1"
        )
        assert confirmed.json() == {"response_action": "clear"}
    [record] = harness.store.requests.recent(10)
    assert record.idempotency_key == "view:VBIG" and record.source == "slack:modal"
    await placed(harness, sandbox, count)

    with harness.store.write():
        harness.store.db.execute("UPDATE pending_orders SET expires_at = 0")
    late = await harness.slack.submit_view(
        CallbackId.CONFIRM_SEND, {}, private_metadata=metadata, view_id="VC1"
    )
    assert "This confirmation expired" in json.dumps(late.json())


# ---------------------------------------------------------------- provider errors


@pytest.mark.parametrize(
    "body",
    [
        {
            "detail": [
                {
                    "loc": ["body", "workflow_params", 2, "phone_number"],
                    "msg": f"value is not a reachable phone number: {NUMBER.format(3)}",
                    "type": "value_error",
                }
            ]
        },
        {
            "data": None,
            "status": "Error",
            "message": f"workflow_params[2].phone_number: value is not a reachable "
            f"phone number: {NUMBER.format(3)}",
        },
    ],
    ids=["fastapi-detail", "plain-message"],
)
async def test_a_provider_422_names_the_recipient_masked_and_the_field(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, body: dict
) -> None:
    sandbox.state.faults.append(Fault("place_calls", status=422, body=body))
    typed = ", ".join(NUMBER.format(i) for i in (1, 2, 3))
    await command(harness, f"call {reminder.id} {typed} name=A date=B")
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.FAILED and r[0]
    )
    ts = await harness.wait_until(lambda: harness.slack_store.message(record.id).ts)
    [reply] = await harness.fake.wait_for(lambda f: f.thread("C1", ts))
    text = reply.all_text()
    assert (
        "Intron refused recipient 3 (+234•••••4563): phone_number — value is not a "
        "reachable phone number" in text
    ), text
    assert "Nobody was called; fix that recipient and send again." in text
    assert "HTTP 422" not in text and "workflow_params" not in text
    await harness.settled()
    shown = [c.all_text() for c in harness.fake.calls() if c.method != "auth.test"]
    assert not [t for t in shown if NUMBER.format(3) in t or "8031234563" in t]
    assert sandbox.state.requests_seen["place_calls"] == 1


def test_refusal_bodies_are_read() -> None:
    def read(body: Any, status: int = 422):
        return read_refusal(httpx.Response(status, json=body), "workflow_params")

    detail = read(
        {
            "detail": [
                {"loc": ["body", "workflow_id"], "msg": "field required"},
                {"loc": ["body", "workflow_params", 4, "workflow_variables", "name"], "msg": "x"},
            ]
        }
    )
    assert (detail.item, detail.field, detail.message, detail.more) == (
        4,
        "workflow_variables.name",
        "x",
        1,
    )
    assert read({"detail": [{"loc": ["body", "workflow_id"], "msg": "field required"}]}).field == (
        "workflow_id"
    )
    plain = read({"message": "workflow_params.0: missing workflow variables [date]"})
    assert (plain.item, plain.field, plain.message) == (
        0,
        None,
        "missing workflow variables [date]",
    )
    inside = read({"message": "Invalid number in workflow_params[3].phone_number"})
    assert (inside.item, inside.field) == (3, "phone_number")
    assert read({"message": "nope"}).item is None
    assert read(["not", "a", "map"]) is None


@pytest.fixture
async def admin_harness(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Harness]:
    app = Harness(
        tmp_path, fake_slack, sandbox, overrides={"admin_user_ids": ["UADMIN1", "UADMIN2"]}
    )
    await app.start()
    yield app
    await app.stop()


async def test_a_refused_key_is_told_to_the_admins_not_the_channel(
    admin_harness: Harness, sandbox: Sandbox
) -> None:
    harness = admin_harness
    workflow = await harness.create_workflow(REMINDER)
    sandbox.state.faults.append(Fault("place_calls", status=401))
    await command(harness, f"call {workflow.id} {NUMBER.format(1)} name=A date=B")
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.FAILED and r[0]
    )
    ts = await harness.wait_until(lambda: harness.slack_store.message(record.id).ts)
    [reply] = await harness.fake.wait_for(lambda f: f.thread("C1", ts))
    assert (
        "Intron refused our API key, so nobody was called; the admins have been told."
        in reply.all_text()
    )
    dms = await harness.fake.wait_for(
        lambda f: (
            len(f.messages("UADMIN1")) + len(f.messages("UADMIN2")) == 2
            and f.messages("UADMIN1") + f.messages("UADMIN2")
        )
    )
    for dm in dms:
        assert "refused our API key" in dm.all_text() and record.id in dm.all_text()
        assert "INTRON_API_KEY" in dm.all_text()  # the admins learn what to check
    await harness.settled()
    key = harness.settings().intron_api_key
    assert key is not None
    for shown in harness.fake.messages("C1"):
        assert "INTRON_API_KEY" not in shown.all_text()
        assert key.get_secret_value() not in shown.all_text()
    for dm in dms:
        assert key.get_secret_value() not in dm.all_text()


async def test_another_failure_tells_no_admin(admin_harness: Harness, sandbox: Sandbox) -> None:
    harness = admin_harness
    workflow = await harness.create_workflow(REMINDER)
    sandbox.state.faults.append(Fault("place_calls", status=429, retry_after=600))
    await command(harness, f"call {workflow.id} {NUMBER.format(1)} name=A date=B")
    await harness.wait_until(
        lambda: (r := harness.store.requests.recent(1)) and r[0].status == RequestStatus.FAILED
    )
    await harness.settled()
    assert harness.fake.messages("UADMIN1") == []


# ---------------------------------------------------------------- the workflow modal


async def test_the_workflow_modal_answers_every_field_at_once(
    harness: Harness, sandbox: Sandbox
) -> None:
    values = form("   ", "Hello [name, see you", reply=True, options="1=Yes\n0=Zero\n1=No")
    answer = await save(harness, values, json.dumps({"workflow_id": None}), "VALL")
    assert answer["response_action"] == "errors"
    errors = answer["errors"]
    assert set(errors) == {BlockId.WF_NAME, BlockId.WF_MESSAGE, BlockId.WF_OPTIONS}
    assert "Give the workflow a name" in errors[BlockId.WF_NAME]
    assert "'[' at character 7 is never closed" in errors[BlockId.WF_MESSAGE]
    assert "line 2: '0' is not a keypad digit" in errors[BlockId.WF_OPTIONS]
    assert "line 3: 1 is already given (Yes)" in errors[BlockId.WF_OPTIONS]
    assert sandbox.state.requests_seen.get("create_workflow", 0) == 0


async def test_the_workflow_modal_counts_against_what_the_field_takes(
    harness: Harness,
) -> None:
    await from_message(harness, ActionId.WORKFLOW_NEW, "new")
    modal = await next_view(harness.fake, "views.open", 0)
    assert_valid_view(modal)
    block = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.WF_MESSAGE)
    element = block["element"]
    assert element["max_length"] == 3000
    count = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.WF_COUNT)
    assert count["elements"][0]["text"].startswith("0 / 3,000 characters")
    assert "At most 3,000 characters here, and 4,000 once" in block["hint"]["text"]
    assert element["placeholder"]["text"] == (
        "e.g. Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel."
    )
    name = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.WF_NAME)
    assert name["element"]["placeholder"]["text"] == "e.g. Appointment reminder"


async def test_a_refusal_naming_no_recipient_reads_as_before(sandbox: Sandbox) -> None:
    """A refusal that names no recipient still reads as the provider's message."""
    sandbox.state.faults.append(
        Fault("place_calls", status=422, body={"detail": [{"loc": ["body"], "msg": "bad"}]})
    )
    from bot.providers.intron.models import CallRequest, WorkflowParam

    async with make_client(sandbox.url) as client:
        with pytest.raises(RefusedError) as refused:
            await client.place_calls(
                CallRequest(
                    workflow_id="wf", workflow_params=[WorkflowParam(phone_number=NUMBER.format(1))]
                )
            )
    assert refused.value.recipient is None and "HTTP 422: bad" in refused.value.message
