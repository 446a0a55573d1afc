"""Rate-limit history in the database: one quota shared by every process, kept across restarts.

Each row is one request's slot: when it was taken, and when its answer came
(`ended`; NULL while in flight). A slot in flight whose process is gone (killed
mid-request) counts as answered when that is noticed: its request may still be
arriving, so the window runs from then. One in flight for longer than
`max_in_flight` (longer than any client waits) counts as answered then.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from bot.core.ratelimit import Window, wait_for
from bot.store.db import Database


class SqliteSlotLog:
    """The `SlotLog` of one named limiter (e.g. `intron:management`)."""

    def __init__(self, db: Database, limiter: str, *, max_in_flight: float = 60.0) -> None:
        self.db = db
        self.limiter = limiter
        self.max_in_flight = max_in_flight
        self.owner = str(os.getpid())

    def _times(self, windows: Sequence[Window], now: float) -> list[float]:
        since = now - max(w.seconds for w in windows)
        rows = self.db.execute(
            "SELECT id, started, ended, owner FROM rate_slots WHERE limiter = ? "
            "AND (ended IS NULL OR ended > ?)",
            [self.limiter, since - 1.0],
        ).fetchall()
        times = []
        for slot, started, ended, owner in rows:
            if ended is None and owner != self.owner and not _alive(owner):
                ended = now
                self.release(slot, now)  # orphaned: from now on it counts as answered
            if ended is None:
                stale = now - started >= self.max_in_flight
                ended = started + self.max_in_flight if stale else math.inf
            times.append(ended)
        return times

    def _paused_until(self) -> float:
        row = self.db.execute(
            "SELECT until FROM rate_pauses WHERE limiter = ?", [self.limiter]
        ).fetchone()
        return row[0] if row else 0.0

    def wait(self, windows: Sequence[Window], now: float, margin: float) -> float:
        return max(
            wait_for(self._times(windows, now), windows, now, margin),
            self._paused_until() - now,
        )

    def take(
        self, windows: Sequence[Window], now: float, margin: float
    ) -> tuple[float, int | None]:
        with self.db.write():
            wait = self.wait(windows, now, margin)
            if wait > 0:
                return wait, None
            self.db.execute(
                "DELETE FROM rate_slots WHERE limiter = ? AND ended < ?",
                [self.limiter, now - max(w.seconds for w in windows) - 60.0],
            )
            cursor = self.db.execute(
                "INSERT INTO rate_slots (limiter, started, owner) VALUES (?, ?, ?)",
                [self.limiter, now, self.owner],
            )
            return 0.0, cursor.lastrowid

    def release(self, slot: int, at: float) -> None:
        with self.db.write():
            self.db.execute("UPDATE rate_slots SET ended = ? WHERE id = ?", [at, slot])

    def pause(self, until: float) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT INTO rate_pauses (limiter, until) VALUES (?, ?) "
                "ON CONFLICT (limiter) DO UPDATE SET until = MAX(until, excluded.until)",
                [self.limiter, until],
            )

    def arrive(self, at: float) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT INTO rate_slots (limiter, started, ended, owner) VALUES (?, ?, ?, ?)",
                [self.limiter, at, at, self.owner],
            )


def _alive(pid: str) -> bool:
    """Whether the process that took a slot still runs (the database is on this host)."""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
