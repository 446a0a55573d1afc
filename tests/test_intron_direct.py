"""Intron's direct robo-call API (seed 001): models, client, provider and sandbox, against
the seed's own examples (tests/contracts/intron_direct/) and over a real socket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.providers.base import (
    AuthenticationError,
    BadCallback,
    CallOutcome,
    NotFoundError,
    Order,
    OrderRecipient,
    OutcomeUnknownError,
    ProviderConnectionError,
    RateLimitedError,
    RefusedError,
    ServerError,
    Workflow,
)
from bot.providers.intron_direct import models
from bot.providers.intron_direct.client import IntronDirectClient
from bot.providers.intron_direct.provider import (
    CAPABILITIES,
    BatchRef,
    IntronDirectProvider,
    open_intron_direct,
    read_callback,
)
from bot.providers.intron_direct.sandbox import Fault, SandboxConfig, create_sandbox_app
from bot.providers.intron_direct.sandbox.server import SandboxState
from bot.serving import RunningServer, start_server
from tests.conftest import FAST_RETRIES

CONTRACTS = Path(__file__).parent / "contracts" / "intron_direct"
NUMBER = "+234803123456{}"  # the last digit picks the sandbox's outcome
# Seed 001 writes +1234567890 and +0987654321: a 9-digit US number and country code 0,
# neither a real E.164 number. Its examples are checked with these in their place.
SEED_NUMBERS = {"+1234567890": "+14155550121", "+0987654321": "+14155550122"}


def contract(name: str) -> dict[str, Any]:
    return json.loads((CONTRACTS / f"{name}.json").read_text())


def with_real_numbers(body: Any) -> Any:
    text = json.dumps(body)
    for seed, real in SEED_NUMBERS.items():
        text = text.replace(seed, real)
    return json.loads(text)


# ---------------------------------------------------------------- fixtures


@dataclass
class Receiver:
    """Our callback route's stand-in: records each event body, runs it through the provider."""

    server: RunningServer | None = None
    bodies: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/callbacks/intron-direct/token"

    async def handle(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.body())
        return JSONResponse({"ok": True})

    async def wait_for(self, count: int, timeout: float = 4.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.bodies) < count:
                await asyncio.sleep(0.01)
        return [json.loads(b) for b in self.bodies]


@dataclass
class Box:
    server: RunningServer
    state: SandboxState

    @property
    def url(self) -> str:
        return self.server.url


async def start_box(**config: Any) -> Box:
    settings = {"event_delay": 0.02, "event_gap": 0.0, "callback_backoff": 0.01, **config}
    app = create_sandbox_app(SandboxConfig(**settings))
    return Box(await start_server(app), app.state.sandbox)


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    sandbox = await start_box()
    yield sandbox
    await sandbox.server.stop()


def make_client(url: str, **options: Any) -> IntronDirectClient:
    return IntronDirectClient("test-key-0123456789", url, policy=FAST_RETRIES, **options)


@pytest.fixture
async def client(box: Box) -> AsyncIterator[IntronDirectClient]:
    async with make_client(box.url, calls_per_minute=100, concurrent_calls=20) as direct:
        yield direct


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/callbacks/intron-direct/token", rec.handle, methods=["POST"])])
    rec.server = await start_server(app)
    yield rec
    await rec.server.stop()


def order(*phones: str, keypad: dict[str, str] | None = None, at: datetime | None = None) -> Order:
    workflow = Workflow(
        id="wf-1",
        provider="intron-direct",
        name="Reminder",
        message="Hello [name], press 1 to confirm.",
        keypad=keypad if keypad is not None else {"1": "Confirm", "2": "Cancel"},
    )
    recipients = [
        OrderRecipient(position=i + 1, phone=p, variables={"name": f"N{i}"})
        for i, p in enumerate(phones)
    ]
    return Order(request_id="rq-test", workflow=workflow, recipients=recipients, at=at)


