"""Block Kit for every modal and message, built with `slack_sdk.models` so that
Slack's limits (text lengths, option counts, block counts) are checked when a
view is turned into JSON. Pure functions: records in, Slack objects out.

Whatever in them the app did not write itself (a workflow's name, message and
labels, keys pressed, the provider's ids and errors, voices, what people typed) is
put in through `bot.text.outside` (`outside_error` for errors, `outside_plain` for
plain_text), in the fallback `text` as in the blocks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import cache

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    Block,
    DividerBlock,
    InputBlock,
    Option,
    OptionGroup,
    PlainTextInputElement,
    StaticSelectElement,
)
from slack_sdk.models.blocks.block_elements import ConversationSelectElement
from slack_sdk.models.views import View

from bot.core.models import CallRecord, RequestRecord, RequestStatus, Stats
from bot.input import phones
from bot.providers.base import CallOutcome, Voice, Workflow
from bot.slack.blocks import Message, md, message, note, number, plural, sandbox_blocks
from bot.slack.ids import DEFAULT_VOICE, ActionId, BlockId, CallbackId
from bot.text import outside, outside_error, outside_plain

MAX_OPTIONS = 100  # Slack's limit for a static select
CALLS_PER_MESSAGE = 40  # keeps a section under Slack's 3000 characters
MAX_CALL_LINES = 400  # beyond this the thread points to /robocall status

# How much of what others wrote is shown, in characters.
NAME = 150  # a workflow's name (Intron's own limit)
LABEL = 80  # a keypad reply's meaning
KEY = 8  # a key pressed, as the provider reports it
REF = 80  # a provider's id (a batch id)
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
    example = " ".join(f"{v}=…" for v in names)
    blocks.append(
        InputBlock(
            block_id=BlockId.RECIPIENTS,
            label="Recipients",
            hint=f"One per line: an E.164 number, then name=value pairs, e.g. "
            f"+2348076960623 {example}. A pasted CSV with a header row "
            f"(phone,{','.join(names)}) works too.",
            element=PlainTextInputElement(
                action_id=ActionId.RECIPIENTS_INPUT,
                multiline=True,
                placeholder=f"+2348076960623 {example}",
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BlockId.CHANNEL,
            label="Post updates in",
            element=ConversationSelectElement(
                action_id=ActionId.CHANNEL_SELECT,
                initial_conversation=context.channel_id,
                default_to_current_conversation=True,
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


@cache
def help_message(sandbox: bool) -> Message:
    text = "\n".join(
        [
            "*/robocall* — place automated voice calls and follow their results here.",
            "• `/robocall` — open the *Send robo call* form",
            "• `/robocall call <workflow> <numbers…> [name=value …] [voice=<accent>/<gender>]` — "
            'call at once, e.g. `/robocall call "Appointment reminder" +2348076960623 '
            "name=Ada date=Monday voice=igbo/female`",
            "• `/robocall status <request or batch id>` — what is known about a request",
            "• `/robocall voices` — the premium voices",
            "• `/robocall workflows` — the workflows and the variables they need",
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
        by_language[voice.language].append(f"`{voice.key}`")
    lines = [f"• *{language}*: {', '.join(keys)}" for language, keys in by_language.items()]
    return message(
        "Premium voices",
        [
            *sandbox_blocks(sandbox),
            md("*Premium voices* — use as `voice=<accent>/<gender>`:\n" + "\n".join(lines)),
        ],
    )


def problems_message(title: str, problems: Sequence[str], sandbox: bool) -> Message:
    """A refusal: what is wrong, one line per problem; nothing was sent."""
    shown = [f"• {outside(p, ERROR)}" for p in problems[:15]]
    if len(problems) > 15:
        shown.append(f"• …and {len(problems) - 15} more")
    text = f":warning: {title} Nothing was sent.\n" + "\n".join(shown)
    return message(f"{title} Nothing was sent.", [*sandbox_blocks(sandbox), md(text)])


def accepted_message(parts: Sequence[RequestRecord], sandbox: bool) -> Message:
    """The answer to an accepted order: one request, or the parts it was split into."""
    record = parts[0]
    where = f"<#{record.channel}>" if record.channel else "this channel"
    total = sum(p.recipient_count for p in parts)
    text = (
        f":telephone_receiver: Request `{record.id}` accepted: "
        f"{plural(total, 'recipient')} with "
        f"*{outside(record.workflow_name, NAME)}*. Progress and results follow in {where}."
    )
    if len(parts) > 1:
        text += (
            f"\nIt goes to the provider in {len(parts)} parts of at most "
            f"{max(p.recipient_count for p in parts):,} (the most one submission carries), "
            f"each with its own message: {', '.join(f'`{p.id}`' for p in parts)}."
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
    """`/robocall status`: `secrets` are removed from the error shown, if any."""
    lines = [
        f"*Request* `{record.id}` — {STATUS_TEXT[record.status]}",
        f"Workflow *{outside(record.workflow_name, NAME)}* · voice {outside(voice, VOICE)} · "
        f"{plural(record.recipient_count, 'recipient')} · requested by <@{record.requested_by}> "
        f"on {record.created_at[:16]}",
    ]
    if record.provider_ref:
        lines.append(f"{provider} batch `{outside(record.provider_ref, REF)}`")
    if record.error:
        lines.append(f":warning: {outside_error(record.error, ERROR, secrets)}")
    blocks: list[Block] = [*sandbox_blocks(sandbox), md("\n".join(lines))]
    if record.status == RequestStatus.COMPLETED or stats.total > stats.pending:
        blocks.append(md(results_summary(stats, workflow)))
        shown = "\n".join(call_line(c, workflow) for c in calls[:CALLS_PER_MESSAGE])
        if shown:
            blocks.append(md(shown))
    return message(f"Request {record.id}: {record.status}", blocks)


# ---------------------------------------------------------------- the channel message


STATUS_TEXT = {
    RequestStatus.ACCEPTED: ":hourglass_flowing_sand: Accepted, placing the calls…",
    RequestStatus.SENDING: ":hourglass_flowing_sand: Placing the calls…",
    RequestStatus.PLACED: ":telephone_receiver: Placed, waiting for results",
    RequestStatus.COMPLETED: ":white_check_mark: Completed",
    RequestStatus.FAILED: ":x: Failed: nobody was called",
    RequestStatus.UNKNOWN: ":grey_question: Outcome unknown: check before resending",
}


def request_message(
    record: RequestRecord,
    workflow: Workflow | None,
    stats: Stats,
    *,
    voice: str,
    provider: str,
    sandbox: bool,
) -> Message:
    """The parent message in the channel, rendered from the request's current state."""
    status = STATUS_TEXT[record.status]
    if record.status == RequestStatus.COMPLETED:
        status += f" — {one_line_summary(stats, workflow)}"
    elif record.status == RequestStatus.PLACED and stats.total > stats.pending:
        status += f" ({stats.total - stats.pending} of {stats.total} calls done)"
    name = outside(record.workflow_name, NAME)
    part = f" · part {record.part} of {record.parts}" if record.parts > 1 else ""
    fields = [
        f"*Robo call* · *{name}*{part}",
        f"Voice: {outside(voice, VOICE)} · {plural(record.recipient_count, 'recipient')} · "
        f"requested by <@{record.requested_by}>",
        f"Status: {status}",
    ]
    ids = f"Request `{record.id}`"
    if record.provider_ref:
        ids += f" · {provider} batch `{outside(record.provider_ref, REF)}`"
    blocks: list[Block] = [*sandbox_blocks(sandbox), md("\n".join(fields)), note(ids)]
    return message(f"Robo call {name}: {record.status}", blocks)


