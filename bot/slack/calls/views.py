"""Block Kit for every modal and message, built with `slack_sdk.models` so that
Slack's limits (text lengths, option counts, block counts) are checked when a
view is turned into JSON. Pure functions: records in, Slack objects out.

Whatever in them the app did not write itself (a workflow's name, message and
labels, keys pressed, the provider's ids and errors, voices, what people typed) is
put in through `bot.text.outside` (`outside_error` for errors, `outside_plain` for
plain_text), in the fallback `text` as in the blocks."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    DateTimePickerElement,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    OptionGroup,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.blocks.block_elements import ConversationFilter, ConversationSelectElement
from slack_sdk.models.views import View

from bot.core.models import CallRecord, RequestRecord, RequestStatus, Stats
from bot.input import phones
from bot.providers.base import CallOutcome, Voice, Workflow
from bot.slack.blocks import (
    Message,
    md,
    message,
    note,
    percent,
    plural,
    sandbox_blocks,
    when,
)
from bot.slack.ids import DEFAULT_VOICE, ActionId, BlockId, CallbackId
from bot.text import clip, outside, outside_error, outside_plain

MAX_OPTIONS = 100  # Slack's limit for a static select
CALLS_PER_MESSAGE = 40  # calls `/robocall status` reads (it shows INLINE_CALLS of them)
INLINE_CALLS = 20  # up to this many calls are listed in the thread; beyond, a CSV file
SECTION = 2900  # characters of call lines per section (Slack allows 3,000)
BAR = 10  # characters of an outcome's bar

# How much of what others wrote is shown, in characters.
NAME = 150  # a workflow's name (Intron's own limit)
LABEL = 80  # a keypad reply's meaning
KEY = 8  # a key pressed, as the provider reports it
REF = 80  # a provider's id (a batch id)
SHORT_REF = 8  # a provider's id in a message's footer: enough to tell batches apart
VOICE = 60
ERROR = 1000  # an error message


class ModalContext(BaseModel):
    """Carried in the modal's private_metadata: where the modal was opened from."""

    user_id: str
    channel_id: str | None = None


# ---------------------------------------------------------------- the Send modal


