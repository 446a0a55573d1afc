"""The async BizPhone client (seed 004): `POST /call` and `GET /status/{requestId}`.

Its transport is the providers' shared one (`bot/providers/http.py`): rate limits
before sending, retries only where resending cannot do something twice, the
errors of `bot/providers/base.py`. The API key travels only in the
`x-credential-api-key` header, never in an error, a log line or the `repr`.

A `POST /call` that may have reached BizPhone (a read timeout, a dropped
connection, a 500, 502 or 504) raises `OutcomeUnknownError` and is never resent:
`requestId` is ours, so `call_status(requestId)` settles it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from bot.core.ratelimit import SlidingWindowLimiter, SlotLog, Window
from bot.core.retry import PROVIDER_RETRIES, RetryPolicy
from bot.providers.base import ServerError
from bot.providers.bizphone.endpoints import LimitGroup, endpoints
from bot.providers.bizphone.models import CallRequest, StatusResult, read_status
from bot.providers.http import DEFAULT_TIMEOUT, ProviderHTTP

API_KEY_HEADER = "x-credential-api-key"
# The seed documents no rate limit; these are a courtesy (and settings).
DEFAULT_CALL_WINDOWS = (Window(5, 1.0),)
DEFAULT_STATUS_WINDOWS = (Window(10, 1.0),)
MAX_BODY = 16 * 1024 * 1024  # a status answer larger than this is not read


class BizPhoneClient:
    """Both operations of BizPhone's robo-call API."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        call_windows: tuple[Window, ...] = DEFAULT_CALL_WINDOWS,
        status_windows: tuple[Window, ...] = DEFAULT_STATUS_WINDOWS,
        slot_logs: Mapping[str, SlotLog] | None = None,
        limit_margin: float = 0.01,
        max_wait: float | None = 120.0,
        policy: RetryPolicy = PROVIDER_RETRIES,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key.strip():
            raise ValueError("BizPhoneClient needs an API key (BIZPHONE_API_KEY)")
        if not base_url.strip():
            raise ValueError("BizPhoneClient needs a base URL (BIZPHONE_BASE_URL)")
        logs = dict(slot_logs or {})
        windows = {LimitGroup.CALLS: call_windows, LimitGroup.STATUS: status_windows}
        self.limiters = {
            group: SlidingWindowLimiter(windows[group], logs.get(group), margin=limit_margin)
            for group in LimitGroup
        }
        self.http = ProviderHTTP(
            label="BizPhone",
            key_setting="BIZPHONE_API_KEY",
            base_url=base_url,
            headers={API_KEY_HEADER: api_key},
            endpoints=endpoints(),
            limiters=self.limiters,
            policy=policy,
            max_wait=max_wait,
            timeout=timeout,
            transport=transport,
            # A refusal naming `destinations[2].phone` names our third recipient.
            recipients_field="destinations",
        )
        self.base_url = self.http.base_url

    def wait_time(self, group: LimitGroup, share: float = 1.0) -> float:
        return self.http.wait_time(group, share)

    def __repr__(self) -> str:  # never show the key
        return f"BizPhoneClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> BizPhoneClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def place_calls(
        self, request: CallRequest, *, before_send: Callable[[], None] | None = None
    ) -> str:
        """`POST /call`; returns the `requestId` (ours). A 200 says BizPhone has queued
        the request, so an unreadable body does not make it fail. Never resent once
        it may have arrived (`OutcomeUnknownError`)."""
        await self.http.send("place_calls", json=request.body(), before_send=before_send)
        return request.requestId

    async def call_status(
        self, request_id: str, *, share: float = 1.0, max_wait: float | None = None
    ) -> StatusResult:
        """`GET /status/{requestId}`: the request and each destination's call, bounded.
        `NotFoundError` on 404."""
        response = await self.http.send(
            "call_status",
            path_params={"request_id": request_id},
            share=share,
            max_wait=max_wait,
        )
        return read_status(_json(response, "call_status"))


def _json(response: httpx.Response, operation: str) -> object:
    if len(response.content) > MAX_BODY:
        raise ServerError(
            f"{operation}: BizPhone's answer is {len(response.content):,} bytes; "
            f"more than the {MAX_BODY:,} read",
            operation=operation,
            status_code=response.status_code,
        )
    try:
        return response.json()
    except ValueError:
        raise ServerError(
            f"{operation}: BizPhone answered HTTP {response.status_code} with a body "
            "that is not JSON",
            operation=operation,
            status_code=response.status_code,
        ) from None
