"""The SQLite store: every request, every call's result, the workflow cache, the audit trail.

One file, opened in WAL mode. Every accepted request is written here before the
user is told it was accepted, so a restart loses nothing. Phone numbers are kept
whole here (and only here). Status changes go through `transition`, a
compare-and-set, so two tasks can never both move a request forward.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlite_utils
from pydantic import BaseModel

from bot.intron.models import CallStats, CompletionCallback, Workflow


class RequestStatus(StrEnum):
    """Where a request is in its life."""

    ACCEPTED = "accepted"  # stored; nothing sent to the provider yet
    SENDING = "sending"  # POST /call under way
    PLACED = "placed"  # the provider answered with a batch id; waiting for results
    COMPLETED = "completed"  # results received
    FAILED = "failed"  # refused or not sent: nobody was called
    UNKNOWN = "unknown"  # may or may not have been placed: check before resending


FINAL_STATUSES = {RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.UNKNOWN}


class RequestRecord(BaseModel):
    """One call request, as stored."""

    id: str
    created_at: str
    updated_at: str
    status: RequestStatus
    workflow_id: str
    workflow_name: str
    voice: str | None = None
    requested_by: str
    channel: str | None = None
    source: str
    idempotency_key: str | None = None
    recipient_count: int
    batch_id: str | None = None
    error: str | None = None
    stats: CallStats | None = None
    completed_at: str | None = None


class CallRecord(BaseModel):
    """One recipient of a request and, once known, the call's result."""

    request_id: str
    position: int
    phone_number: str
    variables: dict[str, str]
    provider_call_id: str | None = None
    status: str | None = None
    duration: float | None = None
    key_pressed: str | None = None


class SlackMessage(BaseModel):
    """Where a request is shown in Slack (kept by the Slack adapter)."""

    request_id: str
    channel: str
    ts: str | None = None
    results_queued: bool = False


class OutboxItem(BaseModel):
    """One piece of Slack work: post the parent, edit it, reply in its thread, or DM."""

    id: int = 0
    request_id: str
    channel: str
    kind: str  # "parent" | "edit" | "reply" | "dm"
    payload: dict[str, Any] | None = None  # for replies and DMs; parents render when sent


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_request_id() -> str:
    """Short, unique, easy to read out: `rq-3f9c2a7b1d04`."""
    return f"rq-{uuid.uuid4().hex[:12]}"


# Every column of `requests` but the (possibly megabyte-sized) `call_request` body.
_REQUEST_FIELDS = (
    "id",
    "created_at",
    "updated_at",
    "status",
    "workflow_id",
    "workflow_name",
    "voice",
    "requested_by",
    "channel",
    "source",
    "idempotency_key",
    "recipient_count",
    "batch_id",
    "error",
    "stats",
    "completed_at",
)
REQUEST_COLUMNS = ", ".join(_REQUEST_FIELDS)
JOINED_REQUEST_COLUMNS = ", ".join(f"r.{name}" for name in _REQUEST_FIELDS)


