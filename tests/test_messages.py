"""Every message and view the app can send, rendered from realistic records (every
status, 1, 20, 21 and 120 calls, parts of a split request, hostile names) and read as
a team reads them at a glance: valid Block Kit within Slack's limits, nothing Slack
would read as a link or mention that the app did not make, the state first, plain
words. Then the results of a large request end to end: one reply and a CSV file."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.core.models import CallRecord, RequestRecord, RequestStatus, Stats
from bot.providers.base import CallOutcome, Page, ProviderCall, ProviderRequest, Voice, Workflow
from bot.slack import blocks as slack_blocks
from bot.slack.blocks import Message, done_modal
from bot.slack.calls import views
from bot.slack.home.views import home_view
from bot.slack.ids import ActionId, BlockId
from bot.slack.workflows import views as wv
from tests.conftest import Sandbox
from tests.harness import Harness, assert_valid_blocks, assert_valid_view
from tests.test_slack_app import REMINDER, command

HOSTILE = "<!channel> \u202eReminder\u202c <http://evil.example|Reset password> <@U0EVIL>"
WORKFLOW = Workflow(
    id="wf-1",
    provider="intron",
    name="Demo reminder",
    message="Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel.",
    keypad={"1": "Confirm", "2": "Cancel"},
)
HOSTILE_WORKFLOW = Workflow(
    id="wf-evil",
    provider="intron",
    name=HOSTILE,
    description="<https://evil.example/login|Log in> <#C0EVIL>",
    message="Hello [name] <!everyone>",
    keypad={"1": "<!here> Confirm", "2": '=HYPERLINK("http://evil.example")'},
)
VOICES = (Voice("igbo/female", "Igbo", "female"), Voice("yoruba/male", "Yoruba", "male"))
BATCH = "3f9c2a7b-1d04-4e5f-9a8b-0c1d2e3f4a5b"  # 36 characters, as Intron's
STARTED = "2024-05-01T10:00:00.000+00:00"
FINISHED = "2024-05-01T10:04:10.000+00:00"
PROVIDER_WORDS = ("COMPLETED", "TIMEOUT", "NO_ANSWER", "no_answer", "in_progress")

# What the app itself puts in angle brackets: mentions of the requester and the
# channel, Slack's date formatting, links it made. Anything else with `<` would be
# read by Slack as a link or a mention, or dropped.
MADE_BY_APP = re.compile(
    r"<@U[A-Z0-9]+>|<#[CG][A-Z0-9]+>|<!date\^\d+\^[^|<>]*\|[^<>]*>|<https?://[^|<>\s]+\|[^<>]+>"
)


# ---------------------------------------------------------------- records


def record(
    status: RequestStatus = RequestStatus.COMPLETED, count: int = 120, **changes: Any
) -> RequestRecord:
    values: dict[str, Any] = {
        "id": "rq-0123456789ab",
        "created_at": STARTED,
        "updated_at": FINISHED,
        "completed_at": FINISHED if status == RequestStatus.COMPLETED else None,
        "status": status,
        "provider": "intron",
        "workflow_id": WORKFLOW.id,
        "workflow_name": WORKFLOW.name,
        "voice": "yoruba/male",
        "requested_by": "U1",
        "channel": "C1",
        "source": "slack:modal",
        "recipient_count": count,
        "provider_ref": None if status in (RequestStatus.ACCEPTED, RequestStatus.FAILED) else BATCH,
        "error": "Intron refused our API key" if status == RequestStatus.FAILED else None,
    }
    return RequestRecord(**(values | changes))


def outcome_of(position: int, count: int) -> tuple[CallOutcome, str | None, float]:
    """Outcomes in the shares of the findings' 120-call request: 70 pressed 1, 20
    pressed 2, 6 other keys, 12 no answer, 6 busy, 3 voicemail, 3 failed."""
    share = position * 120 // max(count, 1)
    if share <= 70:
        return CallOutcome.ANSWERED, "1", 27
    if share <= 90:
        return CallOutcome.ANSWERED, "2", 31
    if share <= 96:
        return CallOutcome.ANSWERED, "7", 12
    if share <= 108:
        return CallOutcome.NO_ANSWER, None, 0
    if share <= 114:
        return CallOutcome.BUSY, None, 0
    if share <= 117:
        return CallOutcome.VOICEMAIL, None, 15
    return CallOutcome.FAILED, None, 0


def calls_of(shown: RequestRecord, *, done: int | None = None) -> list[CallRecord]:
    """The request's calls, the first `done` with results (all by default), with the
    provider's own words for them (which must never be shown)."""
    count = shown.recipient_count
    done = count if done is None else done
    calls = []
    for position in range(1, count + 1):
        outcome, key, duration = outcome_of(position, count)
        finished = position <= done
        calls.append(
            CallRecord(
                request_id=shown.id,
                position=position,
                phone_number=f"+234803{position:07d}",
                variables={"name": "Ada"},
                provider_call_id=f"call-{position}" if finished else None,
                outcome=outcome if finished else None,
                provider_status=("COMPLETED" if outcome == CallOutcome.ANSWERED else "TIMEOUT")
                if finished
                else None,
                duration=duration if finished else None,
                key_pressed=key if finished else None,
            )
        )
    return calls


