"""The BizPhone sandbox: seed 004's robo-call API, simulated in memory.

`POST /call` validates the body with the same models as the client
(`CallRequest`: numbers, digits, pitch and rate, every message ≤ 1000 characters
after each destination's properties are filled in), requires the
`x-credential-api-key` header (401 without it), refuses a `requestId` it already
has (409), and queues the calls: at most `concurrent_calls` ring at once, as
BizPhone does with an organisation's concurrent calls. `GET /status/{requestId}`
shows each call progressing, `queued` → `onProgress` (`call_state` `ongoing`) →
`completed`, `call_seconds` after it started, ending as the number's last digit
says (`outcomes.py`); 404 for a request it does not have.

Tests script faults (`Fault`) and read what happened (`SandboxState`), in process
or through `/_sandbox/state` and `/_sandbox/faults`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.providers.bizphone.client import API_KEY_HEADER
from bot.providers.bizphone.endpoints import CALL_PATH, STATUS_PATH
from bot.providers.bizphone.models import CallFlow, CallRequest, describe
from bot.providers.bizphone.sandbox.outcomes import Outcome, final_steps, outcome_for
from bot.providers.sandbox_kit import (
    Fault,
    SandboxStateBase,
    key_matches,
    sandbox_app,
    with_fault,
)


@dataclass
class SandboxConfig:
    """How the sandbox behaves. The seed's example organisation has 6 concurrent calls."""

    concurrent_calls: int = 6
    call_seconds: float = 1.0  # how long a call is in progress before it ends
    api_key: str | None = None  # when set, the only key accepted (embedded sandbox)


@dataclass
class SimCall:
    phone: str
    caller: str | None
    outcome: Outcome
    state: str = "queued"  # queued → onProgress → completed
    steps: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, request_id: str) -> dict[str, Any]:
        return {
            "requestId": request_id,
            "caller": self.caller or "",
            "destination": self.phone,
            "status": self.state,
            "callFlowSteps": self.steps,
            "monitorData": [],
        }


@dataclass
class SimRequest:
    request_id: str
    flow: CallFlow
    calls: list[SimCall]
    recording: bool = False  # the request's `enableCallRecording`

    @property
    def done(self) -> bool:
        return all(c.state == "completed" for c in self.calls)

    def as_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "status": "completed" if self.done else "submitted",
            "details": [c.as_json(self.request_id) for c in self.calls],
        }


@dataclass
class SandboxState(SandboxStateBase):
    """Everything the sandbox holds, readable by tests. Faults (`sandbox_kit.Fault`) are
    scripted for `place_calls`, `call_status` or "*"."""

    config: SandboxConfig
    requests: dict[str, SimRequest] = field(default_factory=dict)
    requests_seen: Counter[str] = field(default_factory=Counter)
    numbers_called: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    tasks: set[asyncio.Task] = field(default_factory=set)
    ongoing: int = 0
    most_ongoing: int = 0  # the most calls that were in progress at once
    _slots: asyncio.Semaphore | None = None

    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, self.config.concurrent_calls))
        return self._slots

    def summary(self) -> dict[str, Any]:
        return {
            "requests_seen": dict(self.requests_seen),
            "requests": len(self.requests),
            "numbers_called": dict(self.numbers_called),
            "most_ongoing": self.most_ongoing,
            "pending_faults": [asdict(f) for f in self.faults],
        }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The seed's "example of bad result"."""
    return JSONResponse(
        {"status": "error", "message": message}, status_code=status, headers=headers
    )


def create_sandbox_app(config: SandboxConfig | None = None) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox` is its `SandboxState`."""
    state = SandboxState(config or SandboxConfig())

    async def guarded(name: str, request: Request, work) -> Response:
        if not key_matches(request.headers.get(API_KEY_HEADER, ""), state.config.api_key):
            return _error(401, f"Unauthorized: send the '{API_KEY_HEADER}' header")
        state.requests_seen[name] += 1
        return await with_fault(state.take_fault(name), lambda: work(request), _error)

    async def place_calls(request: Request) -> Response:
        return await guarded("place_calls", request, _place_calls)

    async def call_status(request: Request) -> Response:
        return await guarded("call_status", request, _call_status)

    async def _place_calls(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not valid JSON")
        try:
            call = CallRequest.model_validate(body)
        except ValidationError as exc:
            return _error(400, "; ".join(describe(exc)))
        if call.requestId in state.requests:
            return _error(409, f"requestId {call.requestId} was already submitted")
        sim = SimRequest(
            call.requestId,
            call.callFlow,
            [SimCall(d.phone, d.caller, outcome_for(d.phone)) for d in call.destinations],
            recording=bool(call.enableCallRecording),
        )
        state.requests[call.requestId] = sim
        for c in sim.calls:
            state.numbers_called[c.phone] += 1
        state.spawn(_dispatch(state, sim))
        return JSONResponse(sim.as_json())

    async def _call_status(request: Request) -> Response:
        request_id = request.path_params["request_id"]
        sim = state.requests.get(request_id)
        if sim is None:
            return _error(404, f"no such request: {request_id}")
        return JSONResponse(sim.as_json())

    routes = [
        Route(CALL_PATH, place_calls, methods=["POST"]),
        Route(STATUS_PATH, call_status, methods=["GET"]),
    ]
    return sandbox_app(state, routes, Fault, state.summary)


async def _dispatch(state: SandboxState, sim: SimRequest) -> None:
    """Trigger the request's calls in order, each when one of the concurrent calls is free."""
    slots = state.slots()
    for call in sim.calls:
        await slots.acquire()
        state.spawn(_ring(state, sim, call, slots))


async def _ring(state: SandboxState, sim: SimRequest, call: SimCall, slots) -> None:
    try:
        state.ongoing += 1
        state.most_ongoing = max(state.most_ongoing, state.ongoing)
        call.state = "onProgress"
        call.steps = [{"stepName": sim.flow.steps[0].name, "info": {"call_state": "ongoing"}}]
        await asyncio.sleep(state.config.call_seconds)
        call.steps = final_steps(sim.flow, call.outcome)
        call.state = "completed"
    finally:
        state.ongoing -= 1
        slots.release()
