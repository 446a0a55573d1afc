"""Hardening against what providers send: no callback poisons the app, large requests
finish, and a callback naming two requests is refused. End to end, over HTTP, with
restarts: what a hostile or careless provider would do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.jobs import POISON_AFTER, NewJob
from bot.core.models import RequestStatus
from bot.core.requests import PLACE, CallOrder
from bot.core.retry import JOB_RETRIES
from bot.input.recipients import Recipient
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.test_reliability import REMINDER
from tests.test_slack_app import command

FAST_JOBS = JOB_RETRIES.faster(100)


@pytest.fixture
async def harness(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox):
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"admin_user_ids": ["UADMIN"]})
    await app.start()
    await app.create_workflow(REMINDER)
    yield app
    await app.stop()


async def placed(harness: Harness, text: str) -> Any:
    await command(harness, text)
    store = harness.store
    return await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].provider_ref and r[0]
    )


def callback_for(record: Any, calls: list[Any], **changes: Any) -> dict:
    """A completion callback in seed 002's shape for `record`, every call answered."""
    body = {
        "request_id": record.provider_ref,
        "status": "COMPLETED",
        "stats": {"total_calls": len(calls), "completed_calls": len(calls)},
        "request_calls": [
            {
                "id": f"call-{c.position}",
                "status": "COMPLETED",
                "phone_number": c.phone_number,
                "call_result_duration": 30,
                "call_result_options_selected": "1",
                "user_tag_identifiers": {
                    "robocall_request_id": record.id,
                    "robocall_recipient": str(c.position),
                },
            }
            for c in calls
        ],
    }
    return body | changes


# ---------------------------------------------------------------- no poison

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(alphabet="²³¹٣߃<>@!&#*0123456789\u202e\u2066", max_size=12),
    st.just("X" * 3100),
    st.just("<!channel> <@U0EVIL> <!subteam^S0EVIL>"),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
CALL_FIELDS = [
    "id",
    "status",
    "phone_number",
    "call_result_duration",
    "call_result_options_selected",
    "user_tag_identifiers",
    "created_at",
]
TOP_FIELDS = ["status", "integrator_id", "stats", "request_calls"]
STATS_FIELDS = ["total_calls", "replied_option_one_count", "avg_duration", "replied_option_counts"]


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """Which fields of a good callback to replace, and with what."""
    where = st.sampled_from(
        [("call", f) for f in CALL_FIELDS]
        + [("top", f) for f in TOP_FIELDS]
        + [("stats", f) for f in STATS_FIELDS]
    )
    return [(*draw(where), draw(JUNK)) for _ in range(draw(st.integers(1, 4)))]


def mutated(body: dict, changes: list[tuple[str, str, Any]]) -> dict:
    body = json.loads(json.dumps(body))
    for scope, name, value in changes:
        if scope == "top":
            body[name] = value
        elif scope == "stats" and isinstance(body.get("stats"), dict):
            body["stats"][name] = value
        elif scope == "call" and isinstance(body.get("request_calls"), list):
            for call in body["request_calls"]:
                if isinstance(call, dict):
                    call[name] = value
    return body


def draw_examples(strategy: st.SearchStrategy, count: int) -> list:
    """`count` examples of `strategy`, the same ones every run: hypothesis generates,
    the async test replays them against the running app."""
    found: list = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        found.append(example)

    collect()
    return found[:count]


SLACK_MARKERS = ("<!channel>", "<@U0EVIL>", "<!subteam^", "\u202e", "\u2066", "Traceback")


async def test_no_callback_poisons_the_app(harness: Harness, sandbox: Sandbox) -> None:
    """Hostile callbacks, each followed by a restart: every one is answered with a
    status, none parks a job, none stops the app from starting, and the request it
    was about still ends right when the provider's real callback comes."""
    sandbox.state.config.callback_delay = 60  # we send the callbacks ourselves
    examples = draw_examples(mutations(), 12)
    async with httpx.AsyncClient(timeout=10) as http:
        for number, changes in enumerate(examples):
            record = await placed(harness, f"call Reminder {NUMBER.format(number % 10)} name=A")
            calls = harness.store.requests.calls(record.id)
            body = mutated(callback_for(record, calls), changes)
            answer = await http.post(harness.callback_url, json=body)
            assert answer.status_code in (200, 400, 404, 409, 422), (changes, answer.text)
            await harness.settled()
            await harness.restart()
            health = (await http.get(f"{harness.url}/healthz")).json()
            assert health["ok"] and health["parked_jobs"] == 0, (changes, health)
            good = await http.post(harness.callback_url, json=callback_for(record, calls))
            assert good.status_code == 200
            await harness.wait_until(
                lambda r=record: harness.store.requests.get(r.id).status == RequestStatus.COMPLETED
            )
    await harness.settled()
    for call in harness.fake.calls():
        text = json.dumps(call.params, ensure_ascii=False)
        assert not [m for m in SLACK_MARKERS if m in text], text[:300]


