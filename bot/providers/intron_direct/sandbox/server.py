"""The sandbox: Intron's direct robo-call API (seed 001), simulated in memory.

Same paths (`IntronDirectPaths`), same request models and validation, bearer auth,
the plan's limits answered with 429 and `Retry-After` (calls per minute, every call
of a batch counting; call-placing requests in flight at once beyond the concurrent
calls), calls dialled at most `concurrent_calls` at a time. Each call, at its
`schedule_at` or at once, then after `event_delay`, ends as its number's last digit
says (`outcomes.py`), and its events are POSTed in order (answered, dtmf, completed)
to its `callback_url`. A queued or scheduled call can be cancelled until it is
dialled. Tests script faults (`Fault`) and read `SandboxState`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.ratelimit import Window, wait_for
from bot.providers.intron_direct import models
from bot.providers.intron_direct.client import FREE_CALLS_PER_MINUTE, FREE_CONCURRENT_CALLS
from bot.providers.intron_direct.endpoints import IntronDirectPaths, endpoints
from bot.providers.intron_direct.sandbox.outcomes import outcome_for
from bot.providers.sandbox_kit import (
    Fault,
    SandboxError,
    SandboxStateBase,
    bearer_ok,
    describe,
    operation_routes,
    post_with_backoff,
    read_body,
    sandbox_app,
    with_fault,
)

log = logging.getLogger(__name__)


@dataclass
class SandboxConfig:
    """How the sandbox behaves; the defaults are seed 001's Free plan."""

    event_delay: float = 2.0  # seconds from dialling to the first event
    event_gap: float = 0.01  # seconds between one call's events
    calls_per_minute: int = FREE_CALLS_PER_MINUTE
    concurrent_calls: int = FREE_CONCURRENT_CALLS
    minute: float = 60.0  # the calls-per-minute window (tests shorten it)
    callback_attempts: int = 5
    callback_backoff: float = 0.5
    paths: IntronDirectPaths = field(default_factory=IntronDirectPaths)
    api_key: str | None = None  # when set, the only bearer token accepted


@dataclass
class SimCall:
    id: str
    request: dict[str, Any]  # the call's fields, batch options filled in
    created_at: datetime
    batch_id: str | None = None
    status: str = "queued"  # queued | scheduled | in_progress | completed | cancelled
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration: int | None = None
    dtmf_input: str | None = None
    result: str | None = None
    task: asyncio.Task | None = None

    @property
    def phone_number(self) -> str:
        return self.request["phone_number"]

    def as_status(self) -> dict[str, Any]:
        """`GET /call/{call_id}`, in seed 001's shape."""
        return {
            "call_id": self.id,
            "status": self.status,
            "phone_number": self.phone_number,
            "duration": self.duration,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "dtmf_input": self.dtmf_input,
            "call_result": self.result,
        }


@dataclass
class SandboxState(SandboxStateBase):
    """Everything the sandbox holds, readable by tests (faults: `sandbox_kit.Fault`)."""

    config: SandboxConfig
    calls: dict[str, SimCall] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)
    requests_seen: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # every event sent
    tasks: set[asyncio.Task] = field(default_factory=set)
    in_flight: int = 0
    http: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        self.arrivals: list[float] = []  # when each recent call arrived
        self.dialled = 0  # calls on the line now
        self._hung_up = asyncio.Condition()

    async def dial_slot(self) -> None:
        """Wait until fewer than `concurrent_calls` calls are on the line, then take one."""
        async with self._hung_up:
            await self._hung_up.wait_for(lambda: self.dialled < self.config.concurrent_calls)
            self.dialled += 1

    async def hang_up(self) -> None:
        async with self._hung_up:
            self.dialled -= 1
            self._hung_up.notify_all()

    def numbers_called(self) -> Counter[str]:
        return Counter(c.phone_number for c in self.calls.values() if c.status != "cancelled")

    def room_for(self, calls: int) -> float:
        """Seconds until `calls` more calls fit in the per-minute window (0: now)."""
        now = _clock()
        window = Window(self.config.calls_per_minute - calls + 1, self.config.minute)
        self.arrivals = [t for t in self.arrivals if t > now - self.config.minute]
        return wait_for(self.arrivals, (window,), now)

    def count(self, calls: int) -> None:
        self.arrivals.extend([_clock()] * calls)


