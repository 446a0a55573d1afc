"""Block Kit for workflow management: the list, the New/Edit, Delete, View and Calls
modals, and the Home tab. Built with `slack_sdk.models`, so Slack's limits are checked."""

from __future__ import annotations

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
from slack_sdk.models.views import View

from bot import phones, templates
from bot.intron.models import Page, Workflow, WorkflowCall, WorkflowRequest, WorkflowType
from bot.slack.ids import ANY_STATUS, ActionId, BlockId, CallbackId
from bot.slack.views import Message, one_line_summary, sandbox_blocks, voice_label
from bot.store import RequestRecord
from bot.text import clip

PER_PAGE = 8  # workflows per page of the list: 3 blocks each keeps well under 50
CALL_STATUSES = ("COMPLETED", "TIMEOUT", "FAILED", "QUEUED")
MESSAGE_HINT = (
    "Write [variable] where each call fills in a value, e.g. Hello [name], see you on "
    "[date]. Names use letters, digits and _. At most 4,000 characters after filling in."
)
OPTIONS_HINT = "One per line: a keypad digit 1-9, =, what it means. E.g. 1=Confirm"


class WorkflowForm(BaseModel):
    """private_metadata of the New/Edit modal; `response_url` redraws the list it came from."""

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
    status: str | None = None
    phone_number: str | None = None


def _md(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, 3000)))


def _ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((datetime.now(when.tzinfo) - when).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


# ---------------------------------------------------------------- the list


def workflow_line(workflow: Workflow, calls_back_here: bool) -> str:
    """Name, type, reply, variables, and a warning when results go elsewhere."""
    needs = ", ".join(f"`[{v}]`" for v in workflow.variables) or "no variables"
    reply = "no reply"
    if workflow.include_reply:
        options = ", ".join(f"{d} {t}" for d, t in (workflow.response_options or {}).items())
        reply = f"keypad reply ({options})" if options else "keypad reply"
    line = f"*{workflow.name}* · {workflow.workflow_type.lower()} · {reply} · needs {needs}"
    if not calls_back_here:
        line += (
            "\n:warning: Its results go to "
            f"{'nowhere' if not workflow.call_back_url else 'another URL'}, "
            "not to this app, so they will not show up in Slack."
        )
    return line


def workflow_blocks(workflow: Workflow, *, calls_back_here: bool, can_manage: bool) -> list[Block]:
    """One workflow with its buttons: Send, View, and for admins Edit and Delete."""
    buttons = [
        ButtonElement(
            text="Send", action_id=ActionId.WORKFLOW_SEND, value=workflow.id, style="primary"
        ),
        ButtonElement(text="View", action_id=ActionId.WORKFLOW_VIEW, value=workflow.id),
    ]
    if can_manage:
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
        _md(workflow_line(workflow, calls_back_here)),
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
) -> Message:
    """`/robocall workflows`: one page of workflows with their actions."""
    pages = max(1, -(-len(workflows) // PER_PAGE))
    page = min(max(page, 1), pages)
    shown = workflows[(page - 1) * PER_PAGE : page * PER_PAGE]
    blocks: list[Block] = [*sandbox_blocks(sandbox), HeaderBlock(text="Workflows")]
    if notice:
        blocks.append(_md(notice))
    if not workflows:
        blocks.append(
            _md(
                "There are no workflows yet. A workflow is the message a call "
                "speaks, with `[variables]` filled in per recipient."
            )
        )
    for workflow in shown:
        blocks += workflow_blocks(
            workflow, calls_back_here=calls_back_here[workflow.id], can_manage=can_manage
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
            text="Refresh from Intron", action_id=ActionId.WORKFLOWS_REFRESH, value=str(page)
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
                    f"from Intron {_ago(fetched_at)}"
                )
            ]
        )
    )
    return Message(text=f"Workflows (page {page} of {pages})", blocks=[b.to_dict() for b in blocks])


# ---------------------------------------------------------------- New / Edit


def message_count(message: str) -> str:
    """The live line under the message: length, variables, first bracket problem."""
    count = f"{len(message):,} / {templates.MAX_MESSAGE_CHARS:,} characters"
    names = ", ".join(f"[{v}]" for v in templates.variables(message)) or "none"
    line = f"{count} · variables: {names}"
    if problem := templates.bracket_problem(message):
        line += f" · :warning: {problem}"
    if len(message) > templates.MAX_MESSAGE_CHARS:
        line += " · :warning: too long"
    return clip(line, 3000)


