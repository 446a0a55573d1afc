"""Rolling-window rate limits: never more than N requests in any window of T seconds.

DESIGN.md asks for the strictest reading of a provider's quotas because we
cannot see how it counts. A token bucket would let a full burst through right
after a refill (2N in a little over T); a log of recent request times cannot.

Which time? The server counts a request when it arrives, somewhere between our
sending it and our receiving the answer. So a client takes a slot before
sending and releases it when the answer is in; the slot counts from that
moment, and while it is in flight it counts as inside every window. Then
request k+N is sent at least T after request k was answered, so it arrives at
least T after request k arrived, however the network or a busy event loop
delays either. The sandbox, which sees arrivals directly, uses `try_acquire`.

The log of recent slots is a `SlotLog`: in memory (the sandbox), or in the
database (`bot/store/ratelimits.py`), so that the web process and the worker
share one quota and a restart does not forget what was spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Window:
    """At most `limit` requests in any `seconds`-long stretch of time."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds <= 0:
            raise ValueError(f"a rate window needs limit >= 1 and seconds > 0, not {self}")

    def share(self, fraction: float) -> Window:
        """This window as seen by a caller allowed only `fraction` of it (at least 1)."""
        return Window(max(1, math.floor(self.limit * fraction)), self.seconds)


def wait_for(
    times: Sequence[float], windows: Sequence[Window], now: float, margin: float = 0.0
) -> float:
    """Seconds until one more request respects every window, given the times recent
    requests count from (`inf` for one still in flight): 0 when allowed now, `inf`
    while it depends on a request still in flight."""
    newest_first = sorted(times, reverse=True)
    wait = 0.0
    for window in windows:
        if len(newest_first) >= window.limit:
            deciding = newest_first[window.limit - 1]
            wait = max(wait, deciding + window.seconds + margin - now)
    return max(wait, 0.0)


class SlotLog(Protocol):
    """Where a limiter keeps the times of its recent requests."""

    def take(
        self, windows: Sequence[Window], now: float, margin: float
    ) -> tuple[float, int | None]:
        """Atomically: the wait; and when it is 0, a new in-flight slot's id."""
        ...

    def release(self, slot: int, at: float) -> None: ...

    def wait(self, windows: Sequence[Window], now: float, margin: float) -> float: ...

    def pause(self, until: float) -> None: ...

    def arrive(self, at: float) -> None:
        """Count a request that arrived at `at` (a server's view: no flight time)."""
        ...


@dataclass
class MemorySlotLog:
    """A slot log in this process's memory."""

    max_in_flight: float = 60.0
    _slots: dict[int, tuple[float, float | None]] = field(default_factory=dict)
    _next: int = 0
    _paused_until: float = 0.0

    def _times(self, now: float) -> list[float]:
        times = []
        for started, ended in self._slots.values():
            if ended is None:
                ended = (
                    math.inf if now - started < self.max_in_flight else started + self.max_in_flight
                )
            times.append(ended)
        return times

    def wait(self, windows: Sequence[Window], now: float, margin: float) -> float:
        longest = max(w.seconds for w in windows)
        for slot, (_, ended) in list(self._slots.items()):
            if ended is not None and ended < now - longest - margin:
                del self._slots[slot]
        return max(wait_for(self._times(now), windows, now, margin), self._paused_until - now)

    def take(
        self, windows: Sequence[Window], now: float, margin: float
    ) -> tuple[float, int | None]:
        wait = self.wait(windows, now, margin)
        if wait > 0:
            return wait, None
        self._next += 1
        self._slots[self._next] = (now, None)
        return 0.0, self._next

    def release(self, slot: int, at: float) -> None:
        if slot in self._slots:
            self._slots[slot] = (self._slots[slot][0], at)

    def pause(self, until: float) -> None:
        self._paused_until = max(self._paused_until, until)

    def arrive(self, at: float) -> None:
        self._next += 1
        self._slots[self._next] = (at, at)


class TooLongWait(Exception):
    """The next slot is `wait` seconds away, more than the caller will wait."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        super().__init__(f"next slot in {wait:.1f}s")


@dataclass(frozen=True)
class Slot:
    """A request's place in the log, released when its answer is in."""

    id: int


# How often a waiter looks again while the deciding request is in flight in
# another process (one in this process wakes it at once).
IN_FLIGHT_POLL = 0.05


class SlidingWindowLimiter:
    """Enforces every window at once (e.g. 6/min and 60/h) over one `SlotLog`."""

    def __init__(
        self,
        windows: Sequence[Window],
        log: SlotLog | None = None,
        *,
        margin: float = 0.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not windows:
            raise ValueError("a limiter needs at least one window")
        self.windows = tuple(windows)
        self.log = log if log is not None else MemorySlotLog()
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()

    def windows_for(self, share: float) -> tuple[Window, ...]:
        return tuple(w.share(share) for w in self.windows) if share < 1 else self.windows

    def wait_time(self, share: float = 1.0) -> float:
        """Seconds until one more request would respect every window: 0 when allowed
        now, `inf` while the request that decides it is still in flight."""
        return self.log.wait(self.windows_for(share), self._clock(), self.margin)

    def try_acquire(self) -> float:
        """Count a request arriving now and return 0, or count nothing and return the wait."""
        now = self._clock()
        wait = self.log.wait(self.windows, now, self.margin)
        if wait <= 0:
            self.log.arrive(now)
        return wait

    async def acquire(self, max_wait: float | None = None, *, share: float = 1.0) -> Slot:
        """Wait for room, take an in-flight slot, and return it; `release` it when the
        answer arrives. Waiters in this process are served in arrival order.

        `share` below 1 leaves the rest of each window to other callers (a background
        job leaving room for people). Raises `TooLongWait` instead of waiting longer
        than `max_wait`.
        """
        windows = self.windows_for(share)
        async with self._lock:
            while True:
                wait, slot = self.log.take(windows, self._clock(), self.margin)
                if slot is not None:
                    return Slot(slot)
                if math.isinf(wait):  # decided by a request still in flight
                    self._released.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IN_FLIGHT_POLL):
                            await self._released.wait()
                    continue
                if max_wait is not None and wait > max_wait:
                    raise TooLongWait(wait)
                await self._sleep(wait)

    def release(self, slot: Slot) -> None:
        """The answer to the slot's request has arrived (or it failed): stamp it now."""
        self.log.release(slot.id, self._clock())
        self._released.set()

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (the server said Retry-After)."""
        self.log.pause(self._clock() + seconds)