def send_call_modal(
    workflows: Sequence[Workflow],
    context: ModalContext,
    *,
    voices: Sequence[Voice],
    selected: Workflow | None = None,
    sandbox: bool = False,
) -> View:
    """The *Send robo call* modal; showing `selected`'s message and variables if given."""
    blocks: list[Block] = sandbox_blocks(sandbox)
    if not workflows:
        blocks.append(
            md(
                "There are no workflows yet. A workflow is the message template a call "
                "uses; create one with `/robocall workflows` (or at the provider), then "
                "try again."
            )
        )
        return View(
            type="modal",
            callback_id=CallbackId.SEND_CALL,
            title="Send robo call",
            close="Close",
            blocks=blocks,
            private_metadata=context.model_dump_json(),
        )
    options = [
        Option(value=w.id, text=outside_plain(w.name, 75) or "(no name)")
        for w in workflows[:MAX_OPTIONS]
    ]
    initial = next((o for o in options if selected and o.value == selected.id), None)
    blocks.append(
        InputBlock(
            block_id=BlockId.WORKFLOW,
            label="Workflow",
            dispatch_action=True,
            element=StaticSelectElement(
                action_id=ActionId.WORKFLOW_SELECT,
                options=options,
                initial_option=initial,
                placeholder="Choose a workflow",
            ),
        )
    )
    if selected is not None:
        blocks.append(md(workflow_summary(selected), BlockId.WORKFLOW_INFO))
    blocks.append(
        InputBlock(
            block_id=BlockId.VOICE,
            label="Voice",
            optional=True,
            element=StaticSelectElement(
                action_id=ActionId.VOICE_SELECT,
                option_groups=voice_option_groups(voices),
                placeholder="Provider default",
            ),
        )
    )
    names = selected.variables if selected else ["name"]
    example = " ".join(f"{v}={EXAMPLE_VALUES.get(v, 'value')}" for v in names)
    blocks.append(
        InputBlock(
            block_id=BlockId.RECIPIENTS,
            label="Recipients",
            hint=f"One per line: an E.164 number, then name=value pairs, e.g. "
            f"+2348076960623 {example} — or a pasted CSV with a header row "
            f"(phone,{','.join(names)}).",
            element=PlainTextInputElement(
                action_id=ActionId.RECIPIENTS_INPUT,
                multiline=True,
                placeholder=f"+2348076960623 {example}",
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.WHEN,
            label="When",
            optional=True,
            hint="Leave empty to call at once. Shown in your time zone; it can be "
            "cancelled from the request's message until it is dialled (up to 30 days ahead).",
            element=DateTimePickerElement(action_id=ActionId.WHEN_SELECT),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.CHANNEL,
            label="Post updates in",
            element=ConversationSelectElement(
                action_id=ActionId.CHANNEL_SELECT,
                # A DM (D…) is not offered by the filter, so it is not preselected either.
                initial_conversation=context.channel_id
                if _is_channel(context.channel_id)
                else None,
                default_to_current_conversation=True,
                # Channels only: results go to a team's channel, not to a DM with the bot
                # or a channel shared with another organisation.
                filter=ConversationFilter(
                    include=["public", "private"],
                    exclude_bot_users=True,
                    exclude_external_shared_channels=True,
                ),
            ),
        )
    )
    return View(
        type="modal",
        callback_id=CallbackId.SEND_CALL,
        title="Send robo call",
        submit="Place call",
        close="Cancel",
        blocks=blocks,
        private_metadata=context.model_dump_json(),
    )


def _is_channel(conversation: str | None) -> bool:
    """A public (C…) or private (G…, or C… on newer workspaces) channel, not a DM."""
    return bool(conversation) and conversation[0] in "CG"


def voice_option_groups(voices: Sequence[Voice]) -> list[OptionGroup]:
    """The voices grouped by language, after a group holding the provider default."""
    by_language: dict[str, list[Voice]] = defaultdict(list)
    for voice in voices:
        by_language[voice.language].append(voice)
    groups = [
        OptionGroup(
            label="Default", options=[Option(value=DEFAULT_VOICE, text="Provider default voice")]
        )
    ]
    groups += [
        OptionGroup(
            label=language,
            options=[Option(value=v.key, text=f"{language} ({v.gender})") for v in group],
        )
        for language, group in by_language.items()
    ]
    return groups


def workflow_summary(workflow: Workflow) -> str:
    """The workflow's message, the variables it needs and its reply options, as mrkdwn."""
    needs = ", ".join(f"`[{v}]`" for v in workflow.variables) or "no variables"
    lines = [f"*{outside(workflow.name, NAME)}*", quote(workflow.message, 2000), f"Needs: {needs}"]
    if workflow.keypad:
        lines.append(f"Keypad replies: {keypad_replies(workflow.keypad)}")
    return "\n".join(lines)


def quote(text: str, limit: int) -> str:
    """Someone else's text (a workflow's message) as a mrkdwn quote, every line of it."""
    return "\n".join(f">{line}" for line in outside(text, limit, multiline=True).split("\n"))


def keypad_replies(keypad: dict[str, str]) -> str:
    """`1 = Confirm, 2 = Cancel`, as mrkdwn."""
    return ", ".join(f"{outside(d, KEY)} = {outside(t, LABEL)}" for d, t in keypad.items())


# ---------------------------------------------------------------- ephemeral answers
#
# Placeholders are written as words ("workflow", "rq-…"), never as `<workflow>`: Slack
# reads `<…>` as a link or a mention, or drops it, even inside backticks.


# Example values for the recipients hint, by common variable name ("value" otherwise).
EXAMPLE_VALUES = {"name": "Ada", "date": "Friday", "day": "Friday", "time": "10:00"}


@cache
def help_message(sandbox: bool) -> Message:
    text = "\n".join(
        [
            "*/robocall* — place automated voice calls and follow their results here.",
            "• `/robocall` — open the *Send robo call* form",
            '• `/robocall call "workflow" +234… name=value voice=accent/gender` — call at '
            "once: the workflow by name (in quotes if it has spaces) or id, one or more "
            "numbers, then the values its message needs and, if you like, a voice; e.g. "
            '`/robocall call "Appointment reminder" +2348076960623 name=Ada date=Monday '
            "voice=igbo/female`",
            "• add `at=2026-12-02T09:00+01:00`, `at=09:00` or `at=tomorrow 09:00` (your "
            "Slack time zone) to `/robocall call` to dial it later",
            "• `/robocall cancel rq-…` — cancel a scheduled request before it is dialled",
            "• `/robocall status rq-…` — what is known about a request, by its request id "
            "or the provider's batch id",
            "• `/robocall voices` — the premium voices",
            "• `/robocall workflows` — the workflows and the variables they need",
            "• `/robocall optout add|remove|list +234…` — numbers never to call (anyone may "
            "add; admins remove)",
            "• `/robocall escalations` — the escalation policies: *New policy*, *Edit*, "
            "*Delete*, *Test*",
            '• `/robocall escalate "Payments on-call" Disk full on db-1` — call that '
            "policy's people one after another until someone presses 1 or clicks "
            "*Acknowledge*",
            "• `/robocall campaign` — call everyone in a CSV or XLSX file, with a preview first",
            "• `/robocall help` — this message",
            "Numbers are E.164 (`+` and the country code). Results arrive in the thread of the "
            "request's message.",
        ]
    )
    return message("How to use /robocall", [*sandbox_blocks(sandbox), md(text)])


@cache  # the same few voices every time: rendered once
def voices_message(voices: tuple[Voice, ...], sandbox: bool) -> Message:
    by_language: dict[str, list[str]] = defaultdict(list)
    for voice in voices:
        by_language[voice.language].append(f"`{outside(voice.key, VOICE)}`")
    lines = [
        f"• *{outside(language, VOICE)}*: {', '.join(keys)}"
        for language, keys in by_language.items()
    ]
    return message(
        "Premium voices",
        [
            *sandbox_blocks(sandbox),
            md(
                "*Premium voices* — add `voice=accent/gender` to `/robocall call`, e.g. "
                "`voice=igbo/female`:\n" + "\n".join(lines)
            ),
        ],
    )


def problems_message(title: str, problems: Sequence[str], sandbox: bool) -> Message:
    """A refusal: what is wrong, one line per problem; nothing was sent."""
    shown = [f"• {outside(p, ERROR)}" for p in problems[:15]]
    if len(problems) > 15:
        shown.append(f"• …and {len(problems) - 15} more")
    text = f":warning: {title} Nothing was sent.\n" + "\n".join(shown)
    return message(f"{title} Nothing was sent.", [*sandbox_blocks(sandbox), md(text)])


def accepted_message(
    parts: Sequence[RequestRecord],
    sandbox: bool,
    waits: Mapping[str, tuple[str, str]] | None = None,
) -> Message:
    """The answer to an accepted order: one request, or the parts it was split into.
    `waits`: the parts waiting for their recipients' calling hours (request id → when
    they open, in which zone), said with how many wait and until when."""
    record = parts[0]
    where = f"<#{record.channel}>" if record.channel else "this channel"
    total = sum(p.recipient_count for p in parts)
    text = (
        f":telephone_receiver: Request `{record.id}` accepted: "
        f"{plural(total, 'recipient')} with "
        f"*{outside(record.workflow_name, NAME)}*. Progress and results follow in {where}."
    )
    if record.status == RequestStatus.SCHEDULED:
        text = (
            f":clock9: Request `{record.id}` scheduled: {plural(total, 'recipient')} with "
            f"*{outside(record.workflow_name, NAME)}*, to be dialled "
            f"{when(record.scheduled_at)}. Until then it can be cancelled with "
            f"`/robocall cancel {record.id}` or the *Cancel* button on its message in {where}."
        )
    if len(parts) > 1:
        text += (
            f"\nIt goes to the provider in {len(parts)} parts of at most "
            f"{max(p.recipient_count for p in parts):,} (the most one submission carries), "
            f"each with its own message: {', '.join(f'`{p.id}`' for p in parts)}."
        )
    if waiting := [p for p in parts if waits and p.id in waits]:
        count = sum(p.recipient_count for p in waiting)
        until = "; ".join(
            f"{plural(p.recipient_count, 'recipient')} until {when(waits[p.id][0])} "
            f"({outside(waits[p.id][1], 300)})"
            for p in waiting[:5]
        )
        text += (
            f"\n:crescent_moon: {count:,} of {total:,} are outside their calling hours now and "
            f"wait for them (they are not refused): {until}"
            + (f"; and {len(waiting) - 5} more parts" if len(waiting) > 5 else "")
            + "."
        )
    return message(f"Request {record.id} accepted", [*sandbox_blocks(sandbox), md(text)])


def status_message(
    record: RequestRecord,
    calls: Sequence[CallRecord],
    workflow: Workflow | None,
    stats: Stats,
    *,
    voice: str,
    provider: str,
    sandbox: bool,
    secrets: Iterable[str],
) -> Message:
    """`/robocall status`: the request as its channel message shows it, with the
    provider's whole batch id, the error if any (`secrets` removed), and the results."""
    ids = f"Request `{record.id}`"
    if record.provider_ref:
        ids += f" · {outside(provider, 40)} batch `{outside(record.provider_ref, REF)}`"
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        md(headline(record, stats)),
        _fields(record, voice),
        note(ids),
    ]
    if record.error:
        blocks.append(md(f":warning: {outside_error(record.error, ERROR, secrets)}"))
    if record.status == RequestStatus.COMPLETED or stats.total > stats.pending:
        blocks.append(md(results_summary(stats, workflow)))
        shown = [call_line(c, workflow) for c in calls[:INLINE_CALLS]]
        blocks += _sections(shown)
        if (more := record.recipient_count - len(shown)) > 0:
            blocks.append(
                note(f"…and {plural(more, 'more call')}: *View calls* on the request's message.")
            )
    return message(headline_text(record, stats), blocks)


