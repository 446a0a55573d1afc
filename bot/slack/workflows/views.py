"""Block Kit for workflow management: the list, the New/Edit, Delete, View and Calls
modals, and the Home tab. Built with `slack_sdk.models`, so Slack's limits are checked.

What the provider holds (names, messages, labels, kinds, ids, statuses, keys) is put
in through `bot.text.outside`. A `notice` is the caller's mrkdwn, escaped where it
was written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.blocks.block_elements import FileInputElement
from slack_sdk.models.views import View

from bot.core.models import RequestRecord
from bot.input import phones, templates
from bot.providers.base import CallOutcome, Page, ProviderCall, ProviderRequest, Workflow
from bot.slack.blocks import Message, md, number, plural, sandbox_blocks
from bot.slack.calls.views import KEY, NAME, OUTCOME_WORDS, REF, keypad_replies, quote
from bot.slack.files import megabytes
from bot.slack.ids import ANY_STATUS, ActionId, BlockId, CallbackId
from bot.text import clip, outside

PER_PAGE = 8  # workflows per page of the list: 3 blocks each keeps well under 50
LABEL = 40  # a keypad reply's meaning, in the list
KIND = 30  # a workflow's type
STATUS = 40  # a provider's word for a request
CALL_OUTCOMES = (
    CallOutcome.ANSWERED,
    CallOutcome.NO_ANSWER,
    CallOutcome.FAILED,
    CallOutcome.QUEUED,
)
MESSAGE_FIELD = 3_000  # the most a plain-text input holds (Slack's cap)
NAME_FIELD = 150  # Intron's limit for a workflow's name
DESCRIPTION_FIELD = 1_000
OPTIONS_FIELD = 1_000
MESSAGE_HINT = (
    "Write [variable] (or {{{{variable}}}}) where each call fills in a value, e.g. Hello [name], "
    "see you on [date]. Names use letters, digits and _. {limits}"
)
OPTIONS_HINT = (
    "One per line: a keypad digit 1-9, =, what pressing it means, e.g. 1=Confirm. "
    "Used when the keypad reply is ticked."
)
NAME_PLACEHOLDER = "e.g. Appointment reminder"
DESCRIPTION_PLACEHOLDER = "e.g. Reminds patients of their appointment the day before"
MESSAGE_PLACEHOLDER = (
    "e.g. Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel."
)
OPTIONS_PLACEHOLDER = "1=Confirm\n2=Cancel"


def message_cap(limit: int) -> int:
    """The most characters the message field takes: the provider's limit, or Slack's cap
    on a text input when that is lower."""
    return min(limit, MESSAGE_FIELD)


def _limits(limit: int) -> str:
    cap = message_cap(limit)
    if cap < limit:
        return (
            f"At most {cap:,} characters here, and {limit:,} once each call's values are filled in."
        )
    return f"At most {limit:,} characters, once each call's values are filled in."


class WorkflowForm(BaseModel):
    """private_metadata of the New/Edit modal; `response_url` redraws the list it came from."""

    provider: str | None = None  # None: the first provider that keeps workflows
    workflow_id: str | None = None
    response_url: str | None = None


class WorkflowRef(BaseModel):
    """private_metadata of the Delete and View modals."""

    workflow_id: str
    response_url: str | None = None


class CallsQuery(BaseModel):
    """private_metadata of the Calls modal: which calls, which page."""

    workflow_id: str
    page: int = 1
    batch_id: str | None = None
    outcome: str | None = None
    phone_number: str | None = None


def _ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((datetime.now(when.tzinfo) - when).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


# ---------------------------------------------------------------- the list


def workflow_line(workflow: Workflow, calls_back_here: bool, label: str | None = None) -> str:
    """Name, provider, type, reply, variables, "kept as code", and a warning when results
    go elsewhere."""
    needs = ", ".join(f"`[{v}]`" for v in workflow.variables) or "no variables"
    reply = "no reply"
    if workflow.keypad:
        options = ", ".join(
            f"{outside(d, KEY)} {outside(t, LABEL)}" for d, t in workflow.keypad.items()
        )
        reply = f"keypad reply ({options})"
    name, kind = outside(workflow.name, NAME), outside(workflow.kind, KIND)
    speaks = " · recorded audio" if workflow.audio_url else ""
    speaks += " · call flow" if workflow.call_flow else ""
    provider = f" · {outside(label, KIND)}" if label else ""
    line = f"*{name}*{provider} · {kind}{speaks} · {reply} · needs {needs}"
    if workflow.read_only:
        line += " · _kept as code_"
    if not calls_back_here:
        line += (
            "\n:warning: Its results go to "
            f"{'nowhere' if not workflow.callback_url else 'another URL'}, "
            "not to this app, so they will not show up in Slack."
        )
    return line


def workflow_blocks(
    workflow: Workflow, *, calls_back_here: bool, can_manage: bool, label: str | None = None
) -> list[Block]:
    """One workflow with its buttons: Send, View, and for admins Edit and Delete (not for
    a workflow kept as code)."""
    buttons = [
        ButtonElement(
            text="Send", action_id=ActionId.WORKFLOW_SEND, value=workflow.id, style="primary"
        ),
        ButtonElement(text="View", action_id=ActionId.WORKFLOW_VIEW, value=workflow.id),
    ]
    if can_manage and not workflow.read_only:
        buttons += [
            ButtonElement(text="Edit", action_id=ActionId.WORKFLOW_EDIT, value=workflow.id),
            ButtonElement(
                text="Delete", action_id=ActionId.WORKFLOW_DELETE, value=workflow.id, style="danger"
            ),
        ]
        if not calls_back_here:
            buttons.append(
                ButtonElement(
                    text="Fix callback URL",
                    action_id=ActionId.WORKFLOW_FIX_CALLBACK,
                    value=workflow.id,
                )
            )
    return [
        md(workflow_line(workflow, calls_back_here, label)),
        ActionsBlock(block_id=f"wf:{workflow.id}"[:255], elements=buttons),
    ]


def workflows_list(
    workflows: Sequence[Workflow],
    *,
    page: int,
    calls_back_here: dict[str, bool],
    can_manage: bool,
    fetched_at: datetime | None,
    sandbox: bool,
    notice: str | None = None,
    labels: dict[str, str] | None = None,
    refused: Sequence[str] = (),
) -> Message:
    """`/robocall workflows`: one page of workflows with their actions; `labels` names
    each workflow's provider (provider id → label); `refused` (WORKFLOWS_FILE's refused
    workflows) is shown to those who can manage workflows."""
    pages = max(1, -(-len(workflows) // PER_PAGE))
    page = min(max(page, 1), pages)
    shown = workflows[(page - 1) * PER_PAGE : page * PER_PAGE]
    blocks: list[Block] = [*sandbox_blocks(sandbox), HeaderBlock(text="Workflows")]
    if notice:
        blocks.append(md(notice))
    if can_manage:
        blocks += refused_blocks(refused)
    if not workflows:
        blocks.append(
            md(
                "There are no workflows yet. A workflow is the message a call "
                "speaks, with `[variables]` filled in per recipient."
            )
        )
    for workflow in shown:
        blocks += workflow_blocks(
            workflow,
            calls_back_here=calls_back_here[workflow.id],
            can_manage=can_manage,
            label=(labels or {}).get(workflow.provider),
        )
    controls: list[ButtonElement] = []
    if can_manage:
        controls.append(
            ButtonElement(
                text="New workflow", action_id=ActionId.WORKFLOW_NEW, value="new", style="primary"
            )
        )
    controls.append(
        ButtonElement(
            text="Refresh the list", action_id=ActionId.WORKFLOWS_REFRESH, value=str(page)
        )
    )
    if page > 1:
        controls.append(
            ButtonElement(text="Previous", action_id=ActionId.WORKFLOWS_PAGE, value=str(page - 1))
        )
    if page < pages:
        controls.append(
            ButtonElement(text="Next", action_id=ActionId.WORKFLOWS_PAGE, value=str(page + 1))
        )
    blocks.append(DividerBlock())
    blocks.append(ActionsBlock(block_id="workflows_controls", elements=controls))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Page {page} of {pages} · {len(workflows)} workflows · "
                    f"fetched {_ago(fetched_at)}"
                )
            ]
        )
    )
    return Message(text=f"Workflows (page {page} of {pages})", blocks=[b.to_dict() for b in blocks])


MAX_REFUSALS_SHOWN = 10


def refused_blocks(refused: Sequence[str]) -> list[Block]:
    """WORKFLOWS_FILE's refused workflows, for admins: each one's name, the field, the
    value written there and why, so the file can be fixed without reading the log.
    A refusal that is plain text (not a `Refusal` with parts) is shown as it is."""
    if not refused:
        return []
    lines = []
    for refusal in refused[:MAX_REFUSALS_SHOWN]:
        workflow, field = getattr(refusal, "workflow", None), getattr(refusal, "field", "")
        if not field and workflow is None:
            lines.append(f"• {outside(refusal, 300)}")
            continue
        value = getattr(refusal, "value", None)
        written = f" is `{outside(value, 60).replace('`', chr(39))}`" if value else ""
        who = f"*{outside(workflow, NAME)}*" if workflow else "a workflow without a name"
        why = outside(getattr(refusal, "why", refusal), 300)
        lines.append(f"• {who}: `{outside(field, 80)}`{written} — {why}")
    if len(refused) > MAX_REFUSALS_SHOWN:
        lines.append(f"…and {len(refused) - MAX_REFUSALS_SHOWN} more (the app's log has all).")
    head = (
        f":warning: *`WORKFLOWS_FILE`: {plural(len(refused), 'refusal')} at start* (only "
        "admins see this). What is named here was left out, the rest loaded; fix it in "
        "the file and restart the app:"
    )
    return [md(clip(head + "\n" + "\n".join(lines), 3000), block_id="workflows_refused")]


# ---------------------------------------------------------------- New / Edit


def message_count(message: str, cap: int) -> str:
    """The live line under the message: its length against what the field takes
    (`message_cap`), the variables, the first bracket problem."""
    count = f"{len(message):,} / {cap:,} characters"
    names = ", ".join(f"[{v}]" for v in templates.variables(message)) or "none"
    line = f"{count} · variables: {names}"
    if problem := templates.bracket_problem(message):
        line += f" · :warning: {outside(problem, 500)}"
    if len(message) > cap:
        line += " · :warning: too long"
    return clip(line, 3000)


def workflow_modal(
    form: WorkflowForm,
    workflow: Workflow | None = None,
    *,
    kinds: Sequence[str] = ("robocall",),
    limit: int,
    message: str | None = None,
    sandbox: bool = False,
) -> View:
    """The New workflow modal, or Edit filled in from `workflow`. `limit` is the
    provider's message limit; the field takes at most `message_cap(limit)`."""
    cap = message_cap(limit)
    current = message if message is not None else (workflow.message if workflow else "")
    types = [Option(value=kind, text=kind.title()) for kind in kinds]
    chosen_type = workflow.kind if workflow else kinds[0]
    reply_option = Option(value="reply", text="Include a keypad reply")
    options_text = "\n".join(f"{d}={t}" for d, t in (workflow.keypad if workflow else {}).items())
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        InputBlock(
            block_id=BlockId.WF_NAME,
            label="Name",
            element=PlainTextInputElement(
                action_id=ActionId.WF_NAME_INPUT,
                max_length=NAME_FIELD,
                initial_value=workflow.name if workflow else None,
                placeholder=NAME_PLACEHOLDER,
            ),
        ),
        InputBlock(
            block_id=BlockId.WF_DESCRIPTION,
            label="Description",
            optional=True,
            element=PlainTextInputElement(
                action_id=ActionId.WF_DESCRIPTION_INPUT,
                multiline=True,
                max_length=DESCRIPTION_FIELD,
                initial_value=(workflow.description or None) if workflow else None,
                placeholder=DESCRIPTION_PLACEHOLDER,
            ),
        ),
        InputBlock(
            block_id=BlockId.WF_TYPE,
            label="Type",
            element=RadioButtonsElement(
                action_id=ActionId.WF_TYPE_SELECT,
                options=types,
                initial_option=next((o for o in types if o.value == chosen_type), types[0]),
            ),
        ),
        InputBlock(
            block_id=BlockId.WF_MESSAGE,
            label="Message",
            hint=MESSAGE_HINT.format(limits=_limits(limit)),
            dispatch_action=True,
            element=PlainTextInputElement(
                action_id=ActionId.WF_MESSAGE_INPUT,
                multiline=True,
                max_length=cap,
                initial_value=current or None,
                placeholder=MESSAGE_PLACEHOLDER,
                dispatch_action_config={"trigger_actions_on": ["on_character_entered"]},
            ),
        ),
        ContextBlock(
            block_id=BlockId.WF_COUNT,
            elements=[MarkdownTextObject(text=message_count(current, cap))],
        ),
        InputBlock(
            block_id=BlockId.WF_REPLY,
            label="Keypad reply",
            optional=True,
            element=CheckboxesElement(
                action_id=ActionId.WF_REPLY_TOGGLE,
                options=[reply_option],
                initial_options=[reply_option] if workflow and workflow.keypad else None,
            ),
        ),
        InputBlock(
            block_id=BlockId.WF_OPTIONS,
            label="Reply options",
            optional=True,
            hint=OPTIONS_HINT,
            element=PlainTextInputElement(
                action_id=ActionId.WF_OPTIONS_INPUT,
                multiline=True,
                max_length=OPTIONS_FIELD,
                initial_value=options_text or None,
                placeholder=OPTIONS_PLACEHOLDER,
            ),
        ),
        *consent_blocks(workflow),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Results are sent back to this app: the callback URL is set for you."
                )
            ]
        ),
    ]
    title = "Edit workflow" if form.workflow_id else "New workflow"
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_EDIT,
        title=title,
        submit="Save",
        close="Cancel",
        blocks=blocks,
        private_metadata=form.model_dump_json(),
    )


