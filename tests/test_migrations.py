"""A database written by the first release (tests/data/v1_database.sql, see its README)
upgrades in place: every request, result, workflow and audit row is kept, and what it
left unfinished is finished by the new worker."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bot.core.models import RequestStatus
from bot.providers.base import CallOutcome
from bot.store import Store
from bot.store.migrations import STEPS
from bot.store.slack import SlackStore
from tests.conftest import Sandbox
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack

V1 = Path(__file__).parent / "data" / "v1_database.sql"
COMPLETED, FAILED, PLACED = "rq-47d010de743d", "rq-c80d2cfc7757", "rq-31b1613d8ee0"
UNKNOWN, ACCEPTED, SENDING = "rq-c6cbb9ae0a13", "rq-955183b9327e", "rq-c4d2ff3802fa"
REMINDER = "6dc880fe-a21f-4ddb-af98-b38235711a1b"
ALERT = "f7797efb-b021-4d89-a7a8-e3cbbb78d3a2"


def v1_database(folder: Path) -> Path:
    path = folder / "robocall.db"
    connection = sqlite3.connect(path)
    connection.executescript(V1.read_text())
    connection.close()
    return path


def test_a_first_release_database_keeps_everything(tmp_path: Path) -> None:
    store = Store(v1_database(tmp_path))
    assert store.db.schema_version() == max(STEPS)
    statuses = {r.id: r.status for r in store.requests.recent(100)}
    assert statuses == {
        COMPLETED: RequestStatus.COMPLETED,
        FAILED: RequestStatus.FAILED,
        PLACED: RequestStatus.PLACED,
        UNKNOWN: RequestStatus.UNKNOWN,
        ACCEPTED: RequestStatus.ACCEPTED,
        SENDING: RequestStatus.SENDING,
    }
    done = store.requests.get(COMPLETED)
    assert done is not None and done.provider == "intron"
    assert done.provider_ref == "af229225-6bee-42d5-a169-1842bb80ee69"
    assert done.voice == "yoruba/female" and done.idempotency_key == "view:VSEND1"
    calls = store.requests.calls(COMPLETED)
    assert [(c.phone_number, c.outcome, c.key_pressed) for c in calls] == [
        ("+2348031234561", CallOutcome.ANSWERED, "1"),
        ("+2348031234562", CallOutcome.ANSWERED, "2"),
        ("+2348031234560", CallOutcome.NO_ANSWER, None),
    ]
    assert [c.provider_status for c in calls] == ["COMPLETED", "COMPLETED", "TIMEOUT"]
    assert calls[0].variables == {"name": "Ada", "date": "12 May"}
    stats = store.requests.stats(COMPLETED)  # figures from the calls, as before
    assert (stats.total, stats.answered, stats.no_answer, stats.keys) == (3, 2, 1, {"1": 1, "2": 1})
    assert stats.success_rate == 66.7 and stats.avg_duration == 22.5
    assert "refused our API key" in (store.requests.get(FAILED).error or "")
    assert store.requests.get(PLACED).provider_ref == "2d51add5-6159-4ebd-8457-5990cf82e0ce"

    reminder = store.workflows.get(REMINDER)
    assert reminder is not None and reminder.keypad == {"1": "Confirm", "2": "Cancel"}
    assert reminder.message == "Hello [name], see you on [date]." and reminder.kind == "robocall"
    assert store.workflows.get(ALERT).keypad == {}
    assert store.workflows.fetched_at("intron") is not None

    [callback] = store.requests.callback_log()
    assert callback["provider"] == "intron" and callback["request_id"] == COMPLETED
    assert len(store.audit.trail()) == 11
    assert store.meta.get("callback_token") == "XMp07cddAr_bE8nMHLCrgCWwlxW_KM4M"
    slack = SlackStore(store.db)
    assert slack.message(COMPLETED).ts == "1700000000.000100"
    assert slack.message(COMPLETED).results_queued
    assert not slack.first_sighting("EvV1HOME0001")  # Slack's retry still acted on once
    assert slack.home_viewers(24 * 365 * 100, 10) == [("U1", True)]

    jobs = store.jobs.pending()
    assert sorted((j.kind, j.payload.get("request_id")) for j in jobs) == sorted(
        [
            ("request.place", ACCEPTED),
            ("request.place", SENDING),
            ("request.reconcile", PLACED),
            ("request.reconcile", UNKNOWN),
            ("slack.post", UNKNOWN),
            ("slack.post", UNKNOWN),
            ("slack.catch_up", None),
        ]
    )
    posts = [j for j in jobs if j.kind == "slack.post"]
    assert [j.payload["what"] for j in posts] == ["parent", "reply"]  # in their order
    assert "Check with `/robocall status rq-c6cbb9ae0a13`" in json.dumps(posts[1].payload)
    assert "outbox" not in store.db.db.table_names()
    store.close()
    # Opened again, nothing runs twice.
    again = Store(tmp_path / "robocall.db")
    assert len(again.jobs.pending()) == len(jobs)
    again.close()


@pytest.mark.slow
async def test_the_new_worker_finishes_what_the_first_release_left(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    v1_database(tmp_path)
    for workflow_id, name, message, options in (
        (REMINDER, "Reminder", "Hello [name], see you on [date].", {"1": "Confirm", "2": "Cancel"}),
        (ALERT, "Alert", "Alert for [name]", None),
    ):
        sandbox.state.workflows[workflow_id] = {
            "id": workflow_id,
            "name": name,
            "message": message,
            "workflow_type": "ROBOCALL",
            "include_reply": options is not None,
            "response_options": options,
            "call_back_url": None,
        }
    harness = Harness(tmp_path, fake_slack, sandbox, overrides={"reconcile_after": 0.5})
    await harness.start()
    try:
        store = harness.store
        # The accepted request is sent, once; the one being sent is not resent.
        await harness.wait_until(
            lambda: store.requests.get(ACCEPTED).status == RequestStatus.COMPLETED, timeout=10
        )
        assert sandbox.state.numbers_called() == {"+2348031234566": 1, "+2348031234567": 1}
        # Sending and unknown: looked up, not found, so certainly nobody was called.
        await harness.wait_until(
            lambda: (
                store.requests.get(SENDING).status == RequestStatus.FAILED
                and store.requests.get(UNKNOWN).status == RequestStatus.FAILED
            ),
            timeout=10,
        )
        assert "safe to send it again" in (store.requests.get(SENDING).error or "")
        await harness.settled()
        fake = harness.fake
        # The unknown one's pending parent and reply went out, in order, then its update.
        unknown_ts = await harness.parent_ts(UNKNOWN)
        thread = fake.thread("C1", unknown_ts)
        assert "Check with `/robocall status rq-c6cbb9ae0a13`" in thread[0].all_text()
        assert "safe to send it again" in thread[-1].all_text()
        # The two the first release never showed now have a parent each, and results.
        for request_id in (ACCEPTED, SENDING):
            shown = harness.slack_store.message(request_id)
            assert shown is not None and shown.ts is not None
        accepted_thread = fake.thread("C1", harness.slack_store.message(ACCEPTED).ts)
        assert any("Results for Reminder" in m.all_text() for m in accepted_thread)
        # The completed request's results are not posted again.
        assert not [m for m in fake.messages("C1") if COMPLETED in m.all_text()]
    finally:
        await harness.stop()