# ---------------------------------------------------------------- a request's state
#
# The same emoji and words wherever a request is shown: its channel message, the
# notification that message sends, `/robocall status` and the Home tab.

STATE_EMOJI = {
    RequestStatus.SCHEDULED: ":clock9:",
    RequestStatus.CANCELLED: ":no_entry_sign:",
    RequestStatus.ACCEPTED: ":hourglass_flowing_sand:",
    RequestStatus.SENDING: ":hourglass_flowing_sand:",
    RequestStatus.PLACED: ":telephone_receiver:",
    RequestStatus.COMPLETED: ":white_check_mark:",
    RequestStatus.FAILED: ":x:",
    RequestStatus.UNKNOWN: ":grey_question:",
}


def state_words(record: RequestRecord, stats: Stats) -> str:
    """`96/120 answered (80%)`, `placed, 37/120 results so far`, `failed, nobody was
    called`…: what a team needs to know first."""
    total = stats.total or record.recipient_count
    done = stats.total - stats.pending
    match record.status:
        case RequestStatus.SCHEDULED:
            return f"scheduled for {when(record.scheduled_at) or 'later'}"
        case RequestStatus.CANCELLED:
            return "cancelled, nobody was called"
        case RequestStatus.ACCEPTED:
            return "accepted, about to be placed"
        case RequestStatus.SENDING:
            return "placing the calls…"
        case RequestStatus.PLACED if done:
            return f"placed, {done:,}/{total:,} results so far"
        case RequestStatus.PLACED:
            return "placed, waiting for results"
        case RequestStatus.COMPLETED:
            return f"{stats.answered:,}/{total:,} answered ({percent(stats.answered, total)})"
        case RequestStatus.FAILED:
            return "failed, nobody was called"
        case _:
            return "outcome unknown: check before sending again"


