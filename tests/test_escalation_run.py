"""Running escalations end to end: `/robocall escalate` as a signed Slack command, each
step's call placed through the sandbox (whose outcome follows the number's last digit:
1 pressed 1, 2 pressed 2, 0 no answer, 9 failed), the parent message and its thread as
the fake Slack recorded them, the Acknowledge button as a signed click, and the worker
killed (a real process) in the middle of a step's wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.escalation import EscalationRecord, EscalationStatus, StepOutcome
from bot.core.jobs import Job
from bot.core.policies import Policy, PolicyStep
from bot.input import phones
from bot.providers.base import Workflow
from bot.providers.intron.models import WorkflowCreate
from bot.providers.intron.sandbox import Fault
from bot.providers.intron_direct import sandbox as direct_sandbox
from bot.serving import start_server
from bot.slack.ids import ActionId
from bot.store import Store
from tests.conftest import NUMBER, Sandbox, make_client
from tests.harness import CALLBACK_TOKEN, Harness, assert_valid_blocks, free_port
from tests.support.fake_slack import FakeSlack
from tests.test_crash_safety import AppProcesses

ON_CALL = WorkflowCreate(
    name="On-call alert",
    message="Alert from [policy] for [name], step [step]: [message]. Press 1 to acknowledge.",
    include_reply=True,
    response_options={"1": "Acknowledge", "2": "Pass"},
)
WAIT = 30.0  # long: a step that moves on before it must have moved on at once


def n(digit: int | str) -> str:
    return NUMBER.format(digit)


def policy(workflow: str, *calls: str, repeat: int = 0, wait: float = WAIT, **kw) -> Policy:
    return Policy(
        id="ep-0123456789ab",
        name="Payments on-call",
        channel="C1",
        workflow=workflow,
        steps=[PolicyStep(call=c, wait=wait) for c in calls],
        repeat=repeat,
        **kw,
    )


@pytest.fixture
async def on_call(harness: Harness) -> Workflow:
    created = await harness.create_workflow(ON_CALL)
    return harness.store.workflows.get(created.id)


async def escalate(harness: Harness, text: str = "Card payments failing") -> str:
    assert harness.slack is not None
    answer = await harness.slack.command(f'escalate "payments ON-CALL" {text}')
    assert answer.status_code == 200, answer.text
    assert "started" in answer.text, answer.text
    [row] = harness.store.db.query("SELECT id FROM escalations ORDER BY started_at DESC LIMIT 1")
    return row["id"]


async def ended(harness: Harness, escalation_id: str, timeout: float = 15.0) -> EscalationRecord:
    service = harness.running.escalations
    assert service is not None
    return await harness.wait_until(
        lambda: (e := service.get(escalation_id)) and not e.running and e, timeout
    )


async def thread(harness: Harness, escalation_id: str, until: str, count: int = 1) -> list[str]:
    """The replies under the escalation's parent, once `count` of them hold `until`."""
    ts = await harness.wait_until(lambda: harness.store.escalations.message_ts(escalation_id))

    def replies(fake: FakeSlack) -> list[str] | None:
        texts = [m.all_text() for m in fake.thread("C1", ts)]
        return texts if sum(until in t for t in texts) >= count else None

    return await harness.fake.wait_for(replies, timeout=15)


async def parent_now(harness: Harness, escalation_id: str, until: str) -> dict:
    """The parent message's latest version (post or edit), once it holds `until`."""
    ts = await harness.wait_until(lambda: harness.store.escalations.message_ts(escalation_id))

    def latest(fake: FakeSlack) -> dict | None:
        versions = [
            m
            for m in fake.messages("C1")
            if not m.params.get("thread_ts") and escalation_id in m.all_text()
        ]
        versions = [*versions, *fake.updates("C1", ts)]
        if not versions:
            return None
        last = versions[-1]
        return last.params if until in last.all_text() else None

    return await harness.fake.wait_for(latest, timeout=15)


