"""What the three providers' sandboxes share: scripted faults and how they are answered,
the state's background tasks and callback client, key checks, request bodies read and
refused alike, callbacks POSTed with backoff, and the `/_sandbox/state` and
`/_sandbox/faults` routes tests and demos drive them with.

Each sandbox keeps what is its own: its paths, its models, its error envelope (passed
in here as an `ErrorResponder`), its rate limits and its simulated calls.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

M = TypeVar("M", bound=BaseModel)


class ErrorResponder(Protocol):
    """A sandbox's own error envelope: status, message, headers → the response."""

    def __call__(
        self, status_code: int, message: str, headers: dict[str, str] | None = None
    ) -> Response: ...


@dataclass
class Fault:
    """A scripted misbehaviour for the next `times` requests to `operation` ("*": any).

    `status` answers that HTTP status without doing anything (with `Retry-After` when
    `retry_after` is set), or after doing the work when `after_work` is set; `body`,
    with `status`, is the whole JSON body answered instead of the sandbox's error
    envelope. `answer_delay` answers that many seconds late: after doing the work, it
    is what a client sees as a read timeout.
    """

    operation: str = "*"
    status: int | None = 500
    retry_after: float | None = None
    answer_delay: float = 0.0
    times: int = 1
    after_work: bool = False
    body: Any = None


class SandboxError(Exception):
    """Answered in the sandbox's error envelope with `status_code` (and `headers`)."""

    def __init__(
        self, status_code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.headers = headers
        super().__init__(message)


class SandboxStateBase:
    """Faults, background tasks and the callback client, for a sandbox's state dataclass
    that declares `faults: list[Fault]` and `tasks: set[asyncio.Task]` (and `http` when
    it sends callbacks)."""

    faults: list[Any]
    tasks: set[asyncio.Task]
    http: httpx.AsyncClient | None = None

    def take_fault(self, operation: str) -> Any:
        """The first pending fault for `operation` (or "*"), counted down; None if none."""
        for fault in self.faults:
            if fault.operation in ("*", operation):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run `coroutine` in the background until it ends or the sandbox closes."""
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def client(self) -> httpx.AsyncClient:
        """The client that sends callbacks (made on first use: a mounted sandbox has no
        lifespan of its own)."""
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=10.0)
        return self.http

    async def close(self) -> None:
        """Stop simulating: cancel what runs in the background, close the client."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()
            self.http = None


# ---------------------------------------------------------------- keys


def key_matches(presented: str, expected: str | None) -> bool:
    """A non-empty key, and the configured one when there is one (compared in constant
    time: the embedded sandbox's key is a secret of the app)."""
    presented = presented.strip()
    return bool(presented) and (not expected or hmac.compare_digest(presented, expected))


def bearer_ok(request: Request, expected: str | None) -> bool:
    """`Authorization: Bearer <key>`, as `key_matches` reads the key."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and key_matches(token, expected)


# ---------------------------------------------------------------- bodies and faults


def describe(exc: ValidationError, limit: int | None = None) -> str:
    """A validation error as one line naming each field: `calls.0.phone_number: …`."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


async def read_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`; SandboxError 400 when it is not JSON (a
    ValidationError when it does not fit, for the sandbox to answer in its words)."""
    try:
        body = await request.json()
    except ValueError:
        raise SandboxError(400, "request body is not valid JSON") from None
    return model.model_validate(body)


def fault_response(fault: Fault, error: ErrorResponder) -> Response:
    """What a fault answers: its own body, or the sandbox's error envelope."""
    status = fault.status or 500
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
    if fault.body is not None:
        return JSONResponse(fault.body, status_code=status, headers=headers)
    return error(status, f"sandbox fault: HTTP {status}", headers)


async def with_fault(
    fault: Fault | None, work: Callable[[], Awaitable[Response]], error: ErrorResponder
) -> Response:
    """Do `work` as `fault` says: not at all (a status, before), then answer late or
    with the fault's status (after), or just as it answers."""
    if fault is not None and fault.status and not fault.after_work:
        await asyncio.sleep(fault.answer_delay)
        return fault_response(fault, error)
    response = await work()
    if fault is not None and fault.answer_delay:
        await asyncio.sleep(fault.answer_delay)
    if fault is not None and fault.status:
        return fault_response(fault, error)
    return response


# ---------------------------------------------------------------- callbacks


async def post_with_backoff(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    *,
    attempts: int,
    backoff: float,
    accepted: Callable[[httpx.Response], bool] = lambda r: r.is_success,
    record: list[Any] | None = None,
) -> bool:
    """POST `body` to `url` until it is `accepted`, at most `attempts` times, waiting
    `backoff`, then twice as long, … between; each answer's status (or the error's
    name) is appended to `record` as it comes. True once accepted."""
    for attempt in range(attempts):
        try:
            response = await client.post(url, json=body)
            if record is not None:
                record.append(response.status_code)
            if accepted(response):
                return True
        except httpx.HTTPError as exc:
            if record is not None:
                record.append(type(exc).__name__)
        await asyncio.sleep(backoff * 2**attempt)
    return False


# ---------------------------------------------------------------- the app around them


Endpoint = Callable[[Request], Awaitable[Response]]


def operation_routes(operations: Iterable[Any], make: Callable[[Any], Endpoint]) -> list[Route]:
    """A route a path for `operations` (each with `path` and `method`, as the providers'
    `endpoints()` give them), `make(operation)` answering each method; operations that
    share a path (`GET` and `DELETE /call/{call_id}`) share its route. HEAD is answered
    as GET."""
    table: dict[str, dict[str, Endpoint]] = {}
    for operation in operations:
        table.setdefault(operation.path, {})[operation.method.upper()] = make(operation)

    def dispatcher(methods: dict[str, Endpoint]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await methods[method](request)

        return endpoint

    return [
        Route(path, dispatcher(methods), methods=list(methods)) for path, methods in table.items()
    ]


def control_routes(
    state: SandboxStateBase, fault: type[Fault], summary: Callable[[], dict[str, Any]]
) -> list[Route]:
    """`GET /_sandbox/state` (what the sandbox saw) and `POST /_sandbox/faults` (a
    `fault` to script, as JSON)."""

    async def read_state(request: Request) -> Response:
        return JSONResponse(summary())

    async def add_fault(request: Request) -> Response:
        state.faults.append(fault(**await request.json()))
        return JSONResponse({"pending_faults": len(state.faults)})

    return [
        Route("/_sandbox/state", read_state, methods=["GET"]),
        Route("/_sandbox/faults", add_fault, methods=["POST"]),
    ]


def sandbox_app(
    state: SandboxStateBase,
    routes: list[Route],
    fault: type[Fault],
    summary: Callable[[], dict[str, Any]],
) -> Starlette:
    """The sandbox's ASGI app: its `routes` and the control routes, closing `state` when
    it stops; `app.state.sandbox` is `state`, for tests to read and script."""
    app = Starlette(
        routes=[*routes, *control_routes(state, fault, summary)],
        lifespan=closing_lifespan(state),
    )
    app.state.sandbox = state
    return app


def closing_lifespan(state: SandboxStateBase):
    """A lifespan that closes `state` when the app stops."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.close()

    return lifespan
