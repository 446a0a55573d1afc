"""Slack listeners: `/robocall`, the Send modal, its actions. Ack first, then work.

Each handler turns Slack's payload into a core call and the core's answer (or
refusal) into Slack's reply. Validation happens before the ack where Slack
needs the answer in it (modal field errors, the slash command's reply); it is
local and fast (the workflow cache, never Intron). Placing the calls happens
after the ack, in the background.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.intron.validation import InvalidCallRequest, Problem
from bot.recipients import RecipientLine, RecipientsError, parse_call_command, parse_recipient_lines
from bot.service import CallOrder
from bot.slack import views
from bot.slack.context import SlackContext
from bot.slack.ids import DEFAULT_VOICE, ActionId, BlockId, CallbackId
from bot.slack.workflow_handlers import register_workflow_handlers, workflows_message
from bot.text import clip
from bot.voices import UnknownVoiceError, Voice, parse_voice

log = logging.getLogger(__name__)

FIELD_BLOCKS: dict[str, str] = {"workflow": BlockId.WORKFLOW, "voice": BlockId.VOICE}


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach every listener to the bolt app."""

    @app.command("/robocall")
    async def on_command(ack: AsyncAck, command: dict, client: AsyncWebClient) -> None:
        await handle_robocall_command(ctx, ack, command, client)

    @app.view(CallbackId.SEND_CALL)
    async def on_send_call(ack: AsyncAck, body: dict, view: dict) -> None:
        await handle_send_call_submission(ctx, ack, body, view)

    @app.action(ActionId.WORKFLOW_SELECT)
    async def on_workflow_select(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        await handle_workflow_select(ctx, ack, body, client)

    @app.action(ActionId.VOICE_SELECT)
    async def on_voice_select(ack: AsyncAck) -> None:
        await ack()

    register_workflow_handlers(app, ctx)

    @app.middleware
    async def once_per_event(body: dict, next: Callable[[], Awaitable[BoltResponse]]):
        """Slack resends an event it thinks we missed (X-Slack-Retry-Num); act on it once."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not ctx.service.store.first_sighting(event_id):
            return BoltResponse(status=200, body="")
        return await next()

    @app.error
    async def on_error(error: Exception, body: dict) -> None:
        log.error("unhandled error in a Slack listener (%s)", body.get("type"), exc_info=error)


# ---------------------------------------------------------------- /robocall


async def handle_robocall_command(
    ctx: SlackContext, ack: AsyncAck, command: dict, client: AsyncWebClient
) -> None:
    text = _unescape(command.get("text") or "").strip()
    word, _, rest = text.partition(" ")
    word = word.lower()
    if word == "":
        await handle_open_send_modal(ctx, ack, command, client)
    elif word == "help":
        await _reply(ack, views.help_message(ctx.sandbox))
    elif word == "voices":
        await _reply(ack, views.voices_message(ctx.sandbox))
    elif word == "workflows":
        await _reply(ack, await workflows_message(ctx, client, command["user_id"]))
    elif word == "status":
        await handle_status_command(ctx, ack, rest)
    elif word == "call":
        await handle_call_command(ctx, ack, command, rest)
    else:
        message = views.help_message(ctx.sandbox)
        await ack(
            text=f"Unknown command '{clip(word, 60)}'. " + message.text,
            blocks=[
                _notice(
                    f":warning: `/robocall {clip(word, 60)}` is not a command. Here is what is:"
                ),
                *message.blocks,
            ],
        )


async def handle_open_send_modal(
    ctx: SlackContext, ack: AsyncAck, command: dict, client: AsyncWebClient
) -> None:
    if refusal := ctx.refusal(command["user_id"], command.get("channel_id")):
        await ack(text=refusal)
        return
    await ack()
    context = views.ModalContext(user_id=command["user_id"], channel_id=command.get("channel_id"))
    modal = views.send_call_modal(ctx.workflows.cached(), context, sandbox=ctx.sandbox)
    await client.views_open(trigger_id=command["trigger_id"], view=modal)


async def handle_status_command(ctx: SlackContext, ack: AsyncAck, ref: str) -> None:
    ref = ref.strip()
    if not ref:
        await ack(
            text="Which request? Use `/robocall status <request id or batch id>`, "
            "e.g. `/robocall status rq-3f9c2a7b1d04`."
        )
        return
    record = ctx.service.lookup(ref)
    if record is None:
        await ack(
            text=f"No request or Intron batch has the id '{clip(ref, 60)}'. Request ids "
            "look like rq-3f9c2a7b1d04; the channel message shows both ids."
        )
        return
    store = ctx.service.store
    message = views.status_message(
        record,
        store.calls(record.id, limit=views.CALLS_PER_MESSAGE),
        store.workflow(record.workflow_id),
        ctx.sandbox,
    )
    await _reply(ack, message)


async def handle_call_command(ctx: SlackContext, ack: AsyncAck, command: dict, rest: str):
    """`/robocall call <workflow> <numbers…> [name=value …] [voice=accent/gender]`."""
    user, channel = command["user_id"], command.get("channel_id")
    if refusal := ctx.refusal(user, channel):
        await ack(text=refusal)
        return
    try:
        parsed = parse_call_command(rest)
        order = CallOrder(
            workflow=parsed.workflow,
            recipients=[r.to_recipient() for r in parsed.recipients],
            voice=_voice(parsed.voice),
            requested_by=user,
            channel=channel,
            source="slack:/robocall call",
            idempotency_key=f"command:{command.get('trigger_id')}",
        )
        record, created = ctx.service.accept(order)
    except RecipientsError as exc:
        problems = [str(p) for p in exc.problems]
    except UnknownVoiceError as exc:
        problems = [str(exc)]
    except InvalidCallRequest as exc:
        problems = [_problem_text(p, parsed.recipients, "recipient") for p in exc.problems]
    else:
        await _reply(ack, views.accepted_message(record, ctx.sandbox))
        _place(ctx, record.id, created)
        return
    message = views.problems_message("That call could not be placed.", problems, ctx.sandbox)
    await _reply(ack, message)


# ---------------------------------------------------------------- the Send modal


async def handle_workflow_select(
    ctx: SlackContext, ack: AsyncAck, body: dict, client: AsyncWebClient
) -> None:
    """Choosing a workflow shows its message and the variables it needs."""
    await ack()
    view = body["view"]
    chosen = body["actions"][0]["selected_option"]["value"]
    workflow = ctx.workflows.get(chosen)
    context = views.ModalContext.model_validate_json(view["private_metadata"])
    modal = views.send_call_modal(
        ctx.workflows.cached(), context, selected=workflow, sandbox=ctx.sandbox
    )
    await client.views_update(view_id=view["id"], hash=view["hash"], view=modal)


async def handle_send_call_submission(
    ctx: SlackContext, ack: AsyncAck, body: dict, view: dict
) -> None:
    """Validate every field; errors go back on the field, otherwise store, close, place."""
    context = views.ModalContext.model_validate_json(view["private_metadata"])
    user = body["user"]["id"]
    values = view["state"]["values"]
    channel = _value(values, BlockId.CHANNEL, ActionId.CHANNEL_SELECT, "selected_conversation")
    channel = channel or context.channel_id
    errors: dict[str, str] = {}
    if refusal := ctx.refusal(user, channel):
        await ack(response_action="errors", errors={BlockId.CHANNEL: refusal})
        return
    workflow_id = _selected(values, BlockId.WORKFLOW, ActionId.WORKFLOW_SELECT)
    if not workflow_id:
        errors[BlockId.WORKFLOW] = "Choose a workflow."
    voice: Voice | None = None
    try:
        voice = _voice(_selected(values, BlockId.VOICE, ActionId.VOICE_SELECT))
    except UnknownVoiceError as exc:
        errors[BlockId.VOICE] = str(exc)
    lines: list[RecipientLine] = []
    try:
        text = _value(values, BlockId.RECIPIENTS, ActionId.RECIPIENTS_INPUT, "value") or ""
        lines = parse_recipient_lines(text)
    except RecipientsError as exc:
        errors[BlockId.RECIPIENTS] = _field_error([str(p) for p in exc.problems])
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    order = CallOrder(
        workflow=workflow_id or "",
        recipients=[line.to_recipient() for line in lines],
        voice=voice,
        requested_by=user,
        channel=channel,
        source="slack:modal",
        idempotency_key=f"view:{view['id']}",
    )
    try:
        record, created = ctx.service.accept(order)
    except InvalidCallRequest as exc:
        await ack(response_action="errors", errors=_modal_errors(exc.problems, lines))
        return
    await ack()
    _place(ctx, record.id, created)


# ---------------------------------------------------------------- helpers


def _place(ctx: SlackContext, request_id: str, created: bool) -> None:
    """Place a newly accepted request after the ack; a repeat of one already taken is not."""
    if created:
        ctx.background.spawn(ctx.service.dispatch(request_id), name=f"dispatch {request_id}")


async def _reply(ack: AsyncAck, message: views.Message) -> None:
    await ack(text=message.text, blocks=message.blocks)


def _unescape(text: str) -> str:
    """Slack escapes these three in command text; nothing else."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _notice(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _voice(value: str | None) -> Voice | None:
    if not value or value == DEFAULT_VOICE:
        return None
    return parse_voice(value)


def _selected(values: dict, block: str, action: str) -> str | None:
    option = _value(values, block, action, "selected_option")
    return option["value"] if option else None


def _value(values: dict, block: str, action: str, key: str) -> Any:
    return values.get(block, {}).get(action, {}).get(key)


def _problem_text(problem: Problem, lines: Sequence[RecipientLine], label: str) -> str:
    """A core problem, re-addressed to what the user sees: a line or a recipient position."""
    if problem.recipient is None:
        return problem.message
    line = lines[problem.recipient - 1].line if problem.recipient <= len(lines) else None
    return f"{label} {line if line is not None else problem.recipient}: {problem.message}"


def _modal_errors(problems: Sequence[Problem], lines: Sequence[RecipientLine]) -> dict[str, str]:
    by_block: dict[str, list[str]] = {}
    for problem in problems:
        block = FIELD_BLOCKS.get(problem.field, BlockId.RECIPIENTS)
        by_block.setdefault(block, []).append(_problem_text(problem, lines, "line"))
    return {block: _field_error(texts) for block, texts in by_block.items()}


def _field_error(problems: Sequence[str]) -> str:
    """Several problems in one field error, kept short enough for Slack to show."""
    shown = list(problems[:5])
    if len(problems) > 5:
        shown.append(f"…and {len(problems) - 5} more")
    return clip("\n".join(shown), 1900)
