"""The Slack side of a campaign, as jobs (run by the worker, never on the web's loop):

- `campaign.preview`: download the uploaded file from Slack (files.info's
  `url_private_download`, with the bot token), read it, store the draft and post
  its preview to the requester's DM, with every refused row as a CSV file there;
  also the preview of a *Call again*;
- `campaign.parent`: post or edit the campaign's one message in its channel, at
  most once every EDIT_EVERY seconds whichever worker runs it (a slot claimed in
  the database), so a burst of results becomes one edit;
- `campaign.end`: in the parent's thread, the summary, the outcome chart (PNG)
  and every recipient's result (CSV), each part recorded once Slack took it.

A 429 waits exactly Retry-After (the job is retried then, not sooner); a
refusal that no retry mends is logged and, for the preview, told to the requester.
When Slack refuses the parent in its channel for good (`not_in_channel`,
`channel_not_found`, `invalid_blocks`…), the parent, with its buttons, goes to the
requester's DM instead, saying why, and the end follows it there; the end waits at
most END_WAIT seconds for a parent before it goes to the DM too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.campaigns import Campaign, CampaignEvent, CampaignService, CampaignStatus
from bot.core.jobs import Job, Kind, NewJob, RetryLater
from bot.core.orders import InvalidOrder
from bot.core.requests import NotPossible
from bot.input.spreadsheets import MAX_BYTES, SheetError, read_sheet
from bot.slack import delivery, files
from bot.slack.blocks import Message
from bot.slack.campaigns import views
from bot.slack.campaigns.chart import outcome_chart
from bot.slack.context import SlackContext
from bot.slack.home.jobs import refresh_job
from bot.text import outside, outside_plain

log = logging.getLogger(__name__)

PREVIEW = "campaign.preview"
PARENT = "campaign.parent"
END = "campaign.end"
LANE = delivery.LANE
EDIT_EVERY = 5.0  # seconds between two edits of a campaign's parent, at least
END_WAIT = 120.0  # seconds the end waits for the parent to be posted, at most


def preview_job(payload: Mapping[str, Any]) -> NewJob:
    return NewJob(PREVIEW, dict(payload), lane=LANE, dedupe=f"{PREVIEW}:{payload['campaign_id']}")


def parent_job(campaign_id: str, at: float | None = None) -> NewJob:
    return NewJob(
        PARENT, {"campaign_id": campaign_id}, lane=LANE, dedupe=f"{PARENT}:{campaign_id}", run_at=at
    )


def end_job(campaign_id: str) -> NewJob:
    return NewJob(END, {"campaign_id": campaign_id}, lane=LANE, dedupe=f"{END}:{campaign_id}")


class CampaignNotifier:
    """The campaigns' listener: queues the parent's edit (coalesced, due no sooner than
    EDIT_EVERY after the last one), the end, and a Home refresh."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx

    def campaign_changed(self, campaign: Campaign, event: CampaignEvent) -> None:
        jobs = self.ctx.jobs
        if campaign.channel and campaign.status != CampaignStatus.DRAFT:
            jobs.add(parent_job(campaign.id, max(time.time(), campaign.shown_at + EDIT_EVERY)))
        if event == CampaignEvent.FINISHED and campaign.channel:
            jobs.add(end_job(campaign.id))
        if event != CampaignEvent.PROGRESS:
            jobs.add(refresh_job())


