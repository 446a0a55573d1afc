"""What every provider client shares: one httpx client, rate limits, safe retries, typed errors.

Each provider's client describes its operations as `Endpoint`s and sends them
through `ProviderHTTP.send`. Rate limits are enforced before sending, so a
burst waits instead of failing. Retries (the project's one `RetryPolicy`,
honouring `Retry-After`) happen only where resending cannot do something
twice: a request that is not `resend_safe` (placing a call, creating a
workflow) and may have reached the provider is reported as
`OutcomeUnknownError`, never resent.

A 4xx that explains itself (FastAPI's `{"detail": [{"loc": [...], "msg": ...}]}`, or a
plain `{"message": "workflow_params.2.phone_number: ..."}`) becomes a `RefusedError`
naming the field and, when it points into the list of recipients, which recipient
(`read_refusal`).
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx

from bot.core.ratelimit import SlidingWindowLimiter, TooLongWait
from bot.core.retry import PROVIDER_RETRIES, RetryPolicy
from bot.providers.base import (
    AuthenticationError,
    NotFoundError,
    OutcomeUnknownError,
    ProviderConnectionError,
    ProviderError,
    RateLimitedError,
    RefusedError,
    ServerError,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}
# A 500 may come after the work was done, and a 502 or 504 from a gateway that
# may already have passed the request on; only 429 and 503 say "not acted upon".
NOT_ACTED_UPON_STATUSES = {429, 503}
# These failures happen before any byte of the request leaves this machine.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True)
class Endpoint:
    """One operation: HTTP method, path template, which rate limit it draws on.

    `resend_safe` is False where sending the request twice could do the thing
    twice (place a call, create a workflow): such a request is never resent once
    it may have reached the provider.
    """

    name: str
    method: str
    path: str
    group: str
    resend_safe: bool


class _Transient(Exception):
    """A failure worth another attempt; `error` is what to raise if none is left."""

    def __init__(self, error: ProviderError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after
        super().__init__(error.message)


class ProviderHTTP:
    """The transport of one provider's client."""

    def __init__(
        self,
        *,
        label: str,
        key_setting: str,
        base_url: str,
        headers: Mapping[str, str],
        endpoints: Mapping[str, Endpoint],
        limiters: Mapping[str, SlidingWindowLimiter],
        policy: RetryPolicy = PROVIDER_RETRIES,
        max_wait: float | None = 120.0,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        error_message: Callable[[httpx.Response], str] | None = None,
        recipients_field: str | None = None,
    ) -> None:
        """`recipients_field`: the list in a request body whose items are recipients
        (Intron: `workflow_params`), so that a refusal pointing into it names one."""
        self.label = label
        self.recipients_field = recipients_field
        self.key_setting = key_setting
        self.base_url = base_url.rstrip("/")
        self.endpoints = dict(endpoints)
        self.limiters = dict(limiters)
        self.policy = policy
        self.max_wait = max_wait
        self._error_message = error_message or _default_message
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Accept": "application/json", **headers},
            timeout=timeout,
            transport=transport,
            # Close idle connections before a typical server does (uvicorn: 5 s):
            # a POST written onto a connection the server just closed would come
            # back as "outcome unknown" for no reason.
            limits=httpx.Limits(keepalive_expiry=2.0),
        )

    def wait_time(self, group: str, share: float = 1.0) -> float:
        """Seconds before a request of `group` could leave without waiting on our limiter.

        While the request that decides it is still in flight the exact wait is not
        known; the longest window is then a safe upper bound.
        """
        limiter = self.limiters[group]
        wait = limiter.wait_time(share)
        return max(w.seconds for w in limiter.windows) if math.isinf(wait) else wait

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        name: str,
        *,
        path_params: Mapping[str, str] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        before_send: Callable[[], None] | None = None,
        share: float = 1.0,
        max_wait: float | None = None,
    ) -> httpx.Response:
        """Send one operation with rate limiting and safe retries; the successful answer.
        `max_wait` (default: the client's) is how long to wait for a rate-limit slot."""
        endpoint = self.endpoints[name]
        path = endpoint.path.format(
            **{k: quote(str(v), safe="") for k, v in (path_params or {}).items()}
        )
        try:
            async for attempt in self.policy.retrying(self._worth_retrying):
                with attempt:
                    return await self._attempt(
                        endpoint,
                        path,
                        json=json,
                        params=params,
                        before_send=before_send,
                        share=share,
                        max_wait=self.max_wait if max_wait is None else max_wait,
                    )
        except _Transient as failure:
            if failure.retry_after is not None and self._too_long(failure.retry_after):
                raise RateLimitedError(
                    f"{name}: {self.label} asks us to wait {failure.retry_after:.0f} s",
                    operation=name,
                    retry_after=failure.retry_after,
                    status_code=failure.error.status_code,
                ) from None
            raise failure.error from None
        raise AssertionError("unreachable")

    def _worth_retrying(self, exc: Exception) -> bool | float:
        if not isinstance(exc, _Transient):
            return False
        if exc.retry_after is not None and self._too_long(exc.retry_after):
            return False
        log.info("%s; trying again", exc.error.message)
        return True if exc.retry_after is None else exc.retry_after

    def _too_long(self, wait: float) -> bool:
        return self.max_wait is not None and wait > self.max_wait

    async def _attempt(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        before_send: Callable[[], None] | None,
        share: float,
        max_wait: float | None,
    ) -> httpx.Response:
        name = endpoint.name
        try:
            response = await self._exchange(
                endpoint, path, json, params, before_send, share, max_wait
            )
        except NOT_SENT_ERRORS as exc:
            raise _Transient(
                ProviderConnectionError(
                    f"{name}: could not connect to {self.label} ({type(exc).__name__})",
                    operation=name,
                )
            ) from None
        except httpx.TransportError as exc:
            if not endpoint.resend_safe:
                raise self._unknown(endpoint, f"no answer ({type(exc).__name__})") from None
            raise _Transient(
                ProviderConnectionError(
                    f"{name}: {self.label} did not answer ({type(exc).__name__})",
                    operation=name,
                )
            ) from None
        if response.is_success:
            return response
        status = response.status_code
        if not endpoint.resend_safe and status >= 500 and status not in NOT_ACTED_UPON_STATUSES:
            raise self._unknown(endpoint, f"HTTP {status}")
        failure = self._error_for(endpoint, response)
        if status not in RETRY_STATUSES:
            raise failure
        retry_after = retry_after_seconds(response)
        if retry_after is not None:
            self.limiters[endpoint.group].pause(retry_after)
        raise _Transient(failure, retry_after)

    async def _exchange(
        self,
        endpoint: Endpoint,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        before_send: Callable[[], None] | None,
        share: float,
        max_wait: float | None,
    ) -> httpx.Response:
        """One HTTP exchange inside a rate-limit slot, which counts from when it ends."""
        limiter = self.limiters[endpoint.group]
        try:
            slot = await limiter.acquire(max_wait, share=share)
        except TooLongWait as exc:
            raise RateLimitedError(
                f"{endpoint.name}: {self.label}'s {endpoint.group} limit is reached; "
                f"possible again in {exc.wait:.0f} s",
                operation=endpoint.name,
                retry_after=exc.wait,
            ) from None
        try:
            if before_send is not None:
                before_send()
            return await self._http.request(
                endpoint.method, path, json=json, params=dict(params) if params else None
            )
        finally:
            limiter.release(slot)

    def _error_for(self, endpoint: Endpoint, response: httpx.Response) -> ProviderError:
        status = response.status_code
        text = (
            f"{endpoint.name}: {self.label} answered HTTP {status}: {self._error_message(response)}"
        )
        kwargs: dict[str, Any] = {"operation": endpoint.name, "status_code": status}
        if status in (401, 403):
            return AuthenticationError(f"{text} (check {self.key_setting})", **kwargs)
        if status == 404:
            return NotFoundError(text, **kwargs)
        if status == 429:
            return RateLimitedError(text, retry_after=retry_after_seconds(response), **kwargs)
        if 400 <= status < 500:
            refusal = read_refusal(response, self.recipients_field)
            if refusal is not None and refusal.item is not None:
                more = refusal.more
                extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
                return RefusedError(
                    refusal.message + extra,
                    recipient=refusal.item + 1,
                    field=refusal.field,
                    **kwargs,
                )
            return RefusedError(text, field=refusal.field if refusal else None, **kwargs)
        return ServerError(text, **kwargs)

    def _unknown(self, endpoint: Endpoint, what: str) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            f"{endpoint.name}: {what}; the request may have reached {self.label}, so it was "
            "not resent. Check its calls for our request id before trying again.",
            operation=endpoint.name,
        )


