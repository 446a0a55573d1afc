"""Workflows that live in this app (Intron's direct API, BizPhone): made, edited and
deleted from Slack over signed HTTP, each provider's rules refused on the field, no
provider call and no quota; workflows kept as code (WORKFLOWS_FILE) loaded, listed
and read-only.

Until the registry enables the new providers, each test adds them to the app with
`open_providers` wrapped: stand-ins carrying the packages' own capabilities and voices,
which fail the test if a workflow change ever reaches them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bot.app
from bot.core.workflow_checks import check_app_workflow, use_flow_check
from bot.input.workflows_file import load_workflows_file
from bot.providers.base import WorkflowDraft
from bot.providers.bizphone import provider as bizphone
from bot.providers.bizphone.models import flow_problems
from bot.providers.intron_direct import provider as intron_direct
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import Sandbox
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    checkboxes_value,
    plain_text_value,
    static_select_value,
)
from tests.test_slack_app import command
from tests.test_workflows_slack import buttons, from_message, next_view

DIRECT, BIZ = intron_direct.PROVIDER_ID, bizphone.PROVIDER_ID

use_flow_check(BIZ, flow_problems)  # as the wiring does where the providers are opened


class StandIn:
    """An app-side provider as the interface shows it; workflow changes never reach it."""

    sandbox = False
    callback_url = None

    def __init__(self, provider_id: str, capabilities, voices) -> None:
        self.id = provider_id
        self.capabilities = capabilities
        self._voices = voices

    def voices(self):
        return self._voices

    def wait_time(self, purpose: str) -> float:
        return 0.0

    async def aclose(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{self.id}.{name} was asked for: its workflows live in the app")


def with_app_side(original):
    def open_providers(*args: Any, **kwargs: Any) -> dict[str, Any]:
        opened = dict(original(*args, **kwargs))
        opened[DIRECT] = StandIn(DIRECT, intron_direct.CAPABILITIES, intron_direct.VOICES)
        opened[BIZ] = StandIn(BIZ, bizphone.CAPABILITIES, bizphone.VOICES)
        return opened

    return open_providers


WORKFLOWS_YAML = """
workflows:
  - name: Delivery notice
    provider: intron-direct
    message: "Hello {{name}}, your parcel comes on {{date}}. Press 1 to confirm, 2 to move it."
    voice: en-female-1
    keypad: {"1": "Confirm", "2": "Move it|We will call you to move it"}
  - name: Recorded notice
    provider: intron-direct
    audio_url: https://example.com/notice.mp3
  - name: Payment reminder
    provider: bizphone
    call_flow:
      steps:
        - name: gather
          message: {msg: "Dear {{name}}, {{amount}} is due on {{dueDate}}. Press 1 to speak to us."}
          branches:
            - digit: "1"
              callFlow: {steps: [{name: transfer, destination: "Ext:1000"}]}
            - default: true
              callFlow: {steps: [{name: play, message: {msg: "Thank you. Goodbye."}}]}
  - name: Bad digit
    provider: bizphone
    call_flow:
      steps:
        - name: gather
          message: {msg: "Press a key"}
          branches:
            - digit: "1"
              callFlow: {steps: [{name: play, message: {msg: "One"}}]}
            - digit: "12"
              callFlow: {steps: [{name: play, message: {msg: "Twelve"}}]}
  - name: Too many retries
    provider: intron-direct
    message: Hello
    retry_count: 4
  - name: Nowhere
    provider: bizphone
    call_flow: {steps: [{name: transfer, destination: "1000"}]}
  - name: Unknown provider
    provider: twilio
    message: Hello
