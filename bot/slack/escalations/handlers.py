"""Slack listeners for escalation policies: `/robocall escalations` (the list with *New
policy*, *Edit*, *Delete*, *Test*), the policy modal, and the *Escalate by phone*
message shortcut; and the loading of ESCALATION_POLICIES_FILE (the worker, at start).

Every policy is checked before the ack (`bot/core/policy_checks.py`): the modal shows
each problem on its field, naming the step and the value, and nothing is saved. Users'
phones are read from their Slack profiles with the cached lookup of `@user`
recipients (`bot/slack/profiles.py`), channels with conversations.info, each within a
second. Whatever is said or redrawn after an ack is a job the worker runs. Only admins
(ADMIN_USER_IDS / ADMIN_USERGROUP_ID; none set: everyone) may create, edit or delete;
policies kept as code are read-only here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.core.escalation import Contact
from bot.core.jobs import Job, Kind, NewJob
from bot.core.policies import Policy
from bot.core.policy_checks import Issue, PolicyChecker, PolicyDraft, StepDraft
from bot.input.phones import PhoneNumberError, to_e164
from bot.input.policies_file import file_refusals, load_policies_file
from bot.slack.blocks import Message, done_modal
from bot.slack.calls.handlers import PROFILE_MAX_AGE, PROFILE_TIMEOUT
from bot.slack.context import SlackContext
from bot.slack.escalations import run_views as rv
from bot.slack.escalations import views as ev
from bot.slack.escalations.running import LANE, AnswerJobs, tell
from bot.slack.home.jobs import refresh_job as home_refresh_job
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.interaction import Interaction, UserError, ViewState, listener
from bot.slack.profiles import read_profiles
from bot.text import outside, outside_plain

log = logging.getLogger(__name__)

CHANNEL_TIMEOUT = 1.0  # conversations.info, before the ack
ADMIN_ONLY = (
    "Only admins may {action} (ADMIN_USER_IDS or ADMIN_USERGROUP_ID); ask one of them. "
    "Everyone can list and test policies."
)
GONE = "That escalation policy no longer exists; `/robocall escalations` shows the list."
KEPT_AS_CODE = (
    "*{name}* is kept as code (ESCALATION_POLICIES_FILE), so it is read-only here; change "
    "it in that file and restart the app."
)
NOT_RUNNING = (
    "Escalations are not running in this app (no escalation service), so nothing was "
    "started; an admin should report it."
)
FIELD_BLOCKS = {
    "name": BlockId.EP_NAME,
    "channel": BlockId.EP_CHANNEL,
    "workflow": BlockId.EP_WORKFLOW,
    "voice": BlockId.EP_VOICE,
    "steps": BlockId.EP_STEPS,
    "repeat": BlockId.EP_REPEAT,
    "fallback_workflow": BlockId.EP_FALLBACK,
    "urgent": BlockId.EP_URGENT,
}
MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the policy listeners (the command is routed by `bot/slack/commands.py`)."""
    on = partial(listener, ctx)
    app.action(ActionId.POLICY_NEW)(on(handle_policy_new_action))
    app.action(ActionId.POLICY_EDIT)(on(handle_policy_edit_action))
    app.action(ActionId.POLICY_DELETE)(on(handle_policy_delete_action))
    app.action(ActionId.POLICY_TEST)(on(handle_policy_test_action))
    app.view(CallbackId.POLICY_EDIT)(on(handle_policy_submission))
    app.view(CallbackId.POLICY_DELETE)(on(handle_policy_delete_submission))
    app.shortcut(CallbackId.ESCALATE_MESSAGE)(on(handle_escalate_message_shortcut))
    app.view(CallbackId.ESCALATE_MESSAGE_SUBMIT)(on(handle_escalate_message_submission))


# ---------------------------------------------------------------- checking


def checker(ctx: SlackContext) -> PolicyChecker:
    """The policy checks over this app's workflows, policies, numbers rules and opt-outs."""
    return PolicyChecker(
        ctx.store.policies,
        ctx.workflows.cached,
        ctx.service.providers,
        default_region=ctx.settings.default_phone_region,
        allowed_number_types=ctx.settings.allowed_number_types,
        opted_out=ctx.service.consent.is_opted_out,  # calling responsibly (issue 14)
    )


