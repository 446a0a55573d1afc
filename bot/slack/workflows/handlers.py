"""Slack listeners for workflow management: the list, New/Edit, Delete, View, Calls.

Every request to a provider here may draw on a small management quota, so each
is checked before the ack (refused, with the time it becomes possible, rather
than queued for minutes or sent to draw a 429), and happens afterwards as a job
(`bot/slack/workflows/jobs.py`): the modal shows "Saving…" and the job updates
it with the outcome.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.models.views import View

from bot.core.consent import check_consent_fields
from bot.core.workflow_checks import NO_CHOICE, check_app_workflow, first_message, say
from bot.core.workflows import check_draft
from bot.input import phones, templates
from bot.providers.base import RateLimitedError, Workflow, WorkflowDraft
from bot.slack.blocks import done_modal
from bot.slack.calls.views import NAME, ModalContext, send_call_modal
from bot.slack.context import SlackContext
from bot.slack.ids import ANY_STATUS, ActionId, BlockId, CallbackId
from bot.slack.interaction import Interaction, UserError, listener
from bot.slack.workflows import audio, jobs
from bot.slack.workflows import views as wv
from bot.slack.workflows.listing import workflows_message
from bot.text import outside, outside_plain

# Where a complaint about a draft's field is shown in the modal.
FIELD_BLOCKS = {
    "name": BlockId.WF_NAME,
    "description": BlockId.WF_DESCRIPTION,
    "kind": BlockId.WF_TYPE,
    "message": BlockId.WF_MESSAGE,
    "keypad": BlockId.WF_OPTIONS,
}
ADMIN_ONLY = (
    "Only workflow admins may {action} (ADMIN_USER_IDS or ADMIN_USERGROUP_ID); "
    "ask one of them. Everyone can view and send."
)
GONE = "That workflow is no longer in the list; refresh it."
KEPT_AS_CODE = (
    "*{name}* is kept as code (WORKFLOWS_FILE), so it is read-only here; "
    "change it in that file and restart the app."
)
# Where a complaint about an app-side workflow's field is shown.
APP_FIELD_BLOCKS = {
    **FIELD_BLOCKS,
    "audio_url": BlockId.WF_AUDIO,
    "audio_file": BlockId.WF_AUDIO_FILE,
    "voice": BlockId.WF_VOICE,
    "caller_id": BlockId.WF_CALLER,
    "language": BlockId.WF_LANGUAGE,
    "retry_count": BlockId.WF_RETRY_COUNT,
    "retry_delay": BlockId.WF_RETRY_DELAY,
    "default": BlockId.WF_DEFAULT,
    "call_flow": BlockId.WF_FLOW,
    "pitch": BlockId.WF_PITCH,
    "rate": BlockId.WF_RATE,
    "recording": BlockId.WF_RECORDING,
    "provider": BlockId.WF_NAME,
}


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the workflow listeners."""
    on = partial(listener, ctx)
    app.action(ActionId.WORKFLOW_NEW)(on(handle_workflow_new_action))
    app.action(ActionId.WORKFLOW_EDIT)(on(handle_workflow_edit_action))
    app.action(ActionId.WF_MESSAGE_INPUT)(on(handle_message_typed))
    app.view(CallbackId.WORKFLOW_EDIT)(on(handle_workflow_submission))
    app.view(CallbackId.WORKFLOW_PROVIDER)(on(handle_provider_chosen))
    app.action(ActionId.WORKFLOW_DELETE)(on(handle_workflow_delete_action))
    app.view(CallbackId.WORKFLOW_DELETE)(on(handle_workflow_delete_submission))
    app.action(ActionId.WORKFLOW_VIEW)(on(handle_workflow_view_action))
    app.action(ActionId.WORKFLOW_CALLS)(on(handle_workflow_calls_action))
    app.view(CallbackId.WORKFLOW_CALLS)(on(handle_calls_submission))
    app.action(ActionId.CALLS_PAGE)(on(handle_calls_page_action))
    app.action(ActionId.WORKFLOW_SEND)(on(handle_workflow_send_action))
    app.action(ActionId.HOME_SEND)(on(handle_workflow_send_action))
    app.action(ActionId.WORKFLOW_FIX_CALLBACK)(on(handle_fix_callback_action))
    app.action(ActionId.WORKFLOWS_REFRESH)(on(handle_refresh_action))
    app.action(ActionId.WORKFLOWS_PAGE)(on(handle_page_action))
    app.action(ActionId.CALLS_STATUS_SELECT)(on(_just_ack))