def workflow_modal(
    form: WorkflowForm,
    workflow: Workflow | None = None,
    *,
    message: str | None = None,
    sandbox: bool = False,
) -> View:
    """The New workflow modal, or Edit filled in from `workflow`."""
    current = message if message is not None else (workflow.message if workflow else "")
    types = [Option(value=t.value, text=t.value.title()) for t in WorkflowType]
    chosen_type = workflow.workflow_type if workflow else WorkflowType.ROBOCALL
    reply_option = Option(value="reply", text="Include a keypad reply")
    options_text = "\n".join(
        f"{d}={t}" for d, t in ((workflow.response_options or {}) if workflow else {}).items()
    )
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        InputBlock(
            block_id=BlockId.WF_NAME,
            label="Name",
            element=PlainTextInputElement(
                action_id=ActionId.WF_NAME_INPUT,
                max_length=150,
                initial_value=workflow.name if workflow else None,
            ),
        ),
        InputBlock(
            block_id=BlockId.WF_DESCRIPTION,
            label="Description",
            optional=True,
            element=PlainTextInputElement(
                action_id=ActionId.WF_DESCRIPTION_INPUT,
                multiline=True,
                max_length=1000,
                initial_value=(workflow.description or None) if workflow else None,
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
            hint=MESSAGE_HINT,
            dispatch_action=True,
            element=PlainTextInputElement(
                action_id=ActionId.WF_MESSAGE_INPUT,
                multiline=True,
                max_length=3000,
                initial_value=current or None,
                dispatch_action_config={"trigger_actions_on": ["on_character_entered"]},
            ),
        ),
        ContextBlock(
            block_id=BlockId.WF_COUNT, elements=[MarkdownTextObject(text=message_count(current))]
        ),
        InputBlock(
            block_id=BlockId.WF_REPLY,
            label="Keypad reply",
            optional=True,
            element=CheckboxesElement(
                action_id=ActionId.WF_REPLY_TOGGLE,
                options=[reply_option],
                initial_options=[reply_option] if workflow and workflow.include_reply else None,
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
                max_length=1000,
                initial_value=options_text or None,
                placeholder="1=Confirm\n2=Cancel",
            ),
        ),
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


def done_modal(title: str, text: str, sandbox: bool = False) -> View:
    """What a modal turns into while, and after, Intron is asked to make a change."""
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_DONE,
        title=clip(title, 24),
        close="Close",
        blocks=[*sandbox_blocks(sandbox), _md(text)],
    )


# ---------------------------------------------------------------- Delete


def delete_modal(
    workflow: Workflow,
    used_by: Sequence[RequestRecord],
    sandbox: bool,
    response_url: str | None = None,
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
        blocks=[*sandbox_blocks(sandbox), _md(f"Delete *{workflow.name}* from Intron?\n\n{usage}")],
        private_metadata=WorkflowRef(
            workflow_id=workflow.id, response_url=response_url
        ).model_dump_json(),
    )


# ---------------------------------------------------------------- View