# ---------------------------------------------------------------- app-side providers

DIRECT_OPTIONS_HINT = (
    "One per line: a keypad digit 0-9, =, what pressing it means, and after | what the "
    "caller then hears, e.g. 1=Confirm|Thank you, see you then."
)
BIZPHONE_OPTIONS_HINT = (
    "One per line, after the message: 1=say:Thank you · 2=transfer:+2348012345678 · "
    "3=transfer:Ext:1000 · 4=end; name what a key means first with | "
    "(1=Confirm|say:Thank you). Leave empty for a message with no keypad."
)
FLOW_HINT = (
    'For anything deeper: paste BizPhone\'s callFlow JSON ({"steps": [...]}). When given, '
    "it is used instead of the message and the lines above."
)


def provider_modal(
    choices: Sequence[tuple[str, str]], form: WorkflowForm, sandbox: bool = False
) -> View:
    """New workflow, first step: which provider (`choices`: id, label)."""
    options = [Option(value=pid, text=label) for pid, label in choices]
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_PROVIDER,
        title="New workflow",
        submit="Next",
        close="Cancel",
        blocks=[
            *sandbox_blocks(sandbox),
            InputBlock(
                block_id=BlockId.WF_PROVIDER,
                label="Provider",
                hint="The workflow's fields follow what this provider can do.",
                element=StaticSelectElement(
                    action_id=ActionId.WF_PROVIDER_SELECT,
                    options=options,
                    initial_option=options[0],
                ),
            ),
        ],
        private_metadata=form.model_dump_json(),
    )