def _part(record: RequestRecord) -> str:
    return f" · part {record.part} of {record.parts}" if record.parts > 1 else ""


def headline(record: RequestRecord, stats: Stats) -> str:
    """`:white_check_mark: *Demo reminder* — 96/120 answered (80%)`, as mrkdwn."""
    name = outside(record.workflow_name, NAME) or "(no name)"
    emoji = STATE_EMOJI[record.status]
    return f"{emoji} *{name}*{_part(record)} — {state_words(record, stats)}"


def headline_text(record: RequestRecord, stats: Stats) -> str:
    """The headline for a notification (no bold), saying "completed" when it is."""
    name = outside(record.workflow_name, NAME) or "(no name)"
    words = state_words(record, stats)
    if record.status == RequestStatus.COMPLETED:
        words = f"completed, {words}"
    return f"{STATE_EMOJI[record.status]} {name}{_part(record)} — {words}"


def _finished_at(record: RequestRecord) -> str | None:
    if record.status == RequestStatus.COMPLETED:
        return record.completed_at or record.updated_at
    if record.status in (RequestStatus.FAILED, RequestStatus.CANCELLED):
        return record.updated_at
    return None


def _fields(record: RequestRecord, voice: str) -> SectionBlock:
    """Workflow, voice, recipients, who asked, started and finished: as Slack fields."""
    fields = [
        f"*Workflow*\n{outside(record.workflow_name, NAME) or '(no name)'}",
        f"*Voice*\n{outside(voice, VOICE) or 'provider default'}",
        f"*To*\n{plural(record.recipient_count, 'recipient')}",
        f"*Requested by*\n<@{record.requested_by}>",
    ]
    if scheduled := when(record.scheduled_at):
        fields.append(f"*Scheduled for*\n:clock9: {scheduled}")
    if started := when(record.created_at):
        fields.append(f"*Started*\n{started}")
    if finished := when(_finished_at(record)):
        fields.append(f"*Finished*\n{finished}")
    return SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields])


