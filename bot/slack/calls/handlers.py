"""Slack listeners for placing calls: `/robocall call`, `status`, `help`, `voices`, and the
*Send robo call* modal.

Validation happens before the ack, where Slack needs the answer in it (modal
field errors, the command's reply); it is local and fast (the workflow cache,
never a provider). The request is stored with the job that places it, and
acknowledged; the worker does the rest. A send to more than CONFIRM_ABOVE people
is checked the same way, then asks first (`bot/slack/calls/confirm.py`): nothing
is stored as a request until the requester confirms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import logsafety
from bot.core.escalation import Contact
from bot.core.models import RequestRecord
from bot.core.orders import InvalidOrder, Problem
from bot.core.requests import CallOrder, NotPossible
from bot.input import schedules
from bot.input.recipients import (
    RecipientLine,
    RecipientsError,
    parse_call_command,
    parse_recipient_lines,
)
from bot.slack.blocks import done_modal, md, message, sandbox_blocks
from bot.slack.calls import confirm, views
from bot.slack.context import SlackContext
from bot.slack.ids import DEFAULT_VOICE, ActionId, BlockId, CallbackId
from bot.slack.interaction import Interaction, UserError, listener
from bot.slack.profiles import Problem as ProfileProblem
from bot.slack.profiles import read_profiles
from bot.text import outside, outside_plain

FIELD_BLOCKS: dict[str, str] = {"workflow": BlockId.WORKFLOW, "voice": BlockId.VOICE}

log = logging.getLogger(__name__)

# The requester's time zone, for local times in `at=` (`09:00`, `tomorrow 09:00`): read
# with users.info only when such a time is typed, waiting at most ZONE_TIMEOUT before the
# ack, and kept in the database for ZONE_MAX_AGE. Without it (Slack slow, or the app
# lacking users:read) the user is asked for an offset instead.
ZONE_TIMEOUT = 1.0
ZONE_MAX_AGE = 12 * 3600.0
AT = "at"  # where a pending (confirm-first) order keeps its scheduled time

# `@user` recipients: the number is the `phone` of the user's Slack profile, read with
# users.info before the ack (bot/slack/profiles.py: several users at once, all within
# PROFILE_TIMEOUT) and kept in the database for PROFILE_MAX_AGE. Only a usable number is
# kept, so a user who has just added one to their profile is not refused from the cache.
PROFILE_TIMEOUT = 1.0
PROFILE_MAX_AGE = 600.0
USERS = "recipient_users"  # where a pending order keeps which recipient was which user
ADD_PHONE = "ask them to add a phone number to their Slack profile, or give the number"


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the Send modal's listeners (the command is routed by `bot/slack/commands.py`)."""
    on = partial(listener, ctx)
    app.view(CallbackId.SEND_CALL)(on(handle_send_call_submission))
    app.action(ActionId.WORKFLOW_SELECT)(on(handle_workflow_select))
    app.action(ActionId.VOICE_SELECT)(on(_just_ack))
    app.action(ActionId.CONFIRM_CALL)(on(handle_confirm_call))
    app.action(ActionId.CANCEL_CALL)(on(handle_cancel_call))
    app.view(CallbackId.CONFIRM_SEND)(on(handle_confirm_send_submission))


