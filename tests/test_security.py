"""Security of the Slack app, end to end (issue 5, items 1 and 7).

- Forged Slack requests (bad signatures, tampered bodies, stale or future
  timestamps, missing headers) are refused with 401 and never acted on:
  property-tested with hypothesis against the real app over HTTP.
- A Slack retry of an event is acted on once, also across a restart.
- Phone numbers are masked in everything sent to Slack; tokens, keys and whole
  numbers never reach the logs of `python -m bot serve`.
- The audit trail says who placed which call to whom, and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import string
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import logsafety
from bot.core.models import RequestRecord, RequestStatus
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.providers.intron.sandbox import Fault
from bot.slack.ids import ActionId, CallbackId
from bot.web.app import create_app
from tests.conftest import NUMBER, Sandbox, make_client, start_sandbox
from tests.harness import SIGNING_SECRET, Harness, free_port
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import (
    JSON,
    SlackRequester,
    app_home_opened,
    event_callback,
    modal_view,
    sign,
    slash_command,
    view_submission,
)
from tests.support.threaded_server import LoopThread, serve_nodelay
from tests.test_slack_app import body_text, command, modal_values, submit

Body = tuple[bytes, str]

REMINDER = WorkflowCreate(
    name="Security reminder",
    message="Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)

# Slack's rule, as bolt applies it: a timestamp more than 5 minutes from now is refused.
WINDOW = 300
DAY = 86_400

# Methods through which the app acts in Slack; forged requests must cause none of them.
ACTING_METHODS = (
    "views.open",
    "views.push",
    "views.update",
    "views.publish",
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
    "response_url",
)

# Characters a header value may hold (h11 refuses control characters and surrounding space).
HEADER_CHARS = string.ascii_letters + string.digits + string.punctuation


@pytest.fixture
async def reminder(harness: Harness) -> Workflow:
    return await harness.create_workflow(REMINDER)


# ================================================================ 1. forged requests
#
# The app, the fake Slack and the sandbox run on an event loop in a background thread
# (started once per test); hypothesis drives a synchronous test that sends each
# generated request with a plain httpx.Client.


@dataclass
class ThreadedApp:
    """The real app served from a background loop, and a synchronous client for it."""

    loop: LoopThread
    harness: Harness
    sandbox: Sandbox
    workflow: Workflow
    http: httpx.Client

    @property
    def events_url(self) -> str:
        return f"{self.harness.url}/slack/events"

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(self.events_url, content=body, headers=headers)

    def settle(self) -> None:
        """Let any work a request started (after its ack) reach Slack, the store or Intron."""
        time.sleep(0.3)
        self.loop.run(self.harness.settled())

    def effects(self) -> dict[str, Any]:
        """What the app has done so far: calls to Slack, requests stored, calls placed."""

        def read() -> dict[str, Any]:
            fake = self.harness.fake
            return {
                "slack": [c.method for c in fake.calls() if c.method in ACTING_METHODS],
                "requests": len(self.harness.store.requests.recent(1000)),
                "place_calls": self.sandbox.state.requests_seen.get("place_calls", 0),
                "auth.test": len(fake.calls("auth.test")),
            }

        return self.loop.call(read)


class FastHarness(Harness):
    """The harness, served so that each of many requests takes a millisecond, not 40."""

    async def start(self) -> FastHarness:
        self.app = create_app(self.settings())
        self.server = await serve_nodelay(self.app, port=self.port)
        self.slack = SlackRequester(self.url, SIGNING_SECRET, fake=self.fake)
        await self.start_worker()
        await self.wait_until(lambda: self.store.workflows.fetched_at("intron"))
        return self


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[ThreadedApp]:
    with LoopThread("forged-requests") as loop:

        async def start() -> tuple[Harness, Sandbox, Workflow]:
            fake = await FakeSlack().start()
            box = await start_sandbox()
            harness = await FastHarness(tmp_path, fake, box).start()
            return harness, box, await harness.create_workflow(REMINDER)

        async def stop(harness: Harness, box: Sandbox) -> None:
            await harness.stop()
            await box.server.stop()
            await harness.fake.stop()

        harness, box, workflow = loop.run(start())
        try:
            with httpx.Client(timeout=10.0, trust_env=False) as http:
                yield ThreadedApp(loop, harness, box, workflow, http)
        finally:
            loop.run(stop(harness, box))


# Small pools of ids: forgeries reuse them, then the control sends the genuine request
# with the same ids, so a forgery that had "used up" an event id or an idempotency key
# (rather than being refused outright) would show.
EVENT_IDS = ("EvFORGED00001", "EvFORGED00002")
VIEW_IDS = ("VFORGED001", "VFORGED002")
TRIGGER_IDS = ("1700000000.1700000000.forged1", "1700000000.1700000000.forged2")
KINDS = ("call", "modal", "submit", "home")


@dataclass(frozen=True)
class Genuine:
    """A request that the app acts on when it is correctly signed."""

    kind: str
    pool: int  # which id of the pools above it uses
    digit: int  # the last digit of the number called


def build(app: ThreadedApp, request: Genuine) -> Body:
    """The body of `request` (a slash command, a modal submission or an event)."""
    number = NUMBER.format(request.digit)
    if request.kind == "call":
        return slash_command(
            f"call {app.workflow.id} {number} name=Ada date=Monday",
            trigger_id=TRIGGER_IDS[request.pool],
            response_url=app.harness.fake.response_url("forged"),
        )
    if request.kind == "modal":
        return slash_command("", trigger_id=TRIGGER_IDS[request.pool])
    if request.kind == "submit":
        values = modal_values(app.workflow.id, f"{number} name=Ada date=Monday")
        context = json.dumps({"user_id": "U1", "channel_id": "C1"})
        return view_submission(
            CallbackId.SEND_CALL, values, private_metadata=context, view_id=VIEW_IDS[request.pool]
        )
    return event_callback(app_home_opened("U1"), event_id=EVENT_IDS[request.pool])


genuine_requests = st.builds(
    Genuine,
    kind=st.sampled_from(KINDS),
    pool=st.integers(0, 1),
    digit=st.integers(0, 9),
)


def signature(secret: str, body: bytes, timestamp: str) -> str:
    """Slack's v0 signature of `body` sent at `timestamp` (any string)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def now() -> int:
    return int(time.time())


