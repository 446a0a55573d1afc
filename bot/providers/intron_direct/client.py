"""The async client of Intron's direct robo-call API (seed 001): one call, a batch,
a call's status, cancelling a call.

Its transport is the providers' shared one (`bot/providers/http.py`): bearer auth,
typed errors, retries only where resending cannot call anyone twice (a `POST` that
may have arrived raises `OutcomeUnknownError`). The plan's limits are held here, so
a burst waits instead of drawing a 429:

- **calls per minute** (Free plan: 10): every call counts, a batch of k as k; never
  more than N calls in any rolling window (`bot/core/ratelimit.py`). A batch takes
  its k slots together, so a batch may carry at most N calls.
- **concurrent calls** (Free plan: 2): at most that many call-placing requests in
  flight at once (a window of N whose slots count while in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter

from bot.core.ratelimit import SlidingWindowLimiter, SlotLog, TooLongWait, Window
from bot.core.retry import PROVIDER_RETRIES, RetryPolicy
from bot.providers.base import RateLimitedError, ServerError
from bot.providers.http import DEFAULT_TIMEOUT, ProviderHTTP
from bot.providers.intron_direct.endpoints import IntronDirectPaths, LimitGroup, endpoints
from bot.providers.intron_direct.models import (
    BatchQueued,
    BatchRequest,
    CallQueued,
    CallRequest,
    CallStatus,
    CancelResult,
)

M = TypeVar("M")

DEFAULT_BASE_URL = "https://voice.intron.io/api/v1/voice-bot"
FREE_CALLS_PER_MINUTE = 10
FREE_CONCURRENT_CALLS = 2
# A placing request's slot stops counting this soon after its answer.
CONCURRENCY_GAP = 0.001
# Status and cancel have no documented limit; this keeps us polite.
DEFAULT_LOOKUP_WINDOWS = (Window(10, 1.0),)
CALL_RATE = "call_rate"  # the key of the calls-per-minute limiter in `slot_logs`


class IntronDirectClient:
    """Every operation of Intron's direct robo-call API."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        calls_per_minute: int = FREE_CALLS_PER_MINUTE,
        concurrent_calls: int = FREE_CONCURRENT_CALLS,
        minute: float = 60.0,
        lookup_windows: tuple[Window, ...] = DEFAULT_LOOKUP_WINDOWS,
        paths: IntronDirectPaths | None = None,
        slot_logs: Mapping[str, SlotLog] | None = None,
        limit_margin: float = 0.01,
        max_wait: float | None = 120.0,
        policy: RetryPolicy = PROVIDER_RETRIES,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`minute` is the length of the calls-per-minute window (tests shorten it);
        `slot_logs` may hold a shared log per group (`calls`, `lookups`, `call_rate`)."""
        if not api_key.strip():
            raise ValueError("IntronDirectClient needs an API key (INTRON_DIRECT_API_KEY)")
        logs = dict(slot_logs or {})
        self.calls_per_minute = calls_per_minute
        self.max_wait = max_wait
        self.call_rate = SlidingWindowLimiter(
            (Window(calls_per_minute, minute),), logs.get(CALL_RATE), margin=limit_margin
        )
        windows = {
            LimitGroup.CALLS: (Window(concurrent_calls, CONCURRENCY_GAP),),
            LimitGroup.LOOKUPS: lookup_windows,
        }
        self.limiters = {
            group: SlidingWindowLimiter(windows[group], logs.get(group), margin=limit_margin)
            for group in LimitGroup
        }
        # Calls-per-minute slots of one submission are taken together, one
        # submission at a time (two taking turns could each hold half the window).
        self._taking = asyncio.Lock()
        self.http = ProviderHTTP(
            label="Intron",
            key_setting="INTRON_DIRECT_API_KEY",
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            endpoints=endpoints(paths or IntronDirectPaths()),
            limiters=self.limiters,
            policy=policy,
            max_wait=max_wait,
            timeout=timeout,
            transport=transport,
            # A refusal pointing into `calls` (`calls.2.phone_number: …`) names a recipient.
            recipients_field="calls",
        )
        self.base_url = self.http.base_url

    def __repr__(self) -> str:  # never show the key
        return f"IntronDirectClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> IntronDirectClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    def wait_time(self, group: LimitGroup = LimitGroup.CALLS) -> float:
        """Seconds before one more request of `group` could leave without waiting."""
        wait = self.http.wait_time(group)
        if group == LimitGroup.CALLS:
            rate = self.call_rate.wait_time()
            wait = max(wait, 60.0 if rate == float("inf") else rate)
        return wait

    # ------------------------------------------------------------ calls

    async def place_call(
        self, request: CallRequest, *, before_send: Callable[[], None] | None = None
    ) -> CallQueued:
        """`POST /call`. Never resent once it may have reached Intron."""
        body = request.model_dump(mode="json", exclude_none=True)
        data = await self._placing("place_call", 1, json=body, before_send=before_send)
        return _parse(CallQueued, data, "place_call")

    async def place_batch(
        self, request: BatchRequest, *, before_send: Callable[[], None] | None = None
    ) -> BatchQueued:
        """`POST /call/batch`; each of its calls counts against calls per minute."""
        if len(request.calls) > self.calls_per_minute:
            raise ValueError(
                f"a batch of {len(request.calls)} calls exceeds the plan's "
                f"{self.calls_per_minute} calls per minute; split it"
            )
        body = request.model_dump(mode="json", exclude_none=True)
        data = await self._placing(
            "place_batch", len(request.calls), json=body, before_send=before_send
        )
        return _parse(BatchQueued, data, "place_batch")

    async def call_status(self, call_id: str, *, max_wait: float | None = None) -> CallStatus:
        """`GET /call/{call_id}`."""
        response = await self.http.send(
            "call_status", path_params={"call_id": call_id}, max_wait=max_wait
        )
        return _parse(CallStatus, _json(response), "call_status")

    async def cancel_call(self, call_id: str) -> CancelResult:
        """`DELETE /call/{call_id}`: a scheduled or queued call is not dialled."""
        response = await self.http.send("cancel_call", path_params={"call_id": call_id})
        return _parse(CancelResult, _json(response), "cancel_call")

    # ------------------------------------------------------------ transport

    async def _placing(self, name: str, calls: int, **options: Any) -> Any:
        """Send a call-placing operation holding `calls` calls-per-minute slots, which
        count from when its answer is in."""
        slots = []
        try:
            async with self._taking:
                for _ in range(calls):
                    slots.append(await self.call_rate.acquire(self.max_wait))
        except TooLongWait as exc:
            for slot in slots:
                self.call_rate.release(slot)
            raise RateLimitedError(
                f"{name}: Intron's calls-per-minute limit is reached; "
                f"possible again in {exc.wait:.0f} s",
                operation=name,
                retry_after=exc.wait,
            ) from None
        except BaseException:
            for slot in slots:
                self.call_rate.release(slot)
            raise
        try:
            return _json(await self.http.send(name, **options))
        finally:
            for slot in slots:
                self.call_rate.release(slot)


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ServerError(
            f"Intron answered HTTP {response.status_code} with a body that is not JSON",
            status_code=response.status_code,
        ) from None


def _parse(model: type[M], data: Any, operation: str) -> M:
    try:
        return TypeAdapter(model).validate_python(data)
    except ValueError as exc:
        raise ServerError(
            f"{operation}: Intron's answer has an unexpected shape: {exc}", operation=operation
        ) from None
