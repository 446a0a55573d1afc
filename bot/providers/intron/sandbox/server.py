"""The sandbox: Intron's voicebot workflow API, simulated in memory.

Same paths (from `IntronPaths`), same request models and validation, same error
envelope, the documented rate limits (429 with `Retry-After` beyond them), and a
completion callback in the shape of seed 002 after a configurable delay. Calls
end as the last digit of the number says (`outcomes.py`). Tests can script
faults (`Fault`) and read what happened (`SandboxState`), in process or through
`/_sandbox/state` and `/_sandbox/faults`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.ratelimit import SlidingWindowLimiter, Window
from bot.input import templates
from bot.providers.intron.client import DEFAULT_CALL_WINDOWS, DEFAULT_MANAGEMENT_WINDOWS
from bot.providers.intron.endpoints import IntronPaths, LimitGroup, endpoints
from bot.providers.intron.models import (
    MAX_MESSAGE_CHARS,
    CallRequest,
    RequestCall,
    WorkflowCreate,
    WorkflowUpdate,
    stats_from_calls,
)
from bot.providers.intron.sandbox.outcomes import PROCESSING_STATUS, SimStatus, outcome_for
from bot.providers.sandbox_kit import Fault as KitFault
from bot.providers.sandbox_kit import (
    SandboxError,
    SandboxStateBase,
    bearer_ok,
    describe,
    fault_response,
    operation_routes,
    post_with_backoff,
    read_body,
    sandbox_app,
    with_fault,
)

log = logging.getLogger(__name__)

INTEGRATOR_ID = "00000000-5a4d-b0c5-0000-000000000000"
MAX_PER_PAGE = 100


@dataclass
class SandboxConfig:
    """How the sandbox behaves; the defaults are Intron's documented limits."""

    callback_delay: float = 2.0
    call_windows: tuple[Window, ...] = DEFAULT_CALL_WINDOWS
    management_windows: tuple[Window, ...] = DEFAULT_MANAGEMENT_WINDOWS
    callback_attempts: int = 5
    callback_backoff: float = 0.5
    paths: IntronPaths = field(default_factory=IntronPaths)
    chaos: Chaos | None = None
    api_key: str | None = None  # when set, the only bearer token accepted (embedded sandbox)


@dataclass
class Fault(KitFault):
    """`sandbox_kit.Fault`, with no status unless one is given: `Fault("place_calls",
    answer_delay=20)` carries the request out and answers late (a read timeout as the
    client sees it). `body`, with `status`, is answered instead of Intron's error
    envelope: e.g. a FastAPI validation error, `{"detail": [{"loc": [...], "msg": ...}]}`.
    """

    status: int | None = None


@dataclass
class Chaos:
    """Random misbehaviour on `operations`, repeatable through `seed`.

    Each rate is a probability per request: a 500 before doing anything, a 500
    after doing the work (the caller cannot tell which), a 429 with
    `Retry-After`, or an answer `slow_seconds` late (work done first).
    """

    error_before: float = 0.0
    error_after: float = 0.0
    rate_limit: float = 0.0
    retry_after: float = 0.5
    slow: float = 0.0
    slow_seconds: float = 2.0
    operations: tuple[str, ...] = ("place_calls", "call_status", "list_workflow_calls")
    seed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self, operation: str) -> Fault | None:
        """The fault this request suffers, if any."""
        if operation not in self.operations:
            return None
        roll = self._random.random()
        for rate, fault in (
            (self.error_before, Fault(operation, status=500)),
            (self.error_after, Fault(operation, status=500, after_work=True)),
            (self.rate_limit, Fault(operation, status=429, retry_after=self.retry_after)),
            (self.slow, Fault(operation, answer_delay=self.slow_seconds)),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return None


@dataclass
class SimCall:
    id: str
    batch_id: str
    workflow_id: str
    phone_number: str
    workflow_variables: dict[str, str]
    user_tag_identifiers: dict[str, str]
    created_at: str
    status: SimStatus = SimStatus.QUEUED
    duration: int | None = None
    key_pressed: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "batch_id": self.batch_id,
            "status": str(self.status),
            "phone_number": self.phone_number,
            "user_tag_identifiers": self.user_tag_identifiers,
            "call_result_duration": self.duration,
            "call_result_options_selected": self.key_pressed,
            "created_at": self.created_at,
        }