def _text(
    block: str,
    action: str,
    label: str,
    value: str | None,
    *,
    hint: str | None = None,
    placeholder: str | None = None,
    multiline: bool = False,
    max_length: int = 150,
    optional: bool = True,
    dispatch: bool = False,
) -> InputBlock:
    """A text input; `dispatch`: Slack sends a block action as each character is typed
    (the live count under the message)."""
    return InputBlock(
        block_id=block,
        label=label,
        optional=optional,
        hint=hint,
        dispatch_action=True if dispatch else None,
        element=PlainTextInputElement(
            action_id=action,
            multiline=multiline,
            max_length=max_length,
            initial_value=value or None,
            placeholder=placeholder,
            dispatch_action_config=(
                {"trigger_actions_on": ["on_character_entered"]} if dispatch else None
            ),
        ),
    )


def _count_block(message: str, limit: int) -> ContextBlock:
    """The live line under an app-side workflow's message: its length against the
    provider's limit (what the field takes), updated as people type."""
    return ContextBlock(
        block_id=BlockId.WF_COUNT,
        elements=[MarkdownTextObject(text=message_count(message, message_cap(limit)))],
    )


def audio_upload_block(max_bytes: int) -> InputBlock:
    """The workflow modal's audio upload: one mp3 or wav file of at most `max_bytes`."""
    return InputBlock(
        block_id=BlockId.WF_AUDIO_FILE,
        label="Or upload a recorded message",
        optional=True,
        hint=f"One mp3 or wav file of at most {megabytes(max_bytes)}. The app keeps it "
        "and gives the provider an unguessable address of this app to fetch it from.",
        element=FileInputElement(
            action_id=ActionId.WF_AUDIO_FILE_INPUT, filetypes=["mp3", "wav"], max_files=1
        ),
    )