def buttons(params: dict) -> list[str]:
    return [
        e["action_id"]
        for b in params.get("blocks") or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


def text_of(params: dict) -> str:
    from tests.support.fake_slack import _texts

    return "\n".join(_texts(params))


# ---------------------------------------------------------------- the chain


async def test_acknowledged_at_step_one(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    harness.store.policies.put(policy(on_call.id, n(1), n(0)))
    escalation_id = await escalate(harness)
    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert record.ended_by == phones.mask(n(1))
    parent = await parent_now(harness, escalation_id, "Acknowledged")
    assert_valid_blocks(parent["blocks"])
    shown = text_of(parent)
    assert "pressed 1 on the call" in shown and "Payments on-call" in shown
    assert buttons(parent) == []  # ended: no more buttons
    replies = await thread(harness, escalation_id, "Acknowledged by")
    assert any("Step 1 of 2" in r and "pressed 1" in r for r in replies), replies
    assert sandbox.state.numbers_called() == {n(1): 1}  # step 2 never called
    # The step's call is a request with no channel: the calls' notifier posted nothing.
    assert not [m for m in harness.fake.messages("C1") if "rq-" in m.all_text()]
    call = next(iter(sandbox.state.calls.values()))
    assert call.workflow_variables["message"] == "Card payments failing"
    assert call.workflow_variables["policy"] == "Payments on-call"
    assert call.workflow_variables["step"] == "1"


async def test_acknowledged_at_step_three_each_step_moving_on_at_once(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    """No answer (a Slack user, phone from their profile), key 2, then key 1: every step
    moves on at once, long before its 30 s wait."""
    harness.fake.users["UONCALL"] = {"profile": {"phone": n(0), "real_name": "Ada Obi"}}
    harness.store.policies.put(policy(on_call.id, "UONCALL", n(2), n(1)))
    began = time.monotonic()
    escalation_id = await escalate(harness)
    record = await ended(harness, escalation_id)
    took = time.monotonic() - began
    assert record.status == EscalationStatus.ACKNOWLEDGED
    assert took < WAIT, took
    replies = await thread(harness, escalation_id, "Acknowledged by")
    joined = "\n".join(replies)
    assert "Step 1 of 3: <@UONCALL>" in joined and "did not answer" in joined
    assert "Step 2 of 3" in joined and "pressed 2 (1 acknowledges)" in joined
    assert "Step 3 of 3" in joined and "pressed 1" in joined
    assert n(0) not in joined and phones.mask(n(0)) in joined  # masked, never whole
    assert sandbox.state.numbers_called() == {n(0): 1, n(2): 1, n(1): 1}
    steps = harness.running.escalations.steps(escalation_id)
    assert [s.outcome for s in steps] == [
        StepOutcome.NO_ANSWER,
        StepOutcome.OTHER_KEY,
        StepOutcome.ACKNOWLEDGED,
    ]
    first = next(c for c in sandbox.state.calls.values() if c.phone_number == n(0))
    assert first.workflow_variables["name"] == "Ada Obi"  # [name] from the profile


async def test_nobody_acknowledges_the_chain_repeats_then_the_channel_is_told(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    harness.store.policies.put(policy(on_call.id, n(0), n(9), repeat=1))
    escalation_id = await escalate(harness)
    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.EXHAUSTED
    replies = await thread(harness, escalation_id, "<!channel>")
    loud = [r for r in replies if "<!channel>" in r]
    assert len(loud) == 1 and "Nobody acknowledged" in loud[0]
    assert len([r for r in replies if "Step " in r]) == 4
    assert any("round 2 of 2" in r and "the call failed" in r for r in replies), replies
    parent = await parent_now(harness, escalation_id, "Nobody acknowledged")
    assert buttons(parent) == []
    assert sandbox.state.numbers_called() == {n(0): 2, n(9): 2}


async def test_acknowledge_from_slack_while_the_call_is_in_flight(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 1.5  # the call's result comes later
    harness.store.policies.put(policy(on_call.id, n(0), n(1)))
    escalation_id = await escalate(harness)
    parent = await parent_now(harness, escalation_id, "Calling")
    assert buttons(parent) == [ActionId.ESCALATION_ACKNOWLEDGE, ActionId.ESCALATION_RESOLVE]
    await harness.wait_until(lambda: sandbox.state.numbers_called())
    ts = harness.store.escalations.message_ts(escalation_id)
    assert harness.slack is not None
    click = await harness.slack.action(
        ActionId.ESCALATION_ACKNOWLEDGE,
        escalation_id,
        user_id="U07ACKER",
        channel_id="C1",
        message_ts=ts,
    )
    assert click.status_code == 200
    record = harness.running.escalations.get(escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED and record.ended_by == "U07ACKER"
    parent = await parent_now(harness, escalation_id, "Acknowledged* by <@U07ACKER>")
    assert buttons(parent) == []
    # The call in flight still has its result reported; the chain does not go on.
    replies = await thread(harness, escalation_id, "did not answer")
    assert any("already acknowledged" in r for r in replies), replies
    await harness.settled()
    assert sandbox.state.numbers_called() == {n(0): 1}
    again = await harness.slack.action(
        ActionId.ESCALATION_RESOLVE,
        escalation_id,
        user_id="U08RESOLVE",
        channel_id="C1",
        message_ts=ts,
    )
    assert again.status_code == 200
    told = await harness.fake.wait_for(
        lambda f: [r for r in f.responses() if "not resolved" in r.all_text()]
    )
    assert "already acknowledged by <@U07ACKER>" in told[0].all_text()


async def test_a_call_whose_result_never_comes_counts_as_not_acknowledged_after_the_wait(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    """No callback within the step's 5 s wait: the step ends then, the next is called; the
    Resolve button stops the chain (anyone may press it) and the parent says who."""
    sandbox.state.config.callback_delay = 30.0  # the result comes long after the wait
    harness.store.policies.put(policy(on_call.id, n(0), n(1), wait=5))
    began = time.monotonic()
    escalation_id = await escalate(harness)
    await harness.wait_until(lambda: n(1) in sandbox.state.numbers_called(), timeout=15)
    assert time.monotonic() - began >= 5.0  # not before the wait was over
    replies = await thread(harness, escalation_id, "no result came within the step's wait")
    assert any("Step 1 of 2" in r and "Moving on" in r for r in replies), replies
    parent = await parent_now(harness, escalation_id, "step 2 of 2")
    assert phones.mask(n(1)) in text_of(parent)
    ts = harness.store.escalations.message_ts(escalation_id)
    assert harness.slack is not None
    await harness.slack.action(
        ActionId.ESCALATION_RESOLVE,
        escalation_id,
        user_id="U09RESOLVE",
        channel_id="C1",
        message_ts=ts,
    )
    record = harness.running.escalations.get(escalation_id)
    assert record.status == EscalationStatus.RESOLVED and record.ended_by == "U09RESOLVE"
    parent = await parent_now(harness, escalation_id, "Resolved* by <@U09RESOLVE>")
    assert buttons(parent) == []
    assert sandbox.state.numbers_called() == {n(0): 1, n(1): 1}


async def test_key_1_on_a_call_still_ringing_after_a_slack_acknowledge_is_reported_not_credited(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 1.5
    harness.store.policies.put(policy(on_call.id, n(1), n(0)))
    escalation_id = await escalate(harness)
    await harness.wait_until(lambda: sandbox.state.numbers_called())
    ts = await harness.wait_until(lambda: harness.store.escalations.message_ts(escalation_id))
    assert harness.slack is not None
    await harness.slack.action(
        ActionId.ESCALATION_ACKNOWLEDGE,
        escalation_id,
        user_id="U07ACKER",
        channel_id="C1",
        message_ts=ts,
    )
    replies = await thread(harness, escalation_id, "pressed 1")
    assert any("already acknowledged by <@U07ACKER>" in r for r in replies), replies
    await harness.settled()
    parent = await parent_now(harness, escalation_id, "Acknowledged* by <@U07ACKER>")
    assert "pressed 1 on the call" not in text_of(parent)
    assert harness.running.escalations.get(escalation_id).ended_by == "U07ACKER"


async def test_every_escalation_job_run_again_changes_nothing(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    """A job may run twice (its worker died after the work, before finishing it): each
    checks the state it moves on, so a second run calls nobody and posts nothing."""
    harness.store.policies.put(policy(on_call.id, n(2), n(1)))
    escalation_id = await escalate(harness)
    await ended(harness, escalation_id)
    await harness.settled()
    service = harness.running.escalations
    before = (len(harness.fake.messages("C1")), len(harness.fake.calls("chat.update")))
    for step in service.steps(escalation_id):
        where = {"escalation_id": escalation_id, "round": step.round, "step": step.step}
        for kind, extra in (
            ("escalation.step", {}),
            ("escalation.timeout", {}),
            ("escalation.result", {"request_id": step.request_id}),
        ):
            job = Job(id=0, kind=kind, lane="results", payload=where | extra, run_at=0)
            await service.kinds()[kind].handler(job)
    await harness.settled()
    assert sandbox.state.numbers_called() == {n(2): 1, n(1): 1}
    after = (len(harness.fake.messages("C1")), len(harness.fake.calls("chat.update")))
    assert after == before
    assert service.get(escalation_id).status == EscalationStatus.ACKNOWLEDGED


async def test_a_profile_without_a_phone_is_skipped_and_the_chain_moves_on(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    harness.fake.users["UNOPHONE"] = {"profile": {"real_name": "No Phone"}}
    harness.store.policies.put(policy(on_call.id, "UNOPHONE", n(1)))
    escalation_id = await escalate(harness)
    record = await ended(harness, escalation_id)
    assert record.status == EscalationStatus.ACKNOWLEDGED
    replies = await thread(harness, escalation_id, "skipped")
    assert any(
        "<@UNOPHONE>" in r and "no phone number in their Slack profile" in r for r in replies
    )
    assert sandbox.state.numbers_called() == {n(1): 1}


async def test_a_test_calls_only_the_first_step_and_says_so(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    service = harness.running.escalations
    record, created = service.start(
        policy(on_call.id, n(2), n(1), repeat=2), "Drill", started_by="U1", source="test", test=True
    )
    assert created
    done = await ended(harness, record.id)
    assert done.status == EscalationStatus.EXHAUSTED
    replies = await thread(harness, record.id, "Test over")
    assert not any("<!channel>" in r for r in replies)
    assert any("This was a test" in r for r in replies)
    parent = await parent_now(harness, record.id, "Test over")
    assert "test" in text_of(parent)
    assert sandbox.state.numbers_called() == {n(2): 1}


async def test_one_escalation_per_group_while_it_runs(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 2.0
    service = harness.running.escalations
    chosen = policy(on_call.id, n(0))
    first, created = service.start(
        chosen,
        "A",
        started_by="Alertmanager",
        source="alertmanager",
        group_key="alertmanager:{}:{a}",
    )
    again, created_again = service.start(
        chosen,
        "A",
        started_by="Alertmanager",
        source="alertmanager",
        group_key="alertmanager:{}:{a}",
    )
    assert created and not created_again and again.id == first.id
    resolved = service.resolve_group("alertmanager:{}:{a}", "Alertmanager")
    assert resolved is not None and resolved.status == EscalationStatus.RESOLVED
    assert service.resolve_group("alertmanager:{}:{a}", "Alertmanager") is None
    parent = await parent_now(harness, first.id, "Resolved* by Alertmanager")
    assert buttons(parent) == []


async def test_alert_text_is_shown_escaped(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    harness.store.policies.put(policy(on_call.id, n(1)))
    escalation_id = await escalate(
        harness, "<!channel> db down, ask <@U0ADMIN> <https://x.io|login>"
    )
    parent = await parent_now(harness, escalation_id, "Acknowledged")
    shown = text_of(parent)
    assert "&lt;!channel&gt;" in shown and "&lt;@U0ADMIN&gt;" in shown
    assert "<!channel>" not in shown and "<@U0ADMIN>" not in shown and "<https://" not in shown
    replies = await thread(harness, escalation_id, "Acknowledged by")
    assert not any("<!channel>" in r for r in replies)


async def test_unknown_policy_is_refused_naming_it_and_the_known_ones(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    harness.store.policies.put(policy(on_call.id, n(1)))
    assert harness.slack is not None
    answer = await harness.slack.command("escalate Nope something broke")
    assert "no policy 'Nope'" in answer.text and "'Payments on-call'" in answer.text
    empty = await harness.slack.command('escalate "Payments on-call"')
    assert "message is empty" in empty.text
    # Unquoted, a name with spaces is found by its words.
    ok = await harness.slack.command("escalate payments on-call it broke")
    assert "started" in ok.text
    assert harness.store.db.query("SELECT message FROM escalations")[0]["message"] == "it broke"
    await harness.settled()
    assert sandbox.state.numbers_called() == {n(1): 1}


# ---------------------------------------------------------------- fallback


@pytest.fixture
async def direct_box() -> AsyncIterator:
    app = direct_sandbox.create_sandbox_app(
        direct_sandbox.SandboxConfig(event_delay=0.05, callback_attempts=1)
    )
    server = await start_server(app)
    yield server, app.state.sandbox
    await server.stop()


async def test_a_call_the_provider_refuses_is_placed_with_the_fallback_workflow(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox, direct_box
) -> None:
    server, direct = direct_box
    overrides = {"intron_direct_api_key": "test-direct-key", "intron_direct_base_url": server.url}
    harness = Harness(tmp_path, fake_slack, sandbox, overrides=overrides)
    await harness.start()
    try:
        created = await harness.create_workflow(ON_CALL)
        fallback = Workflow(
            id="wf-direct-oncall",
            provider="intron-direct",
            name="On-call (direct)",
            message="Alert: [message]. Press 1 to acknowledge.",
            keypad={"1": "Acknowledge", "2": "Pass"},
        )
        harness.store.workflows.put(fallback)
        harness.store.policies.put(policy(created.id, n(1), n(0), fallback_workflow=fallback.id))
        sandbox.state.faults.append(Fault("place_calls", status=400))  # refused: nobody called
        escalation_id = await escalate(harness)
        record = await ended(harness, escalation_id)
        assert record.status == EscalationStatus.ACKNOWLEDGED
        replies = await thread(harness, escalation_id, "fallback")
        assert any("fallback workflow 'On-call (direct)'" in r for r in replies), replies
        assert sandbox.state.numbers_called() == {}
        assert direct.numbers_called() == {n(1): 1}
        [step] = harness.running.escalations.steps(escalation_id)
        assert step.fallback_request_id and step.outcome == StepOutcome.ACKNOWLEDGED
    finally:
        await harness.stop()


# ---------------------------------------------------------------- killed mid-wait


@pytest.fixture
async def processes(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> AsyncIterator[AppProcesses]:
    sandbox.state.config.callback_backoff = 0.3  # retry callbacks while the app is down
    port = free_port()
    async with make_client(sandbox.url) as client:
        created = await client.create_workflow(
            ON_CALL.model_copy(
                update={
                    "call_back_url": f"http://127.0.0.1:{port}/callbacks/intron/{CALLBACK_TOKEN}"
                }
            )
        )
    app = AppProcesses(tmp_path, fake_slack, sandbox, port)
    app.workflow_id = created.id  # type: ignore[attr-defined]
    yield app
    await app.kill_all()


@pytest.mark.slow
async def test_the_worker_killed_in_the_middle_of_a_wait_resumes_and_calls_nobody_twice(
    processes: AppProcesses, sandbox: Sandbox
) -> None:
    """Step 1's call is placed, its result comes only after 3 s, and the worker is killed
    (SIGKILL) once the call is placed, in the middle of the wait, and kept down past the
    step's 5 s wait: after the restart the chain goes on from step 1's end, and every
    number is called once. (Conditions, not fixed sleeps: each wait ends as soon as what
    it waits for is true, so the test takes no longer than it must under load.)"""
    sandbox.state.config.callback_delay = 3.0
    await processes.start()
    store = Store(processes.db)
    try:
        store.policies.put(policy(processes.workflow_id, n(0), n(1), wait=5))  # type: ignore[attr-defined]
        answer = await processes.command('escalate "Payments on-call" Disk full')
        assert "started" in answer.text, answer.text
        # Killed once the provider has step 1's call (the request is stored as placed):
        # in the wait, not in the middle of sending it.
        async with asyncio.timeout(20):
            while not store.db.query(
                "SELECT 1 FROM requests WHERE source = 'escalation' AND status = 'placed'"
            ):
                await asyncio.sleep(0.05)
        await processes.kill_workers()
        [row] = store.db.query("SELECT id, status, step FROM escalations")
        assert row["status"] == "running" and row["step"] == 0
        sandbox.state.config.callback_delay = 0.05  # step 2's result (step 1's is on its way)
        [first] = store.escalations.steps(row["id"])
        # Down until the step's wait is over and step 1's result came in meanwhile (the web
        # process stored it for a worker to apply).
        async with asyncio.timeout(20):
            while time.time() < first["due_at"] + 0.3 or not store.db.query(
                "SELECT 1 FROM callbacks WHERE request_id = ?", [first["request_id"]]
            ):
                await asyncio.sleep(0.05)
        assert store.escalations.get(row["id"])["status"] == "running"
        await processes.start()
        async with asyncio.timeout(30):
            while store.escalations.get(row["id"])["status"] == "running":
                await asyncio.sleep(0.1)
        assert store.escalations.get(row["id"])["status"] == "acknowledged"
        assert sandbox.state.numbers_called() == {n(0): 1, n(1): 1}
        steps = store.escalations.steps(row["id"])
        assert [s["state"] for s in steps] == ["ended", "ended"]
        ts = store.escalations.message_ts(row["id"])
        replies = await processes.fake.wait_for(
            lambda f: (
                (r := [m.all_text() for m in f.thread("C1", ts)])
                and any("Acknowledged by" in t for t in r)
                and r
            ),
            timeout=20,
        )
        assert len([r for r in replies if "Step 1 of 2" in r]) == 1, replies
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["escalation.calling", "escalation.step_ended"])
async def test_the_worker_killed_as_a_step_is_called_or_ends_calls_nobody_twice(
    processes: AppProcesses, sandbox: Sandbox, point: str
) -> None:
    """The worker kills itself the moment a step's call is committed (request stored, not
    sent yet), or the moment a step's end and the next step are committed (the next not
    called yet): a new worker places each call once and the chain goes on."""
    await processes.start(failpoints=point)
    store = Store(processes.db)
    try:
        store.policies.put(policy(processes.workflow_id, n(2), n(1), wait=5))  # type: ignore[attr-defined]
        answer = await processes.command('escalate "Payments on-call" Disk full')
        assert "started" in answer.text, answer.text
        async with asyncio.timeout(20):
            await processes.workers[0].wait()  # it killed itself at the point
        await processes.kill_workers()
        await processes.start()
        [row] = store.db.query("SELECT id FROM escalations")
        async with asyncio.timeout(30):
            while store.escalations.get(row["id"])["status"] == "running":
                await asyncio.sleep(0.1)
        assert store.escalations.get(row["id"])["status"] == "acknowledged"
        assert sandbox.state.numbers_called() == {n(2): 1, n(1): 1}
    finally:
        store.close()
