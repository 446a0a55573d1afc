"""Intron's direct API and BizPhone in the app, end to end: signed Slack requests in, the
fake Slack records what comes out, each provider's own sandbox over a socket (or, in demo
mode, all three sandboxes inside the web process), SQLite a real file."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.models import RequestStatus
from bot.core.ratelimit import MemorySlotLog
from bot.core.reconcile import first_look, round_delay
from bot.core.requests import RECONCILE
from bot.providers.base import CallOutcome, Workflow
from bot.providers.bizphone import sandbox as bizphone_sandbox
from bot.providers.bizphone.provider import CAPABILITIES as BIZPHONE_CAPABILITIES
from bot.providers.bizphone.provider import BizPhoneProvider
from bot.providers.intron_direct import sandbox as direct_sandbox
from bot.providers.intron_direct.provider import CAPABILITIES as DIRECT_CAPABILITIES
from bot.providers.registry import SANDBOX_PREFIXES, open_providers, sandbox_apps
from bot.serving import RunningServer, start_server
from bot.settings import Settings
from tests.conftest import NUMBER
from tests.harness import CALLBACK_TOKEN, Harness
from tests.support.fake_slack import FakeSlack

DIRECT_KEY = "test-direct-key"
BIZPHONE_KEY = "test-bizphone-key"
# BizPhone's results come only by polling; its real waits (5 s, up to 60 s) are shortened.
FAST_POLL = (0.2, 1.0)


@dataclasses.dataclass
class Box:
    server: RunningServer
    state: Any

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = dataclasses.replace(BIZPHONE_CAPABILITIES, poll_interval=FAST_POLL)
    monkeypatch.setattr(BizPhoneProvider, "capabilities", fast)


@pytest.fixture
async def direct_box() -> AsyncIterator[Box]:
    app = direct_sandbox.create_sandbox_app(
        direct_sandbox.SandboxConfig(event_delay=0.05, callback_attempts=1)
    )
    box = Box(await start_server(app), app.state.sandbox)
    yield box
    await box.server.stop()


@pytest.fixture
async def bizphone_box() -> AsyncIterator[Box]:
    app = bizphone_sandbox.create_sandbox_app(bizphone_sandbox.SandboxConfig(call_seconds=0.1))
    box = Box(await start_server(app), app.state.sandbox)
    yield box
    await box.server.stop()


async def running(harness: Harness) -> Harness:
    await harness.start(wait_for_workflows=False)  # no Intron: no list to wait for
    return harness


def put_workflow(harness: Harness, provider: str, name: str) -> Workflow:
    workflow = Workflow(
        id=f"wf-{provider}",
        provider=provider,
        name=name,
        message="Hello {{name}}, this is a reminder. Press 1 to confirm, 2 to cancel.",
        keypad={"1": "Confirm", "2": "Cancel"},
    )
    harness.store.workflows.put(workflow)
    return workflow


async def call(harness: Harness, text: str) -> str:
    assert harness.slack is not None
    response = await harness.slack.command(text)
    assert response.status_code == 200, response.text
    return response.text


async def completed(harness: Harness, count: int, timeout: float = 15.0) -> list:
    """The `count` newest requests, once every one of them is completed."""

    def done() -> list | None:
        records = harness.store.requests.recent(count)
        if len(records) == count and all(r.status == RequestStatus.COMPLETED for r in records):
            return records
        return None

    return await harness.wait_until(done, timeout)


async def thread_text(harness: Harness, request_id: str, until: str = "") -> str:
    """A request's thread, once a reply holds `until`."""
    ts = await harness.parent_ts(request_id)

    def replies(fake: FakeSlack) -> str | None:
        text = "\n".join(r.all_text() for r in fake.thread("C1", ts))
        return text if text and until in text else None

    return await harness.fake.wait_for(replies, timeout=10)


def outcomes(harness: Harness, records: list) -> dict[str, tuple]:
    """Each number's call, as the database keeps it: outcome and key pressed."""
    return {
        c.phone_number: (c.outcome, c.key_pressed)
        for r in records
        for c in harness.store.requests.calls(r.id)
    }


