"""Intron's management quota (6 a minute, 60 an hour) is one quota for every process and
survives restarts, and reconciliation never takes the part of it that people need."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.models import RequestStatus
from bot.providers.intron.client import DEFAULT_MANAGEMENT_WINDOWS
from bot.providers.intron.models import WorkflowCreate
from bot.slack.ids import ActionId
from tests.conftest import start_sandbox
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.test_slack_app import command
from tests.test_workflows_slack import from_message

REAL_QUOTA = {"intron_management_per_minute": 6, "intron_management_per_hour": 60}

pytestmark = pytest.mark.slow


async def test_restarting_twice_within_a_minute_draws_no_429(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    box = await start_sandbox(management_windows=DEFAULT_MANAGEMENT_WINDOWS)
    app = Harness(tmp_path, fake_slack, box, overrides=REAL_QUOTA)
    try:
        await app.start()  # the worker lists the workflows: 1 of this minute's 6
        for round_ in range(3):
            for _ in range(3):
                await from_message(app, ActionId.WORKFLOWS_REFRESH, "1")
            await app.settled()
            if round_ < 2:
                await app.restart()  # a new web process and worker: the quota is remembered
        answers = [r.all_text() for r in fake_slack.responses()]
        assert sum("Refreshed just now" in a for a in answers) >= 4
        told = [a for a in answers if "possible again in" in a]
        assert told, "someone must have been told when to try again"
        assert box.state.rate_limited == {}  # Intron never had to refuse one
        assert box.state.requests_seen["list_workflows"] <= 6
    finally:
        await app.stop()
        await box.server.stop()


async def test_reconciliation_leaves_a_third_of_the_quota_to_people(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Eight requests whose results are lost, all due to be looked up at once: the
    lookups take 4 of the minute's 6 requests and wait for the rest; a person's two
    clicks still go through at once."""
    box = await start_sandbox(management_windows=DEFAULT_MANAGEMENT_WINDOWS, callback_delay=60)
    box.state.workflows["wf-alert"] = {  # put there directly: no request the quota counts
        "id": "wf-alert",
        "name": "Alert",
        "message": "Down",
        "workflow_type": "ROBOCALL",
        "include_reply": False,
        "response_options": None,
        "call_back_url": None,
    }
    app = Harness(tmp_path, fake_slack, box, overrides=REAL_QUOTA | {"reconcile_after": 0.3})
    try:
        await app.start()  # 1 request: the list at start
        for n in range(8):
            await command(app, f"call Alert +2348031{n:06d}")
        store = app.store
        await app.wait_until(
            lambda: len(store.requests.with_status(RequestStatus.PLACED)) == 8, timeout=10
        )
        await app.wait_until(
            lambda: box.state.requests_seen.get("list_workflow_calls", 0) >= 3, timeout=10
        )
        await asyncio.sleep(1.0)  # the lookups are now held back by their share
        lookups = box.state.requests_seen["list_workflow_calls"]
        assert lookups == 3, "1 list + 3 lookups: two thirds of 6 (4), leaving 2"
        for _ in range(2):
            await from_message(app, ActionId.WORKFLOWS_REFRESH, "1")
        answers = await fake_slack.wait_for(lambda f: len(f.responses()) >= 2 and f.responses())
        assert all("Refreshed just now" in a.all_text() for a in answers)
        assert box.state.rate_limited == {}
    finally:
        await app.stop()
        await box.server.stop()


async def test_a_lost_batch_is_read_page_by_page_until_its_end(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """A request of 250 calls whose callback never comes: the listing is read a page at
    a time (100 calls each), and the request completes from it."""
    box = await start_sandbox(callback_delay=0.1)
    # 250 people at once, sent without the confirmation (tested elsewhere) in between.
    overrides = {"reconcile_after": 0.3, "confirm_above": 250}
    app = Harness(tmp_path, fake_slack, box, overrides=overrides)
    try:
        await app.start()
        box.state.config.callback_attempts = 0  # the callback is lost
        await app.create_workflow(WorkflowCreate(name="Notice", message="Notice"))
        numbers = " ".join(f"+23480{3100000 + n:07d}1" for n in range(250))
        assert "accepted" in (await command(app, f"call Notice {numbers}")).text
        record = await app.wait_until(
            lambda: (
                (r := app.store.requests.recent(1))
                and r[0].status == RequestStatus.COMPLETED
                and r[0]
            ),
            timeout=20,
        )
        assert app.store.requests.stats(record.id).total == 250
        assert box.state.requests_seen["list_workflow_calls"] >= 3  # pages 1, 2 and 3
    finally:
        await app.stop()
        await box.server.stop()