def _option_text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def app_workflow_modal(
    form: WorkflowForm,
    provider_id: str,
    label: str,
    workflow: Workflow | None = None,
    *,
    sandbox: bool = False,
    limit: int | None = None,
    message: str | None = None,
    audio_upload: int | None = None,
) -> View:
    """New/Edit for a provider whose workflows live in this app (Intron direct, BizPhone).
    `limit`: the provider's message limit, counted live under the message (`message`:
    what has been typed so far); `audio_upload`: the largest audio file one may upload
    here, in bytes, for a provider that plays recorded audio (None: no upload field)."""
    options = workflow.options if workflow else {}
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        md(f"Provider: *{outside(label, KIND)}*"),
        _text(
            BlockId.WF_NAME,
            ActionId.WF_NAME_INPUT,
            "Name",
            workflow.name if workflow else None,
            max_length=NAME_FIELD,
            placeholder=NAME_PLACEHOLDER,
            optional=False,
        ),
        _text(
            BlockId.WF_DESCRIPTION,
            ActionId.WF_DESCRIPTION_INPUT,
            "Description",
            workflow.description if workflow else None,
            multiline=True,
            max_length=DESCRIPTION_FIELD,
        ),
    ]
    if provider_id == "bizphone":
        builder = options.get("builder") or {}
        if workflow and not workflow.call_flow and not builder:  # made from message + keypad
            builder = {
                "message": workflow.message,
                "lines": "\n".join(
                    f"{d}={m}|say:You chose: {m}. Thank you, goodbye."
                    for d, m in workflow.keypad.items()
                ),
            }
        flow_text = None
        if workflow and workflow.call_flow and not builder:
            flow_text = clip(json.dumps(workflow.call_flow, indent=1), MESSAGE_FIELD)
        recording = Option(value="on", text="Record the calls")
        typed = message if message is not None else (builder.get("message") or "")
        blocks += [
            _text(
                BlockId.WF_MESSAGE,
                ActionId.WF_MESSAGE_INPUT,
                "Message",
                builder.get("message"),
                multiline=True,
                max_length=MESSAGE_FIELD,
                hint="Write {{variable}} (or [variable]) where each call fills in a value. "
                "At most 1,000 characters once the values are filled in.",
                placeholder="e.g. Dear {{name}}, {{amount}} is due. Press 1 to speak to us.",
                dispatch=limit is not None,
            ),
            *([_count_block(typed, limit)] if limit is not None else []),
            _text(
                BlockId.WF_OPTIONS,
                ActionId.WF_OPTIONS_INPUT,
                "Then, per digit",
                builder.get("lines"),
                multiline=True,
                max_length=OPTIONS_FIELD,
                hint=BIZPHONE_OPTIONS_HINT,
                placeholder="1=transfer:Ext:1000\n2=say:Thank you, goodbye.",
            ),
            _text(
                BlockId.WF_DEFAULT,
                ActionId.WF_DEFAULT_INPUT,
                "Any other key, or none",
                builder.get("default"),
                max_length=OPTIONS_FIELD,
                hint='say:… · transfer:… · end (empty: "We did not get a choice. Goodbye.")',
            ),
            _text(
                BlockId.WF_FLOW,
                ActionId.WF_FLOW_INPUT,
                "Call flow (JSON)",
                flow_text,
                multiline=True,
                max_length=MESSAGE_FIELD,
                hint=FLOW_HINT,
            ),
            _text(
                BlockId.WF_PITCH,
                ActionId.WF_PITCH_INPUT,
                "Pitch",
                _option_text(options.get("pitch")),
                max_length=2,
                hint="0 (lowest) to 9 (highest); empty: BizPhone's default, 5.",
            ),
            _text(
                BlockId.WF_RATE,
                ActionId.WF_RATE_INPUT,
                "Rate",
                _option_text(options.get("rate")),
                max_length=2,
                hint="0 (slowest) to 9 (fastest); empty: BizPhone's default, 5.",
            ),
            InputBlock(
                block_id=BlockId.WF_RECORDING,
                label="Call recording",
                optional=True,
                element=CheckboxesElement(
                    action_id=ActionId.WF_RECORDING_TOGGLE,
                    options=[recording],
                    initial_options=[recording] if options.get("recording") else None,
                ),
            ),
        ]
    else:
        responses = options.get("responses") or {}
        keypad_text = "\n".join(
            f"{d}={t}" + (f"|{responses[d]}" if responses.get(d) else "")
            for d, t in (workflow.keypad if workflow else {}).items()
        )
        typed = message if message is not None else (workflow.message if workflow else "")
        blocks += [
            _text(
                BlockId.WF_MESSAGE,
                ActionId.WF_MESSAGE_INPUT,
                "Message",
                workflow.message if workflow else None,
                multiline=True,
                max_length=MESSAGE_FIELD,
                hint="Write {{variable}} (or [variable]) where each call fills in a value. "
                "Give a message or an audio URL, not both.",
                placeholder="e.g. Hello {{name}}, your parcel comes on {{date}}.",
                dispatch=limit is not None,
            ),
            *([_count_block(typed, limit)] if limit is not None else []),
            _text(
                BlockId.WF_AUDIO,
                ActionId.WF_AUDIO_INPUT,
                "Or a recorded message (audio URL)",
                workflow.audio_url if workflow else None,
                max_length=2048,
                placeholder="https://example.com/notice.mp3",
            ),
            *([audio_upload_block(audio_upload)] if audio_upload else []),
            _text(
                BlockId.WF_VOICE,
                ActionId.WF_VOICE_INPUT,
                "Voice id",
                _option_text(options.get("voice")),
                max_length=64,
                placeholder="en-female-1",
            ),
            _text(
                BlockId.WF_CALLER,
                ActionId.WF_CALLER_INPUT,
                "Caller id",
                _option_text(options.get("caller_id")),
                max_length=32,
                placeholder="+2348012345678",
            ),
            _text(
                BlockId.WF_LANGUAGE,
                ActionId.WF_LANGUAGE_INPUT,
                "Language",
                _option_text(options.get("language")),
                max_length=12,
                placeholder="en",
            ),
            _text(
                BlockId.WF_RETRY_COUNT,
                ActionId.WF_RETRY_COUNT_INPUT,
                "Retries",
                _option_text(options.get("retry_count")),
                max_length=3,
                hint="How often Intron calls again when nobody answers: 0 to 3.",
            ),
            _text(
                BlockId.WF_RETRY_DELAY,
                ActionId.WF_RETRY_DELAY_INPUT,
                "Minutes between retries",
                _option_text(options.get("retry_delay")),
                max_length=5,
                hint="1 to 1440.",
            ),
            _text(
                BlockId.WF_OPTIONS,
                ActionId.WF_OPTIONS_INPUT,
                "Keypad options",
                keypad_text,
                multiline=True,
                max_length=OPTIONS_FIELD,
                hint=DIRECT_OPTIONS_HINT,
                placeholder="1=Confirm|Thank you, see you then\n2=Move it|We will call you back",
            ),
        ]
    blocks += consent_blocks(workflow)
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_EDIT,
        title="Edit workflow" if form.workflow_id else "New workflow",
        submit="Save",
        close="Cancel",
        blocks=blocks,
        private_metadata=form.model_dump_json(),
    )


