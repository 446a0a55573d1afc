"""Issue 12's matrix, end to end from Slack, for the providers whose workflows live in
this app (Intron direct, BizPhone), each against its own sandbox over a real socket:
a bad input refused on its field with nothing sent, a scheduled request cancelled (by
`/robocall cancel` and by the Cancel button) and never dialled, and one scheduled over
a restart dialled exactly once.

The rest of the matrix lives elsewhere: for the Intron workflow API, bad input in
`test_bad_input.py`, scheduling and cancelling in `test_scheduling.py`, an unknown
outcome in `test_request_buttons.py` and `test_reliability.py`; for Intron direct and
BizPhone, an unknown outcome settled without a second call in `test_providers_e2e.py`.

Each test counts what the provider's sandbox received: a refused or cancelled request
reaches it not at all, a scheduled one exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.core.models import RequestRecord, RequestStatus
from bot.providers.base import Workflow
from bot.providers.bizphone import sandbox as bizphone_sandbox
from bot.providers.bizphone.provider import CAPABILITIES as BIZPHONE_CAPABILITIES
from bot.providers.bizphone.provider import BizPhoneProvider
from bot.providers.intron_direct import sandbox as direct_sandbox
from bot.serving import start_server
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.test_app_workflows import biz_form, direct_form
from tests.test_scheduling import click, iso, soon, text_of

DIRECT, BIZ = "intron-direct", "bizphone"
PROVIDERS = (DIRECT, BIZ)
MESSAGE = "Hello {{name}}, this is a reminder. Press 1 to confirm, 2 to cancel."


@dataclasses.dataclass
class Provider:
    """One provider under test: its sandbox, and how to read what it received."""

    id: str
    url: str
    state: Any
    overrides: dict[str, Any]
    limit: int  # characters a message may have once filled in
    submits: Callable[[], int]  # requests that would place a call
    called: Callable[[], dict[str, int]]  # how often each number was dialled

    def received(self) -> int:
        """Every request the sandbox answered, of any kind."""
        return sum(self.state.requests_seen.values())


async def open_box(provider: str) -> tuple[Any, Provider]:
    if provider == DIRECT:
        app = direct_sandbox.create_sandbox_app(
            direct_sandbox.SandboxConfig(event_delay=0.05, callback_attempts=1)
        )
        server = await start_server(app)
        state = app.state.sandbox
        return server, Provider(
            DIRECT,
            server.url,
            state,
            {"intron_direct_api_key": "test-direct-key", "intron_direct_base_url": server.url},
            4000,
            lambda: state.requests_seen["place_call"] + state.requests_seen["place_batch"],
            lambda: dict(state.numbers_called()),
        )
    app = bizphone_sandbox.create_sandbox_app(bizphone_sandbox.SandboxConfig(call_seconds=0.1))
    server = await start_server(app)
    state = app.state.sandbox
    return server, Provider(
        BIZ,
        server.url,
        state,
        {"bizphone_api_key": "test-bizphone-key", "bizphone_base_url": server.url},
        1000,
        lambda: state.requests_seen["place_calls"],
        lambda: dict(state.numbers_called),
    )


@pytest.fixture(params=PROVIDERS)
async def box(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Provider]:
    # BizPhone's results come only by polling; its real waits (5 s up) are shortened.
    fast = dataclasses.replace(BIZPHONE_CAPABILITIES, poll_interval=(0.2, 1.0))
    monkeypatch.setattr(BizPhoneProvider, "capabilities", fast)
    server, provider = await open_box(request.param)
    yield provider
    await server.stop()


@pytest.fixture
async def app(tmp_path: Path, fake_slack: FakeSlack, box: Provider) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, fake_slack, None, overrides=box.overrides)
    await harness.start(wait_for_workflows=False)  # no Intron workflow API here
    assert [p.id for p in harness.running.providers] == [box.id]
    harness.store.workflows.put(
        Workflow(
            id=f"wf-{box.id}",
            provider=box.id,
            name="Reminder",
            message=MESSAGE,
            keypad={"1": "Confirm", "2": "Cancel"},
        )
    )
    yield harness
    await harness.stop()


async def command(harness: Harness, text: str) -> str:
    assert harness.slack is not None
    response = await harness.slack.command(text)
    assert response.status_code == 200, response.text
    return text_of(response)


async def schedule(harness: Harness, digit: int, at: str) -> RequestRecord:
    said = await command(harness, f"call Reminder {NUMBER.format(digit)} name=Ada at={at}")
    assert "scheduled" in said, said
    [record] = [r for r in harness.store.requests.recent(20) if r.id in said]
    assert record.status == RequestStatus.SCHEDULED
    return record


def status(harness: Harness, record: RequestRecord) -> RequestStatus:
    return harness.store.requests.get(record.id).status


# ---------------------------------------------------------------- bad input, nothing sent


# Five variables, so the message outgrows each limit with values of at most 1,000 characters
# (Intron direct's own cap on one value; see the xfail below).
LONG = "Dear {{a}}{{b}}{{c}}{{d}}{{e}}, press 1."


def long_values(total: int) -> str:
    """`name=value` pairs making LONG exactly `total` characters once filled in."""
    room = total - len(LONG.replace("{{", "").replace("}}", "")) + len("abcde")
    sizes = [room // 5 + (1 if i < room % 5 else 0) for i in range(5)]
    return " ".join(f"{v}={'x' * n}" for v, n in zip("abcde", sizes, strict=True))


WORKFLOW_FIELD_ERRORS = {
    DIRECT: (direct_form(retries="4"), BlockId.WF_RETRY_COUNT, "'4' is not a whole number"),
    BIZ: (biz_form(pitch="10"), BlockId.WF_PITCH, "pitch '10' is not a whole number from 0"),
}


async def test_bad_input_is_refused_naming_the_value_and_nothing_reaches_the_provider(
    app: Harness, box: Provider
) -> None:
    app.store.workflows.put(
        Workflow(id=f"wf-long-{box.id}", provider=box.id, name="Long", message=LONG)
    )
    # Over the provider's own limit once filled in: 4,000 (Intron direct), 1,000 (BizPhone).
    said = await command(app, f"call Long {NUMBER.format(1)} {long_values(box.limit + 1)}")
    assert f"recipient 1: the message becomes {box.limit + 1:,} characters" in said, said[:400]
    assert "shorten a value by 1" in said
    assert "Nothing was sent" in said

    said = await command(app, "call Reminder +234 80 name=Ada")
    assert "phone number '+234 80' is too short" in said, said[:400]

    said = await command(app, f"call Reminder {NUMBER.format(1)} name=Ada at=yesterday")
    assert "'at=yesterday' is not a time I can read" in said

    # The workflow modal: a field out of the provider's range, refused on that field.
    values, block, expected = WORKFLOW_FIELD_ERRORS[box.id]
    assert app.slack is not None
    answer = await app.slack.submit_view(
        CallbackId.WORKFLOW_EDIT,
        values,
        private_metadata=json.dumps({"provider": box.id, "workflow_id": None}),
        view_id="VBAD",
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["response_action"] == "errors", body
    assert expected in body["errors"][block], body["errors"]
    assert {w.id for w in app.running.workflows.cached()} == {f"wf-{box.id}", f"wf-long-{box.id}"}

    await app.settled()
    assert app.store.requests.recent() == []
    assert box.received() == 0

    # Exactly at the limit is accepted and placed once: the check is the provider's own.
    said = await command(app, f"call Long {NUMBER.format(5)} {long_values(box.limit)}")
    assert "accepted" in said, said[:400]
    await app.wait_until(lambda: box.submits() == 1, timeout=10)
    await app.wait_until(lambda: app.store.requests.recent(1)[0].status == RequestStatus.COMPLETED)


@pytest.mark.parametrize("box", [DIRECT], indirect=True)
async def test_a_value_over_intron_directs_own_cap_is_refused_before_accepting(
    app: Harness, box: Provider
) -> None:
    said = await command(app, f"call Reminder {NUMBER.format(1)} name={'x' * 1001}")
    assert "the value of name is 1,001 characters" in said, said[:400]
    assert "at most 1,000 per value, so shorten it by 1" in said
    assert "Nothing was sent" in said
    assert app.store.requests.recent() == []


# ---------------------------------------------------------------- schedule, then cancel


async def test_scheduled_then_cancelled_by_command_and_by_button_is_never_dialled(
    app: Harness, box: Provider
) -> None:
    at = soon(3)  # room for two commands, a cancel and a click before it, on a busy machine
    by_command = await schedule(app, 1, iso(at))
    by_button = await schedule(app, 2, iso(at))

    # Its channel message says when, in Slack's date formatting, with a Cancel button.
    await app.parent_ts(by_button.id)
    [posted] = [
        m
        for m in app.fake.messages("C1")
        if by_button.id in m.all_text() and not m.params.get("thread_ts")
    ]
    assert "Scheduled for" in posted.all_text()
    assert f"<!date^{int(at.timestamp())}^" in posted.all_text()
    assert ActionId.REQUEST_CANCEL in json.dumps(posted.params["blocks"])

    said = await command(app, f"cancel {by_command.id}")
    assert f"Request `{by_command.id}` is cancelled" in said and "nobody will be called" in said
    said = await click(app, ActionId.REQUEST_CANCEL, by_button, "cancel-button")
    assert f"Request `{by_button.id}` is cancelled" in said
    again = await command(app, f"cancel {by_button.id}")
    assert "was not cancelled: it is already cancelled" in again

    await asyncio.sleep(max(0.0, at.timestamp() - time.time()) + 1.0)  # past its time
    await app.settled()
    assert status(app, by_command) == status(app, by_button) == RequestStatus.CANCELLED
    assert box.received() == 0
    ts = await app.parent_ts(by_button.id)
    last = app.fake.updates("C1", ts)[-1].all_text()
    assert "cancelled, nobody was called" in last


# ---------------------------------------------------------------- schedule, restart


async def test_scheduled_then_restarted_over_its_time_is_dialled_once(
    app: Harness, box: Provider
) -> None:
    at = soon(2)  # stopped well before its time
    record = await schedule(app, 1, iso(at))
    await app.parent_ts(record.id)
    await app.stop()
    await asyncio.sleep(max(0.0, at.timestamp() - time.time()) + 0.5)
    assert box.received() == 0  # nobody running at its time

    await app.start(wait_for_workflows=False)
    await app.wait_until(lambda: status(app, record) == RequestStatus.COMPLETED, timeout=15)
    await app.settled()
    await asyncio.sleep(0.5)  # a second dial, if any, would have been sent by now
    assert box.submits() == 1
    assert box.called() == {NUMBER.format(1): 1}
    [call] = app.store.requests.calls(record.id)
    assert call.key_pressed == "1"