def check_control(app: ThreadedApp) -> None:
    """The same requests, correctly signed, are acted on: so the refusals above are the
    signature check at work, and these tests can fail."""
    before = app.effects()
    for kind in KINDS:
        body, content_type = build(app, Genuine(kind, 0, 1))
        # 4 minutes old: well inside the window, so the window is not narrower than 5.
        stamp = now() - 240
        headers = sign(SIGNING_SECRET, body, stamp, content_type=content_type)
        response = app.post(body, headers)
        assert response.status_code == 200, (kind, response.text)
    wait_for(
        lambda: (
            (after := app.effects())["place_calls"] == before["place_calls"] + 2
            and after["requests"] == before["requests"] + 2  # the command and the submission
            and "views.open" in after["slack"]
            and "views.publish" in after["slack"]
        ),
        app,
    )


def wait_for(predicate: Callable[[], bool], app: ThreadedApp, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not met within {timeout} s: {app.effects()}"
        time.sleep(0.02)


def check_nothing_acted(app: ThreadedApp) -> None:
    app.settle()
    effects = app.effects()
    assert effects == {"slack": [], "requests": 0, "place_calls": 0, "auth.test": 0}, effects


def forged_settings(examples: int) -> settings:
    """Hypothesis settings for a test that sends each example to the running app."""
    return settings(
        max_examples=examples,
        deadline=None,  # each example is an HTTP round trip
        database=None,  # every run generates afresh; nothing to replay
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# How many generated forgeries each test sends (and checks that it sent).
SIGNATURE_CASES = 500
TAMPERED_CASES = 300
TIMESTAMP_CASES = 300


@st.composite
def bad_signatures(draw: st.DrawFn, body: bytes, stamp: str) -> str | None:
    """A signature header for `body` sent at `stamp` that is not the right one
    (None: the header is left out)."""
    correct = signature(SIGNING_SECRET, body, stamp)
    digest = correct.removeprefix("v0=")
    how = draw(
        st.sampled_from(
            ["wrong secret", "flipped", "prefix", "truncated", "extended", "missing", "case"]
        )
    )
    if how == "wrong secret":
        near_misses = [SIGNING_SECRET + "x", SIGNING_SECRET[:-1], SIGNING_SECRET.upper(), " "]
        secret = draw(
            st.one_of(st.sampled_from(near_misses), st.text(min_size=1, max_size=40)).filter(
                lambda s: s != SIGNING_SECRET
            )
        )
        return signature(secret, body, stamp)
    if how == "flipped":
        # One to four hex characters changed to other hex characters.
        chars = list(digest)
        for index in draw(st.sets(st.integers(0, len(digest) - 1), min_size=1, max_size=4)):
            others = "0123456789abcdef".replace(digest[index], "")
            chars[index] = draw(st.sampled_from(others))
        return "v0=" + "".join(chars)
    if how == "prefix":
        prefix = draw(
            st.one_of(
                st.sampled_from(["", "v1=", "V0=", "v0", "v0:", "v00=", "=", "sha256=", "v0= "]),
                st.text(HEADER_CHARS, max_size=5),
            ).filter(lambda p: p != "v0=")
        )
        return prefix + digest
    if how == "truncated":
        return correct[: draw(st.integers(0, len(correct) - 1))]  # "" included: empty header
    if how == "extended":
        return correct + draw(st.text("0123456789abcdef=", min_size=1, max_size=8))
    if how == "case" and digest.upper() != digest:
        return "v0=" + digest.upper()
    return None


def test_forged_signatures_are_refused_and_not_acted_on(threaded: ThreadedApp) -> None:
    sent = 0

    @forged_settings(SIGNATURE_CASES)
    @given(request=genuine_requests, data=st.data())
    def forged(request: Genuine, data: st.DataObject) -> None:
        nonlocal sent
        body, content_type = build(threaded, request)
        stamp = str(now())
        bad = data.draw(bad_signatures(body, stamp), label="signature")
        assert bad != signature(SIGNING_SECRET, body, stamp)
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp}
        if bad is not None:
            headers["X-Slack-Signature"] = bad
        response = threaded.post(body, headers)
        sent += 1
        assert response.status_code == 401, (headers, response.text)

    forged()
    assert sent >= SIGNATURE_CASES
    check_nothing_acted(threaded)
    check_control(threaded)


@st.composite
def tampered(draw: st.DrawFn, app: ThreadedApp, signed: Body) -> bytes:
    """A body that differs from the signed one, as an attacker would change it."""
    body, content_type = signed
    how = draw(st.sampled_from(["other request", "number", "user", "append", "cut", "byte"]))
    if how == "other request":
        result = build(app, draw(genuine_requests))[0]
    elif how == "number":
        # The same request, calling someone else (a no-op for bodies without a number).
        result = body.replace(b"2348031234", draw(st.sampled_from([b"2348039999", b"4477009"])))
    elif how == "user":
        result = body.replace(b"U1", draw(st.sampled_from([b"U2", b"UADMIN", b"W1"])))
    elif how == "append":
        result = body + draw(
            st.sampled_from([b"&user_id=UADMIN", b" ", b"\n", b"&text=call+x+%2B2348031234561"])
        )
    elif how == "cut":
        result = body[: draw(st.integers(0, len(body) - 1))]
    else:
        # One byte replaced by another printable ASCII byte (bodies are ASCII).
        index = draw(st.integers(0, len(body) - 1))
        byte = draw(st.sampled_from(HEADER_CHARS.encode()))
        result = body[:index] + bytes([byte]) + body[index + 1 :]
    if body.startswith(b"{") and draw(st.booleans()):
        # The same JSON, other bytes: the signature covers bytes, not meaning.
        result = json.dumps(json.loads(body), indent=1).encode()
    if not well_formed(result, content_type):
        # Bodies that cannot even be parsed have their own test
        # (test_unparseable_bodies_are_refused_with_401); this one keeps to requests the
        # app reads as Slack's.
        result = body + b"&user_id=UADMIN" if not body.startswith(b"{") else body + b"\n"
    # Whatever was drawn, the body sent is never the body signed.
    return result if result != body else body + b" "


def well_formed(body: bytes, content_type: str) -> bool:
    """Can bolt read this body at all (before checking its signature)?

    Bolt's rule: UTF-8; JSON when the content type says so or it starts with "{"
    (then it must be an object); otherwise a form, whose `payload` field, if the body
    mentions "payload" and has one, must be a JSON object."""
    try:
        text = body.decode("utf-8")
        if not text:
            return True
        if content_type == JSON or text.startswith("{"):
            return isinstance(json.loads(text), dict)
        if "payload" not in text:
            return True
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        return payload is None or isinstance(json.loads(payload), dict)
    except ValueError:
        return False


def test_tampered_bodies_are_refused_and_not_acted_on(threaded: ThreadedApp) -> None:
    sent = 0

    @forged_settings(TAMPERED_CASES)
    @given(request=genuine_requests, data=st.data())
    def forged(request: Genuine, data: st.DataObject) -> None:
        nonlocal sent
        signed = build(threaded, request)
        sent_body = data.draw(tampered(threaded, signed), label="sent body")
        assert sent_body != signed[0]
        headers = sign(SIGNING_SECRET, signed[0], now(), content_type=signed[1])
        response = threaded.post(sent_body, headers)
        sent += 1
        assert response.status_code == 401, (sent_body, response.text)

    forged()
    assert sent >= TAMPERED_CASES
    check_nothing_acted(threaded)
    check_control(threaded)


def test_stale_future_and_missing_timestamps_are_refused(threaded: ThreadedApp) -> None:
    sent = 0
    offsets = st.one_of(
        st.integers(WINDOW + 1, 5 * DAY),
        st.integers(-5 * DAY, -(WINDOW + 1)),
        st.sampled_from([WINDOW + 1, -(WINDOW + 1), 3600, -3600, DAY, -DAY]),
        st.none(),  # no timestamp header at all
    )

    @forged_settings(TIMESTAMP_CASES)
    @given(request=genuine_requests, offset=offsets)
    @example(request=Genuine("call", 0, 1), offset=WINDOW + 1)
    @example(request=Genuine("home", 0, 1), offset=-(WINDOW + 1))
    def replayed(request: Genuine, offset: int | None) -> None:
        nonlocal sent
        body, content_type = build(threaded, request)
        if offset is None:
            headers = sign(SIGNING_SECRET, body, now(), content_type=content_type)
            del headers["X-Slack-Request-Timestamp"]
        else:
            # Rounded away from now, so the request is still more than 5 minutes off when
            # it arrives (a future one gets closer to the server's clock as it travels).
            clock = time.time()
            stamp = math.ceil(clock) + offset if offset > 0 else math.floor(clock) + offset
            headers = sign(SIGNING_SECRET, body, stamp, content_type=content_type)
        response = threaded.post(body, headers)
        sent += 1
        assert response.status_code == 401, (offset, response.text)

    replayed()
    assert sent >= TIMESTAMP_CASES
    check_nothing_acted(threaded)
    check_control(threaded)


non_integer_timestamps = st.one_of(
    st.sampled_from(["", "now", "1.5", "NaN", "0x65", "1e9", "-", "null"]),
    st.text(HEADER_CHARS, min_size=1, max_size=20),
)


def test_non_integer_timestamps_are_refused_with_401(threaded: ThreadedApp) -> None:
    @forged_settings(100)
    @given(request=genuine_requests, stamp=non_integer_timestamps)
    @example(request=Genuine("call", 0, 1), stamp="")
    @example(request=Genuine("call", 0, 1), stamp=f"{now()}.5")
    def odd(request: Genuine, stamp: str) -> None:
        body, content_type = build(threaded, request)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            # Signed over the odd timestamp with the real secret: only the timestamp is wrong.
            "X-Slack-Signature": signature(SIGNING_SECRET, body, stamp),
        }
        response = threaded.post(body, headers)
        assert response.status_code == 401, (stamp, response.text)

    try:
        odd()
    finally:
        check_nothing_acted(threaded)