@dataclass
class Batch:
    id: str
    workflow_id: str
    created_at: str
    calls: list[SimCall]
    status: str = "PROCESSING"

    def stats(self) -> dict[str, Any]:
        """Completion statistics in seed 002's shape."""
        calls = [RequestCall.model_validate(c.as_json()) for c in self.calls]
        return stats_from_calls(calls).model_dump(exclude_none=True)


@dataclass
class SandboxState(SandboxStateBase):
    """Everything the sandbox holds, readable by tests."""

    config: SandboxConfig
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    calls: dict[str, SimCall] = field(default_factory=dict)
    requests_seen: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task] = field(default_factory=set)
    http: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        self.limiters = {
            LimitGroup.CALLS: SlidingWindowLimiter(self.config.call_windows),
            LimitGroup.MANAGEMENT: SlidingWindowLimiter(self.config.management_windows),
        }

    def numbers_called(self) -> Counter[str]:
        """How many times each number was called, over every batch."""
        return Counter(call.phone_number for call in self.calls.values())

    def summary(self) -> dict[str, Any]:
        return {
            "requests_seen": dict(self.requests_seen),
            "rate_limited": dict(self.rate_limited),
            "workflows": len(self.workflows),
            "batches": len(self.batches),
            "calls": len(self.calls),
            "numbers_called": dict(self.numbers_called()),
            "callbacks": self.callbacks,
            "pending_faults": [asdict(f) for f in self.faults],
        }


Handler = Callable[[Request, SandboxState], Awaitable[tuple[Any, str]]]


