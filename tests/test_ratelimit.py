"""The rolling-window limiter: never more than N events in any window."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.ratelimit import SlidingWindowLimiter, TooLongWait, Window


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


class FakeTime:
    """A clock whose `sleep` moves time on at once: limiter waits cost no real time."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_burst_waits_its_turn_on_a_fake_clock() -> None:
    fake = FakeTime()
    limiter = SlidingWindowLimiter([Window(5, 1.0)], clock=fake.clock, sleep=fake.sleep)
    started, began = fake.now, time.monotonic()
    granted = []
    for _ in range(50):
        slot = await limiter.acquire()
        granted.append(fake.now)
        limiter.release(slot)
    assert fake.now - started >= 9.0  # the 50th cannot go before 9 s after the first
    assert max_in_any_window(granted, 1.0) <= 5
    assert time.monotonic() - began < 1.0


async def test_a_background_share_leaves_room_for_people() -> None:
    fake = FakeTime()
    limiter = SlidingWindowLimiter([Window(6, 60.0)], clock=fake.clock, sleep=fake.sleep)
    for _ in range(4):  # two thirds of 6
        limiter.release(await limiter.acquire(max_wait=1, share=2 / 3))
    with pytest.raises(TooLongWait):
        await limiter.acquire(max_wait=1, share=2 / 3)
    for _ in range(2):  # what is left is for people
        limiter.release(await limiter.acquire(max_wait=1))
    with pytest.raises(TooLongWait):
        await limiter.acquire(max_wait=1)


def test_the_database_log_is_shared_by_processes_and_kept_across_restarts(tmp_path) -> None:
    from bot.store.db import Database
    from bot.store.ratelimits import SqliteSlotLog

    path = tmp_path / "robocall.db"
    windows = [Window(6, 60.0), Window(60, 3600.0)]
    web, worker = Database(path), Database(path)  # two processes' connections
    web_log, worker_log = (SqliteSlotLog(db, "intron:management") for db in (web, worker))
    now = time.time()
    for log in (web_log, worker_log, web_log, worker_log, web_log, worker_log):
        wait, slot = log.take(windows, now, 0.0)
        assert wait == 0 and slot is not None
        log.release(slot, now)
    assert web_log.take(windows, now, 0.0) == (pytest.approx(60.0), None)
    web.close()
    worker.close()
    restarted = SqliteSlotLog(Database(path), "intron:management")
    assert restarted.wait(windows, now + 30, 0.0) == pytest.approx(30.0)
    assert SqliteSlotLog(Database(path), "intron:calls").wait(windows, now, 0.0) == 0


def test_a_slot_left_in_flight_by_a_dead_process_runs_out(tmp_path) -> None:
    from bot.store.db import Database
    from bot.store.ratelimits import SqliteSlotLog

    log = SqliteSlotLog(Database(tmp_path / "robocall.db"), "x", max_in_flight=20.0)
    windows = [Window(1, 60.0)]
    _, slot = log.take(windows, 1000.0, 0.0)  # never released: its process was killed
    assert slot is not None
    assert log.wait(windows, 1010.0, 0.0) == float("inf")  # its process lives: in flight
    # After max_in_flight it counts as answered then (at 1020): free at 1080.
    assert log.wait(windows, 1030.0, 0.0) == pytest.approx(50.0)
    log.pause(2000.0)  # a Retry-After is kept too
    assert log.wait(windows, 1090.0, 0.0) == pytest.approx(910.0)


def test_a_slot_of_a_killed_process_counts_from_when_that_is_noticed(tmp_path) -> None:
    import subprocess
    import sys

    from bot.store.db import Database
    from bot.store.ratelimits import SqliteSlotLog

    db = Database(tmp_path / "robocall.db")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that took a slot, then was killed mid-request
    db.execute(
        "INSERT INTO rate_slots (limiter, started, owner) VALUES ('x', 1000.0, ?)",
        [str(gone.pid)],
    )
    db.conn.commit()
    log = SqliteSlotLog(db, "x", max_in_flight=600.0)
    windows = [Window(1, 5.0)]
    # Not stuck until max_in_flight: counted as answered at 1002, free at 1007.
    assert log.wait(windows, 1002.0, 0.0) == pytest.approx(5.0)
    assert log.wait(windows, 1004.0, 0.0) == pytest.approx(3.0)  # and it stays so