EXPECTED = {
    NUMBER.format(1): (CallOutcome.ANSWERED, "1"),
    NUMBER.format(0): (CallOutcome.NO_ANSWER, None),
    NUMBER.format(9): (CallOutcome.FAILED, None),
}
NUMBERS = " ".join(NUMBER.format(d) for d in "109")


# ---------------------------------------------------------------- which providers


def test_only_the_providers_with_keys_are_offered_and_no_sandbox_runs() -> None:
    base = {"_env_file": None, "slack_bot_token": "xoxb-t", "slack_signing_secret": "s"}
    demo = Settings(**base)
    assert demo.uses_sandbox and demo.enabled_providers == ["intron", "intron-direct", "bizphone"]
    assert set(sandbox_apps(demo, "k")) == set(SANDBOX_PREFIXES.values())

    direct = Settings(**base, intron_direct_api_key=DIRECT_KEY)
    assert not direct.uses_sandbox and direct.enabled_providers == ["intron-direct"]
    assert sandbox_apps(direct, "k") == {}
    assert direct.intron_direct_base_url == "https://voice.intron.io/api/v1/voice-bot"
    assert (direct.intron_direct_calls_per_minute, direct.intron_direct_concurrent_calls) == (
        10,
        2,
    )

    # BizPhone needs its base URL too (there is no default): start-up names it.
    no_url = Settings(**base, bizphone_api_key=BIZPHONE_KEY)
    assert any(m.startswith("BIZPHONE_BASE_URL") for m in no_url.missing())
    placeholder = Settings(**base, intron_direct_api_key="your-intron-direct-key")
    assert any(m.startswith("INTRON_DIRECT_API_KEY") for m in placeholder.missing())

    both = Settings(
        **base,
        bizphone_api_key=BIZPHONE_KEY,
        bizphone_base_url="https://bizphone.example/api",
        sandbox=True,
    )
    assert both.enabled_providers == ["bizphone"] and both.uses_sandbox
    assert list(sandbox_apps(both, "k")) == ["/_sandbox/bizphone"]


async def test_each_provider_is_opened_with_its_callback_url_and_shared_limits() -> None:
    settings = Settings(
        _env_file=None,
        intron_direct_api_key=DIRECT_KEY,
        bizphone_api_key=BIZPHONE_KEY,
        bizphone_base_url="http://127.0.0.1:9/api",
        public_url="https://robocall.example/",
    )
    names: list[str] = []

    def slot_logs(name: str) -> MemorySlotLog:
        names.append(name)
        return MemorySlotLog()

    providers = open_providers(settings, slot_logs=slot_logs, callback_token="tok", sandbox_key="")
    try:
        assert list(providers) == ["intron-direct", "bizphone"]
        direct, bizphone = providers.values()
        assert direct.callback_url == "https://robocall.example/callbacks/intron-direct/tok"
        assert bizphone.callback_url is None  # it polls
        assert direct.capabilities.max_batch == 10  # a batch: up to the plan's calls a minute
        assert not direct.sandbox and not bizphone.sandbox
        assert {n.partition(":")[0] for n in names} == {"intron-direct", "bizphone"}
    finally:
        for provider in providers.values():
            await provider.aclose()


def test_a_polling_provider_is_looked_at_soon_and_backs_off_gently() -> None:
    assert BIZPHONE_CAPABILITIES.poll_interval == (5.0, 60.0)
    assert DIRECT_CAPABILITIES.poll_interval is None
    assert first_look(BIZPHONE_CAPABILITIES, 600.0) == 5.0
    assert first_look(DIRECT_CAPABILITIES, 600.0) == 600.0
    waits = [round_delay(BIZPHONE_CAPABILITIES, 600.0, r) for r in range(1, 10)]
    assert waits[:3] == [7.5, 11.25, 16.875] and waits[-1] == 60.0
    assert round_delay(BIZPHONE_CAPABILITIES, 600.0, 7, progressed=True) == 5.0
    assert [round_delay(DIRECT_CAPABILITIES, 600.0, r) for r in (1, 2, 3)] == [600, 1200, 2400]


# ---------------------------------------------------------------- Intron direct


