"""`/robocall campaign`, its modal, the preview's buttons and the parent's buttons.

Every handler only checks, stores and answers: reading the file, the preview and
every message are jobs (bot/slack/campaigns/jobs.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from slack_bolt.async_app import AsyncApp

from bot.core.campaigns import CampaignService, CampaignStatus, again_campaign_id, new_campaign_id
from bot.core.requests import NotPossible
from bot.input import schedules
from bot.slack.blocks import Message, done_modal
from bot.slack.campaigns import views
from bot.slack.campaigns.jobs import preview_job
from bot.slack.context import SlackContext
from bot.slack.ids import DEFAULT_VOICE, ActionId, BlockId, CallbackId
from bot.slack.interaction import Interaction, UserError, listener
from bot.text import outside, quoted

FILE_TYPES = (".csv", ".xlsx")


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the campaign listeners (the command is routed by `bot/slack/commands.py`)."""
    on = partial(listener, ctx)
    app.view(CallbackId.CAMPAIGN_NEW)(on(handle_campaign_submission))
    app.action(ActionId.CAMPAIGN_SEND)(on(handle_campaign_send))
    app.action(ActionId.CAMPAIGN_DISCARD)(on(handle_campaign_discard))
    app.action(ActionId.CAMPAIGN_PAUSE)(on(handle_campaign_pause))
    app.action(ActionId.CAMPAIGN_RESUME)(on(handle_campaign_resume))
    app.action(ActionId.CAMPAIGN_CANCEL)(on(handle_campaign_cancel))
    app.action(ActionId.CAMPAIGN_AGAIN)(on(handle_campaign_again))
    for action in (
        ActionId.CAMPAIGN_WORKFLOW_SELECT,
        ActionId.CAMPAIGN_VOICE_SELECT,
        ActionId.CAMPAIGN_FILE_INPUT,
    ):
        app.action(action)(on(_just_ack))


async def _just_ack(ctx: SlackContext, slack: Interaction) -> None:
    await slack.ack()


def _service(ctx: SlackContext) -> CampaignService:
    if ctx.campaigns is None:
        raise UserError("Campaigns are not available in this app. Nothing was sent.")
    return ctx.campaigns


async def handle_campaign_command(ctx: SlackContext, slack: Interaction) -> None:
    """`/robocall campaign`: the *New campaign* modal."""
    if refusal := ctx.refusal(slack.user, slack.channel):
        raise UserError(refusal)
    await slack.ack()
    context = views.CampaignModalContext(user_id=slack.user, channel_id=slack.channel)
    modal = views.campaign_modal(
        ctx.workflows.cached(), context, voices=ctx.voices(), sandbox=ctx.sandbox
    )
    await slack.client.views_open(trigger_id=slack.trigger_id, view=modal)


