"""Durable jobs: leases, queues, coalescing, timers, retries, and two workers at once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from bot.core.jobs import Job, Jobs, Kind, NewJob, RetryLater, Worker
from bot.core.retry import RetryPolicy
from bot.store.db import Database
from bot.store.jobs import JobStore
from bot.store.meta import MetaStore

FAST = RetryPolicy(attempts=None, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)


def job_store(path: Path) -> JobStore:
    return JobStore(Database(path / "robocall.db"))


def test_a_queue_runs_one_job_at_a_time_in_order(tmp_path: Path) -> None:
    jobs = job_store(tmp_path)
    ids = [jobs.add(NewJob("k", {"n": n}, lane="slack", queue="slack:C1")) for n in range(3)]
    other = jobs.add(NewJob("k", {"n": 9}, lane="slack", queue="slack:C2"))
    claimed = jobs.claim("slack", "w1", 10, lease=30)
    assert sorted(j.id for j in claimed) == sorted([ids[0], other])  # one per queue
    assert jobs.claim("slack", "w2", 10, lease=30) == []
    first = next(j for j in claimed if j.id == ids[0])
    jobs.finish(first)
    [second] = jobs.claim("slack", "w2", 10, lease=30)
    assert second.id == ids[1]


def test_a_dead_job_does_not_block_its_queue(tmp_path: Path) -> None:
    jobs = job_store(tmp_path)
    a = jobs.add(NewJob("k", {}, lane="slack", queue="q"))
    b = jobs.add(NewJob("k", {}, lane="slack", queue="q"))
    [first] = jobs.claim("slack", "w", 10, lease=30)
    jobs.bury(first, "never deliverable")
    assert [j.id for j in jobs.claim("slack", "w", 10, lease=30)] == [b]
    assert [d["id"] for d in jobs.dead()] == [a]


def test_a_lease_that_runs_out_is_taken_over(tmp_path: Path) -> None:
    jobs = job_store(tmp_path)
    added = jobs.add(NewJob("k", {}, lane="calls"))
    [mine] = jobs.claim("calls", "elsewhere:1:a", 10, lease=0.2)
    assert jobs.claim("calls", "here:2:b", 10, lease=30) == []  # still leased
    time.sleep(0.25)
    [taken] = jobs.claim("calls", "here:2:b", 10, lease=30)
    assert taken.id == added and taken.attempts == 2
    jobs.finish(mine)  # the first worker, late, cannot finish what is no longer its own
    assert [j.id for j in jobs.pending()] == [added]


def test_dedupe_coalesces_until_the_job_starts(tmp_path: Path) -> None:
    jobs = job_store(tmp_path)
    edit = NewJob("edit", {}, lane="slack", queue="q", dedupe="edit:rq-1")
    first = jobs.add(edit)
    assert jobs.add(edit) is None  # the same edit, not started yet: nothing new
    [running] = jobs.claim("slack", "w", 10, lease=30)
    assert running.id == first
    second = jobs.add(edit)  # started: a change from now on needs an edit of its own
    assert second is not None
    jobs.retry(running, time.time(), "Slack 503")  # it runs again, so the copy goes
    assert [j.id for j in jobs.pending()] == [first]


def test_timers_wait_and_retry_failed_now_brings_backoffs_forward(tmp_path: Path) -> None:
    jobs = job_store(tmp_path)
    later = jobs.add(NewJob("timer", {}, run_at=time.time() + 60))
    assert jobs.claim("default", "w", 10, lease=30) == []
    assert jobs.next_due(["default"]) == pytest.approx(time.time() + 60, abs=1)
    failing = jobs.add(NewJob("k", {}))
    [job] = jobs.claim("default", "w", 10, lease=30)
    jobs.retry(job, time.time() + 60, "boom")
    held = jobs.add(NewJob("k", {}))
    [job2] = jobs.claim("default", "w", 10, lease=30)
    jobs.retry(job2, time.time() + 60, "Retry-After: 60", held=True)
    assert jobs.retry_failed_now() == 1  # a worker starting: only the failure is retried now
    assert [j.id for j in jobs.claim("default", "w", 10, lease=30)] == [failing]
    assert {j.id for j in jobs.pending()} == {later, failing, held}


async def test_the_worker_retries_with_backoff_and_honours_retry_later(tmp_path: Path) -> None:
    store = job_store(tmp_path)
    jobs = Jobs(store)
    seen: list[tuple[str, int]] = []

    async def flaky(job: Job) -> None:
        seen.append((job.kind, job.attempts))
        if job.attempts < 3:
            raise ConnectionError("down")

    async def patient(job: Job) -> None:
        seen.append((job.kind, job.attempts))
        if job.attempts == 1:
            raise RetryLater(0.2, "Retry-After")

    async def hopeless(job: Job) -> None:
        raise ValueError("never")

    kinds = {
        "flaky": Kind(flaky),
        "patient": Kind(patient),
        "hopeless": Kind(hopeless, max_attempts=2),
    }
    worker = Worker(
        jobs, kinds, {"default": 4}, MetaStore(store.db), lease=5, poll=0.01, policy=FAST
    )
    started = time.monotonic()
    for kind in kinds:
        jobs.add(NewJob(kind, {}))
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(5):
            while store.pending():
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [a for k, a in seen if k == "flaky"] == [1, 2, 3]
    assert [a for k, a in seen if k == "patient"] == [1, 2]
    assert time.monotonic() - started >= 0.2
    [dead] = store.dead()
    assert dead["kind"] == "hopeless" and "ValueError: never" in dead["last_error"]


def test_two_workers_never_claim_the_same_job(tmp_path: Path) -> None:
    """Two processes' connections claiming from one table at once, as fast as they can."""
    setup = job_store(tmp_path)
    for n in range(300):
        setup.add(NewJob("k", {"n": n}))
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    # Both connections open before either claims: on a loaded machine the first thread
    # could otherwise take every job before the second has started.
    ready = threading.Barrier(len(claimed))

    def claim_all(name: str) -> None:
        jobs = job_store(tmp_path)
        ready.wait()
        while batch := jobs.claim("default", name, 7, lease=60):
            claimed[name] += [j.id for j in batch]

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    both = claimed["a"] + claimed["b"]
    assert len(both) == len(set(both)) == 300
    assert claimed["a"] and claimed["b"]  # both took part


async def test_a_job_added_by_another_process_wakes_the_worker_at_once(tmp_path: Path) -> None:
    """The web process adds a job and tells the worker (a UDP hint): picked up long before
    the worker's next look at the table (here 30 s away)."""
    from bot.core.wakeup import WakeSender

    worker_side = job_store(tmp_path)
    ran = asyncio.Event()

    async def handle(job: Job) -> None:
        ran.set()

    worker = Worker(
        Jobs(worker_side),
        {"k": Kind(handle)},
        {"default": 1},
        MetaStore(worker_side.db),
        poll=30.0,
    )
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.2)  # listening, and asleep for the next 30 s
        web_side = Jobs(job_store(tmp_path))  # another connection, as another process
        sender = WakeSender(MetaStore(web_side.store.db))
        web_side.on_add(sender.send)
        started = time.monotonic()
        web_side.add(NewJob("k", {}))
        await asyncio.wait_for(ran.wait(), timeout=2)
        assert time.monotonic() - started < 0.5
        sender.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert MetaStore(worker_side.db).keys("worker_wake:") == []  # unlisted when it stopped
