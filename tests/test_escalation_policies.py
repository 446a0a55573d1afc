"""Escalation policies end to end: made in Slack (signed requests in, the fake Slack
records what comes out, the sandbox plays Intron), kept as code in
ESCALATION_POLICIES_FILE, listed, tested, and the *Escalate by phone* shortcut."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.core.policies import file_policy_id, format_wait, parse_wait
from bot.input.policies_file import file_refusals
from bot.providers.base import Workflow
from bot.providers.intron.models import WorkflowCreate
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import Sandbox, make_client
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    FORM,
    app_home_opened,
    checkboxes_value,
    conversation_value,
    new_trigger_id,
    plain_text_value,
    static_select_value,
)

ADA, BO, NOPHONE = "U7ADA", "U7BO", "U7NONE"
NUMBER = "+2348031234567"

ONCALL = WorkflowCreate(
    name="On-call alert",
    message="[policy]: [message]. Hello [name], press 1 to acknowledge.",
    include_reply=True,
    response_options={"1": "Acknowledge", "2": "Not me"},
)
NO_DIGIT_1 = WorkflowCreate(
    name="Survey",
    message="Press 2 if you liked it.",
    include_reply=True,
    response_options={"2": "Liked it"},
)
NEEDS_DATE = WorkflowCreate(
    name="Reminder",
    message="Hello [name], see you on [date]. Press 1 to confirm.",
    include_reply=True,
    response_options={"1": "Confirm"},
)
SECOND = WorkflowCreate(
    name="Pager two",
    message="[message]. Press 1 to acknowledge.",
    include_reply=True,
    response_options={"1": "Acknowledge"},
)


def shown(value: object) -> str:
    """What a reader sees of blocks or a view: JSON, with •, → and the like as they are."""
    return json.dumps(value, ensure_ascii=False)


def profile_phone(fake: FakeSlack, user: str, phone: str | None) -> None:
    profile = {"real_name": f"User {user}", "display_name": user.lower()}
    fake.users[user] = {"profile": {**profile, **({"phone": phone} if phone else {})}}


def steps_value(*lines: str) -> dict:
    """A rich text input's state, as Slack sends it: `<@U…>` becomes a user element."""
    elements: list[dict] = []
    for n, line in enumerate(lines):
        for part in re.split(r"(<@[A-Z0-9]+>)", line + ("\n" if n < len(lines) - 1 else "")):
            if mention := re.fullmatch(r"<@([A-Z0-9]+)>", part):
                elements.append({"type": "user", "user_id": mention.group(1)})
            elif part:
                elements.append({"type": "text", "text": part})
    return {
        "type": "rich_text_input",
        "rich_text_value": {
            "type": "rich_text",
            "elements": [{"type": "rich_text_section", "elements": elements}],
        },
    }


def form(
    workflow: str,
    *steps: str,
    name: str = "Payments on-call",
    channel: str = "C0PAY",
    repeat: str = "1",
    fallback: str = "none",
    urgent: bool = False,
) -> dict:
    return {
        BlockId.EP_NAME: {ActionId.EP_NAME_INPUT: plain_text_value(name)},
        BlockId.EP_CHANNEL: {ActionId.EP_CHANNEL_SELECT: conversation_value(channel)},
        BlockId.EP_WORKFLOW: {ActionId.EP_WORKFLOW_SELECT: static_select_value(workflow)},
        BlockId.EP_STEPS: {ActionId.EP_STEPS_INPUT: steps_value(*steps)},
        BlockId.EP_REPEAT: {ActionId.EP_REPEAT_SELECT: static_select_value(repeat)},
        BlockId.EP_VOICE: {ActionId.EP_VOICE_SELECT: static_select_value("default")},
        BlockId.EP_FALLBACK: {ActionId.EP_FALLBACK_SELECT: static_select_value(fallback)},
        BlockId.EP_URGENT: {
            ActionId.EP_URGENT_TOGGLE: checkboxes_value(["urgent"] if urgent else [])
        },
    }


def buttons(blocks: list[dict]) -> dict[str, list[str]]:
    """action_id → the values of the buttons carrying it."""
    found: dict[str, list[str]] = {}
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            found.setdefault(element["action_id"], []).append(element.get("value", ""))
    return found