"""


@pytest.fixture
async def app_side(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    monkeypatch.setattr(bot.app, "open_providers", with_app_side(bot.app.open_providers))
    harness = Harness(tmp_path, fake_slack, sandbox)
    await harness.start()
    yield harness
    await harness.stop()


# ---------------------------------------------------------------- the modal's fields


def direct_form(
    name: str = "Delivery",
    message: str | None = "Hello {{name}}, press 1.",
    *,
    audio: str | None = None,
    retries: str | None = None,
    delay: str | None = None,
    keypad: str | None = "1=Confirm|Thank you, see you then",
    voice: str | None = "en-female-1",
) -> dict:
    return {
        BlockId.WF_NAME: {ActionId.WF_NAME_INPUT: plain_text_value(name)},
        BlockId.WF_DESCRIPTION: {ActionId.WF_DESCRIPTION_INPUT: plain_text_value(None)},
        BlockId.WF_MESSAGE: {ActionId.WF_MESSAGE_INPUT: plain_text_value(message)},
        BlockId.WF_AUDIO: {ActionId.WF_AUDIO_INPUT: plain_text_value(audio)},
        BlockId.WF_VOICE: {ActionId.WF_VOICE_INPUT: plain_text_value(voice)},
        BlockId.WF_CALLER: {ActionId.WF_CALLER_INPUT: plain_text_value("+2348012345678")},
        BlockId.WF_LANGUAGE: {ActionId.WF_LANGUAGE_INPUT: plain_text_value("en")},
        BlockId.WF_RETRY_COUNT: {ActionId.WF_RETRY_COUNT_INPUT: plain_text_value(retries)},
        BlockId.WF_RETRY_DELAY: {ActionId.WF_RETRY_DELAY_INPUT: plain_text_value(delay)},
        BlockId.WF_OPTIONS: {ActionId.WF_OPTIONS_INPUT: plain_text_value(keypad)},
    }


def biz_form(
    name: str = "Payment",
    message: str | None = "Dear {{name}}, press 1 to speak to us.",
    *,
    lines: str | None = "1=transfer:Ext:1000\n2=Paid|say:Thank you\n3=end",
    default: str | None = None,
    flow: str | None = None,
    pitch: str | None = None,
    rate: str | None = None,
    recording: bool = False,
) -> dict:
    return {
        BlockId.WF_NAME: {ActionId.WF_NAME_INPUT: plain_text_value(name)},
        BlockId.WF_DESCRIPTION: {ActionId.WF_DESCRIPTION_INPUT: plain_text_value(None)},
        BlockId.WF_MESSAGE: {ActionId.WF_MESSAGE_INPUT: plain_text_value(message)},
        BlockId.WF_OPTIONS: {ActionId.WF_OPTIONS_INPUT: plain_text_value(lines)},
        BlockId.WF_DEFAULT: {ActionId.WF_DEFAULT_INPUT: plain_text_value(default)},
        BlockId.WF_FLOW: {ActionId.WF_FLOW_INPUT: plain_text_value(flow)},
        BlockId.WF_PITCH: {ActionId.WF_PITCH_INPUT: plain_text_value(pitch)},
        BlockId.WF_RATE: {ActionId.WF_RATE_INPUT: plain_text_value(rate)},
        BlockId.WF_RECORDING: {
            ActionId.WF_RECORDING_TOGGLE: checkboxes_value(["on"] if recording else [])
        },
    }


async def submit(harness: Harness, callback: str, values: dict, metadata: str, view_id: str):
    assert harness.slack is not None
    answer = await harness.slack.submit_view(
        callback, values, private_metadata=metadata, view_id=view_id
    )
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else {}


def metadata(provider: str, workflow_id: str | None = None) -> str:
    return json.dumps({"provider": provider, "workflow_id": workflow_id})


async def new_workflow_modal(harness: Harness, provider: str, seen: int) -> dict:
    """New workflow → the provider chooser → that provider's modal."""
    await from_message(harness, ActionId.WORKFLOW_NEW, "new")
    chooser = await next_view(harness.fake, "views.open", seen)
    assert chooser["callback_id"] == CallbackId.WORKFLOW_PROVIDER
    assert_valid_view(chooser)
    [select] = [b for b in chooser["blocks"] if b.get("block_id") == BlockId.WF_PROVIDER]
    offered = [o["value"] for o in select["element"]["options"]]
    assert offered == ["intron", DIRECT, BIZ]
    answer = await submit(
        harness,
        CallbackId.WORKFLOW_PROVIDER,
        {BlockId.WF_PROVIDER: {ActionId.WF_PROVIDER_SELECT: static_select_value(provider)}},
        chooser["private_metadata"],
        "VCHOOSE",
    )
    assert answer["response_action"] == "update"
    assert_valid_view(answer["view"])
    return answer["view"]


