"""The async Intron voicebot client: one class, typed results, typed errors.

Rate limits are enforced here, before sending, so a burst waits instead of
failing. Retries (with backoff and jitter) happen only where resending cannot
do something twice: a `POST` that may have reached Intron is reported as
`OutcomeUnknownError`, never resent.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from bot.intron.endpoints import Endpoint, IntronPaths, LimitGroup, endpoints
from bot.intron.errors import (
    AuthenticationError,
    IntronConnectionError,
    IntronError,
    IntronValidationError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
)
from bot.intron.models import (
    CallBatch,
    CallRequest,
    CallStatus,
    Page,
    Workflow,
    WorkflowCall,
    WorkflowCreate,
    WorkflowRequest,
    WorkflowUpdate,
)
from bot.ratelimit import SlidingWindowLimiter, TooLongWait, Window

log = logging.getLogger(__name__)

M = TypeVar("M")

RETRY_STATUSES = {429, 502, 503, 504}
# A 500 may come after the work was done, and a 502 or 504 from a gateway that
# may already have passed the request on; only 429 and 503 say "not acted upon".
NOT_ACTED_UPON_STATUSES = {429, 503}
# These failures happen before any byte of the request leaves this machine.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
DEFAULT_CALL_WINDOWS = (Window(5, 1.0),)
DEFAULT_MANAGEMENT_WINDOWS = (Window(6, 60.0), Window(60, 3600.0))


class IntronClient:
    """Every operation of Intron's voicebot workflow API (seeds 000, 002, 003)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://voicebot.intron.health/voicebot/v1",
        *,
        paths: IntronPaths | None = None,
        call_windows: tuple[Window, ...] = DEFAULT_CALL_WINDOWS,
        management_windows: tuple[Window, ...] = DEFAULT_MANAGEMENT_WINDOWS,
        limit_margin: float = 0.01,
        max_wait: float | None = 120.0,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key.strip():
            raise ValueError("IntronClient needs an API key (INTRON_API_KEY)")
        self.base_url = base_url.rstrip("/")
        self.endpoints = endpoints(paths or IntronPaths())
        self.limiters = {
            LimitGroup.CALLS: SlidingWindowLimiter(call_windows, margin=limit_margin),
            LimitGroup.MANAGEMENT: SlidingWindowLimiter(management_windows, margin=limit_margin),
        }
        self.max_wait = max_wait
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            # Close idle connections before a typical server does (uvicorn: 5 s):
            # a POST written onto a connection the server just closed would come
            # back as "outcome unknown" for no reason.
            limits=httpx.Limits(keepalive_expiry=2.0),
        )

    def wait_time(self, group: LimitGroup) -> float:
        """Seconds before a request of `group` could be sent without waiting on our limiter.

        While the request that decides it is still in flight the exact wait is not
        known; the longest window is then a safe upper bound.
        """
        limiter = self.limiters[group]
        wait = limiter.wait_time()
        return max(w.seconds for w in limiter.windows) if math.isinf(wait) else wait

    def __repr__(self) -> str:  # never show the key
        return f"IntronClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> IntronClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ calls

    async def place_calls(
        self, request: CallRequest, *, before_send: Callable[[], None] | None = None
    ) -> str:
        """`POST /call`; returns the batch id. Never resent once it may have reached Intron.

        `before_send` runs once a rate-limit slot is ours, just before each attempt
        goes on the wire: the moment a crash would leave the outcome unknown.
        It may raise to stop the attempt.
        """
        data = await self._send(
            "place_calls", json=request.model_dump(exclude_none=True), before_send=before_send
        )
        return _parse(CallBatch, data, "place_calls").batch_id

    async def call_status(self, call_id: str) -> CallStatus:
        """`GET /status/{call_id}`."""
        data = await self._send("call_status", path_params={"call_id": call_id})
        return _parse(CallStatus, data, "call_status")

    # ------------------------------------------------------------ workflows

    async def create_workflow(self, workflow: WorkflowCreate) -> Workflow:
        """`POST /workflows`."""
        data = await self._send("create_workflow", json=workflow.model_dump(exclude_none=True))
        return _parse(Workflow, data, "create_workflow")

    async def list_workflows(self) -> list[Workflow]:
        """`GET /workflows`."""
        data = await self._send("list_workflows")
        return _parse(Page[Workflow], data, "list_workflows").items

    async def get_workflow(self, workflow_id: str) -> Workflow:
        """`GET /workflows/{id}`."""
        data = await self._send("get_workflow", path_params={"workflow_id": workflow_id})
        return _parse(Workflow, data, "get_workflow")

    async def update_workflow(self, workflow_id: str, changes: WorkflowUpdate) -> Workflow:
        """`PUT /workflows/{id}` with only the fields set in `changes`."""
        data = await self._send(
            "update_workflow",
            path_params={"workflow_id": workflow_id},
            json=changes.model_dump(exclude_unset=True),
        )
        return _parse(Workflow, data, "update_workflow")

    async def delete_workflow(self, workflow_id: str) -> None:
        """`DELETE /workflows/{id}`."""
        await self._send("delete_workflow", path_params={"workflow_id": workflow_id})

    async def list_workflow_requests(
        self, workflow_id: str, *, page: int = 1, per_page: int = 10
    ) -> Page[WorkflowRequest]:
        """`GET /workflows/{id}/requests`: the batches sent with this workflow."""
        data = await self._send(
            "list_workflow_requests",
            path_params={"workflow_id": workflow_id},
            params={"page": page, "per_page": per_page},
        )
        return _page(WorkflowRequest, data, page, per_page, "list_workflow_requests")

    async def list_workflow_calls(
        self,
        workflow_id: str,
        *,
        page: int = 1,
        per_page: int = 10,
        batch_id: str | None = None,
        status: str | None = None,
        phone_number: str | None = None,
    ) -> Page[WorkflowCall]:
        """`GET /workflows/{id}/calls`, optionally filtered by batch, status and number."""
        filters = {"batch_id": batch_id, "status": status, "phone_number": phone_number}
        data = await self._send(
            "list_workflow_calls",
            path_params={"workflow_id": workflow_id},
            params={"page": page, "per_page": per_page}
            | {k: v for k, v in filters.items() if v is not None},
        )
        return _page(WorkflowCall, data, page, per_page, "list_workflow_calls")

    # ------------------------------------------------------------ transport

    async def _send(
        self,
        name: str,
        *,
        path_params: dict[str, str] | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> Any:
        """Send one operation with rate limiting and safe retries; return the envelope's data."""
        endpoint = self.endpoints[name]
        path = endpoint.path.format(
            **{k: quote(v, safe="") for k, v in (path_params or {}).items()}
        )
        limiter = self.limiters[endpoint.group]
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self._exchange(
                    endpoint, path, json=json, params=params, before_send=before_send
                )
            except NOT_SENT_ERRORS as exc:
                failure: IntronError = IntronConnectionError(
                    f"{name}: could not connect to Intron ({type(exc).__name__})", operation=name
                )
                delay = self._backoff(attempt)
            except httpx.TransportError as exc:
                if not endpoint.resend_safe:
                    raise _unknown(endpoint, f"no answer ({type(exc).__name__})") from None
                failure = IntronConnectionError(
                    f"{name}: Intron did not answer ({type(exc).__name__})", operation=name
                )
                delay = self._backoff(attempt)
            else:
                if response.is_success:
                    return _data(response)
                status = response.status_code
                if (
                    not endpoint.resend_safe
                    and status >= 500
                    and status not in NOT_ACTED_UPON_STATUSES
                ):
                    raise _unknown(endpoint, f"HTTP {status}")
                failure = _error_for(endpoint, response)
                if status not in RETRY_STATUSES:
                    raise failure
                retry_after = _retry_after(response)
                if retry_after is not None:
                    limiter.pause(retry_after)
                delay = retry_after if retry_after is not None else self._backoff(attempt)
            if attempt == self.max_attempts:
                raise failure
            if self.max_wait is not None and delay > self.max_wait:
                raise RateLimitedError(
                    f"{name}: Intron asks us to wait {delay:.0f} s",
                    operation=name,
                    retry_after=delay,
                    status_code=429,
                )
            log.info(
                "intron %s: attempt %d failed (%s); retrying in %.2fs",
                name,
                attempt,
                failure.message,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _exchange(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        json: Any,
        params: dict[str, Any] | None,
        before_send: Callable[[], None] | None = None,
    ) -> httpx.Response:
        """One HTTP exchange inside a rate-limit slot, which counts from when it ends."""
        limiter = self.limiters[endpoint.group]
        try:
            slot = await limiter.acquire(self.max_wait)
        except TooLongWait as exc:
            raise RateLimitedError(
                f"{endpoint.name}: Intron's {endpoint.group} limit is reached; "
                f"possible again in {exc.wait:.0f} s",
                operation=endpoint.name,
                retry_after=exc.wait,
            ) from None
        try:
            if before_send is not None:
                before_send()
            return await self._http.request(endpoint.method, path, json=json, params=params)
        finally:
            limiter.release(slot)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base·2^(attempt-1), capped."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def _data(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        raise ServerError(
            f"Intron answered HTTP {response.status_code} with a body that is not JSON",
            status_code=response.status_code,
        ) from None
    return body.get("data") if isinstance(body, dict) else body


def _parse(model: type[M] | Any, data: Any, operation: str) -> M:
    try:
        return TypeAdapter(model).validate_python(data)
    except ValueError as exc:
        raise ServerError(
            f"{operation}: Intron's answer has an unexpected shape: {exc}", operation=operation
        ) from None


def _page(item: type[BaseModel], data: Any, page: int, per_page: int, operation: str) -> Page:
    parsed = _parse(Page[item], data, operation)  # type: ignore[valid-type]
    fields = parsed.model_fields_set
    return parsed.model_copy(
        update={
            "page": parsed.page if "page" in fields else page,
            "per_page": parsed.per_page if "per_page" in fields else per_page,
        }
    )


def _intron_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body.get("error") or body)[:500]
    return str(body)[:500]


def _error_for(endpoint: Endpoint, response: httpx.Response) -> IntronError:
    status = response.status_code
    text = f"{endpoint.name}: Intron answered HTTP {status}: {_intron_message(response)}"
    kwargs = {"operation": endpoint.name, "status_code": status}
    if status in (401, 403):
        return AuthenticationError(text + " (check INTRON_API_KEY)", **kwargs)
    if status == 404:
        return NotFoundError(text, **kwargs)
    if status == 429:
        return RateLimitedError(text, retry_after=_retry_after(response), **kwargs)
    if 400 <= status < 500:
        return IntronValidationError(text, **kwargs)
    return ServerError(text, **kwargs)


def _unknown(endpoint: Endpoint, what: str) -> OutcomeUnknownError:
    return OutcomeUnknownError(
        f"{endpoint.name}: {what}; the request may have reached Intron, so it was not resent. "
        "Check the workflow's calls for our request id before trying again.",
        operation=endpoint.name,
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a `Retry-After` header, given as seconds or as an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