async def command(harness: Harness, text: str, **kw) -> dict:
    assert harness.slack is not None
    response = await harness.slack.command(text, **kw)
    assert response.status_code == 200, response.text
    return response.json()


async def click(harness: Harness, action: str, value: str, **kw) -> None:
    assert harness.slack is not None
    kw.setdefault("channel_id", "C1")
    kw.setdefault("message_ts", "1700000000.000001")
    response = await harness.slack.action(action, value, **kw)
    assert response.status_code == 200, response.text


async def next_view(fake: FakeSlack, method: str, seen: int) -> dict:
    calls = await fake.wait_for(lambda f: len(f.calls(method)) > seen and f.calls(method))
    return calls[-1].params["view"]


async def save(harness: Harness, values: dict, policy_id: str | None = None, **kw) -> dict:
    assert harness.slack is not None
    answer = await harness.slack.submit_view(
        CallbackId.POLICY_EDIT,
        values,
        private_metadata=json.dumps({"policy_id": policy_id}),
        **kw,
    )
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else {}


async def make_workflow(harness: Harness, draft: WorkflowCreate) -> Workflow:
    await harness.create_workflow(draft)
    workflow = next(w for w in harness.store.workflows.all() if w.name == draft.name)
    return workflow


@pytest.fixture
async def harness(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> AsyncIterator:
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"default_phone_region": "NG"})
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def oncall(harness: Harness) -> Workflow:
    profile_phone(harness.fake, ADA, "0803 123 4561")
    profile_phone(harness.fake, BO, "+234 803 123 4562")
    profile_phone(harness.fake, NOPHONE, None)
    return await make_workflow(harness, ONCALL)


