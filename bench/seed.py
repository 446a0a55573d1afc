"""Requests stored straight into an app's SQLite file through `bot.store.Store`, before
the app starts, and the completion callbacks Intron would send for them.

Callbacks are built with the sandbox's own classes (`Batch`, `SimCall`, the
outcome table), so they have exactly the shape the sandbox sends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stack import number
from bot.core.models import CallRecord, RequestRecord, RequestStatus
from bot.providers.intron.models import Workflow
from bot.providers.intron.provider import RECIPIENT_TAG, REFERENCE_TAG, read_callback
from bot.providers.intron.sandbox.outcomes import outcome_for
from bot.providers.intron.sandbox.server import INTEGRATOR_ID, Batch, SimCall
from bot.store import Store
from bot.store.slack import SlackMessage, SlackStore

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
USERS = 50  # requesters the seeded requests are spread over


@dataclass(frozen=True)
class Seeded:
    """One stored request: our id, Intron's batch id, and where Slack shows it."""

    index: int
    id: str
    provider_ref: str
    channel: str
    ts: str
    requested_by: str
    numbers: tuple[str, ...]


def seeded(index: int, calls_each: int, channels: int) -> Seeded:
    """The index-th request, the same every run."""
    return Seeded(
        index=index,
        id=f"rq-{index:012x}",
        provider_ref=str(uuid.UUID(int=(0xBE7C << 112) | index)),
        channel=f"C{index % channels:08d}",
        ts=f"1700000000.{index:06d}",
        requested_by=f"U{index % USERS:08d}",
        numbers=tuple(number(index * calls_each + k) for k in range(calls_each)),
    )


def seed(
    database: Path,
    workflow: Workflow,
    indexes: range,
    *,
    calls_each: int,
    channels: int,
    completed: bool = False,
) -> list[Seeded]:
    """Store one request per index (placed, or completed with its callback applied and
    logged), each with a Slack message; return what was stored."""
    store = Store(database)
    # Seeding only: losing this file in a power cut would not matter.
    store.db.execute("PRAGMA synchronous = OFF")
    try:
        return [_seed_one(store, workflow, i, calls_each, channels, completed) for i in indexes]
    finally:
        store.close()


def _seed_one(
    store: Store, workflow: Workflow, index: int, calls_each: int, channels: int, completed: bool
) -> Seeded:
    request = seeded(index, calls_each, channels)
    at = (EPOCH + timedelta(seconds=index)).isoformat(timespec="milliseconds")
    record = RequestRecord(
        id=request.id,
        created_at=at,
        updated_at=at,
        status=RequestStatus.PLACED,
        provider="intron",
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        requested_by=request.requested_by,
        channel=request.channel,
        source="bench",
        recipient_count=calls_each,
        provider_ref=request.provider_ref,
    )
    calls = [
        CallRecord(
            request_id=request.id, position=position, phone_number=phone, variables={"name": "Ada"}
        )
        for position, phone in enumerate(request.numbers, start=1)
    ]
    with store.write():
        store.requests.add(record, calls)
        if completed:
            _complete(store, record, request, workflow)
        SlackStore(store.db).add_message(
            SlackMessage(
                request_id=request.id,
                channel=request.channel,
                ts=request.ts,
                results_queued=completed,
            )
        )
    return request


def _complete(store: Store, record: RequestRecord, request: Seeded, workflow: Workflow) -> None:
    """Apply the request's callback as the worker would (the provider reads it)."""
    raw = callback_body(request, workflow)
    report = read_callback(raw)
    results = {
        u.position: {
            "provider_call_id": u.provider_call_id,
            "outcome": u.outcome,
            "provider_status": u.provider_status,
            "duration": u.duration,
            "key_pressed": u.key_pressed,
        }
        for u in report.updates
    }
    store.requests.record_results(record.id, results)
    store.requests.transition(record.id, [RequestStatus.PLACED], RequestStatus.COMPLETED)
    store.requests.keep_stats(record.id)
    store.requests.log_callback(
        provider="intron",
        body=raw.decode(),
        outcome="applied",
        ref=request.provider_ref,
        request_id=request.id,
        source="callback",
    )


def callback_payload(request: Seeded, workflow: Workflow) -> dict[str, Any]:
    """The completion callback the sandbox would send for `request` (seed 002's shape)."""
    at = EPOCH.strftime("%Y-%m-%dT%H:%M:%S.%f")
    calls = [
        SimCall(
            id=str(uuid.UUID(int=(0xCA11 << 112) | (request.index << 16) | position)),
            batch_id=request.provider_ref,
            workflow_id=workflow.id,
            phone_number=phone,
            workflow_variables={"name": "Ada"},
            user_tag_identifiers={REFERENCE_TAG: request.id, RECIPIENT_TAG: str(position)},
            created_at=at,
        )
        for position, phone in enumerate(request.numbers, start=1)
    ]
    digits = frozenset(workflow.response_options or {}) if workflow.include_reply else frozenset()
    for call in calls:
        outcome = outcome_for(call.phone_number, digits)
        call.status, call.key_pressed, call.duration = (
            outcome.status,
            outcome.key_pressed,
            outcome.duration,
        )
    batch = Batch(id=request.provider_ref, workflow_id=workflow.id, created_at=at, calls=calls)
    return {
        "request_id": batch.id,
        "status": "COMPLETED",
        "integrator_id": INTEGRATOR_ID,
        "stats": batch.stats(),
        "request_calls": [
            {k: v for k, v in call.as_json().items() if k != "batch_id"} for call in calls
        ],
    }


def callback_body(request: Seeded, workflow: Workflow) -> bytes:
    """`callback_payload` as the JSON bytes that are POSTed."""
    return json.dumps(callback_payload(request, workflow)).encode()


def chunks(items: list[Seeded], size: int) -> Iterator[list[Seeded]]:
    """Consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
