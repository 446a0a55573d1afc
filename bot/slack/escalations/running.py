"""Running escalations in Slack: `/robocall escalate`, the Acknowledge and Resolve
buttons, the jobs that post and edit the parent message and its thread, and the phone
book that reads a step's number from the user's Slack profile when the step runs.

The core (`bot/core/escalation.py`) tells `EscalationNotifier` of each change inside
its transaction; the notifier only queues `escalation.post` jobs in the channel's
queue (the same queue as every other message there, so a parent is always posted
before its replies and edits). The parent is rendered when its job runs, from the
escalation as it is then, and its edits share one dedupe key: a burst of changes is
one edit showing the latest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot import logsafety
from bot.core.escalation import (
    Change,
    Contact,
    EscalationRecord,
    EscalationService,
    NotPossible,
    StepRecord,
)
from bot.core.jobs import Job, Kind, NewJob
from bot.core.policies import is_user_id
from bot.slack.blocks import Message, done_modal
from bot.slack.context import SlackContext
from bot.slack.delivery import CANNOT_POST, LANE, Delivery
from bot.slack.delivery import post_job as delivery_post_job
from bot.slack.escalations import run_views
from bot.slack.ids import ActionId
from bot.slack.interaction import Interaction, UserError, listener
from bot.slack.profiles import read_profiles
from bot.text import clip, outside

log = logging.getLogger(__name__)

POST = "escalation.post"
# A step's phone is read from the user's Slack profile when the step runs; Slack slower
# than this (or failing), the last number kept for the user is used instead.
PROFILE_TIMEOUT = 5.0
ANSWER = "escalation.answer"


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the buttons' listeners (the command is routed by `bot/slack/commands.py`)."""
    on = partial(listener, ctx)
    app.action(ActionId.ESCALATION_ACKNOWLEDGE)(on(handle_acknowledge_action))
    app.action(ActionId.ESCALATION_RESOLVE)(on(handle_resolve_action))


def service(ctx: SlackContext) -> EscalationService:
    escalations = getattr(ctx, "escalations", None)
    if escalations is None:
        raise UserError(":warning: Escalations are not set up in this app; nothing was done.")
    return escalations


# ---------------------------------------------------------------- /robocall escalate

USAGE = (
    "Usage: `/robocall escalate <policy> <message…>`, e.g. "
    '`/robocall escalate "Payments on-call" Card payments failing`'
)


def split_policy(text: str, names: list[str]) -> tuple[str, str]:
    """The policy as typed and the message: a quoted name (straight or curly quotes), else
    the longest run of first words naming a policy (any case), else the first word."""
    text = text.strip()
    if text[:1] in '"“':
        closing = "”" if text[0] == "“" else '"'
        end = text.find(closing, 1)
        if end > 0:
            return text[1:end].strip(), text[end + 1 :].strip()
    words = text.split()
    known = {n.casefold() for n in names}
    for count in range(len(words), 0, -1):
        candidate = " ".join(words[:count])
        if candidate.casefold() in known:
            return candidate, " ".join(words[count:])
    first, _, rest = text.partition(" ")
    return first, rest.strip()


async def handle_escalate_command(ctx: SlackContext, slack: Interaction, rest: str) -> None:
    """`/robocall escalate <policy> <message…>`: starts that policy's escalation."""
    escalations = service(ctx)
    if refusal := ctx.refusal(slack.user, slack.channel):
        raise UserError(f":warning: No escalation was started. {refusal}")
    policies = ctx.store.policies.list()
    names = [p.name for p in policies]
    if not rest.strip():
        raise UserError(f":warning: Which policy, and what message? {USAGE}. {_known(names)}")
    typed, text = split_policy(rest, names)
    policy = ctx.store.policies.by_name(typed)
    if policy is None:
        raise UserError(
            f":warning: No escalation was started: there is no policy "
            f"'{outside(typed, 80)}'. {_known(names)} {USAGE}."
        )
    if not text.strip():
        raise UserError(
            f":warning: No escalation was started: the message is empty; say what is wrong "
            f"after the policy's name. {USAGE}."
        )
    record, _ = escalations.start(policy, text, started_by=slack.user, source="command")
    answer = (
        f":rotating_light: Escalation `{record.id}` started with policy "
        f"*{outside(policy.name, 80)}*: calling {run_views.who(record.calling)} first. "
        f"Follow it in <#{policy.channel}>."
    )
    await slack.ack(text=answer)


