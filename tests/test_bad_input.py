"""Bad input through the real app (issue 5, item 6): slash commands and the Send modal.

Every test checks what a user cares about: the answer names the problem and the value
(and the line or recipient), it comes quickly, nothing reaches Intron (the sandbox),
no request is stored, and the app then answers a valid request correctly.

One app (with the fake Slack and the sandbox) serves the whole module: starting one
costs more than most of these tests, and each test checks its effects as differences.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bot.core.models import RequestRecord, RequestStatus
from bot.input import phones, templates
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.conftest import NUMBER, Sandbox, start_sandbox
from tests.harness import SIGNING_SECRET, Harness, assert_valid_blocks, free_port
from tests.support.fake_slack import run_fake_slack
from tests.support.slack_requests import (
    SlackRequester,
    conversation_value,
    plain_text_value,
    static_select_value,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

REMINDER = WorkflowCreate(
    name="Bad input reminder",
    message="Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)
TOM_AND_JERRY = WorkflowCreate(name="Tom & Jerry <ops>", message="Hello [name].")

SLACK_DEADLINE = 3.0  # seconds Slack waits for an answer to a command or a submission
# Slack shows a message's text best up to 4,000 characters and cuts it at 40,000;
# a section's text may hold 3,000.
MAX_TEXT = 4_000
MAX_SECTION = 3_000

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "INTRON_", "CALLBACK_", "PUBLIC_URL", "DATABASE_"))
}


@dataclass
class Env:
    harness: Harness
    sandbox: Sandbox
    reminder: Workflow
    tom_and_jerry: Workflow


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with run_fake_slack() as fake:
        box = await start_sandbox()
        harness = Harness(tmp_path_factory.mktemp("bad-input"), fake, box)
        await harness.start()
        try:
            reminder = await harness.create_workflow(REMINDER)
            tom = await harness.create_workflow(TOM_AND_JERRY)
            yield Env(harness, box, reminder, tom)
        finally:
            await harness.stop()
            await box.server.stop()


@dataclass
class Answer:
    """What the app answered, and how long it took."""

    response: httpx.Response
    seconds: float

    @property
    def json(self) -> dict[str, Any]:
        return self.response.json() if self.response.content else {}

    @property
    def text(self) -> str:
        """What the user sees of a command's reply: its text and every block's text."""
        body = self.json
        if not body:
            return self.response.text
        return body.get("text", "") + "\n" + "\n".join(_texts(body.get("blocks", [])))

    def field_errors(self) -> dict[str, str]:
        body = self.json
        assert body.get("response_action") == "errors", self.response.text[:500]
        return body["errors"]


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [
            t
            for k, v in value.items()
            for t in ([v] if k == "text" and isinstance(v, str) else _texts(v))
        ]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    return []


async def send_command(slack: SlackRequester, text: str) -> Answer:
    """`/robocall <text>`, timed."""
    started = time.perf_counter()
    response = await slack.command(text)
    assert response.status_code == 200, response.text[:500]
    return Answer(response, time.perf_counter() - started)


async def submit_recipients(
    slack: SlackRequester, workflow_id: str, recipients: str, voice: str | None = None
) -> Answer:
    """The Send modal submitted with these recipients (and voice), timed."""
    values = {
        BlockId.WORKFLOW: {ActionId.WORKFLOW_SELECT: static_select_value(workflow_id)},
        BlockId.VOICE: {ActionId.VOICE_SELECT: static_select_value(voice)},
        BlockId.RECIPIENTS: {ActionId.RECIPIENTS_INPUT: plain_text_value(recipients)},
        BlockId.CHANNEL: {ActionId.CHANNEL_SELECT: conversation_value("C1")},
    }
    context = json.dumps({"user_id": "U1", "channel_id": "C1"})
    started = time.perf_counter()
    response = await slack.submit_view(
        CallbackId.SEND_CALL,
        values,
        private_metadata=context,
        view_id=f"VBAD{time.monotonic_ns()}",  # a new modal each time: no idempotency
    )
    assert response.status_code == 200, response.text[:500]
    return Answer(response, time.perf_counter() - started)


@dataclass
class Check:
    """Effects of one test, measured against what the module's app had done before it."""

    env: Env
    requests: int = 0
    placed: int = 0
    posted: int = 0

    @property
    def harness(self) -> Harness:
        return self.env.harness

    async def command(self, text: str) -> Answer:
        assert self.harness.slack is not None
        return await send_command(self.harness.slack, text)

    async def submit(self, recipients: str, voice: str | None = None) -> Answer:
        assert self.harness.slack is not None
        return await submit_recipients(self.harness.slack, self.env.reminder.id, recipients, voice)

    async def nothing_happened(self) -> None:
        """Nothing reached Intron, no request was stored, nothing was posted in Slack."""
        # A request is stored before its ack, so the store alone would show one; the
        # pause lets a dispatch that should not exist reach the sandbox as well.
        await asyncio.sleep(0.1)
        state = self.env.sandbox.state
        assert state.requests_seen.get("place_calls", 0) == self.placed
        assert len(self.harness.running.store.requests.recent(10_000)) == self.requests
        assert len(self.harness.fake.messages()) == self.posted

    async def accepted(self) -> RequestRecord:
        """Wait for the request just accepted to complete; count it as this test's own."""
        store = self.harness.running.store
        record = await self.harness.wait_until(
            lambda: (
                (r := store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED and r[0]
            ),
            timeout=20,
        )
        await self.harness.settled()
        self.requests += 1
        self.placed += 1
        self.posted = len(self.harness.fake.messages())
        return record

    async def still_works(self) -> None:
        """The app unharmed: a valid request is accepted, placed once and completes."""
        number = NUMBER.format(7)
        called = self.env.sandbox.state.numbers_called().get(number, 0)
        answer = await self.command(f"call {self.env.reminder.id} {number} name=Ada date=Monday")
        assert "accepted: 1 recipient" in answer.text, answer.text
        assert answer.seconds < SLACK_DEADLINE
        store = self.harness.running.store
        record = await self.harness.wait_until(
            lambda: (
                (r := store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED and r[0]
            ),
            timeout=10,
        )
        assert [c.phone_number for c in store.requests.calls(record.id)] == [number]
        assert self.env.sandbox.state.numbers_called()[number] == called + 1
        await self.harness.settled()


@pytest.fixture
def check(env: Env) -> Check:
    harness = env.harness
    return Check(
        env,
        requests=len(harness.running.store.requests.recent(10_000)),
        placed=env.sandbox.state.requests_seen.get("place_calls", 0),
        posted=len(harness.fake.messages()),
    )


def refused_command(answer: Answer, *expected: str) -> None:
    """A command refused as a user should see it: quickly, short, saying why."""
    assert answer.seconds < SLACK_DEADLINE, answer.seconds
    body = answer.json
    assert "Nothing was sent" in answer.text, answer.text[:500]
    for words in expected:
        assert words in answer.text, f"{words!r} not in {answer.text[:1000]!r}"
    assert len(body.get("text", "")) <= MAX_TEXT
    assert_valid_blocks(body["blocks"])  # within Slack's limits (3,000 per section)


def refused_modal(answer: Answer, block: str, *expected: str) -> str:
    assert answer.seconds < SLACK_DEADLINE, answer.seconds
    errors = answer.field_errors()
    error = errors[block]
    for words in expected:
        assert words in error, f"{words!r} not in {error[:1000]!r}"
    assert all(len(e) <= MAX_SECTION for e in errors.values())
    return error


# ================================================================ numbers

BAD_NUMBERS = [
    # (what is typed, what the answer must say)
    ("+2348031234", ["phone number '+2348031234' is not a valid number for NG (+234)"]),
    ("+234 80", ["phone number '+234 80' is too short for NG (+234)"]),
    ("+234803abc4561", ["phone number '+234803abc4561' contains letters"]),
    ("08031234561", ["phone number '08031234561' has no country code"]),
    ("12", ["phone number '12' has no country code"]),
]


@pytest.mark.parametrize(("typed", "expected"), BAD_NUMBERS)
async def test_a_bad_number_in_a_command_is_named_and_nothing_is_sent(
    env: Env, check: Check, typed: str, expected: list[str]
) -> None:
    # The bad number is the second recipient: the answer must say which one.
    text = f"call {env.reminder.id} {NUMBER.format(1)}, {typed} name=Ada date=Monday"
    answer = await check.command(text)
    refused_command(answer, *(f"recipient 2: {e}" for e in expected))
    await check.nothing_happened()
    await check.still_works()


@pytest.mark.parametrize(("typed", "expected"), BAD_NUMBERS)
async def test_a_bad_number_in_the_modal_is_named_with_its_line(
    check: Check, typed: str, expected: list[str]
) -> None:
    pasted = (
        f"# our patients\n{NUMBER.format(1)} name=Ada date=Monday\n\n{typed} name=Bo date=Friday"
    )
    answer = await check.submit(pasted)
    refused_modal(answer, BlockId.RECIPIENTS, *(f"line 4: {e}" for e in expected))
    await check.nothing_happened()
    await check.still_works()


async def test_a_duplicate_number_is_named_with_where_it_first_was(env: Env, check: Check) -> None:
    spaced = "+234 803 123 4561"  # the same number, typed differently
    answer = await check.command(
        f"call {env.reminder.id} {NUMBER.format(1)}, {NUMBER.format(2)}, {spaced} name=A date=B"
    )
    refused_command(
        answer, f"recipient 3: phone number '{spaced}' is already recipient 1", "called once"
    )
    lines = [NUMBER.format(1), NUMBER.format(2), spaced]
    modal = await check.submit("\n".join(f"{n} name=A date=B" for n in lines))
    refused_modal(
        modal, BlockId.RECIPIENTS, f"line 3: phone number '{spaced}' is already recipient 1"
    )
    await check.nothing_happened()
    await check.still_works()


def distinct_numbers(count: int) -> list[str]:
    numbers = [f"+234803{i:07d}" for i in range(count)]
    assert all(phones.is_e164(n) for n in numbers[:: max(1, count // 50)])
    return numbers


async def test_three_thousand_numbers_in_one_command_are_all_placed_once(
    env: Env, check: Check
) -> None:
    """Checked and asked about (more than CONFIRM_ABOVE people), then accepted on Confirm
    (the limit is 10,000 per request), each answered within Slack's 3 s, and each number
    reaches Intron exactly once, in three submissions of 1,000 (the most one carries),
    each part with its own message."""
    numbers = distinct_numbers(3000)
    placed_before = check.placed
    answer = await check.command(f"call {env.reminder.id} {', '.join(numbers)} name=A date=B")
    assert answer.seconds < SLACK_DEADLINE, answer.seconds
    assert "Call 3000 people" in answer.text.replace(",", ""), answer.text[:500]
    [token] = [
        e["value"]
        for b in answer.json["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == ActionId.CONFIRM_CALL
    ]
    await check.nothing_happened()
    slack, fake = env.harness.slack, env.harness.fake
    assert slack is not None
    started = time.perf_counter()
    clicked = await slack.action(
        ActionId.CONFIRM_CALL, token, channel_id="C1", message_ts="1700000000.000001"
    )
    assert clicked.status_code == 200 and time.perf_counter() - started < SLACK_DEADLINE
    [reply] = await fake.wait_for(lambda f: f.responses(slack.last_response_id))
    text = reply.all_text().replace(",", "")
    assert "accepted: 3000 recipients" in text and "in 3 parts of at most 1000" in text, text[:500]
    assert reply.params["replace_original"] is True
    store = env.harness.running.store
    parts = store.requests.parts(store.requests.recent(1)[0].id)
    assert [(p.part, p.parts, p.recipient_count) for p in parts] == [
        (i, 3, 1000) for i in (1, 2, 3)
    ]
    await env.harness.wait_until(
        lambda: all(store.requests.get(p.id).status == RequestStatus.COMPLETED for p in parts),
        timeout=30,
    )
    await env.harness.settled()
    check.requests += 3
    check.placed += 3
    check.posted = len(env.harness.fake.messages())
    batches = [env.sandbox.state.batches[store.requests.get(p.id).provider_ref] for p in parts]
    assert sorted(c.phone_number for b in batches for c in b.calls) == sorted(numbers)
    assert env.sandbox.state.requests_seen["place_calls"] == placed_before + 3
    parents = [m.all_text() for m in env.harness.fake.messages("C1") if "thread_ts" not in m.params]
    assert sum("part 2 of 3" in text for text in parents) == 1
    await check.still_works()


async def test_a_pasted_list_of_2000_lines_names_the_bad_lines_briefly(check: Check) -> None:
    lines = []
    for i in range(2000):
        if i % 10 == 9:
            lines.append(f"+23480{i:04d} name=A date=B")  # too short
        elif i % 10 == 4:
            lines.append(f"+234803{i:07d} name=A")  # no date
        else:
            lines.append(f"+234803{i:07d} name=A date=B")
    answer = await check.submit("\n".join(lines))
    error = refused_modal(
        answer,
        BlockId.RECIPIENTS,
        "line 5: no value for [date]",  # the first bad lines, by number
        "line 10: phone number '+23480",
        "more",  # ...and a count of the rest, not 400 lines
    )
    assert error.count("\n") <= 10, error
    await check.nothing_happened()
    await check.still_works()


# What people paste: digits from other scripts, pictographs, invisible layout marks.
# Either the app reads the number the user sees (and calls exactly that), or it refuses
# and names the value; never a different number.
VISIBLE = "+2348031234561"
UNICODE_NUMBERS = [
    "+\uff12\uff13\uff14\uff18\uff10\uff13\uff11\uff12\uff13\uff14\uff15\uff16\uff11",  # fullwidth
    "+٢٣٤٨٠٣١٢٣٤٥٦١",  # Arabic-Indic digits
    "+२३४८०३१२३४५६१",  # Devanagari digits
    "+234\u00a0803\u00a0123\u00a04561",  # no-break spaces
    "+234 803 123 4561",
    "+2348031234561📞",
    "📞+2348031234561",
    "+234803📞1234561",
    "+2348031234561\u200e",  # a trailing left-to-right mark
]


@pytest.mark.parametrize("typed", UNICODE_NUMBERS)
async def test_unicode_in_numbers_calls_the_visible_number_or_is_named(
    env: Env, check: Check, typed: str
) -> None:
    answer = await check.command(f"call {env.reminder.id} {typed} name=Ada date=Monday")
    assert answer.seconds < SLACK_DEADLINE
    if "accepted" in answer.text:
        record = await check.accepted()
        batch = env.sandbox.state.batches[record.provider_ref]
        assert [c.phone_number for c in batch.calls] == [VISIBLE]
    else:
        refused_command(answer, f"recipient 1: phone number '{typed}'")
        await check.nothing_happened()
    await check.still_works()


async def test_a_number_behind_an_invisible_direction_mark_is_read_or_the_mark_named(
    env: Env, check: Check
) -> None:
    for typed in ("\u200f+2348031234561", "\u200e+2348031234561", "\u2066+2348031234561\u2069"):
        answer = await check.command(f"call {env.reminder.id} {typed} name=Ada date=Monday")
        if "accepted" in answer.text:
            record = await check.accepted()
            batch = env.sandbox.state.batches[record.provider_ref]
            assert [c.phone_number for c in batch.calls] == [VISIBLE]
        else:
            text = answer.text.lower()
            assert "invisible" in text or "u+20" in text or "direction" in text, answer.text
            assert "has no country code" not in answer.text, answer.text


# ================================================================ templates


async def test_a_recipient_missing_a_variable_is_named(env: Env, check: Check) -> None:
    answer = await check.command(f"call {env.reminder.id} {NUMBER.format(1)} name=Ada")
    refused_command(answer, "recipient 1: no value for [date]", "the message needs [name], [date]")
    modal = await check.submit(
        f"{NUMBER.format(1)} name=Ada date=Monday\n{NUMBER.format(2)} date=Friday"
    )
    refused_modal(modal, BlockId.RECIPIENTS, "line 2: no value for [name]")
    await check.nothing_happened()
    await check.still_works()


async def test_an_unknown_variable_name_is_named(env: Env, check: Check) -> None:
    answer = await check.command(f"call {env.reminder.id} {NUMBER.format(1)} nmae=Ada date=Monday")
    refused_command(answer, "recipient 1: no value for [name]", "nmae is not used by this message")
    modal = await check.submit(f"{NUMBER.format(1)} nmae=Ada date=Monday")
    refused_modal(modal, BlockId.RECIPIENTS, "line 1: no value for [name]", "nmae")
    await check.nothing_happened()
    await check.still_works()


def name_for_length(total: int, date: str = "B") -> str:
    """A [name] value that makes the reminder exactly `total` characters long."""
    base = len(templates.render(REMINDER.message, {"name": "", "date": date}))
    return "x" * (total - base)


async def test_a_message_of_4001_characters_is_refused_and_4000_accepted(
    env: Env, check: Check
) -> None:
    too_long = name_for_length(4001)
    answer = await check.command(
        f"call {env.reminder.id} {NUMBER.format(1)} name={too_long} date=B"
    )
    refused_command(
        answer, "recipient 1: the message becomes 4,001 characters", "shorten a value by 1"
    )
    modal = await check.submit(f"{NUMBER.format(1)} name={too_long} date=B")
    refused_modal(modal, BlockId.RECIPIENTS, "line 1: the message becomes 4,001 characters")
    await check.nothing_happened()

    exact = name_for_length(4000)
    answer = await check.command(f"call {env.reminder.id} {NUMBER.format(5)} name={exact} date=B")
    assert "accepted: 1 recipient" in answer.text, answer.text[:500]
    record = await check.accepted()
    [call] = env.sandbox.state.batches[record.provider_ref].calls
    assert len(templates.render(REMINDER.message, call.workflow_variables)) == 4000
    await check.still_works()


async def test_stray_brackets_in_a_value_are_passed_on_as_written(env: Env, check: Check) -> None:
    """A value is data: brackets in it are neither an error nor a variable to fill."""
    answer = await check.command(
        f'call {env.reminder.id} {NUMBER.format(1)} name="[date] ]Ada[" date=Monday'
    )
    assert "accepted: 1 recipient" in answer.text, answer.text[:500]
    record = await check.accepted()
    [call] = env.sandbox.state.batches[record.provider_ref].calls
    assert call.workflow_variables == {"name": "[date] ]Ada[", "date": "Monday"}
    assert templates.render(REMINDER.message, call.workflow_variables).startswith(
        "Hello [date] ]Ada[, your appointment is on Monday."
    )
    await check.still_works()


# ================================================================ voices

BAD_VOICES = [
    ("klingon/male", "voice 'klingon/male' is not a premium voice; choose one of: "),
    ("igbo", "voice 'igbo' is not of the form accent/gender, e.g. igbo/female"),
    ("hausa/female", "voice 'hausa/female' is not offered; hausa comes as: male"),
]


@pytest.mark.parametrize(("voice", "expected"), BAD_VOICES)
async def test_a_voice_that_does_not_exist_is_named(
    env: Env, check: Check, voice: str, expected: str
) -> None:
    answer = await check.command(
        f"call {env.reminder.id} {NUMBER.format(1)} name=Ada date=Monday voice={voice}"
    )
    refused_command(answer, expected)
    if voice == "klingon/male":
        assert "igbo/female" in answer.text  # the choices are listed
    # The modal offers only real voices; a forged or stale option is refused on its field.
    modal = await check.submit(f"{NUMBER.format(1)} name=Ada date=Monday", voice=voice)
    refused_modal(modal, BlockId.VOICE, expected)
    await check.nothing_happened()
    await check.still_works()


# ================================================================ huge pastes

HUNDRED_KB = 100_000


async def test_a_100_kb_command_of_numbers_is_answered_quickly_and_briefly(
    env: Env, check: Check
) -> None:
    numbers = " ".join([NUMBER.format(1)] * (HUNDRED_KB // 15))
    answer = await check.command(f"call {env.reminder.id} {numbers} name=A date=B")
    refused_command(answer, "recipient 2: phone number '+2348031234561' is already recipient 1")
    assert "more" in answer.text  # thousands of problems, summed up
    assert len(answer.response.content) < 10_000
    await check.nothing_happened()
    await check.still_works()


async def test_a_100_kb_value_is_refused_by_length(env: Env, check: Check) -> None:
    answer = await check.command(
        f"call {env.reminder.id} {NUMBER.format(1)} name={'x' * HUNDRED_KB} date=B"
    )
    refused_command(answer, "recipient 1: the message becomes 100,0", "Intron's limit is 4,000")
    await check.nothing_happened()
    await check.still_works()


async def test_a_100_kb_word_is_named_briefly_with_its_problem(env: Env, check: Check) -> None:
    word = "q" * HUNDRED_KB
    as_number = await check.command(f"call {env.reminder.id} {word} name=A date=B")
    refused_command(as_number, "recipient 1: phone number 'qqq", "contains letters")
    as_workflow = await check.command(f"call {word} {NUMBER.format(1)} name=A date=B")
    refused_command(as_workflow, "does not exist")
    modal = await check.submit(f"{word[:200_000]} name=A date=B")
    refused_modal(modal, BlockId.RECIPIENTS, "contains letters")


async def test_a_100_kb_unknown_command_is_answered_briefly(check: Check) -> None:
    answer = await check.command("z" * HUNDRED_KB)
    assert answer.seconds < SLACK_DEADLINE
    assert "is not a command" in answer.text
    assert len(answer.json.get("text", "")) <= MAX_TEXT
    assert len(answer.response.content) < 10_000


async def test_a_1_mb_paste_of_recipients_is_refused_by_the_limit(check: Check) -> None:
    # Refused by its size before its lines are even split: that is the cheap check.
    lines = [f"+234803{i:07d} name=Ada date={'Monday' * 6}" for i in range(17_000)]
    pasted = "\n".join(lines)
    assert len(pasted.encode()) > 1_000_000
    answer = await check.submit(pasted)
    refused_modal(
        answer,
        BlockId.RECIPIENTS,
        "the text is 1,121,999 characters; at most 400,000 are read at once",
    )
    await check.nothing_happened()
    await check.still_works()


async def test_a_1_mb_word_in_the_recipients_field_is_answered_quickly(
    env: Env, tmp_path: Path
) -> None:
    # A separate process, so that the test can give up after Slack's 3 s and kill it,
    # instead of waiting for an event loop that is busy for seconds more.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = CLEAN_ENV | {
        "SLACK_BOT_TOKEN": "xoxb-bad-input",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": env.harness.fake.api_url,
        "INTRON_API_KEY": "bad-input-key",
        "INTRON_BASE_URL": env.sandbox.url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PUBLIC_URL": url,
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", "run"),
        cwd=tmp_path,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with SlackRequester(url, SIGNING_SECRET) as slack:
            async with asyncio.timeout(30):  # started, with the workflow cache filled
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if env.reminder.id in (await slack.command("workflows")).text:
                            break
                    await asyncio.sleep(0.1)
            slack.client.timeout = httpx.Timeout(SLACK_DEADLINE)
            try:
                answer = await submit_recipients(slack, env.reminder.id, "q" * 1_000_000)
            except httpx.ReadTimeout:
                pytest.fail(f"no answer within Slack's {SLACK_DEADLINE:.0f} s")
            # Refused by its size, before the costly split into words.
            refused_modal(answer, BlockId.RECIPIENTS, "the text is 1,000,000 characters")
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


# ================================================================ Slack's escapes


async def test_slack_escapes_in_command_text_are_read_as_typed(env: Env, check: Check) -> None:
    """Slack sends &, < and > as &amp; &lt; &gt;: values and workflow names arrive as typed."""
    answer = await check.command(
        f'call "Tom &amp; Jerry &lt;ops&gt;" {NUMBER.format(1)} name="Ada &amp; Bo &lt;3&gt;"'
    )
    assert "accepted: 1 recipient with *Tom & Jerry <ops>*" in answer.text.replace(
        "&amp;", "&"
    ).replace("&lt;", "<").replace("&gt;", ">"), answer.text
    record = await check.accepted()
    assert record.workflow_id == env.tom_and_jerry.id
    [call] = env.sandbox.state.batches[record.provider_ref].calls
    assert call.workflow_variables == {"name": "Ada & Bo <3>"}
    await check.still_works()


async def test_a_refusal_shows_values_with_slack_escapes_as_typed(env: Env, check: Check) -> None:
    answer = await check.command(f"call {env.reminder.id} &lt;{NUMBER.format(1)}&gt; name=A date=B")
    refused_command(answer)
    mrkdwn = "\n".join(_texts(answer.json["blocks"]))
    assert f"'&lt;{NUMBER.format(1)}&gt;'" in mrkdwn, mrkdwn