def stats_of(calls: list[CallRecord]) -> Stats:
    """The figures as the store counts them."""
    outcomes: dict[str | None, int] = {}
    keys: dict[str, int] = {}
    for call in calls:
        outcomes[call.outcome] = outcomes.get(call.outcome, 0) + 1
        if call.key_pressed:
            keys[call.key_pressed] = keys.get(call.key_pressed, 0) + 1
    answered = [
        c.duration for c in calls if c.outcome == CallOutcome.ANSWERED and c.duration is not None
    ]
    return Stats.from_counts(outcomes, keys, sum(answered) / len(answered) if answered else None)


def parent(shown: RequestRecord, calls: list[CallRecord], **kw: Any) -> Message:
    return views.request_message(
        shown,
        kw.pop("workflow", WORKFLOW),
        stats_of(calls),
        voice=kw.pop("voice", "Yoruba (male)"),
        provider="Intron",
        sandbox=kw.pop("sandbox", False),
    )


# ---------------------------------------------------------------- everything rendered

SIZES = (1, 2, 20, 21, 120)


def cases() -> Iterator[tuple[str, RequestRecord, list[CallRecord], Workflow]]:
    """Every status at every size; a request still reporting; parts; hostile names."""
    for status in RequestStatus:
        for count in SIZES:
            shown = record(status, count)
            done = count if status == RequestStatus.COMPLETED else 0
            yield f"{status}-{count}", shown, calls_of(shown, done=done), WORKFLOW
    placed = record(RequestStatus.PLACED, 120)
    yield "placed-37-of-120", placed, calls_of(placed, done=37), WORKFLOW
    for part in (1, 2, 3):
        shown = record(RequestStatus.COMPLETED, 1000, part=part, parts=3, part_of="rq-first")
        yield f"part-{part}-of-3", shown, calls_of(shown), WORKFLOW
    hostile = record(
        RequestStatus.COMPLETED,
        21,
        workflow_name=HOSTILE,
        workflow_id=HOSTILE_WORKFLOW.id,
        provider_ref="<!channel>-batch-0123456789",
    )
    hostile_calls = [
        c.model_copy(update={"key_pressed": "<@U0EVIL>"}) if c.key_pressed == "7" else c
        for c in calls_of(hostile)
    ]
    yield "hostile-21", hostile, hostile_calls, HOSTILE_WORKFLOW
    hostile_small = hostile.model_copy(update={"recipient_count": 3})
    yield "hostile-3", hostile_small, hostile_calls[-3:], HOSTILE_WORKFLOW
    for status in (RequestStatus.FAILED, RequestStatus.UNKNOWN):
        yield (
            f"hostile-{status}",
            hostile.model_copy(update={"status": status, "error": HOSTILE}),
            [],
            HOSTILE_WORKFLOW,
        )


CASES = list(cases())


