"""A campaign's tables: the campaign, its recipients, and its chunks (schema step 11).

A campaign's recipients are stored once, at its preview, each with the chunk
it belongs to and its place (`slot`) in that chunk. A chunk is placed as one
ordinary request: `pending` → `placed` (with the request's id) by a
compare-and-set written in the same transaction as the request, so a chunk is
placed once however often the worker that places it dies; `skipped` when the
campaign is cancelled first. A recipient's result is its chunk's request's call
at position `slot`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.models import RequestStatus
from bot.store.db import Database, now


@dataclass(frozen=True)
class ChunkCounts:
    """Where a campaign's chunks are, and how many of its calls are in flight."""

    pending: int  # not handed to the core yet
    queued: int  # requests accepted (or being sent), not yet with the provider
    open_calls: int  # calls handed to the core without their outcome yet
    placed: int  # chunks handed to the core
    unfinished: int  # placed chunks whose request is not final
    skipped: int
    waiting_hours: int = 0  # calls waiting for their calling hours (scheduled parts)
    hours_open_at: str | None = None  # when the last of them opens (ISO, UTC)
    unknown_since: float | None = None  # the oldest "outcome unknown" not settled yet


# An "outcome unknown" chunk whose provider cannot say what became of it (Intron direct
# has no look-up) counts as settled, outcome unknown, this long after it turned unknown,
# so that the campaign ends; reconciliation may still find its calls later.
UNKNOWN_SETTLES_AFTER = 3600.0


_FINAL = tuple(
    str(s)
    for s in (
        RequestStatus.COMPLETED,
        RequestStatus.FAILED,
        RequestStatus.UNKNOWN,
        RequestStatus.CANCELLED,
    )
)
# A chunk is over once its request is settled: an "outcome unknown" one is not yet, as
# reconciliation finds it placed (its results follow) or never placed (the chunk goes
# again: CampaignService._place_again).
_SETTLED = tuple(s for s in _FINAL if s != str(RequestStatus.UNKNOWN))
_QUEUED = (str(RequestStatus.ACCEPTED), str(RequestStatus.SENDING), str(RequestStatus.SCHEDULED))
_SENDING = (str(RequestStatus.ACCEPTED), str(RequestStatus.SENDING))
_UNSENT = (str(RequestStatus.ACCEPTED), str(RequestStatus.SCHEDULED))

COLUMNS = (
    "id, created_at, updated_at, status, provider, workflow_id, workflow_name, voice, "
    "requested_by, channel, file_name, start_at, total, chunk_size, preview, parent_ts, "
    "shown_at, again_of, finished_at, end_posted, stopped_by"
)


