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
from bot.intron.validation import RECIPIENT_TAG, REFERENCE_TAG
from bot.providers.intron.models import CompletionCallback, Workflow
from bot.providers.intron.sandbox.outcomes import outcome_for
from bot.providers.intron.sandbox.server import INTEGRATOR_ID, Batch, SimCall
from bot.store import CallRecord, RequestRecord, RequestStatus, SlackMessage, Store

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
USERS = 50  # requesters the seeded requests are spread over
# The flag saying a request's results are in Slack already (`results_posted`, lately
# `results_queued`): set whatever it is called, or the app posts them all at start.
RESULTS_SENT = {name: True for name in SlackMessage.model_fields if name.startswith("results_")}


@dataclass(frozen=True)
class Seeded:
    """One stored request: our id, Intron's batch id, and where Slack shows it."""

    index: int
    id: str
    batch_id: str
    channel: str
    ts: str
    requested_by: str
    numbers: tuple[str, ...]


def seeded(index: int, calls_each: int, channels: int) -> Seeded:
    """The index-th request, the same every run."""
    return Seeded(
        index=index,
        id=f"rq-{index:012x}",
        batch_id=str(uuid.UUID(int=(0xBE7C << 112) | index)),
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
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        requested_by=request.requested_by,
        channel=request.channel,
        source="bench",
        recipient_count=calls_each,
        batch_id=request.provider_ref,
    )
    params = [
        {
            "phone_number": phone,
            "workflow_variables": {"name": "Ada"},
            "user_tag_identifiers": {REFERENCE_TAG: request.id, RECIPIENT_TAG: str(position)},
        }
        for position, phone in enumerate(request.numbers, start=1)
    ]
    calls = [
        CallRecord(
            request_id=request.id, position=position, phone_number=phone, variables={"name": "Ada"}
        )
        for position, phone in enumerate(request.numbers, start=1)
    ]
    store.add_request(record, {"workflow_id": workflow.id, "workflow_params": params}, calls)
    if completed:
        _complete(store, record, request, workflow)
    # Written once, after the results: the store may never overwrite this row.
    flags = RESULTS_SENT if completed else {}
    _track_message(
        store, SlackMessage(request_id=request.id, channel=request.channel, ts=request.ts, **flags)
    )
    return request


def _track_message(store: Store, message: SlackMessage) -> None:
    """Store where Slack shows the request (`add_slack_message`, formerly
    `save_slack_message`: the store is changing under us)."""
    add = getattr(store, "add_slack_message", None) or store.save_slack_message
    add(message)


def _complete(store: Store, record: RequestRecord, request: Seeded, workflow: Workflow) -> None:
    """Apply the request's callback as the app would."""
    raw = callback_body(request, workflow)
    callback = CompletionCallback.model_validate_json(raw)
    results = {
        int(call.user_tag_identifiers[RECIPIENT_TAG]): {
            "provider_call_id": call.id,
            "status": call.status,
            "duration": call.call_result_duration,
            "key_pressed": call.call_result_options_selected,
        }
        for call in callback.request_calls
    }
    store.complete(record, callback, results)
    store.log_callback(raw.decode(), "applied", request.provider_ref, request.id)


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