# ---------------------------------------------------------------- models: the seed's examples


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("tts_request", models.CallRequest),
        ("audio_request", models.CallRequest),
        ("scheduled_request", models.CallRequest),
        ("dtmf_request", models.CallRequest),
        ("batch_request", models.BatchRequest),
    ],
)
def test_the_seeds_requests_are_valid_requests(name: str, model: type) -> None:
    body = with_real_numbers(contract(name))
    parsed = model.model_validate(body)
    assert parsed.model_dump(mode="json", exclude_none=True) == json.loads(
        json.dumps(body).replace("2024-01-20T07:00:00Z", "2024-01-20T07:00:00Z")
    )


def test_the_seeds_placeholder_numbers_are_refused_as_not_e164() -> None:
    with pytest.raises(ValidationError, match=r"E\.164"):
        models.CallRequest.model_validate(contract("tts_request"))


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("call_response", models.CallQueued),
        ("scheduled_response", models.CallQueued),
        ("batch_response", models.BatchQueued),
        ("status_response", models.CallStatus),
        ("cancel_response", models.CancelResult),
    ],
)
def test_the_seeds_answers_parse_field_for_field(name: str, model: type) -> None:
    body = contract(name)
    parsed = model.model_validate(body)
    for key, value in body.items():
        got = getattr(parsed, key)
        if isinstance(got, datetime):
            assert got == datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif key == "calls":
            assert [c.model_dump() for c in got] == value
        else:
            assert got == value, key


@pytest.mark.parametrize(
    "change",
    [
        {"audio_url": "https://x.example/a.mp3"},  # both message and audio_url
        {"message": None},  # neither
        {"retry_count": 4},
        {"retry_count": -1},
        {"unknown": 1},  # extra fields are refused
        {"dtmf_config": {"actions": {"x": {"url": "https://a.example"}}}},
        {"dtmf_config": {"actions": {"1": {"action": "webhook"}}}},  # webhook needs url
        {"variables": {}},  # the message needs {{name}}
        {"schedule_at": "2024-01-20T07:00:00"},  # no time zone
        {"callback_url": "ftp://x"},
        {"message": "x" * 4001},
    ],
)
def test_outgoing_requests_are_strict(change: dict[str, Any]) -> None:
    body = {"phone_number": NUMBER.format(1), "message": "Hi {{name}}", "variables": {"name": "A"}}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ValidationError):
        models.CallRequest.model_validate(body)


def test_retry_count_zero_to_three_and_response_message_are_accepted() -> None:
    for count in range(4):
        models.CallRequest(phone_number=NUMBER.format(1), message="Hi", retry_count=count)
    config = models.DtmfConfig.model_validate(contract("dtmf_request")["dtmf_config"])
    assert config.actions["2"].response_message == "Your appointment has been cancelled. Goodbye."


# ---------------------------------------------------------------- webhook events


@pytest.mark.parametrize(
    ("name", "outcome", "final", "key"),
    [
        ("event_answered", CallOutcome.IN_PROGRESS, False, None),
        ("event_dtmf", CallOutcome.IN_PROGRESS, False, "1"),
        ("event_completed", CallOutcome.ANSWERED, True, "1"),  # final: the call, not the batch
    ],
)
def test_the_seeds_events_become_one_call_update(
    name: str, outcome: CallOutcome, final: bool, key: str | None
) -> None:
    report = read_callback(json.dumps(contract(name)).encode())
    assert report.provider_ref == "robo_abc123def456"
    assert report.request_ids == frozenset()
    assert report.final is False  # one call's event: its request counts its calls
    assert report.updates[0].outcome.final is final
    (update,) = report.updates
    assert (update.outcome, update.key_pressed) == (outcome, key)
    assert update.provider_call_id == "robo_abc123def456"
    if name == "event_completed":
        assert (update.duration, update.phone) == (25, "+1234567890")


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("answered", CallOutcome.ANSWERED),
        ("voicemail", CallOutcome.VOICEMAIL),
        ("busy", CallOutcome.BUSY),
        ("no_answer", CallOutcome.NO_ANSWER),
        ("failed", CallOutcome.FAILED),
        ("rejected", CallOutcome.REJECTED),
        ("something_new", CallOutcome.FAILED),
    ],
)
def test_every_result_of_the_seeds_table_reads_as_its_outcome(
    result: str, outcome: CallOutcome
) -> None:
    body = contract("event_completed") | {"result": result}
    (update,) = read_callback(json.dumps(body)).updates
    assert update.outcome == outcome
    assert update.provider_status == result


