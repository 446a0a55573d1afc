"""Durable jobs and the worker that runs them.

A job is a row written in the same transaction as the state change that needs
it (a request accepted → "place it"; a callback stored → "apply it"; a result
recorded → "tell Slack"), so a crash can never keep the state and lose the
work. `python -m bot worker` claims due jobs with a lease, renews the lease
while a job runs, and a job whose worker died runs again once its lease runs
out (at once, when that worker is known dead on this host). So every handler
must be safe to run twice: each one checks the state it moves on
(compare-and-set) or tolerates a repeat.

Jobs run in lanes, each with its own concurrency, so that calls waiting on a
provider's rate limit never hold up Slack messages, and the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from bot.core.retry import JOB_RETRIES, RetryPolicy
from bot.core.wakeup import PREFIX as WAKE_PREFIX
from bot.core.wakeup import WakeListener

if TYPE_CHECKING:
    from bot.store.jobs import JobStore
    from bot.store.meta import MetaStore

log = logging.getLogger(__name__)


class Job(BaseModel):
    """One piece of durable work, as claimed by a worker."""

    id: int
    kind: str
    lane: str
    queue: str | None = None
    dedupe: str | None = None
    payload: dict[str, Any]
    run_at: float
    attempts: int = 0
    leased_by: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True)
class NewJob:
    """A job to add: what to do (`kind`, `payload`), in which lane, when."""

    kind: str
    payload: Mapping[str, Any]
    lane: str = "default"
    queue: str | None = None  # jobs of one queue run one at a time, in order
    dedupe: str | None = None  # at most one not-yet-started job per key
    run_at: float | None = None  # unix time; None: now


class RetryLater(Exception):
    """Raised by a handler: not now, try again in `after` seconds (not a failure)."""

    def __init__(self, after: float, reason: str = "") -> None:
        self.after = after
        super().__init__(reason or f"retry in {after:.1f} s")


class Jobs:
    """Adds jobs; every state change that needs follow-up work goes through here."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._listeners: list[Callable[[], None]] = []

    def add(self, job: NewJob) -> int | None:
        """Add a job (in the caller's transaction, if one is open); workers are woken
        once it is committed."""
        added = self.store.add(job)
        if added is not None:
            self.store.db.after_commit(self._added)
        return added

    def on_add(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever jobs added here are committed (a worker waiting in this
        process; a `WakeSender` for the others)."""
        self._listeners.append(wake)

    def wake(self) -> None:
        """Tell the workers to look for due jobs now (e.g. one brought forward)."""
        for wake in self._listeners:
            wake()

    def _added(self) -> None:
        self.wake()


Handler = Callable[[Job], Awaitable[None]]


# A job that fails this many times for a reason that waiting will not mend (a bug, a
# value it cannot read) is parked: kept with its error, reported, and out of the way.
POISON_AFTER = 5


@dataclass(frozen=True)
class Kind:
    """How to run one kind of job. A failure that may pass (a network error, a 5xx, a
    locked database) is retried until it works, or `max_attempts` attempts in all when
    the kind sets that; any other failure is retried up to POISON_AFTER attempts,
    backing off. Then the job is parked."""

    handler: Handler
    lane: str = "default"
    max_attempts: int | None = None  # None: transient failures are retried until it works


def is_transient(exc: BaseException) -> bool:
    """True for a failure that trying again later may mend."""
    return isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError) or bool(
        getattr(exc, "transient", False)
    )


# Told of each parked job (the Slack adapter tells the admins).
ParkedListener = Callable[["Job", str], None]


def worker_id() -> str:
    """`host:pid:random`: unique, and tells a worker on this host whether it is alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims due jobs, runs them with their lane's concurrency, retries failures."""

    def __init__(
        self,
        jobs: Jobs,
        kinds: Mapping[str, Kind],
        lanes: Mapping[str, int],
        meta: MetaStore,
        *,
        lease: float = 30.0,
        poll: float = 0.5,  # a backstop: jobs added anywhere wake the worker at once
        gather: float = 0.02,  # after a wake, how long to let more jobs arrive
        policy: RetryPolicy = JOB_RETRIES,
        on_parked: ParkedListener | None = None,
    ) -> None:
        self.jobs = jobs
        self.store = jobs.store
        self.meta = meta
        self.kinds = dict(kinds)
        self.lanes = dict(lanes)
        self.lease = lease
        self.poll = poll
        self.gather = gather
        self.policy = policy
        self.on_parked = on_parked
        self.id = worker_id()
        self._running: dict[str, set[asyncio.Task]] = {lane: set() for lane in self.lanes}
        self._wake = asyncio.Event()
        jobs.on_add(self._wake.set)

    async def run(self) -> None:
        """Run jobs until cancelled; then put back what was running, for the next worker."""
        meta = self.meta
        listener = WakeListener(meta, self.id, self._wake.set)
        listener.start(stale=[w for w in _listed_workers(meta) if _dead_here(w)])
        try:
            await self._run_until_cancelled()
        finally:
            listener.stop()

    async def _run_until_cancelled(self) -> None:
        self._take_over_the_dead()
        if retried := self.store.retry_failed_now():
            log.info("retrying %d job(s) that failed before this worker started", retried)
        heartbeat = asyncio.create_task(self._heartbeat(), name="job leases")
        try:
            while True:
                if not self._claim_and_start():
                    await self._sleep()
        finally:
            heartbeat.cancel()
            tasks = [t for lane in self._running.values() for t in lane]
            for task in tasks:
                task.cancel()
            await asyncio.gather(heartbeat, *tasks, return_exceptions=True)

    def busy(self) -> int:
        """How many jobs this worker is running now."""
        return sum(len(tasks) for tasks in self._running.values())

    def _claim_and_start(self) -> bool:
        started = False
        for lane, limit in self.lanes.items():
            free = limit - len(self._running[lane])
            if free <= 0:
                continue
            for job in self.store.claim(lane, self.id, free, self.lease):
                task = asyncio.create_task(self._run(job), name=f"job {job.kind} {job.id}")
                self._running[lane].add(task)
                task.add_done_callback(self._finished(lane))
                started = True
        return started

    def _finished(self, lane: str) -> Callable[[asyncio.Task], None]:
        def done(task: asyncio.Task) -> None:
            self._running[lane].discard(task)
            self._wake.set()

        return done

    async def _sleep(self) -> None:
        """Until a job of a lane with room may be due, or a job ends or is added (a hint
        from any process); at most `poll`, a backstop for a lost hint."""
        free = [lane for lane, limit in self.lanes.items() if len(self._running[lane]) < limit]
        due = self.store.next_due(free) if free else None
        wait = self.poll if due is None else min(self.poll, max(0.0, due - time.time()))
        self._wake.clear()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()
                # A burst (a campaign's callbacks, a channel's commands) is claimed in a
                # few batches, not job by job: fewer write transactions competing with the
                # web process for the database while it answers the burst.
                await asyncio.sleep(self.gather)

    async def _run(self, job: Job) -> None:
        kind = self.kinds.get(job.kind)
        if kind is None:
            log.error("no handler for job %s (%s); it is kept as dead", job.id, job.kind)
            self.store.bury(job, f"no handler for {job.kind}")
            return
        try:
            await kind.handler(job)
        except RetryLater as later:
            self.store.retry(job, time.time() + later.after, str(later), held=True)
        except asyncio.CancelledError:
            self.store.release(job)
            raise
        except Exception as exc:
            self._failed(job, kind, exc)
        else:
            self.store.finish(job)

    def _failed(self, job: Job, kind: Kind, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        spent = kind.max_attempts is not None and job.attempts >= kind.max_attempts
        if spent or (not is_transient(exc) and job.attempts >= POISON_AFTER):
            log.error(
                "job %s (%s) parked after %d attempts",
                job.id,
                job.kind,
                job.attempts,
                exc_info=exc,
            )
            self.store.bury(job, reason)
            if self.on_parked is not None:
                try:
                    self.on_parked(job, type(exc).__name__)
                except Exception:  # telling people must not take the worker down
                    log.exception("could not report parked job %s", job.id)
            return
        delay = self.policy.backoff(job.attempts, getattr(exc, "retry_after", None))
        log.warning(
            "job %s (%s) failed (attempt %d: %s); again in %.1f s",
            job.id,
            job.kind,
            job.attempts,
            reason,
            delay,
            exc_info=not isinstance(exc, OSError),
        )
        self.store.retry(job, time.time() + delay, reason)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            self.store.extend(self.id, self.lease)
            self._take_over_the_dead()

    def _take_over_the_dead(self) -> None:
        """Jobs leased by a worker of this host that no longer runs need not wait for
        their lease to run out."""
        dead = [w for w in self.store.lease_holders() if w != self.id and _dead_here(w)]
        if dead and (count := self.store.take_over(dead)):
            log.info("took over %d job(s) of %s, which is no longer running", count, dead)


def _listed_workers(meta: MetaStore) -> list[str]:
    return [key.removeprefix(WAKE_PREFIX) for key in meta.keys(WAKE_PREFIX)]


def _dead_here(worker: str) -> bool:
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