async def _just_ack(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()


# ---------------------------------------------------------------- the list


async def handle_workflows_command(ctx: SlackContext, slack: Interaction) -> None:
    listing = await workflows_message(ctx, slack.user)
    await slack.ack(text=listing.text, blocks=listing.blocks)


async def handle_page_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    ctx.jobs.add(jobs.show_job(slack.body, page=int(slack.value)))


async def _require_admin(ctx: SlackContext, slack: Interaction, action: str) -> None:
    if not await ctx.can_manage(slack.user):
        raise UserError(ADMIN_ONLY.format(action=action), block=BlockId.WF_NAME)


async def _refuse(ctx: SlackContext, slack: Interaction, text: str) -> None:
    """A clicked action that cannot be done: say why in a small modal."""
    await slack.open(done_modal("Not possible", text, ctx.sandbox))


# ---------------------------------------------------------------- New / Edit


def _modal(
    ctx: SlackContext,
    form: wv.WorkflowForm,
    workflow: Workflow | None = None,
    message: str | None = None,
) -> View:
    provider = ctx.provider(workflow.provider if workflow else form.provider)
    if not provider.capabilities.workflows_at_provider:
        return wv.app_workflow_modal(
            form.model_copy(update={"provider": provider.id}),
            provider.id,
            provider.capabilities.label,
            workflow,
            sandbox=ctx.sandbox,
            limit=provider.capabilities.message_limit,  # counted live as people type
            message=message,
            # Only where the provider plays recorded audio (Capabilities.audio).
            audio_upload=ctx.settings.audio_max_bytes if provider.capabilities.audio else None,
        )
    return wv.workflow_modal(
        form,
        workflow,
        kinds=provider.capabilities.workflow_kinds,
        limit=provider.capabilities.message_limit,
        message=message,
        sandbox=ctx.sandbox,
    )


async def handle_workflow_new_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    if not await ctx.can_manage(slack.user):
        await _refuse(ctx, slack, ADMIN_ONLY.format(action="create workflows"))
        return
    choices = [(p.id, p.capabilities.label) for p in ctx.service.providers]
    form = wv.WorkflowForm(provider=choices[0][0], response_url=slack.body.get("response_url"))
    if len(choices) > 1:  # which provider first: the modal's fields follow it
        await slack.open(wv.provider_modal(choices, form, ctx.sandbox))
        return
    await slack.open(_modal(ctx, form))


async def handle_provider_chosen(ctx: SlackContext, slack: Interaction) -> None:
    """New workflow, the provider chosen: the modal becomes that provider's."""
    form = slack.metadata(wv.WorkflowForm)
    if not await ctx.can_manage(slack.user):
        raise UserError(ADMIN_ONLY.format(action="create workflows"), block=BlockId.WF_PROVIDER)
    chosen = slack.state.selected(BlockId.WF_PROVIDER, ActionId.WF_PROVIDER_SELECT)
    if chosen not in ctx.service.providers:
        raise UserError("Choose one of the enabled providers.", block=BlockId.WF_PROVIDER)
    form = form.model_copy(update={"provider": chosen})
    await slack.ack(response_action="update", view=_modal(ctx, form))


async def _clicked_workflow(
    ctx: SlackContext, slack: Interaction, manage: str | None = None
) -> Workflow | None:
    """The workflow a button names, if it still exists and (when `manage` names
    the action) the user may manage it; otherwise the user is told and None is
    returned."""
    if manage is not None and not await ctx.can_manage(slack.user):
        await _refuse(ctx, slack, ADMIN_ONLY.format(action=manage))
        return None
    workflow = ctx.workflows.get(slack.value)
    if workflow is None:
        await _refuse(ctx, slack, GONE)
    return workflow


async def handle_workflow_edit_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    workflow = await _clicked_workflow(ctx, slack, manage="edit workflows")
    if workflow is None:
        return
    if workflow.read_only:
        await _refuse(ctx, slack, KEPT_AS_CODE.format(name=outside(workflow.name, NAME)))
        return
    form = wv.WorkflowForm(
        provider=workflow.provider,
        workflow_id=workflow.id,
        response_url=slack.body.get("response_url"),
    )
    await slack.open(_modal(ctx, form, workflow))


async def handle_message_typed(ctx: SlackContext, slack: Interaction) -> None:
    """Live character count and variables under the message, as the user types."""
    await slack.ack()
    form = slack.metadata(wv.WorkflowForm)
    typed = slack.state.text(BlockId.WF_MESSAGE, ActionId.WF_MESSAGE_INPUT)
    workflow = ctx.workflows.get(form.workflow_id) if form.workflow_id else None
    await slack.update_quietly(slack.view["id"], _modal(ctx, form, workflow, message=typed))


async def handle_workflow_submission(ctx: SlackContext, slack: Interaction) -> None:
    form = slack.metadata(wv.WorkflowForm)
    await _require_admin(ctx, slack, "save workflows")
    provider = ctx.provider(form.provider)
    if form.workflow_id and (before := ctx.workflows.get(form.workflow_id)) and before.read_only:
        raise UserError(
            KEPT_AS_CODE.format(name=outside_plain(before.name, NAME)), block=BlockId.WF_NAME
        )
    # A recording uploaded in the modal (only offered where the provider plays audio).
    upload = uploaded_file(slack) if provider.capabilities.audio else None
    if provider.capabilities.workflows_at_provider:
        draft, errors = read_workflow_form(slack, provider.capabilities)
    else:
        own = f"{ctx.settings.public_url.rstrip('/')}/audio/"
        draft, errors = read_app_form(slack, provider.id, upload=upload is not None, own=own)
    draft, errors = read_consent_fields(slack, draft, errors, provider.capabilities)
    if draft is None:
        await slack.ack(response_action="errors", errors=errors)
        return
    try:
        ctx.workflows.check_quota(provider, "save")
    except RateLimitedError as exc:
        raise UserError(
            f"{exc.message}. What you typed stays here.", block=BlockId.WF_NAME
        ) from None
    if upload is not None and not provider.capabilities.workflows_at_provider:
        # The worker fetches and checks the file, then saves with its address.
        text = f"Fetching the recording, then saving *{outside(draft.name, NAME)}*…"
        await slack.ack(response_action="update", view=done_modal("Saving…", text, ctx.sandbox))
        ctx.jobs.add(audio.fetch_job(slack.body, form, draft, upload))
        return
    await slack.ack(
        response_action="update",
        view=done_modal("Saving…", f"Saving *{outside(draft.name, NAME)}*…", ctx.sandbox),
    )
    ctx.jobs.add(jobs.save_job(slack.body, form, draft))


def uploaded_file(slack: Interaction) -> str | None:
    """The id of the recording uploaded in the modal's file input, if any (Slack puts
    the uploaded files, with their ids, in the view state)."""
    element = slack.state.values.get(BlockId.WF_AUDIO_FILE, {}).get(ActionId.WF_AUDIO_FILE_INPUT)
    files = (element or {}).get("files") or []
    ids = [f.get("id") for f in files if isinstance(f, dict)]
    return next((str(i) for i in ids if isinstance(i, str) and i), None)


CONSENT_BLOCKS = {
    "calling_hours": BlockId.WF_HOURS,
    "press_9_to_stop": BlockId.WF_STOP,
    "message": BlockId.WF_MESSAGE,
    "keypad": BlockId.WF_OPTIONS,
}


def read_consent_fields(
    slack: Interaction, draft: WorkflowDraft | None, errors: dict, capabilities
) -> tuple[WorkflowDraft | None, dict]:
    """The modal's calling hours and "press 9 to stop these calls" on the draft, checked
    (bot/core/consent.py); their errors are added to the form's own, by block."""
    state = slack.state
    fields = {
        "calling_hours": state.text(BlockId.WF_HOURS, ActionId.WF_HOURS_INPUT).strip() or None,
        "press_9_to_stop": bool(state.checked(BlockId.WF_STOP, ActionId.WF_STOP_TOGGLE)),
    }
    probe = (draft or WorkflowDraft(name="", message="")).model_copy(update=fields)
    errors = dict(errors)
    for name, text in check_consent_fields(probe, capabilities).items():
        errors.setdefault(CONSENT_BLOCKS[name], outside_plain(text, 1900, multiline=True))
    if errors:
        return None, errors
    return probe, {}


def read_workflow_form(
    slack: Interaction, capabilities
) -> tuple[WorkflowDraft | None, dict[str, str]]:
    """The modal's fields as a valid draft, or every error at once, keyed by block: every
    field is checked, whatever another field holds, so one answer lists them all."""
    state = slack.state
    options, option_problems = parse_reply_options(
        state.text(BlockId.WF_OPTIONS, ActionId.WF_OPTIONS_INPUT)
    )
    include_reply = bool(state.checked(BlockId.WF_REPLY, ActionId.WF_REPLY_TOGGLE))
    draft = WorkflowDraft(
        name=state.text(BlockId.WF_NAME, ActionId.WF_NAME_INPUT).strip(),
        description=state.text(BlockId.WF_DESCRIPTION, ActionId.WF_DESCRIPTION_INPUT).strip()
        or None,
        kind=state.selected(BlockId.WF_TYPE, ActionId.WF_TYPE_SELECT)
        or capabilities.workflow_kinds[0],
        message=state.text(BlockId.WF_MESSAGE, ActionId.WF_MESSAGE_INPUT).strip(),
        keypad=options if include_reply else {},
    )
    problems: dict[str, list[str]] = {
        name: [text] for name, text in check_draft(draft, capabilities).items()
    }
    keypad = problems.setdefault("keypad", [])
    if option_problems:
        keypad[:] = option_problems[:5]
        if len(option_problems) > 5:
            keypad.append(f"…and {len(option_problems) - 5} more")
    elif include_reply and not options:
        keypad.append(
            "A keypad reply is included, so add at least one option, "
            "e.g. 1=Confirm (or untick the keypad reply)."
        )
    problems = {name: texts for name, texts in problems.items() if texts}
    if problems:  # plain text, quoting what was typed
        errors = {
            FIELD_BLOCKS[name]: outside_plain("\n".join(texts), 1900, multiline=True)
            for name, texts in problems.items()
        }
        return None, errors
    return draft, {}


OPTION_LINE = re.compile(r"^\s*(\S+?)\s*[=:]\s*(.*?)\s*$")
REPLY_DIGITS = tuple("123456789")


def parse_reply_options(text: str) -> tuple[dict[str, str], list[str]]:
    """`1=Confirm` lines into {"1": "Confirm"}, with a problem per bad line."""
    options: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = OPTION_LINE.match(line)
        if match is None:
            problems.append(
                f"line {number}: '{line.strip()[:40]}' is not digit=meaning; write e.g. 1=Confirm"
            )
            continue
        digit, label = match.groups()
        if digit not in REPLY_DIGITS:
            problems.append(
                f"line {number}: '{digit[:10]}' is not a keypad digit; options use the digits 1-9"
            )
        elif not label:
            problems.append(f"line {number}: say what pressing {digit} means, e.g. {digit}=Yes")
        elif digit in options:
            problems.append(f"line {number}: {digit} is already given ({options[digit]})")
        else:
            options[digit] = label
    return dict(sorted(options.items())), problems


# ---------------------------------------------------------------- app-side providers


def read_app_form(
    slack: Interaction, provider_id: str, *, upload: bool = False, own: str | None = None
) -> tuple[WorkflowDraft | None, dict]:
    """An Intron-direct or BizPhone modal as a valid draft, or every error by block.
    `upload`: a recording was uploaded, which the worker fetches (the draft's audio URL
    is then left for it to fill in); an audio URL of this app's own (`own`, its
    `PUBLIC_URL/audio/`: an earlier upload) gives way to it, any other is refused."""
    state = slack.state
    name = state.text(BlockId.WF_NAME, ActionId.WF_NAME_INPUT).strip()
    description = state.text(BlockId.WF_DESCRIPTION, ActionId.WF_DESCRIPTION_INPUT).strip()
    message = state.text(BlockId.WF_MESSAGE, ActionId.WF_MESSAGE_INPUT).strip()
    lines = state.text(BlockId.WF_OPTIONS, ActionId.WF_OPTIONS_INPUT)
    early: dict[str, str] = {}  # problems found while reading, before the provider's check
    if provider_id == "bizphone":
        draft, built = _bizphone_draft(state, name, description, message, lines, early)
    else:
        draft, built = _direct_draft(state, name, description, message, lines, early), None
    if upload and provider_id != "bizphone":
        typed = draft.audio_url or ""
        if typed and not (own and typed.startswith(own)):
            early["audio_file"] = (
                f"Upload a file or give an audio URL ('{typed[:100]}'), not both; clear "
                "the URL to use the file."
            )
        draft = draft.model_copy(update={"audio_url": audio.PENDING_AUDIO_URL})
    problems = check_app_workflow(draft, provider_id)
    if upload and provider_id != "bizphone":
        if "audio_url" in problems:  # about the uploaded file: shown on its field
            problems["audio_file"] = problems.pop("audio_url").replace("audio URL", "audio file")
        draft = draft.model_copy(update={"audio_url": None})  # the worker's to fill in
    if built is not None and "call_flow" in problems:  # the builder's flow: on its fields
        text = problems.pop("call_flow")
        if text.startswith("callFlow.steps[0].message"):
            field = "message"
        elif text.startswith(f"callFlow.steps[0].branches[{built}]"):
            field = "default"
        else:
            field = "keypad"
        problems.setdefault(field, text)
    problems |= early
    if problems:
        return None, {
            APP_FIELD_BLOCKS.get(name, BlockId.WF_NAME): outside_plain(text, 1900, multiline=True)
            for name, text in problems.items()
        }
    return draft, {}


def _number(text: str) -> int | str | None:
    """A typed whole number as an int; anything else as typed (the check names it)."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


def _direct_draft(state, name, description, message, lines, early) -> WorkflowDraft:
    keypad: dict[str, str] = {}
    responses: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(lines.splitlines(), start=1):
        if not line.strip():
            continue
        match = OPTION_LINE.match(line)
        if match is None:
            problems.append(f"line {number}: '{line.strip()[:40]}' is not digit=meaning")
            continue
        digit, rest = match.groups()
        meaning, _, response = rest.partition("|")
        if digit not in DIRECT_DIGITS:
            problems.append(f"line {number}: '{digit[:10]}' is not one keypad digit 0-9")
        elif not meaning.strip():
            problems.append(f"line {number}: say what pressing {digit} means, e.g. {digit}=Yes")
        elif digit in keypad:
            problems.append(f"line {number}: {digit} is already given ({keypad[digit]})")
        else:
            keypad[digit] = meaning.strip()
            if response.strip():
                responses[digit] = response.strip()
    if problems:
        early["keypad"] = "\n".join(problems[:5])
    options: dict[str, Any] = {
        "voice": state.text(BlockId.WF_VOICE, ActionId.WF_VOICE_INPUT).strip() or None,
        "caller_id": state.text(BlockId.WF_CALLER, ActionId.WF_CALLER_INPUT).strip() or None,
        "language": state.text(BlockId.WF_LANGUAGE, ActionId.WF_LANGUAGE_INPUT).strip() or None,
        "retry_count": _number(state.text(BlockId.WF_RETRY_COUNT, ActionId.WF_RETRY_COUNT_INPUT)),
        "retry_delay": _number(state.text(BlockId.WF_RETRY_DELAY, ActionId.WF_RETRY_DELAY_INPUT)),
        "responses": responses or None,
    }
    return WorkflowDraft(
        name=name,
        description=description or None,
        message=message,
        keypad=dict(sorted(keypad.items())),
        audio_url=state.text(BlockId.WF_AUDIO, ActionId.WF_AUDIO_INPUT).strip() or None,
        options={k: v for k, v in options.items() if v is not None},
    )


DIRECT_DIGITS = tuple("0123456789")
ACTIONS = ("say:", "transfer:", "end")


def _step(action: str) -> tuple[dict[str, Any] | None, str, str | None]:
    """`say:…`, `transfer:…` or `end` as a branch's call flow, the digit's meaning, and
    what is wrong with it (None: nothing)."""
    verb, _, rest = action.strip().partition(":")
    verb, rest = verb.strip().lower(), rest.strip()
    if verb == "say" and rest:
        return say(rest), rest[:40], None
    if verb == "transfer" and rest:
        return {"steps": [{"name": "transfer", "destination": rest}]}, f"transfer to {rest}", None
    if verb == "end" and not rest:
        return say("Goodbye."), "end", None
    return (
        None,
        "",
        (f"'{action.strip()[:40]}' is not say:<text>, transfer:<number or Ext:NNNN> or end"),
    )


def _with_levels(flow: Any, levels: dict[str, int]) -> Any:
    """A copy of `flow` with `pitch`/`rate` on every message that sets none."""
    if isinstance(flow, list):
        return [_with_levels(item, levels) for item in flow]
    if not isinstance(flow, dict):
        return flow
    out = {key: _with_levels(value, levels) for key, value in flow.items()}
    message = out.get("message")
    if isinstance(message, dict) and "msg" in message:
        out["message"] = {**levels, **message}
    return out


def _bizphone_draft(state, name, description, message, lines, early):
    """The BizPhone draft, and (when the builder made its flow) how many digit branches
    come before the default; None when the flow was pasted."""
    pitch = _number(state.text(BlockId.WF_PITCH, ActionId.WF_PITCH_INPUT))
    rate = _number(state.text(BlockId.WF_RATE, ActionId.WF_RATE_INPUT))
    recording = bool(state.checked(BlockId.WF_RECORDING, ActionId.WF_RECORDING_TOGGLE))
    default = state.text(BlockId.WF_DEFAULT, ActionId.WF_DEFAULT_INPUT).strip()
    pasted = state.text(BlockId.WF_FLOW, ActionId.WF_FLOW_INPUT).strip()
    options: dict[str, Any] = {"recording": recording}
    options |= {k: v for k, v in (("pitch", pitch), ("rate", rate)) if v is not None}
    levels = {k: v for k, v in options.items() if k in ("pitch", "rate")}
    levels = {k: v for k, v in levels.items() if isinstance(v, int) and 0 <= v <= 9}
    keypad: dict[str, str] = {}
    flow: dict[str, Any] | None = None
    built: int | None = None
    if pasted:
        try:
            flow = json.loads(pasted)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            early["call_flow"] = f"This is not JSON: {exc.msg} ({where})"
        if isinstance(flow, dict) and isinstance(flow.get("callFlow"), dict):
            flow = flow["callFlow"]
        if flow is not None and not isinstance(flow, dict):
            early["call_flow"] = 'A call flow is an object: {"steps": [...]}'
            flow = None
    elif message:
        branches: list[dict[str, Any]] = []
        problems: list[str] = []
        for number, line in enumerate(lines.splitlines(), start=1):
            if not line.strip():
                continue
            match = OPTION_LINE.match(line)
            if match is None:
                problems.append(f"line {number}: '{line.strip()[:40]}' is not digit=action")
                continue
            digit, action = match.groups()
            named, bar, after = action.partition("|")  # `1=Confirm|say:…`: its meaning first
            if bar and after.strip().lower().startswith(ACTIONS):
                action = after
            sub, meaning, problem = _step(action)
            if bar and action is after and named.strip():
                meaning = named.strip()
            if digit not in DIRECT_DIGITS:
                problems.append(f"line {number}: '{digit[:10]}' is not one keypad digit 0-9")
            elif digit in keypad:
                problems.append(f"line {number}: digit {digit} is already given")
            elif problem or sub is None:
                problems.append(f"line {number}: {problem}")
            else:
                keypad[digit] = meaning
                branches.append({"digit": digit, "callFlow": sub})
        if problems:
            early["keypad"] = "\n".join(problems[:5])
        spoken = {"msg": templates.in_syntax(message, "braces")}
        if branches:
            otherwise, _, problem = _step(default) if default else (say(NO_CHOICE), "", None)
            if problem or otherwise is None:
                early["default"] = problem or "say:…, transfer:… or end"
                otherwise = say(NO_CHOICE)
            branches.append({"default": True, "callFlow": otherwise})
            flow = {"steps": [{"name": "gather", "message": spoken, "branches": branches}]}
        else:
            flow = {"steps": [{"name": "play", "message": spoken}]}
        built = len(branches) - 1
        options["builder"] = {"message": message, "lines": lines.strip(), "default": default}
    if flow is not None and levels:
        flow = _with_levels(flow, levels)
    draft = WorkflowDraft(
        name=name,
        description=description or None,
        message=message if not pasted else first_message(flow),
        keypad=dict(sorted(keypad.items())),
        call_flow=flow,
        options=options,
    )
    if pasted and flow is None and "call_flow" not in early:
        early["call_flow"] = "Paste a call flow, or clear this field and use the message."
    return draft, built


# ---------------------------------------------------------------- Delete


async def handle_workflow_delete_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    workflow = await _clicked_workflow(ctx, slack, manage="delete workflows")
    if workflow is None:
        return
    if workflow.read_only:
        await _refuse(ctx, slack, KEPT_AS_CODE.format(name=outside(workflow.name, NAME)))
        return
    provider = ctx.provider(workflow.provider)
    at_provider = provider.capabilities.workflows_at_provider
    modal = wv.delete_modal(
        workflow,
        ctx.workflows.requests_using(workflow.id),
        ctx.sandbox,
        response_url=slack.body.get("response_url"),
        where=f" from {provider.capabilities.label}" if at_provider else "",
    )
    await slack.open(modal)


async def handle_workflow_delete_submission(ctx: SlackContext, slack: Interaction) -> None:
    ref = slack.metadata(wv.WorkflowRef)
    if not await ctx.can_manage(slack.user):
        await slack.ack(
            response_action="update",
            view=done_modal(
                "Not deleted", ADMIN_ONLY.format(action="delete workflows"), ctx.sandbox
            ),
        )
        return
    workflow = ctx.workflows.get(ref.workflow_id)
    name = workflow.name if workflow else ref.workflow_id
    await slack.ack(
        response_action="update",
        view=done_modal("Deleting…", f"Deleting *{outside(name, NAME)}*…", ctx.sandbox),
    )
    ctx.jobs.add(jobs.delete_job(slack.body, ref, name))


# ---------------------------------------------------------------- View and Calls


async def handle_workflow_view_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    workflow = await _clicked_workflow(ctx, slack)
    if workflow is None:
        return
    listings = ctx.provider(workflow.provider).capabilities.listings
    opened = await slack.open(
        wv.view_modal(
            workflow,
            calls_back_here=ctx.workflows.calls_back_here(workflow),
            recent=None,
            ours=ctx.workflows.requests_using(workflow.id),
            notice="_Loading recent requests…_" if listings else None,
            sandbox=ctx.sandbox,
            listings=listings,
        )
    )
    if listings:  # the provider lists a workflow's requests; else this app's own suffice
        ctx.jobs.add(jobs.view_job(opened["view"]["id"], workflow.id))


async def handle_workflow_calls_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    query = wv.CallsQuery(workflow_id=slack.value)
    pushed = await slack.client.views_push(
        trigger_id=slack.trigger_id,
        view=wv.calls_modal(query, None, notice=None, sandbox=ctx.sandbox),
    )
    ctx.jobs.add(jobs.calls_job(pushed["view"]["id"], query))


async def handle_calls_submission(ctx: SlackContext, slack: Interaction) -> None:
    """The Filter button: read the filters, show page 1 of what matches."""
    state = slack.state
    previous = slack.metadata(wv.CallsQuery)
    batch = state.text(BlockId.CALLS_BATCH, ActionId.CALLS_BATCH_INPUT).strip()
    outcome = state.selected(BlockId.CALLS_STATUS, ActionId.CALLS_STATUS_SELECT) or ANY_STATUS
    phone = state.text(BlockId.CALLS_PHONE, ActionId.CALLS_PHONE_INPUT).strip()
    if phone:
        try:
            # A filter looks calls up: any number a call could have gone to is fine.
            phone = phones.to_e164(
                phone, ctx.settings.default_phone_region, phones.ALL_NUMBER_TYPES
            )
        except phones.PhoneNumberError as exc:
            raise UserError(str(exc), block=BlockId.CALLS_PHONE) from None
    query = wv.CallsQuery(
        workflow_id=previous.workflow_id,
        page=1,
        batch_id=batch or None,
        outcome=None if outcome == ANY_STATUS else outcome,
        phone_number=phone or None,
    )
    await slack.ack(
        response_action="update", view=wv.calls_modal(query, None, notice=None, sandbox=ctx.sandbox)
    )
    ctx.jobs.add(jobs.calls_job(slack.view["id"], query))


async def handle_calls_page_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    query = slack.metadata(wv.CallsQuery).model_copy(update={"page": int(slack.value)})
    ctx.jobs.add(jobs.calls_job(slack.view["id"], query))


# ---------------------------------------------------------------- Send, Fix, Refresh


async def handle_workflow_send_action(ctx: SlackContext, slack: Interaction) -> None:
    """Open the Send modal, with the workflow chosen when the click came from one."""
    await slack.ack()
    if refusal := ctx.refusal(slack.user, slack.channel):
        await _refuse(ctx, slack, refusal)
        return
    selected = ctx.workflows.get(slack.value)
    context = ModalContext(user_id=slack.user, channel_id=slack.channel)
    modal = send_call_modal(
        ctx.workflows.cached(),
        context,
        voices=ctx.voices(selected.provider if selected else None),
        selected=selected,
        sandbox=ctx.sandbox,
    )
    await slack.open(modal)


async def handle_fix_callback_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    if not await ctx.can_manage(slack.user):
        await _refuse(ctx, slack, ADMIN_ONLY.format(action="change workflows"))
        return
    ctx.jobs.add(jobs.fix_job(slack.body, slack.value))


async def handle_refresh_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    ctx.jobs.add(jobs.refresh_job(slack.body))
