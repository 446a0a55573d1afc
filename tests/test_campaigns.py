"""Campaigns end to end: a spreadsheet uploaded through the *New campaign* modal (the
fake Slack serves it at files.info's `url_private_download`), its preview in a DM,
Send, the chunks placed through the sandbox as Intron (a number's last digit decides
its call: 1 and 2 answered with that key, 0 no answer, 9 failed, 8 busy…), the parent
message with Pause / Resume / Cancel, the summary, chart and results CSV in its thread,
Call again, and a worker restarted mid-campaign."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core import campaigns as core_campaigns
from bot.input.spreadsheets import read_sheet
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.providers.intron.sandbox import Fault
from bot.slack.campaigns import jobs as campaign_jobs
from bot.slack.campaigns.views import CampaignModalContext
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.store.campaigns import CampaignStore
from tests.conftest import Sandbox
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack, SlackCall
from tests.support.slack_requests import block_actions, view_submission

DATA = Path(__file__).parent / "data" / "campaigns"
DM = "U1"  # the preview goes to the user's id (Slack answers their DM's id)
REMINDER = WorkflowCreate(
    name="Campaign reminder",
    message="Hello [name], this is a reminder. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)
TWO_VARIABLES = WorkflowCreate(
    name="Delivery notice",
    message="Hello [name], your parcel comes on [date].",
)
VIEWS = iter(range(1, 10_000))


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Edits at most every second (5 s in the app) so that tests end soon; the rule is
    the same, and `test_parent_edits_are_spaced` checks it holds."""
    monkeypatch.setattr(campaign_jobs, "EDIT_EVERY", 1.0)


@pytest.fixture
async def reminder(harness: Harness) -> Workflow:
    return await harness.create_workflow(REMINDER)


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct Nigerian mobile numbers; the last digit cycles 0-9."""
    return [f"+2348031{i:06d}" for i in range(start, start + count)]


def sheet(phones: list[str]) -> bytes:
    rows = ["phone,name"] + [f"{p},Person {i}" for i, p in enumerate(phones, start=1)]
    return ("\n".join(rows) + "\n").encode()


async def submit(
    harness: Harness,
    content: bytes,
    name: str,
    workflow: Workflow,
    *,
    at: datetime | None = None,
) -> None:
    """The *New campaign* modal, submitted with `content` uploaded as `name`."""
    assert harness.slack is not None
    hosted = harness.fake.add_file(content, name)
    values: dict = {
        BlockId.CAMPAIGN_FILE: {
            ActionId.CAMPAIGN_FILE_INPUT: {
                "type": "file_input",
                "files": [{"id": hosted.id, "name": name}],
            }
        },
        BlockId.CAMPAIGN_WORKFLOW: {
            ActionId.CAMPAIGN_WORKFLOW_SELECT: {
                "type": "static_select",
                "selected_option": {"value": workflow.id},
            }
        },
    }
    if at is not None:
        values[BlockId.CAMPAIGN_WHEN] = {
            ActionId.CAMPAIGN_WHEN_SELECT: {
                "type": "datetimepicker",
                "selected_date_time": int(at.timestamp()),
            }
        }
    meta = CampaignModalContext(user_id="U1", channel_id="C1").model_dump_json()
    response = await harness.slack.submit_view(
        CallbackId.CAMPAIGN_NEW, values, private_metadata=meta, view_id=f"VCAMP{next(VIEWS)}"
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response_action"] == "update", answer
    assert "preview comes to you in a DM" in json.dumps(answer["view"])


async def preview(harness: Harness, seen: int = 0) -> SlackCall:
    """The next campaign preview posted in the requester's DM."""
    found = await harness.fake.wait_for(
        lambda f: [m for m in f.messages(DM) if "Campaign preview" in m.all_text()][seen:],
        timeout=10.0,
    )
    shown = found[0]
    assert_valid_blocks(shown.params["blocks"])
    return shown


def send_button(shown: SlackCall) -> dict | None:
    for block in shown.params["blocks"]:
        for element in block.get("elements") or []:
            if element.get("action_id") == ActionId.CAMPAIGN_SEND:
                return element
    return None


async def click(harness: Harness, action: str, value: str, *, channel: str, ts: str) -> str:
    assert harness.slack is not None
    response_id = f"{action}-{next(VIEWS)}"
    response = await harness.slack.action(
        action,
        value,
        channel_id=channel,
        message_ts=ts,
        response_url=harness.fake.response_url(response_id),
    )
    assert response.status_code == 200, response.text
    return response_id