# ---------------------------------------------------------------- create, edit, delete


async def test_intron_direct_workflow_made_edited_deleted(app_side: Harness) -> None:
    harness, fake = app_side, app_side.fake
    modal = await new_workflow_modal(harness, DIRECT, 0)
    shown = {b.get("block_id") for b in modal["blocks"]}
    assert {BlockId.WF_AUDIO, BlockId.WF_RETRY_COUNT, BlockId.WF_VOICE} <= shown
    answer = await submit(
        harness,
        CallbackId.WORKFLOW_EDIT,
        direct_form(retries="2", delay="30"),
        modal["private_metadata"],
        "VCHOOSE",
    )
    assert answer["response_action"] == "update", answer
    created = await harness.wait_until(
        lambda: [w for w in harness.running.workflows.cached() if w.provider == DIRECT]
    )
    [workflow] = created
    assert workflow.id.startswith("wf-")
    assert workflow.keypad == {"1": "Confirm"}
    assert workflow.options == {
        "voice": "en-female-1",
        "caller_id": "+2348012345678",
        "language": "en",
        "retry_count": 2,
        "retry_delay": 30,
        "responses": {"1": "Thank you, see you then"},
    }
    await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "Created *Delivery*" in c.all_text()]
    )

    listing = (await command(harness, "workflows")).json()
    assert_valid_blocks(listing["blocks"])
    assert "*Delivery* · Intron (direct)" in json.dumps(listing["blocks"], ensure_ascii=False)
    assert workflow.id in buttons(listing["blocks"])[ActionId.WORKFLOW_EDIT]

    # Edit: the modal comes filled in, the audio replaces the message
    await from_message(harness, ActionId.WORKFLOW_EDIT, workflow.id)
    edit = await next_view(fake, "views.open", 1)
    assert_valid_view(edit)
    assert "1=Confirm|Thank you, see you then" in json.dumps(edit)
    await submit(
        harness,
        CallbackId.WORKFLOW_EDIT,
        direct_form(message=None, audio="https://example.com/notice.wav", keypad=None),
        edit["private_metadata"],
        "VEDIT",
    )
    await harness.wait_until(
        lambda: (
            harness.running.workflows.get(workflow.id).audio_url == "https://example.com/notice.wav"
        )
    )
    edited = harness.running.workflows.get(workflow.id)
    assert edited.message == "" and edited.keypad == {}

    # Delete: no provider call (the stand-in would fail the job)
    await from_message(harness, ActionId.WORKFLOW_DELETE, workflow.id)
    confirm = await next_view(fake, "views.open", 2)
    assert "from Intron" not in json.dumps(confirm)
    await submit(harness, CallbackId.WORKFLOW_DELETE, {}, confirm["private_metadata"], "VDEL")
    await harness.wait_until(lambda: harness.running.workflows.get(workflow.id) is None)
    await harness.settled()
    trail = [(row["action"], row["target"]) for row in harness.store.audit.trail()]
    for action in ("workflow.created", "workflow.updated", "workflow.deleted"):
        assert (action, workflow.id) in trail