def messages_for(
    shown: RequestRecord, calls: list[CallRecord], workflow: Workflow
) -> list[tuple[str, Message]]:
    stats = stats_of(calls)
    secrets = ("sk-live-0123456789",)
    rendered = [
        ("parent", parent(shown, calls, workflow=workflow)),
        ("parent in the sandbox", parent(shown, calls, workflow=workflow, sandbox=True)),
        ("parent, no workflow", parent(shown, calls, workflow=None, voice="")),
        (
            "status",
            views.status_message(
                shown,
                calls[: views.CALLS_PER_MESSAGE],
                workflow,
                stats,
                voice="Yoruba (male)",
                provider="Intron",
                sandbox=False,
                secrets=secrets,
            ),
        ),
        ("accepted", views.accepted_message([shown], sandbox=False)),
        ("failure", views.failure_reply(shown, secrets)),
        ("found", views.found_reply(shown, "Intron")),
        ("csv refused", views.csv_failed_reply("missing_scope")),
    ]
    rendered += [("results", m) for m in views.results_messages(shown, calls, workflow, stats)]
    return rendered


def other_messages() -> list[tuple[str, Message]]:
    workflows = [WORKFLOW, HOSTILE_WORKFLOW]
    return [
        ("help", views.help_message(False)),
        ("help in the sandbox", views.help_message(True)),
        ("voices", views.voices_message(VOICES, False)),
        (
            "problems",
            views.problems_message("That call could not be placed.", [HOSTILE] * 20, False),
        ),
        (
            "accepted in parts",
            views.accepted_message(
                [record(RequestStatus.ACCEPTED, 1000, part=n, parts=3) for n in (1, 2, 3)], False
            ),
        ),
        (
            "workflows",
            wv.workflows_list(
                workflows,
                page=1,
                calls_back_here={w.id: w is WORKFLOW for w in workflows},
                can_manage=True,
                fetched_at=datetime.now(UTC),
                sandbox=True,
                notice="Refreshed.",
            ),
        ),
    ]


def every_view() -> list[tuple[str, View]]:
    context = views.ModalContext(user_id="U1", channel_id="C1")
    requests = [(shown, stats_of(calls)) for _, shown, calls, _ in CASES[::5]][:10]
    workflows = [WORKFLOW, HOSTILE_WORKFLOW] * 10
    calls_page = Page(
        items=[
            ProviderCall(
                phone=f"+234803{n:07d}",
                outcome=CallOutcome.ANSWERED if n % 2 else CallOutcome.NO_ANSWER,
                provider_status="COMPLETED",
                duration=30,
                key_pressed="<@U0EVIL>",
                provider_ref=BATCH,
            )
            for n in range(10)
        ],
        total=120,
        has_next=True,
    )
    recent = Page(
        items=[ProviderRequest(ref=BATCH, status="<!here>", total=120, answered=96)], total=1
    )
    query = wv.CallsQuery(workflow_id=WORKFLOW.id, page=2)
    return [
        (
            "send",
            views.send_call_modal(workflows, context, voices=VOICES, selected=HOSTILE_WORKFLOW),
        ),
        ("send, no workflows", views.send_call_modal([], context, voices=VOICES, sandbox=True)),
        (
            "home",
            home_view(
                requests,
                workflows,
                voice_of={r.id: "Yoruba (male)" for r, _ in requests},
                provider_of={r.id: "Intron" for r, _ in requests},
                calls_back_here={w.id: False for w in workflows},
                can_manage=True,
                sandbox=True,
            ),
        ),
        (
            "home, empty",
            home_view([], [], voice_of={}, calls_back_here={}, can_manage=False, sandbox=False),
        ),
        ("new workflow", wv.workflow_modal(wv.WorkflowForm(), limit=4000)),
        (
            "edit workflow",
            wv.workflow_modal(
                wv.WorkflowForm(workflow_id=HOSTILE_WORKFLOW.id), HOSTILE_WORKFLOW, limit=4000
            ),
        ),
        ("delete", wv.delete_modal(HOSTILE_WORKFLOW, [r for r, _ in requests], sandbox=True)),
        (
            "view",
            wv.view_modal(
                HOSTILE_WORKFLOW,
                calls_back_here=False,
                recent=recent,
                ours=[],
                notice=None,
                sandbox=False,
            ),
        ),
        ("calls", wv.calls_modal(query, calls_page, notice=None, sandbox=False)),
        ("calls, loading", wv.calls_modal(query, None, notice=None, sandbox=False)),
        ("done", done_modal("Workflow saved", f"*{views.outside(HOSTILE, 150)}* saved.")),
    ]


