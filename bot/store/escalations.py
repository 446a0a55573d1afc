"""Escalations being run, their steps, and their Slack parent messages.

Rows come back as dicts (the core, `bot/core/escalation.py`, reads them into its
records: the store knows no service). Every move is a compare-and-set on a row's
state, so two workers, or one job run twice after a crash, can never both move
the same escalation or call the same step: the one whose UPDATE changed a row goes
on, the other finds it done.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bot.store.db import Database

ESCALATION_COLUMNS = (
    "id, policy_id, policy_name, channel, message, status, started_by, source, group_key, "
    "test, round, step, calling, started_at, ended_at, ended_by"
)
STEP_COLUMNS = (
    "escalation_id, round, step, call, state, phone, name, request_id, fallback_request_id, "
    "outcome, key_pressed, detail, started_at, ended_at, due_at"
)


class EscalationStore:
    """Single-row statements on indexed keys: fast enough inside any transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------ escalations

    def add(self, row: dict[str, Any], policy: dict[str, Any]) -> None:
        """A new escalation (its columns as in ESCALATION_COLUMNS) with its policy's
        snapshot, in the caller's transaction."""
        values = {**row, "policy": json.dumps(policy)}
        with self.db.write():
            self.db.execute(
                f"INSERT INTO escalations ({', '.join(values)}) "
                f"VALUES ({', '.join('?' for _ in values)})",
                list(values.values()),
            )

    def get(self, escalation_id: str) -> dict[str, Any] | None:
        return self.db.one(
            f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE id = ?", [escalation_id]
        )

    def policy(self, escalation_id: str) -> dict[str, Any] | None:
        """The policy as it was when the escalation started."""
        row = self.db.one("SELECT policy FROM escalations WHERE id = ?", [escalation_id])
        return json.loads(row["policy"]) if row else None

    def running_in_group(self, group_key: str) -> dict[str, Any] | None:
        return self.db.one(
            f"SELECT {ESCALATION_COLUMNS} FROM escalations "
            "WHERE group_key = ? AND status = 'running'",
            [group_key],
        )

    def with_status(self, status: str, limit: int = 200) -> list[dict[str, Any]]:
        return self.db.query(
            f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE status = ? "
            "ORDER BY started_at LIMIT ?",
            [status, limit],
        )

    def move(
        self, escalation_id: str, at: tuple[int, int], to: tuple[int, int], calling: str | None
    ) -> bool:
        """Running, at step `at` (round, step) → at `to`; False when it was not there
        (moved on, or ended, by someone else first)."""
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE escalations SET round = ?, step = ?, calling = ? WHERE id = ? "
                "AND status = 'running' AND round = ? AND step = ?",
                [to[0], to[1], calling, escalation_id, at[0], at[1]],
            )
            return cursor.rowcount == 1

    def set_calling(self, escalation_id: str, calling: str | None) -> None:
        with self.db.write():
            self.db.execute(
                "UPDATE escalations SET calling = ? WHERE id = ? AND status = 'running'",
                [calling, escalation_id],
            )

    def end(
        self,
        escalation_id: str,
        status: str,
        *,
        ended_at: str,
        ended_by: str | None,
        at: tuple[int, int] | None = None,
    ) -> bool:
        """Running → `status` (acknowledged, resolved, exhausted); when `at` is given,
        only while it is still at that step. False when it had ended, or moved, first."""
        where = " AND round = ? AND step = ?" if at else ""
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE escalations SET status = ?, ended_at = ?, ended_by = ?, calling = NULL "
                f"WHERE id = ? AND status = 'running'{where}",
                [status, ended_at, ended_by, escalation_id, *(at or ())],
            )
            return cursor.rowcount == 1

    # ------------------------------------------------------------ steps

    def add_step(self, row: dict[str, Any]) -> bool:
        """A step to call (state 'pending'); False when that step's row exists already."""
        with self.db.write():
            cursor = self.db.execute(
                f"INSERT OR IGNORE INTO escalation_steps ({', '.join(row)}) "
                f"VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )
            return cursor.rowcount == 1

    def step(self, escalation_id: str, round: int, step: int) -> dict[str, Any] | None:
        return self.db.one(
            f"SELECT {STEP_COLUMNS} FROM escalation_steps "
            "WHERE escalation_id = ? AND round = ? AND step = ?",
            [escalation_id, round, step],
        )

    def steps(self, escalation_id: str) -> list[dict[str, Any]]:
        return self.db.query(
            f"SELECT {STEP_COLUMNS} FROM escalation_steps WHERE escalation_id = ? "
            "ORDER BY round, step",
            [escalation_id],
        )

    def step_transition(
        self,
        escalation_id: str,
        round: int,
        step: int,
        allowed_from: Iterable[str],
        to: str,
        *,
        outcome_from: str | None = None,
        **fields: Any,
    ) -> dict[str, Any] | None:
        """Move a step to `to` only from one of `allowed_from` (and, when `outcome_from` is
        given, only while its outcome is that one): the row lock that calls a step at most
        once. Returns it updated, or None when it was not in those states."""
        sources = list(allowed_from)
        updates = {"state": to, **fields}
        assignments = ", ".join(f"{name} = ?" for name in updates)
        marks = ",".join("?" for _ in sources)
        outcome = " AND outcome = ?" if outcome_from is not None else ""
        with self.db.write():
            cursor = self.db.execute(
                f"UPDATE escalation_steps SET {assignments} WHERE escalation_id = ? "
                f"AND round = ? AND step = ? AND state IN ({marks}){outcome}",
                [
                    *updates.values(),
                    escalation_id,
                    round,
                    step,
                    *sources,
                    *([outcome_from] if outcome_from is not None else []),
                ],
            )
            return self.step(escalation_id, round, step) if cursor.rowcount == 1 else None

    def set_step(self, escalation_id: str, round: int, step: int, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.db.write():
            self.db.execute(
                f"UPDATE escalation_steps SET {assignments} "
                "WHERE escalation_id = ? AND round = ? AND step = ?",
                [*fields.values(), escalation_id, round, step],
            )

    def claim_fallback(self, escalation_id: str, round: int, step: int, request_id: str) -> bool:
        """Record the fallback's request, once: False when the step has one already."""
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE escalation_steps SET fallback_request_id = ? WHERE escalation_id = ? "
                "AND round = ? AND step = ? AND fallback_request_id IS NULL "
                "AND state = 'calling'",
                [request_id, escalation_id, round, step],
            )
            return cursor.rowcount == 1

    def step_by_request(self, request_id: str) -> dict[str, Any] | None:
        """The step whose call (or fallback call) is this request."""
        return self.db.one(
            f"SELECT {STEP_COLUMNS} FROM escalation_steps WHERE request_id = ? "
            f"UNION ALL SELECT {STEP_COLUMNS} FROM escalation_steps "
            "WHERE fallback_request_id = ? LIMIT 1",
            [request_id, request_id],
        )

    # ------------------------------------------------------------ the Slack parent message

    def add_message(self, escalation_id: str, channel: str) -> bool:
        """The parent message's row (ts unknown yet); False when it exists."""
        with self.db.write():
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO escalation_messages (escalation_id, channel) VALUES (?, ?)",
                [escalation_id, channel],
            )
            return cursor.rowcount == 1

    def message_ts(self, escalation_id: str) -> str | None:
        row = self.db.one(
            "SELECT ts FROM escalation_messages WHERE escalation_id = ?", [escalation_id]
        )
        return row["ts"] if row else None

    def set_message_ts(self, escalation_id: str, ts: str) -> None:
        with self.db.write():
            self.db.execute(
                "UPDATE escalation_messages SET ts = ? WHERE escalation_id = ?",
                [ts, escalation_id],
            )
