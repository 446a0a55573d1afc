"""Intron direct's batches, end to end: a request of several recipients is one
`POST /call/batch`, each call's id (from the batch answer) is kept with its recipient,
and each per-call webhook event, which names only its call id, lands on its own
request, recipient and thread — also after a restart, and never for an unknown or
ambiguous call id. Signed Slack requests in, the fake Slack out, the direct API's
sandbox over a socket, SQLite a real file."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.models import RequestStatus
from bot.core.ratelimit import MemorySlotLog
from bot.providers.base import CallOutcome, Order, OrderRecipient, Workflow
from bot.providers.intron_direct import sandbox as direct_sandbox
from bot.providers.intron_direct.provider import BatchRef, open_intron_direct
from bot.providers.registry import open_providers
from bot.serving import RunningServer, start_server
from bot.settings import Settings
from tests.conftest import NUMBER
from tests.harness import CALLBACK_TOKEN, Harness
from tests.support.fake_slack import FakeSlack

DIRECT_KEY = "test-direct-key"
WORKFLOW = "Direct reminder"


@dataclasses.dataclass
class Box:
    server: RunningServer
    state: Any

    @property
    def url(self) -> str:
        return self.server.url


async def start_box(**config: Any) -> Box:
    settings = {"event_delay": 0.05, "callback_attempts": 1, **config}
    app = direct_sandbox.create_sandbox_app(direct_sandbox.SandboxConfig(**settings))
    return Box(await start_server(app), app.state.sandbox)


@pytest.fixture
async def direct_box() -> AsyncIterator[Box]:
    box = await start_box(concurrent_calls=10)
    yield box
    await box.server.stop()


def harness_for(tmp_path: Path, fake: FakeSlack, box: Box, **overrides: Any) -> Harness:
    settings = {
        "intron_direct_api_key": DIRECT_KEY,
        "intron_direct_base_url": box.url,
        "intron_direct_concurrent_calls": 10,
        **overrides,
    }
    return Harness(tmp_path, fake, None, overrides=settings)


async def running(harness: Harness) -> Harness:
    await harness.start(wait_for_workflows=False)  # no Intron workflow API to wait for
    harness.store.workflows.put(
        Workflow(
            id="wf-direct",
            provider="intron-direct",
            name=WORKFLOW,
            message="Hello {{name}}, this is a reminder. Press 1 to confirm, 2 to cancel.",
            keypad={"1": "Confirm", "2": "Cancel"},
        )
    )
    return harness


async def send(harness: Harness, digits: str) -> str:
    """`/robocall call` to the numbers ending in `digits`; the new request's id."""
    assert harness.slack is not None
    before = {r.id for r in harness.store.requests.recent(50)}
    numbers = " ".join(NUMBER.format(d) for d in digits)
    response = await harness.slack.command(f'call "{WORKFLOW}" {numbers} name=Ada')
    assert response.status_code == 200 and "accepted" in response.text, response.text
    (new,) = [r.id for r in harness.store.requests.recent(50) if r.id not in before]
    return new


async def until_status(harness: Harness, request_id: str, status: RequestStatus) -> None:
    await harness.wait_until(
        lambda: (r := harness.store.requests.get(request_id)) and r.status == status, 15
    )


def outcomes(harness: Harness, request_id: str) -> dict[str, tuple]:
    return {
        c.phone_number: (c.outcome, c.key_pressed) for c in harness.store.requests.calls(request_id)
    }


async def thread(harness: Harness, request_id: str, until: str) -> str:
    ts = await harness.parent_ts(request_id)

    def replies(fake: FakeSlack) -> str | None:
        text = "\n".join(r.all_text() for r in fake.thread("C1", ts))
        return text if until in text else None

    return await harness.fake.wait_for(replies, timeout=10)


def event(call_id: str, phone: str, result: str = "busy") -> dict[str, Any]:
    return {
        "event": "robo_call.completed",
        "call_id": call_id,
        "phone_number": phone,
        "duration": 3,
        "result": result,
        "dtmf_input": None,
        "timestamp": "2026-12-01T10:00:00Z",
    }


async def post_event(harness: Harness, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=harness.url) as http:
        return await http.post(f"/callbacks/intron-direct/{CALLBACK_TOKEN}", json=body)


def snapshot(harness: Harness) -> Any:
    """What a user could see changing: every request and call, every Slack call made."""
    store = harness.store
    requests = [r.model_dump() for r in store.requests.recent(50)]
    calls = [c.model_dump() for r in store.requests.recent(50) for c in store.requests.calls(r.id)]
    return requests, calls, len(harness.fake.calls())