class CampaignStore:
    """Campaigns, their recipients and chunks."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------ campaigns

    def add(
        self, row: dict[str, Any], recipients: Sequence[tuple[int, str, dict[str, str]]]
    ) -> None:
        """A new campaign (a draft) with its recipients (line, phone, variables), cut into
        chunks of `row["chunk_size"]`."""
        size = max(1, int(row["chunk_size"]))
        with self.db.write():
            self.db.execute(
                f"INSERT INTO campaigns ({COLUMNS}) VALUES ({','.join('?' * 21)})",
                [
                    row["id"],
                    row["created_at"],
                    row["created_at"],
                    row["status"],
                    row["provider"],
                    row["workflow_id"],
                    row["workflow_name"],
                    row.get("voice"),
                    row["requested_by"],
                    row.get("channel"),
                    row.get("file_name"),
                    row.get("start_at"),
                    len(recipients),
                    size,
                    json.dumps(row.get("preview") or {}),
                    None,
                    0.0,
                    row.get("again_of"),
                    None,
                    0,
                    None,
                ],
            )
            self.db.conn.executemany(
                "INSERT INTO campaign_recipients "
                "(campaign_id, position, line, phone, variables, chunk, slot) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (row["id"], i + 1, line, phone, json.dumps(values), i // size + 1, i % size + 1)
                    for i, (line, phone, values) in enumerate(recipients)
                ),
            )
            self.db.execute(
                "UPDATE campaigns SET refused = ? WHERE id = ?",
                [json.dumps(row.get("refused") or []), row["id"]],
            )
            chunks = (len(recipients) + size - 1) // size
            self.db.conn.executemany(
                "INSERT INTO campaign_chunks (campaign_id, chunk, size, state) "
                "VALUES (?, ?, ?, 'pending')",
                (
                    (row["id"], n, min(size, len(recipients) - (n - 1) * size))
                    for n in range(1, chunks + 1)
                ),
            )

    def get(self, campaign_id: str) -> dict[str, Any] | None:
        row = self.db.one(f"SELECT {COLUMNS} FROM campaigns WHERE id = ?", [campaign_id])
        if row is not None:
            row["preview"] = json.loads(row["preview"] or "{}")
        return row

    def refused(self, campaign_id: str) -> list[list[Any]]:
        """Every refused row of its preview: [line, value, reason] (kept apart from the
        campaign, which is read at every change: a file may have thousands)."""
        row = self.db.one("SELECT refused FROM campaigns WHERE id = ?", [campaign_id])
        return json.loads(row["refused"] or "[]") if row else []

    def recent(self, limit: int = 5) -> list[dict[str, Any]]:
        """The latest campaigns that were sent (not drafts), newest first."""
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM campaigns WHERE status != 'draft' "
            "ORDER BY created_at DESC LIMIT ?",
            [limit],
        )
        for row in rows:
            row["preview"] = json.loads(row["preview"] or "{}")
        return rows

    def transition(self, campaign_id: str, from_: Sequence[str], to: str, **fields: Any) -> bool:
        """Compare-and-set of a campaign's status; True when it moved."""
        sets = ", ".join(f"{name} = ?" for name in fields)
        marks = ",".join("?" for _ in from_)
        cursor = self.db.execute(
            f"UPDATE campaigns SET status = ?, updated_at = ?{', ' + sets if sets else ''} "
            f"WHERE id = ? AND status IN ({marks})",
            [to, _iso(), *fields.values(), campaign_id, *from_],
        )
        return cursor.rowcount == 1

    def finish(self, campaign_id: str) -> bool:
        """Mark it finished, once; True the first time."""
        cursor = self.db.execute(
            "UPDATE campaigns SET finished_at = ?, updated_at = ? "
            "WHERE id = ? AND finished_at IS NULL",
            [_iso(), _iso(), campaign_id],
        )
        return cursor.rowcount == 1

    def set_parent(self, campaign_id: str, ts: str) -> None:
        with self.db.write():
            self.db.execute("UPDATE campaigns SET parent_ts = ? WHERE id = ?", [ts, campaign_id])

    def take_edit_slot(self, campaign_id: str, every: float) -> float:
        """Claim the right to edit the parent now: 0 when claimed (at most one edit
        every `every` seconds, whichever worker asks), else the seconds to wait."""
        at = now()
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE campaigns SET shown_at = ? WHERE id = ? AND shown_at <= ?",
                [at, campaign_id, at - every],
            )
            if cursor.rowcount == 1:
                return 0.0
            row = self.db.one("SELECT shown_at FROM campaigns WHERE id = ?", [campaign_id])
        return max(0.01, (row["shown_at"] if row else 0.0) + every - at)

    def edited(self, campaign_id: str) -> None:
        """An edit just went out: the next one waits from now (as Slack saw it, the
        gap between two edits is then never shorter than the rule)."""
        with self.db.write():
            self.db.execute("UPDATE campaigns SET shown_at = ? WHERE id = ?", [now(), campaign_id])

    def move_parent(self, campaign_id: str, channel: str, ts: str) -> None:
        """Slack refused the parent in the campaign's channel for good: it lives in the
        requester's DM (`channel`, `ts`) from now on, and so does the end."""
        with self.db.write():
            self.db.execute(
                "UPDATE campaigns SET preview = json_set(preview, '$.moved', json_array(?, ?)) "
                "WHERE id = ?",
                [channel, ts, campaign_id],
            )

    def end_posted(self, campaign_id: str, parts: int) -> None:
        with self.db.write():
            self.db.execute(
                "UPDATE campaigns SET end_posted = ? WHERE id = ? AND end_posted < ?",
                [parts, campaign_id, parts],
            )

    # ------------------------------------------------------------ chunks

    def counts(self, campaign_id: str) -> ChunkCounts:
        """Where the chunks are. A chunk's request may have been split by the core (those
        outside their calling hours wait in parts of their own, `part_of` the first):
        every part counts. A part waiting for its hours (scheduled) counts as in flight:
        at its opening it is dialled with every other part waiting for that opening, so
        the calls waiting are bounded by what the provider can dial at once."""
        pending = queued = open_calls = placed = unfinished = skipped = waiting = 0
        opens: str | None = None
        unknown_since: float | None = None
        stale = _iso_at(now() - UNKNOWN_SETTLES_AFTER)
        chunks: dict[int, bool] = {}
        for chunk, state, status, count, at, updated in self.db.execute(
            """SELECT k.chunk, k.state, r.status, r.recipient_count, r.scheduled_at,
                r.updated_at
            FROM campaign_chunks k LEFT JOIN requests r
                ON k.request_id IS NOT NULL AND (r.id = k.request_id OR r.part_of = k.request_id)
            WHERE k.campaign_id = ?""",
            [campaign_id],
        ):
            if state == "pending":
                pending += 1
            elif state == "skipped":
                skipped += 1
            else:
                if chunk not in chunks:
                    placed += 1
                    chunks[chunk] = False
                if status == "unknown" and updated and updated <= stale:
                    continue  # given up on: settled, outcome unknown
                if status == "unknown" and updated:
                    since = _epoch(updated)
                    unknown_since = since if unknown_since is None else min(unknown_since, since)
                if status is None or status not in _SETTLED:
                    chunks[chunk] = True
                if status in _SENDING:
                    queued += 1
                if status is None or status not in _FINAL:
                    open_calls += int(count or 0)
                if status == "scheduled":
                    waiting += int(count or 0)
                    opens = at if opens is None or (at and at > opens) else opens
        unfinished = sum(chunks.values())
        return ChunkCounts(
            pending, queued, open_calls, placed, unfinished, skipped, waiting, opens, unknown_since
        )

    def next_pending(self, campaign_id: str, limit: int) -> list[tuple[int, int]]:
        """The next chunks to place, in order: (chunk, attempt); `attempt` counts the times
        it was taken back (paused before it was dialled), for its request's key."""
        rows = self.db.execute(
            "SELECT chunk, attempt FROM campaign_chunks WHERE campaign_id = ? "
            "AND state = 'pending' ORDER BY chunk LIMIT ?",
            [campaign_id, limit],
        ).fetchall()
        return [(chunk, attempt) for chunk, attempt in rows]

    def unplace(self, campaign_id: str, request_id: str) -> bool:
        """placed → pending again, once its request was cancelled before it was dialled
        (a pause): nobody of it was called, and it is placed anew on resume."""
        cursor = self.db.execute(
            "UPDATE campaign_chunks SET state = 'pending', request_id = NULL, "
            "attempt = attempt + 1 WHERE campaign_id = ? AND request_id = ? AND state = 'placed'",
            [campaign_id, request_id],
        )
        return cursor.rowcount == 1

    def never_placed(self, request_id: str) -> bool:
        """True when a request failed because reconciliation found the provider never had
        it (nobody was called: `request.not_placed`), and it has no parts of its own."""
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM audit WHERE target = ? AND action = "
            "'request.not_placed') AND NOT EXISTS (SELECT 1 FROM requests WHERE part_of = ?)",
            [request_id, request_id],
        ).fetchone()
        return bool(row[0])

    def found_absent(self, request_id: str) -> bool:
        """True when reconciliation found the provider never had this request (it was
        cut off while being sent, not refused: `request.not_placed`)."""
        row = self.db.execute(
            "SELECT 1 FROM audit WHERE target = ? AND action = 'request.not_placed' LIMIT 1",
            [request_id],
        ).fetchone()
        return row is not None

    def preview_posted(self, campaign_id: str) -> int:
        """How many parts of a draft's preview are in the requester's DM: 1 the message,
        2 the refused rows' file too."""
        row = self.db.one(
            "SELECT json_extract(preview, '$.posted') AS posted FROM campaigns WHERE id = ?",
            [campaign_id],
        )
        return int(row["posted"] or 0) if row else 0

    def set_preview_posted(
        self, campaign_id: str, parts: int, dm: tuple[str, str] | None = None
    ) -> None:
        """`parts` of the preview are in the DM now; `dm`: where its message landed (the
        refused rows' file goes in its thread)."""
        with self.db.write():
            if dm is None:
                self.db.execute(
                    "UPDATE campaigns SET preview = json_set(preview, '$.posted', ?) WHERE id = ?",
                    [parts, campaign_id],
                )
                return
            self.db.execute(
                "UPDATE campaigns SET preview = json_set(preview, '$.posted', ?, '$.dm', "
                "json_array(?, ?)) WHERE id = ?",
                [parts, dm[0], dm[1], campaign_id],
            )

    def preview_dm(self, campaign_id: str) -> tuple[str, str] | None:
        row = self.db.one(
            "SELECT json_extract(preview, '$.dm') AS dm FROM campaigns WHERE id = ?",
            [campaign_id],
        )
        if not row or not row["dm"]:
            return None
        channel, ts = json.loads(row["dm"])
        return channel, ts

    def untouched_chunk_requests(self, campaign_id: str) -> list[str]:
        """The chunks' requests (their first part) none of whose parts has been sent yet:
        every part accepted (not being sent) or scheduled (waiting for its time or its
        calling hours). Read inside the write lock, they may all be cancelled together."""
        rows = self.db.execute(
            f"""SELECT k.request_id FROM campaign_chunks k
            WHERE k.campaign_id = ? AND k.state = 'placed' AND k.request_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM requests r
                WHERE (r.id = k.request_id OR r.part_of = k.request_id)
                AND r.status NOT IN ({_marks(_UNSENT)}))
            ORDER BY k.chunk""",
            [campaign_id, *_UNSENT],
        ).fetchall()
        return [request_id for (request_id,) in rows]

    def set_note(self, campaign_id: str, note: str | None) -> None:
        """Why the campaign stopped by itself (the provider refused our key…), shown on
        its parent; None clears it (kept in the preview's JSON: no column of its own)."""
        self.db.execute(
            "UPDATE campaigns SET preview = json_set(preview, '$.note', ?) WHERE id = ?",
            [note, campaign_id],
        )

    def chunk_recipients(self, campaign_id: str, chunk: int) -> list[tuple[str, dict[str, str]]]:
        rows = self.db.execute(
            "SELECT phone, variables FROM campaign_recipients WHERE campaign_id = ? AND chunk = ? "
            "AND skipped IS NULL ORDER BY slot",
            [campaign_id, chunk],
        ).fetchall()
        return [(phone, json.loads(values)) for phone, values in rows]

    def skip_recipient(
        self, campaign_id: str, phone: str, reason: str, why: str | None = None
    ) -> None:
        """Not called, for `reason` (e.g. `refused`): shown as its outcome; `why`, the
        sentence of the rule that refused it (masked), in the results. Both are kept in
        the one column, `reason` TAB `why`."""
        self.db.execute(
            "UPDATE campaign_recipients SET skipped = ? WHERE campaign_id = ? AND phone = ?",
            [f"{reason}\t{why}" if why else reason, campaign_id, phone],
        )

    def skip_chunk(self, campaign_id: str, chunk: int) -> bool:
        """pending → skipped (nobody left in it to call)."""
        cursor = self.db.execute(
            "UPDATE campaign_chunks SET state = 'skipped' "
            "WHERE campaign_id = ? AND chunk = ? AND state = 'pending'",
            [campaign_id, chunk],
        )
        return cursor.rowcount == 1

    def place_chunk(self, campaign_id: str, chunk: int, request_id: str) -> bool:
        """pending → placed, with its request (compare-and-set): True when it moved."""
        cursor = self.db.execute(
            "UPDATE campaign_chunks SET state = 'placed', request_id = ? "
            "WHERE campaign_id = ? AND chunk = ? AND state = 'pending'",
            [request_id, campaign_id, chunk],
        )
        return cursor.rowcount == 1

    def skip_pending(self, campaign_id: str) -> int:
        cursor = self.db.execute(
            "UPDATE campaign_chunks SET state = 'skipped' "
            "WHERE campaign_id = ? AND state = 'pending'",
            [campaign_id],
        )
        return cursor.rowcount

    def queued_requests(self, campaign_id: str) -> list[str]:
        """The requests (parts too) of its chunks not dialled yet: accepted or scheduled."""
        rows = self.db.execute(
            f"SELECT r.id FROM campaign_chunks k JOIN requests r "
            f"ON r.id = k.request_id OR r.part_of = k.request_id "
            f"WHERE k.campaign_id = ? AND k.request_id IS NOT NULL "
            f"AND r.status IN ({_marks(_QUEUED)})",
            [campaign_id, *_QUEUED],
        ).fetchall()
        return [request_id for (request_id,) in rows]

    def campaign_of(self, request_id: str) -> str | None:
        """The campaign a request (the first part of a chunk's request) belongs to."""
        row = self.db.execute(
            "SELECT campaign_id FROM campaign_chunks WHERE request_id = ?", [request_id]
        ).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------ results

    def outcomes(self, campaign_id: str) -> dict[str, int]:
        """How many recipients per outcome: a call's outcome, `pending` (handed to the
        core, no outcome yet), `not_placed` (its chunk not placed: pending, skipped, or its
        request failed or was cancelled), `unknown`; and `key:<digit>` per key pressed."""
        counts: dict[str, int] = {}
        for outcome, key, n in self.db.execute(
            f"""SELECT
                {_RESULT},
                c.key_pressed, COUNT(*)
            FROM campaign_recipients p
            JOIN campaign_chunks k ON k.campaign_id = p.campaign_id AND k.chunk = p.chunk
            LEFT JOIN calls c ON c.phone_number = p.phone AND c.request_id IN
                (SELECT id FROM requests WHERE id = k.request_id OR part_of = k.request_id)
            LEFT JOIN requests r ON r.id = COALESCE(c.request_id, k.request_id)
            WHERE p.campaign_id = ? GROUP BY 1, 2""",
            [campaign_id],
        ).fetchall():
            counts[outcome] = counts.get(outcome, 0) + n
            if key:
                counts[f"key:{key}"] = counts.get(f"key:{key}", 0) + n
        return counts

    def results(self, campaign_id: str) -> list[dict[str, Any]]:
        """One row per recipient, in file order: line, phone, variables, outcome, key,
        duration, and when its request was completed."""
        rows = self.db.query(
            f"""SELECT {_RESULT} AS result, p.position, p.line, p.phone, p.variables,
                {_WHY} AS why,
                k.state,
                r.status AS request_status, c.outcome, c.provider_status, c.key_pressed,
                c.duration, r.completed_at, r.updated_at
            FROM campaign_recipients p
            JOIN campaign_chunks k ON k.campaign_id = p.campaign_id AND k.chunk = p.chunk
            LEFT JOIN calls c ON c.phone_number = p.phone AND c.request_id IN
                (SELECT id FROM requests WHERE id = k.request_id OR part_of = k.request_id)
            LEFT JOIN requests r ON r.id = COALESCE(c.request_id, k.request_id)
            WHERE p.campaign_id = ? ORDER BY p.position""",
            [campaign_id],
        )
        for row in rows:
            row["variables"] = json.loads(row["variables"])
        return rows