async def test_bizphone_workflow_from_the_builder_and_pasted_json(app_side: Harness) -> None:
    harness, fake = app_side, app_side.fake
    modal = await new_workflow_modal(harness, BIZ, 0)
    assert {BlockId.WF_FLOW, BlockId.WF_PITCH, BlockId.WF_RECORDING} <= {
        b.get("block_id") for b in modal["blocks"]
    }
    answer = await submit(
        harness,
        CallbackId.WORKFLOW_EDIT,
        biz_form(pitch="3", rate="7", recording=True, default="say:Sorry, goodbye."),
        modal["private_metadata"],
        "VCHOOSE",
    )
    assert answer["response_action"] == "update", answer
    [workflow] = await harness.wait_until(
        lambda: [w for w in harness.running.workflows.cached() if w.provider == BIZ]
    )
    [gather] = workflow.call_flow["steps"]
    assert gather["name"] == "gather"
    assert gather["message"] == {
        "msg": "Dear {{name}}, press 1 to speak to us.",
        "pitch": 3,
        "rate": 7,
    }
    branches = gather["branches"]
    assert branches[0] == {
        "digit": "1",
        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
    }
    assert branches[-1]["default"] is True
    assert workflow.keypad == {"1": "transfer to Ext:1000", "2": "Paid", "3": "end"}
    assert workflow.options["recording"] is True
    assert flow_problems(workflow.call_flow) == []

    # Edit: the builder's lines come back; paste a flow instead
    await from_message(harness, ActionId.WORKFLOW_EDIT, workflow.id)
    edit = await next_view(fake, "views.open", 1)
    assert "1=transfer:Ext:1000" in json.dumps(edit)
    pasted = {"steps": [{"name": "play", "message": {"msg": "Hello {{name}}, bye."}}]}
    await submit(
        harness,
        CallbackId.WORKFLOW_EDIT,
        biz_form(message=None, lines=None, flow=json.dumps({"callFlow": pasted})),
        edit["private_metadata"],
        "VEDIT",
    )
    await harness.wait_until(lambda: harness.running.workflows.get(workflow.id).call_flow == pasted)
    assert harness.running.workflows.get(workflow.id).variables == ["name"]

    await from_message(harness, ActionId.WORKFLOW_DELETE, workflow.id)
    confirm = await next_view(fake, "views.open", 2)
    await submit(harness, CallbackId.WORKFLOW_DELETE, {}, confirm["private_metadata"], "VDEL")
    await harness.wait_until(lambda: harness.running.workflows.get(workflow.id) is None)


# ---------------------------------------------------------------- refused on the field

LONG = "x" * 990 + " {{name}}"  # 999 as written: 1,000 is BizPhone's limit once filled in


@pytest.mark.parametrize(
    ("provider", "values", "block", "expected"),
    [
        (BIZ, biz_form(lines="1=say:One\n1=say:Again"), BlockId.WF_OPTIONS, "line 2: digit 1 is"),
        (BIZ, biz_form(pitch="10"), BlockId.WF_PITCH, "pitch '10' is not a whole number from 0"),
        (BIZ, biz_form(message="x" * 1001), BlockId.WF_MESSAGE, "1,001 characters"),
        (
            BIZ,
            biz_form(lines="1=transfer:1000"),
            BlockId.WF_OPTIONS,
            "transfer destination '1000' is neither an E.164 number",
        ),
        (BIZ, biz_form(lines="1=dance"), BlockId.WF_OPTIONS, "is not say:<text>"),
        (
            BIZ,
            biz_form(
                flow=json.dumps(
                    {
                        "steps": [
                            {
                                "name": "gather",
                                "message": {"msg": "Press"},
                                "branches": [
                                    {
                                        "digit": "1",
                                        "callFlow": {
                                            "steps": [
                                                {
                                                    "name": "transfer",
                                                    "destination": "+2348012345678",
                                                }
                                            ]
                                        },
                                    },
                                    {
                                        "digit": "1",
                                        "callFlow": {
                                            "steps": [{"name": "transfer", "destination": "Ext:1"}]
                                        },
                                    },
                                ],
                            }
                        ]
                    }
                )
            ),
            BlockId.WF_FLOW,
            "callFlow.steps[0].branches[1].digit: digit '1' is already taken",
        ),
        (BIZ, biz_form(flow="{steps"), BlockId.WF_FLOW, "This is not JSON"),
        (
            DIRECT,
            direct_form(audio="https://example.com/a.mp3"),
            BlockId.WF_AUDIO,
            "either a message or an audio URL, not both",
        ),
        (DIRECT, direct_form(retries="4"), BlockId.WF_RETRY_COUNT, "'4' is not a whole number"),
        (
            DIRECT,
            direct_form(message=None, audio="ftp://example.com/a.txt"),
            BlockId.WF_AUDIO,
            "'ftp://example.com/a.txt' is not an http(s) URL of an .mp3 or .wav file",
        ),
        (DIRECT, direct_form(message=None), BlockId.WF_MESSAGE, "or give an audio URL"),
        (DIRECT, direct_form(keypad="12=Twelve"), BlockId.WF_OPTIONS, "'12' is not one keypad"),
        (DIRECT, direct_form(voice="en female"), BlockId.WF_VOICE, "is not a voice id"),
    ],
)
async def test_refused_on_the_field(
    app_side: Harness, provider: str, values: dict, block: str, expected: str
) -> None:
    answer = await submit(app_side, CallbackId.WORKFLOW_EDIT, values, metadata(provider), "VE")
    assert answer["response_action"] == "errors", answer
    assert expected in answer["errors"][block], answer["errors"]
    assert not [w for w in app_side.running.workflows.cached() if w.provider == provider]


