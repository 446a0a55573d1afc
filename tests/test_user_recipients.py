"""`@user` recipients: the number is the phone of the user's Slack profile, read with
users.info before the ack (within 1 s, several users at once) and kept for a while."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.models import RequestStatus
from bot.providers.intron.models import Workflow
from tests.conftest import NUMBER, Sandbox
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.test_slack_app import REMINDER, body_text, command, modal_values, submit

CALL = 'call "Appointment reminder"'
VALUES = "name=Ada date=Monday"


@pytest.fixture
async def harness(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> AsyncIterator:
    app = Harness(tmp_path, fake_slack, sandbox, overrides={"default_phone_region": "NG"})
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def reminder(harness: Harness) -> Workflow:
    return await harness.create_workflow(REMINDER)


def profile_phone(fake: FakeSlack, user: str, phone: str | None) -> None:
    profile = {"real_name": f"User {user}", "display_name": user.lower()}
    fake.users[user] = {"profile": {**profile, **({"phone": phone} if phone else {})}}


def accepted_audit(harness: Harness) -> list[dict]:
    trail = harness.store.audit.trail()
    return [json.loads(row["detail"]) for row in trail if row["action"] == "request.accepted"]


def assert_nothing_stored(harness: Harness, sandbox: Sandbox) -> None:
    assert harness.store.requests.recent() == []
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0


async def test_a_mention_with_a_phone_is_called_at_that_number(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    profile_phone(harness.fake, "U7ADA", "0803 123 4561")  # loosely written, NG by default
    text = body_text(await command(harness, f"{CALL} <@U7ADA|ada> {VALUES}"))
    assert "accepted: 1 recipient with *Appointment reminder*" in text
    await harness.wait_until(
        lambda: harness.store.requests.recent()[0].status == RequestStatus.COMPLETED
    )
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1}
    batch = next(iter(sandbox.state.batches.values()))
    assert [c.workflow_variables for c in batch.calls] == [{"name": "Ada", "date": "Monday"}]
    [detail] = accepted_audit(harness)
    assert detail["numbers"] == [NUMBER.format(1)]
    assert detail["slack_users"] == {"1": "@U7ADA"}
    assert NUMBER.format(1) not in text and "03123456" not in text


async def test_mentions_mixed_with_typed_numbers(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    profile_phone(harness.fake, "U7ADA", "+234 803 123 4562")
    profile_phone(harness.fake, "U7BO", "+2348031234565")
    answer = await command(harness, f"{CALL} {NUMBER.format(0)}, <@U7ADA> <@U7BO> {VALUES}")
    assert "accepted: 3 recipients" in body_text(answer)
    await harness.wait_until(
        lambda: harness.store.requests.recent()[0].status == RequestStatus.COMPLETED
    )
    assert sandbox.state.numbers_called() == {NUMBER.format(d): 1 for d in "025"}
    [detail] = accepted_audit(harness)
    assert detail["numbers"] == [NUMBER.format(d) for d in "025"]
    assert detail["slack_users"] == {"2": "@U7ADA", "3": "@U7BO"}
    assert len(harness.fake.calls("users.info")) == 2


async def test_a_user_without_a_phone_is_refused_naming_them(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    profile_phone(harness.fake, "U7NONE", None)
    text = body_text(await command(harness, f"{CALL} {NUMBER.format(1)} <@U7NONE> {VALUES}"))
    assert "Nothing was sent" in text
    assert "recipient 2:" in text and "U7NONE" in text
    assert "ask them to add a phone number to their Slack profile" in text
    assert_nothing_stored(harness, sandbox)
    # Not kept: once they add one, the next command finds it.
    profile_phone(harness.fake, "U7NONE", NUMBER.format(1))
    answer = await command(harness, f"{CALL} <@U7NONE> {VALUES}")
    assert "accepted: 1 recipient" in body_text(answer)


async def test_a_user_whose_phone_is_invalid_is_refused(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    profile_phone(harness.fake, "U7BAD", "+234 80")
    text = body_text(await command(harness, f"{CALL} <@U7BAD> {VALUES}"))
    assert "Nothing was sent" in text
    assert "recipient 1:" in text and "U7BAD" in text and "not a valid number" in text
    assert "ask them to add a phone number to their Slack profile" in text
    assert_nothing_stored(harness, sandbox)


async def test_slack_slow_is_refused_within_the_deadline(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    profile_phone(harness.fake, "U7ADA", NUMBER.format(1))
    profile_phone(harness.fake, "U7BO", NUMBER.format(2))
    harness.fake.set_latency("users.info", 3.0)
    started = time.monotonic()
    text = body_text(await command(harness, f"{CALL} <@U7ADA> <@U7BO> {VALUES}"))
    assert time.monotonic() - started < 1.5
    assert "could not read" in text and "U7ADA" in text and "U7BO" in text
    assert "profile from Slack just now; try again or give the number" in text
    assert "no recipients" not in text
    assert_nothing_stored(harness, sandbox)


async def test_the_profile_is_kept_between_commands(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    profile_phone(harness.fake, "U7ADA", NUMBER.format(1))
    first = await command(harness, f"{CALL} <@U7ADA> {VALUES}")
    assert "accepted" in body_text(first)
    second = await command(harness, f"{CALL} <@U7ADA> {VALUES}")
    assert "accepted" in body_text(second)
    assert len(harness.fake.calls("users.info")) == 1
    assert len(accepted_audit(harness)) == 2


async def test_the_modal_takes_a_mention_on_a_line(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    profile_phone(harness.fake, "U7ADA", NUMBER.format(1))
    profile_phone(harness.fake, "U7NONE", None)
    refused = await submit(
        harness, modal_values(reminder.id, f"<@U7NONE> {VALUES}\n<@U7ADA> {VALUES}")
    )
    errors = json.dumps(refused.json()["errors"])
    assert "line 1:" in errors and "U7NONE" in errors and "Slack profile" in errors
    assert_nothing_stored(harness, sandbox)
    answer = await submit(
        harness, modal_values(reminder.id, f"{NUMBER.format(2)} {VALUES}\n<@U7ADA> {VALUES}")
    )
    assert answer.status_code == 200
    await harness.wait_until(lambda: sandbox.state.batches)
    [detail] = accepted_audit(harness)
    assert detail["slack_users"] == {"2": "@U7ADA"}