def failure_reply(record: RequestRecord, secrets: Iterable[str]) -> Message:
    """The thread reply saying why the request failed; `secrets` are removed from it."""
    icon = ":grey_question:" if record.status == RequestStatus.UNKNOWN else ":x:"
    error = outside_error(record.error, ERROR, secrets) if record.error else None
    text = f"{icon} {error or 'The request failed.'}"
    if record.status == RequestStatus.UNKNOWN:
        text += f"\nCheck with `/robocall status {record.id}`."
    return message(text, [md(text)])


def found_reply(record: RequestRecord, provider: str) -> Message:
    text = (
        f":mag: Checked with {provider}: these calls *were* placed, once (batch "
        f"`{outside(record.provider_ref, REF)}`). Do not send them again; results follow here."
    )
    return message(text, [md(text)])


OUTCOME_WORDS = {
    CallOutcome.ANSWERED: "answered",
    CallOutcome.VOICEMAIL: "voicemail",
    CallOutcome.BUSY: "busy",
    CallOutcome.NO_ANSWER: "not answered",
    CallOutcome.FAILED: "failed",
    CallOutcome.REJECTED: "rejected",
    CallOutcome.CANCELLED: "cancelled",
    CallOutcome.QUEUED: "queued",
    CallOutcome.IN_PROGRESS: "in progress",
}