def mrkdwn_texts(value: Any) -> Iterator[str]:
    """Every string Slack reads as mrkdwn: `text` fallbacks and mrkdwn text objects."""
    if isinstance(value, dict):
        text = value.get("text")
        if isinstance(text, str) and value.get("type") in (None, "mrkdwn"):
            yield text
        for item in value.values():
            yield from mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn_texts(item)


def not_made_by_app(value: Any) -> list[str]:
    """Each mrkdwn text with a `<` the app did not put there on purpose."""
    return [t for t in mrkdwn_texts(value) if "<" in MADE_BY_APP.sub("", t)]


def assert_sendable(name: str, shown: Message) -> None:
    assert_valid_blocks(shown.blocks)
    assert len(shown.blocks) <= 50, name  # Slack's limit for a message
    assert shown.text and len(shown.text) <= 4000, name  # a notification, not a page
    assert not_made_by_app(shown.model_dump()) == [], name


@pytest.mark.parametrize(("case", "shown", "calls", "workflow"), CASES, ids=[c[0] for c in CASES])
def test_every_request_message_is_valid_and_links_nothing_it_did_not_make(
    case: str, shown: RequestRecord, calls: list[CallRecord], workflow: Workflow
) -> None:
    for name, rendered in messages_for(shown, calls, workflow):
        assert_sendable(f"{case}: {name}", rendered)


def test_every_other_message_and_view_is_valid_and_links_nothing_it_did_not_make() -> None:
    for name, rendered in other_messages():
        assert_sendable(name, rendered)
    for name, view in every_view():
        shown = view.to_dict()
        assert_valid_view(shown)
        assert len(shown["blocks"]) <= 100, name
        assert not_made_by_app(shown) == [], name


def test_help_voices_and_hints_write_placeholders_as_words() -> None:
    for shown in (views.help_message(False), views.voices_message(VOICES, False)):
        texts = "\n".join(mrkdwn_texts(shown.model_dump()))
        assert "<" not in texts and ">" not in texts.replace("\n>", "\n")
    assert (
        '`/robocall call "workflow" +234… name=value'
        in views.help_message(False).blocks[0]["text"]["text"]
    )
    assert "`voice=accent/gender`" in views.voices_message(VOICES, False).blocks[0]["text"]["text"]


# ---------------------------------------------------------------- the parent message


def headline_of(shown: Message) -> str:
    first = shown.blocks[0]
    assert first["type"] == "section", first
    return first["text"]["text"]


@pytest.mark.parametrize("status", list(RequestStatus))
@pytest.mark.parametrize("sandbox", [False, True])
def test_the_parent_leads_with_its_state(status: RequestStatus, sandbox: bool) -> None:
    shown = record(status, 120)
    calls = calls_of(shown, done=120 if status == RequestStatus.COMPLETED else 0)
    rendered = parent(shown, calls, sandbox=sandbox)
    emoji = views.STATE_EMOJI[status]
    assert headline_of(rendered).startswith(f"{emoji} *Demo reminder* — ")
    assert rendered.text.startswith(f"{emoji} Demo reminder — ")  # the notification too
    assert ("Robo call" not in rendered.text) and ("Robo call" not in headline_of(rendered))