def _default_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list) and detail:  # FastAPI's validation errors, readable
            shown = [_entry_text(entry) for entry in detail[:5]]
            more = f"; and {len(detail) - 5} more" if len(detail) > 5 else ""
            return ("; ".join(shown) + more)[:500]
        return str(body.get("message") or detail or body.get("error") or body)[:500]
    return str(body)[:500]


# ---------------------------------------------------------------- refusals, read


@dataclass(frozen=True)
class Refusal:
    """What a 4xx body says is wrong: `item` is the 0-based index into the request's list
    of recipients when it points at one, `field` the field it names (within that
    recipient when `item` is set), `more` how many other problems it lists."""

    message: str
    item: int | None = None
    field: str | None = None
    more: int = 0


_LOCATION_ROOTS = ("body", "query", "path", "header")
_MESSAGE = 500  # characters of a provider's explanation kept


def read_refusal(response: httpx.Response, recipients_field: str | None) -> Refusal | None:
    """A 4xx body, read: FastAPI's `{"detail": [{"loc": [...], "msg": ...}, ...]}` (the
    first problem naming a recipient, else the first), or a plain message (`message`,
    `detail` or `error`) that may start with where it points
    (`workflow_params.2.phone_number: ...`, `workflow_params[2].phone_number ...`).
    None when the body says nothing readable."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if isinstance(detail, list):
        problems = [p for p in (_entry(e, recipients_field) for e in detail) if p is not None]
        if not problems:
            return None
        first = next((p for p in problems if p.item is not None), problems[0])
        return replace(first, more=len(problems) - 1)
    for key in ("message", "detail", "error"):
        text = body.get(key)
        if isinstance(text, str) and text.strip():
            return _from_text(text.strip(), recipients_field)
    return None


def _path(entry: Mapping[str, Any]) -> list[str | int]:
    loc = entry.get("loc")
    path = [p for p in loc if isinstance(p, str | int)] if isinstance(loc, list) else []
    return path[1:] if path and path[0] in _LOCATION_ROOTS else path


def _entry_text(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    where = ".".join(str(p) for p in _path(entry))
    message = str(entry.get("msg") or entry.get("message") or "invalid")
    return f"{where}: {message}" if where else message


def _is_index(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.isdigit()
    )


def _entry(entry: Any, recipients_field: str | None) -> Refusal | None:
    """One FastAPI validation error."""
    if not isinstance(entry, dict):
        return None
    message = str(entry.get("msg") or entry.get("message") or "").strip()[:_MESSAGE]
    path = _path(entry)
    item = None
    for at in range(len(path) - 1):
        if recipients_field and path[at] == recipients_field and _is_index(path[at + 1]):
            item, path = int(path[at + 1]), path[at + 2 :]
            break
    field = ".".join(str(p) for p in path) or None
    if not message and field is None and item is None:
        return None
    return Refusal(message or "refused", item, field)


def _from_text(text: str, recipients_field: str | None) -> Refusal:
    """A plain message, which may say where it points before or inside it."""
    if not recipients_field:
        return Refusal(text[:_MESSAGE])
    where = re.search(
        rf"{re.escape(recipients_field)}(?:\[(\d+)\]|\.(\d+))"
        r"((?:\.[A-Za-z_]\w*|\[['\"]?[A-Za-z_]\w*['\"]?\])*)",
        text,
    )
    if where is None:
        return Refusal(text[:_MESSAGE])
    item = int(where.group(1) or where.group(2))
    names = re.findall(r"[A-Za-z_]\w*", where.group(3))
    field = ".".join(names) or None
    before = text[: where.start()].strip()
    if before.rstrip(".:>- ").lower() in ("", *_LOCATION_ROOTS):
        # It starts with where: the rest is what is wrong there.
        message = text[where.end() :].lstrip(" :-\u2014")
    else:
        message = text
    return Refusal((message or text)[:_MESSAGE], item, field)


def retry_after_seconds(response: httpx.Response) -> float | None:
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
