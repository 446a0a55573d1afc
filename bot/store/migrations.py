"""Schema versions, and the steps that bring any older database up to the current one.

The version is SQLite's `PRAGMA user_version`. Version 1 is the layout the
first release wrote (it set no version, so a database with a `requests` table
and version 0 is version 1); a new file is created by running every step from
the start, so the steps are the only definition of the schema. Each step runs
in one transaction: an upgrade is all done or not at all.

A step is frozen in time: it names tables, columns and job kinds as they were
when it was written, and must not import the code that uses them today.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store.db import Database


def upgrade(db: Database) -> None:
    """Bring `db` to the latest schema version, one step at a time. The version is read
    inside each step's transaction: two processes starting at once on a new file take
    turns, and the second finds the work done."""
    for target, step in sorted(STEPS.items()):  # in order, whatever order they were added
        with db.write():
            if _version(db) < target:
                step(db)
                db.execute(f"PRAGMA user_version = {target}")


def _version(db: Database) -> int:
    version = db.schema_version()
    if version == 0 and "requests" in db.db.table_names():
        return 1  # written by the first release, which set no version
    return version


def _v1_first_release(db: Database) -> None:
    """The first release's tables, exactly as it created them (without its indexes,
    which step 2 replaces)."""
    for statement in _V1_TABLES:
        db.execute(statement)


_V1_TABLES = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE requests (
        id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        status TEXT NOT NULL, workflow_id TEXT NOT NULL, workflow_name TEXT NOT NULL,
        voice TEXT, requested_by TEXT NOT NULL, channel TEXT, source TEXT NOT NULL,
        idempotency_key TEXT UNIQUE, recipient_count INTEGER NOT NULL,
        batch_id TEXT UNIQUE, error TEXT, stats TEXT, completed_at TEXT,
        call_request TEXT NOT NULL)""",
    """CREATE TABLE calls (
        request_id TEXT NOT NULL REFERENCES requests(id), position INTEGER NOT NULL,
        phone_number TEXT NOT NULL, variables TEXT NOT NULL,
        provider_call_id TEXT, status TEXT, duration REAL, key_pressed TEXT,
        PRIMARY KEY (request_id, position))""",
    """CREATE TABLE callbacks (
        id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL,
        batch_id TEXT, request_id TEXT, outcome TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT 'intron', body TEXT NOT NULL)""",
    """CREATE TABLE workflows (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, data TEXT NOT NULL, fetched_at TEXT NOT NULL)""",
    """CREATE TABLE slack_messages (
        request_id TEXT PRIMARY KEY REFERENCES requests(id), channel TEXT NOT NULL,
        ts TEXT, results_queued INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
        channel TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT,
        created_at TEXT NOT NULL, failed TEXT)""",
    "CREATE TABLE seen_slack_events (event_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL)",
    """CREATE TABLE home_viewers (
        user_id TEXT PRIMARY KEY, opened_at TEXT NOT NULL, can_manage INTEGER NOT NULL)""",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL)""",
]


# How the first release's call statuses (Intron's words; it had no other provider)
# read as outcomes.
_V1_OUTCOME = """CASE
    WHEN status IS NULL THEN NULL
    WHEN upper(status) = 'COMPLETED' THEN 'answered'
    WHEN upper(status) IN ('TIMEOUT', 'NO_ANSWER', 'NOT_ANSWERED') THEN 'no_answer'
    WHEN upper(status) = 'BUSY' THEN 'busy'
    WHEN upper(status) IN ('QUEUED', 'PENDING', 'SCHEDULED') THEN 'queued'
    WHEN upper(status) IN ('PROCESSING', 'IN_PROGRESS', 'RINGING', 'INITIATED', 'ONGOING')
        THEN 'in_progress'
    ELSE 'failed' END"""

# The first release's workflow cache held Intron's own JSON; the core's shape now.
_V1_WORKFLOW = """json_object(
    'id', id, 'provider', 'intron', 'name', name,
    'description', json_extract(data, '$.description'),
    'kind', lower(coalesce(json_extract(data, '$.workflow_type'), 'ROBOCALL')),
    'message', coalesce(json_extract(data, '$.message'), ''),
    'keypad', CASE WHEN json_extract(data, '$.include_reply')
        THEN json(coalesce(json_extract(data, '$.response_options'), '{}'))
        ELSE json('{}') END,
    'callback_url', json_extract(data, '$.call_back_url'),
    'created_at', json_extract(data, '$.created_at'))"""


def _v2_providers_and_jobs(db: Database) -> None:
    """Any provider; durable jobs; shared rate limits; Slack work as jobs."""
    db.execute(
        """CREATE TABLE requests_v2 (
            id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            status TEXT NOT NULL, provider TEXT NOT NULL, workflow_id TEXT,
            workflow_name TEXT NOT NULL, voice TEXT, requested_by TEXT NOT NULL,
            channel TEXT, source TEXT NOT NULL, idempotency_key TEXT UNIQUE,
            recipient_count INTEGER NOT NULL, provider_ref TEXT, error TEXT,
            completed_at TEXT, stats TEXT, UNIQUE (provider_ref, provider))"""
    )
    db.execute(
        """INSERT INTO requests_v2 (id, created_at, updated_at, status, provider, workflow_id,
            workflow_name, voice, requested_by, channel, source, idempotency_key,
            recipient_count, provider_ref, error, completed_at)
        SELECT id, created_at, updated_at, status, 'intron', workflow_id, workflow_name, voice,
            requested_by, channel, source, idempotency_key, recipient_count, batch_id, error,
            completed_at FROM requests"""
    )
    db.execute("DROP TABLE requests")
    db.execute("ALTER TABLE requests_v2 RENAME TO requests")
    db.execute("CREATE INDEX requests_created ON requests (created_at)")
    db.execute("CREATE INDEX requests_workflow ON requests (workflow_id, created_at)")

    db.execute(
        """CREATE TABLE calls_v2 (
            request_id TEXT NOT NULL, position INTEGER NOT NULL, phone_number TEXT NOT NULL,
            variables TEXT NOT NULL, provider_call_id TEXT, outcome TEXT, provider_status TEXT,
            duration REAL, key_pressed TEXT, PRIMARY KEY (request_id, position))"""
    )
    db.execute(
        f"""INSERT INTO calls_v2 SELECT request_id, position, phone_number, variables,
            provider_call_id, {_V1_OUTCOME}, status, duration, key_pressed FROM calls"""
    )
    db.execute("DROP TABLE calls")
    db.execute("ALTER TABLE calls_v2 RENAME TO calls")

    db.execute(
        """CREATE TABLE callbacks_v2 (
            id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL,
            provider TEXT NOT NULL, provider_ref TEXT, request_id TEXT,
            outcome TEXT NOT NULL, source TEXT NOT NULL, body TEXT NOT NULL)"""
    )
    db.execute(
        """INSERT INTO callbacks_v2 SELECT id, received_at, 'intron', batch_id, request_id,
            outcome, source, body FROM callbacks"""
    )
    db.execute("DROP TABLE callbacks")
    db.execute("ALTER TABLE callbacks_v2 RENAME TO callbacks")

    db.execute(
        """CREATE TABLE workflows_v2 (
            id TEXT PRIMARY KEY, provider TEXT NOT NULL, name TEXT NOT NULL,
            data TEXT NOT NULL, fetched_at TEXT NOT NULL)"""
    )
    db.execute(
        f"INSERT INTO workflows_v2 SELECT id, 'intron', name, {_V1_WORKFLOW}, fetched_at "
        "FROM workflows"
    )
    db.execute("DROP TABLE workflows")
    db.execute("ALTER TABLE workflows_v2 RENAME TO workflows")
    db.execute(
        "UPDATE meta SET key = 'workflows_fetched_at:intron' WHERE key = 'workflows_fetched_at'"
    )

    db.execute(
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, lane TEXT NOT NULL,
            queue TEXT, dedupe TEXT, payload TEXT NOT NULL, run_at REAL NOT NULL,
            state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, leased_by TEXT,
            lease_until REAL, created_at REAL NOT NULL, last_error TEXT,
            held INTEGER NOT NULL DEFAULT 0)"""
    )
    db.execute("CREATE INDEX jobs_due ON jobs (lane, run_at) WHERE state = 'waiting'")
    db.execute("CREATE INDEX jobs_leased ON jobs (lane, lease_until) WHERE state = 'running'")
    db.execute("CREATE INDEX jobs_queue ON jobs (queue, id) WHERE queue IS NOT NULL")
    db.execute(
        "CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe) "
        "WHERE dedupe IS NOT NULL AND state IN ('waiting', 'behind')"
    )
    db.execute(
        """CREATE TABLE rate_slots (
            id INTEGER PRIMARY KEY AUTOINCREMENT, limiter TEXT NOT NULL, started REAL NOT NULL,
            ended REAL, owner TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX rate_slots_recent ON rate_slots (limiter, ended)")
    db.execute("CREATE TABLE rate_pauses (limiter TEXT PRIMARY KEY, until REAL NOT NULL)")
    # How many of a request's results messages are in its thread (they go one by one).
    db.execute("ALTER TABLE slack_messages ADD COLUMN results_posted INTEGER NOT NULL DEFAULT 0")

    # What the first release left open gets the jobs that finish it.
    for request_id, status in db.execute(
        "SELECT id, status FROM requests WHERE status IN "
        "('accepted', 'sending', 'placed', 'unknown') ORDER BY created_at"
    ).fetchall():
        if status in ("accepted", "sending"):
            _job(db, "request.place", "calls", {"request_id": request_id})
        else:
            _job(db, "request.reconcile", "results", {"request_id": request_id})
    for request_id, channel, kind, payload in db.execute(
        "SELECT request_id, channel, kind, payload FROM outbox WHERE failed IS NULL ORDER BY id"
    ).fetchall():
        message = json.loads(payload) if payload else None
        _job(
            db,
            "slack.post",
            "slack",
            {"request_id": request_id, "channel": channel, "what": kind, "message": message},
            queue=f"slack:{channel}",
        )
    db.execute("DROP TABLE outbox")
    if db.execute("SELECT 1 FROM requests LIMIT 1").fetchone():
        _job(db, "slack.catch_up", "slack", {})


def _job(db: Database, kind: str, lane: str, payload: dict, *, queue: str | None = None) -> None:
    """A job as the worker of step 2 reads it (see bot/store/jobs.py at that time)."""
    behind = (
        queue is not None
        and db.execute("SELECT 1 FROM jobs WHERE queue = ? LIMIT 1", [queue]).fetchone()
    )
    now = time.time()
    db.execute(
        "INSERT INTO jobs (kind, lane, queue, payload, run_at, state, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [kind, lane, queue, json.dumps(payload), now, "behind" if behind else "waiting", now],
    )


def _v3_request_parts(db: Database) -> None:
    """A request larger than one submission may carry is stored as parts, one request
    each, that know the whole they belong to."""
    db.execute("ALTER TABLE requests ADD COLUMN part_of TEXT")
    db.execute("ALTER TABLE requests ADD COLUMN part INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE requests ADD COLUMN parts INTEGER NOT NULL DEFAULT 1")
    db.execute("CREATE INDEX requests_part_of ON requests (part_of) WHERE part_of IS NOT NULL")


def _v4_pending_orders(db: Database) -> None:
    """Large sends wait here for their requester's confirmation, under an unguessable
    token (the Confirm button's value), until they expire."""
    db.execute(
        """CREATE TABLE pending_orders (
            token TEXT PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL,
            payload TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
            request_id TEXT)"""
    )
    db.execute("CREATE INDEX pending_orders_expiry ON pending_orders (expires_at)")


def _v5_scheduled_requests(db: Database) -> None:
    """A request may be scheduled (dialled at `scheduled_at`, cancellable until then);
    the Slack adapter keeps each requester's time zone, read with users.info, to read
    local times they type."""
    db.execute("ALTER TABLE requests ADD COLUMN scheduled_at TEXT")
    db.execute("ALTER TABLE requests ADD COLUMN cancelled_by TEXT")
    db.execute(
        """CREATE TABLE slack_user_zones (
            user_id TEXT PRIMARY KEY, tz TEXT, fetched_at REAL NOT NULL)"""
    )


def _v6_slack_user_phones(db: Database) -> None:
    """The Slack adapter keeps, for a short time, the phone number of a user's Slack
    profile (users.info), for recipients given as `@user`."""
    db.execute(
        """CREATE TABLE slack_user_phones (
            user_id TEXT PRIMARY KEY, phone TEXT NOT NULL, fetched_at REAL NOT NULL)"""
    )


def _v8_escalation_policies(db: Database) -> None:
    """Escalation policies (bot/core/policies.py), made in Slack (`source` 'slack') or
    kept as code (`source` 'file', replaced at every start); `data` is the policy as JSON.
    Names are unique whatever their case."""
    db.execute(
        """CREATE TABLE escalation_policies (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL,
            data TEXT NOT NULL, updated_at TEXT NOT NULL)"""
    )
    db.execute(
        "CREATE UNIQUE INDEX escalation_policies_name ON escalation_policies (name COLLATE NOCASE)"
    )


def _v9_escalations(db: Database) -> None:
    """Escalations being run (bot/core/escalation.py): one row each, with the policy as it
    was when it started (`policy`, JSON); one row per step called (`escalation_steps`,
    keyed by escalation, round and step, whose `state` is the compare-and-set that calls
    a step at most once), linked to the request that placed its call; and the Slack
    parent message of each. At most one running escalation per alert group."""
    db.execute(
        """CREATE TABLE escalations (
            id TEXT PRIMARY KEY, policy_id TEXT NOT NULL, policy_name TEXT NOT NULL,
            channel TEXT NOT NULL, message TEXT NOT NULL, status TEXT NOT NULL,
            started_by TEXT NOT NULL, source TEXT NOT NULL, group_key TEXT,
            test INTEGER NOT NULL DEFAULT 0, round INTEGER NOT NULL DEFAULT 0,
            step INTEGER NOT NULL DEFAULT 0, calling TEXT, started_at TEXT NOT NULL,
            ended_at TEXT, ended_by TEXT, policy TEXT NOT NULL)"""
    )
    db.execute(
        "CREATE UNIQUE INDEX escalations_running_group ON escalations (group_key) "
        "WHERE status = 'running' AND group_key IS NOT NULL"
    )
    db.execute("CREATE INDEX escalations_status ON escalations (status)")
    db.execute(
        """CREATE TABLE escalation_steps (
            escalation_id TEXT NOT NULL, round INTEGER NOT NULL, step INTEGER NOT NULL,
            call TEXT NOT NULL, state TEXT NOT NULL, phone TEXT, name TEXT,
            request_id TEXT, fallback_request_id TEXT, outcome TEXT, key_pressed TEXT,
            detail TEXT, started_at TEXT, ended_at TEXT, due_at REAL,
            PRIMARY KEY (escalation_id, round, step))"""
    )
    db.execute(
        "CREATE INDEX escalation_steps_request ON escalation_steps (request_id) "
        "WHERE request_id IS NOT NULL"
    )
    db.execute(
        "CREATE INDEX escalation_steps_fallback ON escalation_steps (fallback_request_id) "
        "WHERE fallback_request_id IS NOT NULL"
    )
    db.execute(
        """CREATE TABLE escalation_messages (
            escalation_id TEXT PRIMARY KEY, channel TEXT NOT NULL, ts TEXT)"""
    )


def _v7_calls_by_provider_call_id(db: Database) -> None:
    """A provider's per-call events (Intron direct's) name only the call's id: calls are
    found by it, and a batch's call ids are kept when its submit answers."""
    db.execute(
        "CREATE INDEX calls_provider_call_id ON calls (provider_call_id) "
        "WHERE provider_call_id IS NOT NULL"
    )


def _v10_consent(db: Database) -> None:
    """Calling responsibly (bot/core/consent.py): the opt-out list; each workflow's calling
    hours and press-9 option (a workflow kept at its provider comes back from a refresh
    without them); which request parts wait for their calling hours; and an index for
    counting a number's recent calls (the frequency cap)."""
    db.execute(
        """CREATE TABLE opt_outs (
            phone TEXT PRIMARY KEY, added_at TEXT NOT NULL, added_by TEXT NOT NULL,
            source TEXT NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE workflow_consent (
            workflow_id TEXT PRIMARY KEY, calling_hours TEXT,
            press_9_to_stop INTEGER NOT NULL DEFAULT 0)"""
    )
    db.execute(
        """CREATE TABLE consent_waits (
            request_id TEXT PRIMARY KEY, opens_at TEXT NOT NULL, why TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX calls_phone ON calls (phone_number)")


def _v11_campaigns(db: Database) -> None:
    """Campaigns (bot/store/campaigns.py): a campaign, its recipients (each with its
    chunk and its place in it) and its chunks, each placed as one request."""
    db.execute(
        """CREATE TABLE campaigns (
            id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            status TEXT NOT NULL, provider TEXT NOT NULL, workflow_id TEXT NOT NULL,
            workflow_name TEXT NOT NULL, voice TEXT, requested_by TEXT NOT NULL,
            channel TEXT, file_name TEXT, start_at TEXT, total INTEGER NOT NULL,
            chunk_size INTEGER NOT NULL, preview TEXT NOT NULL, parent_ts TEXT,
            shown_at REAL NOT NULL DEFAULT 0, again_of TEXT, finished_at TEXT,
            end_posted INTEGER NOT NULL DEFAULT 0, stopped_by TEXT, refused TEXT)"""
    )
    db.execute(
        """CREATE TABLE campaign_recipients (
            campaign_id TEXT NOT NULL, position INTEGER NOT NULL, line INTEGER NOT NULL,
            phone TEXT NOT NULL, variables TEXT NOT NULL, chunk INTEGER NOT NULL,
            slot INTEGER NOT NULL, skipped TEXT, PRIMARY KEY (campaign_id, position))"""
    )
    db.execute("CREATE INDEX campaign_recipients_chunk ON campaign_recipients (campaign_id, chunk)")
    db.execute(
        """CREATE TABLE campaign_chunks (
            campaign_id TEXT NOT NULL, chunk INTEGER NOT NULL, size INTEGER NOT NULL,
            state TEXT NOT NULL, request_id TEXT, attempt INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (campaign_id, chunk))"""
    )
    db.execute(
        "CREATE INDEX campaign_chunks_request ON campaign_chunks (request_id) "
        "WHERE request_id IS NOT NULL"
    )


def _v12_urgent_requests(db: Database) -> None:
    """Which requests ignore calling hours (an urgent escalation's), checked again just
    before the dial (bot/core/requests.py). Those an urgent policy ordered before this
    step are found through its escalation's policy, so they keep ignoring them."""
    db.execute("ALTER TABLE requests ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """UPDATE requests SET urgent = 1 WHERE source LIKE 'escalation%' AND id IN (
            SELECT s.request_id FROM escalation_steps s
              JOIN escalations e ON e.id = s.escalation_id
              WHERE json_extract(e.policy, '$.urgent') = 1 AND s.request_id IS NOT NULL
            UNION
            SELECT s.fallback_request_id FROM escalation_steps s
              JOIN escalations e ON e.id = s.escalation_id
              WHERE json_extract(e.policy, '$.urgent') = 1
              AND s.fallback_request_id IS NOT NULL)"""
    )


STEPS: dict[int, Callable[[Database], None]] = {
    1: _v1_first_release,
    2: _v2_providers_and_jobs,
    3: _v3_request_parts,
    4: _v4_pending_orders,
    5: _v5_scheduled_requests,
    6: _v6_slack_user_phones,
    7: _v7_calls_by_provider_call_id,
    8: _v8_escalation_policies,
    9: _v9_escalations,
    10: _v10_consent,
    11: _v11_campaigns,
    12: _v12_urgent_requests,
}