HOURS_HINT = (
    "When calls may ring, in each callee's local time (from their number), e.g. "
    "08:00-21:00; leave empty for the app's default (CALLING_HOURS, {default} unless "
    "changed). A number that may be in "
    "several time zones is called only in the hours valid in all of them. A call outside "
    "them waits until they open."
)
STOP_OPTION = "Press 9 to stop these calls"


def consent_blocks(workflow: Workflow | None, default_hours: str = "08:00-21:00") -> list[Block]:
    """The workflow modal's calling-responsibly fields (bot/core/consent.py): its calling
    hours, and "press 9 to stop these calls" (key 9 puts the callee on the opt-out list)."""
    stop = Option(value="on", text=STOP_OPTION)
    return [
        _text(
            BlockId.WF_HOURS,
            ActionId.WF_HOURS_INPUT,
            "Calling hours",
            workflow.calling_hours if workflow else None,
            max_length=40,
            placeholder=default_hours,
            hint=HOURS_HINT.format(default=default_hours),
        ),
        InputBlock(
            block_id=BlockId.WF_STOP,
            label="Opt-out key",
            optional=True,
            hint="Key 9 then puts the callee on the opt-out list: they are not called again. "
            'Say so in the message, e.g. "Press 9 to stop these calls."',
            element=CheckboxesElement(
                action_id=ActionId.WF_STOP_TOGGLE,
                options=[stop],
                initial_options=[stop] if workflow and workflow.press_9_to_stop else None,
            ),
        ),
    ]


