"""BizPhone (seed 004): the models against the seed's own examples and each invalid case,
the client and the provider against the sandbox over a real socket."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bot.core.retry import PROVIDER_RETRIES
from bot.providers.base import (
    AuthenticationError,
    BadCallback,
    CallOutcome,
    Order,
    OrderRecipient,
    OutcomeUnknownError,
    RefusedError,
    ServerError,
    Workflow,
)
from bot.providers.bizphone import models
from bot.providers.bizphone.client import API_KEY_HEADER, BizPhoneClient
from bot.providers.bizphone.provider import (
    CAPABILITIES,
    BizPhoneProvider,
    call_flow_for,
    open_bizphone,
    problems_for,
    request_id_for,
)
from bot.providers.bizphone.sandbox import Fault, SandboxConfig, SandboxState, create_sandbox_app
from bot.providers.fields import UNREADABLE
from bot.serving import RunningServer, start_server

CONTRACTS = Path(__file__).parent / "contracts" / "bizphone"
FAST_RETRIES = PROVIDER_RETRIES.faster(50)
KEY = "bizphone-test-key-0123"
NUMBER = "+234803123456{}"


def contract(name: str) -> Any:
    return json.loads((CONTRACTS / name).read_text())


def problems(body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        models.CallRequest.model_validate(body)
    return "; ".join(models.describe(caught.value))


# ---------------------------------------------------------------- models


def test_the_seeds_request_is_accepted_and_sent_back_exactly() -> None:
    seed = contract("place_calls.request.json")
    request = models.CallRequest.model_validate(seed)
    assert request.body() == seed
    gather = request.callFlow.steps[1]
    assert isinstance(gather, models.GatherStep)
    assert [b.digit for b in gather.branches] == ["1", "0"]
    assert [b.default for b in gather.branches] == [False, True]
    nested = gather.branches[0].callFlow.steps[0]
    assert isinstance(nested, models.GatherStep) and nested.branches[0].default
    assert isinstance(gather.branches[1].callFlow.steps[0], models.TransferStep)


def test_the_seeds_status_result_is_read() -> None:
    status = models.read_status(contract("call_status.response.json"))
    assert status.status == "submitted"
    (detail,) = status.details
    assert detail.status == "onProgress"
    info = detail.callFlowSteps[0].info
    assert (info.call_state, info.call_status, info.transfer_status) == (
        "ongoing",
        "answered",
        "answered",
    )
    assert info.userPressedDigits == UNREADABLE  # the seed's placeholder "string"
    assert detail.monitorData[0].dest == "+6591991191 1000"
    assert models.read_status(contract("error.response.json")).details == []


def _seed_with(change) -> dict[str, Any]:
    body = copy.deepcopy(contract("place_calls.request.json"))
    change(body)
    return body


def _gather(body: dict[str, Any]) -> dict[str, Any]:
    return body["callFlow"]["steps"][1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda b: _gather(b)["branches"][0].update(digit="0"),
            "callFlow.steps[1].branches[1].digit: digit '0' is already taken by branches[0]",
        ),
        (
            lambda b: _gather(b)["branches"][0].update(default="true"),
            "callFlow.steps[1].branches[1].default: only one branch may be the default",
        ),
        (
            lambda b: _gather(b)["branches"][0]["callFlow"]["steps"][0]["branches"].append(
                {
                    "default": True,
                    "callFlow": {"steps": [{"name": "play", "message": {"msg": "x"}}]},
                }
            ),
            "callFlow.steps[1].branches[0].callFlow.steps[0].branches[1].default",
        ),
        (
            lambda b: b["callFlow"]["steps"][0]["message"].update(pitch=10),
            "callFlow.steps[0].message.pitch: Input should be less than or equal to 9",
        ),
        (
            lambda b: b["callFlow"]["steps"][0]["message"].update(rate=-1),
            "callFlow.steps[0].message.rate: Input should be greater than or equal to 0",
        ),
        (
            lambda b: b["callFlow"]["steps"][0]["message"].update(pitch="5"),
            "callFlow.steps[0].message.pitch: Input should be a valid integer",
        ),
        (
            lambda b: b["destinations"][1].update(phone="0917660247"),
            "destinations[1].phone: String should match pattern",
        ),
        (
            lambda b: b["destinations"][0].update(caller="+65 8267 4904"),
            "destinations[0].caller: String should match pattern",
        ),
        (
            lambda b: b["destinations"][1].update(phone="+84917660247"),
            "destinations[1].phone: the same number as destinations[0]",
        ),
        (
            lambda b: _gather(b)["branches"][1]["callFlow"]["steps"][0].update(destination="1000"),
            "callFlow.steps[1].branches[1].callFlow.steps[0].destination: transfer destination "
            "'1000' is neither an E.164 number",
        ),
        (
            lambda b: _gather(b)["branches"][0].update(digit="12"),
            "callFlow.steps[1].branches[0].digit: digit '12' is not one keypad key: 0-9, * or #",
        ),
        (
            lambda b: _gather(b)["branches"][0].pop("digit"),
            "callFlow.steps[1].branches[0]: a branch needs a digit, or default true",
        ),
        (
            lambda b: b["callFlow"]["steps"].append({"name": "hangup"}),
            "callFlow.steps[2]: Input tag 'hangup' found using 'name' does not match",
        ),
        (lambda b: b.update(requestID="x"), "requestID: Extra inputs are not permitted"),
        (lambda b: b.update(destinations=[]), "destinations: List should have at least 1 item"),
        (lambda b: _gather(b).update(branches=[]), "callFlow.steps[1].branches: List should have"),
        (
            lambda b: b["destinations"][1]["properties"].update(name="A" * 1000),
            "destinations[1]: callFlow.steps[0].message.msg: the message is 1,007 characters "
            "once its properties are filled in; the limit is 1,000",
        ),
        (
            lambda b: b["destinations"][0]["properties"].pop("dueDate"),
            "destinations[0]: callFlow.steps[1].message.msg: uses {{dueDate}}, which the "
            "destination has no property for",
        ),
    ],
)
def test_each_invalid_request_is_refused_naming_the_path(change, expected: str) -> None:
    assert expected in problems(_seed_with(change))


def test_a_nested_message_too_long_after_substitution_names_its_step_path() -> None:
    flow = models.CallFlow.model_validate(
        {
            "steps": [
                {
                    "name": "gather",
                    "message": {"msg": "Press 1"},
                    "branches": [
                        {
                            "digit": "1",
                            "callFlow": {"steps": [{"name": "play", "message": {"msg": "ok"}}]},
                        },
                        {
                            "digit": "2",
                            "callFlow": {
                                "steps": [{"name": "play", "message": {"msg": "Dear {{name}}"}}]
                            },
                        },
                    ],
                }
            ]
        }
    )
    assert models.check_call_flow(flow, {"name": "Ada"}) == []
    (problem,) = models.check_call_flow(flow, {"name": "x" * 996})
    assert problem.path == "callFlow.steps[0].branches[1].callFlow.steps[0].message.msg"
    assert "1,001 characters" in problem.message


def test_call_flows_nest_only_so_deep() -> None:
    flow: dict[str, Any] = {"steps": [{"name": "play", "message": {"msg": "end"}}]}
    for _ in range(models.MAX_DEPTH):
        flow = {
            "steps": [
                {
                    "name": "gather",
                    "message": {"msg": "again"},
                    "branches": [{"default": True, "callFlow": flow}],
                }
            ]
        }
    problem = models.check_call_flow(models.CallFlow.model_validate(flow))
    assert problem and "nest at most" in problem[0].message


# ---------------------------------------------------------------- building a request


def workflow(**kwargs: Any) -> Workflow:
    base = {"id": "wf-1", "provider": "bizphone", "name": "Reminder"}
    return Workflow(**(base | kwargs))


def order(*digits: str, wf: Workflow | None = None, request_id: str = "rq-0123abcd") -> Order:
    return Order(
        request_id=request_id,
        workflow=wf
        or workflow(message="Hello [name], press 1 or 2.", keypad={"1": "Yes", "2": "No"}),
        recipients=[
            OrderRecipient(i + 1, NUMBER.format(d), {"name": f"P{i + 1}"})
            for i, d in enumerate(digits)
        ],
    )


def test_a_keypad_workflow_becomes_a_gather_with_a_branch_per_digit_and_a_default() -> None:
    flow = call_flow_for(workflow(message="Hi [name]", keypad={"2": "No", "1": "Yes"}), "en/female")
    (gather,) = flow["steps"]
    assert gather["name"] == "gather"
    assert gather["message"] == {"msg": "Hi {{name}}", "lang": "en", "gender": "female"}
    assert [b.get("digit") for b in gather["branches"]] == ["1", "2", None]
    assert gather["branches"][-1]["default"] is True
    assert "Yes" in gather["branches"][0]["callFlow"]["steps"][0]["message"]["msg"]
    models.CallFlow.model_validate(flow)
    assert call_flow_for(workflow(message="Hi"))["steps"] == [
        {"name": "play", "message": {"msg": "Hi"}}
    ]


def test_a_workflow_carrying_its_own_call_flow_sends_it() -> None:
    class FlowWorkflow(Workflow):
        call_flow: dict[str, Any] | None = None

    seed_flow = contract("place_calls.request.json")["callFlow"]
    wf = FlowWorkflow(id="wf-2", provider="bizphone", name="Seed", call_flow=seed_flow)
    assert call_flow_for(wf) == seed_flow
    provider = open_bizphone(api_key=KEY, base_url="http://127.0.0.1:9")
    seed_props = {"name": "Alex", "dueDate": "August 20th, 2020", "amount": "200,000$"}
    body = provider.call_request(
        Order("rq-1", wf, [OrderRecipient(1, "+84917660247", seed_props)])
    ).body()
    assert body["callFlow"] == seed_flow


def test_the_request_id_is_stable_and_plain() -> None:
    assert request_id_for("rq-0123abcd") == request_id_for("rq-0123abcd") == "robocall-rq-0123abcd"
    odd = request_id_for("rq/ü" + "x" * 200)
    assert len(odd) <= 100 and odd == request_id_for("rq/ü" + "x" * 200)
    assert models.CallRequest.model_fields["requestId"]


def test_a_message_too_long_for_one_recipient_is_refused_naming_them() -> None:
    provider = open_bizphone(api_key=KEY, base_url="http://127.0.0.1:9")
    bad = Order(
        "rq-1",
        workflow(message="Hello {{name}}"),
        [
            OrderRecipient(4, NUMBER.format(1), {"name": "A"}),
            OrderRecipient(7, NUMBER.format(2), {"name": "B" * 1000}),
        ],
    )
    with pytest.raises(RefusedError) as caught:
        provider.call_request(bad)
    assert caught.value.recipient == 7 and caught.value.phone == NUMBER.format(2)
    assert "callFlow.steps[0].message.msg" in caught.value.message


def test_capabilities_and_no_callbacks() -> None:
    c = CAPABILITIES
    assert (c.template_syntax, c.message_limit, c.keypad, c.transfer) == (
        "braces",
        1000,
        True,
        True,
    )
    assert (c.schedule, c.cancel, c.results, c.resend_safe, c.workflows_at_provider) == (
        False,
        False,
        "polling",
        True,
        False,
    )
    provider = open_bizphone(api_key=KEY, base_url="http://127.0.0.1:9")
    with pytest.raises(BadCallback) as caught:
        provider.read_callback(b"{}")
    assert caught.value.status == 404
    assert KEY not in repr(provider.client)


async def test_the_client_sends_the_seeds_body_with_the_key_header() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"requestId": "request_10", "status": "submitted"})

    async with BizPhoneClient(
        KEY, "https://bizphone.test/v1", transport=httpx.MockTransport(answer)
    ) as client:
        seed = contract("place_calls.request.json")
        assert await client.place_calls(models.CallRequest.model_validate(seed)) == "request_10"
    (request,) = seen
    assert request.url == "https://bizphone.test/v1/call"
    assert request.headers[API_KEY_HEADER] == KEY
    assert json.loads(request.content) == seed


# ---------------------------------------------------------------- against the sandbox


@dataclass
class Box:
    server: RunningServer
    state: SandboxState

    @property
    def url(self) -> str:
        return self.server.url


async def start_box(**config: Any) -> Box:
    app = create_sandbox_app(SandboxConfig(**({"call_seconds": 0.1} | config)))
    return Box(await start_server(app), app.state.sandbox)


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    running = await start_box(api_key=KEY)
    yield running
    await running.server.stop()


def provider_for(url: str, key: str = KEY, **options: Any) -> BizPhoneProvider:
    return open_bizphone(
        api_key=key, base_url=url, caller_id="+6582674904", policy=FAST_RETRIES, **options
    )


async def poll_until_final(provider: BizPhoneProvider, ref: str, o: Order, seen: set) -> list:
    for _ in range(200):
        updates = (await provider.poll(ref, o, None)).updates
        seen.update(u.outcome for u in updates)
        if updates and all(u.outcome.final for u in updates):
            return list(updates)
        await asyncio.sleep(0.02)
    raise AssertionError("never final")


async def test_calls_progress_to_the_outcome_each_last_digit_says() -> None:
    running = await start_box(api_key=KEY, concurrent_calls=2, call_seconds=0.15)
    provider = provider_for(running.url)
    try:
        o = order("1", "2", "0", "9", "8", "7", "5")
        ref = await provider.submit(o, before_send=lambda: None)
        assert ref == request_id_for(o.request_id)
        seen: set[CallOutcome] = set()
        updates = await poll_until_final(provider, ref, o, seen)
    finally:
        await provider.aclose()
        await running.server.stop()
    assert {CallOutcome.QUEUED, CallOutcome.IN_PROGRESS} <= seen
    got = {u.position: (u.outcome, u.key_pressed) for u in updates}
    assert got == {
        1: (CallOutcome.ANSWERED, "1"),
        2: (CallOutcome.ANSWERED, "2"),
        3: (CallOutcome.NO_ANSWER, None),
        4: (CallOutcome.FAILED, None),
        5: (CallOutcome.NO_ANSWER, None),  # busy: reported as not answered
        6: (CallOutcome.ANSWERED, None),  # voicemail: answered, no key
        7: (CallOutcome.ANSWERED, None),
    }
    assert all(u.phone == o.recipients[u.position - 1].phone for u in updates)
    assert running.state.most_ongoing == 2  # queued within the concurrent calls
    assert set(running.state.numbers_called.values()) == {1}


async def test_a_transfer_status_is_kept_in_the_provider_status(box: Box) -> None:
    class FlowWorkflow(Workflow):
        call_flow: dict[str, Any] | None = None

    flow = {
        "steps": [
            {
                "name": "gather",
                "message": {"msg": "Press 1 to talk to us"},
                "branches": [
                    {
                        "digit": "1",
                        "callFlow": {"steps": [{"name": "transfer", "destination": "Ext:1000"}]},
                    },
                    {
                        "default": True,
                        "callFlow": {"steps": [{"name": "play", "message": {"msg": "Bye"}}]},
                    },
                ],
            }
        ]
    }
    o = order("1", "5", wf=FlowWorkflow(id="w", provider="bizphone", name="T", call_flow=flow))
    provider = provider_for(box.url)
    try:
        ref = await provider.submit(o, before_send=lambda: None)
        updates = await poll_until_final(provider, ref, o, set())
    finally:
        await provider.aclose()
    by = {u.position: u for u in updates}
    assert by[1].key_pressed == "1" and by[1].provider_status == "answered transfer answered"
    assert by[2].key_pressed is None and by[2].provider_status == "answered"


async def test_no_key_is_401_and_a_wrong_key_is_an_authentication_error(box: Box) -> None:
    async with httpx.AsyncClient() as http:
        body = contract("place_calls.request.json")
        answer = await http.post(box.url + "/call", json=body)
        assert answer.status_code == 401
        assert (await http.get(box.url + "/status/request_10")).status_code == 401
    provider = provider_for(box.url, key="wrong-key")
    try:
        with pytest.raises(AuthenticationError) as caught:
            await provider.submit(order("1"), before_send=lambda: None)
        assert "BIZPHONE_API_KEY" in caught.value.message
    finally:
        await provider.aclose()
    assert box.state.requests == {}


async def test_the_sandbox_accepts_the_seeds_request_and_refuses_a_repeat(box: Box) -> None:
    async with httpx.AsyncClient(headers={API_KEY_HEADER: KEY}) as http:
        body = contract("place_calls.request.json")
        first = await http.post(box.url + "/call", json=body)
        assert first.status_code == 200 and first.json()["requestId"] == "request_10"
        again = await http.post(box.url + "/call", json=body)
        assert again.status_code == 409
        bad = _seed_with(lambda b: b["callFlow"]["steps"][0]["message"].update(rate=12))
        bad["requestId"] = "request_11"
        refused = await http.post(box.url + "/call", json=bad)
        assert refused.status_code == 400
        assert "callFlow.steps[0].message.rate" in refused.json()["message"]
        assert (await http.get(box.url + "/status/nope")).status_code == 404
        status = (await http.get(box.url + "/status/request_10")).json()
        assert [d["destination"] for d in status["details"]] == ["+84917660247", "+84912860330"]


@pytest.mark.parametrize("after_work", [True, False])
async def test_a_post_answered_500_is_not_resent_and_find_settles_it(
    box: Box, after_work: bool
) -> None:
    box.state.faults.append(Fault("place_calls", status=500, after_work=after_work))
    provider = provider_for(box.url)
    o = order("1", "2")
    sent: list[int] = []
    try:
        with pytest.raises(OutcomeUnknownError):
            await provider.submit(o, before_send=lambda: sent.append(1))
        assert sent == [1] and box.state.requests_seen["place_calls"] == 1  # not resent
        found = await provider.find(o)
        if after_work:  # it arrived: found, and nobody is called again
            assert found == request_id_for(o.request_id)
            await poll_until_final(provider, found, o, set())
        else:  # it did not: certainly not placed, safe to send
            assert found is None
            assert await provider.submit(o, before_send=lambda: None) == request_id_for(
                o.request_id
            )
    finally:
        await provider.aclose()
    assert box.state.requests_seen["place_calls"] == (1 if after_work else 2)
    assert set(box.state.numbers_called.values()) == {1}


async def test_a_post_answered_too_late_is_outcome_unknown(box: Box) -> None:
    box.state.faults.append(Fault("place_calls", status=200, after_work=True, answer_delay=1.0))
    provider = provider_for(box.url, timeout=0.3)
    o = order("5")
    try:
        with pytest.raises(OutcomeUnknownError):
            await provider.submit(o, before_send=lambda: None)
        assert await provider.find(o) == request_id_for(o.request_id)
    finally:
        await provider.aclose()
    assert box.state.requests_seen["place_calls"] == 1


async def test_find_raises_when_it_cannot_tell(box: Box) -> None:
    box.state.faults.append(Fault("call_status", status=500, times=10))
    provider = provider_for(box.url)
    try:
        with pytest.raises(ServerError):
            await provider.find(order("1"))
    finally:
        await provider.aclose()


async def test_a_400_saying_no_such_request_is_not_placed(box: Box) -> None:
    box.state.faults.append(
        Fault("call_status", status=400, body={"status": "error", "message": "Request not found"})
    )
    provider = provider_for(box.url)
    try:
        assert await provider.find(order("1")) is None
    finally:
        await provider.aclose()


HOSTILE_BODIES: list[Any] = [
    [],
    "details",
    None,
    {"details": {"destination": "+2348031234561"}},
    {"details": ["x", 1, None, {"destination": ["+1"]}]},
    {"status": "S" * 10_000, "message": "m" * 100_000, "requestId": "<@U123>" * 50},
    {
        "details": [
            {
                "destination": "+2348031234561" * 20,
                "status": "<!channel>",
                "callFlowSteps": [
                    {"stepName": {"a": 1}, "info": "nope"},
                    {
                        "info": {
                            "call_state": "ended",
                            "call_status": "answered\u202e" * 30,
                            "userPressedDigits": "<@U123>",
                            "transfer_status": ["answered"],
                            "duration": float("1e308"),
                        }
                    },
                ],
                "monitorData": [{"uuid": "x" * 500, "dest": "d" * 5_000}, "bad"],
            }
        ]
    },
    {"details": [{"destination": "+2348031234561", "callFlowSteps": [{}] * 5_000}]},
    {"details": [{"destination": f"+23480312{i:05d}", "status": "queued"} for i in range(20_000)]},
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
async def test_hostile_status_bodies_are_bounded(box: Box, body: Any) -> None:
    box.state.faults.append(Fault("call_status", status=200, body=body))
    provider = provider_for(box.url)
    o = order("1")
    try:
        poll = await provider.poll("robocall-rq-0123abcd", o, None)
    finally:
        await provider.aclose()
    assert len(poll.updates) <= models.MAX_DETAILS
    for update in poll.updates:
        assert len(update.provider_status) <= 40
        assert update.key_pressed in (None, UNREADABLE) or update.key_pressed.isdigit()
        assert update.phone is None or len(update.phone) <= 32
        assert update.provider_call_id is None or len(update.provider_call_id) <= 128
        assert update.duration is None or 0 <= update.duration <= 24 * 3600


async def test_a_status_answer_that_is_not_json_is_a_server_error() -> None:
    client = BizPhoneClient(
        KEY,
        "https://bizphone.test/v1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text="<html>")),
    )
    try:
        with pytest.raises(ServerError):
            await client.call_status("x")
    finally:
        await client.aclose()


async def test_a_queued_request_shows_nothing_final_yet() -> None:
    running = await start_box(api_key=KEY, concurrent_calls=1, call_seconds=5.0)
    provider = provider_for(running.url)
    try:
        o = order("1", "2")
        ref = await provider.submit(o, before_send=lambda: None)
        await asyncio.sleep(0.1)
        updates = (await provider.poll(ref, o, None)).updates
    finally:
        await provider.aclose()
        await running.server.stop()
    assert [u.outcome for u in updates] == [CallOutcome.IN_PROGRESS, CallOutcome.QUEUED]


async def test_a_resubmit_of_a_request_bizphone_has_is_not_placed_twice(box: Box) -> None:
    provider = provider_for(box.url)
    o = order("1")
    try:
        ref = await provider.submit(o, before_send=lambda: None)
        assert await provider.submit(o, before_send=lambda: None) == ref  # 409: it is there
    finally:
        await provider.aclose()
    assert box.state.numbers_called[NUMBER.format(1)] == 1


def test_a_workflows_problems_are_named_before_anything_is_sent() -> None:
    class FlowWorkflow(Workflow):
        call_flow: dict[str, Any] | None = None

    flow = copy.deepcopy(contract("place_calls.request.json")["callFlow"])
    wf = FlowWorkflow(id="w", provider="bizphone", name="Seed", call_flow=flow)
    assert problems_for(wf) == []
    assert problems_for(wf, {"name": "Alex", "amount": "1$"}) == [
        "callFlow.steps[1].message.msg: uses {{dueDate}}, which the destination has no property for"
    ]
    flow["steps"][0]["message"]["pitch"] = 12
    assert problems_for(wf) == [
        "callFlow.steps[0].message.pitch: Input should be less than or equal to 9"
    ]
    assert problems_for(workflow(message="Hi [name]", keypad={"1": "Yes"}), {"name": "A"}) == []