def test_the_parent_says_what_happened_in_words() -> None:
    words = {
        RequestStatus.COMPLETED: ":white_check_mark: *Demo reminder* — 96/120 answered (80%)",
        RequestStatus.FAILED: ":x: *Demo reminder* — failed, nobody was called",
        RequestStatus.UNKNOWN: ":grey_question: *Demo reminder* — outcome unknown",
        RequestStatus.PLACED: ":telephone_receiver: *Demo reminder* — placed, waiting for results",
    }
    for status, expected in words.items():
        shown = record(status, 120)
        calls = calls_of(shown, done=120 if status == RequestStatus.COMPLETED else 0)
        assert headline_of(parent(shown, calls)).startswith(expected)
    placed = record(RequestStatus.PLACED, 120)
    assert headline_of(parent(placed, calls_of(placed, done=37))) == (
        ":telephone_receiver: *Demo reminder* — placed, 37/120 results so far"
    )
    completed = record(RequestStatus.COMPLETED, 120)
    assert "completed, 96/120 answered (80%)" in parent(completed, calls_of(completed)).text


def test_the_parent_has_its_fields_dates_and_a_quiet_footer() -> None:
    shown = record(RequestStatus.COMPLETED, 120)
    rendered = parent(shown, calls_of(shown))
    fields = [f["text"] for b in rendered.blocks for f in b.get("fields", [])]
    assert fields[:4] == [
        "*Workflow*\nDemo reminder",
        "*Voice*\nYoruba (male)",
        "*To*\n120 recipients",
        "*Requested by*\n<@U1>",
    ]
    started = int(datetime.fromisoformat(STARTED).timestamp())
    finished = int(datetime.fromisoformat(FINISHED).timestamp())
    assert fields[4] == (
        f"*Started*\n<!date^{started}^{{date_short_pretty}} {{time}}|2024-05-01 10:00 UTC>"
    )
    assert fields[5].startswith(f"*Finished*\n<!date^{finished}^")
    footer = rendered.blocks[-1]
    assert footer["type"] == "context"
    assert footer["elements"][0]["text"] == "Request `rq-0123456789ab` · Intron batch `3f9c2a7b…`"
    assert BATCH not in str(rendered.model_dump())  # the whole id is for /robocall status
    placed = record(RequestStatus.PLACED, 120)
    placed_fields = [f["text"] for b in parent(placed, []).blocks for f in b.get("fields", [])]
    assert not any(f.startswith("*Finished*") for f in placed_fields)


def test_a_part_of_a_split_request_says_which() -> None:
    shown = record(RequestStatus.COMPLETED, 1000, part=2, parts=3, part_of="rq-first")
    calls = calls_of(shown)
    assert "*Demo reminder* · part 2 of 3 — " in headline_of(parent(shown, calls))
    assert "part 2 of 3" in parent(shown, calls).text
    [results] = views.results_messages(shown, calls, WORKFLOW, stats_of(calls))
    assert "part 2 of 3" in results.text
    csv_file = views.results_csv(shown, calls, WORKFLOW)
    assert csv_file is not None and "part-2-of-3" in csv_file.filename
    alone = record(RequestStatus.COMPLETED, 120)
    assert "part" not in headline_of(parent(alone, calls_of(alone)))


@pytest.mark.parametrize("count", [1, 2])
def test_one_recipient_is_singular_everywhere(count: int) -> None:
    shown = record(RequestStatus.COMPLETED, count)
    calls = calls_of(shown)
    stats = stats_of(calls)
    expected = "1 recipient" if count == 1 else "2 recipients"
    home = home_view(
        [(shown, stats)], [], voice_of={}, calls_back_here={}, can_manage=False, sandbox=False
    )
    status = views.status_message(
        shown, calls, WORKFLOW, stats, voice="v", provider="Intron", sandbox=False, secrets=()
    )
    for text in (
        str(parent(shown, calls).model_dump()),
        str(views.accepted_message([shown], False).model_dump()),
        str(status.model_dump()),
        str(home.to_dict()),
    ):
        assert expected in text
        assert "1 recipients" not in text


# ---------------------------------------------------------------- buttons


def buttons(block: Any) -> list[tuple[str, str, str]]:
    if block is None:
        return []
    shown = block.to_dict() if hasattr(block, "to_dict") else block
    return [(b["action_id"], b["text"]["text"], b["value"]) for b in shown["elements"]]