def short_ref(ref: str) -> str:
    """A provider's id, its first characters: `3f9c2a7b…`, as mrkdwn."""
    shown = outside(ref[:SHORT_REF], SHORT_REF)
    return f"{shown}…" if len(ref) > SHORT_REF else shown


def did_not_answer(stats: Stats) -> int:
    """Calls that ended without being answered (no answer, busy, voicemail, failed)."""
    return stats.total - stats.answered - stats.pending


def request_actions(
    record: RequestRecord, stats: Stats, *, provider: str = "the provider"
) -> ActionsBlock | None:
    """The buttons a request's state calls for (each button's value is the request id),
    or None when there is nothing to do: *View calls* once any call has a result,
    *Call again* for those who did not answer, *Try again* after a failure, *Check with
    <provider>* when the outcome is unknown."""
    value = record.id
    buttons: list[ButtonElement] = []
    completed = record.status == RequestStatus.COMPLETED
    if completed and (missed := did_not_answer(stats)) > 0:
        buttons.append(
            ButtonElement(
                text=f"Call again: {missed:,} who did not answer",
                action_id=ActionId.REQUEST_CALL_AGAIN,
                value=value,
                style="primary",
            )
        )
    if record.status == RequestStatus.FAILED:
        buttons.append(
            ButtonElement(
                text="Try again", action_id=ActionId.REQUEST_TRY_AGAIN, value=value, style="primary"
            )
        )
    if record.status == RequestStatus.SCHEDULED:
        buttons.append(
            ButtonElement(
                text="Cancel",
                action_id=ActionId.REQUEST_CANCEL,
                value=value,
                style="danger",
                confirm=ConfirmObject(
                    title="Cancel this request?",
                    text=f"Nobody will be called: {plural(record.recipient_count, 'recipient')}"
                    + (" (every part of it)" if record.parts > 1 else "")
                    + ".",
                    confirm="Cancel it",
                    deny="Keep it",
                ),
            )
        )
    if record.status == RequestStatus.UNKNOWN:
        buttons.append(
            ButtonElement(
                text=clip(f"Check with {outside_plain(provider, 40)}", 75),
                action_id=ActionId.REQUEST_CHECK_NOW,
                value=value,
            )
        )
    if completed or stats.total > stats.pending:
        buttons.insert(
            0, ButtonElement(text="View calls", action_id=ActionId.REQUEST_VIEW_CALLS, value=value)
        )
    if not buttons:
        return None
    return ActionsBlock(block_id=f"request:{record.id}"[:255], elements=buttons)