def one_line_summary(stats: Stats, workflow: Workflow | None) -> str:
    parts = [f"{stats.answered}/{stats.total} answered"]
    parts += [
        f"{count} pressed {outside(digit, KEY)} ({_option(workflow, digit)})"
        for digit, count in stats.keys.items()
        if count
    ]
    return ", ".join(parts)


def results_summary(stats: Stats, workflow: Workflow | None) -> str:
    calls = (
        f"• Calls: {stats.total} · answered {stats.answered} · "
        f"not answered {stats.not_answered} · failed {stats.failed}"
    )
    if stats.voicemail:
        calls += f" · voicemail {stats.voicemail}"
    if stats.pending:
        calls += f" · no result yet {stats.pending}"
    lines = [
        "*Results*",
        calls,
        f"• Success rate: {number(stats.success_rate)}%",
        f"• Average duration: {number(stats.avg_duration)} s",
    ]
    keypad = workflow.keypad if workflow else {}
    if stats.keys or keypad:
        digits = sorted(set(stats.keys) | set(keypad))
        replies = ", ".join(
            f"{outside(d, KEY)} {_option(workflow, d)}: {stats.keys.get(d, 0)}" for d in digits
        )
        lines.append(f"• Replies ({stats.replied}): {replies}")
    return "\n".join(lines)


def results_messages(
    record: RequestRecord, calls: Sequence[CallRecord], workflow: Workflow | None, stats: Stats
) -> list[Message]:
    """The thread reply with the results: a summary, then every call (in chunks)."""
    listed = list(calls[:MAX_CALL_LINES])
    chunks = [listed[i : i + CALLS_PER_MESSAGE] for i in range(0, len(listed), CALLS_PER_MESSAGE)]
    blocks: list[Block] = [md(results_summary(stats, workflow))]
    if chunks:
        blocks += [DividerBlock(), md("\n".join(call_line(c, workflow) for c in chunks[0]))]
    name = outside(record.workflow_name, NAME)
    messages = [message(f"Results for {name}: {one_line_summary(stats, workflow)}", blocks)]
    for chunk in chunks[1:]:
        lines = "\n".join(call_line(c, workflow) for c in chunk)
        messages.append(message("More results", [md(lines)]))
    if (more := record.recipient_count - len(listed)) > 0:
        messages.append(
            message(
                "More results",
                [
                    md(
                        f"…and {more} more calls: all are stored; see "
                        f"`/robocall status {record.id}`."
                    )
                ],
            )
        )
    return messages


def call_line(call: CallRecord, workflow: Workflow | None) -> str:
    """`+234•••••0623 · answered · 32 s · pressed 1 (Confirm)`."""
    word = OUTCOME_WORDS[call.outcome] if call.outcome else "no result yet"
    parts = [phones.mask(call.phone_number), word]
    if call.duration is not None and call.outcome == CallOutcome.ANSWERED:
        parts.append(f"{number(call.duration)} s")
    if call.key_pressed:
        parts.append(
            f"pressed {outside(call.key_pressed, KEY)} ({_option(workflow, call.key_pressed)})"
        )
    return " · ".join(parts)


def _option(workflow: Workflow | None, digit: str) -> str:
    return outside(workflow.label(digit), LABEL) if workflow else "no label"