# ---------------------------------------------------------------- the wait parser


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("45", 45), ("2m 5s", 125)]
)
def test_waits_are_read_and_written_back(text: str, seconds: float) -> None:
    assert parse_wait(text) == seconds
    assert parse_wait(format_wait(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4s", "wait '4s' is too short; it must be at least 5s"),
        ("soon", "wait 'soon' is not a duration"),
        ("5m5m", "wait '5m5m' is not a duration"),
        ("", "wait '' is not a duration"),
        ("25h", "wait '25h' is too long"),
    ],
)
def test_bad_waits_are_refused_naming_the_value(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_wait(text)


# ---------------------------------------------------------------- made in Slack


async def test_create_list_edit_test_delete(harness: Harness, oncall: Workflow) -> None:
    fake = harness.fake
    listing = await command(harness, "escalations")
    assert_valid_blocks(listing["blocks"])
    assert "no escalation policies yet" in shown(listing["blocks"])
    assert buttons(listing["blocks"])[ActionId.POLICY_NEW] == ["new"]

    # New → the modal → Save
    await click(harness, ActionId.POLICY_NEW, "new")
    modal = await next_view(fake, "views.open", 0)
    assert modal["callback_id"] == CallbackId.POLICY_EDIT
    assert_valid_view(modal)
    assert harness.slack is not None
    answer = (
        await harness.slack.submit_view(
            CallbackId.POLICY_EDIT,
            form(oncall.id, f"<@{ADA}> 5m", f"{NUMBER} 30s"),
            private_metadata=modal["private_metadata"],
        )
    ).json()
    assert answer["response_action"] == "update", answer
    # The list the modal came from is redrawn with the new policy
    redrawn = await fake.wait_for(
        lambda f: [r for r in f.responses() if "Payments on-call" in r.all_text()]
    )
    assert redrawn[-1].params["replace_original"] is True
    saved_text = shown(answer["view"])
    assert "Created the escalation policy *Payments on-call*" in saved_text
    assert "+234•••••4567" in saved_text and NUMBER not in saved_text
    [policy] = harness.store.policies.list()
    assert (policy.name, policy.channel, policy.workflow) == (
        "Payments on-call",
        "C0PAY",
        oncall.id,
    )
    assert [(s.call, s.wait) for s in policy.steps] == [(ADA, 300.0), (NUMBER, 30.0)]
    assert policy.repeat == 1 and policy.source == "slack" and policy.created_by == "U1"
    assert re.fullmatch(r"ep-[0-9a-f]{12}", policy.id)

    # The list shows it with its buttons
    listing = await command(harness, "escalations")
    text = shown(listing["blocks"])
    assert "*Payments on-call* · <#C0PAY> · On-call alert" in text
    assert f"<@{ADA}> 5m → +234•••••4567 30s" in text
    actions = buttons(listing["blocks"])
    for action in (ActionId.POLICY_EDIT, ActionId.POLICY_DELETE, ActionId.POLICY_TEST):
        assert actions[action] == [policy.id]

    # Edit: the modal comes filled in (the user linked); a longer wait is saved in place
    await click(harness, ActionId.POLICY_EDIT, policy.id)
    edit = await next_view(fake, "views.open", 1)
    assert_valid_view(edit)
    assert json.loads(edit["private_metadata"])["policy_id"] == policy.id
    steps_block = next(b for b in edit["blocks"] if b.get("block_id") == BlockId.EP_STEPS)
    initial = shown(steps_block["element"]["initial_value"])
    assert f'"user_id": "{ADA}"' in initial and f"{NUMBER} 30s" in initial
    answer = await save(
        harness, form(oncall.id, f"<@{ADA}> 10m", f"{NUMBER} 30s", urgent=True), policy.id
    )
    assert answer["response_action"] == "update"
    [edited] = harness.store.policies.list()
    assert edited.id == policy.id and edited.steps[0].wait == 600.0 and edited.urgent

    # Delete asks first; confirming removes it
    await click(harness, ActionId.POLICY_DELETE, policy.id)
    confirm = await next_view(fake, "views.open", 2)
    assert confirm["callback_id"] == CallbackId.POLICY_DELETE
    assert "Payments on-call" in shown(confirm["blocks"])
    assert harness.store.policies.get(policy.id) is not None
    assert harness.slack is not None
    done = await harness.slack.submit_view(
        CallbackId.POLICY_DELETE, {}, private_metadata=confirm["private_metadata"]
    )
    assert "Deleted the escalation policy" in done.text
    assert harness.store.policies.list() == []
    await fake.wait_for(
        lambda f: [r for r in f.responses() if "no escalation policies yet" in r.all_text()]
    )
    actions_logged = [row["action"] for row in harness.store.audit.trail()]
    assert {"policy.created", "policy.updated", "policy.deleted"} <= set(actions_logged)


async def test_each_mistake_is_refused_on_its_field_and_nothing_is_saved(
    harness: Harness, oncall: Workflow
) -> None:
    fake = harness.fake
    survey = await make_workflow(harness, NO_DIGIT_1)
    reminder = await make_workflow(harness, NEEDS_DATE)
    second = await make_workflow(harness, SECOND)
    fake.answer_with(
        "conversations.info",
        lambda call: (
            {"ok": False, "error": "channel_not_found"}
            if call.params.get("channel") == "C0GONE"
            else {"ok": True, "channel": {"id": call.params.get("channel"), "is_archived": False}}
        ),
    )
    ok = (f"<@{ADA}> 5m",)
    cases = [
        (
            form(oncall.id, f"<@{ADA}> 5m", f"<@{NOPHONE}> 5m"),
            BlockId.EP_STEPS,
            f"step 2: @{NOPHONE} has no phone number in their Slack profile",
        ),
        (
            form(oncall.id, "+234803 30s"),
            BlockId.EP_STEPS,
            "step 1: phone number '+234803'",
        ),
        (form(oncall.id, f"<@{ADA}> 2s"), BlockId.EP_STEPS, "step 1: wait '2s' is too short"),
        (
            form(oncall.id, f"<@{ADA}> 5m", f"{NUMBER} soon"),
            BlockId.EP_STEPS,
            "step 2: wait 'soon' is not a duration",
        ),
        (form(oncall.id, "@ada 5m"), BlockId.EP_STEPS, "step 1: '@ada' is not linked"),
        (form(oncall.id), BlockId.EP_STEPS, "Give at least one step"),
        (form("wf-nope", *ok), BlockId.EP_WORKFLOW, "workflow 'wf-nope' does not exist"),
        (
            form(survey.id, *ok),
            BlockId.EP_WORKFLOW,
            "workflow 'Survey' takes no keypad reply with digit 1 (its keys: 2=Liked it)",
        ),
        (
            form(reminder.id, *ok),
            BlockId.EP_WORKFLOW,
            "workflow 'Reminder' needs [date], which an escalation cannot fill",
        ),
        (
            form(oncall.id, *ok, fallback=second.id),
            BlockId.EP_FALLBACK,
            "fallback workflow 'Pager two' is on the same provider as the workflow (intron)",
        ),
        (
            form(oncall.id, *ok, fallback="wf-gone"),
            BlockId.EP_FALLBACK,
            "fallback workflow 'wf-gone' does not exist",
        ),
        (form(oncall.id, *ok, channel="C0GONE"), BlockId.EP_CHANNEL, "channel C0GONE is unknown"),
    ]
    for values, block, expected in cases:
        answer = await save(harness, values)
        assert answer.get("response_action") == "errors", (expected, answer)
        assert expected in answer["errors"].get(block, ""), (expected, answer["errors"])
        assert harness.store.policies.list() == [], expected

    # Every problem at once: one answer lists them, each on its own field
    answer = await save(harness, form(survey.id, f"<@{NOPHONE}> 1s", channel="C0GONE"))
    assert set(answer["errors"]) == {BlockId.EP_WORKFLOW, BlockId.EP_STEPS, BlockId.EP_CHANNEL}
    assert "step 1: wait '1s' is too short" in answer["errors"][BlockId.EP_STEPS]
    assert f"step 1: @{NOPHONE} has no phone number" in answer["errors"][BlockId.EP_STEPS]

    # A duplicate name, whatever its case
    assert (await save(harness, form(oncall.id, *ok)))["response_action"] == "update"
    answer = await save(harness, form(oncall.id, *ok, name="PAYMENTS ON-CALL"))
    assert (
        "name 'PAYMENTS ON-CALL' is already used by another policy"
        in (answer["errors"][BlockId.EP_NAME])
    )
    assert len(harness.store.policies.list()) == 1


async def test_a_profile_phone_added_later_is_accepted(harness: Harness, oncall: Workflow) -> None:
    answer = await save(harness, form(oncall.id, f"<@{NOPHONE}> 5m"))
    assert "has no phone number" in answer["errors"][BlockId.EP_STEPS]
    profile_phone(harness.fake, NOPHONE, "+2348031234569")  # refused ones are not cached
    answer = await save(harness, form(oncall.id, f"<@{NOPHONE}> 5m"))
    assert answer["response_action"] == "update"
    assert harness.store.policies.list()[0].steps[0].call == NOPHONE


# ---------------------------------------------------------------- only admins


@pytest.fixture
async def guarded(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> AsyncIterator:
    app = Harness(
        tmp_path,
        fake_slack,
        sandbox,
        overrides={"default_phone_region": "NG", "admin_user_ids": "UADMIN"},
    )
    await app.start()
    yield app
    await app.stop()


async def test_only_admins_change_policies(guarded: Harness) -> None:
    harness = guarded
    profile_phone(harness.fake, ADA, "+2348031234561")
    oncall = await make_workflow(harness, ONCALL)
    listing = await command(harness, "escalations")  # U1 is not an admin
    assert ActionId.POLICY_NEW not in buttons(listing["blocks"])
    answer = await save(harness, form(oncall.id, f"<@{ADA}> 5m"))
    assert "Only admins may save escalation policies" in answer["errors"][BlockId.EP_NAME]
    assert harness.store.policies.list() == []
    await click(harness, ActionId.POLICY_NEW, "new")
    refused = await next_view(harness.fake, "views.open", 0)
    assert "Only admins may create escalation policies" in shown(refused)

    answer = await save(harness, form(oncall.id, f"<@{ADA}> 5m"), user_id="UADMIN")
    assert answer["response_action"] == "update"
    [policy] = harness.store.policies.list()
    listing = await command(harness, "escalations")
    actions = buttons(listing["blocks"])
    assert actions[ActionId.POLICY_TEST] == [policy.id]  # everyone may test
    assert ActionId.POLICY_EDIT not in actions and ActionId.POLICY_DELETE not in actions


# ---------------------------------------------------------------- kept as code


POLICIES_YAML = """\
policies:
  - name: Payments on-call
    channel: C0123ABCD
    workflow: on-call ALERT
    repeat: 1
    steps:
      - call: U7ADA
        wait: 5m
      - call: "+2348031234567"
        wait: 30s
  - name: Too quick
    channel: C0123ABCD
    workflow: On-call alert
    steps:
      - call: "+2348031234568"
        wait: 2s
  - name: Nobody home
    channel: C0123ABCD
    workflow: On-call alert
    steps:
      - call: U7ADA
        wait: 1m
      - call: U7NONE
        wait: 1m
  - name: Wrong channel
    channel: general
    workflow: No such workflow
    steps:
      - call: "+2348031234599x"
        wait: 1m
  - name: Gone channel
    channel: C0GONE
    workflow: On-call alert
    steps:
      - call: "+2348031234567"
        wait: 1m
"""


@pytest.fixture
async def from_file(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Harness]:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES_YAML)
    profile_phone(fake_slack, ADA, "+2348031234561")
    profile_phone(fake_slack, NOPHONE, None)
    fake_slack.answer_with(
        "conversations.info",
        lambda call: (
            {"ok": False, "error": "channel_not_found"}
            if call.params.get("channel") == "C0GONE"
            else {"ok": True, "channel": {"id": call.params.get("channel"), "is_archived": False}}
        ),
    )
    # The workflow exists at Intron before the app first starts: the first load cannot
    # see it (the list is not fetched yet) and the file is loaded again once it is.
    async with make_client(sandbox.url) as client:
        await client.create_workflow(ONCALL)
    app = Harness(
        tmp_path,
        fake_slack,
        sandbox,
        overrides={"default_phone_region": "NG", "escalation_policies_file": str(path)},
    )
    await app.start()
    yield app
    await app.stop()


async def test_the_file_loads_the_good_and_refuses_the_bad_naming_them(
    from_file: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness = from_file
    caplog.set_level(logging.WARNING)
    policy = await harness.wait_until(
        lambda: harness.store.policies.by_name("payments ON-CALL"), timeout=10
    )
    oncall = next(w for w in harness.store.workflows.all() if w.name == "On-call alert")
    assert policy.id == file_policy_id("Payments on-call") and policy.source == "file"
    assert policy.workflow == oncall.id and policy.repeat == 1
    assert [(s.call, s.wait) for s in policy.steps] == [(ADA, 300.0), (NUMBER, 30.0)]
    assert [p.name for p in harness.store.policies.list()] == ["Payments on-call"]

    refusals = file_refusals(harness.store)
    assert "policy 'Too quick': step 1: wait '2s' is too short; it must be at least 5s" in (
        refusals
    )
    assert any(
        r.startswith("policy 'Nobody home': step 2: <@U7NONE> has no phone number")
        for r in refusals
    ), refusals
    wrong = [r for r in refusals if r.startswith("policy 'Wrong channel'")]
    assert any("channel 'general' is not a channel id" in r for r in wrong), wrong
    assert any("workflow 'No such workflow' does not exist" in r for r in wrong), wrong
    assert any(r.startswith("policy 'Wrong channel': step 1: phone number") for r in wrong), wrong
    gone = [r for r in refusals if r.startswith("policy 'Gone channel'")]
    assert any("channel C0GONE is unknown to the app" in r for r in gone), refusals
    assert not any("2348031234599" in r or "2348031234568" in r for r in refusals)  # masked

    # Listed read-only, with Test; admins (everyone, here) see what was refused
    listing = await command(harness, "escalations")
    assert_valid_blocks(listing["blocks"])
    text = shown(listing["blocks"])
    assert "kept as code (ESCALATION_POLICIES_FILE): read-only here" in text
    assert "ESCALATION_POLICIES_FILE`: 6 refusals at start" in text
    assert "wait &#39;2s&#39;" in text or "wait '2s' is too short" in text
    actions = buttons(listing["blocks"])
    assert actions[ActionId.POLICY_TEST] == [policy.id]
    assert ActionId.POLICY_EDIT not in actions and ActionId.POLICY_DELETE not in actions

    # Next to one made in Slack, which can be edited
    answer = await save(harness, form(oncall.id, f"<@{ADA}> 5m", name="Slack made"))
    assert answer["response_action"] == "update"
    slack_made = harness.store.policies.by_name("Slack made")
    actions = buttons((await command(harness, "escalations"))["blocks"])
    assert actions[ActionId.POLICY_EDIT] == [slack_made.id]
    assert sorted(actions[ActionId.POLICY_TEST]) == sorted([policy.id, slack_made.id])

    # The file's policy cannot be changed from Slack, nor its name taken
    answer = await save(harness, form(oncall.id, f"<@{ADA}> 5m"), policy.id)
    assert "kept as code" in answer["errors"][BlockId.EP_NAME]
    answer = await save(harness, form(oncall.id, f"<@{ADA}> 5m", name="Payments On-Call"))
    assert "already used by another policy (kept as code" in answer["errors"][BlockId.EP_NAME]

    # The Home tab shows the refusals to admins
    assert harness.slack is not None
    await harness.slack.event(app_home_opened("U1"))
    published = await harness.fake.wait_for(lambda f: f.calls("views.publish"))
    home = shown(published[-1].params["view"])
    assert "ESCALATION_POLICIES_FILE" in home and "Too quick" in home

    # The refusals are in the log, numbers masked
    logged = [
        r.getMessage() for r in caplog.records if "ESCALATION_POLICIES_FILE" in r.getMessage()
    ]
    assert any("policy 'Too quick': step 1: wait '2s'" in m for m in logged), logged
    assert not any("2348031234568" in m or "2348031234599" in m for m in logged)


async def test_an_unreadable_file_is_reported_and_the_app_starts(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("policies: [unclosed\n")
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"escalation_policies_file": str(path)})
    await app.start()
    try:
        [refusal] = file_refusals(app.store)
        assert refusal.startswith(f"{path}: cannot be read")
        assert "1 refusal at start" in shown((await command(app, "escalations"))["blocks"])
    finally:
        await app.stop()


# ---------------------------------------------------------------- the shortcut, Test, Home


def message_action(text: str, *, user_id: str = "U1", channel_id: str = "C1") -> bytes:
    payload = {
        "type": "message_action",
        "callback_id": CallbackId.ESCALATE_MESSAGE,
        "trigger_id": new_trigger_id(),
        "action_ts": f"{time.time():.6f}",
        "team": {"id": "T1", "domain": "fake-workspace"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T1"},
        "channel": {"id": channel_id, "name": f"channel-{channel_id.lower()}"},
        "message": {"type": "message", "user": "U9", "ts": "1700000000.000100", "text": text},
        "message_ts": "1700000000.000100",
        "response_url": "http://127.0.0.1:9/response/unset",
        "token": "fake-verification-token",
        "api_app_id": "A1",
        "is_enterprise_install": False,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def test_the_shortcut_opens_the_modal_with_the_message_and_starts(
    harness: Harness, oncall: Workflow
) -> None:
    assert harness.slack is not None
    answer = await save(harness, form(oncall.id, f"<@{ADA}> 5m"))
    assert answer["response_action"] == "update"
    [policy] = harness.store.policies.list()

    text = "Checkout is down: 502s since 10:02 <!channel>"
    response = await harness.slack.post(message_action(text), FORM)
    assert response.status_code == 200
    modal = await next_view(harness.fake, "views.open", 0)
    assert modal["callback_id"] == CallbackId.ESCALATE_MESSAGE_SUBMIT
    assert_valid_view(modal)
    field = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.ESCALATE_TEXT)
    assert field["element"]["initial_value"] == text
    chooser = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.ESCALATE_POLICY)
    assert [o["value"] for o in chooser["element"]["options"]] == [policy.id]

    escalations = harness.running.escalations
    if escalations is None:
        pytest.skip("no EscalationService in this tree (engineer R)")
    answer = await harness.slack.submit_view(
        CallbackId.ESCALATE_MESSAGE_SUBMIT,
        {
            BlockId.ESCALATE_POLICY: {
                ActionId.ESCALATE_POLICY_SELECT: static_select_value(policy.id)
            },
            BlockId.ESCALATE_TEXT: {ActionId.ESCALATE_TEXT_INPUT: plain_text_value(text)},
        },
        private_metadata=modal["private_metadata"],
    )
    assert "Escalating with *Payments on-call*" in answer.text, answer.text
    [record] = escalations.running()
    assert (record.policy_id, record.message, record.source) == (policy.id, text, "shortcut")
    assert record.started_by == "U1" and not record.test


async def test_test_starts_a_test_escalation_shown_in_the_home_tab(
    harness: Harness, oncall: Workflow
) -> None:
    if harness.running.escalations is None:
        pytest.skip("no EscalationService in this tree (engineer R)")
    assert (await save(harness, form(oncall.id, f"<@{ADA}> 5m")))["response_action"] == "update"
    [policy] = harness.store.policies.list()
    await click(harness, ActionId.POLICY_TEST, policy.id)
    reply = await harness.fake.wait_for(
        lambda f: [r for r in f.responses() if "Testing *Payments on-call*" in r.all_text()]
    )
    assert f"<@{ADA}>" in reply[-1].all_text()
    [record] = harness.running.escalations.running()
    assert record.test and record.source == "test" and record.message == "Test of Payments on-call"

    assert harness.slack is not None
    await harness.slack.event(app_home_opened("U1"))
    published = await harness.fake.wait_for(lambda f: f.calls("views.publish"))
    view = published[-1].params["view"]
    assert_valid_view(view)
    text = shown(view)
    assert "Running escalations" in text and "*Payments on-call*" in text
    actions = buttons(view["blocks"])
    assert actions[ActionId.ESCALATION_ACKNOWLEDGE] == [record.id]
    assert actions[ActionId.ESCALATION_RESOLVE] == [record.id]

    # Acknowledged from the Home tab: the chain stops and the tab is published again
    seen = len(harness.fake.calls("views.publish"))
    home_view = {**view, "type": "home", "id": "VHOME", "state": {"values": {}}}
    await click(
        harness,
        ActionId.ESCALATION_ACKNOWLEDGE,
        record.id,
        view=home_view,
        channel_id=None,
        message_ts=None,
    )
    await harness.wait_until(lambda: not harness.running.escalations.running())
    again = await harness.fake.wait_for(
        lambda f: [
            c
            for c in f.calls("views.publish")[seen:]
            if "No escalation is running." in shown(c.params["view"])
        ]
    )
    assert ActionId.ESCALATION_ACKNOWLEDGE not in buttons(again[-1].params["view"]["blocks"])


async def test_an_opted_out_number_is_saved_with_a_warning(
    harness: Harness, oncall: Workflow
) -> None:
    """Chosen: a warning, not a refusal (the step cannot reach them; the rest of the chain
    still works), on the saved confirmation and in the list."""
    harness.store.consent.add([NUMBER], by="U9", source="test")
    answer = await save(harness, form(oncall.id, f"<@{ADA}> 5m", f"{NUMBER} 30s"))
    assert answer["response_action"] == "update"
    saved = shown(answer["view"])
    assert "step 2: +234•••••4567 is on the opt-out list" in saved
    assert len(harness.store.policies.list()) == 1
    listing = shown((await command(harness, "escalations"))["blocks"])
    assert "step 2: +234•••••4567 is on the opt-out list" in listing
    assert f"<@{ADA}> is on the opt-out list" not in listing


async def test_a_file_policy_loads_when_slack_cannot_answer_at_start(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    """Chosen: a profile that cannot be read at start is a warning, not a refusal (the step
    reads it again when it runs): a Slack hiccup at start must not drop a pager."""
    path = tmp_path / "policies.yaml"
    path.write_text(
        "policies:\n  - name: Pager\n    channel: C0123ABCD\n    workflow: On-call alert\n"
        "    steps:\n      - {call: U7ADA, wait: 1m}\n"
    )
    async with make_client(sandbox.url) as client:
        await client.create_workflow(ONCALL)
    fake_slack.answer_with("users.info", lambda call: {"ok": False, "error": "fatal_error"})
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"escalation_policies_file": str(path)})
    await app.start()
    try:
        policy = await app.wait_until(lambda: app.store.policies.by_name("Pager"), timeout=10)
        assert policy.steps[0].call == ADA and policy.source == "file"
        assert file_refusals(app.store) == []
    finally:
        await app.stop()