# ---------------------------------------------------------------- the channel message


def request_message(
    record: RequestRecord,
    workflow: Workflow | None,
    stats: Stats,
    *,
    voice: str,
    provider: str,
    sandbox: bool,
    waiting: tuple[str, str] | None = None,
) -> Message:
    """The parent message in the channel, rendered from the request's current state:
    the state first, then the request's fields, its buttons, and the ids in a footer.
    `waiting`: (when, which zone) when it waits for its recipients' calling hours."""
    blocks: list[Block] = [md(headline(record, stats)), *sandbox_blocks(sandbox)]
    blocks.append(_fields(record, voice))
    if waiting and record.status == RequestStatus.SCHEDULED:
        blocks.append(
            note(
                f":crescent_moon: {plural(record.recipient_count, 'recipient')} outside their "
                f"calling hours wait until {when(waiting[0])} ({outside(waiting[1], 300)})."
            )
        )
    if actions := request_actions(record, stats, provider=provider):
        blocks.append(actions)
    ids = f"Request `{record.id}`"
    if record.provider_ref:
        ids += f" · {outside(provider, 40)} batch `{short_ref(record.provider_ref)}`"
    blocks.append(note(ids))
    return message(headline_text(record, stats), blocks)


def failure_reply(record: RequestRecord, secrets: Iterable[str]) -> Message:
    """The thread reply saying why the request failed; `secrets` are removed from it."""
    unknown = record.status == RequestStatus.UNKNOWN
    icon = STATE_EMOJI[RequestStatus.UNKNOWN if unknown else RequestStatus.FAILED]
    error = outside_error(record.error, ERROR, secrets) if record.error else None
    text = f"{icon} {error or 'The request failed.'}"
    if unknown:
        text += (
            "\nDo not send it again before checking: the *Check with…* button above, or "
            f"`/robocall status {record.id}`."
        )
    return message(text, [md(text)])


def late_reply(record: RequestRecord) -> Message:
    """The thread note when a scheduled request was dialled late (the app was down)."""
    minutes = _late_minutes(record)
    text = (
        f":warning: Dialled {minutes} late: the app was not running at "
        f"{when(record.scheduled_at)}, the time it was scheduled for."
    )
    return message(text, [md(text)])


def _late_minutes(record: RequestRecord) -> str:
    try:
        late = (
            datetime.fromisoformat(record.updated_at) - datetime.fromisoformat(record.scheduled_at)
        ).total_seconds()
    except (TypeError, ValueError):
        return "some time"
    whole = max(1, round(late / 60))
    return f"{whole} min" if whole < 120 else f"{whole // 60} h {whole % 60} min"


def cancelled_reply(record: RequestRecord) -> Message:
    """The thread note when a request is cancelled before it was dialled."""
    by = f" by <@{record.cancelled_by}>" if record.cancelled_by else ""
    text = f":no_entry_sign: Cancelled{by} before it was dialled: nobody was called."
    return message(text, [md(text)])


def found_reply(record: RequestRecord, provider: str) -> Message:
    text = (
        f":mag: Checked with {outside(provider, 40)}: these calls *were* placed, once (batch "
        f"`{outside(record.provider_ref, REF)}`). Do not send them again; results follow here."
    )
    return message(text, [md(text)])


# ---------------------------------------------------------------- the results


# A call's outcome in plain words, as the core names it (never the provider's own
# status: no COMPLETED or TIMEOUT).
OUTCOME_WORDS = {
    CallOutcome.ANSWERED: "answered",
    CallOutcome.VOICEMAIL: "voicemail",
    CallOutcome.BUSY: "busy",
    CallOutcome.NO_ANSWER: "no answer",
    CallOutcome.FAILED: "failed",
    CallOutcome.REJECTED: "rejected",
    CallOutcome.CANCELLED: "cancelled",
    CallOutcome.QUEUED: "waiting",
    CallOutcome.IN_PROGRESS: "in progress",
}
OUTCOME_EMOJI = {
    CallOutcome.ANSWERED: "✅",
    CallOutcome.VOICEMAIL: "📭",
    CallOutcome.BUSY: "🔁",
    CallOutcome.NO_ANSWER: "📵",
    CallOutcome.FAILED: "❌",
    CallOutcome.REJECTED: "❌",
    CallOutcome.CANCELLED: "❌",
    CallOutcome.QUEUED: "⏳",
    CallOutcome.IN_PROGRESS: "⏳",
}
WAITING = "waiting"  # a call with no outcome yet