async def send(harness: Harness, shown: SlackCall) -> str:
    """Click Send on a preview; the campaign's id."""
    button = send_button(shown)
    assert button is not None, shown.all_text()
    ts = shown.params.get("ts") or "1.0"
    await click(harness, ActionId.CAMPAIGN_SEND, button["value"], channel=DM, ts=ts)
    return button["value"]


async def finished(harness: Harness, campaign_id: str, timeout: float = 30.0) -> dict:
    return await harness.wait_until(
        lambda: (c := harness.store.campaigns.get(campaign_id)) and c["finished_at"] and c,
        timeout,
    )


async def end_files(harness: Harness, campaign_id: str, timeout: float = 15.0) -> list:
    campaign = await harness.wait_until(
        lambda: (c := harness.store.campaigns.get(campaign_id)) and c["end_posted"] >= 3 and c,
        timeout,
    )
    return harness.fake.files("C1", campaign["parent_ts"])


def parent_updates(fake: FakeSlack, ts: str) -> list[SlackCall]:
    return fake.updates("C1", ts)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


# ---------------------------------------------------------------- the file, read


def test_csv_and_xlsx_read_alike() -> None:
    """The same rows from the CSV and the XLSX: lines, refusals, duplicates, columns."""
    for name in ("preview.csv", "preview.xlsx"):
        read = read_sheet((DATA / name).read_bytes(), name, ["name"])
        assert read.phone_column == "Phone"
        assert read.columns == {"name": "Name"} and read.missing == []
        assert read.ignored == ["Note"]
        assert [(r.line, r.phone, r.variables) for r in read.rows] == [
            (2, "+2348031234561", {"name": "Ada"}),
            (3, "+2348031234562", {"name": "Bola"}),
            (7, "+2348031234560", {"name": "Emeka"}),
        ], name
        assert [(r.line, r.value) for r in read.refused] == [(4, "12345"), (5, "")]
        assert "has no country code" in read.refused[0].reason
        assert "'Name' column is empty" in read.refused[1].reason
        assert [(d.line, d.first_line) for d in read.duplicates] == [(6, 2)]


def test_a_variable_no_column_fills_is_named() -> None:
    read = read_sheet(b"mobile;Name\n+2348031234561;Ada\n", "list.csv", ["name", "date"])
    assert read.phone_column == "mobile"  # found by its header, with ; between cells
    assert read.missing == ["date"]


# ---------------------------------------------------------------- previews


async def test_csv_preview_counts_refused_lines_and_all_refused_in_a_file(
    harness: Harness, reminder: Workflow
) -> None:
    harness.store.consent.add(["+2348031234560"], by="U9", source="slack")
    await submit(harness, (DATA / "preview.csv").read_bytes(), "preview.csv", reminder)
    shown = await preview(harness)
    text = shown.all_text()
    assert "*3* valid rows" in text
    assert "*2* refused rows" in text
    assert "*1* duplicates" in text and "line 6 (= line 2)" in text
    assert "*1* on the opt-out list" in text
    assert "*0* outside their calling hours" in text
    assert "line 4: phone number '12345' has no country code" in text
    assert "line 5: the 'Name' column is empty" in text
    assert "Estimated time to place the calls" in text and "5 requests/s" in text
    assert "[name] ← `Name`" in text
    button = send_button(shown)
    assert button is not None and button["text"]["text"] == "Send"
    assert "confirm" not in button  # 2 people: the click is the confirmation
    [refused] = await harness.fake.wait_for(lambda f: f.files(DM))
    rows = csv_rows(refused.text)
    assert [(r["line"], r["reason"][:30]) for r in rows] == [
        ("4", "phone number '12345' has no co"),
        ("5", "the 'Name' column is empty, an"),
    ]
    assert harness.fake.calls("files.download")[0].token == "xoxb-test-token"
    # Nothing was sent before the click.
    assert harness.store.requests.recent(5) == []


async def test_xlsx_preview_and_a_missing_variable_named(
    harness: Harness, sandbox: Sandbox
) -> None:
    notice = await harness.create_workflow(TWO_VARIABLES)
    await submit(harness, (DATA / "preview.xlsx").read_bytes(), "preview.xlsx", notice)
    shown = await preview(harness)
    text = shown.all_text()
    assert "*3* valid rows" in text and "*2* refused rows" in text
    assert "No column fills [date]" in text
    assert send_button(shown) is None  # nothing can be sent as it is
    assert sandbox.state.numbers_called() == {}