async def handle_campaign_submission(ctx: SlackContext, slack: Interaction) -> None:
    """Check the fields; store the job that reads the file and posts the preview."""
    context = slack.metadata(views.CampaignModalContext)
    if refusal := ctx.refusal(slack.user, context.channel_id):
        raise UserError(refusal, block=BlockId.CAMPAIGN_FILE)
    state = slack.state
    errors: dict[str, str] = {}
    files = state._element(BlockId.CAMPAIGN_FILE, ActionId.CAMPAIGN_FILE_INPUT).get("files") or []
    upload = files[0] if files else None
    name = str((upload or {}).get("name") or "")
    if upload is None or not upload.get("id"):
        errors[BlockId.CAMPAIGN_FILE] = "Upload a CSV or XLSX file with a header row."
    elif not name.lower().endswith(FILE_TYPES):
        errors[BlockId.CAMPAIGN_FILE] = (
            f"The file {quoted(name)} is neither .csv nor .xlsx; upload a CSV or XLSX file."
        )
    workflow = state.selected(BlockId.CAMPAIGN_WORKFLOW, ActionId.CAMPAIGN_WORKFLOW_SELECT)
    if not workflow:
        errors[BlockId.CAMPAIGN_WORKFLOW] = "Choose a workflow."
    at = None
    picked = state._element(BlockId.CAMPAIGN_WHEN, ActionId.CAMPAIGN_WHEN_SELECT).get(
        "selected_date_time"
    )
    if picked is not None:
        try:
            at = schedules.check(datetime.fromtimestamp(float(picked), UTC), value="When")
        except (TypeError, ValueError, OverflowError) as exc:
            errors[BlockId.CAMPAIGN_WHEN] = (
                str(exc) if isinstance(exc, schedules.ScheduleError) else "Pick a date and time."
            )
    if errors:
        await slack.ack(response_action="errors", errors=errors)
        return
    assert upload is not None
    voice = state.selected(BlockId.CAMPAIGN_VOICE, ActionId.CAMPAIGN_VOICE_SELECT)
    view_id = slack.view.get("id")
    # The view's id makes Slack's resent submission (or a second click on Submit) the
    # same campaign, and only its first sighting stores the job: one draft, one preview,
    # whenever the repeat arrives (the job also posts a draft's preview only once).
    with ctx.store.write():
        if not view_id or ctx.slack_store.first_sighting(f"campaign.view:{view_id}"):
            ctx.jobs.add(
                preview_job(
                    {
                        "campaign_id": _campaign_id_for(view_id),
                        "user_id": slack.user,
                        "channel_id": context.channel_id,
                        "file_id": upload["id"],
                        "file_name": name,
                        "workflow": workflow,
                        "voice": None if not voice or voice == DEFAULT_VOICE else voice,
                        "at": at.isoformat() if at else None,
                        "submitted_at": datetime.now(UTC).timestamp(),
                    }
                )
            )
    await slack.ack(
        response_action="update",
        view=done_modal(
            "New campaign",
            f"Reading `{outside(name, 80)}`… The preview comes to you in a DM from me in a few "
            "seconds. Nothing is sent before you confirm it there.",
            ctx.sandbox,
        ),
    )


def _campaign_id_for(view_id: str | None) -> str:
    if not view_id:
        return new_campaign_id()
    digits = "".join(ch for ch in view_id.lower() if ch.isalnum())
    return f"cp-{digits[-10:]}"


def _first_click(ctx: SlackContext, slack: Interaction, campaign_id: str) -> bool:
    """False for a click Slack sent again (the same action at the same `action_ts`):
    acted on once, whenever the repeat arrives. A second click of one's own is a new
    click; the service makes it do nothing (a campaign already in that state)."""
    actions = slack.body.get("actions") or [{}]
    action_ts = actions[0].get("action_ts")
    if not action_ts:
        return True
    key = f"campaign.click:{campaign_id}:{actions[0].get('action_id')}:{action_ts}"
    return ctx.slack_store.first_sighting(key)


async def _replace(slack: Interaction, shown: Message) -> None:
    if slack.respond is not None and slack.body.get("response_url"):
        await slack.respond(text=shown.text, blocks=shown.blocks, replace_original=True)


async def handle_campaign_send(ctx: SlackContext, slack: Interaction) -> None:
    """*Send*: the draft starts (once, however often it is clicked)."""
    service = _service(ctx)
    campaign = service.get(slack.value)
    if campaign is None:
        raise UserError(f"There is no campaign {quoted(slack.value)} here. Nothing was sent.")
    if campaign.requested_by != slack.user:
        raise UserError(
            f"Only <@{campaign.requested_by}>, who made this preview, can send it. "
            "Nothing was sent."
        )
    if refusal := ctx.refusal(slack.user, campaign.channel):
        raise UserError(refusal)
    await slack.ack()
    if campaign.status == CampaignStatus.DRAFT and _first_click(ctx, slack, campaign.id):
        try:
            campaign = service.confirm(campaign.id, slack.user)
        except NotPossible as exc:
            current = service.get(campaign.id)
            if current is None or current.status == CampaignStatus.DRAFT:
                raise UserError(f"Campaign `{campaign.id}` was not sent: {exc.reason}.") from None
            campaign = current  # a second click raced the first: it was sent, once
    elif (current := service.get(campaign.id)) is not None:
        campaign = current
    if campaign.status == CampaignStatus.DRAFT:
        return  # Slack's repeat of the click being acted on now: that one answers
    # Sent already (a double click, Slack's repeat): the same answer, nothing more.
    await _replace(slack, views.preview_sent(campaign))