async def test_intron_direct_places_each_call_and_reports_it_in_the_thread(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    overrides = {"intron_direct_api_key": DIRECT_KEY, "intron_direct_base_url": direct_box.url}
    harness = await running(Harness(tmp_path, fake_slack, None, overrides=overrides))
    try:
        assert [p.id for p in harness.running.providers] == ["intron-direct"]
        put_workflow(harness, "intron-direct", "Direct reminder")
        answer = await call(harness, f'call "Direct reminder" {NUMBERS} name=A')
        assert "accepted" in answer and "Sandbox" not in answer
        # One batch for the three, each event matched to its call by its call id.
        records = await completed(harness, 1)
        assert outcomes(harness, records) == EXPECTED
        texts = {r.id: await thread_text(harness, r.id, until="failed") for r in records}
        joined = "\n".join(texts.values())
        assert "pressed 1 Confirm" in joined and "no answer" in joined and "failed" in joined
        assert NUMBER.format(1) not in joined  # masked in Slack
        assert direct_box.state.numbers_called() == {NUMBER.format(d): 1 for d in "109"}
        assert direct_box.state.requests_seen["place_batch"] == 1
        assert direct_box.state.requests_seen["place_call"] == 0
        sent = [e for e in direct_box.state.events if e["event"] == "robo_call.completed"]
        assert len(sent) == 3
        calls = direct_box.state.calls.values()
        assert {c.request["callback_url"] for c in calls} == {
            f"{harness.url}/callbacks/intron-direct/{CALLBACK_TOKEN}"
        }
        assert {c.request["message"] for c in calls} == {
            "Hello {{name}}, this is a reminder. Press 1 to confirm, 2 to cancel."
        }
        assert {c.request["variables"]["name"] for c in calls} == {"A"}
    finally:
        await harness.stop()


async def test_intron_direct_unknown_outcome_stays_unknown_and_is_never_resent(
    tmp_path: Path, fake_slack: FakeSlack, direct_box: Box
) -> None:
    """A 500 after the call was placed: the answer is lost, and this API cannot be asked
    which calls it has (no listing, no tags), so the request stays "outcome unknown"
    (README, "The Intron direct and BizPhone providers"); it is never sent again, and
    the call's events, naming a call id we never learnt, match no request."""
    overrides = {
        "intron_direct_api_key": DIRECT_KEY,
        "intron_direct_base_url": direct_box.url,
        "reconcile_after": 0.2,  # the look-up comes, and cannot tell
    }
    harness = await running(Harness(tmp_path, fake_slack, None, overrides=overrides))
    try:
        put_workflow(harness, "intron-direct", "Direct reminder")
        direct_box.state.faults.append(
            direct_sandbox.Fault(operation="place_call", status=500, after_work=True)
        )
        await call(harness, f'call "Direct reminder" {NUMBER.format(1)} name=A')
        [record] = await harness.wait_until(
            lambda: [
                r for r in harness.store.requests.recent(1) if r.status == RequestStatus.UNKNOWN
            ]
        )
        # The call was placed, and its events came back, and matched nothing.
        await harness.wait_until(
            lambda: any(e["event"] == "robo_call.completed" for e in direct_box.state.events)
        )
        # The first look came, could not tell, and another is due later.
        await harness.wait_until(
            lambda: any(
                j.payload.get("round", 1) >= 2 for j in harness.store.jobs.pending(RECONCILE)
            )
        )
        await harness.settled()
        assert harness.store.requests.get(record.id).status == RequestStatus.UNKNOWN
        assert direct_box.state.requests_seen["place_call"] == 1
        assert direct_box.state.numbers_called() == {NUMBER.format(1): 1}
        ts = await harness.parent_ts(record.id)
        shown = [m.all_text() for m in harness.fake.updates("C1", ts)]
        assert any("outcome unknown" in text for text in shown), shown
    finally:
        await harness.stop()


# ---------------------------------------------------------------- BizPhone


async def test_bizphone_polls_the_results_into_the_thread(
    tmp_path: Path, fake_slack: FakeSlack, bizphone_box: Box, fast_polling: None
) -> None:
    overrides = {"bizphone_api_key": BIZPHONE_KEY, "bizphone_base_url": bizphone_box.url}
    harness = await running(Harness(tmp_path, fake_slack, None, overrides=overrides))
    try:
        assert [p.id for p in harness.running.providers] == ["bizphone"]
        put_workflow(harness, "bizphone", "Biz reminder")
        answer = await call(harness, f'call "Biz reminder" {NUMBERS} name=A')
        assert "accepted" in answer and "Sandbox" not in answer
        [record] = await completed(harness, 1)  # one submission for all three
        assert outcomes(harness, [record]) == EXPECTED
        text = await thread_text(harness, record.id)
        assert "pressed 1 Confirm" in text and "no answer" in text and "failed" in text
        assert NUMBER.format(1) not in text
        assert bizphone_box.state.requests_seen["place_calls"] == 1
        assert bizphone_box.state.numbers_called == {NUMBER.format(d): 1 for d in "109"}
        assert record.provider_ref == f"robocall-{record.id}"
    finally:
        await harness.stop()


async def test_bizphone_unknown_outcome_is_found_by_its_status_and_never_sent_twice(
    tmp_path: Path, fake_slack: FakeSlack, bizphone_box: Box, fast_polling: None
) -> None:
    overrides = {"bizphone_api_key": BIZPHONE_KEY, "bizphone_base_url": bizphone_box.url}
    harness = await running(Harness(tmp_path, fake_slack, None, overrides=overrides))
    try:
        put_workflow(harness, "bizphone", "Biz reminder")
        bizphone_box.state.faults.append(
            bizphone_sandbox.Fault(operation="place_calls", status=500, after_work=True)
        )
        await call(harness, f'call "Biz reminder" {NUMBERS} name=A')
        # Unknown at first; the status read (our own requestId) finds it: placed, then
        # polled to the end.
        [record] = await completed(harness, 1)
        assert outcomes(harness, [record]) == EXPECTED
        trail = harness.store.audit.trail()
        actions = [row["action"] for row in trail if row["target"] == record.id]
        assert "request.unknown" in actions, actions
        text = await thread_text(harness, record.id, until="pressed 1 Confirm")
        assert "may or may not have placed these calls" in text  # said, then settled
        assert bizphone_box.state.requests_seen["place_calls"] == 1
        assert bizphone_box.state.numbers_called == {NUMBER.format(d): 1 for d in "109"}
    finally:
        await harness.stop()


# ---------------------------------------------------------------- demo mode


async def test_demo_mode_serves_the_three_sandboxes_and_a_demo_workflow_on_each(
    tmp_path: Path, fake_slack: FakeSlack, fast_polling: None
) -> None:
    harness = Harness(tmp_path, fake_slack, None)
    await harness.start()
    try:
        async with httpx.AsyncClient(base_url=harness.url) as http:
            health = (await http.get("/healthz")).json()
            assert health["provider"] == "sandbox"
            assert health["providers"] == ["intron", "intron-direct", "bizphone"]
            for prefix in ("/_sandbox/intron-direct", "/_sandbox/bizphone"):
                assert (await http.get(f"{prefix}/_sandbox/state")).status_code == 200
        names = await harness.wait_until(
            lambda: (
                names
                if len(names := {w.name for w in harness.running.workflows.cached()}) == 3
                else None
            )
        )
        assert names == {
            "Demo reminder",
            "Demo reminder (Intron direct)",
            "Demo reminder (BizPhone)",
        }
        demos = {
            "intron-direct": "Demo reminder (Intron direct)",
            "bizphone": "Demo reminder (BizPhone)",
        }
        for provider, name in demos.items():
            answer = await call(harness, f'call "{name}" {NUMBER.format(1)} name=Ada')
            assert "accepted" in answer and "Sandbox" in answer
            [record] = await completed(harness, 1)
            assert record.provider == provider
            assert "pressed 1 Confirm" in await thread_text(harness, record.id)
            ts = await harness.parent_ts(record.id)
            updates = harness.fake.updates("C1", ts)
            assert updates and all("Sandbox" in u.all_text() for u in updates)
        # Idempotent: a second start adds nothing, and a deleted demo is not made again.
        harness.store.workflows.delete("demo-bizphone")
        await harness.restart()
        await harness.settled()
        assert {w.name for w in harness.running.workflows.cached()} == names - {
            "Demo reminder (BizPhone)"
        }
    finally:
        await harness.stop()
