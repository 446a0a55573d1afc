"""Block Kit for every modal and message, built with `slack_sdk.models` so that
Slack's limits (text lengths, option counts, block counts) are checked when a
view is turned into JSON. Pure functions: records in, Slack objects out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    OptionGroup,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.blocks.block_elements import ConversationSelectElement
from slack_sdk.models.views import View

from bot import phones
from bot.intron.models import Workflow
from bot.slack.ids import DEFAULT_VOICE, ActionId, BlockId, CallbackId
from bot.store import CallRecord, RequestRecord, RequestStatus
from bot.text import clip, escape_mrkdwn
from bot.voices import Voice, parse_voice, premium_voices

SANDBOX_NOTE = ":test_tube: *Sandbox*: no INTRON_API_KEY is set, so no real calls are placed."
MAX_OPTIONS = 100  # Slack's limit for a static select
CALLS_PER_MESSAGE = 40  # keeps a section under Slack's 3000 characters
MAX_CALL_LINES = 400  # beyond this the thread points to /robocall status


class ModalContext(BaseModel):
    """Carried in the modal's private_metadata: where the modal was opened from."""

    user_id: str
    channel_id: str | None = None


class Message(BaseModel):
    """A message to send: fallback text plus blocks (as dicts, already validated)."""

    text: str
    blocks: list[dict]


def _message(text: str, blocks: Sequence[Block]) -> Message:
    return Message(text=text, blocks=[b.to_dict() for b in blocks])


def sandbox_blocks(sandbox: bool) -> list[Block]:
    """The notice every message and modal carries while the sandbox is the provider."""
    return (
        [
            ContextBlock(
                elements=[MarkdownTextObject(text=SANDBOX_NOTE)], block_id=BlockId.SANDBOX_NOTICE
            )
        ]
        if sandbox
        else []
    )


def voice_label(voice_key: str | None) -> str:
    return parse_voice(voice_key).label if voice_key else "provider default"


# ---------------------------------------------------------------- the Send modal


