"""Publishing the Home tab: for one user when they open it, and for every recent viewer
when a request changes (the `slack.home` job).

Re-publishing is coalesced: the job waits a second before it runs, and while it
waits every further change adds nothing (its `dedupe` key), so a burst of
finished requests (a campaign) causes one round of `views.publish` per recent
viewer, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.jobs import Job, NewJob
from bot.input.alerts import webhook_token, webhook_url
from bot.input.policies_file import file_refusals
from bot.slack.context import SlackContext
from bot.slack.escalations import run_views
from bot.slack.escalations.views import is_private_channel
from bot.slack.home.views import home_view

log = logging.getLogger(__name__)

REFRESH = "slack.home"
LATEST = 10  # requests shown
VIEWER_WINDOW_HOURS = 24  # who counts as a recent viewer
MAX_VIEWERS = 50
COALESCE_SECONDS = 1.0
CHANNEL_TIMEOUT = 2.0  # conversations.info of a running escalation's channel (a job)


def refresh_job() -> NewJob:
    """Re-publish the Home tab of recent viewers, a second from now, once."""
    return NewJob(REFRESH, {}, lane="slack", dedupe=REFRESH, run_at=time.time() + COALESCE_SECONDS)


def open_job(user_id: str) -> NewJob:
    """Publish one user's Home tab now (they just opened it)."""
    return NewJob(REFRESH, {"user_id": user_id}, lane="slack", dedupe=f"{REFRESH}:{user_id}")


@dataclass(frozen=True)
class RunningEscalations:
    """The Home tab's escalations section, read once per refresh (not per viewer): the
    running escalations, each one's status line as its parent message has it (who is
    being called, since their call started), and which of their channels are private."""

    records: Sequence[Any] = ()
    status: Mapping[str, str] = field(default_factory=dict)
    private: frozenset[str] = frozenset()


async def running_escalations(ctx: SlackContext, client: AsyncWebClient) -> RunningEscalations:
    escalations = ctx.escalations
    if escalations is None:
        return RunningEscalations()
    records = escalations.running()
    status = {
        r.id: run_views.status_line(
            r,
            escalations.steps(r.id),
            escalations.policy_steps(r.id),
            escalations.policy_repeat(r.id),
        )
        for r in records
    }
    private = set()
    for channel in {r.channel for r in records}:
        if not await _is_public(client, channel):
            private.add(channel)
    return RunningEscalations(records, status, frozenset(private))


async def _is_public(client: AsyncWebClient, channel: str) -> bool:
    """Whether conversations.info says the channel is public. Chosen: a private (`G…`)
    id, a private channel, or one Slack could not tell about (no channels:read, slow)
    counts as private: the Home tab, which every member can open, then shows the
    escalation without its alert text."""
    if is_private_channel(channel):
        return False
    try:
        async with asyncio.timeout(CHANNEL_TIMEOUT):
            answer = await client.conversations_info(channel=channel)
    except Exception as exc:
        log.info("conversations.info %s for the Home tab: %s", channel, type(exc).__name__)
        return False
    return not (answer.get("channel") or {}).get("is_private", False)


async def publish_home(
    ctx: SlackContext,
    client: AsyncWebClient,
    user_id: str,
    *,
    can_manage: bool,
    running: RunningEscalations | None = None,
) -> None:
    """Render and publish the Home tab for one user, and remember they look at it."""
    if running is None:
        running = await running_escalations(ctx, client)
    workflows = ctx.workflows.cached()
    requests = ctx.service.requests.recent(LATEST)
    view = home_view(
        [(r, ctx.service.requests.stats(r.id)) for r in requests],
        workflows,
        voice_of={r.id: ctx.voice_label(r.provider, r.voice) for r in requests},
        provider_of={r.id: _label(ctx, r.provider) for r in requests},
        calls_back_here={w.id: ctx.workflows.calls_back_here(w) for w in workflows},
        can_manage=can_manage,
        sandbox=ctx.sandbox,
        alert_webhook_url=alert_url(ctx) if can_manage else None,
        labels={p.id: p.capabilities.label for p in ctx.service.providers},
        refused=ctx.workflows.file_refusals,
        escalations=running.records,
        escalation_status=running.status,
        private_channels=running.private,
        policy_refusals=file_refusals(ctx.store) if can_manage else (),
        campaigns=[(c, ctx.campaigns.progress(c)) for c in ctx.campaigns.recent(5)]
        if ctx.campaigns is not None
        else (),
    )
    ctx.slack_store.touch_home_viewer(user_id, can_manage)
    await client.views_publish(user_id=user_id, view=view)


class HomeRefresh:
    """Runs `slack.home` jobs."""

    def __init__(self, ctx: SlackContext, client: AsyncWebClient) -> None:
        self.ctx = ctx
        self.client = client

    async def run(self, job: Job) -> None:
        if user_id := job.payload.get("user_id"):
            can_manage = await self.ctx.can_manage(user_id)
            await publish_home(self.ctx, self.client, user_id, can_manage=can_manage)
            return
        viewers = self.ctx.slack_store.home_viewers(VIEWER_WINDOW_HOURS, MAX_VIEWERS)
        running = await running_escalations(self.ctx, self.client) if viewers else None
        for user_id, can_manage in viewers:
            try:
                await publish_home(
                    self.ctx, self.client, user_id, can_manage=can_manage, running=running
                )
            except SlackApiError as exc:
                log.warning(
                    "could not refresh the Home tab of %s: %s", user_id, exc.response.get("error")
                )


def alert_url(ctx: SlackContext) -> str:
    """POST /alerts/{token}'s URL, token included (for admins' eyes only)."""
    token = webhook_token(ctx.settings.alert_webhook_token, ctx.store.meta)
    return webhook_url(ctx.settings.public_url, token)


def _label(ctx: SlackContext, provider_id: str) -> str:
    """The provider's name for people (`Intron`), or its id if it is not configured."""
    providers = ctx.service.providers
    return (
        providers.get(provider_id).capabilities.label if provider_id in providers else provider_id
    )
