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
from collections.abc import Iterator
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

    def __init__(self, path: str | Path) -> None:
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
        migrations.upgrade(self)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One transaction around several writes (nested ones become savepoints)."""
        if self.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def schema_version(self) -> int:
        return int(self.execute("PRAGMA user_version").fetchone()[0])