def test_message_length_counts_once_filled_in() -> None:
    flow = {"steps": [{"name": "play", "message": {"msg": LONG}}]}
    assert flow_problems(flow) == []
    assert flow_problems(flow, {"name": "Ada Lovelace"})  # 1,011 once filled in
    draft = WorkflowDraft(name="Long", message="x" * 1001)
    assert "1,001 characters" in check_app_workflow(draft, BIZ)["message"]


# ---------------------------------------------------------------- kept as code


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workflows.yaml"
    path.write_text(text)
    return path


def test_the_file_loads_the_valid_and_names_the_refused(tmp_path: Path) -> None:
    workflows, refusals = load_workflows_file(
        write(tmp_path, WORKFLOWS_YAML), ["intron", DIRECT, BIZ]
    )
    by_id = {w.id: w for w in workflows}
    assert list(by_id) == ["file-delivery-notice", "file-recorded-notice", "file-payment-reminder"]
    assert all(w.read_only for w in workflows)
    notice = by_id["file-delivery-notice"]
    assert notice.keypad == {"1": "Confirm", "2": "Move it"}
    assert notice.options == {
        "voice": "en-female-1",
        "responses": {"2": "We will call you to move it"},
    }
    assert by_id["file-recorded-notice"].audio_url == "https://example.com/notice.mp3"
    reminder = by_id["file-payment-reminder"]
    assert reminder.call_flow["steps"][0]["name"] == "gather"
    assert reminder.variables == ["name", "amount", "dueDate"]  # read from its first message
    assert refusals == [
        "workflow 'Bad digit': call_flow.steps[0].branches[1].digit: "
        "digit '12' is not one keypad key: 0-9, * or #",
        "workflow 'Too many retries': retry_count: retry_count '4' is not a whole number "
        "from 0 to 3.",
        "workflow 'Nowhere': call_flow.steps[0].destination: transfer destination '1000' is "
        "neither an E.164 number (+6591991191) nor an extension (Ext:1000)",
        "workflow 'Unknown provider': provider: 'twilio' is not an enabled provider "
        "(bizphone, intron, intron-direct)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workflows: [", "cannot be read"),
        ("- name: x", "expected 'workflows:'"),
        ("workflows:\n  - name: A\n    provider: intron-direct\n    mesage: Hi\n", "mesage: not a"),
        (
            "workflows:\n  - {name: A, provider: bizphone, message: Hi}\n"
            "  - {name: a, provider: bizphone, message: Hi}\n",
            "workflow 'a': name: 'a' is already used by 'A'",
        ),
        ("workflows:\n  - {provider: bizphone, message: Hi}\n", "workflows[0]: name: None"),
        (
            "workflows:\n  - {name: P, provider: bizphone, message: Hi, pitch: 10}\n",
            "workflow 'P': pitch: pitch '10' is not a whole number from 0 to 9",
        ),
    ],
)
def test_the_file_refuses_what_it_cannot_use(tmp_path: Path, text: str, expected: str) -> None:
    _, refusals = load_workflows_file(write(tmp_path, text), ["intron", DIRECT, BIZ])
    assert any(expected in r for r in refusals), refusals


