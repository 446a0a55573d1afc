"""Workflow management and the Home tab from Slack, end to end: signed requests in,
the fake Slack records what comes out, the sandbox plays Intron."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.core.models import RequestStatus
from bot.providers.intron.client import DEFAULT_MANAGEMENT_WINDOWS
from bot.providers.intron.models import WorkflowCreate
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER, Sandbox, make_client, start_sandbox
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    app_home_opened,
    checkboxes_value,
    modal_view,
    plain_text_value,
    radio_value,
    static_select_value,
)
from tests.test_slack_app import command, modal_values, submit


def form(
    name: str | None,
    message: str | None,
    *,
    reply: bool = False,
    options: str | None = None,
    kind: str = "robocall",
) -> dict:
    return {
        BlockId.WF_NAME: {ActionId.WF_NAME_INPUT: plain_text_value(name)},
        BlockId.WF_DESCRIPTION: {ActionId.WF_DESCRIPTION_INPUT: plain_text_value(None)},
        BlockId.WF_TYPE: {ActionId.WF_TYPE_SELECT: radio_value(kind)},
        BlockId.WF_MESSAGE: {ActionId.WF_MESSAGE_INPUT: plain_text_value(message)},
        BlockId.WF_REPLY: {ActionId.WF_REPLY_TOGGLE: checkboxes_value(["reply"] if reply else [])},
        BlockId.WF_OPTIONS: {ActionId.WF_OPTIONS_INPUT: plain_text_value(options)},
    }


def buttons(blocks: list[dict]) -> dict[str, list[str]]:
    """action_id → the values of the buttons carrying it."""
    found: dict[str, list[str]] = {}
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            found.setdefault(element["action_id"], []).append(element.get("value", ""))
    return found


async def click(harness: Harness, action: str, value: str, **kw) -> None:
    assert harness.slack is not None
    response = await harness.slack.action(action, value, **kw)
    assert response.status_code == 200, response.text


async def from_message(harness: Harness, action: str, value: str) -> None:
    await click(harness, action, value, channel_id="C1", message_ts="1700000000.000001")


async def next_view(fake: FakeSlack, method: str, seen: int) -> dict:
    calls = await fake.wait_for(lambda f: len(f.calls(method)) > seen and f.calls(method))
    return calls[-1].params["view"]


async def save(harness: Harness, values: dict, metadata: str, view_id: str) -> dict:
    assert harness.slack is not None
    answer = await harness.slack.submit_view(
        CallbackId.WORKFLOW_EDIT, values, private_metadata=metadata, view_id=view_id
    )
    return answer.json() if answer.content else {}


async def test_create_list_edit_send_delete(harness: Harness, sandbox: Sandbox) -> None:
    fake = harness.fake
    listing = (await command(harness, "workflows")).json()
    assert_valid_blocks(listing["blocks"])
    assert buttons(listing["blocks"])[ActionId.WORKFLOW_NEW] == ["new"]

    # New → the modal → Save
    await from_message(harness, ActionId.WORKFLOW_NEW, "new")
    new_modal = await next_view(fake, "views.open", 0)
    assert new_modal["callback_id"] == CallbackId.WORKFLOW_EDIT
    assert_valid_view(new_modal)
    answer = await save(
        harness,
        form(
            "Reminder", "Hello [name], see you [day].", reply=True, options="1=Confirm\n2 = Cancel"
        ),
        new_modal["private_metadata"],
        "VNEW",
    )
    assert answer["response_action"] == "update"
    await harness.wait_until(lambda: sandbox.state.workflows)
    [created] = sandbox.state.workflows.values()
    assert created["call_back_url"] == harness.callback_url
    assert created["response_options"] == {"1": "Confirm", "2": "Cancel"}
    saved = await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "Created *Reminder*" in c.all_text()]
    )
    assert_valid_view(saved[0].params["view"])
    redrawn = await fake.wait_for(lambda f: f.responses())
    assert "Created *Reminder*" in redrawn[-1].all_text()
    assert redrawn[-1].params["replace_original"] is True

    # The list now shows it with its actions
    listing = (await command(harness, "workflows")).json()
    actions = buttons(listing["blocks"])
    assert actions[ActionId.WORKFLOW_EDIT] == [created["id"]]
    assert "`[name]`, `[day]`" in json.dumps(listing["blocks"])

    # Edit: the modal comes filled in; change the message
    await from_message(harness, ActionId.WORKFLOW_EDIT, created["id"])
    edit_modal = await next_view(fake, "views.open", 1)
    assert edit_modal["title"]["text"] == "Edit workflow"
    assert "Hello [name], see you [day]." in json.dumps(edit_modal)
    await save(
        harness,
        form("Reminder", "Hi [name]! Press 1 or 2.", reply=True, options="1=Confirm\n2=Cancel"),
        edit_modal["private_metadata"],
        "VEDIT",
    )
    await harness.wait_until(lambda: created["message"] == "Hi [name]! Press 1 or 2.")

    # Send: opens the Send modal with the workflow chosen; place a call
    await from_message(harness, ActionId.WORKFLOW_SEND, created["id"])
    send_modal = await next_view(fake, "views.open", 2)
    workflow_block = next(b for b in send_modal["blocks"] if b.get("block_id") == BlockId.WORKFLOW)
    assert workflow_block["element"]["initial_option"]["value"] == created["id"]
    await submit(harness, modal_values(created["id"], f"{NUMBER.format(1)} name=Ada"))
    request = await harness.wait_until(lambda: harness.store.requests.recent(1))

    # Delete: the confirmation names the request that used it
    await from_message(harness, ActionId.WORKFLOW_DELETE, created["id"])
    confirm = await next_view(fake, "views.open", 3)
    assert request[0].id in json.dumps(confirm) and "1 request" in json.dumps(confirm)
    assert harness.slack is not None
    await harness.slack.submit_view(
        CallbackId.WORKFLOW_DELETE, {}, private_metadata=confirm["private_metadata"], view_id="VDEL"
    )
    await harness.wait_until(lambda: not sandbox.state.workflows)
    await harness.settled()  # the cache is updated once Intron's answer is back
    assert harness.running.workflows.cached() == []
    trail = [(row["actor"], row["action"]) for row in harness.store.audit.trail()]
    assert ("U1", "workflow.created") in trail and ("U1", "workflow.updated") in trail
    assert ("U1", "workflow.deleted") in trail and ("U1", "request.accepted") in trail


@pytest.mark.parametrize(
    ("values", "block", "expected"),
    [
        (form("", "Hello"), BlockId.WF_NAME, "Give the workflow a name"),
        (form("  ", "Hello"), BlockId.WF_NAME, "Give the workflow a name"),
        (form("N", ""), BlockId.WF_MESSAGE, "Write the message"),
        (form("N", "Hello [name"), BlockId.WF_MESSAGE, "'[' at character 7 is never closed"),
        (form("N", "Press [1 or 2]"), BlockId.WF_MESSAGE, "is not a variable name"),
        (form("N", "Hi", reply=True), BlockId.WF_OPTIONS, "add at least one option"),
        (
            form("N", "Hi", reply=True, options="0=Zero"),
            BlockId.WF_OPTIONS,
            "line 1: '0' is not a keypad digit; options use the digits 1-9",
        ),
        (
            form("N", "Hi", reply=True, options="1=Yes\n10=Ten"),
            BlockId.WF_OPTIONS,
            "line 2: '10' is not a keypad digit",
        ),
        (
            form("N", "Hi", reply=True, options="1=Yes\n1=No"),
            BlockId.WF_OPTIONS,
            "line 2: 1 is already given (Yes)",
        ),
        (
            form("N", "Hi", reply=True, options="yes please"),
            BlockId.WF_OPTIONS,
            "is not digit=meaning",
        ),
    ],
)
async def test_workflow_field_errors(
    harness: Harness, sandbox: Sandbox, values: dict, block: str, expected: str
) -> None:
    answer = await save(harness, values, json.dumps({"workflow_id": None}), "VERR")
    assert answer["response_action"] == "errors"
    assert expected in answer["errors"][block]
    assert sandbox.state.requests_seen.get("create_workflow", 0) == 0


async def test_the_message_count_updates_as_you_type(harness: Harness) -> None:
    shown = modal_view(
        CallbackId.WORKFLOW_EDIT,
        view_id="VTYPE",
        private_metadata=json.dumps({"workflow_id": None}),
        values={
            BlockId.WF_MESSAGE: {ActionId.WF_MESSAGE_INPUT: plain_text_value("Hi [name], [when")}
        },
    )
    await click(
        harness,
        ActionId.WF_MESSAGE_INPUT,
        None,
        view=shown,
        block_id=BlockId.WF_MESSAGE,
        action_type="plain_text_input",
    )
    updated = await next_view(harness.fake, "views.update", 0)
    count = next(b for b in updated["blocks"] if b.get("block_id") == BlockId.WF_COUNT)
    text = count["elements"][0]["text"]
    assert "16 / 3,000 characters" in text and "variables: [name]" in text
    assert "never closed" in text


async def test_a_workflow_calling_back_elsewhere_is_flagged_and_fixed(
    harness: Harness, sandbox: Sandbox
) -> None:
    async with make_client(sandbox.url) as client:
        foreign = await client.create_workflow(
            WorkflowCreate(
                name="Dashboard-made", message="Hello", call_back_url="https://elsewhere.example/cb"
            )
        )
    await harness.running.workflows.refresh()
    listing = (await command(harness, "workflows")).json()
    assert "not to this app" in json.dumps(listing["blocks"])
    assert buttons(listing["blocks"])[ActionId.WORKFLOW_FIX_CALLBACK] == [foreign.id]
    await from_message(harness, ActionId.WORKFLOW_FIX_CALLBACK, foreign.id)
    await harness.wait_until(
        lambda: sandbox.state.workflows[foreign.id]["call_back_url"] == harness.callback_url
    )
    redrawn = await harness.fake.wait_for(lambda f: f.responses())
    assert "now sends its results to this app" in redrawn[-1].all_text()
    assert ActionId.WORKFLOW_FIX_CALLBACK not in buttons(redrawn[-1].params["blocks"])


async def test_view_shows_recent_requests_and_calls_can_be_filtered(
    harness: Harness, sandbox: Sandbox
) -> None:
    workflow = await harness.create_workflow(WorkflowCreate(name="Alert", message="Down"))
    numbers = " ".join(NUMBER.format(d) for d in "1234567890")
    await command(harness, f"call Alert {numbers}")
    await harness.wait_until(
        lambda: (r := harness.store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED
    )
    fake = harness.fake
    await from_message(harness, ActionId.WORKFLOW_VIEW, workflow.id)
    loaded = await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "answered" in c.all_text()]
    )
    view = loaded[-1].params["view"]
    assert_valid_view(view)
    batch_id = next(iter(sandbox.state.batches))
    assert batch_id in json.dumps(view) and "7/10 answered" in json.dumps(
        view
    )  # 8 is busy: not answered

    shown = modal_view(
        CallbackId.WORKFLOW_VIEW,
        view_id="VVIEW",
        private_metadata=json.dumps({"workflow_id": workflow.id}),
    )
    await click(harness, ActionId.WORKFLOW_CALLS, workflow.id, view=shown)
    pushed = await fake.wait_for(lambda f: f.calls("views.push"))
    assert pushed[0].params["view"]["callback_id"] == CallbackId.WORKFLOW_CALLS
    page_one = await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "calls shown of 10" in c.all_text()]
    )
    calls_view = page_one[-1].params["view"]
    assert_valid_view(calls_view)
    assert "+234•••••4561" in json.dumps(calls_view, ensure_ascii=False)
    assert NUMBER.format(1) not in json.dumps(calls_view)

    assert harness.slack is not None
    filters = {
        BlockId.CALLS_BATCH: {ActionId.CALLS_BATCH_INPUT: plain_text_value(None)},
        BlockId.CALLS_STATUS: {ActionId.CALLS_STATUS_SELECT: static_select_value("no_answer")},
        BlockId.CALLS_PHONE: {ActionId.CALLS_PHONE_INPUT: plain_text_value(None)},
    }
    answer = await harness.slack.submit_view(
        CallbackId.WORKFLOW_CALLS,
        filters,
        view_id="VCALLS",
        private_metadata=json.dumps({"workflow_id": workflow.id}),
    )
    assert answer.json()["response_action"] == "update"
    filtered = await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "calls shown of 1" in c.all_text()]
    )
    assert "+234•••••4560" in filtered[-1].all_text()
    bad_phone = {
        **filters,
        BlockId.CALLS_PHONE: {ActionId.CALLS_PHONE_INPUT: plain_text_value("0803")},
    }
    refused = await harness.slack.submit_view(
        CallbackId.WORKFLOW_CALLS,
        bad_phone,
        view_id="VCALLS",
        private_metadata=json.dumps({"workflow_id": workflow.id}),
    )
    assert "'0803'" in refused.json()["errors"][BlockId.CALLS_PHONE]


async def test_home_tab_shows_requests_and_updates_when_results_arrive(
    harness: Harness, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 1.5
    workflow = await harness.create_workflow(WorkflowCreate(name="Alert", message="Down"))
    assert harness.slack is not None
    await harness.slack.event(app_home_opened("U1"))
    first = await harness.fake.wait_for(lambda f: f.calls("views.publish"))
    home = first[0].params["view"]
    assert home["type"] == "home"
    assert_valid_view(home)
    assert "No requests yet" in json.dumps(home) and "Alert" in json.dumps(home)
    assert ActionId.HOME_SEND in buttons(home["blocks"])

    await command(harness, f"call Alert {NUMBER.format(1)}")
    record = await harness.wait_until(
        lambda: (
            (r := harness.store.requests.recent(1))
            and r[0].status == RequestStatus.COMPLETED
            and r[0]
        )
    )
    updated = await harness.fake.wait_for(
        lambda f: [c for c in f.calls("views.publish") if "1/1 answered" in c.all_text()], timeout=6
    )
    assert record.id in updated[-1].all_text() and workflow.name in updated[-1].all_text()
    assert updated[-1].params["user_id"] == "U1"


async def test_admin_only_changes(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox):
    app = Harness(
        tmp_path,
        fake_slack,
        sandbox,
        overrides={"admin_user_ids": ["UADMIN"], "admin_usergroup_id": "SADMINS"},
    )
    fake_slack.answer_with("usergroups.users.list", lambda call: {"ok": True, "users": ["UGROUP"]})
    await app.start()
    try:
        workflow = await app.create_workflow(WorkflowCreate(name="Alert", message="Down"))
        listing = (await command(app, "workflows")).json()
        actions = buttons(listing["blocks"])
        assert ActionId.WORKFLOW_EDIT not in actions and ActionId.WORKFLOW_NEW not in actions
        assert actions[ActionId.WORKFLOW_SEND] == [workflow.id]  # everyone can send and view
        await from_message(app, ActionId.WORKFLOW_DELETE, workflow.id)
        refusal = await next_view(fake_slack, "views.open", 0)
        assert "Only workflow admins may delete workflows" in json.dumps(refusal)
        answer = await save(
            app, form("Hijack", "Hi"), json.dumps({"workflow_id": workflow.id}), "VX"
        )
        assert "Only workflow admins" in answer["errors"][BlockId.WF_NAME]
        assert sandbox.state.workflows[workflow.id]["name"] == "Alert"
        assert app.slack is not None
        for admin in ("UADMIN", "UGROUP"):
            allowed = await app.slack.command("workflows", user_id=admin)
            assert ActionId.WORKFLOW_EDIT in buttons(allowed.json()["blocks"])
    finally:
        await app.stop()


async def test_a_burst_of_management_clicks_never_draws_a_429(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    box = await start_sandbox(management_windows=DEFAULT_MANAGEMENT_WINDOWS)
    app = Harness(
        tmp_path,
        fake_slack,
        box,
        overrides={"intron_management_per_minute": 6, "intron_management_per_hour": 60},
    )
    try:
        await app.start()  # one list at start: 5 left this minute
        workflow = app.running.workflows.cached()
        assert workflow == []
        clicks = [from_message(app, ActionId.WORKFLOWS_REFRESH, "1") for _ in range(20)]
        await asyncio.gather(*clicks)
        answers = await fake_slack.wait_for(lambda f: len(f.responses()) >= 20 and f.responses())
        texts = [a.all_text() for a in answers]
        assert sum("Refreshed just now" in t for t in texts) == 5
        told = [t for t in texts if "possible again in" in t]
        assert len(told) == 15
        assert all("Showing the list as last fetched" in t for t in told)
        assert box.state.rate_limited == {}
        assert box.state.requests_seen["list_workflows"] == 6
    finally:
        await app.stop()
        await box.server.stop()
