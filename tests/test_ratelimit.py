"""The rolling-window limiter: never more than N events in any window."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.ratelimit import SlidingWindowLimiter, TooLongWait, Window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def max_in_any_window(times: list[float], seconds: float) -> int:
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + seconds))
    return best


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=60),
    limit=st.integers(min_value=1, max_value=6),
)
def test_no_window_ever_holds_more_than_the_limit(gaps: list[float], limit: int) -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter([Window(limit, 1.0), Window(limit * 3, 5.0)], clock=clock)
    granted: list[float] = []
    for gap in gaps:
        clock.now += gap
        wait = limiter.try_acquire()
        if wait > 0:
            clock.now += wait
            assert limiter.try_acquire() == 0
        granted.append(clock.now)
    assert max_in_any_window(granted, 1.0) <= limit
    assert max_in_any_window(granted, 5.0) <= limit * 3


def test_a_token_bucket_style_double_burst_is_refused() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter([Window(5, 1.0)], clock=clock)
    assert all(limiter.try_acquire() == 0 for _ in range(5))
    clock.now += 0.999
    assert limiter.try_acquire() == pytest.approx(0.001)
    clock.now += 0.001
    assert limiter.try_acquire() == 0


def test_both_windows_apply() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter([Window(6, 60.0), Window(60, 3600.0)], clock=clock)
    for _ in range(60):
        while (wait := limiter.try_acquire()) > 0:
            clock.now += wait
    # 60 in the hour: the 61st waits for the first to leave the hour window.
    assert limiter.try_acquire() == pytest.approx(3600.0 - (clock.now - 1000.0))


async def take(limiter: SlidingWindowLimiter) -> None:
    limiter.release(await limiter.acquire())


async def test_acquire_waits_and_refuses_too_long_waits() -> None:
    limiter = SlidingWindowLimiter([Window(2, 0.2)])
    start = time.monotonic()
    await asyncio.gather(*(take(limiter) for _ in range(6)))  # 0, 0, .2, .2, .4, .4
    assert time.monotonic() - start >= 0.4
    with pytest.raises(TooLongWait) as caught:
        await limiter.acquire(max_wait=0.01)
    assert 0 < caught.value.wait <= 0.2


async def test_a_slot_in_flight_blocks_and_counts_from_its_answer() -> None:
    limiter = SlidingWindowLimiter([Window(1, 0.2)])
    slot = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.3)  # longer than the window: still blocked, the answer is not in
    assert not waiter.done()
    released_at = time.monotonic()
    limiter.release(slot)
    second = await waiter
    assert time.monotonic() - released_at >= 0.2
    limiter.release(second)


async def test_pause_holds_everyone_back() -> None:
    limiter = SlidingWindowLimiter([Window(100, 1.0)])
    limiter.pause(0.15)
    start = time.monotonic()
    await take(limiter)
    assert time.monotonic() - start >= 0.14
