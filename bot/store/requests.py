"""Requests, their calls and the callbacks that reported on them.

Phone numbers are kept whole here (and only here). Status changes go through
`transition`, a compare-and-set, so two workers can never both move a request
forward. Figures are computed from the calls when asked for, never copied
from what a provider said.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from bot.core.models import CallRecord, RequestRecord, RequestStatus, Stats, now_iso
from bot.providers.base import CallOutcome
from bot.store.db import Database

REQUEST_COLUMNS = (
    "id, created_at, updated_at, status, provider, workflow_id, workflow_name, voice, "
    "requested_by, channel, source, idempotency_key, recipient_count, provider_ref, error, "
    "completed_at, part_of, part, parts, scheduled_at, cancelled_by"
)

_NOT_FINAL = "('queued', 'in_progress')"


class RequestStore:
    """Requests and calls. Synchronous and fast: single-row statements on indexed keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------ requests

    def add(self, record: RequestRecord, calls: Sequence[CallRecord]) -> tuple[RequestRecord, bool]:
        """Store a new request with its recipients. When a request with the same
        idempotency key exists, nothing is written and that one is returned
        (`created` False): a retried submission must not become a second request."""
        with self.db.write():
            if record.idempotency_key and (found := self._by_key(record.idempotency_key)):
                return found, False
            self.add_part(record, calls)
        return record, True

    def add_part(self, record: RequestRecord, calls: Sequence[CallRecord]) -> None:
        """Store one more part of a request being added (inside the caller's transaction)."""
        row = record.model_dump(mode="json")
        with self.db.write():
            # Plain SQL: this is on the path of every acknowledgement.
            self.db.execute(
                f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )
            self.db.conn.executemany(
                "INSERT INTO calls (request_id, position, phone_number, variables) "
                "VALUES (?, ?, ?, ?)",
                [
                    (c.request_id, c.position, c.phone_number, json.dumps(c.variables))
                    for c in calls
                ],
            )

    def parts(self, request_id: str) -> list[RequestRecord]:
        """Every part of the request `request_id` is part of, in order (just it, if whole)."""
        record = self.get(request_id)
        if record is None or record.part_of is None:
            return [record] if record else []
        return self._many(
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE part_of = ? ORDER BY part",
            [record.part_of],
        )

    def _by_key(self, key: str) -> RequestRecord | None:
        return self._one(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE idempotency_key = ?", [key])

    def get(self, request_id: str) -> RequestRecord | None:
        return self._one(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?", [request_id])

    def by_ref(self, provider: str, ref: str) -> RequestRecord | None:
        """The request a provider knows by `ref` (e.g. Intron's batch id)."""
        return self._one(
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE provider = ? AND provider_ref = ?",
            [provider, ref],
        )

    def by_call_id(self, provider: str, call_id: str, limit: int = 2) -> list[RequestRecord]:
        """The requests (at most `limit`) with a call this provider knows by `call_id`
        (Intron direct's per-call events name only it); more than one is a conflict the
        caller refuses. One indexed read (`calls_provider_call_id`, schema step 7)."""
        return self._many(
            f"SELECT {', '.join('r.' + c.strip() for c in REQUEST_COLUMNS.split(','))} "
            "FROM calls c JOIN requests r ON r.id = c.request_id "
            "WHERE c.provider_call_id = ? AND r.provider = ? GROUP BY r.id LIMIT ?",
            [call_id, provider, limit],
        )

    def by_any_ref(self, ref: str) -> RequestRecord | None:
        """The request some provider knows by `ref`."""
        return self._one(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE provider_ref = ?", [ref])

    def with_status(self, *statuses: RequestStatus) -> list[RequestRecord]:
        marks = ",".join("?" for _ in statuses)
        return self._many(
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE status IN ({marks}) ORDER BY created_at",
            statuses,
        )

    def recent(self, limit: int = 10) -> list[RequestRecord]:
        return self._many(
            f"SELECT {REQUEST_COLUMNS} FROM requests ORDER BY created_at DESC LIMIT ?", [limit]
        )

    def for_workflow(self, workflow_id: str, limit: int = 20) -> list[RequestRecord]:
        return self._many(
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE workflow_id = ? "
            "ORDER BY created_at DESC LIMIT ?",
            [workflow_id, limit],
        )

    def transition(
        self,
        request_id: str,
        allowed_from: Iterable[RequestStatus],
        to: RequestStatus,
        **fields: Any,
    ) -> RequestRecord | None:
        """Move a request to `to` only if it is in one of `allowed_from`; return it
        updated, or None when another worker moved it first."""
        sources = list(allowed_from)
        updates = {"status": to, "updated_at": now_iso(), **fields}
        if to == RequestStatus.COMPLETED:
            updates.setdefault("completed_at", updates["updated_at"])
        assignments = ", ".join(f"{name} = ?" for name in updates)
        marks = ",".join("?" for _ in sources)
        with self.db.write():
            cursor = self.db.execute(
                f"UPDATE requests SET {assignments} WHERE id = ? AND status IN ({marks})",
                [*updates.values(), request_id, *sources],
            )
            return self.get(request_id) if cursor.rowcount == 1 else None

    def set_ref(self, request_id: str, ref: str) -> None:
        """Learn the provider's reference (from a callback that beat the submit's answer)."""
        with self.db.write():
            self.db.execute(
                "UPDATE requests SET provider_ref = COALESCE(provider_ref, ?), updated_at = ? "
                "WHERE id = ?",
                [ref, now_iso(), request_id],
            )

    def touch(self, request_id: str) -> None:
        with self.db.write():
            self.db.execute(
                "UPDATE requests SET updated_at = ? WHERE id = ?", [now_iso(), request_id]
            )

    # ------------------------------------------------------------ calls

    def calls(self, request_id: str, limit: int | None = None) -> list[CallRecord]:
        """A request's recipients and results, in order (the first `limit` when given)."""
        rows = self.db.query(
            "SELECT * FROM calls WHERE request_id = ? ORDER BY position LIMIT ?",
            [request_id, -1 if limit is None else limit],
        )
        return [
            CallRecord.model_validate({**r, "variables": json.loads(r["variables"])}) for r in rows
        ]

    def calls_matching(
        self,
        request_id: str,
        outcomes: Collection[CallOutcome | None] | None = None,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[CallRecord], int]:
        """One page of a request's calls, in order, and how many match in all: those
        whose outcome is one of `outcomes` (None in it: no outcome yet), or every call
        when `outcomes` is None. Two indexed reads, whatever the request's size."""
        where, params = "request_id = ?", [request_id]
        if outcomes is not None:
            known = sorted(str(o) for o in outcomes if o is not None)
            tests = [f"outcome IN ({','.join('?' for _ in known)})"] if known else []
            if None in outcomes:
                tests.append("outcome IS NULL")
            where += f" AND ({' OR '.join(tests) or '0'})"
            params += known
        (total,) = self.db.execute(f"SELECT COUNT(*) FROM calls WHERE {where}", params).fetchone()
        rows = self.db.query(
            f"SELECT * FROM calls WHERE {where} ORDER BY position LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else limit, max(0, offset)],
        )
        calls = [
            CallRecord.model_validate({**r, "variables": json.loads(r["variables"])}) for r in rows
        ]
        return calls, int(total)

    def set_call_ids(self, request_id: str, call_ids: Mapping[int, str]) -> None:
        """Keep the provider's id of each call, by position, as its submit answered them
        (a call id already learnt is kept)."""
        if not call_ids:
            return
        with self.db.write():
            self.db.conn.executemany(
                "UPDATE calls SET provider_call_id = COALESCE(provider_call_id, ?) "
                "WHERE request_id = ? AND position = ?",
                [(call_id, request_id, position) for position, call_id in call_ids.items()],
            )

    def record_results(self, request_id: str, results: dict[int, dict[str, Any]]) -> None:
        """Store calls' results by position. A final outcome is never replaced by a
        progress report that arrives after it."""
        with self.db.write():
            for position, result in results.items():
                self.db.execute(
                    "UPDATE calls SET provider_call_id = COALESCE(?, provider_call_id), "
                    "outcome = ?, provider_status = ?, duration = COALESCE(?, duration), "
                    "key_pressed = COALESCE(?, key_pressed) "
                    "WHERE request_id = ? AND position = ? AND NOT (outcome IS NOT NULL "
                    f"AND outcome NOT IN {_NOT_FINAL} AND ? IN {_NOT_FINAL})",
                    [
                        result.get("provider_call_id"),
                        result["outcome"],
                        result["provider_status"],
                        result.get("duration"),
                        result.get("key_pressed"),
                        request_id,
                        position,
                        result["outcome"],
                    ],
                )

    def all_final(self, request_id: str) -> bool:
        """True when every call of the request has a final outcome."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM calls WHERE request_id = ? AND (outcome IS NULL OR "
            f"outcome IN {_NOT_FINAL})",
            [request_id],
        ).fetchone()
        return row[0] == 0

    def stats(self, request_id: str) -> Stats:
        """The request's figures: as kept when it completed, else from its calls now."""
        row = self.db.execute("SELECT stats FROM requests WHERE id = ?", [request_id]).fetchone()
        if row and row[0]:
            return Stats.model_validate_json(row[0])
        return self.count(request_id)

    def count(self, request_id: str) -> Stats:
        """The request's figures from its calls as they are now (one pass over them)."""
        outcomes: dict[str | None, int] = {}
        keys: dict[str, int] = {}
        answered_seconds, timed = 0.0, 0
        for outcome, key, calls, seconds, with_duration in self.db.execute(
            "SELECT outcome, key_pressed, COUNT(*), SUM(duration), COUNT(duration) FROM calls "
            "WHERE request_id = ? GROUP BY outcome, key_pressed",
            [request_id],
        ):
            outcomes[outcome] = outcomes.get(outcome, 0) + calls
            if key:
                keys[key] = keys.get(key, 0) + calls
            if outcome == CallOutcome.ANSWERED:
                answered_seconds += seconds or 0.0
                timed += with_duration
        return Stats.from_counts(outcomes, keys, answered_seconds / timed if timed else None)

    def keep_stats(self, request_id: str) -> Stats:
        """Count the figures of a request that has completed, and keep them with it."""
        stats = self.count(request_id)
        with self.db.write():
            self.db.execute(
                "UPDATE requests SET stats = ? WHERE id = ?", [stats.model_dump_json(), request_id]
            )
        return stats

    # ------------------------------------------------------------ callbacks

    def log_callback(
        self,
        *,
        provider: str,
        body: str,
        outcome: str,
        ref: str | None,
        request_id: str | None,
        source: str,
    ) -> int:
        """Keep a callback as received."""
        with self.db.write():
            cursor = self.db.execute(
                "INSERT INTO callbacks (received_at, provider, provider_ref, request_id, outcome, "
                "source, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [now_iso(), provider, ref, request_id, outcome, source, body],
            )
            return int(cursor.lastrowid or 0)

    def callback(self, callback_id: int) -> dict[str, Any] | None:
        return self.db.one("SELECT * FROM callbacks WHERE id = ?", [callback_id])

    def set_callback_outcome(self, callback_id: int, outcome: str) -> None:
        with self.db.write():
            self.db.execute("UPDATE callbacks SET outcome = ? WHERE id = ?", [outcome, callback_id])

    def callback_log(self) -> list[dict[str, Any]]:
        return self.db.query("SELECT * FROM callbacks ORDER BY id")

    # ------------------------------------------------------------ helpers

    def _one(self, sql: str, params: Sequence[Any]) -> RequestRecord | None:
        row = self.db.one(sql, params)
        return RequestRecord.model_validate(row) if row else None

    def _many(self, sql: str, params: Sequence[Any]) -> list[RequestRecord]:
        return [RequestRecord.model_validate(row) for row in self.db.query(sql, params)]
