"""Reliability, in process: callbacks in every bad shape and order, a provider that
misbehaves at random, and a Slack that answers 429 and 5xx. Each test would fail if
a request were lost, a result posted twice, or a number called twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.core.models import FINAL_STATUSES, RequestStatus
from bot.providers.intron.models import WorkflowCreate
from bot.providers.intron.sandbox import Chaos, Fault
from bot.web.callbacks import callback_limit
from tests.conftest import NUMBER, Sandbox, start_sandbox
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack, RateLimit
from tests.test_slack_app import command

REMINDER = WorkflowCreate(
    name="Reminder",
    message="Hello [name]",
    include_reply=True,
    response_options={"1": "Yes", "2": "No"},
)


def unique_number(n: int) -> str:
    return f"+2348031{n:06d}"


@pytest.fixture
async def harness(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[Harness]:
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"reconcile_after": 1.0})
    await app.start()
    await app.create_workflow(REMINDER)
    yield app
    await app.stop()


async def completed(harness: Harness, count: int, timeout: float = 15.0) -> list:
    store = harness.store
    return await harness.wait_until(
        lambda: (
            (
                done := [
                    r for r in store.requests.recent(1000) if r.status == RequestStatus.COMPLETED
                ]
            )
            and len(done) >= count
            and done
        ),
        timeout=timeout,
    )


# ---------------------------------------------------------------- 2. callbacks


async def test_the_same_callback_three_times_posts_once(harness: Harness, sandbox: Sandbox):
    await command(harness, f"call Reminder {NUMBER.format(1)} name=Ada")
    [record] = await completed(harness, 1)
    await harness.settled()
    body = harness.store.requests.callback_log()[0]["body"]
    before = len(harness.fake.calls())
    async with httpx.AsyncClient() as http:
        answers = await asyncio.gather(
            *(http.post(harness.callback_url, content=body) for _ in range(3))
        )
    assert [a.json()["outcome"] for a in answers] == ["duplicate"] * 3
    await harness.settled()
    assert len(harness.fake.calls()) == before
    ts = await harness.parent_ts(record.id)
    assert sum("Results for" in m.all_text() for m in harness.fake.thread("C1", ts)) == 1


async def test_a_callback_for_a_request_still_being_submitted(
    harness: Harness, sandbox: Sandbox
) -> None:
    """Intron's callback beats its own answer to POST /call: matched by our tag."""
    sandbox.state.config.callback_delay = 0.05
    sandbox.state.faults.append(Fault("place_calls", answer_delay=1.0))
    await command(harness, f"call Reminder {NUMBER.format(2)} name=Ada")
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED and r[0],
        timeout=5,
    )
    assert record.provider_ref in sandbox.state.batches  # learnt from the callback
    await asyncio.sleep(1.2)  # the late answer to POST /call arrives: it changes nothing
    await harness.settled()
    assert store.requests.get(record.id).status == RequestStatus.COMPLETED
    ts = await harness.parent_ts(record.id)
    assert sum("Results for" in m.all_text() for m in harness.fake.thread("C1", ts)) == 1
    assert "completed, " in harness.fake.updates("C1", ts)[-1].all_text()


