"""The Slack adapter, assembled: the bolt app with every feature's listeners (for the web
process) and every Slack job (for the worker)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.jobs import Job, Kind
from bot.slack import commands, delivery
from bot.slack.calls import actions as request_buttons
from bot.slack.calls import handlers as calls
from bot.slack.calls import views
from bot.slack.calls.notifier import RequestNotifier
from bot.slack.campaigns import handlers as campaigns
from bot.slack.campaigns.jobs import CampaignJobs, CampaignNotifier
from bot.slack.context import SlackContext
from bot.slack.escalations import handlers as escalation_policies
from bot.slack.escalations import running as escalations_running
from bot.slack.home import handlers as home
from bot.slack.home.jobs import REFRESH, HomeRefresh
from bot.slack.workflows import handlers as workflows
from bot.slack.workflows.audio import AudioJobs
from bot.slack.workflows.jobs import WorkflowJobs
from bot.text import outside

log = logging.getLogger(__name__)

CATCH_UP = "slack.catch_up"


def build_bolt(ctx: SlackContext, *, signing_secret: str | None) -> AsyncApp:
    """The bolt app serving `/slack/events`: one `register` per feature."""
    # The web route verifies every request's signature before bolt sees it
    # (bot/web/slack_events.py), and Socket Mode needs none, so bolt does not again.
    bolt = AsyncApp(
        client=ctx.client,
        signing_secret=signing_secret,
        request_verification_enabled=False,
        # Listeners return at their ack (bot/slack/interaction.py): bolt can answer then,
        # instead of polling for the ack every 10 ms.
        process_before_response=True,
    )

    @bolt.middleware
    async def once_per_event(body: dict, next: Callable[[], Awaitable[BoltResponse]]):
        """Slack resends an event it thinks we missed (X-Slack-Retry-Num); act on it once."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not ctx.slack_store.first_sighting(event_id):
            return BoltResponse(status=200, body="")
        return await next()

    @bolt.error
    async def on_unhandled(error: Exception, body: dict) -> None:
        # Listeners tell the user themselves (bot/slack/interaction.py); this is for
        # what fails outside them, in bolt or a middleware.
        log.error("unhandled error in a Slack request (%s)", body.get("type"), exc_info=error)

    commands.register(bolt, ctx)
    calls.register(bolt, ctx)
    request_buttons.register(bolt, ctx)
    workflows.register(bolt, ctx)
    home.register(bolt, ctx)
    campaigns.register(bolt, ctx)
    escalations_running.register(bolt, ctx)
    escalation_policies.register(bolt, ctx)
    return bolt


def notifier(ctx: SlackContext) -> RequestNotifier:
    """The core listener that turns request changes into Slack jobs."""
    return RequestNotifier(ctx)


def job_kinds(ctx: SlackContext, delivery_client: AsyncWebClient) -> dict[str, Kind]:
    """Every Slack job the worker runs. `delivery_client` does not wait out 429s itself:
    the jobs do, exactly as long as Slack asks."""
    posting = delivery.Delivery(ctx, delivery_client)
    kinds = {
        delivery.POST: Kind(posting.run, delivery.LANE),
        REFRESH: Kind(HomeRefresh(ctx, delivery_client).run, delivery.LANE, max_attempts=5),
        CATCH_UP: Kind(RequestNotifier(ctx).catch_up, delivery.LANE, max_attempts=5),
    }
    kinds |= WorkflowJobs(ctx, ctx.client).kinds()
    kinds |= AudioJobs(ctx, ctx.client).kinds()  # an uploaded recording, then the save
    kinds |= CampaignJobs(ctx, delivery_client).kinds()
    kinds[escalations_running.POST] = Kind(
        escalations_running.EscalationDelivery(ctx, delivery_client).run, delivery.LANE
    )
    kinds |= escalation_policies.PolicyFileReload(ctx).kinds()
    return kinds


def escalation_notifier(ctx: SlackContext) -> escalations_running.EscalationNotifier:
    """The escalation listener that turns escalation changes into Slack jobs."""
    return escalations_running.EscalationNotifier(ctx)


def phonebook(ctx: SlackContext) -> escalations_running.SlackPhoneBook:
    """How the core reads a Slack user's phone number when their step runs."""
    return escalations_running.SlackPhoneBook(ctx)


def campaign_notifier(ctx: SlackContext) -> CampaignNotifier:
    """The campaigns' listener that turns their changes into Slack jobs."""
    return CampaignNotifier(ctx)


def parked_reporter(ctx: SlackContext) -> Callable[[Job, str], None]:
    """Tells each admin (ADMIN_USER_IDS) by DM of a job the worker gave up on."""

    def report(job: Job, error: str) -> None:
        if job.kind == delivery.POST and job.payload.get("what") == "dm":
            return  # a report that cannot be delivered is not reported again
        about = job.payload.get("request_id")
        what = f"`{job.kind}` (job {job.id}" + (f", request `{about}`)" if about else ")")
        text = (
            f":warning: A background job was parked after {job.attempts} failed attempts: "
            f"{what}, {outside(error, 60)}. It is kept in the database and listed by `/healthz`; "
            "nothing else waits for it. The worker's log has the details."
        )
        for admin in ctx.settings.admin_user_ids:
            ctx.jobs.add(
                delivery.post_job(f"job-{job.id}", admin, "dm", views.Message(text=text, blocks=[]))
            )

    return report