def _known(names: list[str]) -> str:
    if not names:
        return "There are no policies yet: make one with `/robocall escalations`."
    shown = ", ".join(f"'{outside(n, 60)}'" for n in sorted(names, key=str.casefold))
    return f"Known policies: {clip(shown, 1500)}."


# ---------------------------------------------------------------- the buttons


async def handle_acknowledge_action(ctx: SlackContext, slack: Interaction) -> None:
    await _stop(ctx, slack, "acknowledged")


async def handle_resolve_action(ctx: SlackContext, slack: Interaction) -> None:
    await _stop(ctx, slack, "resolved")


async def _stop(ctx: SlackContext, slack: Interaction, what: str) -> None:
    """Store the click (one compare-and-set), then ack; the parent's edit is a job."""
    escalations = service(ctx)
    escalation_id = slack.value.strip()
    try:
        if what == "acknowledged":
            escalations.acknowledge(escalation_id, slack.user)
        else:
            escalations.resolve(escalation_id, slack.user)
    except NotPossible as exc:
        await slack.ack()
        current = escalations.get(escalation_id)
        by = f" by {run_views.who(current.ended_by)}" if current and current.ended_by else ""
        text = (
            f"Escalation `{outside(escalation_id, 40)}` was not {what}: {exc.reason}{by}. "
            "Nothing was changed."
        )
        await tell(ctx, slack, text, title="Escalation")
        return
    await slack.ack()


# ---------------------------------------------------------------- answering the clicker


def answer_job(user: str, text: str, response_url: str | None) -> NewJob:
    """An answer to one person, after the ack: ephemeral where they clicked (the click's
    response_url), else a DM."""
    return NewJob(ANSWER, {"user": user, "text": text, "response_url": response_url}, lane=LANE)


async def tell(ctx: SlackContext, slack: Interaction, text: str, *, title: str) -> None:
    """After the ack: `text` (the app's mrkdwn) to the clicker only. Where they clicked
    has a response_url, it is a job (the web only acks and stores); from the Home tab
    (none, but a trigger id) a small modal, opened now; else a DM, a job too."""
    text = clip(text, 3000)
    response_url = slack.body.get("response_url")
    if not response_url and slack.body.get("trigger_id"):
        await slack.open(done_modal(title, text, ctx.sandbox))
        return
    ctx.jobs.add(answer_job(slack.user, text, response_url))


class AnswerJobs:
    """Runs `escalation.answer` jobs (the worker)."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx

    async def run(self, job: Job) -> None:
        payload = job.payload
        if payload.get("response_url"):
            respond = AsyncRespond(response_url=payload["response_url"])
            await respond(text=payload["text"], response_type="ephemeral", replace_original=False)
        else:
            await self.ctx.client.chat_postMessage(channel=payload["user"], text=payload["text"])

    def kinds(self) -> dict[str, Kind]:
        return {ANSWER: Kind(self.run, LANE, max_attempts=5)}


# ---------------------------------------------------------------- telling Slack (in the txn)


def post_job(escalation_id: str, channel: str, what: str, message: Message | None = None) -> NewJob:
    """An escalation's message: its `parent` (posted, or edited once posted), an `edit`,
    or a `reply` in its thread."""
    return NewJob(
        POST,
        {
            "escalation_id": escalation_id,
            "channel": channel,
            "what": what,
            "message": message.model_dump() if message else None,
        },
        lane=LANE,
        queue=f"slack:{channel}",
        dedupe=f"escalation.edit:{escalation_id}" if what in ("parent", "edit") else None,
    )


class EscalationNotifier:
    """The core's EscalationListener: queues the parent, its edits and the replies."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx

    def escalation_changed(
        self, record: EscalationRecord, change: Change, step: StepRecord | None
    ) -> None:
        ctx = self.ctx
        table = ctx.store.escalations
        first = table.add_message(record.id, record.channel)
        jobs = [post_job(record.id, record.channel, "parent" if first else "edit")]
        escalations = service(ctx)
        total = escalations.policy_steps(record.id)
        repeat = escalations.policy_repeat(record.id)
        secrets = logsafety.secrets_in(ctx.settings)
        reply: Message | None = None
        if change == Change.STEP_ENDED and step is not None:
            reply = run_views.step_reply(record, step, total, repeat, secrets)
        elif change == Change.FALLBACK and step is not None:
            reply = run_views.fallback_reply(record, step, total, repeat, secrets)
        elif change in (Change.ACKNOWLEDGED, Change.RESOLVED, Change.EXHAUSTED):
            # Its steps: the reply says why nobody was called when every step was skipped.
            reply = run_views.ended_reply(record, change, repeat, escalations.steps(record.id))
        if reply is not None:
            jobs.append(post_job(record.id, record.channel, "reply", reply))
        for job in jobs:
            ctx.jobs.add(job)