async def test_callbacks_out_of_order(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.state.config.callback_delay = 30  # we send the callbacks ourselves
    await command(harness, f"call Reminder {NUMBER.format(1)} {NUMBER.format(2)} name=Ada")
    store = harness.store
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].provider_ref and r[0]
    )
    positions = {c.phone_number: c.position for c in store.requests.calls(record.id)}

    def callback(status: str, calls: list[tuple[str, str, str | None]]) -> dict:
        return {
            "request_id": record.provider_ref,
            "status": status,
            "stats": {"total_calls": 2, "completed_calls": len(calls)},
            "request_calls": [
                {
                    "id": f"c{n}",
                    "status": s,
                    "phone_number": n,
                    "call_result_duration": 30,
                    "call_result_options_selected": key,
                    "user_tag_identifiers": {
                        "robocall_request_id": record.id,
                        "robocall_recipient": str(positions[n]),
                    },
                }
                for n, s, key in calls
            ],
        }

    progress = callback("PROCESSING", [(NUMBER.format(1), "COMPLETED", "1")])
    final = callback(
        "COMPLETED", [(NUMBER.format(1), "COMPLETED", "1"), (NUMBER.format(2), "COMPLETED", "2")]
    )
    async with httpx.AsyncClient() as http:
        # Each is stored and answered at once; the worker applies it.
        answer = await http.post(harness.callback_url, json=progress)
        assert answer.json()["outcome"] == "accepted"
        await harness.wait_until(lambda: store.requests.calls(record.id)[0].key_pressed == "1")
        assert store.requests.get(record.id).status == RequestStatus.PLACED
        assert (await http.post(harness.callback_url, json=final)).json()["outcome"] == "accepted"
        await harness.wait_until(
            lambda: store.requests.get(record.id).status == RequestStatus.COMPLETED
        )
        late = await http.post(harness.callback_url, json=progress)  # stale, after the end
        assert late.json()["outcome"] == "duplicate"
    assert [c.key_pressed for c in store.requests.calls(record.id)] == ["1", "2"]
    await harness.settled()
    ts = await harness.parent_ts(record.id)
    assert sum("Results for" in m.all_text() for m in harness.fake.thread("C1", ts)) == 1


