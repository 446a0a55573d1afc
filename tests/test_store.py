"""The store's and the core's promises that the end-to-end tests cannot easily provoke."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.core.jobs import Jobs
from bot.core.models import CallRecord, RequestRecord, RequestStatus, now_iso
from bot.core.providers import Providers
from bot.core.requests import CallbackOutcome, CallService
from bot.core.workflows import WorkflowService
from bot.providers.base import CallOutcome, CallUpdate
from bot.store import Store


class _NoProvider:
    id = "intron"
    sandbox = True


def a_request(store: Store) -> RequestRecord:
    now = now_iso()
    record = RequestRecord(
        id="rq-1",
        created_at=now,
        updated_at=now,
        status=RequestStatus.PLACED,
        provider="intron",
        workflow_id="wf",
        workflow_name="Alert",
        requested_by="U1",
        channel="C1",
        source="test",
        recipient_count=2,
        provider_ref="b1",
    )
    calls = [
        CallRecord(request_id="rq-1", position=p, phone_number=f"+23480312345{p}1", variables={})
        for p in (1, 2)
    ]
    store.requests.add(record, calls)
    return record


def service(store: Store) -> CallService:
    providers = Providers({"intron": _NoProvider()})  # type: ignore[dict-item]
    return CallService(store, Jobs(store.jobs), providers, WorkflowService(store, providers))


ANSWERED = [
    CallUpdate(CallOutcome.ANSWERED, "COMPLETED", position=1, duration=30, key_pressed="1"),
    CallUpdate(CallOutcome.NO_ANSWER, "TIMEOUT", position=2),
]


def test_completing_a_request_is_all_or_nothing(tmp_path: Path) -> None:
    """A failure while completing leaves the request and its calls as they were, so the
    callback, applied again, is applied in full instead of taken for a duplicate."""
    store = Store(tmp_path / "robocall.db")
    record = a_request(store)
    core = service(store)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    core.store.audit.record = disk_full  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        core.record_updates(record, ANSWERED, final=True)
    again = Store(tmp_path / "robocall.db")  # what another connection (a restart) sees
    assert again.requests.get("rq-1").status == RequestStatus.PLACED
    assert [c.outcome for c in again.requests.calls("rq-1")] == [None, None]
    assert service(again).record_updates(record, ANSWERED, final=True) == CallbackOutcome.APPLIED
    assert again.requests.calls("rq-1")[0].key_pressed == "1"
    assert again.requests.get("rq-1").status == RequestStatus.COMPLETED


def test_a_late_progress_report_never_undoes_an_outcome(tmp_path: Path) -> None:
    store = Store(tmp_path / "robocall.db")
    record = a_request(store)
    core = service(store)
    first = [CallUpdate(CallOutcome.ANSWERED, "COMPLETED", position=1, duration=30)]
    assert core.record_updates(record, first, final=False) == CallbackOutcome.PROGRESS
    late = [CallUpdate(CallOutcome.QUEUED, "QUEUED", position=1)]
    assert core.record_updates(record, late, final=False) == CallbackOutcome.PROGRESS
    assert store.requests.calls("rq-1")[0].outcome == CallOutcome.ANSWERED
    assert store.requests.get("rq-1").status == RequestStatus.PLACED  # call 2 is still open
    second = [CallUpdate(CallOutcome.BUSY, "BUSY", phone="+2348031234521")]  # by number
    assert core.record_updates(record, second, final=False) == CallbackOutcome.APPLIED
    stats = store.requests.stats("rq-1")
    assert (stats.answered, stats.busy, stats.not_answered, stats.pending) == (1, 1, 1, 0)
    assert core.record_updates(record, first, final=True) == CallbackOutcome.DUPLICATE


def test_a_resubmitted_order_is_one_request(tmp_path: Path) -> None:
    store = Store(tmp_path / "robocall.db")
    record = a_request(store).model_copy(
        update={"id": "rq-2", "idempotency_key": "view:V1", "provider_ref": None}
    )
    first, created = store.requests.add(record, [])
    again, created_again = store.requests.add(record.model_copy(update={"id": "rq-3"}), [])
    assert created and not created_again and again.id == first.id == "rq-2"