def opted_out_steps(ctx: SlackContext, policy: Policy) -> list[str]:
    """The policy's steps whose number is on the opt-out list (a user's from the cached
    profile number, when there is one): flagged in the list, not refused."""
    flagged = []
    for number, step in enumerate(policy.steps, start=1):
        phone: str | None = step.call
        if step.is_user:
            phone = ctx.slack_store.user_phone(step.call, PROFILE_MAX_AGE)
            try:
                phone = to_e164(phone, ctx.settings.default_phone_region) if phone else None
            except PhoneNumberError:
                phone = None
        if phone and ctx.service.consent.is_opted_out(phone):
            flagged.append(f"step {number}: {rv.who(step.call)} is on the opt-out list")
    return flagged


async def profile_phones(ctx: SlackContext, users: Sequence[str]) -> dict[str, Any]:
    """Each user's profile phone for the checker: the number ('' when none, the raw
    value when it is not a valid number, an exception when Slack could not say), with
    the `@user` recipients' lookup (bot/slack/profiles.py: kept for a while, within a
    second)."""
    found = await read_profiles(ctx, users, within=PROFILE_TIMEOUT, max_age=PROFILE_MAX_AGE)
    phones: dict[str, Any] = {}
    for user, profile in found.items():
        if isinstance(profile, Contact):
            phones[user] = profile.phone or ""
        elif profile.kind == "unreadable":
            phones[user] = profile.error or TimeoutError()
        else:
            phones[user] = profile.raw  # '' for none; the checker says what is wrong
    return phones


async def channel_problem(ctx: SlackContext, channel: str) -> str | None:
    """Why the app cannot report in this channel (conversations.info), or None."""
    try:
        async with asyncio.timeout(CHANNEL_TIMEOUT):
            answer = await ctx.client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in ("channel_not_found", "not_in_channel"):
            return (
                f"channel {channel} is unknown to the app: it does not exist, or it is private "
                "and the app is not in it (invite it with /invite), or choose another channel"
            )
        if error == "missing_scope":  # the app may not read channels: Slack's own
            # select offered it, so it exists; whether the app may post there is unknown
            log.warning("conversations.info needs channels:read and groups:read (missing_scope)")
            return None
        return f"could not check channel {channel} with Slack just now ({error}); try again"
    except TimeoutError:
        return f"could not check channel {channel} with Slack just now; try again"
    found = answer.get("channel") or {}
    if found.get("is_archived"):
        return f"channel {channel} is archived; choose another channel"
    return None


async def file_channel_problem(ctx: SlackContext, channel: str) -> str | None:
    """`channel_problem` for the file: only what Slack says for certain (no such channel,
    the app not in a private one, archived) refuses the policy; Slack slow or unsure at
    start is logged, and the policy loads."""
    problem = await channel_problem(ctx, channel)
    if problem is not None and problem.startswith("could not check"):
        log.warning("ESCALATION_POLICIES_FILE: %s; loaded without that check", problem)
        return None
    return problem


async def load_file_at_start(ctx: SlackContext, *, retry: bool = True) -> list[str]:
    """ESCALATION_POLICIES_FILE, loaded by the worker as it starts (the `policies.load`
    job, queued by bot/app.py's make_worker; the web process does not load it): each
    policy checked as one saved in Slack is (a channel Slack cannot answer for at start
    is only logged); refusals are logged and kept for the Home tab.
    Never raises: the app starts with the good ones. On a first start the provider's
    workflow list may not be fetched yet when the load begins, so a refusal then loads
    the file again once it is (`RELOAD`)."""
    path = ctx.settings.escalation_policies_file
    # Whether the lists were fetched when the load began: one fetched while it reads the
    # profiles does not make its refusals final.
    unfetched = _workflows_unfetched(ctx)
    try:
        refusals = await load_policies_file(
            path,
            ctx.store,
            checker(ctx),
            phones=partial(profile_phones, ctx),
            channel_problem=partial(file_channel_problem, ctx),
        )
    except Exception:
        log.exception("ESCALATION_POLICIES_FILE: could not be loaded")
        return []
    if refusals and retry and unfetched:
        ctx.jobs.add(reload_job(0))
    return refusals


LOAD = "policies.load"
RELOAD = "policies.reload"
REDRAW = "policies.redraw"
RELOAD_EVERY = 2.0  # seconds between looks at whether the workflow lists are fetched
RELOAD_TRIES = 150  # five minutes; then the refusals stand (until the next start)


