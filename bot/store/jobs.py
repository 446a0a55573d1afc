"""The jobs table: durable work, claimed with a lease.

States: `waiting` (due at `run_at`), `behind` (in a queue, after another job of
that queue), `running` (leased by a worker until `lease_until`), `dead` (gave
up; kept with its last error). A finished job is deleted, so the table holds
only what is still to do.

A queue (e.g. one Slack channel) runs its jobs one at a time in the order they
were added: only its first job is `waiting`, the rest are `behind`, and the
next one is promoted when the first finishes. A `dedupe` key keeps at most one
not-yet-started job per key, so a burst of "edit this message" becomes one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.core.jobs import Job, NewJob
from bot.store.db import Database, now

JOB_COLUMNS = "id, kind, lane, queue, dedupe, payload, run_at, attempts, leased_by, lease_until"


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, job: NewJob) -> int | None:
        """Add a job; None when a not-yet-started job with the same dedupe key exists.
        One statement: adding jobs is on the path of every acknowledgement."""
        at = now()
        with self.db.write():
            cursor = self.db.execute(
                "INSERT INTO jobs (kind, lane, queue, dedupe, payload, run_at, state, created_at) "
                "SELECT ?, ?, ?, ?, ?, ?, CASE WHEN ? IS NOT NULL AND EXISTS (SELECT 1 FROM jobs "
                "WHERE queue = ? AND state != 'dead') THEN 'behind' ELSE 'waiting' END, ? "
                "WHERE ? IS NULL OR NOT EXISTS (SELECT 1 FROM jobs WHERE dedupe = ? "
                "AND state IN ('waiting', 'behind'))",
                [
                    job.kind,
                    job.lane,
                    job.queue,
                    job.dedupe,
                    json.dumps(job.payload),
                    job.run_at if job.run_at is not None else at,
                    job.queue,
                    job.queue,
                    at,
                    job.dedupe,
                    job.dedupe,
                ],
            )
            return cursor.lastrowid if cursor.rowcount else None

    def claim(self, lane: str, worker: str, limit: int, lease: float) -> list[Job]:
        """Lease up to `limit` due jobs of `lane`: waiting ones, and running ones whose
        worker's lease ran out (it was killed, or hung)."""
        at = now()
        # A read first: most looks find nothing, and a read takes no write lock.
        (due,) = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE lane = ? AND state = 'waiting' "
            "AND run_at <= ?) OR EXISTS (SELECT 1 FROM jobs WHERE lane = ? "
            "AND state = 'running' AND lease_until < ?)",
            [lane, at, lane, at],
        ).fetchone()
        if not due:
            return []
        with self.db.write():
            rows = self.db.execute(
                f"UPDATE jobs SET state = 'running', leased_by = ?, lease_until = ?, "
                f"attempts = attempts + 1 WHERE id IN (SELECT id FROM jobs WHERE lane = ? AND "
                f"state = 'waiting' AND run_at <= ? ORDER BY run_at, id LIMIT ?) "
                f"RETURNING {JOB_COLUMNS}",
                [worker, at + lease, lane, at, limit],
            ).fetchall()
            if len(rows) < limit:
                rows += self.db.execute(
                    f"UPDATE jobs SET leased_by = ?, lease_until = ?, attempts = attempts + 1 "
                    f"WHERE id IN (SELECT id FROM jobs WHERE lane = ? AND state = 'running' "
                    f"AND lease_until < ? LIMIT ?) RETURNING {JOB_COLUMNS}",
                    [worker, at + lease, lane, at, limit - len(rows)],
                ).fetchall()
        return [_job(row) for row in rows]

    def take_over(self, workers: Sequence[str]) -> int:
        """End the leases of workers known to be dead, so their jobs run now."""
        if not workers:
            return 0
        marks = ",".join("?" for _ in workers)
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE jobs SET lease_until = 0 WHERE state = 'running' "
                f"AND leased_by IN ({marks})",
                list(workers),
            )
        return cursor.rowcount

    def lease_holders(self) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT leased_by FROM jobs WHERE state = 'running' AND lease_until >= ?",
            [now()],
        ).fetchall()
        return [worker for (worker,) in rows]

    def extend(self, worker: str, lease: float) -> None:
        """Keep every lease of a live worker from running out."""
        with self.db.write():
            self.db.execute(
                "UPDATE jobs SET lease_until = ? WHERE state = 'running' AND leased_by = ?",
                [now() + lease, worker],
            )

    def finish(self, job: Job) -> None:
        """Done: forget the job, and let the next of its queue start."""
        with self.db.write():
            cursor = self.db.execute(
                "DELETE FROM jobs WHERE id = ? AND leased_by = ?", [job.id, job.leased_by]
            )
            if cursor.rowcount:
                self._promote(job.queue)

    def retry(self, job: Job, run_at: float, error: str, *, held: bool = False) -> None:
        """Run it again at `run_at`; `held` when the other side asked for that time
        (Retry-After), so that a restart does not bring it forward. A newer copy of it
        (same dedupe key) added while it ran is dropped: this one, earlier in its queue,
        does the same work."""
        with self.db.write():
            if job.dedupe is not None:
                self.db.execute(
                    "DELETE FROM jobs WHERE dedupe = ? AND state IN ('waiting', 'behind') "
                    "AND id != ?",
                    [job.dedupe, job.id],
                )
            self.db.execute(
                "UPDATE jobs SET state = 'waiting', run_at = ?, leased_by = NULL, "
                "lease_until = NULL, last_error = ?, held = ? WHERE id = ? AND leased_by = ?",
                [run_at, error[:2000], int(held), job.id, job.leased_by],
            )

    def retry_failed_now(self) -> int:
        """Bring forward every job waiting out a backoff after a failure (a worker
        starting: what failed before the restart is tried again at once)."""
        at = now()
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE jobs SET run_at = ? WHERE state = 'waiting' AND attempts > 0 "
                "AND held = 0 AND last_error IS NOT NULL AND run_at > ?",
                [at, at],
            )
        return cursor.rowcount

    def bring_forward(self, dedupe: str, run_at: float) -> float | None:
        """Make the not-yet-finished job with this dedupe key due by `run_at` (someone
        asked for it now), keeping its payload (where it had got to). A job held to a
        time the other side asked for (Retry-After) keeps that time, and a running one
        is already doing it. Returns when that job is due (a time in the past for a
        running one), or None when there is no such job."""
        with self.db.write():
            self.db.execute(
                "UPDATE jobs SET run_at = ? WHERE dedupe = ? AND state = 'waiting' "
                "AND held = 0 AND run_at > ?",
                [run_at, dedupe, run_at],
            )
            (due,) = self.db.execute(
                "SELECT MIN(run_at) FROM jobs WHERE dedupe = ? "
                "AND state IN ('waiting', 'behind', 'running')",
                [dedupe],
            ).fetchone()
        return due

    def release(self, job: Job) -> None:
        """Put a job back as it was, to run as soon as a worker can (shutdown)."""
        with self.db.write():
            self.db.execute(
                "UPDATE jobs SET state = 'waiting', leased_by = NULL, lease_until = NULL, "
                "attempts = MAX(attempts - 1, 0) WHERE id = ? AND leased_by = ?",
                [job.id, job.leased_by],
            )

    def bury(self, job: Job, error: str) -> None:
        """Give up on a job: keep it, with why, and let its queue move on."""
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE jobs SET state = 'dead', dedupe = NULL, leased_by = NULL, "
                "lease_until = NULL, last_error = ? WHERE id = ? AND leased_by = ?",
                [error[:2000], job.id, job.leased_by],
            )
            if cursor.rowcount:
                self._promote(job.queue)

    def _promote(self, queue: str | None) -> None:
        if queue is None:
            return
        self.db.execute(
            "UPDATE jobs SET state = 'waiting' WHERE id = (SELECT MIN(id) FROM jobs "
            "WHERE queue = ? AND state = 'behind') AND NOT EXISTS (SELECT 1 FROM jobs "
            "WHERE queue = ? AND state IN ('waiting', 'running'))",
            [queue, queue],
        )

    def next_due(self, lanes: Sequence[str]) -> float | None:
        """When the next waiting job of these lanes becomes due. (A lease running out is
        noticed at the next poll: it happens only when a worker dies.)"""
        marks = ",".join("?" for _ in lanes)
        row = self.db.execute(
            f"SELECT MIN(run_at) FROM jobs WHERE state = 'waiting' AND lane IN ({marks})",
            list(lanes),
        ).fetchone()
        return row[0]

    def pending(self, kind: str | None = None) -> list[Job]:
        """Every job not finished and not dead (of one kind when given), oldest first."""
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state != 'dead'"
        params: list[Any] = []
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [_job(row) for row in self.db.execute(sql + " ORDER BY id", params).fetchall()]

    def dead(self) -> list[dict[str, Any]]:
        return self.db.query("SELECT * FROM jobs WHERE state = 'dead' ORDER BY id")

    def parked(self, limit: int = 5) -> tuple[int, list[dict[str, Any]]]:
        """How many jobs were given up on, and the latest `limit` of them."""
        (total,) = self.db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'dead'").fetchone()
        latest = self.db.query(
            "SELECT id, kind, attempts, last_error FROM jobs WHERE state = 'dead' "
            "ORDER BY id DESC LIMIT ?",
            [limit],
        )
        return total, latest


def _job(row: Sequence[Any]) -> Job:
    names = [name.strip() for name in JOB_COLUMNS.split(",")]
    values = dict(zip(names, row, strict=True))
    values["payload"] = json.loads(values["payload"])
    return Job.model_validate(values)
