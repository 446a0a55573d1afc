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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.campaigns import Campaign, CampaignEvent, CampaignService, CampaignStatus
from bot.core.jobs import Job, Kind, NewJob, RetryLater
from bot.core.orders import InvalidOrder
from bot.core.requests import NotPossible
from bot.input.spreadsheets import MAX_BYTES, SheetError, read_sheet
from bot.slack import delivery
from bot.slack.campaigns import views
from bot.slack.campaigns.chart import outcome_chart
from bot.slack.context import SlackContext
from bot.slack.home.jobs import refresh_job
from bot.text import outside, outside_plain, quoted

log = logging.getLogger(__name__)

PREVIEW = "campaign.preview"
PARENT = "campaign.parent"
END = "campaign.end"
LANE = delivery.LANE
EDIT_EVERY = 5.0  # seconds between two edits of a campaign's parent, at least
DOWNLOAD_TIMEOUT = 60.0


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
        """The uploaded file's bytes, from Slack (`files:read`)."""
        info = (await self.client.files_info(file=file_id)).get("file") or {}
        name = info.get("name") or name
        size = int(info.get("size") or 0)
        if size > MAX_BYTES:
            raise SheetError(
                f"the file {quoted(name)} is {size / 1e6:.1f} MB; a campaign's file may be at "
                f"most {MAX_BYTES // (1024 * 1024)} MB"
            )
        url = info.get("url_private_download") or info.get("url_private")
        if not url:
            raise SheetError(f"Slack gave no download address for {quoted(name)}; upload it again")
        token = self.ctx.settings.slack_bot_token
        headers = {"Authorization": f"Bearer {token.get_secret_value() if token else ''}"}
        async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as http:
            answer = await http.get(url, headers=headers)
        if answer.status_code == 429 or answer.status_code >= 500:
            raise ConnectionError(f"Slack's file download answered HTTP {answer.status_code}")
        if answer.status_code != 200 or answer.headers.get("content-type", "").startswith(
            "text/html"
        ):  # Slack answers a login page when the token may not read the file
            raise SheetError(
                f"the file {quoted(name)} could not be read from Slack (HTTP "
                f"{answer.status_code}); the app needs the files:read scope"
            )
        return answer.content, name

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
        try:
            if campaign.parent_ts:
                await self.client.chat_update(
                    channel=campaign.channel,
                    ts=campaign.parent_ts,
                    text=shown.text,
                    blocks=shown.blocks,
                )
                return
            answer = await self.client.chat_postMessage(
                channel=campaign.channel, text=shown.text, blocks=shown.blocks
            )
            store.set_parent(campaign_id, answer["ts"])
        finally:
            store.edited(campaign_id)  # the next edit waits from when this one went out

    # ------------------------------------------------------------ the end

    async def end(self, job: Job) -> None:
        campaign_id = job.payload["campaign_id"]
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or not campaign.channel:
            return
        if not campaign.parent_ts:
            raise RetryLater(1.0, "the parent is not posted yet")
        store = self.ctx.store.campaigns
        channel, ts = campaign.channel, campaign.parent_ts
        progress = self.campaigns.progress(campaign)
        workflow = self.ctx.store.workflows.get(campaign.workflow_id)
        if campaign.end_posted < 1:
            summary = views.summary_message(campaign, progress, workflow)
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
            csv_file = views.results_csv(campaign, self.campaigns.results(campaign_id), variables)
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                filename=csv_file.filename,
                title=csv_file.title,
                content=csv_file.content,
            )
            store.end_posted(campaign_id, 3)


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