def load_job() -> NewJob:
    """Load ESCALATION_POLICIES_FILE (queued by the worker as it starts, bot/app.py: the
    web process only reads the policies from the database)."""
    return NewJob(LOAD, {}, lane="default", dedupe=LOAD)


def reload_job(tries: int) -> NewJob:
    """Load ESCALATION_POLICIES_FILE again once every workflow list has been fetched."""
    return NewJob(
        RELOAD, {"tries": tries}, lane="default", dedupe=RELOAD, run_at=time.time() + RELOAD_EVERY
    )


def _workflows_unfetched(ctx: SlackContext) -> bool:
    return any(ctx.store.workflows.fetched_at(p.id) is None for p in ctx.workflows.managed())


class PolicyFileReload:
    """Runs `policies.reload` jobs (the worker)."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx

    async def run(self, job: Job) -> None:
        tries = int(job.payload.get("tries", 0))
        if _workflows_unfetched(self.ctx) and tries < RELOAD_TRIES:
            self.ctx.jobs.add(reload_job(tries + 1))
            return
        await load_file_at_start(self.ctx, retry=False)

    async def run_at_start(self, job: Job) -> None:
        await load_file_at_start(self.ctx)

    async def redraw(self, job: Job) -> None:
        """The list message a modal was opened from, as it is now (after its ack)."""
        user, response_url = job.payload["user"], job.payload["response_url"]
        listing = await policies_message(self.ctx, user)
        respond = AsyncRespond(response_url=response_url)
        await respond(replace_original=True, text=listing.text, blocks=listing.blocks)

    def kinds(self) -> dict[str, Kind]:
        """This module's jobs, and the answers to clicks (bot/slack/escalations/running.py)."""
        return {
            LOAD: Kind(self.run_at_start, "default", max_attempts=3),
            RELOAD: Kind(self.run, "default", max_attempts=3),
            REDRAW: Kind(self.redraw, LANE, max_attempts=5),
        } | AnswerJobs(self.ctx).kinds()


def field_errors(issues: Sequence[Issue]) -> dict[str, str]:
    """Issues as modal errors, one text per block: `step 2: …` lines on the steps field."""
    errors: dict[str, list[str]] = {}
    for issue in issues:
        block = FIELD_BLOCKS.get(issue.field, BlockId.EP_NAME)
        errors.setdefault(block, []).append(MENTION.sub(r"@\1", issue.named()))
    return {
        block: outside_plain("\n".join(texts), 1900, multiline=True)
        for block, texts in errors.items()
    }


# ---------------------------------------------------------------- the form


def rich_text_lines(value: dict[str, Any] | None) -> list[str]:
    """A rich text input's value as lines of text, each user mention as `<@U…>`."""
    text: list[str] = []

    def walk(element: Any) -> None:
        if not isinstance(element, dict):
            return
        kind = element.get("type")
        if kind == "user":
            text.append(f"<@{element.get('user_id', '')}>")
        elif kind in ("text", "link"):
            text.append(str(element.get("text") or element.get("url") or ""))
        elif kind in ("rich_text_section", "rich_text_preformatted", "rich_text_quote"):
            for child in element.get("elements") or []:
                walk(child)
            text.append("\n")
        elif kind in ("rich_text", "rich_text_list"):
            for child in element.get("elements") or []:
                walk(child)
        elif kind == "emoji":
            text.append(f":{element.get('name', '')}:")

    walk(value or {})
    return "".join(text).splitlines()


def read_steps(lines: Sequence[str]) -> tuple[list[StepDraft], list[Issue]]:
    """`@user 5m` / `+2348… 30s` lines as step drafts (the checker reads each), with a
    problem for a line that is not `<who> <wait>`."""
    steps: list[StepDraft] = []
    issues: list[Issue] = []
    for line in lines:
        words = line.replace(",", " ").split()
        if not words:
            continue
        number = len(steps) + 1
        if len(words) < 2:
            issues.append(
                Issue(
                    "steps",
                    f"'{outside_plain(line, 60)}' is whom to call and how long to wait; write "
                    "both, e.g. @ada 5m",
                    number,
                )
            )
            steps.append(StepDraft(None, ""))
            continue
        who, wait = " ".join(words[:-1]), words[-1]
        mention = MENTION.fullmatch(who)
        if mention:
            who = mention.group(1)
        elif who.startswith("@"):
            issues.append(
                Issue(
                    "steps",
                    f"'{outside_plain(who, 40)}' is not linked to a Slack user; type @ and pick "
                    "the person from the list Slack offers",
                    number,
                )
            )
            steps.append(StepDraft(None, wait))
            continue
        steps.append(StepDraft(who, wait))
    return steps, issues