# ---------------------------------------------------------------- Delete


def delete_modal(
    workflow: Workflow,
    used_by: Sequence[RequestRecord],
    sandbox: bool,
    response_url: str | None = None,
    where: str = " from Intron",
) -> View:
    if used_by:
        listed = "\n".join(
            f"• `{r.id}` · {r.created_at[:16].replace('T', ' ')} · {r.status}" for r in used_by[:10]
        )
        more = f"\n…and {len(used_by) - 10} more" if len(used_by) > 10 else ""
        usage = (
            f"It was used by {len(used_by)} request{'s' if len(used_by) != 1 else ''} "
            f"from Slack:\n{listed}{more}\nThey keep their results; new calls can no "
            "longer use it."
        )
    else:
        usage = "No request from Slack has used it."
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_DELETE,
        title="Delete workflow",
        submit="Delete",
        close="Keep it",
        blocks=[
            *sandbox_blocks(sandbox),
            md(f"Delete *{outside(workflow.name, NAME)}*{where}?\n\n{usage}"),
        ],
        private_metadata=WorkflowRef(
            workflow_id=workflow.id, response_url=response_url
        ).model_dump_json(),
    )


# ---------------------------------------------------------------- View


def view_modal(
    workflow: Workflow,
    *,
    calls_back_here: bool,
    recent: Page[ProviderRequest] | None,
    ours: Sequence[RequestRecord],
    notice: str | None,
    sandbox: bool,
    listings: bool = True,
) -> View:
    """A workflow, its recent requests with their stats, and a way to its calls (when its
    provider lists them)."""
    replies = keypad_replies(workflow.keypad)
    lines = [
        f"*{outside(workflow.name, NAME)}* · {outside(workflow.kind, KIND)} · "
        f"id `{outside(workflow.id, REF)}`",
        outside(workflow.description, 500),
        quote(workflow.message, 2500),
        f"Needs: {', '.join(f'`[{v}]`' for v in workflow.variables) or 'no variables'}",
        f"Keypad reply: {replies}" if workflow.keypad else "No keypad reply",
        "Results come back to this app."
        if calls_back_here
        else ":warning: Results go elsewhere, so they will not show up in Slack.",
    ]
    blocks: list[Block] = [*sandbox_blocks(sandbox), md("\n".join(x for x in lines if x))]
    blocks.append(HeaderBlock(text="Recent requests"))
    if notice:
        blocks.append(md(notice))
    if recent is not None:
        blocks.append(md(_requests_text(recent.items) or "Intron lists no requests yet."))
    elif ours:
        ours_text = "\n".join(
            f"• `{r.id}` · {r.status} · {plural(r.recipient_count, 'recipient')} · "
            f"{r.created_at[:16].replace('T', ' ')}"
            for r in ours[:5]
        )
        blocks.append(md("From this app's records:\n" + ours_text))
    blocks.append(
        ActionsBlock(
            block_id="view_actions",
            elements=[
                *(
                    [
                        ButtonElement(
                            text="Calls", action_id=ActionId.WORKFLOW_CALLS, value=workflow.id
                        )
                    ]
                    if listings
                    else []
                ),
                ButtonElement(
                    text="Send",
                    action_id=ActionId.WORKFLOW_SEND,
                    value=workflow.id,
                    style="primary",
                ),
            ],
        )
    )
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_VIEW,
        title="Workflow",
        close="Close",
        blocks=blocks,
        private_metadata=WorkflowRef(workflow_id=workflow.id).model_dump_json(),
    )