def view_modal(
    workflow: Workflow,
    *,
    calls_back_here: bool,
    recent: Page[WorkflowRequest] | None,
    ours: Sequence[RequestRecord],
    notice: str | None,
    sandbox: bool,
) -> View:
    """A workflow, its recent requests with their stats, and a way to its calls."""
    replies = ", ".join(f"{d} = {t}" for d, t in (workflow.response_options or {}).items())
    lines = [
        f"*{workflow.name}* · {workflow.workflow_type.lower()} · id `{workflow.id}`",
        workflow.description or "",
        f">{clip(workflow.message, 2500)}",
        f"Needs: {', '.join(f'`[{v}]`' for v in workflow.variables) or 'no variables'}",
        f"Keypad reply: {replies or 'none'}" if workflow.include_reply else "No keypad reply",
        "Results come back to this app."
        if calls_back_here
        else ":warning: Results go elsewhere, so they will not show up in Slack.",
    ]
    blocks: list[Block] = [*sandbox_blocks(sandbox), _md("\n".join(x for x in lines if x))]
    blocks.append(HeaderBlock(text="Recent requests"))
    if notice:
        blocks.append(_md(notice))
    if recent is not None:
        blocks.append(_md(_requests_text(recent.items) or "Intron lists no requests yet."))
    elif ours:
        ours_text = "\n".join(
            f"• `{r.id}` · {r.status} · {r.recipient_count} recipients · "
            f"{r.created_at[:16].replace('T', ' ')}"
            for r in ours[:5]
        )
        blocks.append(_md("From this app's records:\n" + ours_text))
    blocks.append(
        ActionsBlock(
            block_id="view_actions",
            elements=[
                ButtonElement(text="Calls", action_id=ActionId.WORKFLOW_CALLS, value=workflow.id),
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


def _requests_text(items: Sequence[WorkflowRequest]) -> str:
    lines = []
    for item in items:
        stats = item.stats
        summary = (
            (
                f"{stats.completed_calls}/{stats.total_calls} answered, "
                f"success {stats.success_rate or 0:.0f}%, "
                f"avg {stats.avg_duration or 0:.0f} s"
            )
            if stats
            else "no statistics"
        )
        when = item.created_at.strftime("%Y-%m-%d %H:%M") if item.created_at else ""
        lines.append(f"• batch `{item.id}` · {item.status or '?'} · {summary} · {when}")
    return "\n".join(lines)


# ---------------------------------------------------------------- Calls


def calls_modal(
    query: CallsQuery, page: Page[WorkflowCall] | None, *, notice: str | None, sandbox: bool
) -> View:
    """A workflow's calls, filterable by batch id, status and number, a page at a time."""
    statuses = [Option(value=ANY_STATUS, text="Any status")] + [
        Option(value=s, text=s.title()) for s in CALL_STATUSES
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
                    (o for o in statuses if o.value == (query.status or ANY_STATUS)), statuses[0]
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
        blocks.append(_md(notice))
    if page is None:
        if not notice:
            blocks.append(_md("_Loading calls from Intron…_"))
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


def _calls_text(calls: Sequence[WorkflowCall]) -> str:
    lines = []
    for call in calls:
        parts = [phones.mask(call.phone_number), call.status]
        if call.call_result_duration is not None:
            parts.append(f"{call.call_result_duration} s")
        if call.call_result_options_selected:
            parts.append(f"pressed {call.call_result_options_selected}")
        if call.batch_id:
            parts.append(f"batch `{call.batch_id[:8]}…`")
        lines.append(" · ".join(str(p) for p in parts))
    return "\n".join(lines)


# ---------------------------------------------------------------- Home


def home_view(
    requests: Sequence[RequestRecord],
    workflows: Sequence[Workflow],
    *,
    workflow_of: dict[str, Workflow],
    calls_back_here: dict[str, bool],
    can_manage: bool,
    sandbox: bool,
) -> View:
    """The Home tab: latest requests at a glance, the workflows, and the main actions."""
    actions = [
        ButtonElement(
            text="Send a robo call", action_id=ActionId.HOME_SEND, value="send", style="primary"
        )
    ]
    if can_manage:
        actions.append(
            ButtonElement(text="New workflow", action_id=ActionId.WORKFLOW_NEW, value="new")
        )
    actions.append(
        ButtonElement(text="Refresh workflows", action_id=ActionId.WORKFLOWS_REFRESH, value="1")
    )
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        HeaderBlock(text="Robocall"),
        ActionsBlock(block_id="home_actions", elements=actions),
        HeaderBlock(text="Latest requests"),
        _md(
            _latest_text(requests, workflow_of)
            or "No requests yet: send one above or with `/robocall` in a channel."
        ),
        HeaderBlock(text="Workflows"),
    ]
    if not workflows:
        blocks.append(_md("No workflows yet."))
    for workflow in workflows[:20]:
        blocks += workflow_blocks(
            workflow, calls_back_here=calls_back_here[workflow.id], can_manage=can_manage
        )
    if len(workflows) > 20:
        blocks.append(_md(f"…and {len(workflows) - 20} more: `/robocall workflows` lists all."))
    return View(type="home", blocks=blocks)


def _latest_text(requests: Sequence[RequestRecord], workflow_of: dict[str, Workflow]) -> str:
    lines = []
    for record in requests:
        state = record.status.value
        if record.stats is not None:
            state += f" — {one_line_summary(record, workflow_of.get(record.workflow_id))}"
        where = f" in <#{record.channel}>" if record.channel else ""
        lines.append(
            f"• `{record.id}` · *{record.workflow_name}* · {state} · "
            f"{record.recipient_count} recipients · {voice_label(record.voice)} · "
            f"<@{record.requested_by}>{where} · {record.created_at[:16].replace('T', ' ')}"
        )
    return "\n".join(lines)