malformed_bodies = st.one_of(
    st.sampled_from([b"\xff", b"\xc3(", b"\x80abc"]).map(lambda junk: ("junk", junk)),
    st.integers(1, 200).map(lambda cut: ("cut", cut)),
    st.sampled_from([b"[]", b"[1, 2]", b"1", b'"text"', b"null"]).map(lambda j: ("json", j)),
)


def test_unparseable_bodies_are_refused_with_401(threaded: ThreadedApp) -> None:
    @forged_settings(50)
    @given(request=genuine_requests, malformed=malformed_bodies)
    @example(request=Genuine("home", 0, 1), malformed=("cut", 10))
    def unparseable(request: Genuine, malformed: tuple[str, Any]) -> None:
        body, content_type = build(threaded, request)
        how, detail = malformed
        if how == "junk":
            sent = detail + body
        elif how == "cut":
            sent = body[: max(1, len(body) - detail)]
        else:
            sent, content_type = detail, "application/json"
        if well_formed(sent, content_type):
            return  # e.g. a form cut before its payload field: a test case elsewhere
        headers = sign("not-the-secret", body, now(), content_type=content_type)
        response = threaded.post(sent, headers)
        assert response.status_code == 401, (sent[:80], response.text)

    try:
        unparseable()
    finally:
        check_nothing_acted(threaded)