def outcome_counts(stats: Stats) -> list[tuple[str, int]]:
    """How many calls ended each way, in words, only the ways that occurred."""
    rows = [
        ("answered", stats.answered),
        ("no answer", stats.no_answer),
        ("busy", stats.busy),
        ("voicemail", stats.voicemail),
        ("failed", stats.failed),
        (WAITING, stats.pending),
    ]
    return [(word, count) for word, count in rows if count]


def bar(count: int, total: int) -> str:
    """`▓▓▓▓▓▓▓▓░░`: `count` of `total`, on BAR characters; any count shows at least one."""
    filled = min(BAR, max(1, round(BAR * count / total))) if count and total else 0
    return "▓" * filled + "░" * (BAR - filled)


def seconds(value: float | None) -> str:
    """`27 s`, `1 min 32 s`."""
    if value is None:
        return "n/a"
    whole = round(value)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


def presses(stats: Stats, workflow: Workflow | None) -> str | None:
    """`Pressed: 1 Confirm — 70 · 2 Cancel — 20 · other keys — 6`, or None when the
    workflow has no keypad reply and nobody pressed anything."""
    keypad = workflow.keypad if workflow else {}
    items = [
        f"{outside(digit, KEY)} {outside(label, LABEL)} — {stats.keys.get(digit, 0):,}"
        for digit, label in keypad.items()
    ]
    if keypad:
        if others := sum(n for key, n in stats.keys.items() if key not in keypad):
            items.append(f"other keys — {others:,}")
    else:
        items += [f"{outside(key, KEY)} — {n:,}" for key, n in stats.keys.items() if n]
    return "Pressed: " + " · ".join(items) if items else None


def results_summary(stats: Stats, workflow: Workflow | None) -> str:
    """A bar per outcome, the keys pressed by meaning, how long answered calls lasted."""
    counts = outcome_counts(stats)
    width = max((len(word) for word, _ in counts), default=0)
    digits = max((len(f"{n:,}") for _, n in counts), default=0)
    rows = [
        f"{word:<{width}}  {bar(n, stats.total)}  {n:>{digits},} ({percent(n, stats.total)})"
        for word, n in counts
    ]
    lines = [f"*Results* · {plural(stats.total, 'call')}"]
    if rows:
        lines.append("```" + "\n".join(rows) + "```")
    if pressed := presses(stats, workflow):
        lines.append(pressed)
    if stats.answered and stats.avg_duration is not None:
        lines.append(f"Answered calls lasted {seconds(stats.avg_duration)} on average.")
    return "\n".join(lines)


def results_messages(
    record: RequestRecord, calls: Sequence[CallRecord], workflow: Workflow | None, stats: Stats
) -> list[Message]:
    """The one thread reply with the results: the summary, then each call when there
    are at most INLINE_CALLS of them; beyond that the calls come as a CSV file
    (`results_csv`) and *View calls*, which the reply points to."""
    blocks: list[Block] = [md(results_summary(stats, workflow))]
    if lists_calls(record):
        lines = [call_line(c, workflow) for c in calls[:INLINE_CALLS]]
        if lines:
            blocks += [DividerBlock(), *_sections(lines)]
    else:
        blocks.append(
            note(f"All {record.recipient_count:,} calls: *View calls* above, or the CSV below.")
        )
    name = outside(record.workflow_name, NAME)
    total = stats.total or record.recipient_count
    text = (
        f"Results for {name}{_part(record)}: {stats.answered:,}/{total:,} answered "
        f"({percent(stats.answered, total)})"
    )
    return [message(text, blocks)]