def test_the_buttons_follow_the_state() -> None:
    rid = "rq-0123456789ab"
    completed = record(RequestStatus.COMPLETED, 120)
    assert buttons(views.request_actions(completed, stats_of(calls_of(completed)))) == [
        (ActionId.REQUEST_VIEW_CALLS, "View calls", rid),
        (ActionId.REQUEST_CALL_AGAIN, "Call again: 24 who did not answer", rid),
    ]
    everyone = record(RequestStatus.COMPLETED, 20)
    answered = stats_of(calls_of(everyone)).model_copy(
        update={"answered": 20, "no_answer": 0, "busy": 0, "voicemail": 0, "failed": 0}
    )
    assert buttons(views.request_actions(everyone, answered)) == [
        (ActionId.REQUEST_VIEW_CALLS, "View calls", rid)
    ]
    failed = record(RequestStatus.FAILED, 3)
    assert buttons(views.request_actions(failed, stats_of(calls_of(failed, done=0)))) == [
        (ActionId.REQUEST_TRY_AGAIN, "Try again", rid)
    ]
    unknown = record(RequestStatus.UNKNOWN, 3)
    actions = views.request_actions(unknown, stats_of(calls_of(unknown, done=0)), provider="Intron")
    assert buttons(actions) == [(ActionId.REQUEST_CHECK_NOW, "Check with Intron", rid)]
    placed = record(RequestStatus.PLACED, 120)
    assert views.request_actions(placed, stats_of(calls_of(placed, done=0))) is None
    assert buttons(views.request_actions(placed, stats_of(calls_of(placed, done=37)))) == [
        (ActionId.REQUEST_VIEW_CALLS, "View calls", rid)
    ]
    accepted = record(RequestStatus.ACCEPTED, 3)
    assert views.request_actions(accepted, stats_of(calls_of(accepted, done=0))) is None
    # On the parent message, between its fields and its footer.
    shown = parent(completed, calls_of(completed))
    assert [b["type"] for b in shown.blocks] == ["section", "section", "actions", "context"]


# ---------------------------------------------------------------- results


def results_text(shown: Message) -> str:
    return "\n".join(mrkdwn_texts(shown.model_dump()))


@pytest.mark.parametrize("count", [1, 20])
def test_a_small_request_lists_its_calls_in_the_one_reply(count: int) -> None:
    shown = record(RequestStatus.COMPLETED, count)
    calls = calls_of(shown)
    [reply] = views.results_messages(shown, calls, WORKFLOW, stats_of(calls))
    text = results_text(reply)
    assert sum("+234•••••" in line for line in text.split("\n")) == count
    assert views.results_csv(shown, calls, WORKFLOW) is None
    assert "CSV" not in text


@pytest.mark.parametrize("count", [21, 120])
def test_a_large_request_gets_a_summary_and_a_csv(count: int) -> None:
    shown = record(RequestStatus.COMPLETED, count)
    calls = calls_of(shown)
    [reply] = views.results_messages(shown, calls, WORKFLOW, stats_of(calls))
    text = results_text(reply)
    assert "+234•••••" not in text
    assert f"All {count} calls: *View calls* above, or the CSV below." in text
    assert len(" ".join(t for t in mrkdwn_texts(reply.blocks)).split()) < 80  # not 577
    csv_file = views.results_csv(shown, calls, WORKFLOW)
    assert csv_file is not None and csv_file.filename == "rq-0123456789ab-calls.csv"
    rows = list(csv.reader(io.StringIO(csv_file.content.lstrip("\ufeff"))))
    assert rows[0] == list(views.CSV_COLUMNS)
    assert len(rows) == count + 1
    assert rows[1] == ["1", "+234•••••0001", "answered", "1", "Confirm", "27", "call-1"]
    other_key = next(r for r in rows if r[3] == "7")
    assert (other_key[2], other_key[4]) == ("answered", "")  # a key with no meaning
    no_answer = next(r for r in rows if r[2] == "no answer")
    assert no_answer[5] == ""  # no duration for a call nobody answered
    assert not any(word in csv_file.content for word in PROVIDER_WORDS)
    assert "+234803" not in csv_file.content  # masked, as everywhere in Slack


