"""A campaign survives SIGKILL: the real processes (`python -m bot serve` and `python -m
bot worker`), a campaign of 60 recipients uploaded through the signed *New campaign*
submission and sent with a signed click, the worker killed mid-campaign — once at a
random moment, once by the failpoint `campaign.chunk_placed` (the pump's chunks stored
as requests, none sent yet) — then started again on the same database. Counted at the
sandbox: everyone called exactly once; in the channel: the summary, the chart and the
results CSV posted once."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.providers.intron.models import WorkflowCreate
from bot.slack.campaigns.views import CampaignModalContext
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.store import Store
from tests.conftest import Sandbox, make_client
from tests.harness import CALLBACK_TOKEN, SIGNING_SECRET, free_port
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import SlackRequester
from tests.test_crash_safety import AppProcesses

pytestmark = pytest.mark.slow

PEOPLE = [f"+2348032{i:06d}" for i in range(60)]  # last digit: 0 no answer, 1 key 1…
REMINDER = WorkflowCreate(
    name="Campaign reminder",
    message="Hello [name], this is a reminder. Press 1 to confirm.",
    include_reply=True,
    response_options={"1": "Confirm"},
)


@pytest.fixture
async def processes(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[AppProcesses]:
    sandbox.state.config.callback_backoff = 0.3  # retry callbacks while the app is down
    sandbox.state.config.callback_delay = 1.0  # results come after the kill
    port = free_port()
    async with make_client(sandbox.url) as client:
        created = await client.create_workflow(
            REMINDER.model_copy(
                update={
                    "call_back_url": f"http://127.0.0.1:{port}/callbacks/intron/{CALLBACK_TOKEN}"
                }
            )
        )
    app = AppProcesses(tmp_path, fake_slack, sandbox, port)
    app.workflow_id = created.id  # type: ignore[attr-defined]
    app.extra_env = {
        "INTRON_CALLS_PER_SECOND": "1",  # 3 chunks of 25, 25, 10: one a second
        "CALLING_HOURS": "00:00-24:00",
        "CALLS_PER_DAY_CAP": "0",
    }
    yield app
    await app.kill_all()


async def start_campaign(app: AppProcesses) -> str:
    """Upload the sheet through the modal, wait for the preview in the DM, click Send."""
    rows = ["phone,name"] + [f"{p},Person {i}" for i, p in enumerate(PEOPLE, start=1)]
    hosted = app.fake.add_file(("\n".join(rows) + "\n").encode(), "people.csv")
    values = {
        BlockId.CAMPAIGN_FILE: {
            ActionId.CAMPAIGN_FILE_INPUT: {
                "type": "file_input",
                "files": [{"id": hosted.id, "name": "people.csv"}],
            }
        },
        BlockId.CAMPAIGN_WORKFLOW: {
            ActionId.CAMPAIGN_WORKFLOW_SELECT: {
                "type": "static_select",
                "selected_option": {"value": app.workflow_id},  # type: ignore[attr-defined]
            }
        },
    }
    meta = CampaignModalContext(user_id="U1", channel_id="C1").model_dump_json()
    async with SlackRequester(app.url, SIGNING_SECRET, fake=app.fake) as slack:
        answer = await slack.submit_view(
            CallbackId.CAMPAIGN_NEW, values, private_metadata=meta, view_id="VCRASH0001"
        )
        assert answer.status_code == 200, answer.text
        [shown] = await app.fake.wait_for(
            lambda f: [m for m in f.messages("U1") if "Campaign preview" in m.all_text()],
            timeout=15,
        )
        [button] = [
            e
            for b in shown.params["blocks"]
            for e in b.get("elements") or []
            if e.get("action_id") == ActionId.CAMPAIGN_SEND
        ]
        clicked = await slack.action(
            ActionId.CAMPAIGN_SEND,
            button["value"],
            channel_id="U1",
            message_ts=shown.params.get("ts") or "1.0",
        )
        assert clicked.status_code == 200, clicked.text
    return button["value"]


async def wait_db(app: AppProcesses, check, timeout: float = 30.0):
    async with asyncio.timeout(timeout):
        while True:
            store = Store(app.db)
            try:
                if found := check(store):
                    return found
            finally:
                store.close()
            await asyncio.sleep(0.05)


async def assert_everyone_once_and_the_end_once(app: AppProcesses, campaign_id: str) -> None:
    campaign = await wait_db(
        app, lambda s: (c := s.campaigns.get(campaign_id)) and c["end_posted"] >= 3 and c
    )
    assert campaign["status"] == "completed"
    called = app.box.state.numbers_called()
    assert called == {p: 1 for p in PEOPLE}, f"not everyone once: {called}"
    ts = campaign["parent_ts"]
    await asyncio.sleep(0.5)  # a repeat would come now
    thread = app.fake.thread("C1", ts)
    assert len([m for m in thread if "answered" in m.all_text() and "of 60" in m.all_text()]) == 1
    files = app.fake.files("C1", ts)
    assert [f.filename.rsplit(".", 1)[-1] for f in files] == ["png", "csv"], files
    rows = list(csv.DictReader(io.StringIO(files[-1].text.lstrip("\ufeff"))))
    assert len(rows) == 60 and all(r["outcome"] for r in rows)
    parents = [
        m
        for m in app.fake.messages("C1")
        if not m.params.get("thread_ts") and campaign_id in m.all_text()
    ]
    assert len(parents) == 1


async def test_the_worker_killed_at_a_random_moment_mid_campaign(processes: AppProcesses) -> None:
    seed = random.randrange(1_000_000)
    delay = random.Random(seed).uniform(0.3, 2.5)  # placing, sending, calling: not the end
    print(f"seed {seed}: killed {delay:.2f} s after Send")
    await processes.start()
    campaign_id = await start_campaign(processes)
    await asyncio.sleep(delay)
    await processes.kill_workers()
    store = Store(processes.db)
    try:
        assert store.campaigns.get(campaign_id)["end_posted"] == 0, "killed too late"
    finally:
        store.close()
    await processes.start()
    await assert_everyone_once_and_the_end_once(processes, campaign_id)


async def test_the_worker_killed_between_a_chunk_stored_and_sent(processes: AppProcesses) -> None:
    await processes.start(failpoints="campaign.chunk_placed")
    campaign_id = await start_campaign(processes)
    async with asyncio.timeout(20):
        await processes.workers[0].wait()  # it killed itself at the point
    store = Store(processes.db)
    try:
        counts = store.campaigns.counts(campaign_id)
        assert counts.placed >= 1 and counts.queued == counts.placed  # stored, none sent
    finally:
        store.close()
    assert processes.box.state.numbers_called() == {}
    await processes.kill_workers()
    await processes.start()
    await assert_everyone_once_and_the_end_once(processes, campaign_id)