# ================================================================ 2. Slack retries act once


async def test_a_retried_event_is_acted_on_once_even_after_a_restart(harness: Harness) -> None:
    assert harness.slack is not None
    body, content_type = event_callback(app_home_opened("U1"), event_id="EvRETRIED0001")
    first = await harness.slack.post(body, content_type)
    assert first.status_code == 200
    fake = harness.fake
    await fake.wait_for(lambda f: f.calls("views.publish"))
    # Slack resends the very same body, freshly signed, with its retry headers.
    for attempt in (1, 2):
        retry = await harness.slack.post(
            body,
            content_type,
            headers={"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"},
        )
        assert retry.is_success, retry.text
    await asyncio.sleep(0.5)  # a publish for a retry would be under way by now
    assert len(fake.calls("views.publish")) == 1

    await harness.restart()
    assert harness.slack is not None
    late = await harness.slack.post(
        body,
        content_type,
        headers={"X-Slack-Retry-Num": "3", "X-Slack-Retry-Reason": "http_error"},
    )
    assert late.is_success, late.text
    await asyncio.sleep(0.5)
    assert len(fake.calls("views.publish")) == 1

    # Control: a new event (another event id) is acted on, so the above could fail.
    await harness.slack.event(app_home_opened("U1"), event_id="EvRETRIED0002")
    await fake.wait_for(lambda f: len(f.calls("views.publish")) == 2)