def _requests_text(items: Sequence[ProviderRequest]) -> str:
    lines = []
    for item in items:
        summary = (
            f"{item.answered}/{item.total} answered, success {number(item.success_rate or 0)}%, "
            f"avg {number(item.avg_duration or 0)} s"
        )
        when = item.created_at.strftime("%Y-%m-%d %H:%M") if item.created_at else ""
        status = outside(item.status, STATUS) or "?"
        lines.append(f"• batch `{outside(item.ref, REF)}` · {status} · {summary} · {when}")
    return "\n".join(lines)


# ---------------------------------------------------------------- Calls


def calls_modal(
    query: CallsQuery, page: Page[ProviderCall] | None, *, notice: str | None, sandbox: bool
) -> View:
    """A workflow's calls, filterable by batch id, status and number, a page at a time."""
    statuses = [Option(value=ANY_STATUS, text="Any status")] + [
        Option(value=o.value, text=OUTCOME_WORDS[o].capitalize()) for o in CALL_OUTCOMES
    ]
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        InputBlock(
            block_id=BlockId.CALLS_BATCH,
            label="Batch id",
            optional=True,
            element=PlainTextInputElement(
                action_id=ActionId.CALLS_BATCH_INPUT, initial_value=query.batch_id
            ),
        ),
        InputBlock(
            block_id=BlockId.CALLS_STATUS,
            label="Status",
            optional=True,
            element=StaticSelectElement(
                action_id=ActionId.CALLS_STATUS_SELECT,
                options=statuses,
                initial_option=next(
                    (o for o in statuses if o.value == (query.outcome or ANY_STATUS)), statuses[0]
                ),
            ),
        ),
        InputBlock(
            block_id=BlockId.CALLS_PHONE,
            label="Phone number",
            optional=True,
            element=PlainTextInputElement(
                action_id=ActionId.CALLS_PHONE_INPUT,
                initial_value=query.phone_number,
                placeholder="+2348076960623",
            ),
        ),
    ]
    if notice:
        blocks.append(md(notice))
    if page is None:
        if not notice:
            blocks.append(md("_Loading calls from Intron…_"))
    else:
        blocks.append(
            SectionBlock(
                block_id=BlockId.CALLS_RESULTS,
                text=MarkdownTextObject(
                    text=clip(_calls_text(page.items) or "No calls match.", 3000)
                ),
            )
        )
        pager = []
        if query.page > 1:
            pager.append(
                ButtonElement(
                    text="Previous", action_id=ActionId.CALLS_PAGE, value=str(query.page - 1)
                )
            )
        if page.has_next:
            pager.append(
                ButtonElement(text="Next", action_id=ActionId.CALLS_PAGE, value=str(query.page + 1))
            )
        total = f" of {page.total}" if page.total is not None else ""
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"Page {query.page} · {len(page.items)} calls shown{total}"
                    )
                ]
            )
        )
        if pager:
            blocks.append(ActionsBlock(block_id="calls_pager", elements=pager))
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_CALLS,
        title="Calls",
        submit="Filter",
        close="Back",
        blocks=blocks,
        private_metadata=query.model_dump_json(),
    )


def _calls_text(calls: Sequence[ProviderCall]) -> str:
    lines = []
    for call in calls:
        parts = [phones.mask(call.phone), OUTCOME_WORDS[call.outcome]]
        if call.duration is not None and call.outcome == CallOutcome.ANSWERED:
            parts.append(f"{number(call.duration)} s")
        if call.key_pressed:
            parts.append(f"pressed {outside(call.key_pressed, KEY)}")
        if call.provider_ref:
            parts.append(f"batch `{outside(call.provider_ref[:8], KEY)}…`")
        lines.append(" · ".join(parts))
    return "\n".join(lines)