HOSTILE = [
    b"",
    b"not json",
    b"[]",
    b"null",
    b'{"event": "robo_call.completed"}',  # no call id
    b'{"event": "robo_call.exploded", "call_id": "robo_1"}',
    b'{"call_id": "robo_1"}',
    json.dumps({"event": "robo_call.completed", "call_id": "x" * 10_000}).encode(),
    json.dumps({"event": "robo_call.completed", "call_id": "robo 1; DROP"}).encode(),
    json.dumps({"event": ["robo_call.completed"], "call_id": "robo_1"}).encode(),
    b'{"event": "robo_call.completed", "call_id": "r", ' + b'"x": [' * 5000 + b"]" * 5000 + b"}",
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
def test_unreadable_events_are_bad_callbacks_never_crashes(body: bytes) -> None:
    with pytest.raises(BadCallback) as caught:
        read_callback(body)
    assert caught.value.status in (400, 422)


@pytest.mark.parametrize(
    "changes",
    [
        {"duration": 1e300},
        {"duration": -5},
        {"duration": "long"},
        {"result": "x" * 100_000},
        {"result": {"nested": True}},
        {"dtmf_input": "1" * 1000},
        {"dtmf_input": "<script>"},
        {"phone_number": "+" + "9" * 5000},
        {"timestamp": "yesterday" * 1000},
        {"extra": "y" * 100_000},
    ],
)
def test_hostile_values_in_an_event_are_bounded(changes: dict[str, Any]) -> None:
    body = contract("event_completed") | changes
    (update,) = read_callback(json.dumps(body)).updates
    assert update.duration is None or 0 <= update.duration <= 24 * 3600
    assert len(update.provider_status) <= 40
    assert update.key_pressed is None or len(update.key_pressed) <= 40
    assert update.phone is None or len(update.phone) <= 32


# ---------------------------------------------------------------- the sandbox accepts the seed


@pytest.mark.parametrize(
    ("name", "path", "answer"),
    [
        ("tts_request", "/call", "call_response"),
        ("audio_request", "/call", "call_response"),
        ("dtmf_request", "/call", "call_response"),
        ("batch_request", "/call/batch", "batch_response"),
    ],
)
async def test_the_sandbox_accepts_the_seeds_requests_and_answers_in_its_shape(
    box: Box, name: str, path: str, answer: str
) -> None:
    body = with_real_numbers(contract(name))
    body["callback_url"] = "http://127.0.0.1:9/unused"
    async with httpx.AsyncClient(base_url=box.url) as http:
        response = await http.post(path, json=body, headers={"Authorization": "Bearer k"})
    assert response.status_code == 200, response.text
    assert set(response.json()) >= set(contract(answer)) - {"estimated_start", "scheduled_at"}


async def test_the_sandbox_schedules_the_seeds_scheduled_call_in_the_future(box: Box) -> None:
    body = with_real_numbers(contract("scheduled_request"))
    body["schedule_at"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with httpx.AsyncClient(base_url=box.url) as http:
        response = await http.post("/call", json=body, headers={"Authorization": "Bearer k"})
        answer = response.json()
        assert set(answer) >= set(contract("scheduled_response"))
        assert answer["message"] == "Call scheduled"
        status = await http.get(f"/call/{answer['call_id']}", headers={"Authorization": "Bearer k"})
    assert set(status.json()) == set(contract("status_response"))
    assert status.json()["status"] == "scheduled"


async def test_the_sandbox_refuses_what_the_models_refuse(box: Box) -> None:
    async with httpx.AsyncClient(base_url=box.url) as http:
        bad = await http.post(
            "/call",
            json={"phone_number": "+1234567890", "message": "Hi", "audio_url": "https://a.b/c"},
            headers={"Authorization": "Bearer k"},
        )
        anonymous = await http.post("/call", json={})
    assert bad.status_code == 400
    assert "E.164" in bad.json()["message"]
    assert anonymous.status_code == 401


# ---------------------------------------------------------------- the client, every operation


async def test_place_status_and_cancel_a_call(client: IntronDirectClient, box: Box) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    queued = await client.place_call(
        models.CallRequest(phone_number=NUMBER.format(1), message="Hi", schedule_at=later)
    )
    assert queued.message == "Call scheduled" and queued.scheduled_at is not None
    status = await client.call_status(queued.call_id)
    assert (status.status, status.phone_number) == ("scheduled", NUMBER.format(1))
    cancelled = await client.cancel_call(queued.call_id)
    assert (cancelled.status, cancelled.call_id) == ("success", queued.call_id)
    assert (await client.call_status(queued.call_id)).status == "cancelled"
    with pytest.raises(RefusedError):  # twice: already cancelled
        await client.cancel_call(queued.call_id)
    await asyncio.sleep(0.1)
    assert box.state.events == []  # never dialled


async def test_a_batch_answers_each_calls_id(client: IntronDirectClient) -> None:
    batch = await client.place_batch(
        models.BatchRequest(
            calls=[
                models.BatchCall(
                    phone_number=NUMBER.format(d), message="Hi {{n}}", variables={"n": "A"}
                )
                for d in (1, 2, 3)
            ],
            voice="en-female-1",
        )
    )
    assert batch.total_calls == 3 and len({c.call_id for c in batch.calls}) == 3
    assert [c.phone_number for c in batch.calls] == [NUMBER.format(d) for d in (1, 2, 3)]


async def test_every_error_class(box: Box) -> None:
    request = models.CallRequest(phone_number=NUMBER.format(1), message="Hi")
    async with make_client(box.url) as direct:
        with pytest.raises(NotFoundError):
            await direct.call_status("robo_nope")
        box.state.faults.append(Fault("call_status", status=503, times=10))
        with pytest.raises(ServerError):
            await direct.call_status("robo_nope")
        box.state.faults.clear()
        box.state.faults.append(Fault("place_call", status=422))
        with pytest.raises(RefusedError):
            await direct.place_call(request)
        box.state.faults.append(Fault("place_call", status=429, retry_after=500, times=1))
        with pytest.raises(RateLimitedError) as limited:
            await direct.place_call(request)
        assert limited.value.retry_after == 500
    box.state.config.api_key = "the-right-key"
    async with make_client(box.url) as wrong:
        with pytest.raises(AuthenticationError, match="INTRON_DIRECT_API_KEY"):
            await wrong.place_call(request)
    async with make_client("http://127.0.0.1:9") as nowhere:
        with pytest.raises(ProviderConnectionError):
            await nowhere.call_status("robo_1")
    assert "test-key" not in repr(make_client(box.url))


async def test_a_post_answered_500_is_not_resent(box: Box) -> None:
    box.state.faults.append(Fault("place_call", status=500, after_work=True))
    async with make_client(box.url) as direct:
        with pytest.raises(OutcomeUnknownError):
            await direct.place_call(models.CallRequest(phone_number=NUMBER.format(3), message="Hi"))
    assert box.state.requests_seen["place_call"] == 1
    assert box.state.numbers_called()[NUMBER.format(3)] == 1


async def test_a_post_answered_503_is_retried_not_unknown(box: Box) -> None:
    box.state.faults.append(Fault("place_batch", status=503))
    async with make_client(box.url) as direct:
        await direct.place_batch(
            models.BatchRequest(
                calls=[models.BatchCall(phone_number=NUMBER.format(3), message="x")]
            )
        )
    assert box.state.requests_seen["place_batch"] == 2
    assert box.state.numbers_called()[NUMBER.format(3)] == 1


async def test_a_read_timeout_on_a_post_is_unknown_and_not_resent() -> None:
    async def slow(request: Request) -> JSONResponse:
        hits.append(1)
        await asyncio.sleep(0.5)
        return JSONResponse({})

    hits: list[int] = []
    server = await start_server(Starlette(routes=[Route("/call", slow, methods=["POST"])]))
    try:
        async with make_client(server.url, timeout=0.2) as direct:
            with pytest.raises(OutcomeUnknownError):
                await direct.place_call(
                    models.CallRequest(phone_number=NUMBER.format(3), message="x")
                )
    finally:
        await server.stop()
    assert hits == [1]


# ---------------------------------------------------------------- the plan's limits


async def test_a_burst_waits_for_calls_per_minute_and_never_draws_a_429() -> None:
    """15 calls on a plan of 10 a (shortened, 1 s) minute and 2 concurrent: the last
    five wait for the window, and the sandbox, holding the same limits, never refuses."""
    window = 1.0
    box = await start_box(minute=window, event_delay=5.0)
    try:
        async with make_client(
            box.url, calls_per_minute=10, concurrent_calls=2, minute=window
        ) as direct:
            started = time.monotonic()
            await asyncio.gather(
                *(
                    direct.place_call(
                        models.CallRequest(phone_number=f"+2348031{i:05d}3", message="Hi")
                    )
                    for i in range(15)
                )
            )
            elapsed = time.monotonic() - started
    finally:
        await box.server.stop()
    assert elapsed >= window
    assert box.state.requests_seen["place_call"] == 15
    assert dict(box.state.rate_limited) == {}


async def test_the_sandbox_answers_429_beyond_the_plan(box: Box) -> None:
    box.state.config.calls_per_minute = 2
    async with httpx.AsyncClient(base_url=box.url) as http:
        answers = [
            await http.post(
                "/call",
                json={"phone_number": NUMBER.format(3), "message": "Hi"},
                headers={"Authorization": "Bearer k"},
            )
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert float(answers[2].headers["Retry-After"]) > 0


async def test_a_batch_counts_each_of_its_calls(box: Box) -> None:
    box.state.config.calls_per_minute = 3
    calls = [{"phone_number": NUMBER.format(d), "message": "x"} for d in (3, 4)]
    async with httpx.AsyncClient(base_url=box.url) as http:
        first = await http.post(
            "/call/batch", json={"calls": calls}, headers={"Authorization": "Bearer k"}
        )
        second = await http.post(
            "/call/batch", json={"calls": calls}, headers={"Authorization": "Bearer k"}
        )
    assert (first.status_code, second.status_code) == (200, 429)


# ---------------------------------------------------------------- the provider, end to end


async def test_each_last_digit_ends_as_the_outcome_table_says(box: Box, receiver: Receiver) -> None:
    expected = {
        "1": (CallOutcome.ANSWERED, "1", ["answered", "dtmf", "completed"]),
        "2": (CallOutcome.ANSWERED, "2", ["answered", "dtmf", "completed"]),
        "0": (CallOutcome.NO_ANSWER, None, ["completed"]),
        "9": (CallOutcome.FAILED, None, ["completed"]),
        "8": (CallOutcome.BUSY, None, ["completed"]),
        "7": (CallOutcome.VOICEMAIL, None, ["completed"]),
        "5": (CallOutcome.ANSWERED, None, ["answered", "completed"]),
    }
    box.state.config.concurrent_calls = 10
    provider = IntronDirectProvider(
        make_client(box.url, calls_per_minute=10, concurrent_calls=10),
        callback_url=receiver.url,
        sandbox=True,
    )
    try:
        the_order = order(*(NUMBER.format(d) for d in expected))
        ref = await provider.submit(the_order, before_send=lambda: None)
        parsed = BatchRef.parse(ref)
        assert parsed.batch_id and len(parsed.call_ids) == len(expected)
        assert BatchRef.parse(str(parsed)) == parsed
        await receiver.wait_for(sum(len(e[2]) for e in expected.values()))
        reports = [read_callback(body) for body in receiver.bodies]
    finally:
        await provider.aclose()
    by_call: dict[str, list[Any]] = {}
    for report in reports:
        by_call.setdefault(report.provider_ref, []).append(report)
    for digit, call_id in zip(expected, parsed.call_ids, strict=True):
        outcome, key, events = expected[digit]
        seen = by_call[call_id]
        assert [r.status for r in seen] == events, digit  # in order
        assert [r.updates[0].outcome.final for r in seen] == [False] * (len(events) - 1) + [True]
        last = seen[-1].updates[0]
        assert (last.outcome, last.key_pressed, last.phone) == (outcome, key, NUMBER.format(digit))


async def test_one_recipient_is_one_call_polled_by_status(box: Box, receiver: Receiver) -> None:
    provider = IntronDirectProvider(make_client(box.url), callback_url=receiver.url)
    try:
        the_order = order(NUMBER.format(2))
        sent: list[bool] = []
        ref = await provider.submit(the_order, before_send=lambda: sent.append(True))
        assert sent == [True] and ref.startswith("robo_")
        assert box.state.calls[ref].request["dtmf_config"]["enabled"] is True
        assert box.state.calls[ref].request["message"] == "Hello {{name}}, press 1 to confirm."
        await receiver.wait_for(3)
        poll = await provider.poll(ref, the_order, None)
    finally:
        await provider.aclose()
    (update,) = poll.updates
    assert (update.outcome, update.key_pressed, update.position) == (CallOutcome.ANSWERED, "2", 1)
    assert poll.cursor is None


async def test_a_scheduled_order_can_be_cancelled_before_it_is_dialled(box: Box) -> None:
    provider = IntronDirectProvider(make_client(box.url), callback_url=None)
    try:
        later = datetime.now(UTC) + timedelta(hours=2)
        the_order = order(NUMBER.format(1), NUMBER.format(3), at=later)
        ref = await provider.submit(the_order, before_send=lambda: None)
        await provider.cancel(ref)
        await provider.cancel(ref)  # twice: harmless
        poll = await provider.poll(ref, the_order, None)
    finally:
        await provider.aclose()
    assert [u.outcome for u in poll.updates] == [CallOutcome.CANCELLED] * 2
    assert [u.position for u in poll.updates] == [1, 2]
    assert box.state.events == []


async def test_a_schedule_at_soon_is_dialled_then(box: Box, receiver: Receiver) -> None:
    provider = IntronDirectProvider(make_client(box.url), callback_url=receiver.url)
    try:
        at = datetime.now(UTC) + timedelta(seconds=0.4)
        await provider.submit(order(NUMBER.format(0), at=at), before_send=lambda: None)
        await asyncio.sleep(0.2)
        assert receiver.bodies == []
        (event,) = await receiver.wait_for(1)
    finally:
        await provider.aclose()
    assert datetime.now(UTC) >= at
    assert event["result"] == "no_answer"


async def test_a_refused_batch_names_our_recipient(box: Box) -> None:
    provider = IntronDirectProvider(make_client(box.url), callback_url=None)
    box.state.faults.append(Fault("place_batch", status=400))
    # A refusal naming `calls.1.phone_number` is re-addressed to position 2.
    error = RefusedError("bad", recipient=2, field="phone_number")
    from bot.providers.intron_direct.provider import _for_recipient

    readdressed = _for_recipient(error, order(NUMBER.format(1), NUMBER.format(3)))
    assert (readdressed.recipient, readdressed.phone) == (2, NUMBER.format(3))
    try:
        with pytest.raises(RefusedError):
            await provider.submit(
                order(NUMBER.format(1), NUMBER.format(3)), before_send=lambda: None
            )
    finally:
        await provider.aclose()


async def test_find_never_says_nobody_was_called(box: Box) -> None:
    provider = IntronDirectProvider(make_client(box.url), callback_url=None)
    try:
        with pytest.raises(OutcomeUnknownError, match="cannot be told"):
            await provider.find(order(NUMBER.format(1)))
    finally:
        await provider.aclose()


async def test_capabilities_and_workflows_live_in_this_app() -> None:
    provider = open_intron_direct("k", callback_url="https://x.example/callbacks/intron-direct/t")
    try:
        caps = provider.capabilities
        assert (caps.template_syntax, caps.message_limit, caps.results) == (
            "braces",
            4000,
            "callback",
        )
        assert (caps.keypad, caps.schedule, caps.cancel, caps.audio) == (True, True, True, True)
        assert (caps.resend_safe, caps.workflows_at_provider, caps.max_batch) == (False, False, 10)
        assert caps == CAPABILITIES
        assert [v.key for v in provider.voices()] == ["en-female-1"]
        assert await provider.list_workflows() == []
        with pytest.raises(NotImplementedError):
            await provider.create_workflow(None)  # type: ignore[arg-type]
        assert provider.wait_time("calls") == 0
    finally:
        await provider.aclose()