async def _just_ack(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()


async def _reply(slack: Interaction, message: views.Message) -> None:
    await slack.ack(text=message.text, blocks=message.blocks)


async def _replace(slack: Interaction, message: views.Message) -> None:
    """After a click's ack: the message clicked in (the ephemeral question) becomes
    `message`, through the response URL."""
    if slack.respond is not None and slack.body.get("response_url"):
        await slack.respond(text=message.text, blocks=message.blocks, replace_original=True)
    else:
        await slack.client.chat_postMessage(
            channel=slack.user, text=message.text, blocks=message.blocks
        )


# ---------------------------------------------------------------- /robocall …


async def handle_open_send_modal(ctx: SlackContext, slack: Interaction) -> None:
    if refusal := ctx.refusal(slack.user, slack.channel):
        raise UserError(refusal)
    await slack.ack()
    context = views.ModalContext(user_id=slack.user, channel_id=slack.channel)
    modal = views.send_call_modal(
        ctx.workflows.cached(), context, voices=ctx.voices(), sandbox=ctx.sandbox
    )
    await slack.client.views_open(trigger_id=slack.trigger_id, view=modal)


async def handle_help_command(ctx: SlackContext, slack: Interaction) -> None:
    await _reply(slack, views.help_message(ctx.sandbox))


async def handle_voices_command(ctx: SlackContext, slack: Interaction) -> None:
    await _reply(slack, views.voices_message(ctx.voices(), ctx.sandbox))


async def handle_status_command(ctx: SlackContext, slack: Interaction, ref: str) -> None:
    ref = ref.strip()
    if not ref:
        raise UserError(
            "Which request? Give its request id or the provider's batch id, "
            "e.g. `/robocall status rq-3f9c2a7b1d04`."
        )
    record = ctx.service.lookup(ref)
    if record is None:
        raise UserError(
            f"No request or Intron batch has the id '{outside(ref, 60)}'. Request ids "
            "look like rq-3f9c2a7b1d04; the channel message shows both ids."
        )
    requests = ctx.service.requests
    message = views.status_message(
        record,
        requests.calls(record.id, limit=views.CALLS_PER_MESSAGE),
        ctx.store.workflows.get(record.workflow_id or ""),
        requests.stats(record.id),
        voice=ctx.voice_label(record.provider, record.voice),
        provider=ctx.provider(record.provider).capabilities.label,
        sandbox=ctx.sandbox,
        secrets=logsafety.secrets_in(ctx.settings),
    )
    await _reply(slack, message)


async def handle_call_command(ctx: SlackContext, slack: Interaction, rest: str) -> None:
    """`/robocall call <workflow> <numbers…> [name=value …] [voice=accent/gender]
    [at=when]`."""
    if refusal := ctx.refusal(slack.user, slack.channel):
        raise UserError(refusal)
    lines: list[RecipientLine] = []
    try:
        parsed = parse_call_command(rest)
        (lines, user_problems), (at, at_problem) = await asyncio.gather(
            _with_profile_phones(ctx, parsed.recipients, "recipient"),
            _command_when(ctx, slack, parsed.at),
        )
        order = CallOrder(
            workflow=parsed.workflow,
            recipients=[r.to_recipient() for r in lines],
            voice=_voice(parsed.voice),
            requested_by=slack.user,
            channel=slack.channel,
            source="slack:/robocall call",
            idempotency_key=f"command:{slack.body.get('trigger_id')}",
            at=at,
            recipient_users=_recipient_users(lines),
        )
        if at_problem is not None or user_problems:  # the rest is checked too: one round
            problems = [at_problem] if at_problem is not None else []
            problems += user_problems
            try:
                ctx.service.check(order)
            except InvalidOrder as exc:  # ("no recipients" when every one was an @user refused)
                found = [p for p in exc.problems if lines or p.field != "recipients"]
                problems += [_problem_text(p, lines, "recipient") for p in found]
            title = "That call could not be placed."
            await _reply(slack, views.problems_message(title, problems, ctx.sandbox))
            return
        if len(order.recipients) > ctx.settings.confirm_above:
            workflow = ctx.service.check(order).workflow
            pending = confirm.PendingOrder.of(order, workflow, lines)
            kept = ctx.store.pending.add(
                slack.user,
                confirm.COMMAND,
                _with_users(_with_at(pending.model_dump(), at), lines),
                ttl=confirm.CONFIRM_TTL,
            )
            question = confirm.question_message(
                pending.count, workflow.name, kept.token, ctx.sandbox
            )
            await _reply(slack, question)
            return
        record, _ = ctx.service.accept(order)
    except RecipientsError as exc:
        problems = [str(p) for p in exc.problems]
    except InvalidOrder as exc:
        problems = [_problem_text(p, lines, "recipient") for p in exc.problems]
    else:
        parts = ctx.service.requests.parts(record.id)
        waits = ctx.store.consent.waits(p.id for p in parts)  # calling hours
        await _reply(slack, views.accepted_message(parts, ctx.sandbox, waits))
        return
    await _reply(
        slack, views.problems_message("That call could not be placed.", problems, ctx.sandbox)
    )


async def handle_confirm_call(ctx: SlackContext, slack: Interaction) -> None:
    """*Call 120 people*: the pending order is accepted, once, and only for the user who
    asked; a second click (or Slack resending the first) shows the same request."""
    await slack.ack()
    kept = ctx.store.pending.get(slack.value)
    if kept is None or kept.kind != confirm.COMMAND or kept.expired:
        if kept is not None and kept.expired:
            ctx.store.pending.delete(kept.token)
        await _replace(slack, confirm.said(confirm.EXPIRED, ctx.sandbox))
        return
    if kept.user_id != slack.user:
        raise UserError(confirm.NOT_YOURS.format(user=kept.user_id))
    pending = confirm.PendingOrder.model_validate(kept.payload)
    request_id = kept.request_id
    if request_id is None:  # the first click
        if refusal := ctx.refusal(slack.user, pending.channel):
            raise UserError(refusal)
        try:
            # The token is the idempotency key: two clicks racing are still one request.
            order = pending.order(slack.user, f"confirm:{kept.token}")
            record, _ = ctx.service.accept(_pending_at(order, kept.payload))
        except schedules.ScheduleError as exc:  # its time passed while it waited
            title = "That call could not be placed."
            await _replace(slack, views.problems_message(title, [str(exc)], ctx.sandbox))
            return
        except InvalidOrder as exc:  # the workflow changed since the question was asked
            lines = pending.recipient_lines()
            problems = [_problem_text(p, lines, "recipient") for p in exc.problems]
            title = "That call could not be placed."
            await _replace(slack, views.problems_message(title, problems, ctx.sandbox))
            return
        ctx.store.pending.confirmed(kept.token, record.id)
        request_id = record.id
    parts = ctx.service.requests.parts(request_id)
    waits = ctx.store.consent.waits(p.id for p in parts)  # calling hours
    await _replace(slack, views.accepted_message(parts, ctx.sandbox, waits))


async def handle_cancel_call(ctx: SlackContext, slack: Interaction) -> None:
    """*Cancel*: the pending order is dropped; nothing was stored as a request."""
    await slack.ack()
    kept = ctx.store.pending.get(slack.value)
    if kept is None or kept.kind != confirm.COMMAND:
        text = "Nothing to cancel: this question expired or was answered. Nothing was sent."
        await _replace(slack, confirm.said(text, ctx.sandbox))
        return
    if kept.user_id != slack.user:
        raise UserError(confirm.NOT_YOURS.format(user=kept.user_id))
    if kept.request_id is not None:
        raise UserError(
            f"These calls were already confirmed: request `{kept.request_id}`. "
            f"Follow it with `/robocall status {kept.request_id}`."
        )
    ctx.store.pending.delete(kept.token)
    pending = confirm.PendingOrder.model_validate(kept.payload)
    await _replace(
        slack, confirm.cancelled_message(pending.count, pending.workflow_name, ctx.sandbox)
    )


# ---------------------------------------------------------------- the Send modal


async def handle_workflow_select(ctx: SlackContext, slack: Interaction) -> None:
    """Choosing a workflow shows its message and the variables it needs."""
    await slack.ack()
    workflow = ctx.workflows.get(slack.value)
    modal = views.send_call_modal(
        ctx.workflows.cached(),
        slack.metadata(views.ModalContext),
        voices=ctx.voices(workflow.provider if workflow else None),
        selected=workflow,
        sandbox=ctx.sandbox,
    )
    await slack.client.views_update(view_id=slack.view["id"], hash=slack.view["hash"], view=modal)


async def handle_send_call_submission(ctx: SlackContext, slack: Interaction) -> None:
    """Validate every field; errors go back on the field, otherwise store and close."""
    context = slack.metadata(views.ModalContext)
    state = slack.state
    channel = state.conversation(BlockId.CHANNEL, ActionId.CHANNEL_SELECT) or context.channel_id
    if refusal := ctx.refusal(slack.user, channel):
        raise UserError(refusal, block=BlockId.CHANNEL)
    errors: dict[str, str] = {}
    workflow_id = state.selected(BlockId.WORKFLOW, ActionId.WORKFLOW_SELECT)
    if not workflow_id:
        errors[BlockId.WORKFLOW] = "Choose a workflow."
    lines: list[RecipientLine] = []
    try:
        lines = parse_recipient_lines(state.text(BlockId.RECIPIENTS, ActionId.RECIPIENTS_INPUT))
    except RecipientsError as exc:
        errors[BlockId.RECIPIENTS] = _field_error([str(p) for p in exc.problems])
    lines, user_problems = await _with_profile_phones(ctx, lines, "line")
    if user_problems:
        errors[BlockId.RECIPIENTS] = _field_error(user_problems)
    at = None
    picked = state._element(BlockId.WHEN, ActionId.WHEN_SELECT).get("selected_date_time")
    if picked is not None:
        try:
            at = schedules.check(datetime.fromtimestamp(float(picked), UTC), value="When")
        except (TypeError, ValueError, OverflowError) as exc:
            errors[BlockId.WHEN] = (
                str(exc) if isinstance(exc, schedules.ScheduleError) else "Pick a date and time."
            )
    if errors:
        await slack.ack(response_action="errors", errors=errors)
        return
    order = CallOrder(
        workflow=workflow_id or "",
        recipients=[line.to_recipient() for line in lines],
        voice=_voice(state.selected(BlockId.VOICE, ActionId.VOICE_SELECT)),
        requested_by=slack.user,
        channel=channel,
        source="slack:modal",
        idempotency_key=f"view:{slack.view['id']}",
        at=at,
        recipient_users=_recipient_users(lines),
    )
    if len(lines) <= ctx.settings.confirm_above:
        try:
            ctx.service.accept(order)
        except InvalidOrder as exc:
            await slack.ack(response_action="errors", errors=_modal_errors(exc.problems, lines))
            return
        await slack.ack()
        return
    try:  # a large send: checked now, then asked about
        workflow = ctx.service.check(order).workflow
    except InvalidOrder as exc:
        await slack.ack(response_action="errors", errors=_modal_errors(exc.problems, lines))
        return
    pending = confirm.PendingOrder.of(order, workflow, lines, view_id=slack.view["id"])
    payload = _with_users(_with_at(pending.model_dump(), at), lines)
    kept = ctx.store.pending.add(slack.user, confirm.MODAL, payload, ttl=confirm.CONFIRM_TTL)
    await slack.ack(
        response_action="push",
        view=confirm.confirm_view(pending.count, workflow.name, kept.token, ctx.sandbox),
    )


async def handle_confirm_send_submission(ctx: SlackContext, slack: Interaction) -> None:
    """*Place 120 calls* on the pushed confirmation: accept the Send modal's order, once
    (its view id is the idempotency key), and close every modal."""
    ref = slack.metadata(confirm.ConfirmRef)
    kept = ctx.store.pending.get(ref.token)

    async def not_sent(text: str) -> None:
        await slack.ack(response_action="update", view=done_modal("Not sent", text, ctx.sandbox))

    if kept is None or kept.kind != confirm.MODAL or kept.expired:
        await not_sent(confirm.EXPIRED_MODAL)
        return
    if kept.user_id != slack.user:
        await not_sent(confirm.NOT_YOURS.format(user=kept.user_id))
        return
    pending = confirm.PendingOrder.model_validate(kept.payload)
    if kept.request_id is None:
        if refusal := ctx.refusal(slack.user, pending.channel):
            await not_sent(refusal)
            return
        try:
            order = pending.order(slack.user, f"view:{pending.view_id}")
            record, _ = ctx.service.accept(_pending_at(order, kept.payload))
        except schedules.ScheduleError as exc:  # its time passed while it waited
            await not_sent(str(exc))
            return
        except InvalidOrder as exc:  # the workflow changed since the question was asked
            lines = pending.recipient_lines()
            problems = [_problem_text(p, lines, "line") for p in exc.problems]
            await not_sent(confirm.problems_text("These calls could not be placed.", problems))
            return
        ctx.store.pending.confirmed(kept.token, record.id)
    await slack.ack(response_action="clear")


# ---------------------------------------------------------------- scheduling


async def handle_cancel_command(ctx: SlackContext, slack: Interaction, ref: str) -> None:
    """`/robocall cancel rq-…`: a request not dialled yet (every part of it) is cancelled."""
    ref = ref.strip()
    if not ref:
        raise UserError(
            "Which request? Give its request id, e.g. `/robocall cancel rq-3f9c2a7b1d04` "
            "(its channel message shows it)."
        )
    record = ctx.service.lookup(ref)
    if record is None:
        raise UserError(
            f"Request '{outside(ref, 60)}' was not cancelled: there is no such request here. "
            "Request ids look like rq-3f9c2a7b1d04."
        )
    await _reply(slack, cancel_answer(ctx, slack.user, record))


def cancel_answer(ctx: SlackContext, user: str, record: RequestRecord) -> views.Message:
    """Cancel `record` for `user` (who must be allowed to place calls where it goes), and
    the words to tell them: what was cancelled, or why not (nothing changed)."""
    shown = f"`{outside(record.id, views.REF)}`"
    refused = f":warning: Request {shown} was not cancelled"
    if refusal := ctx.refusal(user, record.channel):
        text = f"{refused}. {refusal}"
    else:
        try:
            cancelled = ctx.service.cancel(record.id, user)
        except NotPossible as exc:
            text = f"{refused}: {exc.reason}."
        else:
            count = sum(p.recipient_count for p in cancelled)
            split = f" (all {len(cancelled)} parts)" if len(cancelled) > 1 else ""
            text = (
                f":no_entry_sign: Request {shown}{split} is cancelled: nobody will be called "
                f"({count:,} recipient{'' if count == 1 else 's'})."
            )
    return message(text, [*sandbox_blocks(ctx.sandbox), md(text)])


async def _command_when(
    ctx: SlackContext, slack: Interaction, typed: str | None
) -> tuple[datetime | None, str | None]:
    """`at=` read: the time, or why it cannot be used (naming it)."""
    if typed is None:
        return None, None
    tz = await _user_zone(ctx, slack.user) if schedules.is_local(typed) else None
    try:
        return schedules.parse(typed, tz), None
    except schedules.ScheduleError as exc:
        return None, str(exc)


async def _user_zone(ctx: SlackContext, user: str) -> str | None:
    """The user's IANA time zone: kept, else users.info within ZONE_TIMEOUT, else None."""
    store = ctx.slack_store
    known, tz = store.user_zone(user, ZONE_MAX_AGE)
    if known:
        return tz
    try:
        async with asyncio.timeout(ZONE_TIMEOUT):
            answer = await ctx.client.users_info(user=user)
    except Exception as exc:  # slow, refused (no users:read), down: ask for an offset
        log.info("no time zone for %s from users.info (%s)", user, type(exc).__name__)
        return None
    tz = (answer.get("user") or {}).get("tz") or None
    store.keep_user_zone(user, tz)
    return tz


# ---------------------------------------------------------------- @user recipients


def _recipient_users(lines: Sequence[RecipientLine]) -> dict[int, str]:
    """Which recipients (1-based, in order) were given as a Slack user."""
    return {n: line.user for n, line in enumerate(lines, start=1) if line.user}


async def _with_profile_phones(
    ctx: SlackContext, lines: list[RecipientLine], label: str
) -> tuple[list[RecipientLine], list[str]]:
    """`lines` with each `@user` recipient's number read from their Slack profile, and
    why some could not be (naming the user and what to do); the lines returned are
    the usable ones, so the core's problems can still be addressed to what was typed."""
    users = {line.user for line in lines if line.user}
    if not users:
        return lines, []
    profiles = await read_profiles(
        ctx, sorted(users), within=PROFILE_TIMEOUT, max_age=PROFILE_MAX_AGE
    )
    kept: list[RecipientLine] = []
    problems: list[str] = []
    for line in lines:
        if not line.user:
            kept.append(line)
            continue
        where, who = f"{label} {line.line}", f"<@{line.user}>"
        profile = profiles[line.user]
        if isinstance(profile, Contact) and profile.phone:
            kept.append(line.with_phone(profile.phone))
        elif isinstance(profile, ProfileProblem) and profile.kind == "none":
            problems.append(
                f"{where}: {who} has no phone number in their Slack profile; {ADD_PHONE}"
            )
        elif isinstance(profile, ProfileProblem) and profile.kind == "invalid":
            problems.append(
                f"{where}: the phone number in {who}'s Slack profile is not a valid number; "
                f"{ADD_PHONE} (with its country code, e.g. +2348076960623)"
            )
        else:
            problems.append(
                f"{where}: could not read {who}'s profile from Slack just now; "
                "try again or give the number"
            )
    return kept, problems


def _with_at(payload: dict[str, Any], at: datetime | None) -> dict[str, Any]:
    return {**payload, AT: at.isoformat()} if at else payload


def _with_users(payload: dict[str, Any], lines: Sequence[RecipientLine]) -> dict[str, Any]:
    users = {str(n): user for n, user in _recipient_users(lines).items()}
    return {**payload, USERS: users} if users else payload


def _pending_at(order: CallOrder, payload: dict[str, Any]) -> CallOrder:
    """A confirmed order with the time it was scheduled for (checked again: it may have
    passed while the question waited) and which recipients were Slack users."""
    if payload.get(USERS):
        users = {int(n): user for n, user in payload[USERS].items()}
        order = dataclasses.replace(order, recipient_users=users)
    if not payload.get(AT):
        return order
    at = schedules.check(datetime.fromisoformat(payload[AT]), value=f"at={payload[AT]}")
    return dataclasses.replace(order, at=at)


# ---------------------------------------------------------------- helpers


def _voice(value: str | None) -> str | None:
    return None if not value or value == DEFAULT_VOICE else value


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
    """Several problems in one field error (plain text, quoting what was typed), kept
    short enough for Slack to show."""
    shown = list(problems[:5])
    if len(problems) > 5:
        shown.append(f"…and {len(problems) - 5} more")
    return outside_plain("\n".join(shown), 1900, multiline=True)
