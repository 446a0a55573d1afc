"""The app-side providers place calls with what the workflow saved: Intron direct's
voice, caller id, language, retries and per-digit response messages, BizPhone's
recording, pitch and rate — checked in what each sandbox received, over a real socket.
Workflows are made the way the app stores them (`check_app_workflow`, `app_workflow`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.core.workflow_checks import app_workflow, check_app_workflow, use_flow_check
from bot.providers.base import Order, OrderRecipient, Workflow, WorkflowDraft
from bot.providers.bizphone import provider as bizphone
from bot.providers.bizphone.models import CallFlow, flow_problems
from bot.providers.bizphone.sandbox import SandboxConfig as BizSandboxConfig
from bot.providers.bizphone.sandbox import create_sandbox_app as biz_sandbox
from bot.providers.intron_direct.client import IntronDirectClient
from bot.providers.intron_direct.provider import BatchRef, IntronDirectProvider
from bot.providers.intron_direct.sandbox import SandboxConfig, create_sandbox_app
from bot.serving import RunningServer, start_server
from tests.conftest import FAST_RETRIES

NUMBER = "+234803123456{}"
CALLBACK = "https://bot.example.com/callbacks/intron-direct/token"
BIZ_KEY = "bizphone-test-key-0123"

use_flow_check("bizphone", flow_problems)  # as the wiring does where the providers are opened


def saved(provider: str, **fields: Any) -> Workflow:
    """A workflow as the app stores it, after its checks passed."""
    draft = WorkflowDraft(**({"name": "Reminder", "message": ""} | fields))
    assert check_app_workflow(draft, provider) == {}
    return app_workflow(draft, provider, "wf-1")


def order(wf: Workflow, *digits: str, voice: str | None = None) -> Order:
    recipients = [
        OrderRecipient(i + 1, NUMBER.format(d), {"name": f"N{i + 1}"}) for i, d in enumerate(digits)
    ]
    return Order(request_id="rq-0123abcd", workflow=wf, recipients=recipients, voice=voice)


@dataclass
class Box:
    server: RunningServer
    state: Any

    @property
    def url(self) -> str:
        return self.server.url


# ---------------------------------------------------------------- Intron direct

DIRECT_OPTIONS = {
    "voice": "en-male-2",
    "caller_id": "+2348012345678",
    "language": "en-NG",
    "retry_count": 2,
    "retry_delay": 15,
    "responses": {"1": "Thank you [name], see you then.", "2": "We will call you back."},
}


@pytest.fixture
async def direct() -> AsyncIterator[Box]:
    # Calls wait long before their events, so none is sent to the made-up callback URL.
    app = create_sandbox_app(SandboxConfig(event_delay=60.0, concurrent_calls=10))
    box = Box(await start_server(app), app.state.sandbox)
    yield box
    await box.server.stop()


def direct_provider(box: Box, callback_url: str | None = CALLBACK) -> IntronDirectProvider:
    client = IntronDirectClient(
        "test-key-0123456789", box.url, policy=FAST_RETRIES, concurrent_calls=10
    )
    return IntronDirectProvider(client, callback_url=callback_url)


async def place(box: Box, o: Order, callback_url: str | None = CALLBACK) -> list[dict]:
    """What the sandbox received for each recipient, batch options filled in."""
    provider = direct_provider(box, callback_url)
    try:
        ref = await provider.submit(o, before_send=lambda: None)
    finally:
        await provider.aclose()
    return [box.state.calls[c].request for c in BatchRef.parse(ref).call_ids]


def keypad_workflow(**options: Any) -> Workflow:
    return saved(
        "intron-direct",
        message="Hello [name], press 1 to confirm or 2 to move it.",
        keypad={"1": "Confirm", "2": "Move it"},
        options=options,
    )


async def test_a_call_carries_every_option_the_workflow_saved(direct: Box) -> None:
    (request,) = await place(direct, order(keypad_workflow(**DIRECT_OPTIONS), "2"))
    assert request == {
        "phone_number": NUMBER.format(2),
        "message": "Hello {{name}}, press 1 to confirm or 2 to move it.",
        "variables": {"name": "N1"},
        "voice": "en-male-2",
        "caller_id": "+2348012345678",
        "language": "en-NG",
        "retry_count": 2,
        "retry_delay": 15,
        "callback_url": CALLBACK,
        "dtmf_config": {
            "enabled": True,
            "timeout": 10,
            "max_digits": 1,
            "actions": {
                "1": {
                    "action": "webhook",
                    "url": CALLBACK,
                    "response_message": "Thank you N1, see you then.",
                },
                "2": {
                    "action": "webhook",
                    "url": CALLBACK,
                    "response_message": "We will call you back.",
                },
            },
        },
    }


async def test_a_batch_gives_each_call_the_options_and_its_own_response(direct: Box) -> None:
    requests = await place(direct, order(keypad_workflow(**DIRECT_OPTIONS), "2", "3"))
    assert [r["phone_number"] for r in requests] == [NUMBER.format(2), NUMBER.format(3)]
    for n, request in enumerate(requests, start=1):
        assert request["variables"] == {"name": f"N{n}"}
        assert (request["voice"], request["caller_id"], request["language"]) == (
            "en-male-2",
            "+2348012345678",
            "en-NG",
        )
        assert (request["retry_count"], request["retry_delay"]) == (2, 15)
        actions = request["dtmf_config"]["actions"]
        assert actions["1"]["response_message"] == f"Thank you N{n}, see you then."
        assert actions["2"]["response_message"] == "We will call you back."


async def test_without_options_the_defaults_are_sent_as_before(direct: Box) -> None:
    (request,) = await place(direct, order(keypad_workflow(), "2"))
    assert request == {
        "phone_number": NUMBER.format(2),
        "message": "Hello {{name}}, press 1 to confirm or 2 to move it.",
        "variables": {"name": "N1"},
        "voice": "en-female-1",
        "callback_url": CALLBACK,
        "dtmf_config": {"enabled": True, "timeout": 10, "max_digits": 1, "actions": {}},
    }


@pytest.mark.parametrize(
    ("options", "voice", "expected"),
    [
        ({}, "en-female-1", "en-female-1"),  # the order's voice, one of ours
        ({}, "igbo/female", "en-female-1"),  # not ours: the default
        ({"voice": "en-male-2"}, "en-female-1", "en-male-2"),  # the workflow's first
        ({"voice": ""}, None, "en-female-1"),  # an empty option is no option
    ],
)
async def test_the_voice_is_the_workflows_else_the_orders_else_the_default(
    direct: Box, options: dict, voice: str | None, expected: str
) -> None:
    (request,) = await place(direct, order(keypad_workflow(**options), "2", voice=voice))
    assert request["voice"] == expected


async def test_an_audio_workflow_sends_its_audio_url_and_options(direct: Box) -> None:
    wf = saved(
        "intron-direct",
        audio_url="https://example.com/notice.mp3",
        options={"caller_id": "+2348012345678", "retry_count": 0},
    )
    (request,) = await place(direct, order(wf, "5"))
    assert request["audio_url"] == "https://example.com/notice.mp3"
    assert "message" not in request and "dtmf_config" not in request
    assert (request["caller_id"], request["retry_count"]) == ("+2348012345678", 0)


async def test_without_a_callback_url_no_webhook_action_is_sent(direct: Box) -> None:
    (request,) = await place(direct, order(keypad_workflow(**DIRECT_OPTIONS), "2"), None)
    assert request["dtmf_config"]["actions"] == {}
    assert request["voice"] == "en-male-2" and request["retry_delay"] == 15


# ---------------------------------------------------------------- BizPhone


@pytest.fixture
async def biz() -> AsyncIterator[Box]:
    app = biz_sandbox(BizSandboxConfig(api_key=BIZ_KEY, call_seconds=0.05))
    box = Box(await start_server(app), app.state.sandbox)
    yield box
    await box.server.stop()


async def place_biz(box: Box, wf: Workflow, *, recording: bool = False) -> Any:
    provider = bizphone.open_bizphone(
        api_key=BIZ_KEY,
        base_url=box.url,
        caller_id="+6582674904",
        policy=FAST_RETRIES,
        enable_call_recording=recording,
    )
    try:
        ref = await provider.submit(order(wf, "5"), before_send=lambda: None)
    finally:
        await provider.aclose()
    return box.state.requests[ref]


def biz_workflow(**options: Any) -> Workflow:
    return saved(
        "bizphone",
        message="Hello [name], press 1 or 2.",
        keypad={"1": "Yes", "2": "No"},
        options=options,
    )


def messages(flow: Any) -> list[dict]:
    """Every message of a call flow, depth first."""
    found: list[dict] = []
    if isinstance(flow, list):
        for item in flow:
            found += messages(item)
    elif isinstance(flow, dict):
        if isinstance(flow.get("message"), dict):
            found.append(flow["message"])
        for value in flow.values():
            found += messages(value)
    return found


@pytest.mark.parametrize(
    ("options", "global_setting", "recorded"),
    [
        ({"recording": True}, False, True),
        ({"recording": False}, True, False),
        ({}, True, True),
        ({}, False, False),
    ],
)
async def test_recording_is_the_workflows_else_the_global_setting(
    biz: Box, options: dict, global_setting: bool, recorded: bool
) -> None:
    sim = await place_biz(biz, biz_workflow(**options), recording=global_setting)
    assert sim.recording is recorded


async def test_pitch_and_rate_go_on_every_message_of_the_built_flow(biz: Box) -> None:
    sim = await place_biz(biz, biz_workflow(pitch=7, rate=3))
    said = messages(sim.flow.model_dump(mode="json", exclude_none=True))
    assert len(said) == 4  # the gather, two digits, the default
    assert all((m["pitch"], m["rate"]) == (7, 3) for m in said)
    assert said[0]["msg"] == "Hello {{name}}, press 1 or 2."


async def test_without_pitch_and_rate_the_built_flow_is_as_before(biz: Box) -> None:
    sim = await place_biz(biz, biz_workflow())
    assert sim.flow == CallFlow.model_validate(bizphone.call_flow_for(biz_workflow()))
    sent = sim.flow.model_dump(mode="json", exclude_none=True)
    assert not any({"pitch", "rate"} & m.keys() for m in messages(sent))
    assert sim.recording is False


def test_a_messages_own_pitch_is_kept_in_a_flow_of_its_own() -> None:
    flow = {
        "steps": [
            {"name": "play", "message": {"msg": "One", "pitch": 2}},
            {"name": "play", "message": {"msg": "Two"}},
        ]
    }
    wf = saved("bizphone", call_flow=flow, options={"pitch": 8, "rate": 6})
    said = messages(bizphone.call_flow_for(wf))
    assert [(m["msg"], m["pitch"], m["rate"]) for m in said] == [("One", 2, 6), ("Two", 8, 6)]