async def test_a_large_campaign_confirmation_names_the_count(
    harness: Harness, reminder: Workflow
) -> None:
    await submit(harness, sheet(numbers(501)), "big.csv", reminder)
    shown = await preview(harness)
    button = send_button(shown)
    assert button is not None
    assert button["text"]["text"] == "Send to 501"
    assert button["confirm"]["confirm"]["text"] == "Call 501 people"


async def test_a_file_that_is_no_spreadsheet_is_refused_in_the_modal(
    harness: Harness, reminder: Workflow
) -> None:
    assert harness.slack is not None
    hosted = harness.fake.add_file(b"%PDF", "scan.pdf")
    values = {
        BlockId.CAMPAIGN_FILE: {
            ActionId.CAMPAIGN_FILE_INPUT: {
                "type": "file_input",
                "files": [{"id": hosted.id, "name": "scan.pdf"}],
            }
        },
        BlockId.CAMPAIGN_WORKFLOW: {
            ActionId.CAMPAIGN_WORKFLOW_SELECT: {
                "type": "static_select",
                "selected_option": {"value": reminder.id},
            }
        },
    }
    meta = CampaignModalContext(user_id="U1", channel_id="C1").model_dump_json()
    response = await harness.slack.submit_view(
        CallbackId.CAMPAIGN_NEW, values, private_metadata=meta
    )
    errors = response.json()["errors"]
    assert "'scan.pdf' is neither .csv nor .xlsx" in errors[BlockId.CAMPAIGN_FILE]


async def test_the_command_opens_the_campaign_modal(harness: Harness, reminder: Workflow) -> None:
    assert harness.slack is not None
    response = await harness.slack.command("campaign", trigger_id="t-1")
    assert response.status_code == 200
    [opened] = await harness.fake.wait_for(lambda f: f.calls("views.open"))
    view = opened.params["view"]
    assert_valid_view(view)
    types = [b["element"]["type"] for b in view["blocks"] if b["type"] == "input"]
    assert types == ["file_input", "static_select", "static_select", "datetimepicker"]


# ---------------------------------------------------------------- running