async def handle_campaign_discard(ctx: SlackContext, slack: Interaction) -> None:
    service = _service(ctx)
    campaign = service.get(slack.value)
    await slack.ack()
    if campaign is None:
        return
    await _replace(slack, views.preview_discarded(campaign))


async def _control(ctx: SlackContext, slack: Interaction, what: str) -> None:
    service = _service(ctx)
    campaign = service.get(slack.value)
    if campaign is None:
        raise UserError(f"There is no campaign {quoted(slack.value)} here.")
    if refusal := ctx.refusal(slack.user, campaign.channel):
        raise UserError(refusal)
    await slack.ack()
    if not _first_click(ctx, slack, campaign.id):
        return  # Slack sent this click again: acted on once
    # A campaign already paused (resumed, cancelled) stays so: a double click does nothing.
    act = {"pause": service.pause, "resume": service.resume, "cancel": service.cancel}[what]
    try:
        act(campaign.id, slack.user)
    except NotPossible as exc:
        raise UserError(f"Campaign `{campaign.id}`: {exc.reason}.") from None


async def handle_campaign_pause(ctx: SlackContext, slack: Interaction) -> None:
    """*Pause*: no chunk is placed after this; those placed finish."""
    await _control(ctx, slack, "pause")


async def handle_campaign_resume(ctx: SlackContext, slack: Interaction) -> None:
    await _control(ctx, slack, "resume")


async def handle_campaign_cancel(ctx: SlackContext, slack: Interaction) -> None:
    """*Cancel*: nobody else is called; the calls already placed finish."""
    await _control(ctx, slack, "cancel")


async def handle_campaign_again(ctx: SlackContext, slack: Interaction) -> None:
    """*Call again*: a preview, in the clicker's DM, of the campaign for those who did
    not answer."""
    service = _service(ctx)
    campaign = service.get(slack.value)
    if campaign is None:
        raise UserError(f"There is no campaign {quoted(slack.value)} here.")
    if refusal := ctx.refusal(slack.user, campaign.channel):
        raise UserError(refusal)
    if campaign.finished_at is None:
        raise UserError(
            f"Campaign `{campaign.id}` is {campaign.status}; "
            "Call again is possible once it has ended."
        )
    await slack.ack()
    # One Call again per campaign however often (and by whomever) it is clicked: its id
    # follows from the campaign's, and only the first click stores the preview's job.
    again_id = again_campaign_id(campaign.id)
    made = service.get(again_id)
    with ctx.store.write():
        first = made is None and ctx.slack_store.first_sighting(f"campaign.again:{campaign.id}")
        if first:
            ctx.jobs.add(
                preview_job(
                    {
                        "campaign_id": again_id,
                        "again_of": campaign.id,
                        "user_id": slack.user,
                        "channel_id": campaign.channel,
                    }
                )
            )
    if first:
        said = "The preview of *Call again* (those who did not answer) comes to you in a DM."
    elif made is not None:
        said = (
            f"*Call again* of `{campaign.id}` is campaign `{made.id}` ({made.status}); its "
            f"preview went to <@{made.requested_by}> in a DM. Nothing more was made."
        )
    else:
        said = (
            f"*Call again* of `{campaign.id}` was asked for already: its preview (or why "
            "there is none) goes to whoever clicked first, in a DM. Nothing more was made."
        )
    if slack.respond is not None and slack.body.get("response_url"):
        await slack.respond(text=said, replace_original=False, response_type="ephemeral")
