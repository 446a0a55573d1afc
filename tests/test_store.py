"""The store's promises that the end-to-end tests cannot easily provoke."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.intron.models import CompletionCallback
from bot.store import CallRecord, RequestRecord, RequestStatus, Store, now_iso


def a_request(store: Store) -> RequestRecord:
    now = now_iso()
    record = RequestRecord(
        id="rq-1",
        created_at=now,
        updated_at=now,
        status=RequestStatus.PLACED,
        workflow_id="wf",
        workflow_name="Alert",
        requested_by="U1",
        channel="C1",
        source="test",
        recipient_count=2,
        batch_id="b1",
    )
    calls = [
        CallRecord(request_id="rq-1", position=p, phone_number=f"+23480312345{p}1", variables={})
        for p in (1, 2)
    ]
    store.add_request(record, {"workflow_id": "wf"}, calls)
    return record


def test_completing_a_request_is_all_or_nothing(tmp_path: Path) -> None:
    """A failure while writing the calls' results leaves the request as it was, so the
    callback, resent, is applied in full instead of being taken for a duplicate."""
    store = Store(tmp_path / "robocall.db")
    record = a_request(store)
    callback = CompletionCallback(request_id="b1", status="COMPLETED")
    results = {
        1: {"provider_call_id": "c1", "status": "COMPLETED", "duration": 30, "key_pressed": "1"}
    }

    def disk_full(request_id: str, results: dict) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    store._store_results = disk_full  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        store.complete(record, callback, results)
    again = Store(tmp_path / "robocall.db")  # what another connection (a restart) sees
    assert again.request("rq-1").status == RequestStatus.PLACED
    assert again.complete(record, callback, results) is not None
    assert again.calls("rq-1")[0].key_pressed == "1"


def test_delivered_slack_work_is_forgotten_and_failed_work_kept(tmp_path: Path) -> None:
    from bot.store import OutboxItem

    store = Store(tmp_path / "robocall.db")
    a_request(store)
    store.enqueue(
        [
            OutboxItem(request_id="rq-1", channel="C1", kind="parent"),
            OutboxItem(request_id="rq-1", channel="C1", kind="edit"),
        ]
    )
    first, second = store.pending_outbox()
    store.outbox_done(first.id)
    store.outbox_done(second.id, failed="channel_not_found")
    assert store.pending_outbox() == []
    rows = list(store.db.query("SELECT kind, failed FROM outbox"))
    assert rows == [{"kind": "edit", "failed": "channel_not_found"}]
