"""The Slack adapter's own tables: where each request is shown, Slack event ids already
acted on, and who looks at the Home tab. The core never reads these."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from bot.core.models import RequestRecord, RequestStatus, now_iso
from bot.store.db import Database
from bot.store.requests import REQUEST_COLUMNS


class SlackMessage(BaseModel):
    """Where a request is shown in Slack."""

    request_id: str
    channel: str
    ts: str | None = None
    results_queued: bool = False


class SlackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------ messages

    def message(self, request_id: str) -> SlackMessage | None:
        row = self.db.one(
            "SELECT request_id, channel, ts, results_queued FROM slack_messages "
            "WHERE request_id = ?",
            [request_id],
        )
        return SlackMessage.model_validate(row) if row else None

    def add_message(self, message: SlackMessage) -> bool:
        """Start tracking where a request is shown; False if it already was."""
        with self.db.write():
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO slack_messages (request_id, channel, ts, results_queued) "
                "VALUES (?, ?, ?, ?)",
                [message.request_id, message.channel, message.ts, int(message.results_queued)],
            )
        return cursor.rowcount == 1

    def set_ts(self, request_id: str, ts: str) -> None:
        """Record where the parent message landed, touching nothing else of the row."""
        with self.db.write():
            self.db.execute(
                "UPDATE slack_messages SET ts = ? WHERE request_id = ?", [ts, request_id]
            )

    def mark_results_queued(self, request_id: str) -> bool:
        """True the first time (the results are queued once, whoever asks)."""
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE slack_messages SET results_queued = 1 WHERE request_id = ? "
                "AND results_queued = 0",
                [request_id],
            )
        return cursor.rowcount == 1

    def results_posted(self, request_id: str) -> int:
        row = self.db.execute(
            "SELECT results_posted FROM slack_messages WHERE request_id = ?", [request_id]
        ).fetchone()
        return row[0] if row else 0

    def result_posted(self, request_id: str, count: int) -> None:
        """`count` of the request's results parts are in its thread now: its results
        messages, then (for a request too large to list its calls) the CSV file."""
        with self.db.write():
            self.db.execute(
                "UPDATE slack_messages SET results_posted = ? WHERE request_id = ?",
                [count, request_id],
            )

    def requests_missing(self) -> list[RequestRecord]:
        """Requests with a channel whose parent was never queued, or whose results were
        stored but never queued (left so by the first release's crash windows)."""
        columns = ", ".join(f"r.{c.strip()}" for c in REQUEST_COLUMNS.split(","))
        rows = self.db.query(
            f"SELECT {columns} FROM requests r LEFT JOIN slack_messages m "
            "ON m.request_id = r.id WHERE r.channel IS NOT NULL AND (m.request_id IS NULL OR "
            "(r.status = ? AND m.results_queued = 0)) ORDER BY r.created_at",
            [RequestStatus.COMPLETED],
        )
        return [RequestRecord.model_validate(row) for row in rows]

    # ------------------------------------------------------------ time zones

    def user_zone(self, user_id: str, max_age: float) -> tuple[bool, str | None]:
        """(known, tz): a user's IANA time zone as users.info gave it within `max_age`
        seconds (tz None: Slack gave none); known False when not looked up since."""
        row = self.db.execute(
            "SELECT tz, fetched_at FROM slack_user_zones WHERE user_id = ?", [user_id]
        ).fetchone()
        if row is None or row[1] < time.time() - max_age:
            return False, None
        return True, row[0]

    def keep_user_zone(self, user_id: str, tz: str | None) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT OR REPLACE INTO slack_user_zones (user_id, tz, fetched_at) "
                "VALUES (?, ?, ?)",
                [user_id, tz, time.time()],
            )

    # ------------------------------------------------------------ profile phones

    def user_phone(self, user_id: str, max_age: float) -> str | None:
        """The phone of a user's Slack profile as users.info gave it (whole: it stays in
        the database) within `max_age` seconds, or None when not kept since."""
        row = self.db.execute(
            "SELECT phone, fetched_at FROM slack_user_phones WHERE user_id = ?", [user_id]
        ).fetchone()
        if row is None or row[1] < time.time() - max_age:
            return None
        return row[0]

    def keep_user_phone(self, user_id: str, phone: str) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT OR REPLACE INTO slack_user_phones (user_id, phone, fetched_at) "
                "VALUES (?, ?, ?)",
                [user_id, phone, time.time()],
            )

    # ------------------------------------------------------------ events

    def first_sighting(self, event_id: str) -> bool:
        """True the first time an event id is seen, False for every repeat (Slack retries)."""
        with self.db.write():
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO seen_slack_events (event_id, seen_at) VALUES (?, ?)",
                [event_id, now_iso()],
            )
        return cursor.rowcount == 1

    # ------------------------------------------------------------ Home tab viewers

    def touch_home_viewer(self, user_id: str, can_manage: bool) -> None:
        with self.db.write():
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
