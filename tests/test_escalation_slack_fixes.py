"""The Slack side of escalations, end to end (signed Slack requests in, the fake Slack
records what comes out, the sandbox plays Intron): a step's phone read at run time when
Slack fails, *Escalate by phone* twice on one message, answers and redraws after the ack
run as jobs, ESCALATION_POLICIES_FILE loaded by the worker only, and the Home tab's
running escalations."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bot.core.escalation import StepOutcome
from bot.core.policies import Policy, PolicyStep
from bot.input import phones
from bot.providers.base import Workflow
from bot.slack.blocks import when
from bot.slack.escalations import handlers, running
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER, Sandbox, make_client
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    FORM,
    app_home_opened,
    plain_text_value,
    static_select_value,
)
from tests.test_escalation_policies import ONCALL, click, form, message_action, save, shown
from tests.test_escalation_run import ON_CALL, ended, escalate, thread

ADA = "U7ADA"
WAIT = 30.0


def n(digit: int | str) -> str:
    return NUMBER.format(digit)


def policy(workflow: str, *calls: str, name: str = "Payments on-call", channel: str = "C1"):
    return Policy(
        id=f"ep-{abs(hash(name)) % 10**12:012d}",
        name=name,
        channel=channel,
        workflow=workflow,
        steps=[PolicyStep(call=c, wait=WAIT) for c in calls],
    )


@pytest.fixture
async def on_call(harness: Harness) -> Workflow:
    created = await harness.create_workflow(ON_CALL)
    return harness.store.workflows.get(created.id)


def keep_old_number(harness: Harness, user: str, phone: str, age: float) -> None:
    """A number kept for `user` from a profile read `age` seconds ago."""
    harness.slack_store.keep_user_phone(user, phone)
    with harness.store.db.write():
        harness.store.db.execute(
            "UPDATE slack_user_phones SET fetched_at = ? WHERE user_id = ?",
            [time.time() - age, user],
        )


# ---------------------------------------------------------------- the step's phone at run time


async def test_slack_failing_at_run_time_calls_the_last_known_number_whatever_its_age(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    """The profile now says n(1), but Slack is rate limited as the step runs: the number
    kept from a read a day ago is called, not skipped (the primary on-call)."""
    harness.fake.users[ADA] = {"profile": {"phone": n(1)}}
    keep_old_number(harness, ADA, n(0), age=24 * 3600.0)
    harness.store.policies.put(policy(on_call.id, ADA, n(1)))
    harness.fake.fail_next("users.info", status=200, error="ratelimited")
    escalation_id = await escalate(harness)
    replies = await thread(harness, escalation_id, "Step 1 of 2")
    assert not any("skipped" in r for r in replies), replies
    assert phones.mask(n(0)) in "\n".join(replies)
    assert n(0) in sandbox.state.numbers_called()


async def test_a_fresh_read_comes_first_and_is_kept(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    """A number kept a minute ago, but the profile has changed since: the new one rings."""
    harness.fake.users[ADA] = {"profile": {"phone": n(1)}}
    keep_old_number(harness, ADA, n(0), age=60.0)
    harness.store.policies.put(policy(on_call.id, ADA))
    escalation_id = await escalate(harness)
    await ended(harness, escalation_id)
    assert sandbox.state.numbers_called() == {n(1): 1}
    assert harness.slack_store.user_phone(ADA, 60.0) == n(1)


async def test_slack_failing_with_no_number_ever_kept_raises_a_transient_error(
    harness: Harness,
) -> None:
    """No number kept and Slack cannot answer: not a skip (NO_PHONE) but a failure the
    worker retries; a profile without a phone is the only skip."""
    book = running.SlackPhoneBook(harness.running.slack)
    harness.fake.fail_next("users.info", status=200, error="ratelimited")
    with pytest.raises(running.ProfileUnavailable) as raised:
        await book.contact(ADA)
    assert raised.value.transient
    harness.fake.users["UNOPHONE"] = {"profile": {"real_name": "No Phone"}}
    contact = await book.contact("UNOPHONE")
    assert contact.phone is None and contact.problem == running.ADD_PHONE


async def test_slack_failing_with_no_number_kept_retries_the_step(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    harness.fake.users[ADA] = {"profile": {"phone": n(1)}}
    harness.store.policies.put(policy(on_call.id, ADA))
    harness.fake.fail_next("users.info", status=200, error="ratelimited")
    escalation_id = await escalate(harness)
    await ended(harness, escalation_id)
    steps = harness.running.escalations.steps(escalation_id)
    assert steps[0].outcome != StepOutcome.NO_PHONE
    assert sandbox.state.numbers_called() == {n(1): 1}


# ---------------------------------------------------------------- the shortcut twice


async def test_escalate_by_phone_twice_on_one_message_starts_one_chain(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 20.0  # the first call rings on
    harness.store.policies.put(policy(on_call.id, n(0)))
    assert harness.slack is not None

    async def escalate_message(user: str) -> str:
        seen = len(harness.fake.calls("views.open"))
        opened = await harness.slack.post(message_action("Checkout down", user_id=user), FORM)
        assert opened.status_code == 200
        calls = await harness.fake.wait_for(lambda f: len(f.calls("views.open")) > seen)
        assert calls
        modal = harness.fake.calls("views.open")[-1].params["view"]
        if isinstance(modal, str):
            modal = json.loads(modal)
        answer = await harness.slack.submit_view(
            CallbackId.ESCALATE_MESSAGE_SUBMIT,
            {
                BlockId.ESCALATE_POLICY: {
                    ActionId.ESCALATE_POLICY_SELECT: static_select_value(
                        harness.store.policies.list()[0].id
                    )
                },
                BlockId.ESCALATE_TEXT: {
                    ActionId.ESCALATE_TEXT_INPUT: plain_text_value("Checkout down")
                },
            },
            user_id=user,
            private_metadata=modal["private_metadata"],
        )
        assert answer.status_code == 200, answer.text
        return answer.text

    first = await escalate_message("U07FIRST")
    assert "Escalating with *Payments on-call*" in first
    second = await escalate_message("U07SECOND")
    [record] = harness.running.escalations.running()
    assert "already being escalated" in second and record.id in second, second
    assert "started by <@U07FIRST>" in second
    assert len(harness.store.db.query("SELECT id FROM escalations")) == 1


# ---------------------------------------------------------------- after the ack: jobs


async def test_answers_and_redraws_after_the_ack_are_jobs_the_worker_runs(
    harness: Harness, on_call: Workflow
) -> None:
    """With the worker stopped, the web acks and stores: Test's answer and the list's
    redraw after a save wait as jobs, and are sent once a worker runs them."""
    harness.store.policies.put(policy(on_call.id, n(0)))
    [saved] = harness.store.policies.list()
    await harness.stop_worker()
    await click(harness, ActionId.POLICY_TEST, saved.id)
    list_url = harness.fake.response_url("rlist")
    answer = await save(
        harness,
        form(on_call.id, f"{n(1)} 30s", name="Second"),
        None,
    )
    assert answer["response_action"] == "update"
    answer = await harness.slack.submit_view(
        CallbackId.POLICY_EDIT,
        form(on_call.id, f"{n(2)} 30s", name="Third"),
        private_metadata=json.dumps({"policy_id": None, "response_url": list_url}),
    )
    assert answer.status_code == 200
    await asyncio.sleep(0.3)
    assert harness.fake.responses() == []  # nothing sent from the web after the ack
    kinds = {j.kind for j in harness.store.jobs.pending()}
    assert {running.ANSWER, handlers.REDRAW} <= kinds, kinds

    await harness.start_worker()
    told = await harness.fake.wait_for(
        lambda f: [r for r in f.responses() if "Testing *Payments on-call*" in r.all_text()]
    )
    assert told
    redrawn = await harness.fake.wait_for(lambda f: f.responses("rlist"))
    assert "Third" in redrawn[-1].all_text()


# ---------------------------------------------------------------- the file: the worker only


async def test_the_policies_file_is_loaded_by_the_worker_only(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(
        "policies:\n  - name: Pager\n    channel: C0123ABCD\n    workflow: On-call alert\n"
        "    steps:\n      - {call: U7ADA, wait: 1m}\n"
    )
    fake_slack.users[ADA] = {"profile": {"phone": n(1)}}
    async with make_client(sandbox.url) as client:
        await client.create_workflow(ONCALL)
    app = Harness(
        tmp_path,
        fake_slack,
        sandbox,
        overrides={"escalation_policies_file": str(path)},
        worker_enabled=False,
    )
    await app.start()
    try:
        await asyncio.sleep(0.5)
        assert app.store.policies.list() == []  # the web process did not load it
        assert fake_slack.calls("users.info") == []
        await app.start_worker()
        policy = await app.wait_until(lambda: app.store.policies.by_name("Pager"), timeout=10)
        assert policy.source == "file"
        assert len(fake_slack.calls("users.info")) == 1
    finally:
        await app.stop()


# ---------------------------------------------------------------- the Home tab


async def test_home_lists_newest_first_since_the_current_call_hiding_private_text(
    harness: Harness, on_call: Workflow, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_delay = 20.0  # the calls ring on
    harness.fake.channels["C0SECRET"] = {"is_private": True}
    service = harness.running.escalations
    old, _ = service.start(
        policy(on_call.id, n(0), name="Old public", channel="C1"),
        "old alert text",
        started_by="U1",
        source="test",
    )
    middle, _ = service.start(
        policy(on_call.id, n(2), name="Private G", channel="G0PRIV"),
        "g alert text",
        started_by="U1",
        source="test",
    )
    new, _ = service.start(
        policy(on_call.id, n(3), name="Private C", channel="C0SECRET"),
        "secret alert text",
        started_by="U1",
        source="test",
    )
    await harness.wait_until(lambda: len(sandbox.state.numbers_called()) == 3, timeout=10)
    await harness.wait_until(
        lambda: all((s := service.steps(e.id)) and s[0].started_at for e in (old, middle, new))
    )
    earlier = {old.id: 3600, middle.id: 1800, new.id: 60}
    with harness.store.db.write():
        for escalation_id, age in earlier.items():
            started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - age))
            harness.store.db.execute(
                "UPDATE escalations SET started_at = ? WHERE id = ?", [started, escalation_id]
            )
    assert harness.slack is not None
    seen = len(harness.fake.calls("views.publish"))
    await harness.slack.event(app_home_opened("U1"))
    published = await harness.fake.wait_for(
        lambda f: len(f.calls("views.publish")) > seen and f.calls("views.publish")
    )
    text = shown(published[-1].params["view"])
    order = [text.index(name) for name in ("Private C", "Private G", "Old public")]
    assert order == sorted(order), text  # newest first
    assert "old alert text" in text
    assert "g alert text" not in text and "secret alert text" not in text
    assert "private channel only" in text
    # "since": when the current person's call started, as in the parent message
    step = service.steps(old.id)[0]
    assert when(step.started_at) in text
    assert when(service.get(old.id).started_at) not in text
    assert f"*Calling* {phones.mask(n(0))} (step 1 of 1) since" in text