async def test_confirm_calls_everyone_once_and_posts_summary_chart_and_csv(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    phones = numbers(60)
    await submit(harness, sheet(phones), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    said = await harness.fake.wait_for(lambda f: f.responses())
    assert f"Campaign `{campaign_id}` sent to 60 people" in said[-1].all_text()
    campaign = await finished(harness, campaign_id)
    files = await end_files(harness, campaign_id)
    assert sandbox.state.numbers_called() == {p: 1 for p in phones}
    # Chunks were ordinary requests, posted nowhere by the calls notifier.
    requests = harness.store.requests.recent(50)
    assert sorted(r.recipient_count for r in requests) == [10, 25, 25]
    assert {(r.source, r.channel) for r in requests} == {("campaign", None)}
    # The parent, as it ended.
    ts = campaign["parent_ts"]
    last = (
        await harness.wait_until(
            lambda: [u for u in parent_updates(harness.fake, ts) if "completed" in u.all_text()]
        )
    )[-1]
    text = last.all_text()
    # Intron reports busy (8) as not answered, voicemail (7) as answered.
    assert "60/60" in text and "answered 42" in text and "no answer 12" in text
    assert "failed 6" in text and "pressed 1: 6" in text and "pressed 2: 6" in text
    actions = [
        e["action_id"]
        for b in last.params["blocks"]
        for e in b.get("elements") or []
        if "action_id" in e
    ]
    assert actions == [ActionId.CAMPAIGN_AGAIN]
    # The thread: the summary, the chart, the CSV.
    thread = harness.fake.thread("C1", ts)
    assert any("42 of 60 answered (70%)" in m.all_text() for m in thread)
    assert any("1 — Confirm: 6" in m.all_text() for m in thread)
    chart, results = files
    assert chart.filename.endswith(".png") and chart.content[:8] == b"\x89PNG\r\n\x1a\n"
    rows = csv_rows(results.text)
    assert len(rows) == 60
    assert list(rows[0]) == [
        "line",
        "number",
        "name",
        "outcome",
        "key pressed",
        "duration (s)",
        "time",
        "why",
    ]
    by_line = {r["line"]: r for r in rows}
    assert by_line["2"]["outcome"] == "no answer"  # +2348031000000
    assert by_line["3"]["outcome"] == "answered" and by_line["3"]["key pressed"] == "1"
    assert by_line["3"]["name"] == "Person 2" and by_line["3"]["number"] == "+234•••••0001"
    assert by_line["11"]["outcome"] == "failed"  # …0009


async def test_pause_stops_before_the_next_chunk_resume_and_cancel(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)  # 30 chunks, 5 a second
    phones = numbers(60)
    await submit(harness, sheet(phones), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    campaign = await harness.wait_until(
        lambda: (c := harness.store.campaigns.get(campaign_id)) and c["parent_ts"] and c
    )
    ts = campaign["parent_ts"]
    await click(harness, ActionId.CAMPAIGN_PAUSE, campaign_id, channel="C1", ts=ts)
    counts = harness.store.campaigns.counts(campaign_id)
    assert counts.pending > 0, "the campaign ended before it could be paused"
    placed = counts.placed
    await asyncio.sleep(1.0)
    assert harness.store.campaigns.counts(campaign_id).placed == placed
    paused = await harness.wait_until(
        lambda: [u for u in parent_updates(harness.fake, ts) if "paused" in u.all_text()],
        timeout=5.0,
    )
    assert "Resume" in paused[-1].all_text() and "Pause" not in paused[-1].all_text()
    # The chunks accepted before the click go on; nothing after them.
    await harness.wait_until(lambda: sum(sandbox.state.numbers_called().values()) == 2 * placed)
    await asyncio.sleep(0.5)
    assert sum(sandbox.state.numbers_called().values()) == 2 * placed

    await click(harness, ActionId.CAMPAIGN_RESUME, campaign_id, channel="C1", ts=ts)
    called_before = sum(sandbox.state.numbers_called().values())
    await harness.wait_until(
        lambda: sum(sandbox.state.numbers_called().values()) > called_before + 2
    )
    await click(harness, ActionId.CAMPAIGN_CANCEL, campaign_id, channel="C1", ts=ts)
    ended = await finished(harness, campaign_id)
    assert ended["status"] == "cancelled"
    counts = harness.store.campaigns.counts(campaign_id)
    assert counts.skipped > 0
    called = sandbox.state.numbers_called()
    assert set(called.values()) == {1}  # nobody twice
    assert len(called) < len(phones)  # the skipped chunks' people were not called
    await end_files(harness, campaign_id)
    thread = harness.fake.thread("C1", ts)
    assert any("cancelled" in m.all_text() for m in thread)
    results = csv_rows(harness.fake.files("C1", ts)[-1].text)
    assert sum(r["outcome"] == "not placed" for r in results) == len(phones) - len(called)


async def test_parent_edits_are_spaced(
    harness: Harness, reminder: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    await submit(harness, sheet(numbers(30)), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    campaign = await finished(harness, campaign_id)
    await end_files(harness, campaign_id)
    times = [u.at for u in parent_updates(harness.fake, campaign["parent_ts"])]
    posted = [m.at for m in harness.fake.messages("C1") if m.method == "chat.postMessage"]
    edits = sorted(posted[:1] + times)
    assert len(edits) >= 2
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(edits)), edits


async def test_restart_mid_campaign_calls_nobody_twice_and_loses_nobody(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    phones = numbers(40)
    await submit(harness, sheet(phones), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    await harness.wait_until(lambda: harness.store.campaigns.counts(campaign_id).placed >= 3)
    await harness.stop_worker()  # mid-campaign: chunks placed, queued and still pending
    assert harness.store.campaigns.counts(campaign_id).pending > 0
    await harness.start_worker()
    await finished(harness, campaign_id)
    await end_files(harness, campaign_id)
    called = sandbox.state.numbers_called()
    assert set(called.values()) == {1}  # nobody twice
    results = harness.store.campaigns.results(campaign_id)
    unknown = [r for r in results if r["request_status"] == "unknown"]
    # Nobody lost: everyone was called, except those of a chunk cut off while it was
    # being sent (its outcome unknown, so never resent: at most one chunk).
    assert len(unknown) <= 2
    assert len(called) + len(unknown) >= len(phones)
    assert all(r["outcome"] for r in results if r["request_status"] != "unknown")


async def test_call_again_calls_those_who_did_not_answer(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    phones = numbers(20)
    await submit(harness, sheet(phones), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    campaign = await finished(harness, campaign_id)
    await end_files(harness, campaign_id)
    await click(
        harness, ActionId.CAMPAIGN_AGAIN, campaign_id, channel="C1", ts=campaign["parent_ts"]
    )
    again = await preview(harness, seen=1)
    assert "*6* valid rows" in again.all_text()  # 0 and 8 not answered, 9 failed: 2 each
    again_id = await send(harness, again)
    await finished(harness, again_id)
    called = sandbox.state.numbers_called()
    twice = {p for p, n in called.items() if n == 2}
    assert twice == {p for p in phones if p[-1] in "089"}
    assert set(called.values()) == {1, 2}


async def test_home_lists_campaigns_with_progress(harness: Harness, reminder: Workflow) -> None:
    await submit(harness, sheet(numbers(10)), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    await finished(harness, campaign_id)
    assert harness.slack is not None
    await harness.slack.event({"type": "app_home_opened", "user": "U1", "tab": "home"})
    home = await harness.wait_until(
        lambda: [c for c in harness.fake.calls("views.publish") if campaign_id in c.all_text()],
        timeout=5.0,
    )
    assert "10/10" in home[-1].all_text()


# ---------------------------------------------------------------- calling hours


@pytest.fixture
async def night_harness(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Harness]:
    """Calling hours that are closed in Lagos now: the window opens in two hours."""
    lagos = datetime.now(UTC).astimezone(ZoneInfo("Africa/Lagos"))
    opens = lagos + timedelta(hours=2)
    closes = opens + timedelta(hours=1)
    hours = f"{opens:%H}:00-{closes:%H}:00"
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"calling_hours": hours})
    await app.start()
    yield app
    await app.stop()


async def test_numbers_outside_their_calling_hours_are_counted_and_wait(
    night_harness: Harness, sandbox: Sandbox
) -> None:
    workflow = await night_harness.create_workflow(REMINDER)
    await submit(night_harness, sheet(numbers(4)), "list.csv", workflow)
    shown = await preview(night_harness)
    assert "*4* outside their calling hours now: they wait until" in shown.all_text()
    campaign_id = await send(night_harness, shown)
    waiting = await night_harness.wait_until(
        lambda: [
            m
            for m in night_harness.fake.calls()
            if m.method in ("chat.postMessage", "chat.update")
            and m.params.get("channel") == "C1"
            and "4 wait for their calling hours" in m.all_text()
        ],
        timeout=10.0,
    )
    assert campaign_id in waiting[-1].all_text()
    assert sandbox.state.numbers_called() == {}  # nobody at night


async def test_the_first_refused_rows_are_listed_and_all_are_in_the_file(
    harness: Harness, reminder: Workflow
) -> None:
    bad = [f"+2348031{i:06d}" for i in range(3)] + [f"555-01{i}" for i in range(8)]
    await submit(harness, sheet(bad), "list.csv", reminder)
    text = (await preview(harness)).all_text()
    assert "*3* valid rows" in text and "*8* refused rows" in text
    assert "line 5: phone number '555-010' has no country code" in text and "line 9:" in text
    assert "line 10:" not in text  # the first five listed
    assert "…and 3 more: every refused row is in the file below" in text
    [refused] = await harness.fake.wait_for(lambda f: f.files(DM))
    assert [r["line"] for r in csv_rows(refused.text)] == [str(n) for n in range(5, 13)]


async def test_a_pump_dying_between_a_request_and_its_chunk_places_the_chunk_once(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk's request and the chunk's move to `placed` are one transaction: a
    failure between them leaves neither, and the retried pump places the chunk once."""
    monkeypatch.setattr(core_campaigns, "CHUNK", 5)
    real = CampaignStore.place_chunk
    lost: list[str] = []

    def dies_once(self: CampaignStore, campaign_id: str, chunk: int, request_id: str) -> bool:
        if chunk == 2 and not lost:
            lost.append(request_id)
            raise sqlite3.OperationalError("disk I/O error (the test's)")
        return real(self, campaign_id, chunk, request_id)

    monkeypatch.setattr(CampaignStore, "place_chunk", dies_once)
    phones = numbers(20)
    await submit(harness, sheet(phones), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    await finished(harness, campaign_id)
    assert lost and harness.store.requests.get(lost[0]) is None  # undone with the chunk
    assert sandbox.state.numbers_called() == {p: 1 for p in phones}
    assert len(harness.store.requests.recent(50)) == 4


async def test_a_campaign_given_a_time_starts_then(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    await submit(harness, sheet(numbers(5)), "list.csv", reminder, at=at)
    shown = await preview(harness)
    assert "Starts <!date^" in shown.all_text()
    campaign_id = await send(harness, shown)
    await asyncio.sleep(1.0)
    assert sandbox.state.numbers_called() == {}  # confirmed, not due yet
    await finished(harness, campaign_id, timeout=20.0)
    assert len(sandbox.state.numbers_called()) == 5
    [request] = harness.store.requests.recent(5)
    assert datetime.fromisoformat(request.created_at) >= at


async def test_a_file_without_a_phone_column_is_refused_naming_its_headers(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    await submit(harness, b"name,city\nAda,Lagos\n", "people.csv", reminder)
    [said] = await harness.fake.wait_for(
        lambda f: [m for m in f.messages(DM) if "No campaign preview" in m.all_text()]
    )
    text = said.all_text()
    assert "no phone column in 'people.csv': line 1 has 'name', 'city'" in text
    assert "name the column of numbers phone" in text and "Nothing was sent" in text
    assert harness.store.campaigns.recent() == [] and sandbox.state.numbers_called() == {}


async def test_a_number_opted_out_during_the_campaign_is_not_called(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)  # the last chunk goes 4 s after Send
    phones = numbers(40)
    await submit(harness, sheet(phones), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    harness.store.consent.add([phones[-1]], by="U9", source="slack")
    await finished(harness, campaign_id)
    files = await end_files(harness, campaign_id)
    called = sandbox.state.numbers_called()
    assert phones[-1] not in called and len(called) == 39
    last = csv_rows(files[-1].text)[-1]
    assert last["line"] == "41" and last["outcome"].startswith(("not called", "opted out"))


@pytest.fixture
async def reconciling(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Harness]:
    """Requests whose outcome is unknown are looked up after a second."""
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"reconcile_after": 1.0})
    await app.start()
    yield app
    await app.stop()


async def test_a_chunk_the_provider_never_had_is_placed_again(
    reconciling: Harness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's request whose outcome is unknown (cut off while it was sent: here the
    provider answers 500 without doing anything), then found by reconciliation never to
    have reached the provider: nobody of it was called, so the chunk is placed again
    rather than lost, and everyone is called once."""
    harness = reconciling
    reminder = await harness.create_workflow(REMINDER)
    monkeypatch.setattr(core_campaigns, "CHUNK", 5)
    sandbox.state.faults.append(Fault("place_calls", status=500, times=1))
    phones = numbers(15)
    await submit(harness, sheet(phones), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    await finished(harness, campaign_id, timeout=30.0)
    assert sandbox.state.numbers_called() == {p: 1 for p in phones}
    statuses = sorted(str(r.status) for r in harness.store.requests.recent(50))
    assert statuses == ["completed"] * 3 + ["failed"], statuses  # the one never placed
    assert any(a["action"] == "campaign.chunk_again" for a in harness.store.audit.trail())


# ---------------------------------------------------------------- repeats are one


def audited(harness: Harness, action: str) -> int:
    return sum(a["action"] == action for a in harness.store.audit.trail())


async def test_a_resent_submission_makes_one_draft_and_one_preview(
    harness: Harness, reminder: Workflow
) -> None:
    """Slack resends the modal's submission (the same body: same view id and hash) after
    the preview was posted, and the preview job itself runs again: one draft, one
    preview, one refused-rows file."""
    assert harness.slack is not None
    hosted = harness.fake.add_file(sheet([*numbers(3), "12345"]), "list.csv")
    values = {
        BlockId.CAMPAIGN_FILE: {
            ActionId.CAMPAIGN_FILE_INPUT: {
                "type": "file_input",
                "files": [{"id": hosted.id, "name": "list.csv"}],
            }
        },
        BlockId.CAMPAIGN_WORKFLOW: {
            ActionId.CAMPAIGN_WORKFLOW_SELECT: {
                "type": "static_select",
                "selected_option": {"value": reminder.id},
            }
        },
    }
    meta = CampaignModalContext(user_id="U1", channel_id="C1").model_dump_json()
    body = view_submission(
        CallbackId.CAMPAIGN_NEW, values, private_metadata=meta, view_id="VRESENT01"
    )
    first = await harness.slack.post(*body)
    assert first.json()["response_action"] == "update"
    shown = await preview(harness)
    await harness.fake.wait_for(lambda f: f.files(DM))
    campaign_id = send_button(shown)["value"]  # type: ignore[index]
    again = await harness.slack.post(*body)  # Slack's resend, after the job finished
    assert again.status_code == 200 and again.json()["response_action"] == "update"
    # The job run again too (its worker died after posting, say): shown once already.
    harness.store.jobs.add(
        campaign_jobs.preview_job({"campaign_id": campaign_id, "user_id": "U1", "file_id": "F0"})
    )
    await asyncio.sleep(1.5)
    previews = [m for m in harness.fake.messages(DM) if "Campaign preview" in m.all_text()]
    assert len(previews) == 1
    assert len(harness.fake.files(DM)) == 1
    assert len(harness.fake.calls("files.download")) == 1
    assert audited(harness, "campaign.drafted") == 1


async def test_send_clicked_twice_and_resent_starts_once_and_says_so(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    assert harness.slack is not None
    phones = numbers(5)
    await submit(harness, sheet(phones), "list.csv", reminder)
    shown = await preview(harness)
    campaign_id = send_button(shown)["value"]  # type: ignore[index]
    ts = shown.params.get("ts") or "1.0"
    body = block_actions(
        ActionId.CAMPAIGN_SEND,
        campaign_id,
        channel_id=DM,
        message_ts=ts,
        response_url=harness.fake.response_url("send-1"),
    )
    await harness.slack.post(*body)
    await click(harness, ActionId.CAMPAIGN_SEND, campaign_id, channel=DM, ts=ts)  # double
    await harness.slack.post(*body)  # Slack's resend of the first
    await finished(harness, campaign_id)
    await asyncio.sleep(0.3)
    said = [r.all_text() for r in harness.fake.responses()]
    assert said and all(f"Campaign `{campaign_id}` sent to 5 people" in t for t in said), said
    assert audited(harness, "campaign.confirmed") == 1
    assert sandbox.state.numbers_called() == {p: 1 for p in phones}
    parents = [m for m in harness.fake.messages("C1") if not m.params.get("thread_ts")]
    assert len(parents) == 1


async def test_pause_resume_cancel_repeats_do_nothing_more(
    harness: Harness, reminder: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double click on Pause pauses once and says nothing wrong; Slack's resend of that
    click arriving after Resume does not pause again; Cancel twice cancels once."""
    assert harness.slack is not None
    monkeypatch.setattr(core_campaigns, "CHUNK", 2)
    await submit(harness, sheet(numbers(60)), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    campaign = await harness.wait_until(
        lambda: (c := harness.store.campaigns.get(campaign_id)) and c["parent_ts"] and c
    )
    ts = campaign["parent_ts"]
    pause = block_actions(
        ActionId.CAMPAIGN_PAUSE,
        campaign_id,
        channel_id="C1",
        message_ts=ts,
        response_url=harness.fake.response_url("pause-1"),
    )
    await harness.slack.post(*pause)
    await click(harness, ActionId.CAMPAIGN_PAUSE, campaign_id, channel="C1", ts=ts)
    assert harness.store.campaigns.get(campaign_id)["status"] == "paused"
    await click(harness, ActionId.CAMPAIGN_RESUME, campaign_id, channel="C1", ts=ts)
    await click(harness, ActionId.CAMPAIGN_RESUME, campaign_id, channel="C1", ts=ts)
    await harness.slack.post(*pause)  # the first Pause, resent late
    assert harness.store.campaigns.get(campaign_id)["status"] == "running"
    for _ in range(2):
        await click(harness, ActionId.CAMPAIGN_CANCEL, campaign_id, channel="C1", ts=ts)
    await finished(harness, campaign_id)
    assert harness.store.campaigns.get(campaign_id)["status"] == "cancelled"
    assert [audited(harness, f"campaign.{s}") for s in ("paused", "running", "cancelled")] == [
        1,
        1,
        1,
    ]
    await asyncio.sleep(0.3)
    said = " ".join(r.all_text() for r in harness.fake.responses())
    assert "cannot be" not in said, said


async def test_call_again_clicked_often_makes_one_campaign(
    harness: Harness, reminder: Workflow
) -> None:
    await submit(harness, sheet(numbers(10)), "list.csv", reminder)
    campaign_id = await send(harness, await preview(harness))
    campaign = await finished(harness, campaign_id)
    await end_files(harness, campaign_id)
    ts = campaign["parent_ts"]
    for _ in range(2):
        await click(harness, ActionId.CAMPAIGN_AGAIN, campaign_id, channel="C1", ts=ts)
    again = await preview(harness, seen=1)
    again_id = send_button(again)["value"]  # type: ignore[index]
    await click(harness, ActionId.CAMPAIGN_AGAIN, campaign_id, channel="C1", ts=ts)
    await asyncio.sleep(1.0)
    previews = [m for m in harness.fake.messages(DM) if "Campaign preview" in m.all_text()]
    assert len(previews) == 2  # the campaign's and one Call again
    rows = harness.store.db.query("SELECT id FROM campaigns WHERE again_of = ?", [campaign_id])
    assert [r["id"] for r in rows] == [again_id]
    said = harness.fake.responses()[-1].all_text()
    assert f"is campaign `{again_id}`" in said and "Nothing more was made" in said


# ---------------------------------------------------------------- numbers without their +


def test_an_xlsx_number_cell_without_its_plus_says_what_to_do() -> None:
    import openpyxl

    book = openpyxl.Workbook()
    page = book.active
    page.append(["phone", "name"])
    page.append(["+2348031234561", "Ada"])
    page.append([2348012345678, "Bola"])  # typed as a number: Excel keeps no +
    page.append([12345678, "Chidi"])  # +12345678 is no number either
    out = io.BytesIO()
    book.save(out)
    read = read_sheet(out.getvalue(), "list.xlsx", ["name"])
    assert [r.line for r in read.rows] == [2]
    by_line = {r.line: r.reason for r in read.refused}
    assert by_line[3] == (
        "phone 2348012345678 is a number cell without its + (Excel drops it); format the "
        "column as text or write +2348012345678 (that is +234•••••5678, a number in Nigeria)"
    )
    assert by_line[4].startswith("phone 12345678 is a number cell without its + (Excel drops")
    assert "+12345678 is not a valid number either" in by_line[4]
    assert "format the column as text" in by_line[4]
    # With a default region the digits are read there, as in /robocall call.
    ng = read_sheet(out.getvalue(), "list.xlsx", ["name"], default_region="NG")
    assert "+2348012345678" in [r.phone for r in ng.rows]


def test_csv_digits_without_their_plus_say_what_to_do() -> None:
    read = read_sheet(b"phone,name\n2348012345678,Ada\n12345,Bola\n", "list.csv", ["name"])
    assert read.rows == []
    first, second = read.refused
    assert first.line == 2 and first.reason == (
        "phone 2348012345678 has no + and so no country code (a spreadsheet drops the + of a "
        "number cell); write +2348012345678 (that is +234•••••5678, a number in Nigeria), or "
        "format the column as text before saving the CSV"
    )
    assert "has no country code" in second.reason  # +12345 is no number: as before
    other = read_sheet(b"phone,name\n2348012345678,Ada\n", "l.csv", ["name"], default_region="GB")
    assert "write +2348012345678 (that is +234•••••5678" in other.refused[0].reason


# ---------------------------------------------------------------- Slack's Retry-After


def test_slack_retry_after_is_public_and_campaign_jobs_wait_it() -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.slack_response import SlackResponse

    from bot.core.jobs import Job, RetryLater
    from bot.slack import delivery

    assert delivery.retry_after({"Retry-After": "7"}) == 7.0
    assert delivery.retry_after({}) == 1.0

    async def limited(job: Job) -> None:
        response = SlackResponse(
            client=None,
            http_verb="POST",
            api_url="https://slack.com/api/chat.update",
            req_args={},
            data={"ok": False, "error": "ratelimited"},
            headers={"retry-after": "7"},
            status_code=429,
        )
        raise SlackApiError("ratelimited", response)

    runner = campaign_jobs.CampaignJobs(None, None)  # type: ignore[arg-type]
    job = Job(id=1, kind=campaign_jobs.PARENT, lane="slack", payload={}, run_at=0.0)
    with pytest.raises(RetryLater) as waited:
        asyncio.run(runner._slack(limited)(job))
    assert waited.value.after == 7.0