# ================================================================ 3. numbers masked in Slack

# Four outcomes in the sandbox (pressed 1, pressed 2, not answered, failed) and a number
# typed in groups, which must be recognised (and hidden) in its E.164 form too.
CALLED = [NUMBER.format(d) for d in "1209"] + ["+234 803 123 4565"]


def e164(number: str) -> str:
    return number.replace(" ", "")


def forms_of(number: str) -> list[str]:
    """Ways a whole number could leak: E.164, its digits, URL-encoded, national."""
    whole = e164(number)
    return [whole, whole[1:], "%2B" + whole[1:], "0" + whole[4:]]


def masked(number: str) -> str:
    return f"+234•••••{e164(number)[-4:]}"


def leaks(text: str, numbers: list[str]) -> list[str]:
    return [form for number in numbers for form in forms_of(number) if form in text]


async def completed(harness: Harness, count: int = 1) -> list[RequestRecord]:
    """Wait until the `count` latest requests are final, and return them newest first."""
    final = {RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.UNKNOWN}
    store = harness.store
    return await harness.wait_until(
        lambda: (
            (found := store.requests.recent(count))
            and len(found) == count
            and all(r.status in final for r in found)
            and found
        ),
        timeout=10,
    )


async def test_phone_numbers_are_masked_in_everything_sent_to_slack(
    harness: Harness, reminder: Workflow, sandbox: Sandbox
) -> None:
    assert harness.slack is not None
    fake = harness.fake
    acks: list[str] = []  # what the app answered directly (the user sees these in Slack too)

    numbers = ", ".join(CALLED)
    acks.append(
        body_text(await command(harness, f"call {reminder.id} {numbers} name=Ada date=Monday"))
    )
    [record] = await completed(harness)
    assert record.status == RequestStatus.COMPLETED
    ts = await harness.wait_until(lambda: harness.slack_store.message(record.id).ts)
    await fake.wait_for(lambda f: f.thread("C1", ts))
    for ref in (record.id, record.provider_ref):
        acks.append(body_text(await command(harness, f"status {ref}")))

    # A request through the modal, and one that fails (its thread explains why).
    modal_numbers = [NUMBER.format(3), NUMBER.format(4)]
    answer = await submit(
        harness,
        modal_values(reminder.id, "\n".join(f"{n} name=Bo date=Friday" for n in modal_numbers)),
    )
    assert answer.status_code == 200
    acks.append(answer.text)
    await completed(harness, 2)
    sandbox.state.faults.append(Fault("place_calls", status=500))
    failing = [NUMBER.format(6)]
    acks.append(body_text(await command(harness, f"call {reminder.id} {failing[0]} name=A date=B")))
    [unknown, *_] = await completed(harness, 3)
    assert unknown.status == RequestStatus.UNKNOWN
    unknown_ts = await harness.wait_until(lambda: harness.slack_store.message(unknown.id).ts)
    await fake.wait_for(lambda f: f.thread("C1", unknown_ts))

    # The Home tab lists the requests; the workflow's View and Calls modals list calls.
    await harness.slack.event(app_home_opened("U1"))
    await fake.wait_for(lambda f: f.calls("views.publish"))
    await harness.slack.action(
        ActionId.WORKFLOW_VIEW, reminder.id, channel_id="C1", message_ts="1700000000.000001"
    )
    await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "answered" in c.all_text()]
    )
    shown = modal_view(
        CallbackId.WORKFLOW_VIEW,
        view_id="VVIEW",
        private_metadata=json.dumps({"workflow_id": reminder.id}),
    )
    await harness.slack.action(ActionId.WORKFLOW_CALLS, reminder.id, view=shown)
    calls_modal = await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "calls shown" in c.all_text()]
    )
    assert masked(CALLED[0]) in calls_modal[-1].all_text()
    await harness.settled()
    await harness.settled()

    everything = list(acks)
    for call in fake.calls():
        everything += [call.all_text(), json.dumps(call.params, ensure_ascii=False)]
    sent = "\n".join(everything)
    all_numbers = CALLED + modal_numbers + failing
    assert leaks(sent, all_numbers) == []
    # The masked forms are there: the thread and the status list each call.
    for number in CALLED + modal_numbers:
        assert masked(number) in sent, number
    thread = "\n".join(c.all_text() for c in fake.thread("C1", ts))
    assert all(masked(n) in thread for n in CALLED)
    assert all(masked(n) in acks[1] for n in CALLED)  # /robocall status
    # ...while the database keeps them whole (so the scan above can fail).
    stored = [c.phone_number for c in harness.store.requests.calls(record.id)]
    assert stored == [e164(n) for n in CALLED]
    assert len(leaks(" ".join(stored), CALLED)) >= len(CALLED)  # the scan does see them