async def test_a_job_that_keeps_failing_is_parked_reported_and_blocks_nothing(
    harness: Harness, sandbox: Sandbox
) -> None:
    harness.worker.policy = FAST_JOBS
    poison = harness.running.jobs.add(NewJob(PLACE, {"no": "request id"}, lane="calls"))
    record = await placed(harness, f"call Reminder {NUMBER.format(1)} name=A")
    await harness.wait_until(
        lambda: harness.store.requests.get(record.id).status == RequestStatus.COMPLETED
    )
    await harness.wait_until(lambda: harness.store.jobs.parked()[0] == 1, timeout=10)
    [parked] = harness.store.jobs.dead()
    assert parked["id"] == poison and parked["attempts"] == POISON_AFTER
    assert "KeyError" in parked["last_error"]
    dm = await harness.fake.wait_for(
        lambda f: [m for m in f.messages("UADMIN") if "parked" in m.all_text()]
    )
    assert "request.place" in dm[0].all_text() and f"job {poison}" in dm[0].all_text()
    await harness.restart()  # a parked job never runs again, and never stops a start
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{harness.url}/healthz")).json()
    assert health["parked_jobs"] == 1
    assert health["latest_parked"] == [
        {"id": poison, "kind": PLACE, "attempts": POISON_AFTER, "error": "KeyError"}
    ]
    await harness.settled()
    assert harness.store.jobs.dead()[0]["attempts"] == POISON_AFTER


async def test_a_slack_outage_is_never_parked(harness: Harness, sandbox: Sandbox) -> None:
    """Transient failures are retried for as long as they last: a result is never
    given up on because Slack was down for a while."""
    harness.worker.policy = FAST_JOBS
    harness.fake.fail_next("chat.postMessage", status=503, times=POISON_AFTER * 2)
    record = await placed(harness, f"call Reminder {NUMBER.format(2)} name=A")
    await harness.wait_until(
        lambda: harness.store.requests.get(record.id).status == RequestStatus.COMPLETED
    )
    await harness.fake.wait_for(lambda f: f.messages("C1"), timeout=15)
    await harness.settled(timeout=20)
    assert harness.store.jobs.parked()[0] == 0


# ---------------------------------------------------------------- large requests


async def test_a_10000_recipient_request_records_every_result(
    harness: Harness, sandbox: Sandbox
) -> None:
    """Split into parts of at most 1,000 (one submission each), placed once each,
    every result recorded from the parts' callbacks."""
    sandbox.state.config.callback_delay = 0.05
    numbers = [f"+23480{n:08d}" for n in range(10_000)]
    order = CallOrder(
        workflow="Reminder",
        recipients=[Recipient(n, {"name": "A"}) for n in numbers],
        voice=None,
        requested_by="U1",
        channel="C1",
        source="test",
        idempotency_key="big-1",
    )
    record, created = harness.running.service.accept(order)
    assert created
    parts = harness.store.requests.parts(record.id)
    assert [(p.part, p.parts, p.recipient_count) for p in parts] == [
        (i, 10, 1_000) for i in range(1, 11)
    ]
    await harness.wait_until(
        lambda: all(
            harness.store.requests.get(p.id).status == RequestStatus.COMPLETED for p in parts
        ),
        timeout=60,
    )
    assert sum(1 for p in parts for c in harness.store.requests.calls(p.id) if c.outcome) == 10_000
    assert max(sandbox.state.numbers_called().values()) == 1
    assert sum(sandbox.state.numbers_called().values()) == 10_000
    # The same order again (a retry) is the same request: nothing more is placed.
    again, created = harness.running.service.accept(order)
    assert again.id == record.id and not created


# ---------------------------------------------------------------- another request's batch


async def test_a_callback_whose_tags_name_another_request_is_refused(
    harness: Harness, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 60
    first = await placed(harness, f"call Reminder {NUMBER.format(1)} name=A")
    second = await placed(harness, f"call Reminder {NUMBER.format(2)} name=B")
    first_calls = harness.store.requests.calls(first.id)
    second_calls = harness.store.requests.calls(second.id)
    # First's batch id, carrying second's calls (tagged with second's id).
    forged = callback_for(second, second_calls, request_id=first.provider_ref)
    mixed = callback_for(first, first_calls)
    mixed["request_calls"] += callback_for(second, second_calls)["request_calls"]
    async with httpx.AsyncClient() as http:
        for body in (forged, mixed):
            answer = await http.post(harness.callback_url, json=body)
            assert answer.status_code == 409, answer.text
            assert "different requests" in answer.json()["error"]
        await harness.settled()
        for record in (first, second):
            assert harness.store.requests.get(record.id).status == RequestStatus.PLACED
            assert all(c.outcome is None for c in harness.store.requests.calls(record.id))
        # Each request's own results are then applied, not taken for duplicates.
        for record, calls in ((first, first_calls), (second, second_calls)):
            answer = await http.post(harness.callback_url, json=callback_for(record, calls))
            assert answer.json()["outcome"] == "accepted"
    for record in (first, second):
        await harness.wait_until(
            lambda r=record: harness.store.requests.get(r.id).status == RequestStatus.COMPLETED
        )