def test_the_summary_has_a_bar_per_outcome_and_presses_by_meaning() -> None:
    shown = record(RequestStatus.COMPLETED, 120)
    calls = calls_of(shown)
    summary = views.results_summary(stats_of(calls), WORKFLOW)
    assert "answered   ▓▓▓▓▓▓▓▓░░  96 (80%)" in summary
    assert "no answer  ▓░░░░░░░░░  12 (10%)" in summary
    assert "busy " in summary and "voicemail " in summary and "failed " in summary
    assert "waiting" not in summary  # only the outcomes that occurred
    assert "Pressed: 1 Confirm — 70 · 2 Cancel — 20 · other keys — 6" in summary
    assert "Answered calls lasted 27 s on average." in summary
    assert "Replies (" not in summary


def test_call_lines_are_plain_words() -> None:
    shown = record(RequestStatus.COMPLETED, 120)
    calls = calls_of(shown)
    lines: dict[CallOutcome | None, str] = {}
    for call in calls:
        lines.setdefault(call.outcome, views.call_line(call, WORKFLOW))  # the first of each
    assert lines[CallOutcome.ANSWERED] == "+234•••••0001 · ✅ answered · 27 s · pressed 1 Confirm"
    assert lines[CallOutcome.NO_ANSWER].endswith(" · 📵 no answer")
    assert lines[CallOutcome.BUSY].endswith(" · 🔁 busy")
    assert lines[CallOutcome.VOICEMAIL].endswith(" · 📭 voicemail")
    assert lines[CallOutcome.FAILED].endswith(" · ❌ failed")
    waiting = calls_of(record(RequestStatus.PLACED, 1), done=0)[0]
    assert views.call_line(waiting, WORKFLOW).endswith(" · ⏳ waiting")
    other = calls[95]
    assert views.call_line(other, WORKFLOW).endswith("pressed 7")  # no meaning: none shown
    rendered = [views.call_line(c, WORKFLOW) for c in calls]
    for _, small, small_calls, workflow in CASES:
        for name, message in messages_for(small, small_calls, workflow):
            if name in ("results", "status"):
                rendered.append(results_text(message))
    for text in rendered:
        assert not any(word in text for word in PROVIDER_WORDS), text
        assert not re.search(r"(?<![\d.])0 s\b", text), text


def test_the_csv_cannot_become_a_formula_or_a_mention() -> None:
    shown = record(RequestStatus.COMPLETED, 21, workflow_name=HOSTILE)
    calls = [c.model_copy(update={"key_pressed": "2"}) for c in calls_of(shown)]
    csv_file = views.results_csv(shown, calls, HOSTILE_WORKFLOW)
    assert csv_file is not None
    rows = list(csv.reader(io.StringIO(csv_file.content.lstrip("\ufeff"))))
    assert rows[1][4] == '\'=HYPERLINK("http://evil.example")'
    assert "\u202e" not in csv_file.content and "\u202e" not in csv_file.title


# ---------------------------------------------------------------- Home and the Send modal


def test_the_home_tab_shows_requests_as_the_channel_does() -> None:
    completed = record(RequestStatus.COMPLETED, 120)
    failed = record(RequestStatus.FAILED, 1, id="rq-failed000001")
    unknown = record(RequestStatus.UNKNOWN, 2, id="rq-unknown00001")
    shown = [
        (completed, stats_of(calls_of(completed))),
        (failed, stats_of(calls_of(failed, done=0))),
        (unknown, stats_of(calls_of(unknown, done=0))),
    ]
    view = home_view(
        shown,
        [WORKFLOW],
        voice_of={r.id: "Yoruba (male)" for r, _ in shown},
        provider_of={r.id: "Intron" for r, _ in shown},
        calls_back_here={WORKFLOW.id: True},
        can_manage=True,
        sandbox=False,
    ).to_dict()
    texts = list(mrkdwn_texts(view))
    for r, stats in shown:
        assert views.headline(r, stats) in texts
    joined = "\n".join(texts)
    assert ":x: *Demo reminder* — failed, nobody was called" in joined
    assert ":grey_question: *Demo reminder* — outcome unknown" in joined
    assert "<!date^" in joined and STARTED[:16] not in joined
    assert "1 recipient ·" in joined and "1 recipients" not in joined
    actions = [b for b in view["blocks"] if b.get("block_id", "").startswith("request:")]
    assert [[e["action_id"] for e in b["elements"]] for b in actions] == [
        [ActionId.REQUEST_VIEW_CALLS, ActionId.REQUEST_CALL_AGAIN],
        [ActionId.REQUEST_TRY_AGAIN],
        [ActionId.REQUEST_CHECK_NOW],
    ]