def read_policy_form(state: ViewState, form: ev.PolicyForm, user: str) -> PolicyDraft:
    """The modal's fields as a draft (the checker says what is wrong with it)."""
    element = state.values.get(BlockId.EP_STEPS, {}).get(ActionId.EP_STEPS_INPUT) or {}
    if "rich_text_value" in element:
        lines = rich_text_lines(element.get("rich_text_value"))
    else:  # a plain text input (older clients) holds the same lines
        lines = str(element.get("value") or "").splitlines()
    steps, early = read_steps(lines)
    voice = state.selected(BlockId.EP_VOICE, ActionId.EP_VOICE_SELECT)
    fallback = state.selected(BlockId.EP_FALLBACK, ActionId.EP_FALLBACK_SELECT)
    workflow = state.selected(BlockId.EP_WORKFLOW, ActionId.EP_WORKFLOW_SELECT) or state.text(
        BlockId.EP_WORKFLOW, ActionId.EP_WORKFLOW_SELECT
    )
    return PolicyDraft(
        name=state.text(BlockId.EP_NAME, ActionId.EP_NAME_INPUT),
        channel=state.conversation(BlockId.EP_CHANNEL, ActionId.EP_CHANNEL_SELECT) or "",
        workflow=workflow or "",
        steps=steps,
        voice=None if voice in (None, ev.DEFAULT_VOICE) else voice,
        repeat=state.selected(BlockId.EP_REPEAT, ActionId.EP_REPEAT_SELECT) or 0,
        fallback_workflow=None if fallback in (None, ev.NO_FALLBACK) else fallback,
        urgent="urgent" in state.checked(BlockId.EP_URGENT, ActionId.EP_URGENT_TOGGLE),
        source="slack",
        policy_id=form.policy_id,
        created_by=user,
        early=early,
    )


# ---------------------------------------------------------------- the list


async def policies_message(ctx: SlackContext, user: str, notice: str | None = None) -> Message:
    """The list as this user may act on it."""
    can_manage = await ctx.can_manage(user)
    policies = ctx.store.policies.list()
    return ev.policies_list(
        policies,
        {w.id: w for w in ctx.store.workflows.all()},
        can_manage=can_manage,
        refusals=file_refusals(ctx.store) if can_manage else (),
        notice=notice,
        sandbox=ctx.sandbox,
        flagged={p.id: opted_out_steps(ctx, p) for p in policies},
    )


async def handle_escalations_command(ctx: SlackContext, slack: Interaction) -> None:
    """`/robocall escalations`: the policies, with their buttons."""
    listing = await policies_message(ctx, slack.user)
    await slack.ack(text=listing.text, blocks=listing.blocks)


async def _refuse(ctx: SlackContext, slack: Interaction, text: str) -> None:
    """A clicked action that cannot be done: say why in a small modal."""
    await slack.open(done_modal("Not possible", text, ctx.sandbox))


async def _clicked_policy(
    ctx: SlackContext, slack: Interaction, manage: str | None = None
) -> Policy | None:
    """The policy a button names, if it exists and (when `manage` names the action) the
    user may change it; otherwise the user is told why and None is returned."""
    if manage is not None and not await ctx.can_manage(slack.user):
        await _refuse(ctx, slack, ADMIN_ONLY.format(action=manage))
        return None
    policy = ctx.store.policies.get(slack.value)
    if policy is None:
        await _refuse(ctx, slack, GONE)
        return None
    if manage is not None and policy.source == "file":
        await _refuse(ctx, slack, KEPT_AS_CODE.format(name=outside(policy.name, ev.NAME)))
        return None
    return policy