def send_call_modal(
    workflows: Sequence[Workflow],
    context: ModalContext,
    *,
    selected: Workflow | None = None,
    sandbox: bool = False,
) -> View:
    """The *Send robo call* modal; showing `selected`'s message and variables if given."""
    blocks: list[Block] = sandbox_blocks(sandbox)
    if not workflows:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text="There are no workflows yet. A workflow is the message template a call "
                    "uses; create one in Intron (or with `/robocall workflows`), then try again."
                )
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
    options = [Option(value=w.id, text=clip(w.name, 75)) for w in workflows[:MAX_OPTIONS]]
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
        blocks.append(
            SectionBlock(
                block_id=BlockId.WORKFLOW_INFO,
                text=MarkdownTextObject(text=workflow_summary(selected)),
            )
        )
    blocks.append(
        InputBlock(
            block_id=BlockId.VOICE,
            label="Voice",
            optional=True,
            element=StaticSelectElement(
                action_id=ActionId.VOICE_SELECT,
                option_groups=voice_option_groups(),
                placeholder="Provider default",
            ),
        )
    )
    example = " ".join(f"{v}=…" for v in (selected.variables if selected else ["name"]))
    blocks.append(
        InputBlock(
            block_id=BlockId.RECIPIENTS,
            label="Recipients",
            hint=f"One per line: an E.164 number, then name=value pairs, e.g. "
            f"+2348076960623 {example}. A pasted CSV with a header row "
            f"(phone,{','.join(selected.variables if selected else ['name'])}) works too.",
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


def voice_option_groups() -> list[OptionGroup]:
    """The premium voices grouped by language, after a group holding the provider default."""
    by_language: dict[str, list[Voice]] = defaultdict(list)
    for voice in premium_voices():
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
    lines = [f"*{workflow.name}*", f">{clip(workflow.message, 2000)}", f"Needs: {needs}"]
    if workflow.include_reply and workflow.response_options:
        replies = ", ".join(f"{d} = {t}" for d, t in workflow.response_options.items())
        lines.append(f"Keypad replies: {replies}")
    return clip("\n".join(lines), 3000)


# ---------------------------------------------------------------- ephemeral answers


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
    return _message(
        "How to use /robocall",
        [*sandbox_blocks(sandbox), SectionBlock(text=MarkdownTextObject(text=text))],
    )


def voices_message(sandbox: bool) -> Message:
    by_language: dict[str, list[str]] = defaultdict(list)
    for voice in premium_voices():
        by_language[voice.language].append(f"`{voice.key}`")
    lines = [f"• *{language}*: {', '.join(keys)}" for language, keys in by_language.items()]
    return _message(
        "Premium voices",
        [
            *sandbox_blocks(sandbox),
            SectionBlock(
                text=MarkdownTextObject(
                    text="*Premium voices* — use as `voice=<accent>/<gender>`:\n" + "\n".join(lines)
                )
            ),
        ],
    )


def problems_message(title: str, problems: Sequence[str], sandbox: bool) -> Message:
    """A refusal: what is wrong, one line per problem; nothing was sent."""
    shown = [f"• {escape_mrkdwn(clip(p, 1000))}" for p in problems[:15]]
    if len(problems) > 15:
        shown.append(f"• …and {len(problems) - 15} more")
    text = f":warning: {title} Nothing was sent.\n" + "\n".join(shown)
    return _message(
        f"{title} Nothing was sent.",
        [*sandbox_blocks(sandbox), SectionBlock(text=MarkdownTextObject(text=clip(text, 3000)))],
    )


def accepted_message(record: RequestRecord, sandbox: bool) -> Message:
    text = (
        f":telephone_receiver: Request `{record.id}` accepted: {_count(record)} with "
        f"*{record.workflow_name}*. Progress and results follow in "
        f"{f'<#{record.channel}>' if record.channel else 'this channel'}."
    )
    return _message(
        f"Request {record.id} accepted",
        [*sandbox_blocks(sandbox), SectionBlock(text=MarkdownTextObject(text=text))],
    )


def status_message(
    record: RequestRecord, calls: Sequence[CallRecord], workflow: Workflow | None, sandbox: bool
) -> Message:
    lines = [
        f"*Request* `{record.id}` — {_status_text(record)}",
        f"Workflow *{record.workflow_name}* · voice {voice_label(record.voice)} · "
        f"{_count(record)} · requested by <@{record.requested_by}> on {record.created_at[:16]}",
    ]
    if record.batch_id:
        lines.append(f"Intron batch `{record.batch_id}`")
    if record.error:
        lines.append(f":warning: {escape_mrkdwn(record.error)}")
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
    ]
    if record.status == RequestStatus.COMPLETED:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=results_summary(record, workflow))))
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=clip(
                        "\n".join(call_line(c, workflow) for c in calls[:CALLS_PER_MESSAGE]), 3000
                    )
                )
            )
        )
    return _message(f"Request {record.id}: {record.status}", blocks)


# ---------------------------------------------------------------- the channel message


STATUS_TEXT = {
    RequestStatus.ACCEPTED: ":hourglass_flowing_sand: Accepted, placing the calls…",
    RequestStatus.SENDING: ":hourglass_flowing_sand: Placing the calls…",
    RequestStatus.PLACED: ":telephone_receiver: Placed, waiting for results",
    RequestStatus.COMPLETED: ":white_check_mark: Completed",
    RequestStatus.FAILED: ":x: Failed: nobody was called",
    RequestStatus.UNKNOWN: ":grey_question: Outcome unknown: check before resending",
}


def _status_text(record: RequestRecord) -> str:
    return STATUS_TEXT[record.status]


def _count(record: RequestRecord) -> str:
    return f"{record.recipient_count} recipient{'s' if record.recipient_count != 1 else ''}"


def request_message(record: RequestRecord, workflow: Workflow | None, sandbox: bool) -> Message:
    """The parent message in the channel, rendered from the request's current state."""
    status = _status_text(record)
    if record.status == RequestStatus.COMPLETED and record.stats:
        status += f" — {one_line_summary(record, workflow)}"
    fields = [
        f"*Robo call* · *{record.workflow_name}*",
        f"Voice: {voice_label(record.voice)} · {_count(record)} · requested by "
        f"<@{record.requested_by}>",
        f"Status: {status}",
    ]
    ids = f"Request `{record.id}`"
    if record.batch_id:
        ids += f" · Intron batch `{record.batch_id}`"
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        SectionBlock(text=MarkdownTextObject(text="\n".join(fields))),
        ContextBlock(elements=[MarkdownTextObject(text=ids)]),
    ]
    return _message(f"Robo call {record.workflow_name}: {record.status}", blocks)