def lists_calls(record: RequestRecord) -> bool:
    """Whether the results reply lists each call (else a CSV file carries them)."""
    return record.recipient_count <= INLINE_CALLS


def call_line(call: CallRecord, workflow: Workflow | None) -> str:
    """`+234•••••0623 · ✅ answered · 32 s · pressed 1 Confirm`, `+234•••••0620 · 📵 no
    answer`: plain words, a duration only for answered calls."""
    if call.outcome is None:
        state = f"⏳ {WAITING}"
    else:
        state = f"{OUTCOME_EMOJI[call.outcome]} {OUTCOME_WORDS[call.outcome]}"
    if (call.provider_status or "").startswith("not called"):  # bot/core/consent.py
        state = f"🚫 {outside(call.provider_status, 80)}"
    parts = [phones.mask(call.phone_number), state]
    if call.outcome == CallOutcome.ANSWERED and call.duration:
        parts.append(seconds(call.duration))
    if call.key_pressed:
        pressed = f"pressed {outside(call.key_pressed, KEY)}"
        if label := _label(workflow, call.key_pressed):
            pressed += f" {outside(label, LABEL)}"
        parts.append(pressed)
    return " · ".join(parts)


def _label(workflow: Workflow | None, key: str) -> str | None:
    """What a key means in the workflow's keypad reply, if it means anything."""
    if workflow is None or key not in workflow.keypad:
        return None
    return workflow.keypad[key]


def _sections(lines: Sequence[str]) -> list[Block]:
    """Lines of mrkdwn in as few sections as Slack's 3,000 characters allow, never
    splitting a line."""
    sections: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        line = clip(line, SECTION)
        if chunk and size + len(line) + 1 > SECTION:
            sections.append(md("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        sections.append(md("\n".join(chunk)))
    return sections


# ---------------------------------------------------------------- the calls as a file


class CsvFile(BaseModel):
    """A file for the thread: `files_upload_v2(filename=…, title=…, content=…)`."""

    filename: str
    title: str
    content: str


CSV_COLUMNS = (
    "recipient",
    "number",
    "outcome",
    "key pressed",
    "meaning",
    "duration s",
    "provider call id",
)


def results_csv(
    record: RequestRecord, calls: Sequence[CallRecord], workflow: Workflow | None
) -> CsvFile | None:
    """Every call of a request too large to list in the thread, as CSV: its position
    among the recipients, the number masked (as everywhere in Slack), the outcome in
    words, the key pressed and its meaning, the duration of an answered call, the
    provider's call id. None when the thread lists the calls itself."""
    if lists_calls(record):
        return None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for call in calls:
        answered = call.outcome == CallOutcome.ANSWERED
        writer.writerow(
            [
                call.position,
                phones.mask(call.phone_number),
                OUTCOME_WORDS[call.outcome] if call.outcome else WAITING,
                _cell(call.key_pressed, KEY),
                _cell(_label(workflow, call.key_pressed) if call.key_pressed else None, LABEL),
                f"{call.duration:g}" if answered and call.duration is not None else "",
                _cell(call.provider_call_id, REF),
            ]
        )
    name = outside_plain(record.workflow_name, 60) or "Robo call"
    part = f"-part-{record.part}-of-{record.parts}" if record.parts > 1 else ""
    return CsvFile(
        filename=f"{record.id}{part}-calls.csv",
        title=f"{name}{_part(record)} — {plural(len(calls), 'call')}",
        # A byte-order mark, so that spreadsheets read the file as UTF-8 (the mask's •).
        content="\ufeff" + out.getvalue(),
    )


def _cell(value: str | None, limit: int) -> str:
    """Someone else's text for a spreadsheet: cleaned, clipped, and never a formula."""
    text = outside_plain(value, limit)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def csv_failed_reply(error: str) -> Message:
    """Said in the thread when Slack refused the CSV file (a missing scope, say)."""
    text = (
        f":warning: The CSV of the calls could not be attached ({outside(error, 100)}"
        "; the app may need `files:write`, or an invitation to this channel). "
        "*View calls* above lists every call."
    )
    return message(text, [md(text)])