async def test_a_bad_callback_never_breaks_the_next_good_one(
    harness: Harness, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 1.0
    await command(harness, f"call Reminder {NUMBER.format(3)} name=Ada")
    async with httpx.AsyncClient() as http:
        bad = [
            await http.post(harness.callback_url, content=b"{"),
            await http.post(harness.callback_url, json={"request_id": 1, "status": []}),
            await http.post(harness.callback_url, content=b"x" * (callback_limit(1_000) + 1)),
            await http.post(harness.callback_url.replace("cb-", "xx-"), json={}),
            await http.post(harness.callback_url, json={"request_id": "nope", "status": "OK"}),
        ]
    assert [b.status_code for b in bad] == [400, 422, 413, 404, 404]
    assert len(await completed(harness, 1)) == 1  # the real callback still lands


# ---------------------------------------------------------------- 4. provider faults


async def test_a_misbehaving_provider_never_calls_anyone_twice(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """20% 500s (half of them after the work was done), 429s with Retry-After, slow
    answers: every request ends, truthfully, and no number is called twice."""
    chaos = Chaos(
        error_before=0.1,
        error_after=0.1,
        rate_limit=0.1,
        slow=0.1,
        slow_seconds=1.5,
        retry_after=0.3,
        seed=7,
    )
    box = await start_sandbox(chaos=chaos, callback_delay=0.2)
    app = Harness(
        tmp_path, fake_slack, box, overrides={"reconcile_after": 1.0, "intron_timeout": 1.0}
    )
    try:
        await app.start()
        await app.create_workflow(REMINDER)
        count = 30
        for n in range(count):
            await command(app, f"call Reminder {unique_number(n)} name=P{n}")
        store = app.store
        await app.wait_until(
            lambda: (
                len(store.requests.with_status(*FINAL_STATUSES)) == count
                and not store.requests.with_status(RequestStatus.UNKNOWN)
            ),
            timeout=60,
        )
        called = box.state.numbers_called()
        assert max(called.values()) == 1, "a number was called twice"
        outcomes = {r.id: r for r in store.requests.recent(count)}
        for record in outcomes.values():
            [call] = store.requests.calls(record.id)
            if record.status == RequestStatus.COMPLETED:
                assert called[call.phone_number] == 1
            else:  # failed: and then truly nobody was called
                assert record.status == RequestStatus.FAILED, record
                assert call.phone_number not in called
        statuses = [r.status for r in outcomes.values()]
        assert statuses.count(RequestStatus.COMPLETED) >= count // 2
        assert box.state.rate_limited == {}  # our own limiter kept Intron's limits
        await app.settled()
        for record in outcomes.values():
            ts = await app.parent_ts(record.id)
            assert ts and app.fake.thread("C1", ts), f"{record.id} was not reported"
    finally:
        await app.stop()
        await box.server.stop()


# ---------------------------------------------------------------- 5. Slack faults


async def test_slack_429s_and_5xx_lose_nothing_and_keep_order(
    harness: Harness, sandbox: Sandbox
) -> None:
    fake = harness.fake
    fake.set_rate_limit(RateLimit(burst=3, per_seconds=1.0))
    fake.fail_next("chat.postMessage", status=503, times=2)
    fake.fail_next("chat.update", status=500, times=2)
    for n in range(4):
        await command(harness, f"call Reminder {unique_number(n)} name=P{n}")
    records = await completed(harness, 4, timeout=30)
    await harness.settled(timeout=60)
    assert len(fake.messages("C1")) >= 4 + 4  # 4 parents, 4 results
    for record in records:
        ts = await harness.parent_ts(record.id)
        assert ts is not None
        parents = [
            m
            for m in fake.messages("C1")
            if m.at and not m.params.get("thread_ts") and record.id in m.all_text()
        ]
        assert len(parents) == 1
        thread = fake.thread("C1", ts)
        assert [("Results for" in m.all_text()) for m in thread] == [True]
        assert parents[0].at <= thread[0].at
        # The parent shows the latest state when it is posted, so a late parent needs
        # no edit: the final state is in the last edit, or else in the parent itself.
        edits = fake.updates("C1", ts)
        assert "completed, " in (edits[-1] if edits else parents[0]).all_text()
    assert fake.rejections(), "the fake was expected to push back"
    methods = [r.method for r in fake.rejected if r.status == 429]
    assert methods, "no 429 was exercised"


async def test_results_queued_while_the_parent_is_in_flight_are_posted_once(
    harness: Harness, sandbox: Sandbox
) -> None:
    """The parent post is slow; the results are queued meanwhile. Recording where the
    parent landed must not forget that, or a restart would post the results again."""
    harness.fake.set_latency("chat.postMessage", 0.5)
    await command(harness, f"call Reminder {NUMBER.format(1)} name=Ada")
    [record] = await completed(harness, 1)
    await harness.settled()
    assert harness.slack_store.message(record.id).results_queued
    await harness.restart()
    await harness.settled()
    results = [m for m in harness.fake.messages("C1") if "Results for" in m.all_text()]
    assert len(results) == 1


async def test_a_change_while_the_parent_is_being_posted_gets_its_own_edit(
    harness: Harness, sandbox: Sandbox
) -> None:
    """The parent is rendered ("placing…") and slow to post; the request fails meanwhile.
    The channel must end showing the failure, not the state the parent was drawn in."""
    harness.fake.set_latency("chat.postMessage", 0.5)
    sandbox.state.faults.append(Fault("place_calls", status=401))
    await command(harness, f"call Reminder {NUMBER.format(1)} name=Ada")
    store = harness.store
    await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.FAILED
    )
    await harness.settled()
    [parent] = [m for m in harness.fake.messages("C1") if not m.params.get("thread_ts")]
    edits = harness.fake.updates(
        "C1", harness.slack_store.message(store.requests.recent(1)[0].id).ts
    )
    assert "failed, nobody was called" in (edits[-1] if edits else parent).all_text()


async def test_pending_slack_work_is_delivered_after_a_restart(
    harness: Harness, sandbox: Sandbox
) -> None:
    fake = harness.fake
    for method in ("chat.postMessage", "chat.update"):  # Slack's messaging is down
        fake.fail_next(method, status=503, times=10_000)
    await command(harness, f"call Reminder {NUMBER.format(1)} name=Ada")
    [record] = await completed(harness, 1)
    store = harness.store
    await harness.wait_until(lambda: store.jobs.pending("slack.post"))  # queued, not delivered
    assert fake.messages("C1") == []
    await harness.stop()
    fake.reset()  # Slack is back
    await harness.start()
    await harness.settled(timeout=10)
    ts = await harness.parent_ts(record.id)
    assert ts is not None
    assert "Results for" in fake.thread("C1", ts)[0].all_text()
    assert json.dumps(fake.messages("C1")[0].params).count(record.id) >= 1