def _modal(ctx: SlackContext, form: ev.PolicyForm, policy: Policy | None = None):
    voices = [v for p in ctx.service.providers for v in p.voices()]
    return ev.policy_modal(
        form,
        ctx.workflows.cached(),
        voices,
        labels={p.id: p.capabilities.label for p in ctx.service.providers},
        policy=policy,
        sandbox=ctx.sandbox,
    )


async def handle_policy_new_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    if not await ctx.can_manage(slack.user):
        await _refuse(ctx, slack, ADMIN_ONLY.format(action="create escalation policies"))
        return
    await slack.open(_modal(ctx, ev.PolicyForm(response_url=slack.body.get("response_url"))))


async def handle_policy_edit_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    policy = await _clicked_policy(ctx, slack, manage="edit escalation policies")
    if policy is not None:
        form = ev.PolicyForm(policy_id=policy.id, response_url=slack.body.get("response_url"))
        await slack.open(_modal(ctx, form, policy))


async def handle_policy_submission(ctx: SlackContext, slack: Interaction) -> None:
    """Save a new or edited policy, or show every problem on its field (nothing saved)."""
    form = slack.metadata(ev.PolicyForm)
    if not await ctx.can_manage(slack.user):
        raise UserError(ADMIN_ONLY.format(action="save escalation policies"), block=BlockId.EP_NAME)
    before = ctx.store.policies.get(form.policy_id) if form.policy_id else None
    if form.policy_id and before is None:
        raise UserError(GONE, block=BlockId.EP_NAME)
    if before is not None and before.source == "file":
        raise UserError(
            KEPT_AS_CODE.format(name=outside_plain(before.name, ev.NAME)).replace("*", ""),
            block=BlockId.EP_NAME,
        )
    draft = read_policy_form(slack.state, form, slack.user)
    if before is not None:
        draft.created_by = before.created_by
    checked = await checker(ctx).check(
        draft,
        phones=partial(profile_phones, ctx),
        channel_problem=partial(channel_problem, ctx),
    )
    if checked.policy is None:
        await slack.ack(response_action="errors", errors=field_errors(checked.issues))
        return
    policy = checked.policy
    with ctx.store.write():
        ctx.store.policies.put(policy)
        ctx.store.audit.record(
            slack.user,
            "policy.updated" if before else "policy.created",
            policy.id,
            {"name": policy.name},
        )
    await slack.ack(
        response_action="update",
        view=done_modal(
            "Policy saved", ev.saved_text(policy, before is None, checked.warnings), ctx.sandbox
        ),
    )
    _redraw_list(ctx, slack.user, form.response_url)


# ---------------------------------------------------------------- Delete