class CampaignJobs:
    """Runs the campaign Slack jobs with the client that leaves 429s to us."""

    def __init__(self, ctx: SlackContext, client: AsyncWebClient) -> None:
        self.ctx = ctx
        self.client = client

    @property
    def campaigns(self) -> CampaignService:
        assert self.ctx.campaigns is not None
        return self.ctx.campaigns

    def kinds(self) -> dict[str, Kind]:
        return {
            PREVIEW: Kind(self._slack(self.preview), LANE, max_attempts=8),
            PARENT: Kind(self._slack(self.parent), LANE),
            END: Kind(self._slack(self.end), LANE),
        }

    def _slack(self, run):
        """Slack's 429 → wait exactly Retry-After; a refusal no retry mends → logged."""

        async def handler(job: Job) -> None:
            try:
                await run(job)
            except SlackApiError as exc:
                status = exc.response.status_code
                error = str(exc.response.get("error") or f"HTTP {status}")
                if status == 429:
                    wait = delivery.retry_after(exc.response.headers)
                    raise RetryLater(wait, "Slack's rate limit") from None
                if error in delivery.PERMANENT or (400 <= status < 500 and status != 408):
                    log.warning("slack refused %s for %s: %s", job.kind, job.payload, error)
                    return
                raise ConnectionError(f"Slack answered HTTP {status} ({error})") from None

        return handler

    # ------------------------------------------------------------ the preview

    async def preview(self, job: Job) -> None:
        p = job.payload
        user = p["user_id"]
        try:
            if p.get("again_of"):
                campaign = self.campaigns.again(
                    p["again_of"], requested_by=user, new_id=p["campaign_id"]
                )
            else:
                campaign = await self._draft_from_file(p)
        except (SheetError, NotPossible, InvalidOrder) as exc:
            why = outside(str(exc), 1500)  # it quotes the file's name and cells
            await self._dm(user, f":warning: No campaign preview: {why}. Nothing was sent.")
            return
        store = self.ctx.store.campaigns
        posted = store.preview_posted(campaign.id)
        if posted >= 2:
            return  # a repeat of this job (Slack resent the submission): shown once already
        refused = views.refused_csv(campaign, store.refused(campaign.id))
        if posted < 1:
            shown = views.preview_message(campaign, sandbox=self.ctx.sandbox)
            # To the user's id: Slack posts it in their DM with the app and answers that
            # channel's id, where the file goes (no im:write scope needed).
            answer = await self.client.chat_postMessage(
                channel=user, text=shown.text, blocks=shown.blocks
            )
            dm, ts = answer.get("channel") or user, answer["ts"]
            store.set_preview_posted(campaign.id, 1 if refused is not None else 2, (dm, ts))
        else:
            dm, ts = store.preview_dm(campaign.id) or (user, None)
        if refused is not None:
            await self.client.files_upload_v2(
                channel=dm,
                thread_ts=ts,
                filename=refused.filename,
                title=refused.title,
                content=refused.content,
            )
            store.set_preview_posted(campaign.id, 2)

    async def _draft_from_file(self, p: Mapping[str, Any]) -> Campaign:
        existing = self.campaigns.get(p["campaign_id"])
        if existing is not None:  # this job ran before, and its worker died after the draft
            return existing
        workflow = self.ctx.workflows.find(p["workflow"])
        content, name = await self._download(p["file_id"], p.get("file_name") or "file")
        settings = self.ctx.settings
        sheet = await asyncio.to_thread(
            read_sheet,
            content,
            name,
            workflow.variables,
            default_region=settings.default_phone_region,
            allowed_types=settings.allowed_number_types,
        )
        at = datetime.fromisoformat(p["at"]) if p.get("at") else None
        return self.campaigns.draft(
            sheet,
            workflow=workflow.id,
            voice=p.get("voice"),
            requested_by=p["user_id"],
            channel=p.get("channel_id"),
            file_name=name,
            start_at=at,
            campaign_id=p["campaign_id"],
        )

    async def _download(self, file_id: str, name: str) -> tuple[bytes, str]:
        """The uploaded file's bytes, from Slack (`files:read`; bot/slack/files.py: the
        token only to Slack's hosts, at most MAX_BYTES read)."""
        try:
            got = await files.download(
                self.client,
                file_id,
                MAX_BYTES,
                api_url=self.ctx.settings.slack_api_url,
                name=name,
            )
        except files.DownloadRefused as refused:
            if refused.retry:
                raise ConnectionError(str(refused)) from None
            why = str(refused).rstrip(".")
            if refused.too_big:
                why += " (a campaign's file)"
            raise SheetError(why) from None
        return got.content, got.name

    async def _dm(self, user: str, text: str) -> None:
        await self.client.chat_postMessage(channel=user, text=text)

    # ------------------------------------------------------------ the parent

    async def parent(self, job: Job) -> None:
        campaign_id = job.payload["campaign_id"]
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or not campaign.channel:
            return
        store = self.ctx.store.campaigns
        if wait := store.take_edit_slot(campaign_id, EDIT_EVERY):
            raise RetryLater(wait, "at most one edit every few seconds")
        campaign = self.campaigns.get(campaign_id) or campaign  # as it is now
        shown = views.parent_message(
            campaign, self.campaigns.progress(campaign), sandbox=self.ctx.sandbox
        )
        moved = _moved(campaign)
        try:
            if moved is not None:
                await self._edit(moved[0], moved[1], shown)
                return
            if campaign.parent_ts:
                await self._edit(campaign.channel, campaign.parent_ts, shown)
                return
            answer = await self.client.chat_postMessage(
                channel=campaign.channel, text=shown.text, blocks=shown.blocks
            )
            store.set_parent(campaign_id, answer["ts"])
        except SlackApiError as exc:
            if moved is not None or not _refused_for_good(exc):
                raise
            error = str(exc.response.get("error") or exc.response.status_code)
            why = f"Slack refused it in <#{campaign.channel}> ({error})"
            await self._to_dm(campaign, shown, why)
        finally:
            store.edited(campaign_id)  # the next edit waits from when this one went out

    async def _edit(self, channel: str, ts: str, shown: Message) -> None:
        try:
            await self.client.chat_update(
                channel=channel, ts=ts, text=shown.text, blocks=shown.blocks
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "invalid_blocks":
                raise
            await self.client.chat_update(channel=channel, ts=ts, text=shown.text, blocks=[])

    async def _to_dm(self, campaign: Campaign, shown: Message, why: str) -> tuple[str, str]:
        """The parent, with its buttons, in the requester's DM (where it lives from now
        on), saying why it is not in the channel."""
        said = views.moved_note(campaign, why)
        blocks = [said.blocks[0], *shown.blocks]
        try:
            answer = await self.client.chat_postMessage(
                channel=campaign.requested_by, text=f"{said.text} {shown.text}", blocks=blocks
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "invalid_blocks":
                raise
            answer = await self.client.chat_postMessage(
                channel=campaign.requested_by, text=f"{said.text} {shown.text}"
            )
        where = (str(answer.get("channel") or campaign.requested_by), str(answer["ts"]))
        self.ctx.store.campaigns.move_parent(campaign.id, *where)
        log.warning("campaign %s: its parent moved to the requester's DM (%s)", campaign.id, why)
        return where

    # ------------------------------------------------------------ the end

    async def end(self, job: Job) -> None:
        campaign_id = job.payload["campaign_id"]
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or not campaign.channel:
            return
        progress = self.campaigns.progress(campaign)
        where = _moved(campaign) or (
            (campaign.channel, campaign.parent_ts) if campaign.parent_ts else None
        )
        if where is None:
            ended = datetime.fromisoformat(campaign.finished_at or campaign.updated_at)
            if time.time() - ended.timestamp() < END_WAIT:
                raise RetryLater(1.0, "the parent is not posted yet")
            shown = views.parent_message(campaign, progress, sandbox=self.ctx.sandbox)
            where = await self._to_dm(
                campaign, shown, f"its message in <#{campaign.channel}> could not be posted"
            )
        try:
            await self._post_end(campaign, progress, *where)
        except SlackApiError as exc:
            if _moved(campaign) is not None or not _refused_for_good(exc):
                raise
            error = str(exc.response.get("error") or exc.response.status_code)
            shown = views.parent_message(campaign, progress, sandbox=self.ctx.sandbox)
            why = f"Slack refused its end in <#{campaign.channel}> ({error})"
            await self._to_dm(campaign, shown, why)
            raise RetryLater(0.1, "the end goes to the requester's DM") from None

    async def _post_end(self, campaign: Campaign, progress: Any, channel: str, ts: str) -> None:
        store = self.ctx.store.campaigns
        campaign_id = campaign.id
        workflow = self.ctx.store.workflows.get(campaign.workflow_id)
        results = self.campaigns.results(campaign_id)
        if campaign.end_posted < 1:
            refused = [(r["line"], r["why"]) for r in results if r.get("why")]
            summary = views.summary_message(campaign, progress, workflow, refused)
            await self.client.chat_postMessage(
                channel=channel, thread_ts=ts, text=summary.text, blocks=summary.blocks
            )
            store.end_posted(campaign_id, 1)
        if campaign.end_posted < 2:
            bars = chart_bars(progress, workflow)
            png = outcome_chart(
                f"Campaign {campaign.id}: {campaign.workflow_name}", bars, progress.total
            )
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                filename=f"{campaign.id}-outcomes.png",
                title=f"Outcomes of campaign {campaign.id}",
                content=png,
            )
            store.end_posted(campaign_id, 2)
        if campaign.end_posted < 3:
            variables = list(campaign.preview.get("variables") or [])
            csv_file = views.results_csv(campaign, results, variables)
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                filename=csv_file.filename,
                title=csv_file.title,
                content=csv_file.content,
            )
            store.end_posted(campaign_id, 3)


