"""Calling responsibly, its tables (migration step 10): the opt-out list, each workflow's
calling hours and press-9 option (kept here too, because a workflow kept at its provider
comes back from a refresh without them), and the note of which request parts wait for
their calling hours; and (migration step 12) which requests ignore calling hours,
`requests.urgent`. The frequency cap counts from `requests` and `calls`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.core.models import now_iso
from bot.store.db import Database

if TYPE_CHECKING:
    from bot.providers.base import Workflow

# A call counts towards the cap once its request may dial it; `pending` adds those
# accepted or scheduled but not dialled yet. Cancelled and failed requests called nobody.
DIALLED = ("sending", "placed", "completed", "unknown")
PENDING = ("scheduled", "accepted")
# A call's provider_status when the consent rules kept it from being dialled.
NOT_CALLED = "not called"


class ConsentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------ the opt-out list

    def add(self, numbers: Iterable[str], *, by: str, source: str) -> list[str]:
        """Put these E.164 numbers on the list; returns those that were not on it."""
        added = []
        at = now_iso()
        with self.db.write():
            for phone in dict.fromkeys(numbers):
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO opt_outs (phone, added_at, added_by, source) "
                    "VALUES (?, ?, ?, ?)",
                    [phone, at, by, source],
                )
                if cursor.rowcount:
                    added.append(phone)
        return added

    def remove(self, numbers: Iterable[str]) -> list[str]:
        """Take these numbers off the list; returns those that were on it."""
        removed = []
        with self.db.write():
            for phone in dict.fromkeys(numbers):
                cursor = self.db.execute("DELETE FROM opt_outs WHERE phone = ?", [phone])
                if cursor.rowcount:
                    removed.append(phone)
        return removed

    def is_opted_out(self, phone: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM opt_outs WHERE phone = ?", [phone]).fetchone()
            is not None
        )

    def opt_out(self, phone: str) -> dict[str, Any] | None:
        """The list's entry for this number (added_at, added_by, source), or None."""
        row = self.db.one("SELECT * FROM opt_outs WHERE phone = ?", [phone])
        return dict(row) if row is not None else None

    def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """Those of these numbers that are on the list (one query per 500)."""
        wanted = list(dict.fromkeys(numbers))
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT phone FROM opt_outs WHERE phone IN ({marks})", chunk)
            found |= {phone for (phone,) in rows.fetchall()}
        return found

    def all(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The list, newest first."""
        rows = self.db.execute(
            "SELECT phone, added_at, added_by, source FROM opt_outs "
            "ORDER BY added_at DESC, phone LIMIT ?",
            [limit],
        )
        return [
            dict(zip(("phone", "added_at", "added_by", "source"), r, strict=True)) for r in rows
        ]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM opt_outs").fetchone()[0]

    # ------------------------------------------------------------ the frequency cap

    def call_times_many(
        self,
        numbers: Iterable[str],
        since: datetime,
        until: datetime,
        *,
        exclude_request: str | None = None,
        pending: bool = True,
    ) -> dict[str, list[datetime]]:
        """When each campaign or request call to these numbers (not escalations) was or
        will be dialled, within (since, until]: a request's scheduled time, else when it
        was accepted; calls kept from being dialled (`not called…`) do not count. 500
        numbers a query: number → times."""
        statuses = DIALLED + (PENDING if pending else ())
        marks = ",".join("?" * len(statuses))
        wanted = list(dict.fromkeys(numbers))
        found: dict[str, list[datetime]] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            phones = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"""SELECT c.phone_number, coalesce(r.scheduled_at, r.created_at) FROM calls c
                    JOIN requests r ON r.id = c.request_id
                    WHERE c.phone_number IN ({phones}) AND r.status IN ({marks})
                    AND r.source NOT LIKE 'escalation%' AND r.id != ?
                    AND (c.outcome IS NULL OR c.outcome != 'cancelled')
                    AND (c.provider_status IS NULL
                         OR c.provider_status NOT LIKE '{NOT_CALLED}%')
                    AND julianday(coalesce(r.scheduled_at, r.created_at)) > julianday(?)
                    AND julianday(coalesce(r.scheduled_at, r.created_at)) <= julianday(?)""",
                [*chunk, *statuses, exclude_request or "", _iso(since), _iso(until)],
            )
            for phone, at in rows.fetchall():
                found.setdefault(phone, []).append(_read(at))
        return found

    # ------------------------------------------------------------ workflows' rules

    def set_workflow_rules(
        self, workflow_id: str, *, calling_hours: str | None, press_9_to_stop: bool
    ) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT OR REPLACE INTO workflow_consent (workflow_id, calling_hours, "
                "press_9_to_stop) VALUES (?, ?, ?)",
                [workflow_id, calling_hours, int(press_9_to_stop)],
            )

    def workflow_rules(self, workflow_id: str) -> tuple[str | None, bool] | None:
        row = self.db.execute(
            "SELECT calling_hours, press_9_to_stop FROM workflow_consent WHERE workflow_id = ?",
            [workflow_id],
        ).fetchone()
        return (row[0], bool(row[1])) if row else None

    def workflow_hours(self, workflow: Workflow) -> str | None:
        """The workflow's own calling hours (as written), else those kept here."""
        if workflow.calling_hours:
            return workflow.calling_hours
        rules = self.workflow_rules(workflow.id)
        return rules[0] if rules else None

    def press_9(self, workflow: Workflow) -> bool:
        if workflow.press_9_to_stop:
            return True
        rules = self.workflow_rules(workflow.id)
        return bool(rules and rules[1])

    def overlay(self, workflow: Workflow) -> Workflow:
        """A workflow as its provider listed it, with the rules kept here for it."""
        rules = self.workflow_rules(workflow.id)
        if rules is None or workflow.read_only:
            return workflow
        return workflow.model_copy(update={"calling_hours": rules[0], "press_9_to_stop": rules[1]})

    # ------------------------------------------------------------ urgent requests

    def mark_urgent(self, request_id: str) -> None:
        """This request (an urgent escalation's) ignores calling hours, at its dial too
        (`requests.urgent`, migration step 12; inside the caller's transaction)."""
        self.db.execute("UPDATE requests SET urgent = 1 WHERE id = ?", [request_id])

    def is_urgent(self, request_id: str) -> bool:
        row = self.db.execute("SELECT urgent FROM requests WHERE id = ?", [request_id]).fetchone()
        return bool(row and row[0])

    # ------------------------------------------------------------ waiting parts

    def note_wait(self, request_id: str, opens_at: str, why: str) -> None:
        """This request (a part of an order) waits for its recipients' calling hours."""
        self.db.execute(
            "INSERT OR REPLACE INTO consent_waits (request_id, opens_at, why) VALUES (?, ?, ?)",
            [request_id, opens_at, why],
        )

    def waits(self, request_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """request id → (opens_at, why), for those of these that wait for calling hours."""
        ids = list(request_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT request_id, opens_at, why FROM consent_waits WHERE request_id IN ({marks})",
            ids,
        )
        return {rid: (at, why) for rid, at, why in rows.fetchall()}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _read(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