# ---------------------------------------------------------------- one submit a batch


async def test_a_batch_of_recipients_is_one_submit_and_each_event_finds_its_call(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await running(harness_for(tmp_path, fake_slack, direct_box))
    try:
        request_id = await send(harness, "1207")
        await until_status(harness, request_id, RequestStatus.COMPLETED)
        record = harness.store.requests.get(request_id)
        assert (record.parts, record.recipient_count) == (1, 4)
        assert direct_box.state.requests_seen["place_batch"] == 1
        assert direct_box.state.requests_seen["place_call"] == 0
        assert direct_box.state.numbers_called() == {NUMBER.format(d): 1 for d in "1207"}
        # Each call's id, as the batch answer gave it, is kept with its recipient.
        dialled = {c.phone_number: c.id for c in direct_box.state.calls.values()}
        kept = {c.phone_number: c.provider_call_id for c in harness.store.requests.calls(record.id)}
        assert kept == dialled
        assert outcomes(harness, request_id) == {
            NUMBER.format(1): (CallOutcome.ANSWERED, "1"),
            NUMBER.format(2): (CallOutcome.ANSWERED, "2"),
            NUMBER.format(0): (CallOutcome.NO_ANSWER, None),
            NUMBER.format(7): (CallOutcome.VOICEMAIL, None),
        }
        text = await thread(harness, request_id, until="voicemail")
        assert "pressed 1 Confirm" in text and "pressed 2 Cancel" in text
        assert "no answer" in text
        assert NUMBER.format(1) not in text  # masked in Slack
        # Every event was applied: none was left unmatched.
        log = harness.store.requests.callback_log()
        assert log and {row["request_id"] for row in log} == {request_id}
        assert "unknown_request" not in {row["outcome"] for row in log}
    finally:
        await harness.stop()


async def test_two_batches_at_once_each_get_their_own_results_and_thread(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await running(harness_for(tmp_path, fake_slack, direct_box))
    try:
        first = await send(harness, "10")
        second = await send(harness, "29")
        for request_id in (first, second):
            await until_status(harness, request_id, RequestStatus.COMPLETED)
        assert direct_box.state.requests_seen["place_batch"] == 2
        assert outcomes(harness, first) == {
            NUMBER.format(1): (CallOutcome.ANSWERED, "1"),
            NUMBER.format(0): (CallOutcome.NO_ANSWER, None),
        }
        assert outcomes(harness, second) == {
            NUMBER.format(2): (CallOutcome.ANSWERED, "2"),
            NUMBER.format(9): (CallOutcome.FAILED, None),
        }
        first_text = await thread(harness, first, until="no answer")
        second_text = await thread(harness, second, until="failed")
        assert "pressed 1 Confirm" in first_text and "pressed 2" not in first_text
        assert "pressed 2 Cancel" in second_text and "pressed 1" not in second_text
        # Each event was put on the request whose batch the sandbox dialled its call in.
        batch_of = {
            call_id: batch_id
            for batch_id, ids in direct_box.state.batches.items()
            for call_id in ids
        }
        ref_of = {
            r: BatchRef.parse(harness.store.requests.get(r).provider_ref).batch_id
            for r in (first, second)
        }
        for row in harness.store.requests.callback_log():
            call_id = json.loads(row["body"])["call_id"]
            assert ref_of[row["request_id"]] == batch_of[call_id], row
    finally:
        await harness.stop()


# ---------------------------------------------------------------- hostile events


async def test_an_event_naming_an_unknown_call_id_changes_nothing(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    harness = await running(harness_for(tmp_path, fake_slack, direct_box))
    try:
        request_id = await send(harness, "15")
        await until_status(harness, request_id, RequestStatus.COMPLETED)
        await thread(harness, request_id, until="answered")
        await harness.settled()
        before = snapshot(harness)
        # A made-up call id, with the phone number of one of the request's recipients.
        answer = await post_event(harness, event("robo_not_ours", NUMBER.format(1)))
        assert answer.status_code == 404
        await harness.settled()
        assert snapshot(harness) == before
        assert outcomes(harness, request_id)[NUMBER.format(1)] == (CallOutcome.ANSWERED, "1")
        assert harness.store.requests.callback_log()[-1]["outcome"] == "unknown_request"
    finally:
        await harness.stop()


async def test_an_event_whose_call_id_two_requests_hold_is_a_conflict_and_changes_nothing(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    """Two requests holding the same call id (a provider reusing ids, or a stored id gone
    wrong): believing either could put one request's results on another, so the event
    is refused with 409, as a callback whose reference and tags disagree is."""
    harness = await running(harness_for(tmp_path, fake_slack, direct_box))
    try:
        first = await send(harness, "13")
        second = await send(harness, "23")
        for request_id in (first, second):
            await until_status(harness, request_id, RequestStatus.COMPLETED)
        await harness.settled()
        shared = harness.store.requests.calls(first)[0].provider_call_id
        with harness.store.db.write():
            harness.store.db.execute(
                "UPDATE calls SET provider_call_id = ? WHERE request_id = ? AND position = 1",
                [shared, second],
            )
        before = snapshot(harness)
        answer = await post_event(harness, event(shared, NUMBER.format(1), "rejected"))
        assert answer.status_code == 409
        await harness.settled()
        assert snapshot(harness) == before
        assert harness.store.requests.callback_log()[-1]["outcome"] == "conflict"
    finally:
        await harness.stop()


# ---------------------------------------------------------------- restart


async def test_a_restart_between_the_submit_and_its_events_still_matches_them(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The batch is placed, the app stops before any event comes, and starts again: the
    call ids were kept with the calls in the same transaction as the request's placing,
    so the events (retried by the sandbox while the app was down) find their calls."""
    box = await start_box(
        concurrent_calls=10, event_delay=1.5, callback_attempts=10, callback_backoff=0.05
    )
    harness = await running(harness_for(tmp_path, fake_slack, box))
    try:
        request_id = await send(harness, "120")
        await until_status(harness, request_id, RequestStatus.PLACED)
        assert all(c.provider_call_id for c in harness.store.requests.calls(request_id))
        await harness.stop()
        assert box.state.events == []  # nothing came while the first process ran
        await harness.start(wait_for_workflows=False)
        await until_status(harness, request_id, RequestStatus.COMPLETED)
        assert outcomes(harness, request_id) == {
            NUMBER.format(1): (CallOutcome.ANSWERED, "1"),
            NUMBER.format(2): (CallOutcome.ANSWERED, "2"),
            NUMBER.format(0): (CallOutcome.NO_ANSWER, None),
        }
        assert box.state.requests_seen["place_batch"] == 1  # placed once, never again
        text = await thread(harness, request_id, until="no answer")
        assert "pressed 1 Confirm" in text and "pressed 2 Cancel" in text
    finally:
        await harness.stop()
        await box.server.stop()


# ---------------------------------------------------------------- the plan's batch size


async def test_a_batch_carries_up_to_the_plans_calls_per_minute() -> None:
    base = {
        "_env_file": None,
        "intron_direct_api_key": DIRECT_KEY,
        "public_url": "https://robocall.example",
    }
    sizes = {}
    for per_minute in (10, 100, 5000):
        settings = Settings(**base, intron_direct_calls_per_minute=per_minute)
        providers = open_providers(
            settings, slot_logs=lambda _: MemorySlotLog(), callback_token="t", sandbox_key=""
        )
        sizes[per_minute] = providers["intron-direct"].capabilities.max_batch
        for provider in providers.values():
            await provider.aclose()
    # Free plan: 10; Pro: 100; never more than one batch request carries (1,000).
    assert sizes == {10: 10, 100: 100, 5000: 1000}


async def test_call_ids_follow_our_recipients_positions() -> None:
    provider = open_intron_direct("k", callback_url=None)
    try:
        workflow = Workflow(id="w", provider="intron-direct", name="W", message="Hi")
        order = Order(
            request_id="rq",
            workflow=workflow,
            recipients=[OrderRecipient(p, NUMBER.format(p)) for p in (11, 12, 13)],
        )
        ref = str(BatchRef("batch_1", ("robo_a", None, "robo_c")))
        assert provider.call_ids(ref, order) == {11: "robo_a", 13: "robo_c"}
        assert provider.call_ids("robo_single", order) == {11: "robo_single"}
    finally:
        await provider.aclose()


def test_calls_are_found_by_their_call_id_through_an_index(tmp_path: Path) -> None:
    from bot.store import Store

    store = Store(str(tmp_path / "plan.db"))
    try:
        plan = store.db.query(
            "EXPLAIN QUERY PLAN SELECT request_id FROM calls WHERE provider_call_id = ?", ["x"]
        )
        assert any("calls_provider_call_id" in row["detail"] for row in plan), plan
    finally:
        store.close()