def create_sandbox_app(config: SandboxConfig | None = None) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox` is its `SandboxState`."""
    state = SandboxState(config or SandboxConfig())
    handlers: dict[str, Handler] = {
        "place_calls": _place_calls,
        "call_status": _call_status,
        "create_workflow": _create_workflow,
        "list_workflows": _list_workflows,
        "get_workflow": _get_workflow,
        "update_workflow": _update_workflow,
        "delete_workflow": _delete_workflow,
        "list_workflow_requests": _list_workflow_requests,
        "list_workflow_calls": _list_workflow_calls,
    }
    routes = operation_routes(
        endpoints(state.config.paths).values(),
        lambda endpoint: _guarded(endpoint.name, endpoint.group, handlers[endpoint.name], state),
    )
    return sandbox_app(state, routes, Fault, state.summary)


def _envelope(data: Any, message: str, status_code: int = 200, headers=None) -> JSONResponse:
    status = "Ok" if status_code < 400 else "Error"
    body = {"data": data, "message": message, "status": status}
    return JSONResponse(body, status_code=status_code, headers=headers)


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Intron's error envelope."""
    return _envelope(None, message, status_code, headers)


def _fault_response(fault: Fault) -> Response:
    return fault_response(fault, _error)


def _guarded(name: str, group: LimitGroup, handler: Handler, state: SandboxState):
    """Wrap a handler with what every Intron endpoint does: auth, rate limit, errors."""

    async def work(request: Request) -> Response:
        try:
            data, message = await handler(request, state)
            return _envelope(data, message)
        except SandboxError as exc:
            return _envelope(None, exc.message, exc.status_code, exc.headers)
        except ValidationError as exc:
            return _envelope(None, describe(exc), 400)

    async def endpoint(request: Request) -> Response:
        if not bearer_ok(request, state.config.api_key):
            return _envelope(None, "Unauthorized: send 'Authorization: Bearer <api key>'", 401)
        wait = state.limiters[group].try_acquire()
        if wait > 0:
            state.rate_limited[name] += 1
            return _envelope(None, "Too many requests", 429, {"Retry-After": f"{wait:.3f}"})
        state.requests_seen[name] += 1
        fault = state.take_fault(name) or (state.config.chaos and state.config.chaos.draw(name))
        return await with_fault(fault or None, lambda: work(request), _error)

    return endpoint


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _workflow(state: SandboxState, workflow_id: str) -> dict[str, Any]:
    try:
        return state.workflows[workflow_id]
    except KeyError:
        raise SandboxError(404, f"workflow {workflow_id} not found") from None


def _paging(request: Request) -> tuple[int, int]:
    values = []
    for name, default in (("page", 1), ("per_page", 10)):
        raw = request.query_params.get(name, str(default))
        if not raw.isdigit() or int(raw) < 1:
            raise SandboxError(400, f"{name} must be a positive integer, not '{raw}'")
        values.append(int(raw))
    if values[1] > MAX_PER_PAGE:
        raise SandboxError(400, f"per_page must be at most {MAX_PER_PAGE}, not {values[1]}")
    return values[0], values[1]


def _page(items: list[Any], page: int, per_page: int) -> dict[str, Any]:
    start = (page - 1) * per_page
    return {
        "items": items[start : start + per_page],
        "page": page,
        "per_page": per_page,
        "total": len(items),
    }


# ---------------------------------------------------------------- calls


async def _place_calls(request: Request, state: SandboxState) -> tuple[Any, str]:
    call: CallRequest = await read_body(request, CallRequest)
    workflow = _workflow(state, call.workflow_id)
    for index, param in enumerate(call.workflow_params):
        values = param.workflow_variables
        if missing := templates.missing_variables(workflow["message"], values):
            names = ", ".join(f"[{m}]" for m in missing)
            raise SandboxError(400, f"workflow_params.{index}: missing workflow variables {names}")
        length = len(templates.render(workflow["message"], values))
        if length > MAX_MESSAGE_CHARS:
            raise SandboxError(
                400,
                f"workflow_params.{index}: message is {length} characters "
                f"after replacing variables; the limit is 4000",
            )
    batch = Batch(id=str(uuid.uuid4()), workflow_id=workflow["id"], created_at=_now(), calls=[])
    for param in call.workflow_params:
        sim = SimCall(
            id=str(uuid.uuid4()),
            batch_id=batch.id,
            workflow_id=workflow["id"],
            phone_number=param.phone_number,
            workflow_variables=dict(param.workflow_variables),
            user_tag_identifiers=dict(param.user_tag_identifiers),
            created_at=_now(),
        )
        batch.calls.append(sim)
        state.calls[sim.id] = sim
    state.batches[batch.id] = batch
    state.spawn(_complete_later(state, batch, workflow))
    return {"batch_id": batch.id}, "batch request created successfully"


async def _call_status(request: Request, state: SandboxState) -> tuple[Any, str]:
    call_id = request.path_params["call_id"]
    if call := state.calls.get(call_id):
        return {
            "call_id": call.id,
            "processing_status": PROCESSING_STATUS[call.status],
            "call_duration_in_seconds": call.duration,
        }, "call status found"
    if batch := state.batches.get(call_id):  # a batch id works too: the whole request's state
        done = batch.status == "COMPLETED"
        return {
            "call_id": batch.id,
            "processing_status": "VOICE_CALL_PROCESSED" if done else "VOICE_CALL_QUEUED",
            "call_duration_in_seconds": sum(c.duration or 0 for c in batch.calls) if done else None,
        }, "call status found"
    raise SandboxError(404, f"call {call_id} not found")


async def _complete_later(state: SandboxState, batch: Batch, workflow: dict[str, Any]) -> None:
    """After the configured delay, finish every call and send the completion callback."""
    await asyncio.sleep(state.config.callback_delay)
    digits = frozenset(
        (workflow.get("response_options") or {}) if workflow["include_reply"] else ()
    )
    for call in batch.calls:
        outcome = outcome_for(call.phone_number, digits)
        call.status, call.key_pressed, call.duration = (
            outcome.status,
            outcome.key_pressed,
            outcome.duration,
        )
    batch.status = "COMPLETED"
    payload = {
        "request_id": batch.id,
        "status": "COMPLETED",
        "integrator_id": INTEGRATOR_ID,
        "stats": batch.stats(),
        "request_calls": [
            {k: v for k, v in call.as_json().items() if k != "batch_id"} for call in batch.calls
        ],
    }
    url = workflow.get("call_back_url")
    if url:
        await _send_callback(state, url, payload)


async def _send_callback(state: SandboxState, url: str, payload: dict[str, Any]) -> None:
    """POST the callback until it is answered 200, with exponential backoff."""
    record: dict[str, Any] = {"url": url, "request_id": payload["request_id"], "attempts": []}
    state.callbacks.append(record)
    if await post_with_backoff(
        state.client(),
        url,
        payload,
        attempts=state.config.callback_attempts,
        backoff=state.config.callback_backoff,
        accepted=lambda response: response.status_code == 200,
        record=record["attempts"],
    ):
        return
    log.warning("sandbox: callback for %s was never accepted by %s", payload["request_id"], url)


# ---------------------------------------------------------------- workflows


async def _create_workflow(request: Request, state: SandboxState) -> tuple[Any, str]:
    new: WorkflowCreate = await read_body(request, WorkflowCreate)
    now = _now()
    workflow = {
        "id": str(uuid.uuid4()),
        **new.model_dump(mode="json"),
        "created_at": now,
        "updated_at": now,
    }
    state.workflows[workflow["id"]] = workflow
    return workflow, "workflow created successfully"


async def _list_workflows(request: Request, state: SandboxState) -> tuple[Any, str]:
    return list(state.workflows.values()), "workflows found"


async def _get_workflow(request: Request, state: SandboxState) -> tuple[Any, str]:
    return _workflow(state, request.path_params["workflow_id"]), "workflow found"


async def _update_workflow(request: Request, state: SandboxState) -> tuple[Any, str]:
    workflow = _workflow(state, request.path_params["workflow_id"])
    changes: WorkflowUpdate = await read_body(request, WorkflowUpdate)
    merged = {**workflow, **changes.model_dump(mode="json", exclude_unset=True)}
    # The result must be a valid workflow as a whole (e.g. a reply still needs options).
    checked = WorkflowCreate.model_validate(
        {k: v for k, v in merged.items() if k in WorkflowCreate.model_fields}
    )
    workflow.update(checked.model_dump(mode="json"), updated_at=_now())
    return workflow, "workflow updated successfully"


async def _delete_workflow(request: Request, state: SandboxState) -> tuple[Any, str]:
    workflow = _workflow(state, request.path_params["workflow_id"])
    del state.workflows[workflow["id"]]
    return None, "workflow deleted successfully"


async def _list_workflow_requests(request: Request, state: SandboxState) -> tuple[Any, str]:
    workflow = _workflow(state, request.path_params["workflow_id"])
    page, per_page = _paging(request)
    batches = [b for b in state.batches.values() if b.workflow_id == workflow["id"]]
    items = [
        {"id": b.id, "status": b.status, "stats": b.stats(), "created_at": b.created_at}
        for b in reversed(batches)  # newest first
    ]
    return _page(items, page, per_page), "workflow requests found"


async def _list_workflow_calls(request: Request, state: SandboxState) -> tuple[Any, str]:
    workflow = _workflow(state, request.path_params["workflow_id"])
    page, per_page = _paging(request)
    wanted = {k: request.query_params.get(k) for k in ("batch_id", "status", "phone_number")}
    if wanted["phone_number"]:  # an unescaped '+' in a query string arrives as a space
        wanted["phone_number"] = "+" + wanted["phone_number"].strip().lstrip("+")
    calls = [
        c.as_json()
        for c in state.calls.values()
        if c.workflow_id == workflow["id"]
        and all(v is None or str(c.as_json()[k]) == v for k, v in wanted.items())
    ]
    return _page(calls, page, per_page), "workflow calls found"