def _refused_for_good(exc: SlackApiError) -> bool:
    """A refusal no retry mends (as `CampaignJobs._slack` reads it): not a 429 or 5xx."""
    status = exc.response.status_code
    error = str(exc.response.get("error") or "")
    if status == 429 or error == "ratelimited":
        return False
    return error in delivery.PERMANENT or (400 <= status < 500 and status != 408)


def _moved(campaign: Campaign) -> tuple[str, str] | None:
    """Where the parent lives when Slack refused it in the channel: the requester's DM."""
    moved = campaign.preview.get("moved")
    return (str(moved[0]), str(moved[1])) if moved else None


def chart_bars(progress: Any, workflow: Any) -> list[tuple[str, int]]:
    """The chart's bars: answered, no answer, busy, failed (always), the other outcomes
    there were, then each key pressed with its meaning."""
    words: dict[str, int] = {"answered": 0, "no answer": 0, "busy": 0, "failed": 0}
    for outcome, n in progress.outcomes.items():
        word = views.OUTCOME_WORDS.get(outcome, outcome)
        if word in ("failed", "rejected"):
            word = "failed"
        words[word] = words.get(word, 0) + n
    bars = [
        (word, n)
        for word, n in words.items()
        if n or word in ("answered", "no answer", "busy", "failed")
    ]
    for key, n in sorted(progress.keys.items()):
        label = workflow.label(key) if workflow else "no label"
        bars.append((f"pressed {outside_plain(key, 4)} ({outside_plain(label, 14)})", n))
    return bars