class Store:
    """All persistence. Synchronous and fast (single-row statements on indexed keys)."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(path)
        if str(path) != ":memory:":
            self.db.enable_wal()
        # In WAL mode, NORMAL makes a commit a write() to the WAL file instead of an
        # fsync: about 20x cheaper, and this store runs on the event loop. A commit
        # still survives the app being killed; only an OS crash or power cut could
        # lose the last few.
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA busy_timeout = 5000")
        self._create_tables()

    def close(self) -> None:
        self.db.close()

    def atomic(self) -> AbstractContextManager:
        """One transaction around several store calls (nested ones become savepoints)."""
        return self.db.atomic()

    def _create_tables(self) -> None:
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS requests (
                id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                status TEXT NOT NULL, workflow_id TEXT NOT NULL, workflow_name TEXT NOT NULL,
                voice TEXT, requested_by TEXT NOT NULL, channel TEXT, source TEXT NOT NULL,
                idempotency_key TEXT UNIQUE, recipient_count INTEGER NOT NULL,
                batch_id TEXT UNIQUE, error TEXT, stats TEXT, completed_at TEXT,
                call_request TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS requests_status ON requests (status);
            CREATE INDEX IF NOT EXISTS requests_created ON requests (created_at);
            CREATE INDEX IF NOT EXISTS requests_workflow ON requests (workflow_id, created_at);
            CREATE TABLE IF NOT EXISTS calls (
                request_id TEXT NOT NULL REFERENCES requests(id), position INTEGER NOT NULL,
                phone_number TEXT NOT NULL, variables TEXT NOT NULL,
                provider_call_id TEXT, status TEXT, duration REAL, key_pressed TEXT,
                PRIMARY KEY (request_id, position)
            );
            CREATE TABLE IF NOT EXISTS callbacks (
                id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL,
                batch_id TEXT, request_id TEXT, outcome TEXT NOT NULL,
                source TEXT NOT NULL DEFAULT 'intron', body TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS workflows (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, data TEXT NOT NULL,
                fetched_at TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS slack_messages (
                request_id TEXT PRIMARY KEY REFERENCES requests(id), channel TEXT NOT NULL,
                ts TEXT, results_queued INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
                channel TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT,
                created_at TEXT NOT NULL, failed TEXT
            );
            CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (channel, id)
                WHERE failed IS NULL;
            CREATE INDEX IF NOT EXISTS outbox_request ON outbox (request_id, kind)
                WHERE failed IS NULL;
            CREATE TABLE IF NOT EXISTS seen_slack_events (
                event_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS home_viewers (
                user_id TEXT PRIMARY KEY, opened_at TEXT NOT NULL, can_manage INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
                action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL
            );
            """
        )

    # ------------------------------------------------------------ meta

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db.atomic():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def callback_token(self, configured: str | None) -> str:
        """The configured CALLBACK_TOKEN, or one generated on first start and kept."""
        if configured:
            return configured
        token = self.meta("callback_token")
        if token is None:
            token = secrets.token_urlsafe(24)
            self.set_meta("callback_token", token)
        return token

    # ------------------------------------------------------------ workflows cache

    def replace_workflows(self, workflows: Iterable[Workflow]) -> None:
        """Replace the whole cache with a fresh listing from the provider."""
        fetched = now_iso()
        with self.db.atomic():
            self.db.execute("DELETE FROM workflows")
            for workflow in workflows:
                self._put_workflow(workflow, fetched)
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('workflows_fetched_at', ?)",
                [fetched],
            )

    def put_workflow(self, workflow: Workflow) -> None:
        with self.db.atomic():
            self._put_workflow(workflow, now_iso())

    def _put_workflow(self, workflow: Workflow, fetched_at: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO workflows (id, name, data, fetched_at) VALUES (?, ?, ?, ?)",
            [workflow.id, workflow.name, workflow.model_dump_json(), fetched_at],
        )

    def workflows(self) -> list[Workflow]:
        rows = self.db.execute("SELECT data FROM workflows ORDER BY name COLLATE NOCASE")
        return [Workflow.model_validate_json(data) for (data,) in rows.fetchall()]

    def workflow(self, workflow_id: str) -> Workflow | None:
        row = self.db.execute("SELECT data FROM workflows WHERE id = ?", [workflow_id]).fetchone()
        return Workflow.model_validate_json(row[0]) if row else None

    def delete_workflow(self, workflow_id: str) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM workflows WHERE id = ?", [workflow_id])

    def workflows_fetched_at(self) -> datetime | None:
        value = self.meta("workflows_fetched_at")
        return datetime.fromisoformat(value) if value else None

    # ------------------------------------------------------------ requests

    def add_request(
        self, record: RequestRecord, call_request: dict[str, Any], calls: Sequence[CallRecord]
    ) -> tuple[RequestRecord, bool]:
        """Store a new request with its recipients. When a request with the same
        idempotency key exists, nothing is written and that one is returned
        (`created` False): a retried submission must not become a second request."""
        if record.idempotency_key and (found := self._by_key(record.idempotency_key)):
            return found, False
        row = record.model_dump(mode="json", exclude={"stats"}) | {
            "call_request": json.dumps(call_request),
        }
        with self.db.atomic():
            self.db["requests"].insert(row)
            self.db["calls"].insert_all(
                {**c.model_dump(mode="json"), "variables": json.dumps(c.variables)} for c in calls
            )
        return record, True

    def _by_key(self, key: str) -> RequestRecord | None:
        return self._one(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE idempotency_key = ?", [key])

    def request(self, request_id: str) -> RequestRecord | None:
        return self._one(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?", [request_id])

    def request_by_batch(self, batch_id: str) -> RequestRecord | None:
        return self._one(f"SELECT {REQUEST_COLUMNS} FROM requests WHERE batch_id = ?", [batch_id])

    def requests_with_status(self, *statuses: RequestStatus) -> list[RequestRecord]:
        marks = ",".join("?" for _ in statuses)
        rows = self.db.query(
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE status IN ({marks}) ORDER BY created_at",
            statuses,
        )
        return [_request(row) for row in rows]

    def recent_requests(self, limit: int = 10) -> list[RequestRecord]:
        rows = self.db.query(
            f"SELECT {REQUEST_COLUMNS} FROM requests ORDER BY created_at DESC LIMIT ?", [limit]
        )
        return [_request(row) for row in rows]

    def requests_for_workflow(self, workflow_id: str, limit: int = 20) -> list[RequestRecord]:
        rows = self.db.query(
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE workflow_id = ? "
            "ORDER BY created_at DESC LIMIT ?",
            [workflow_id, limit],
        )
        return [_request(row) for row in rows]

    def call_request_body(self, request_id: str) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT call_request FROM requests WHERE id = ?", [request_id]
        ).fetchone()
        return json.loads(row[0])

    def transition(
        self,
        request_id: str,
        allowed_from: Iterable[RequestStatus],
        to: RequestStatus,
        **fields: Any,
    ) -> RequestRecord | None:
        """Move a request to `to` only if it is in one of `allowed_from`; return it
        updated, or None when another task moved it first."""
        sources = list(allowed_from)
        updates = {"status": to, "updated_at": now_iso(), **fields}
        assignments = ", ".join(f"{name} = ?" for name in updates)
        marks = ",".join("?" for _ in sources)
        with self.db.atomic():
            cursor = self.db.execute(
                f"UPDATE requests SET {assignments} WHERE id = ? AND status IN ({marks})",
                [*updates.values(), request_id, *sources],
            )
        return self.request(request_id) if cursor.rowcount == 1 else None

    def calls(self, request_id: str, limit: int | None = None) -> list[CallRecord]:
        """A request's recipients and results, in order (the first `limit` when given)."""
        rows = self.db.query(
            "SELECT * FROM calls WHERE request_id = ? ORDER BY position LIMIT ?",
            [request_id, -1 if limit is None else limit],
        )
        return [
            CallRecord.model_validate({**r, "variables": json.loads(r["variables"])}) for r in rows
        ]

    def complete(
        self, request: RequestRecord, callback: CompletionCallback, results: dict[int, dict]
    ) -> RequestRecord | None:
        """Store a callback's results and mark the request completed, in one transaction.
        Returns None (and writes nothing) when the request was already completed."""
        now = now_iso()
        with self.db.atomic():
            cursor = self.db.execute(
                "UPDATE requests SET status = ?, updated_at = ?, completed_at = ?, stats = ?, "
                "batch_id = ? WHERE id = ? AND status != ?",
                [
                    RequestStatus.COMPLETED,
                    now,
                    now,
                    callback.stats.model_dump_json(),
                    callback.request_id,
                    request.id,
                    RequestStatus.COMPLETED,
                ],
            )
            if cursor.rowcount != 1:
                return None
            self._store_results(request.id, results)
        return self.request(request.id)

    def record_progress(
        self, request: RequestRecord, batch_id: str, results: dict[int, dict]
    ) -> bool:
        """Store calls' results from a not-yet-final callback; False once it is completed."""
        with self.db.atomic():
            cursor = self.db.execute(
                "UPDATE requests SET updated_at = ?, batch_id = COALESCE(batch_id, ?) "
                "WHERE id = ? AND status != ?",
                [now_iso(), batch_id, request.id, RequestStatus.COMPLETED],
            )
            if cursor.rowcount != 1:
                return False
            self._store_results(request.id, results)
        return True

    def _store_results(self, request_id: str, results: dict[int, dict]) -> None:
        for position, result in results.items():
            self.db.execute(
                "UPDATE calls SET provider_call_id = ?, status = ?, duration = ?, "
                "key_pressed = ? WHERE request_id = ? AND position = ?",
                [
                    result["provider_call_id"],
                    result["status"],
                    result["duration"],
                    result["key_pressed"],
                    request_id,
                    position,
                ],
            )

    def log_callback(
        self,
        body: str,
        outcome: str,
        batch_id: str | None,
        request_id: str | None,
        source: str = "intron",
    ) -> None:
        with self.db.atomic():
            self.db["callbacks"].insert(
                {
                    "received_at": now_iso(),
                    "batch_id": batch_id,
                    "request_id": request_id,
                    "outcome": outcome,
                    "source": source,
                    "body": body,
                }
            )

    def callback_log(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM callbacks ORDER BY id"))

    # ------------------------------------------------------------ Slack messages

    def slack_message(self, request_id: str) -> SlackMessage | None:
        row = self.db.execute(
            "SELECT request_id, channel, ts, results_queued FROM slack_messages "
            "WHERE request_id = ?",
            [request_id],
        ).fetchone()
        if row is None:
            return None
        return SlackMessage(
            request_id=row[0], channel=row[1], ts=row[2], results_queued=bool(row[3])
        )

    def requests_missing_from_slack(self) -> list[RequestRecord]:
        """Requests with a channel whose parent was never queued, or whose results
        were stored but never queued (the app stopped in between)."""
        rows = self.db.query(
            f"SELECT {JOINED_REQUEST_COLUMNS} FROM requests r "
            "LEFT JOIN slack_messages m ON m.request_id = r.id "
            "WHERE r.channel IS NOT NULL AND (m.request_id IS NULL OR "
            "(r.status = ? AND m.results_queued = 0)) ORDER BY r.created_at",
            [RequestStatus.COMPLETED],
        )
        return [_request(row) for row in rows]

    def set_slack_ts(self, request_id: str, ts: str) -> None:
        """Record where the parent message landed, touching nothing else of the row."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE slack_messages SET ts = ? WHERE request_id = ?", [ts, request_id]
            )

    def add_slack_message(self, message: SlackMessage) -> None:
        """Start tracking where a request is shown in Slack (never overwrites)."""
        with self.db.atomic():
            self.db.execute(
                "INSERT OR IGNORE INTO slack_messages (request_id, channel, ts, results_queued) "
                "VALUES (?, ?, ?, ?)",
                [message.request_id, message.channel, message.ts, int(message.results_queued)],
            )

    def first_sighting(self, event_id: str) -> bool:
        """True the first time an event id is seen, False for every repeat (Slack retries)."""
        with self.db.atomic():
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO seen_slack_events (event_id, seen_at) VALUES (?, ?)",
                [event_id, now_iso()],
            )
        return cursor.rowcount == 1

    # ------------------------------------------------------------ Home tab viewers

    def touch_home_viewer(self, user_id: str, can_manage: bool) -> None:
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO home_viewers (user_id, opened_at, can_manage) "
                "VALUES (?, ?, ?)",
                [user_id, now_iso(), int(can_manage)],
            )

    def home_viewers(self, within_hours: int, limit: int) -> list[tuple[str, bool]]:
        """Users who opened the Home tab recently, most recent first."""
        since = (datetime.now(UTC) - timedelta(hours=within_hours)).isoformat()
        rows = self.db.execute(
            "SELECT user_id, can_manage FROM home_viewers WHERE opened_at >= ? "
            "ORDER BY opened_at DESC LIMIT ?",
            [since, limit],
        ).fetchall()
        return [(user_id, bool(can_manage)) for user_id, can_manage in rows]

    # ------------------------------------------------------------ Slack outbox

    def enqueue(self, items: Sequence[OutboxItem], *, results_for: str | None = None) -> None:
        """Persist Slack work before it is attempted; with `results_for`, also mark that
        request's results as queued, in the same transaction (so they are queued once)."""
        now = now_iso()
        with self.db.atomic():
            for item in items:
                self.db.execute(
                    "INSERT INTO outbox (request_id, channel, kind, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        item.request_id,
                        item.channel,
                        item.kind,
                        json.dumps(item.payload) if item.payload is not None else None,
                        now,
                    ],
                )
            if results_for is not None:
                self.db.execute(
                    "UPDATE slack_messages SET results_queued = 1 WHERE request_id = ?",
                    [results_for],
                )

    def pending_outbox(self, channel: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Undelivered work in the order it was queued (per channel when given)."""
        where = "failed IS NULL"
        params: list[Any] = []
        if channel is not None:
            where += " AND channel = ?"
            params.append(channel)
        rows = self.db.query(
            f"SELECT * FROM outbox WHERE {where} ORDER BY id LIMIT ?", [*params, limit]
        )
        return [_outbox(row) for row in rows]

    def pending_channels(self) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT channel FROM outbox WHERE failed IS NULL"
        ).fetchall()
        return [channel for (channel,) in rows]

    def has_pending(self, request_id: str, kinds: Sequence[str], after_id: int = 0) -> bool:
        marks = ",".join("?" for _ in kinds)
        row = self.db.execute(
            f"SELECT 1 FROM outbox WHERE request_id = ? AND kind IN ({marks}) AND id > ? "
            "AND failed IS NULL LIMIT 1",
            [request_id, *kinds, after_id],
        ).fetchone()
        return row is not None

    def outbox_done(self, item_id: int, *, failed: str | None = None) -> None:
        """Delivered: forget the item (the table stays small). Failed: keep it, with why."""
        if failed is None:
            self.db.execute("DELETE FROM outbox WHERE id = ?", [item_id])
        else:
            self.db.execute("UPDATE outbox SET failed = ? WHERE id = ?", [failed, item_id])

    # ------------------------------------------------------------ audit

    def audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        """Record who did what to what, and when."""
        with self.db.atomic():
            self.db["audit"].insert(
                {
                    "at": now_iso(),
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "detail": json.dumps(detail, sort_keys=True),
                }
            )

    def audit_trail(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM audit ORDER BY id"))

    def _one(self, sql: str, params: Sequence[Any]) -> RequestRecord | None:
        rows = list(self.db.query(sql, params))
        return _request(rows[0]) if rows else None


def _request(row: dict[str, Any]) -> RequestRecord:
    stats = row.get("stats")
    return RequestRecord.model_validate(
        {**row, "stats": CallStats.model_validate_json(stats) if stats else None}
    )


def _outbox(row: dict[str, Any]) -> OutboxItem:
    payload = row.get("payload")
    return OutboxItem(
        id=row["id"],
        request_id=row["request_id"],
        channel=row["channel"],
        kind=row["kind"],
        payload=json.loads(payload) if payload else None,
    )