def test_a_missing_file_is_refused_not_raised(tmp_path: Path) -> None:
    workflows, refusals = load_workflows_file(tmp_path / "nope.yaml", [DIRECT])
    assert workflows == [] and "cannot be read" in refusals[0]


async def test_kept_as_code_listed_and_not_editable(app_side: Harness, tmp_path: Path) -> None:
    harness, fake = app_side, app_side.fake
    refusals = harness.running.workflows.load_file(write(tmp_path, WORKFLOWS_YAML))
    assert len(refusals) == 4
    listing = (await command(harness, "workflows")).json()
    text = json.dumps(listing["blocks"], ensure_ascii=False)
    assert "*Payment reminder* · BizPhone" in text and "_kept as code_" in text
    actions = buttons(listing["blocks"])
    assert "file-payment-reminder" in actions[ActionId.WORKFLOW_SEND]
    assert not any(v.startswith("file-") for v in actions.get(ActionId.WORKFLOW_EDIT, []))
    assert not any(v.startswith("file-") for v in actions.get(ActionId.WORKFLOW_DELETE, []))

    # A forged Edit or Delete is refused, and so is a forged save
    await from_message(harness, ActionId.WORKFLOW_EDIT, "file-payment-reminder")
    refused = await next_view(fake, "views.open", 0)
    assert "kept as code" in json.dumps(refused)
    await from_message(harness, ActionId.WORKFLOW_DELETE, "file-payment-reminder")
    refused = await next_view(fake, "views.open", 1)
    assert "kept as code" in json.dumps(refused)
    answer = await submit(
        harness,
        CallbackId.WORKFLOW_EDIT,
        biz_form(name="Payment reminder"),
        metadata(BIZ, "file-payment-reminder"),
        "VF",
    )
    assert answer["response_action"] == "errors"
    assert "kept as code" in answer["errors"][BlockId.WF_NAME]
    with pytest.raises(Exception, match="kept as code"):
        await harness.running.workflows.delete("file-payment-reminder", actor="U1")

    # Loading again replaces them (a restart with a changed file); none: all gone
    harness.running.workflows.load_file(write(tmp_path, "workflows: []\n"))
    assert not [w for w in harness.running.workflows.cached() if w.read_only]


async def test_refresh_leaves_app_side_workflows_alone(app_side: Harness) -> None:
    service = app_side.running.workflows
    draft = WorkflowDraft(name="Kept", message="Hello {{name}}")
    made = await service.create(service.providers.get(DIRECT), draft, actor="U1")
    await service.refresh(service.providers.get(DIRECT))
    await service.refresh()
    assert service.get(made.id) == made


async def test_view_shows_this_apps_records_without_asking_the_provider(
    app_side: Harness,
) -> None:
    service = app_side.running.workflows
    draft = WorkflowDraft(name="Viewed", message="Hello {{name}}", keypad={"1": "Yes"})
    made = await service.create(service.providers.get(BIZ), draft, actor="U1")
    await from_message(app_side, ActionId.WORKFLOW_VIEW, made.id)
    shown = await next_view(app_side.fake, "views.open", 0)
    assert_valid_view(shown)
    assert ActionId.WORKFLOW_CALLS not in json.dumps(shown)  # BizPhone lists no calls
    await app_side.settled()
    assert [j for j in app_side.store.jobs.pending() if j.kind == "slack.workflow.view"] == []


async def test_editing_a_bizphone_workflow_made_from_message_and_keypad(
    app_side: Harness,
) -> None:
    """One with no flow of its own (the sandbox's demo one, say) opens in the builder."""
    service = app_side.running.workflows
    draft = WorkflowDraft(name="Plain", message="Hello {{name}}", keypad={"1": "Yes"})
    made = await service.create(service.providers.get(BIZ), draft, actor="U1")
    await from_message(app_side, ActionId.WORKFLOW_EDIT, made.id)
    shown = await next_view(app_side.fake, "views.open", 0)
    assert_valid_view(shown)
    assert "Hello {{name}}" in json.dumps(shown)
    assert "1=Yes|say:You chose: Yes. Thank you, goodbye." in json.dumps(shown)