# ================================================================ 4. nothing secret in logs

BOT_TOKEN = "xoxb-111111-222222-LeakCheckBotToken9z"
SIGNING = "leakcheck-signing-secret-7f3a9c21"
INTRON_KEY = "intron-leakcheck-key-5d2e8b4477"
CALLBACK = "cb-leakcheck-token-91c4e6"
SECRETS = (BOT_TOKEN, SIGNING, INTRON_KEY, CALLBACK)

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "INTRON_", "CALLBACK_", "PUBLIC_URL", "DATABASE_"))
}


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(trust_env=False) as http, asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the app exited while starting"
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


@dataclass
class Served:
    """`python -m bot serve` in a subprocess, and what it wrote."""

    url: str
    workflow: Workflow
    slack: SlackRequester
    output: str = ""


@contextlib.asynccontextmanager
async def served_app(
    tmp_path: Path,
    fake_slack: FakeSlack,
    sandbox: Sandbox,
    *,
    wait_for_workflows: bool = True,
    **extra_env: str,
) -> AsyncIterator[Served]:
    """Run the app as a user does (`python -m bot run`: the web process and a worker),
    with distinctive secrets; `output`, both processes' logs, is set on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with make_client(sandbox.url) as intron:
        workflow = await intron.create_workflow(
            REMINDER.model_copy(update={"call_back_url": f"{url}/callbacks/intron/{CALLBACK}"})
        )
    env = CLEAN_ENV | {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING,
        "SLACK_API_URL": fake_slack.api_url,
        "INTRON_API_KEY": INTRON_KEY,
        "INTRON_BASE_URL": sandbox.url,
        "CALLBACK_TOKEN": CALLBACK,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PUBLIC_URL": url,
        **extra_env,
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", "run"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    slack = SlackRequester(url, SIGNING, fake=fake_slack)
    served = Served(url, workflow, slack)
    try:
        await wait_healthy(url, process)
        async with asyncio.timeout(10):  # the worker fills the workflow cache at start-up
            while wait_for_workflows and workflow.id not in (await slack.command("workflows")).text:
                await asyncio.sleep(0.1)
        yield served
    finally:
        await slack.aclose()
        if process.returncode is None:
            process.terminate()
        served.output = (await process.communicate())[0].decode("utf-8", "replace")


def threads(fake: FakeSlack) -> list[Any]:
    return [m for m in fake.messages("C1") if m.params.get("thread_ts")]


async def test_the_served_app_never_logs_secrets_or_whole_numbers(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    numbers = [NUMBER.format(d) for d in "12905"]
    async with served_app(tmp_path, fake_slack, sandbox) as app:
        slack, workflow_id = app.slack, app.workflow.id
        good = f"call {workflow_id} {numbers[0]}, {numbers[1]} name=Ada date=Monday"
        assert "accepted" in (await slack.command(good)).text
        await fake_slack.wait_for(lambda f: threads(f), timeout=10)
        # Error paths: Intron answers 500 (outcome unknown), then refuses the key.
        sandbox.state.faults.append(Fault("place_calls", status=500))
        await slack.command(f"call {workflow_id} {numbers[2]} name=Ada date=Monday")
        sandbox.state.faults.append(Fault("place_calls", status=401))
        await slack.command(f"call {workflow_id} {numbers[3]} name=Ada date=Monday")
        # Slack failing for a while, a number that is refused, a status by number.
        fake_slack.fail_next("chat.postMessage", status=500)
        await slack.command(f"call {workflow_id} {numbers[4]} name=Ada date=Monday")
        await slack.command(f"call {workflow_id} {numbers[0][:-3]} name=Ada date=Monday")
        await slack.command(f"status {numbers[0]}")
        await fake_slack.wait_for(lambda f: len(threads(f)) >= 4, timeout=15)
        async with httpx.AsyncClient(trust_env=False) as http:
            await http.post(f"{app.url}/callbacks/intron/not-the-token", json={"x": 1})
            await http.post(f"{app.url}/callbacks/intron/{CALLBACK}", content=b"{oops")
        # The app really held and used the token, so a leak of it was possible.
        assert {c.token for c in fake_slack.calls("chat.postMessage")} == {BOT_TOKEN}
    output = app.output
    assert "WARNING" in output, output  # the error paths did log
    for secret in SECRETS:
        assert secret not in output, f"{secret} is in the logs:\n{output}"
    assert leaks(output, numbers) == [], output


async def test_refused_slack_requests_leave_no_whole_number_in_the_logs(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    number = NUMBER.format(1)
    async with served_app(tmp_path, fake_slack, sandbox) as app:
        slack = app.slack
        body, content_type = slash_command(f"call {app.workflow.id} {number} name=A date=B")
        forged = sign("not-the-secret", body, content_type=content_type)
        assert (await slack.client.post(slack.url, content=body, headers=forged)).status_code == 401
        # A genuine request that arrives late (a clock off by an hour) is refused too.
        assert (await slack.post(body, content_type, timestamp=now() - 3600)).status_code == 401
    assert SIGNING not in app.output
    assert leaks(app.output, [number]) == [], app.output


async def test_an_exception_uvicorn_logs_is_redacted_too(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    """An error escaping the app is logged by uvicorn's own logger ("Exception in ASGI
    application"), with its traceback. A failpoint makes the Slack route raise one that
    carries the request body: numbers, and secrets someone pasted into a command."""
    number = NUMBER.format(1)
    async with served_app(
        tmp_path,
        fake_slack,
        sandbox,
        wait_for_workflows=False,  # every Slack request raises, "workflows" included
        ROBOCALL_FAILPOINTS="web.slack_events=raise",
    ) as app:
        pasted = f"call {app.workflow.id} {number} key={INTRON_KEY} cb={CALLBACK} t={BOT_TOKEN}"
        body, content_type = slash_command(pasted)
        answer = await app.slack.post(body, content_type)
        assert answer.status_code == 500
    output = app.output
    assert "Exception in ASGI application" in output and "FailpointError" in output, output
    assert "uvicorn.error" in output  # uvicorn's logger wrote it, through our redaction
    for secret in SECRETS:
        assert secret not in output, f"{secret} is in the logs:\n{output}"
    assert leaks(output, [number]) == [], output
    assert masked(number) in output


class Boom(Exception):
    """An error whose message and traceback carry what must not be logged."""


def test_redact_removes_tokens_secrets_and_numbers() -> None:
    text = (
        f"posting to +2348031234561 and +234 803 123 4562 with {BOT_TOKEN}, "
        f"xapp-1-A0-123-abc, key {INTRON_KEY}"
    )
    clean = logsafety.redact(text, [INTRON_KEY])
    assert "+2348031234561" not in clean and "8031234562" not in clean
    assert "+234•••••4561" in clean and "+234•••••4562" in clean
    assert "xoxb-" not in clean and "xapp-" not in clean and INTRON_KEY not in clean
    assert "[redacted]" in clean and "[slack-token]" in clean
    assert logsafety.redact("request rq-3f9c2a7b1d04 at 12:30, 42 calls") == (
        "request rq-3f9c2a7b1d04 at 12:30, 42 calls"
    )  # ordinary text is left alone


def test_the_redacting_filter_cleans_messages_arguments_and_tracebacks() -> None:
    stream: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stream.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(logsafety.RedactingFilter([SIGNING, "short"]))
    logger = logging.getLogger("tests.security.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling %s with %s", NUMBER.format(1), {"token": BOT_TOKEN})
        try:
            raise Boom(f"Intron refused {NUMBER.format(2)} (secret {SIGNING})")
        except Boom:
            logger.exception("placing failed for %s", NUMBER.format(3))
        try:
            try:
                raise KeyError(NUMBER.format(4))
            except KeyError as inner:
                raise Boom(BOT_TOKEN) from inner
        except Boom as exc:
            logger.error("chained", exc_info=exc)
    finally:
        logger.removeHandler(handler)
    output = "\n".join(stream)
    assert "Traceback" in output and "Boom" in output and "KeyError" in output
    for secret in (BOT_TOKEN, SIGNING):
        assert secret not in output
    assert leaks(output, [NUMBER.format(d) for d in "1234"]) == [], output
    assert all(masked(NUMBER.format(d)) in output for d in "1234")


# ================================================================ 5. the audit trail


async def placed_request(harness: Harness, workflow: Workflow) -> tuple[RequestRecord, datetime]:
    started = datetime.now(UTC)
    numbers = f"{NUMBER.format(1)}, {NUMBER.format(0)}"
    await command(harness, f"call {workflow.id} {numbers} name=Ada date=Monday", user_id="U7")
    # Audit rows are written in the same step as the status they record, so a final
    # status means its rows are there.
    [record] = await completed(harness)
    return record, started


def audit_rows(harness: Harness, action: str, target: str) -> list[dict[str, Any]]:
    return [
        {**row, "detail": json.loads(row["detail"])}
        for row in harness.store.audit.trail()
        if row["action"] == action and row["target"] == target
    ]


async def test_the_audit_trail_records_who_called_whom_and_when(
    harness: Harness, reminder: Workflow
) -> None:
    record, started = await placed_request(harness, reminder)
    [accepted] = audit_rows(harness, "request.accepted", record.id)
    assert accepted["actor"] == "U7"
    assert accepted["detail"]["numbers"] == [NUMBER.format(1), NUMBER.format(0)]  # whole
    assert accepted["detail"]["workflow"] == reminder.id
    assert accepted["detail"]["channel"] == "C1"
    at = datetime.fromisoformat(accepted["at"])
    assert started - timedelta(seconds=1) <= at <= datetime.now(UTC)
    [placed] = audit_rows(harness, "request.placed", record.id)
    assert placed["detail"]["provider_ref"] == record.provider_ref
    assert datetime.fromisoformat(placed["at"]) >= at
    # ...and how it ended, call by call.
    [ended] = audit_rows(harness, "request.completed", record.id)
    assert ended["actor"] == "provider"
    assert ended["detail"]["results"] == {
        NUMBER.format(1): "answered",
        NUMBER.format(0): "no_answer",
    }
    assert datetime.fromisoformat(ended["at"]) >= datetime.fromisoformat(placed["at"])


@pytest.mark.parametrize(
    ("status", "expected"), [(401, RequestStatus.FAILED), (500, RequestStatus.UNKNOWN)]
)
async def test_the_audit_trail_records_a_request_that_failed(
    harness: Harness, reminder: Workflow, sandbox: Sandbox, status: int, expected: RequestStatus
) -> None:
    sandbox.state.faults.append(Fault("place_calls", status=status))
    record, _ = await placed_request(harness, reminder)
    assert record.status == expected
    ended = [
        row
        for row in harness.store.audit.trail()
        if row["target"] == record.id and row["action"] != "request.accepted"
    ]
    assert ended, "no audit row records how the request ended"
    assert str(expected) in json.dumps(ended)