Handler = Callable[[Request, SandboxState], Awaitable[Any]]


def create_sandbox_app(config: SandboxConfig | None = None) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox` is its `SandboxState`."""
    state = SandboxState(config or SandboxConfig())
    handlers: dict[str, Handler] = {
        "place_call": _place_call,
        "place_batch": _place_batch,
        "call_status": _call_status,
        "cancel_call": _cancel_call,
    }
    app_routes = operation_routes(
        endpoints(state.config.paths).values(),
        lambda endpoint: _guarded(endpoint.name, handlers[endpoint.name], state),
    )

    def summary() -> dict[str, Any]:
        return {
            "requests_seen": dict(state.requests_seen),
            "rate_limited": dict(state.rate_limited),
            "calls": {k: c.as_status() for k, c in state.calls.items()},
            "events": state.events,
        }

    return sandbox_app(state, app_routes, Fault, summary)


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # Seed 001 shows only success bodies; errors are assumed to mirror them.
    return JSONResponse(
        {"status": "error", "message": message}, status_code=status_code, headers=headers
    )


def _guarded(name: str, handler: Handler, state: SandboxState):
    """Auth, the concurrency limit, faults and errors, around one operation."""
    placing = name in ("place_call", "place_batch")

    async def work(request: Request) -> Response:
        state.in_flight += placing
        try:
            response: Response = JSONResponse(await handler(request, state))
        except SandboxError as exc:
            response = _error(exc.status_code, exc.message, exc.headers)
        except ValidationError as exc:
            response = _error(400, describe(exc, limit=10))
        finally:
            state.in_flight -= placing
        if placing and response.status_code == 429:
            state.rate_limited[name] += 1
        return response

    async def endpoint(request: Request) -> Response:
        if not bearer_ok(request, state.config.api_key):
            return _error(401, "Unauthorized: send 'Authorization: Bearer <api key>'")
        if placing and state.in_flight >= state.config.concurrent_calls:
            state.rate_limited[name] += 1
            return _error(429, "Too many concurrent requests", {"Retry-After": "0.1"})
        state.requests_seen[name] += 1
        return await with_fault(state.take_fault(name), lambda: work(request), _error)

    return endpoint


def _clock() -> float:
    return time.time()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _admit(state: SandboxState, calls: int) -> None:
    """Count `calls` against the per-minute window, or refuse with 429."""
    limit = state.config.calls_per_minute
    if calls > limit:
        raise SandboxError(
            400, f"calls: a batch of {calls} exceeds the plan's {limit} calls per minute"
        )
    wait = state.room_for(calls)
    if wait > 0:
        raise SandboxError(
            429, f"Rate limit: {limit} calls per minute", {"Retry-After": f"{wait:.3f}"}
        )
    state.count(calls)


def _start(state: SandboxState, call: SimCall) -> None:
    state.calls[call.id] = call
    call.task = state.spawn(_simulate(state, call))


def _new_call(fields: dict[str, Any], batch_id: str | None = None) -> SimCall:
    scheduled = fields.get("schedule_at")
    call = SimCall(id=_new_id("robo"), request=fields, created_at=_now(), batch_id=batch_id)
    if scheduled is not None and scheduled > _now():
        call.status = "scheduled"
    return call


async def _place_call(request: Request, state: SandboxState) -> Any:
    body = await read_body(request, models.CallRequest)
    _admit(state, 1)
    call = _new_call(body.model_dump(exclude_none=True))
    _start(state, call)
    scheduled = call.status == "scheduled"
    answer: dict[str, Any] = {
        "status": "success",
        "call_id": call.id,
        "message": "Call scheduled" if scheduled else "Call queued",
        "scheduled_at": _iso(body.schedule_at) if scheduled else None,
    }
    if not scheduled:
        answer["estimated_start"] = _iso(_now() + timedelta(seconds=state.config.event_delay))
    return answer


async def _place_batch(request: Request, state: SandboxState) -> Any:
    body = await read_body(request, models.BatchRequest)
    _admit(state, len(body.calls))
    batch_id = _new_id("batch")
    calls = [_new_call(body.effective(i), batch_id) for i in range(len(body.calls))]
    for call in calls:
        _start(state, call)
    state.batches[batch_id] = [c.id for c in calls]
    return {
        "status": "success",
        "batch_id": batch_id,
        "total_calls": len(calls),
        "calls": [
            {"call_id": c.id, "phone_number": c.phone_number, "status": c.status} for c in calls
        ],
    }


def _call(state: SandboxState, request: Request) -> SimCall:
    call_id = request.path_params["call_id"]
    if call := state.calls.get(call_id):
        return call
    raise SandboxError(404, f"call {call_id} not found")


async def _call_status(request: Request, state: SandboxState) -> Any:
    return _call(state, request).as_status()


async def _cancel_call(request: Request, state: SandboxState) -> Any:
    call = _call(state, request)
    if call.status == "cancelled":
        raise SandboxError(409, f"call {call.id} is already cancelled")
    if call.status not in ("queued", "scheduled"):
        raise SandboxError(
            409, f"call {call.id} is {call.status}: only a call not yet dialled can be cancelled"
        )
    call.status = "cancelled"
    if call.task is not None:
        call.task.cancel()
    return {"status": "success", "message": "Call cancelled", "call_id": call.id}


async def _simulate(state: SandboxState, call: SimCall) -> None:
    """Wait for `schedule_at`, dial (at most `concurrent_calls` at once), send the events."""
    config = state.config
    scheduled = call.request.get("schedule_at")
    if scheduled is not None:
        await asyncio.sleep(max(0.0, (scheduled - _now()).total_seconds()))
    await state.dial_slot()
    try:
        if call.status == "cancelled":
            return
        call.status, call.started_at = "in_progress", _now()
        await asyncio.sleep(config.event_delay)
        dtmf = call.request.get("dtmf_config")
        listens = bool(dtmf and dtmf.get("enabled", True))
        outcome = outcome_for(call.phone_number, listens)
        url = call.request.get("callback_url")
        stamp = _iso(_now())
        events: list[dict[str, Any]] = []
        if outcome.answered:
            events.append(
                {
                    "event": models.EVENT_ANSWERED,
                    "call_id": call.id,
                    "phone_number": call.phone_number,
                    "timestamp": stamp,
                }
            )
        if outcome.digit:
            events.append(
                {
                    "event": models.EVENT_DTMF,
                    "call_id": call.id,
                    "digit": outcome.digit,
                    "timestamp": stamp,
                }
            )
        call.status, call.ended_at = "completed", _now()
        call.duration, call.dtmf_input, call.result = (
            outcome.duration,
            outcome.digit,
            outcome.result,
        )
        events.append(
            {
                "event": models.EVENT_COMPLETED,
                "call_id": call.id,
                "phone_number": call.phone_number,
                "duration": outcome.duration,
                "result": outcome.result,
                "dtmf_input": outcome.digit,
                "timestamp": _iso(call.ended_at),
            }
        )
    finally:
        await state.hang_up()
    for event in events:
        state.events.append({"url": url, **event})
        if url:
            await _send(state, url, event)
        await asyncio.sleep(config.event_gap)


async def _send(state: SandboxState, url: str, event: dict[str, Any]) -> None:
    """POST one event until it is answered 2xx, with exponential backoff."""
    config = state.config
    if await post_with_backoff(
        state.client(),
        url,
        event,
        attempts=config.callback_attempts,
        backoff=config.callback_backoff,
    ):
        return
    log.warning("sandbox: %s for %s was never accepted", event["event"], event["call_id"])
