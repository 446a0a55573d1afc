"""What others wrote never pings, links or hides in Slack.

Hostile strings (special mentions, user and group mentions, disguised links,
direction overrides, a whole phone number and the API key in a provider's error)
go in wherever the app takes strings from outside: a workflow's name, message,
description and keypad labels, a callback's statuses and keys pressed, the
provider's listings, a provider's 400, what people type. Then every call the app
made to Slack, and every answer it gave, is searched for them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.requests import Request

from bot import logsafety
from bot.core.models import CallRecord, RequestRecord, RequestStatus, Stats
from bot.providers.base import CallOutcome, Page, ProviderCall, ProviderRequest, Workflow
from bot.providers.intron.sandbox import SandboxState, server
from bot.settings import Settings
from bot.slack.calls import views
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.workflows import views as wv
from bot.text import outside, outside_error, outside_plain
from tests.conftest import NUMBER, Sandbox, start_sandbox
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import app_home_opened, modal_view
from tests.test_slack_app import command, modal_values, submit
from tests.test_workflows_slack import click, form, from_message, save

# What must never reach Slack live. Distinctive ids, so the app's own mentions
# (`<@U1>` for the requester, `<#C1>` for the channel) are told apart.
MARKERS = (
    "<!channel",
    "<!here",
    "<!everyone",
    "<!subteam^S0EVIL",
    "<@U0EVIL",
    "<#C0EVIL",
    "<http://evil.example",
    "<https://evil.example",
)
INVISIBLES = ("\u202e", "\u202c", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f")

HOSTILE_NAME = "<!channel> \u202eReminder\u202c <http://evil.example|Reset password>"
HOSTILE_WORKFLOW: dict[str, Any] = {
    "id": "wf-hostile",
    "name": HOSTILE_NAME,
    "description": "<https://evil.example/login|Log in again> \u2066<#C0EVIL>\u2069",
    "workflow_type": "ROBOCALL",
    "message": "Hello [name] <!everyone>\u200f, press 1 or 2 <#C0EVIL>.",
    "include_reply": True,
    "response_options": {"1": "<!here> Confirm", "2": "\u2067<@U0EVIL> Cancel\u2069"},
    "created_at": "2024-05-01T10:00:00.000000",
    "updated_at": "2024-05-01T10:00:00.000000",
}
FAIL_NUMBER = NUMBER.format(3)  # the number the provider's 400 names, whole
FAIL_FORMS = (FAIL_NUMBER, FAIL_NUMBER[1:], FAIL_NUMBER[4:])  # +234…, 234…, 803…


def mrkdwn(value: Any) -> Iterator[str]:
    """Every string Slack parses as mrkdwn: a message's (or an answer's) `text`, and
    mrkdwn text objects. plain_text objects, values and ids are shown as they are, or
    not at all."""
    if isinstance(value, dict):
        text = value.get("text")
        if isinstance(text, str) and value.get("type") in (None, "mrkdwn"):
            yield text
        for item in value.values():
            yield from mrkdwn(item)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn(item)


def leaks(value: Any, secrets: tuple[str, ...] = ()) -> list[str]:
    """Whatever of the hostile strings is live in `value` (a Slack call's parameters, an
    answer's body, or text parsed as mrkdwn), and any direction override, whole number
    or secret anywhere in it."""
    parsed = "\n".join(mrkdwn(value)) if not isinstance(value, str) else value
    everything = sent(value) if not isinstance(value, str) else value
    found = [m for m in MARKERS if m.lower() in parsed.lower()]
    found += [f"U+{ord(ch):04X}" for ch in INVISIBLES if ch in everything]
    found += [f"number {n}" for n in FAIL_FORMS if n in everything]
    found += ["a secret" for s in secrets if s in everything]
    found += ["escaped twice"] if re.search(r"&amp;(lt|gt|amp);", everything) else []
    return found


def answered(response: httpx.Response) -> Any:
    """An ack's body: JSON, or the plain text bolt answers a text-only ack with."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


def sent(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------- the text functions


@given(st.text(), st.integers(min_value=1, max_value=300))
@example("<!channel> <@U0EVIL> <http://evil.example|x> &amp;", 40)
@example("a\u202eb\u2066c\u200fd\r\ne\u2028f", 5)
def test_outside_leaves_nothing_live(text: str, limit: int) -> None:
    shown = outside(text, limit)
    assert "<" not in shown and ">" not in shown
    assert re.fullmatch(r"([^&]|&amp;|&lt;|&gt;)*", shown), shown  # every & is an entity
    assert not any(unicodedata.category(ch) in ("Cf", "Cc", "Cs") for ch in shown), shown
    assert "\n" not in shown and "\u2028" not in shown
    visible = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert len(visible) <= limit  # the limit is what the reader sees, entities unsplit


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_outside_plain_and_multiline_are_clean(text: str, limit: int) -> None:
    plain = outside_plain(text, limit)
    assert len(plain) <= limit and "\n" not in plain
    assert not any(unicodedata.category(ch) in ("Cf", "Cc", "Cs") for ch in plain)
    lines = outside(text, limit, multiline=True)
    assert "<" not in lines and ">" not in lines
    assert not any(unicodedata.category(ch) in ("Cf", "Cc", "Cs") for ch in lines if ch != "\n")


def test_outside_examples() -> None:
    assert outside("<!channel> & <http://evil.example|Reset>", 100) == (
        "&lt;!channel&gt; &amp; &lt;http://evil.example|Reset&gt;"
    )
    assert outside("\u202eevil\u202c name", 100) == "evil name"
    assert outside("two\n\n  lines\r\nhere", 100) == "two lines here"
    assert outside("two\n\nlines", 100, multiline=True) == "two\n\nlines"
    assert outside(None, 10) == "" and outside("  ", 10) == ""
    assert outside("<<<<<", 3) == "&lt;&lt;…"
    assert outside_plain("<!here> \u2066label\u2069", 100) == "<!here> label"


@given(st.text(), st.text())
@example("HTTP 400: ", " is not allowed")
@example("+000000000000", "")  # a longer run before the number: once left its tail
def test_outside_error_never_shows_a_number_or_a_secret(before: str, after: str) -> None:
    secret = "sk-live-0123456789"
    for number in ("+2348031234563", "2348031234563", "0803 123 4563", "0803-123-4563"):
        shown = outside_error(f"{before} {number} (key {secret}) {after}", 2000, [secret])
        assert number not in shown and "8031234563" not in re.sub(r"[ -]", "", shown)
        assert secret not in shown
        assert "<" not in shown and ">" not in shown


def test_outside_error_masks_as_the_channels_do() -> None:
    shown = outside_error(
        "place_calls: Intron answered HTTP 400: +2348031234563 (tel:2348031234563, "
        "0803-123-4563) refused for key sk-live-0123456789 <!here>",
        1000,
        ["sk-live-0123456789"],
    )
    assert shown == (
        "place_calls: Intron answered HTTP 400: +234•••••4563 (tel:•••••4563, "
        "•••••4563) refused for key [redacted] &lt;!here&gt;"
    )
    ordinary = "request rq-3f9c2a7b1d04 at 12:30 on 2024-05-01: 42 calls, 3 s"
    assert outside_error(ordinary, 1000) == ordinary


def test_secrets_in_settings_are_every_secret_set() -> None:
    settings = Settings(
        _env_file=None,
        slack_bot_token="xoxb-a-b-c",
        slack_signing_secret="signing-secret-1",
        intron_api_key="intron-key-123456",
    )
    found = logsafety.secrets_in(settings)
    assert {"xoxb-a-b-c", "signing-secret-1", "intron-key-123456"} <= set(found)
    assert "" not in found and None not in found
    assert logsafety.redact_shown("key abc", ["abc"]) == "key abc"  # too short to redact


# ---------------------------------------------------------------- the views, directly


def hostile_workflow() -> Workflow:
    """Beyond what the provider's models may let through: hostile digits and type."""
    return Workflow(
        id="wf-evil-1",
        provider="intron",
        name=HOSTILE_NAME,
        description=HOSTILE_WORKFLOW["description"],
        kind="<!everyone>",
        message=HOSTILE_WORKFLOW["message"] + "\n<!here> line two\u202e",
        keypad={"1": "<!here> Confirm", "<#C0EVIL>": "<!subteam^S0EVIL> evil"},
    )


def hostile_record(**changes: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "id": "rq-0123456789ab",
        "created_at": "2024-05-01T10:00:00",
        "updated_at": "2024-05-01T10:00:00",
        "status": RequestStatus.COMPLETED,
        "provider": "intron",
        "workflow_id": "wf-evil-1",
        "workflow_name": HOSTILE_NAME,
        "requested_by": "U1",
        "channel": "C1",
        "source": "slack:modal",
        "recipient_count": 2,
        "provider_ref": "<!channel>-batch",
        "error": f"Intron refused: {FAIL_NUMBER} for key sk-live-0123456789 <@U0EVIL>\u202e",
    }
    return RequestRecord(**(values | changes))


def test_every_view_escapes_what_others_wrote() -> None:
    workflow = hostile_workflow()
    record = hostile_record()
    calls = [
        CallRecord(
            request_id=record.id,
            position=n,
            phone_number=NUMBER.format(n),
            variables={},
            outcome=CallOutcome.ANSWERED,
            duration=30,
            key_pressed=key,
        )
        for n, key in ((1, "<@U0EVIL>"), (2, "<!subteam^S0EVIL>"))
    ]
    stats = Stats(total=2, answered=2, keys={"<@U0EVIL>": 1, "<#C0EVIL>": 1})
    secrets = ("sk-live-0123456789",)
    messages = [
        views.request_message(record, workflow, stats, voice="<!here>", provider="X", sandbox=True),
        views.status_message(
            record, calls, workflow, stats, voice="v", provider="X", sandbox=False, secrets=secrets
        ),
        views.failure_reply(record, secrets),
        views.found_reply(record, "Intron"),
        views.accepted_message([record], sandbox=False),
        *views.results_messages(record, calls, workflow, stats),
    ]
    for shown in messages:
        assert leaks(shown.model_dump(), secrets) == [], shown
        assert_valid_blocks(shown.blocks)
    modals = [
        views.send_call_modal(
            [workflow], views.ModalContext(user_id="U1"), voices=[], selected=workflow
        ),
        wv.view_modal(
            workflow,
            calls_back_here=True,
            recent=Page(items=[ProviderRequest(ref="<!here>", status="<!channel>", total=2)]),
            ours=[],
            notice=None,
            sandbox=False,
        ),
        wv.calls_modal(
            wv.CallsQuery(workflow_id=workflow.id),
            Page(
                items=[
                    ProviderCall(
                        phone="<!channel> +2348031234563",
                        outcome=CallOutcome.ANSWERED,
                        provider_status="<!here>",
                        key_pressed="<@U0EVIL>",
                        provider_ref="<!here>",
                    )
                ]
            ),
            notice=None,
            sandbox=False,
        ),
        wv.delete_modal(workflow, [], sandbox=False),
    ]
    for modal in modals:
        assert leaks(modal.to_dict()) == [], modal.to_dict()
        assert_valid_view(modal.to_dict())
    listing = wv.workflows_list(
        [workflow],
        page=1,
        calls_back_here={workflow.id: False},
        can_manage=True,
        fetched_at=datetime.now(UTC),
        sandbox=False,
    )
    assert leaks(listing.model_dump()) == []
    assert "&lt;!channel&gt;" in sent(listing.model_dump())


# ---------------------------------------------------------------- end to end


@pytest.fixture
async def hostile_sandbox(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sandbox]:
    """The sandbox, answering a 400 that names the number whole and echoes the API key
    when a recipient is called FAIL (a provider can say anything in its errors)."""
    place_calls = server._place_calls

    async def refusing(request: Request, state: SandboxState) -> tuple[Any, str]:
        body = await request.json()
        params = body.get("workflow_params") or []
        if any((p.get("workflow_variables") or {}).get("name") == "FAIL" for p in params):
            key = request.headers.get("authorization", "").partition(" ")[2]
            number = params[0]["phone_number"]
            raise server.SandboxError(
                400,
                f"workflow_params.0: {number} (tel:{number[1:]}, 0{number[4:]}) may not be "
                f"called with the API key {key} <!channel>\u202e",
            )
        return await place_calls(request, state)

    monkeypatch.setattr(server, "_place_calls", refusing)
    box = await start_sandbox()
    box.state.workflows[HOSTILE_WORKFLOW["id"]] = dict(HOSTILE_WORKFLOW)
    yield box
    await box.server.stop()


@pytest.fixture
async def harness(
    tmp_path: Path, fake_slack: FakeSlack, hostile_sandbox: Sandbox
) -> AsyncIterator[Harness]:
    app = Harness(tmp_path, fake_slack, hostile_sandbox)
    hostile_sandbox.state.workflows[HOSTILE_WORKFLOW["id"]]["call_back_url"] = app.callback_url
    await app.start()  # its first refresh caches the hostile workflow
    yield app
    await app.stop()


def secrets_of(harness: Harness) -> tuple[str, ...]:
    return tuple(logsafety.secrets_in(harness.settings()))


async def wait_for_status(harness: Harness, status: RequestStatus, index: int = 0):
    return await harness.wait_until(
        lambda: (
            (r := harness.store.requests.recent(10))
            and len(r) > index
            and r[index].status == status
            and r[index]
        ),
        timeout=10,
    )


async def test_hostile_strings_never_reach_slack_live(
    harness: Harness, hostile_sandbox: Sandbox
) -> None:
    fake, store, box = harness.fake, harness.store, hostile_sandbox
    assert harness.slack is not None
    box.state.config.callback_delay = 60  # the callbacks are ours to send
    answers: list[httpx.Response] = []

    # The list, the Send modal with the workflow chosen, and a request from it.
    answers.append(await command(harness, "workflows"))
    await command(harness, "")
    opened = await fake.wait_for(lambda f: f.calls("views.open"))
    shown = modal_view(
        CallbackId.SEND_CALL,
        private_metadata=opened[0].params["view"]["private_metadata"],
        view_id="VOPEN1",
    )
    await harness.slack.action(
        ActionId.WORKFLOW_SELECT,
        view=shown,
        block_id=BlockId.WORKFLOW,
        selected_option=HOSTILE_WORKFLOW["id"],
        action_type="static_select",
    )
    await fake.wait_for(lambda f: f.calls("views.update"))
    recipients = f"{NUMBER.format(1)} name=Ada\n{NUMBER.format(2)} name=Bo"
    await submit(harness, modal_values(HOSTILE_WORKFLOW["id"], recipients))
    record = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].provider_ref and r[0]
    )

    # A callback whose statuses and keys pressed are hostile.
    positions = {c.phone_number: c.position for c in store.requests.calls(record.id)}
    hostile_calls = [
        (NUMBER.format(1), "<!channel>", "<@U0EVIL>"),
        (NUMBER.format(2), "COMPLETED", "<!subteam^S0EVIL>"),
    ]
    callback = {
        "request_id": record.provider_ref,
        "status": "COMPLETED",
        "stats": {"total_calls": 2, "completed_calls": 2},
        "request_calls": [
            {
                "id": f"call-{n}",
                "status": status,
                "phone_number": n,
                "call_result_duration": 30,
                "call_result_options_selected": key,
                "user_tag_identifiers": {
                    "robocall_request_id": record.id,
                    "robocall_recipient": str(positions[n]),
                },
            }
            for n, status, key in hostile_calls
        ],
    }
    async with httpx.AsyncClient() as http:
        answer = await http.post(harness.callback_url, json=callback)
    assert answer.status_code == 200, answer.text
    await wait_for_status(harness, RequestStatus.COMPLETED)
    ts = await harness.wait_until(lambda: harness.slack_store.message(record.id).ts)
    await fake.wait_for(lambda f: [m for m in f.thread("C1", ts) if "Results for" in m.all_text()])

    # The provider's listings say hostile things too.
    batch = box.state.batches[record.provider_ref]
    batch.status = "<!channel>"
    for call in batch.calls:
        call.status, call.key_pressed = "<!here>", "<@U0EVIL>"  # type: ignore[assignment]

    # A provider's 400, naming the number whole and echoing the API key.
    await command(harness, f"call {HOSTILE_WORKFLOW['id']} {FAIL_NUMBER} name=FAIL")
    failed = await wait_for_status(harness, RequestStatus.FAILED)
    failed_ts = await harness.wait_until(lambda: harness.slack_store.message(failed.id).ts)
    await fake.wait_for(lambda f: len(f.thread("C1", failed_ts)) >= 1)

    # What people read about them: status, the list, the Home tab, View, Calls, Delete.
    for ref in (record.id, failed.id):
        answers.append(await command(harness, f"status {ref}"))
    answers.append(await command(harness, "workflows"))
    answers.append(await command(harness, "call nope +2348031234561"))  # lists the names
    answers.append(await command(harness, "<!channel>"))
    answers.append(await command(harness, "status <@U0EVIL>"))
    await harness.slack.event(app_home_opened("U1"))
    await fake.wait_for(lambda f: f.calls("views.publish"))
    await from_message(harness, ActionId.WORKFLOW_VIEW, HOSTILE_WORKFLOW["id"])
    await fake.wait_for(
        lambda f: (
            [c for c in f.calls("views.update") if "Recent requests" in c.all_text()]
            and [c for c in f.calls("views.update") if "answered," in c.all_text()]
        )
    )
    viewed = modal_view(
        CallbackId.WORKFLOW_VIEW,
        view_id="VVIEW",
        private_metadata=json.dumps({"workflow_id": HOSTILE_WORKFLOW["id"]}),
    )
    await click(harness, ActionId.WORKFLOW_CALLS, HOSTILE_WORKFLOW["id"], view=viewed)
    await fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "calls shown" in c.all_text()]
    )
    await from_message(harness, ActionId.WORKFLOW_DELETE, HOSTILE_WORKFLOW["id"])
    await fake.wait_for(
        lambda f: [c for c in f.calls("views.open") if "from Intron?" in c.all_text()]
    )
    await harness.settled()

    # Nothing hostile went out live, anywhere.
    secrets = secrets_of(harness)
    assert "test-intron-key" in secrets
    everything = fake.calls()
    assert len(everything) >= 10
    found = [(c.method, leaks(c.params, secrets)) for c in everything]
    assert [(method, what) for method, what in found if what] == []
    for call in everything:
        if "view" in call.params:
            assert_valid_view(call.params["view"])
        elif call.params.get("blocks"):
            assert_valid_blocks(call.params["blocks"])
    assert [leaks(answered(a), secrets) for a in answers] == [[]] * len(answers)

    # …and each was shown, escaped.
    parent = fake.messages("C1")[0]
    assert (
        "&lt;!channel&gt; Reminder &lt;http://evil.example|Reset password&gt;"
        in (parent.params["text"])
    )
    results = next(m for m in fake.thread("C1", ts) if "Results for" in m.all_text())
    assert "&lt;!here&gt; Confirm" in results.all_text()
    assert "&lt;!channel&gt;" in results.params["text"]  # the fallback, too
    reply = fake.thread("C1", failed_ts)[0].all_text()
    assert "+234•••••4563" in reply and "[redacted]" in reply and "&lt;!channel&gt;" in reply
    status_of_failed = sent(answered(answers[2]))
    assert "[redacted]" in status_of_failed and "+234•••••4563" in status_of_failed
    assert "&lt;!channel&gt;" in sent(fake.published_home("U1"))
    assert "&lt;!channel&gt;" in sent(answered(answers[-2]))
    assert "&lt;@U0EVIL&gt;" in sent(answered(answers[-1]))


