"""Rolling-window rate limits: never more than N events in any window of T seconds.

DESIGN.md asks for the strictest reading of Intron's quotas because we cannot
see how Intron counts. A token bucket would let a full burst through right after
a refill (2N in a little over T); a log of the last N event times cannot.
The client waits on it; the sandbox uses the same rule to answer 429.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """At most `limit` events in any `seconds`-long stretch of time."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds <= 0:
            raise ValueError(f"a rate window needs limit >= 1 and seconds > 0, not {self}")


class SlidingWindowLimiter:
    """Enforces every window at once (e.g. 6/min and 60/h).

    `margin` widens each window on the waiting side: a request we send at t
    reaches the server a little later, so two requests sent exactly one window
    apart may arrive closer than that.
    """

    def __init__(
        self,
        windows: Sequence[Window],
        *,
        margin: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not windows:
            raise ValueError("a limiter needs at least one window")
        self.windows = tuple(windows)
        self.margin = margin
        self._clock = clock
        self._events: deque[float] = deque(maxlen=max(w.limit for w in self.windows))
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def wait_time(self) -> float:
        """Seconds until one more event would respect every window (0 when allowed now)."""
        now = self._clock()
        wait = self._paused_until - now
        for window in self.windows:
            if len(self._events) >= window.limit:
                oldest_in_window = self._events[-window.limit]
                wait = max(wait, oldest_in_window + window.seconds + self.margin - now)
        return max(wait, 0.0)

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or take nothing and return the seconds to wait."""
        wait = self.wait_time()
        if wait <= 0:
            self._events.append(self._clock())
        return wait

    async def acquire(self, max_wait: float | None = None) -> None:
        """Wait for a slot and take it. Waiters are served in arrival order.

        Raises `TooLongWait` instead of waiting when the wait would exceed `max_wait`.
        """
        async with self._lock:
            while (wait := self.try_acquire()) > 0:
                if max_wait is not None and wait > max_wait:
                    raise TooLongWait(wait)
                await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (the server said Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)


class TooLongWait(Exception):
    """The next slot is `wait` seconds away, more than the caller will wait."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        super().__init__(f"next slot in {wait:.1f}s")