class EscalationDelivery(Delivery):
    """Runs `escalation.post` jobs: as `slack.post` (429s waited out exactly, 5xx retried,
    permanent refusals logged), rendering the parent from the escalation as it is now."""

    async def _deliver(self, payload: Mapping[str, Any]) -> str | None:
        escalations = service(self.ctx)
        table = self.ctx.store.escalations
        escalation_id, channel, what = payload["escalation_id"], payload["channel"], payload["what"]
        record = escalations.get(escalation_id)
        if record is None:
            return "unknown escalation"
        ts = table.message_ts(escalation_id)
        if what in ("parent", "edit"):
            shown = run_views.parent_message(
                record,
                escalations.steps(escalation_id),
                escalations.policy_steps(escalation_id),
                escalations.policy_repeat(escalation_id),
                sandbox=self.ctx.sandbox,
            )
            if ts is None:
                if what == "edit":
                    return "the parent message was never posted"
                answer = await self.client.chat_postMessage(
                    channel=channel, text=shown.text, blocks=shown.blocks
                )
                table.set_message_ts(escalation_id, answer["ts"])
            else:
                await self.client.chat_update(
                    channel=channel, ts=ts, text=shown.text, blocks=shown.blocks
                )
            return None
        if ts is None:
            return "the parent message was never posted"
        content = {k: v for k, v in (payload["message"] or {}).items() if v}
        await self.client.chat_postMessage(channel=channel, thread_ts=ts, **content)
        return None

    def _give_up(self, payload: Mapping[str, Any], error: str) -> None:
        log.warning(
            "slack refused %s for escalation %s in %s: %s",
            payload["what"],
            payload["escalation_id"],
            payload["channel"],
            error,
        )
        if payload["what"] == "parent" and error in CANNOT_POST:
            self._tell_starter(payload, error)

    def _tell_starter(self, payload: Mapping[str, Any], error: str) -> None:
        """The policy's channel is closed to the bot: the escalation still runs (the calls
        go out); say so to whoever started it, when that is a Slack user."""
        record = service(self.ctx).get(payload["escalation_id"])
        if record is None or not is_user_id(record.started_by):
            return
        text = (
            f":warning: I could not post escalation `{record.id}` "
            f"({outside(record.policy_name, 80)}) in <#{payload['channel']}> "
            f"({outside(error, 100)}); invite me there with `/invite @Robocall`. "
            "The escalation itself goes ahead: its calls are placed."
        )
        self.ctx.jobs.add(
            delivery_post_job(record.id, record.started_by, "dm", Message(text=text, blocks=[]))
        )


# ---------------------------------------------------------------- the phone book


ADD_PHONE = "they have no phone number in their Slack profile (ask them to add one)"
INVALID_PHONE = (
    "the phone number in their Slack profile is not a valid number "
    "(it needs its country code, e.g. +2348076960623)"
)


class ProfileUnavailable(Exception):
    """Slack could not give a user's profile just now and no number of theirs was ever
    kept: the step's job fails and the worker runs it again (`transient`)."""

    transient = True


class SlackPhoneBook:
    """The core's PhoneBook: the `phone` of a user's Slack profile, read with users.info
    when the step runs (so a number changed since the policy was saved is the one
    called; bot/slack/profiles.py). When Slack cannot answer (slow, rate limited, a
    5xx), the last number kept for them, whatever its age; none kept and the failure
    may pass, `ProfileUnavailable`, so the step is tried again: a Slack hiccup does not
    skip the on-call. Only a profile without a usable number skips the step."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx

    async def contact(self, user_id: str) -> Contact:
        found = await read_profiles(
            self.ctx, [user_id], within=PROFILE_TIMEOUT, max_age=math.inf, fresh=True
        )
        profile = found[user_id]
        if isinstance(profile, Contact):
            return profile
        if profile.kind == "none":
            return Contact(phone=None, problem=ADD_PHONE)
        if profile.kind == "invalid":
            return Contact(phone=None, problem=INVALID_PHONE)
        if profile.transient:
            raise ProfileUnavailable(
                f"Slack could not give the profile of {user_id} just now "
                f"({type(profile.error).__name__})"
            )
        error = profile.error
        why = error.response.get("error") if isinstance(error, SlackApiError) else None
        return Contact(
            phone=None,
            problem=f"their Slack profile could not be read ({outside(why or 'refused', 60)})",
        )