def test_the_channel_picker_offers_channels_only() -> None:
    for channel, initial in (("C1", "C1"), ("G1", "G1"), ("D1", None)):
        context = views.ModalContext(user_id="U1", channel_id=channel)
        view = views.send_call_modal([WORKFLOW], context, voices=VOICES).to_dict()
        [picker] = [b for b in view["blocks"] if b.get("block_id") == BlockId.CHANNEL]
        element = picker["element"]
        assert element["filter"] == {
            "include": ["public", "private"],
            "exclude_bot_users": True,
            "exclude_external_shared_channels": True,
        }
        assert element.get("initial_conversation") == initial


def test_dates_are_slack_dates_with_a_utc_fallback() -> None:
    assert slack_blocks.when("2024-05-01T10:00:00") == (
        "<!date^1714557600^{date_short_pretty} {time}|2024-05-01 10:00 UTC>"
    )
    assert slack_blocks.when("2024-05-01T12:00:00+02:00").startswith("<!date^1714557600^")
    assert slack_blocks.when(None) == slack_blocks.when("yesterday") == ""


# ---------------------------------------------------------------- end to end


def numbers(count: int) -> str:
    return " ".join(f"+234803123{n:04d}" for n in range(1, count + 1))


async def large_request(harness: Harness) -> tuple[RequestRecord, str]:
    await harness.create_workflow(REMINDER)
    await command(harness, f'call "Appointment reminder" {numbers(25)} name=Ada date=Monday')
    store = harness.store
    done = await harness.wait_until(
        lambda: (r := store.requests.recent(1)) and r[0].status == RequestStatus.COMPLETED and r[0],
        timeout=10,
    )
    ts = await harness.wait_until(lambda: harness.slack_store.message(done.id).ts)
    return done, ts


async def test_a_large_request_posts_one_reply_and_its_csv_once(
    harness: Harness, sandbox: Sandbox
) -> None:
    fake = harness.fake
    fake.fail_next("files.completeUploadExternal", 500)  # the file comes on a retry
    done, ts = await large_request(harness)
    [shared] = await fake.wait_for(lambda f: f.files("C1", ts), timeout=15)
    await harness.settled()
    [reply] = fake.thread("C1", ts)
    assert "Results for Appointment reminder: " in reply.params["text"]
    assert "All 25 calls: *View calls* above, or the CSV below." in reply.all_text()
    assert shared.filename == f"{done.id}-calls.csv"
    rows = list(csv.reader(io.StringIO(shared.text)))
    assert rows[0] == list(views.CSV_COLUMNS) and len(rows) == 26
    assert [r[1] for r in rows[1:3]] == ["+234•••••0001", "+234•••••0002"]
    assert {r[2] for r in rows[1:]} >= {"answered", "no answer", "failed"}
    assert "+2348031230001" not in shared.text
    assert len(fake.files()) == 1 and harness.slack_store.results_posted(done.id) == 2


async def test_a_csv_slack_refuses_is_explained_once(harness: Harness, sandbox: Sandbox) -> None:
    fake = harness.fake
    fake.answer_with(
        "files.getUploadURLExternal", lambda call: {"ok": False, "error": "missing_scope"}
    )
    done, ts = await large_request(harness)
    await fake.wait_for(lambda f: len(f.thread("C1", ts)) == 2, timeout=10)
    await harness.settled()
    summary, refusal = fake.thread("C1", ts)
    assert "Results for" in summary.params["text"]
    assert "could not be attached (missing_scope" in refusal.all_text()
    assert fake.files() == [] and harness.slack_store.results_posted(done.id) == 2
    assert not [j for j in harness.store.jobs.pending() if j.kind == "slack.post"]
