"""The SQLite file: opened once per process, upgraded in place, written in short transactions.

The web process and the worker each open their own connection to the same
file. WAL lets them read while the other writes; every write transaction
starts with `BEGIN IMMEDIATE`, so two processes never both read-then-write
the same rows (a deferred transaction would fail to upgrade its lock instead of
waiting for it).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.store import migrations


def now() -> float:
    """Wall-clock seconds: what times stored for other processes are measured in."""
    return time.time()


class Database:
    """One connection to the store, upgraded to the current schema when opened."""

    def __init__(self, path: str | Path, *, checkpoint_pages: int = 1000) -> None:
        """`checkpoint_pages`: how big the WAL may grow before a commit of this connection
        copies it back into the database file (SQLite's default: 1,000 pages, about 4 MB).
        The web process passes a large value, so that the worker, not a request waiting
        for its answer, pays for checkpoints."""
        self._after_commit: dict[int, Callable[[], None]] = {}
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.db = sqlite_utils.Database(sqlite3.connect(self.path, timeout=10.0))
        if not memory:
            self.db.enable_wal()
        # In WAL mode, NORMAL makes a commit a write() to the WAL file instead of an
        # fsync: about 20x cheaper. A commit still survives the process being killed;
        # only an OS crash or power cut could lose the last few.
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.execute("PRAGMA foreign_keys = OFF")
        self.db.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint_pages)}")
        migrations.upgrade(self)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One transaction around several writes; a nested one joins the outer one (an
        error anywhere undoes all of it)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")  # waits, up to busy_timeout, for the lock
        try:
            yield
        except BaseException:
            self.conn.rollback()
            self._after_commit.clear()
            raise
        self.conn.execute("COMMIT")
        callbacks, self._after_commit = self._after_commit, {}
        for callback in callbacks.values():
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction has committed (at once when none is
        open); the same callback registered twice in one transaction runs once."""
        if self.conn.in_transaction:
            self._after_commit[id(callback)] = callback
        else:
            callback()

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Rows as dicts (column name → value)."""
        cursor = self.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        cursor = self.conn.execute(sql, params)
        row = cursor.fetchone()
        return dict(zip([c[0] for c in cursor.description], row, strict=True)) if row else None

    def schema_version(self) -> int:
        return int(self.execute("PRAGMA user_version").fetchone()[0])