# A recipient's result in one word: why it was not called, or its call's outcome
# (`pending` while it has none).
_RESULT = """CASE WHEN p.skipped IS NOT NULL THEN
        CASE WHEN instr(p.skipped, char(9)) > 0
            THEN substr(p.skipped, 1, instr(p.skipped, char(9)) - 1) ELSE p.skipped END
    WHEN k.state != 'placed' THEN 'not_placed'
    WHEN r.status IN ('failed', 'cancelled') AND c.outcome IS NULL THEN 'not_placed'
    WHEN r.status = 'unknown' AND c.outcome IS NULL THEN 'unknown'
    WHEN r.status = 'scheduled' AND c.outcome IS NULL THEN 'later'
    WHEN c.provider_status LIKE 'not called%' THEN 'not_called'
    ELSE COALESCE(c.outcome, 'pending') END"""


# Why it was not called, when a rule said so (the sentence stored with `skipped`).
_WHY = """CASE WHEN instr(p.skipped, char(9)) > 0
    THEN substr(p.skipped, instr(p.skipped, char(9)) + 1) END"""


def _marks(values: Sequence[str]) -> str:
    return ",".join("?" for _ in values)


def _iso_at(moment: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def _epoch(iso: str) -> float:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(iso)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _iso() -> str:
    from bot.core.models import now_iso

    return now_iso()