async def test_a_hostile_name_saved_from_the_modal_is_escaped_in_its_outcome(
    harness: Harness, hostile_sandbox: Sandbox
) -> None:
    await from_message(harness, ActionId.WORKFLOW_NEW, "new")
    new_modal = await harness.fake.wait_for(lambda f: f.calls("views.open"))
    await save(
        harness,
        form("<!channel> Alert <@U0EVIL>", "Hello [name]"),
        new_modal[0].params["view"]["private_metadata"],
        "VNEW",
    )
    await harness.fake.wait_for(
        lambda f: [c for c in f.calls("views.update") if "Created" in c.all_text()]
    )
    await harness.settled()
    for call in harness.fake.calls():
        assert leaks(call.params) == [], (call.method, call.params)


def test_plain_text_is_cleaned_not_escaped() -> None:
    """A select's option is plain text: Slack shows it as written, so it is not escaped
    (that would show `&lt;`), only cleaned of direction overrides."""
    modal = views.send_call_modal(
        [hostile_workflow()], views.ModalContext(user_id="U1"), voices=[]
    ).to_dict()
    block = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.WORKFLOW)
    [option] = block["element"]["options"]
    assert option["value"] == "wf-evil-1"
    assert option["text"]["type"] == "plain_text"
    assert option["text"]["text"] == "<!channel> Reminder <http://evil.example|Reset password>"