async def handle_policy_delete_action(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()
    policy = await _clicked_policy(ctx, slack, manage="delete escalation policies")
    if policy is not None:
        await slack.open(ev.delete_modal(policy, ctx.sandbox, slack.body.get("response_url")))


async def handle_policy_delete_submission(ctx: SlackContext, slack: Interaction) -> None:
    ref = slack.metadata(ev.PolicyRef)
    policy = ctx.store.policies.get(ref.policy_id)
    if not await ctx.can_manage(slack.user):
        text = ADMIN_ONLY.format(action="delete escalation policies")
    elif policy is None:
        text = GONE
    elif policy.source == "file":
        text = KEPT_AS_CODE.format(name=outside(policy.name, ev.NAME))
    else:
        with ctx.store.write():
            ctx.store.policies.delete(policy.id)
            ctx.store.audit.record(slack.user, "policy.deleted", policy.id, {"name": policy.name})
        text = f"Deleted the escalation policy *{outside(policy.name, ev.NAME)}*."
        await slack.ack(response_action="update", view=done_modal("Deleted", text, ctx.sandbox))
        _redraw_list(ctx, slack.user, ref.response_url)
        return
    await slack.ack(response_action="update", view=done_modal("Not deleted", text, ctx.sandbox))


def _redraw_list(ctx: SlackContext, user: str, response_url: str | None) -> None:
    """After the modal's ack: the list message the modal was opened from, redrawn by a
    job (a failure only leaves the old list: the change is saved)."""
    if response_url:
        ctx.jobs.add(NewJob(REDRAW, {"user": user, "response_url": response_url}, lane=LANE))


# ---------------------------------------------------------------- Test


async def _answer(ctx: SlackContext, slack: Interaction, text: str) -> None:
    await tell(ctx, slack, text, title="Escalation policy")


async def handle_policy_test_action(ctx: SlackContext, slack: Interaction) -> None:
    """*Test*: the policy's escalation, marked as a test (its first step only)."""
    await slack.ack()
    if refusal := ctx.refusal(slack.user, slack.channel):
        await _answer(ctx, slack, refusal)
        return
    policy = ctx.store.policies.get(slack.value)
    if policy is None:
        await _answer(ctx, slack, GONE)
        return
    escalations = ctx.escalations
    if escalations is None:
        await _answer(ctx, slack, NOT_RUNNING)
        return
    record, _ = escalations.start(
        policy, f"Test of {policy.name}", started_by=slack.user, source="test", test=True
    )
    await _answer(
        ctx,
        slack,
        f":test_tube: Testing *{outside(policy.name, ev.NAME)}*: calling its first step "
        f"({rv.who(policy.steps[0].call)}) now; follow it in <#{policy.channel}> "
        f"(`{record.id}`).",
    )


# ---------------------------------------------------------------- the message shortcut


async def handle_escalate_message_shortcut(ctx: SlackContext, slack: Interaction) -> None:
    """*Escalate by phone* on a message: a short modal, the message filled in."""
    await slack.ack()
    policies = ctx.store.policies.list()
    if not policies:
        await slack.open(
            done_modal(
                "No policies yet",
                "There is no escalation policy to call with yet: an admin can create one "
                "with `/robocall escalations`.",
                ctx.sandbox,
            )
        )
        return
    message = slack.body.get("message") or {}
    form = ev.EscalateForm(channel_id=slack.channel, message_ts=message.get("ts"))
    await slack.open(ev.escalate_modal(policies, str(message.get("text") or ""), form, ctx.sandbox))


async def handle_escalate_message_submission(ctx: SlackContext, slack: Interaction) -> None:
    """Start the chosen policy's escalation with the (edited) message."""
    form = slack.metadata(ev.EscalateForm)
    if refusal := ctx.refusal(slack.user, form.channel_id):
        raise UserError(refusal, block=BlockId.ESCALATE_POLICY)
    state = slack.state
    chosen = state.selected(BlockId.ESCALATE_POLICY, ActionId.ESCALATE_POLICY_SELECT) or ""
    policy = ctx.store.policies.get(chosen)
    if policy is None:
        raise UserError(
            "Choose one of the escalation policies (the one chosen no longer exists).",
            block=BlockId.ESCALATE_POLICY,
        )
    text = state.text(BlockId.ESCALATE_TEXT, ActionId.ESCALATE_TEXT_INPUT).strip()
    if not text:
        raise UserError(
            "Write what the call should say, e.g. the alert's text.", block=BlockId.ESCALATE_TEXT
        )
    if ctx.escalations is None:
        raise UserError(NOT_RUNNING, block=BlockId.ESCALATE_POLICY)
    # One message, one chain: a second person escalating the same message (two people
    # in one incident) is shown the escalation already running for it.
    group = f"message:{form.channel_id}:{form.message_ts}" if form.message_ts else None
    record, created = ctx.escalations.start(
        policy, text, started_by=slack.user, source="shortcut", group_key=group
    )
    if created:
        title, said = (
            "Escalating",
            f":rotating_light: Escalating with *{outside(policy.name, ev.NAME)}*: calling "
            f"{rv.who(policy.steps[0].call)} first. Follow it in <#{policy.channel}> "
            f"(`{record.id}`).",
        )
    else:
        title, said = (
            "Already escalating",
            f":rotating_light: This message is already being escalated: escalation "
            f"`{record.id}` with *{outside(record.policy_name, ev.NAME)}*, started by "
            f"{rv.who(record.started_by)}, is calling {rv.who(record.calling)}. "
            f"Nothing new was started; follow it in <#{record.channel}>.",
        )
    await slack.ack(response_action="update", view=done_modal(title, said, ctx.sandbox))


# ---------------------------------------------------------------- the Home tab


class HomeEscalations:
    """An escalation listener (bot/core/escalation.py): the Home tab lists the running
    escalations, so each start, call and end re-publishes it for its recent viewers
    (one coalesced `slack.home` job; inside the change's transaction, as listeners must)."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx

    def escalation_changed(self, record: Any, change: Any, step: Any) -> None:
        self.ctx.jobs.add(home_refresh_job())
