"""Campaigns, the reviewer's findings: Pause holds the chunks waiting for their calling
hours, waiting calls count as in flight, a chunk failing as a whole pauses the campaign
(and Call again has those never dialled), a calling rule's refusal keeps its sentence,
the parent refused by Slack goes to the requester's DM, and the one Slack download."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import app as bot_app
from bot.core import campaigns as core_campaigns
from bot.core.campaigns import Pace
from bot.providers.intron.sandbox import Fault
from bot.slack import files
from bot.slack.campaigns import jobs as campaign_jobs
from bot.slack.ids import ActionId
from tests.conftest import Sandbox
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.test_campaigns import (
    DM,
    REMINDER,
    click,
    csv_rows,
    end_files,
    finished,
    numbers,
    preview,
    send,
    sheet,
    submit,
)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaign_jobs, "EDIT_EVERY", 1.0)


def requests_of(harness: Harness, campaign_id: str) -> list[dict]:
    return harness.store.db.query(
        "SELECT r.id, r.status, r.part_of FROM campaign_chunks k JOIN requests r "
        "ON r.id = k.request_id OR r.part_of = k.request_id WHERE k.campaign_id = ?",
        [campaign_id],
    )


async def parent_ts(harness: Harness, campaign_id: str) -> str:
    campaign = await harness.wait_until(
        lambda: (c := harness.store.campaigns.get(campaign_id)) and c["parent_ts"] and c
    )
    return campaign["parent_ts"]


# ---------------------------------------------------------------- calling hours


@pytest.fixture
async def night(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> AsyncIterator[Harness]:
    """Calling hours closed in Lagos now: the window opens in two hours."""
    lagos = datetime.now(UTC).astimezone(ZoneInfo("Africa/Lagos"))
    opens = lagos + timedelta(hours=2)
    closes = opens + timedelta(hours=1)
    app = Harness(
        tmp_path, fake_slack, sandbox, overrides={"calling_hours": f"{opens:%H}:00-{closes:%H}:00"}
    )
    await app.start()
    yield app
    await app.stop()


async def test_pause_takes_back_chunks_waiting_for_their_calling_hours_and_resume_puts_them_back(
    night: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    workflow = await night.create_workflow(REMINDER)
    await submit(night, sheet(numbers(4)), "list.csv", workflow)
    campaign_id = await send(night, await preview(night))
    await night.wait_until(lambda: night.store.campaigns.counts(campaign_id).placed == 2)
    counts = night.store.campaigns.counts(campaign_id)
    assert counts.waiting_hours == 4
    # Waiting calls count as in flight: at their opening they are all dialled at once.
    assert counts.open_calls == 4
    ts = await parent_ts(night, campaign_id)

    await click(night, ActionId.CAMPAIGN_PAUSE, campaign_id, channel="C1", ts=ts)
    counts = await night.wait_until(
        lambda: (c := night.store.campaigns.counts(campaign_id)).placed == 0 and c
    )
    assert counts.pending == 2 and counts.waiting_hours == 0
    statuses = night.store.db.query("SELECT status FROM requests WHERE source = 'campaign'")
    assert {r["status"] for r in statuses} == {"cancelled"}  # none left to ring at night

    await click(night, ActionId.CAMPAIGN_RESUME, campaign_id, channel="C1", ts=ts)
    await night.wait_until(lambda: night.store.campaigns.counts(campaign_id).placed == 2)
    assert {r["status"] for r in requests_of(night, campaign_id)} == {"scheduled"}

    await click(night, ActionId.CAMPAIGN_CANCEL, campaign_id, channel="C1", ts=ts)
    ended = await finished(night, campaign_id)
    assert ended["status"] == "cancelled"
    assert {r["status"] for r in requests_of(night, campaign_id)} <= {"cancelled"}
    assert sandbox.state.numbers_called() == {}


async def test_waiting_chunks_do_not_pile_up_beyond_what_may_be_in_flight(
    night: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    monkeypatch.setattr(
        bot_app,
        "campaign_pace",
        lambda settings, provider: Pace(submits_per_second=5.0, max_batch=25, in_flight=2),
    )
    workflow = await night.create_workflow(REMINDER)
    await submit(night, sheet(numbers(10)), "list.csv", workflow)
    campaign_id = await send(night, await preview(night))
    await night.wait_until(lambda: night.store.campaigns.counts(campaign_id).placed >= 1)
    for _ in range(3):  # the pump looks again (other chunks' results would make it)
        with night.store.write():
            night.running.jobs.add(core_campaigns.pump_job(campaign_id))
        await asyncio.sleep(0.5)
    counts = night.store.campaigns.counts(campaign_id)
    assert counts.placed == 1 and counts.pending == 4, counts


# ---------------------------------------------------------------- a chunk failing whole


async def test_a_refused_key_pauses_the_campaign_saying_why_and_resume_calls_everyone(
    harness: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    reminder = await harness.create_workflow(REMINDER)
    phones = numbers(40)
    await submit(harness, sheet(phones), "list.csv", reminder)
    shown = await preview(harness)
    sandbox.state.faults.append(Fault("place_calls", status=401, times=1_000))
    campaign_id = await send(harness, shown)
    paused = await harness.wait_until(
        lambda: (c := harness.store.campaigns.get(campaign_id)) and c["status"] == "paused" and c,
        timeout=10.0,
    )
    assert "API key" in paused["preview"]["note"]
    ts = await parent_ts(harness, campaign_id)
    said = await harness.wait_until(
        lambda: (
            [u for u in harness.fake.updates("C1", ts) if "Paused by the app" in u.all_text()]
            or [m for m in harness.fake.messages("C1") if "Paused by the app" in m.all_text()]
        ),
        timeout=10.0,
    )
    assert "API key" in said[-1].all_text() and "Resume" in said[-1].all_text()
    await asyncio.sleep(1.0)
    failed = harness.store.db.query("SELECT id FROM requests WHERE status = 'failed'")
    # It stopped: only the chunks already being sent failed, not every chunk.
    assert len(failed) < 20
    counts = harness.store.campaigns.counts(campaign_id)
    assert counts.pending == 20 and counts.placed == 0  # the failed chunks are back in line

    sandbox.state.faults.clear()
    await click(harness, ActionId.CAMPAIGN_RESUME, campaign_id, channel="C1", ts=ts)
    await finished(harness, campaign_id)
    assert sandbox.state.numbers_called() == {p: 1 for p in phones}


async def test_call_again_includes_those_never_dialled(
    harness: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    reminder = await harness.create_workflow(REMINDER)
    await submit(harness, sheet(numbers(6)), "list.csv", reminder)
    shown = await preview(harness)
    sandbox.state.faults.append(Fault("place_calls", status=401, times=1_000))
    campaign_id = await send(harness, shown)
    await harness.wait_until(
        lambda: harness.store.campaigns.get(campaign_id)["status"] == "paused", timeout=10.0
    )
    ts = await parent_ts(harness, campaign_id)
    await click(harness, ActionId.CAMPAIGN_CANCEL, campaign_id, channel="C1", ts=ts)
    await finished(harness, campaign_id)
    sandbox.state.faults.clear()
    await click(harness, ActionId.CAMPAIGN_AGAIN, campaign_id, channel="C1", ts=ts)
    again = await preview(harness, seen=1)
    assert "*6* valid rows" in again.all_text()


# ---------------------------------------------------------------- refusals keep their rule


@pytest.fixture
async def capped(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> AsyncIterator[Harness]:
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"calls_per_day_cap": 1})
    await app.start()
    yield app
    await app.stop()


async def test_a_number_over_the_cap_is_counted_in_the_preview_and_its_rule_shown_at_the_end(
    capped: Harness, sandbox: Sandbox
) -> None:
    harness = capped
    reminder = await harness.create_workflow(REMINDER)
    phones = numbers(3, start=1)
    await submit(harness, sheet(phones[:1]), "first.csv", reminder)
    first = await send(harness, await preview(harness))
    await finished(harness, first)
    await end_files(harness, first)

    await submit(harness, sheet(phones), "second.csv", reminder)
    shown = await preview(harness, seen=1)
    assert "*1* over the frequency cap now" in shown.all_text()
    second = await send(harness, shown)
    await finished(harness, second)
    results = csv_rows((await end_files(harness, second))[-1].text)
    refused = [r for r in results if r["number"].endswith(phones[0][-4:])]
    assert refused and "frequency cap" in refused[0]["why"]
    assert refused[0]["outcome"] == "refused (not called)"
    ts = harness.store.campaigns.get(second)["parent_ts"]
    summary = next(m for m in harness.fake.thread("C1", ts) if "answered" in m.all_text())
    assert "frequency cap" in summary.all_text() and "line 2" in summary.all_text()


# ---------------------------------------------------------------- Slack refusing the parent


async def test_a_parent_slack_refuses_goes_to_the_requesters_dm_with_its_end(
    harness: Harness, sandbox: Sandbox
) -> None:
    reminder = await harness.create_workflow(REMINDER)
    await submit(harness, sheet(numbers(4)), "list.csv", reminder)
    shown = await preview(harness)
    harness.fake.fail_next("chat.postMessage", status=200, error="not_in_channel")
    campaign_id = await send(harness, shown)
    moved = await harness.wait_until(
        lambda: (c := harness.store.campaigns.get(campaign_id)) and c["preview"].get("moved"),
        timeout=10.0,
    )
    _channel, ts = moved
    [dm] = [m for m in harness.fake.messages(DM) if "could not be shown" in m.all_text()]
    assert "not_in_channel" in dm.all_text() and campaign_id in dm.all_text()
    await finished(harness, campaign_id)
    await harness.wait_until(
        lambda: harness.store.campaigns.get(campaign_id)["end_posted"] >= 3, timeout=15.0
    )
    thread = [m for m in harness.fake.messages() if m.params.get("thread_ts") == ts]
    assert any("answered" in m.all_text() for m in thread)
    assert len(harness.fake.files(None, ts)) == 2


# ---------------------------------------------------------------- one download


class _Client:
    token = "xoxb-secret"

    def __init__(self, file: dict) -> None:
        self.file = file

    async def files_info(self, file: str) -> dict:
        return {"file": self.file}


async def test_the_token_goes_only_to_slacks_hosts() -> None:
    client = _Client(
        {"name": "list.csv", "size": 10, "url_private_download": "https://evil.example/f"}
    )
    with pytest.raises(files.DownloadRefused, match="no address"):
        await files.download(client, "F1", 1000, api_url="https://slack.com/api/")  # type: ignore[arg-type]
    assert files.slack_host("https://files.slack.com/x", "https://slack.com/api/")
    assert not files.slack_host("http://files.slack.com/x", "https://slack.com/api/")
    assert files.slack_host("http://127.0.0.1:9/f", "http://127.0.0.1:9/api/")


async def test_a_campaign_file_larger_than_slack_said_is_cut_off(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(campaign_jobs, "MAX_BYTES", 2_000)
    reminder = await harness.create_workflow(REMINDER)
    assert harness.slack is not None
    content = sheet(numbers(200))
    assert len(content) > 2_000
    real = harness.fake.add_file

    def lying(content: bytes, name: str, **kw: object) -> object:
        return real(content, name, size=100)

    monkeypatch.setattr(harness.fake, "add_file", lying)
    await submit(harness, content, "big.csv", reminder)
    [said] = await harness.fake.wait_for(
        lambda f: [m for m in f.messages(DM) if "No campaign preview" in m.all_text()]
    )
    assert "larger than 2 KB" in said.all_text()
    assert harness.store.campaigns.recent() == []


# ---------------------------------------------------------------- outcome unknown, for good


@pytest.fixture
async def reconciling(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Harness]:
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"reconcile_after": 1.0})
    await app.start()
    yield app
    await app.stop()


async def test_a_chunk_whose_outcome_stays_unknown_ends_the_campaign_after_the_bound(
    reconciling: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that cannot look a request up (Intron direct's find() always raises):
    after the bound, the chunk counts as ended, outcome unknown, and the thread says so."""
    from bot.providers.base import ServerError
    from bot.providers.intron.provider import IntronProvider
    from bot.store import campaigns as store_campaigns

    async def cannot_tell(self: object, order: object) -> str | None:
        raise ServerError("find: cannot tell (the test's)", operation="find")

    monkeypatch.setattr(IntronProvider, "find", cannot_tell)
    monkeypatch.setattr(store_campaigns, "UNKNOWN_SETTLES_AFTER", 3.0)
    monkeypatch.setattr(core_campaigns, "UNKNOWN_SETTLES_AFTER", 3.0)
    monkeypatch.setattr(core_campaigns, "CHUNK", 5)
    harness = reconciling
    reminder = await harness.create_workflow(REMINDER)
    sandbox.state.faults.append(Fault("place_calls", status=500, times=1))
    await submit(harness, sheet(numbers(10)), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    await finished(harness, campaign_id, timeout=30.0)
    files_ = await end_files(harness, campaign_id)
    results = csv_rows(files_[-1].text)
    assert sum(r["outcome"] == "outcome unknown" for r in results) == 5
    ts = harness.store.campaigns.get(campaign_id)["parent_ts"]
    summary = next(m for m in harness.fake.thread("C1", ts) if "answered" in m.all_text())
    assert "outcome unknown" in summary.all_text() and "not sent again" in summary.all_text()


def test_the_results_csv_keeps_long_values_and_defuses_formulas() -> None:
    from bot.core.campaigns import Campaign
    from bot.slack.campaigns import views

    campaign = Campaign(
        id="cp-1",
        created_at="2026-01-01T00:00:00+00:00",
        updated_at="2026-01-01T00:00:00+00:00",
        status="completed",
        provider="intron",
        workflow_id="w",
        workflow_name="W",
        requested_by="U1",
        total=1,
        chunk_size=25,
    )
    long = "x" * 1_500
    row = {
        "result": "refused",
        "line": 2,
        "phone": "+2348031000001",
        "variables": {"name": long, "city": "=HYPERLINK(1)"},
        "why": "+234•••••0001 is on the opt-out list",
    }
    [out] = csv_rows(views.results_csv(campaign, [row], ["name", "city"]).content)
    assert out["name"] == long  # not clipped at 500 any more
    assert out["city"] == "'=HYPERLINK(1)"
    assert out["why"].endswith("opt-out list") and out["outcome"] == "refused (not called)"


async def test_the_end_waits_for_its_parent_a_bounded_time_then_goes_to_the_dm(
    harness: Harness, sandbox: Sandbox
) -> None:
    from bot.core.jobs import Job, RetryLater

    reminder = await harness.create_workflow(REMINDER)
    await submit(harness, sheet(numbers(3)), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    await finished(harness, campaign_id)
    await end_files(harness, campaign_id)
    # As if its parent had never been posted (a refusal only logged, a job parked).
    runner = campaign_jobs.CampaignJobs(harness.running.slack, harness.running.delivery_client)
    job = Job(
        id=0, kind=campaign_jobs.END, lane="x", payload={"campaign_id": campaign_id}, run_at=0
    )
    with harness.store.write():
        harness.store.db.execute(
            "UPDATE campaigns SET parent_ts = NULL, end_posted = 0, finished_at = ? WHERE id = ?",
            [datetime.now(UTC).isoformat(), campaign_id],
        )
    with pytest.raises(RetryLater):
        await runner.end(job)  # it waits for the parent, a while
    with harness.store.write():
        harness.store.db.execute(
            "UPDATE campaigns SET finished_at = ? WHERE id = ?",
            [
                (datetime.now(UTC) - timedelta(seconds=campaign_jobs.END_WAIT + 1)).isoformat(),
                campaign_id,
            ],
        )
    await runner.end(job)  # and no longer: the parent and the end go to the DM
    campaign = harness.store.campaigns.get(campaign_id)
    _channel, ts = campaign["preview"]["moved"]
    assert campaign["end_posted"] == 3 and len(harness.fake.files(None, ts)) == 2


# ---------------------------------------------------------------- held while paused


async def test_a_scheduled_request_its_owner_holds_back_waits_until_let_go(
    harness: Harness, sandbox: Sandbox
) -> None:
    """The core asks what ordered a request before dialling a scheduled one (`holds`):
    held, it is not dialled at its time; let go, it is dialled once."""
    from tests.test_scheduling import REMINDER as SCHEDULED
    from tests.test_scheduling import iso, schedule, soon

    workflow = await harness.create_workflow(SCHEDULED)
    record = await schedule(harness, workflow, iso(soon(1)))
    holding = {record.id}
    service = harness.worker_runtime.service  # the worker's: it dials
    service.holds.append(lambda r: 0.3 if r.id in holding else None)
    await asyncio.sleep(2.5)  # past its time
    assert sandbox.state.numbers_called() == {}
    assert harness.store.requests.get(record.id).status == "scheduled"
    holding.clear()
    await harness.wait_until(lambda: sandbox.state.numbers_called(), timeout=5)
    assert sum(sandbox.state.numbers_called().values()) == 1


async def test_a_paused_campaign_holds_its_waiting_parts_and_resume_lets_them_go(
    night: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk already partly sent (a Nairobi number inside its hours, dialled at once; a
    Lagos one waiting two hours for its own) is not taken back by Pause: its waiting part
    is held while the campaign is paused, and let go when it resumes."""
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    workflow = await night.create_workflow(REMINDER)
    await submit(night, sheet(["+254712345671", numbers(1)[0]]), "list.csv", workflow)
    campaign_id = await send(night, await preview(night))
    await night.wait_until(lambda: sandbox.state.numbers_called(), timeout=10)
    rows = requests_of(night, campaign_id)
    [waiting] = [r for r in rows if r["status"] == "scheduled"]
    record = night.store.requests.get(waiting["id"])
    campaigns = night.running.campaigns
    assert campaigns.held(record) is None  # running: it goes at its window
    ts = await parent_ts(night, campaign_id)
    await click(night, ActionId.CAMPAIGN_PAUSE, campaign_id, channel="C1", ts=ts)
    await night.wait_until(lambda: night.store.campaigns.get(campaign_id)["status"] == "paused")
    assert night.store.requests.get(record.id).status == "scheduled"  # not taken back
    assert campaigns.held(record) == core_campaigns.PAUSED_RECHECK  # ...but held
    await click(night, ActionId.CAMPAIGN_RESUME, campaign_id, channel="C1", ts=ts)
    await night.wait_until(lambda: night.store.campaigns.get(campaign_id)["status"] == "running")
    assert campaigns.held(record) is None
    assert sandbox.state.numbers_called() == {"+254712345671": 1}