def failure_reply(record: RequestRecord) -> Message:
    icon = ":grey_question:" if record.status == RequestStatus.UNKNOWN else ":x:"
    text = f"{icon} {escape_mrkdwn(record.error or 'The request failed.')}"
    if record.status == RequestStatus.UNKNOWN:
        text += f"\nCheck with `/robocall status {record.id}`."
    return _message(
        clip(text, 3000), [SectionBlock(text=MarkdownTextObject(text=clip(text, 3000)))]
    )


def found_reply(record: RequestRecord) -> Message:
    text = (
        f":mag: Checked with Intron: these calls *were* placed, once (batch "
        f"`{record.batch_id}`). Do not send them again; results follow here."
    )
    return _message(text, [SectionBlock(text=MarkdownTextObject(text=text))])


def one_line_summary(record: RequestRecord, workflow: Workflow | None) -> str:
    stats = record.stats
    if stats is None:
        return "no statistics"
    parts = [f"{stats.completed_calls}/{stats.total_calls} answered"]
    parts += [
        f"{count} pressed {digit} ({_option(workflow, digit)})"
        for digit, count in stats.reply_counts.items()
        if count
    ]
    return ", ".join(parts)


def results_summary(record: RequestRecord, workflow: Workflow | None) -> str:
    stats = record.stats
    if stats is None:
        return "*Results*: Intron sent no statistics."
    lines = [
        "*Results*",
        f"• Calls: {stats.total_calls} · answered {stats.completed_calls} · "
        f"not answered {stats.timeout_calls} · "
        f"failed {max(stats.total_calls - stats.completed_calls - stats.timeout_calls, 0)}",
        f"• Success rate: {_number(stats.success_rate)}%",
        f"• Average duration: {_number(stats.avg_duration)} s",
    ]
    counts = stats.reply_counts
    if counts or (workflow and workflow.include_reply):
        digits = sorted(set(counts) | set((workflow.response_options or {}) if workflow else {}))
        replies = ", ".join(f"{d} {_option(workflow, d)}: {counts.get(d, 0)}" for d in digits)
        lines.append(f"• Replies ({stats.replied_calls}): {replies}")
    return "\n".join(lines)


def results_messages(
    record: RequestRecord, calls: Sequence[CallRecord], workflow: Workflow | None
) -> list[Message]:
    """The thread reply with the results: a summary, then every call (in chunks)."""
    listed = list(calls[:MAX_CALL_LINES])
    chunks = [listed[i : i + CALLS_PER_MESSAGE] for i in range(0, len(listed), CALLS_PER_MESSAGE)]
    first_lines = "\n".join(call_line(c, workflow) for c in chunks[0]) if chunks else ""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=results_summary(record, workflow)))
    ]
    if first_lines:
        blocks += [DividerBlock(), SectionBlock(text=MarkdownTextObject(text=first_lines))]
    messages = [
        _message(
            f"Results for {record.workflow_name}: {one_line_summary(record, workflow)}", blocks
        )
    ]
    for chunk in chunks[1:]:
        lines = "\n".join(call_line(c, workflow) for c in chunk)
        messages.append(
            _message("More results", [SectionBlock(text=MarkdownTextObject(text=lines))])
        )
    if (more := record.recipient_count - len(listed)) > 0:
        messages.append(
            _message(
                "More results",
                [
                    SectionBlock(
                        text=MarkdownTextObject(
                            text=f"…and {more} more calls: all are "
                            f"stored; see `/robocall status {record.id}`."
                        )
                    )
                ],
            )
        )
    return messages


def call_line(call: CallRecord, workflow: Workflow | None) -> str:
    """`+234•••••0623 · COMPLETED · 32 s · pressed 1 (Confirm)`."""
    parts = [phones.mask(call.phone_number), (call.status or "no result").upper()]
    if call.duration is not None:
        parts.append(f"{_number(call.duration)} s")
    if call.key_pressed:
        parts.append(f"pressed {call.key_pressed} ({_option(workflow, call.key_pressed)})")
    return " · ".join(parts)


def _option(workflow: Workflow | None, digit: str) -> str:
    options = (workflow.response_options or {}) if workflow else {}
    return options.get(digit, "no label")


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
