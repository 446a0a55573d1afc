"""A recording uploaded in the workflow modal (Slack's file input), fetched and kept by
the worker, then the workflow saved with its address.

The web process only reads the file's id from the submitted view, stores this job
and acknowledges ("Saving…"). Here: `files.info` says where the file is and how big
Slack says it is; its bytes are fetched from `url_private_download` with the bot
token (sent to Slack's own hosts only), at most `AUDIO_MAX_BYTES` of them, streamed
(`bot/slack/files.py`, shared with the campaigns' spreadsheets); the
content must be mp3 or wav (`bot/store/audio.py`, whatever the file's name says).
A refused file changes nothing: the modal and a DM say why, naming the type or the
size. A kept file gets an unguessable address, `PUBLIC_URL/audio/<name>`, which
becomes the workflow's audio URL, and the workflow is saved as the modal's Save
does (`WorkflowJobs.save`). The address is never logged.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.jobs import Job, Kind, NewJob
from bot.providers.base import WorkflowDraft
from bot.slack import files
from bot.slack.blocks import done_modal
from bot.slack.calls.views import NAME
from bot.slack.context import SlackContext
from bot.slack.workflows import jobs
from bot.slack.workflows import views as wv
from bot.store.audio import AudioStore, describe, kind_of
from bot.text import outside

log = logging.getLogger(__name__)

FETCH = "slack.workflow.audio"
LANE = jobs.LANE
DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Stands in for the uploaded file's address while the rest of the modal is checked
# (`read_app_form`); the job puts the real one in its place.
PENDING_AUDIO_URL = "https://upload.invalid/pending.mp3"


class Refused(Exception):
    """Why an uploaded file is not kept, in words for its uploader (mrkdwn)."""


def fetch_job(body: dict, form: wv.WorkflowForm, draft: WorkflowDraft, file_id: str) -> NewJob:
    """Fetch the uploaded file `file_id`, then save `draft` with its address."""
    save = jobs.save_job(body, form, draft)
    return NewJob(FETCH, {**save.payload, "file_id": file_id}, lane=LANE)


class AudioJobs:
    """Runs the upload jobs with the interactive Slack client (the bot token)."""

    def __init__(self, ctx: SlackContext, client: AsyncWebClient) -> None:
        self.ctx = ctx
        self.client = client

    def kinds(self) -> dict[str, Kind]:
        # One attempt: the save at its end may not be made twice (see WorkflowJobs).
        return {FETCH: Kind(self.fetch, LANE, max_attempts=1)}

    async def fetch(self, job: Job) -> None:
        payload = job.payload
        saver = jobs.WorkflowJobs(self.ctx, self.client)
        save_payload = {k: v for k, v in payload.items() if k != "file_id"}
        if job.attempts > 1:  # the worker died: the save may have been made; it says so
            await saver.save(job.model_copy(update={"payload": save_payload}))
            return
        draft = WorkflowDraft.model_validate(payload["draft"])
        cap = self.ctx.settings.audio_max_bytes
        try:
            content, name = await self._download(str(payload["file_id"]), cap)
            kind = kind_of(content)
            if kind is None:
                raise Refused(
                    f"*{outside(name, NAME)}* is not an mp3 or wav file: its content is "
                    f"{describe(content)}. Upload the recording as .mp3 or .wav."
                )
        except Refused as refused:
            await self._refuse(payload, draft, str(refused))
            return
        stored = AudioStore.beside(self.ctx.settings.database_path).save(content, kind)
        url = f"{self.ctx.settings.public_url.rstrip('/')}/audio/{stored}"
        user = payload["source"]["user"]
        self.ctx.store.audit.record(
            user or "slack",
            "workflow.audio_uploaded",
            draft.name,
            {"kind": kind, "bytes": len(content)},  # never the address: it is the key
        )
        log.info("kept an uploaded %s recording (%d bytes) for a workflow", kind, len(content))
        save_payload["draft"] = draft.model_copy(update={"audio_url": url}).model_dump()
        await saver.save(job.model_copy(update={"payload": save_payload}))

    async def _download(self, file_id: str, cap: int) -> tuple[bytes, str]:
        """The file's bytes and its name, or Refused saying why not (bot/slack/files.py)."""
        try:
            got = await files.download(
                self.client,
                file_id,
                cap,
                api_url=self.ctx.settings.slack_api_url,
                http_timeout=DOWNLOAD_TIMEOUT,
            )
        except files.DownloadRefused as refused:
            why = str(refused)
            if refused.too_big:
                why += (
                    " (AUDIO_MAX_BYTES). Upload a shorter recording, or an mp3 of a lower bitrate."
                )
            raise Refused(why) from None
        return got.content, got.name

    async def _refuse(self, payload: dict[str, Any], draft: WorkflowDraft, why: str) -> None:
        """Tell the uploader, in the modal and by DM, why nothing was saved."""
        text = (
            f":x: *{outside(draft.name, NAME)}* was not saved: {why} "
            "Nothing was changed; open the workflow again to try another file."
        )
        try:
            await self.client.views_update(
                view_id=payload["view_id"], view=done_modal("Not saved", text, self.ctx.sandbox)
            )
        except SlackApiError as exc:  # closed meanwhile: the DM still tells them
            if exc.response.get("error") not in ("not_found", "view_not_found"):
                raise
        user = payload["source"].get("user")
        if user:
            await self.client.chat_postMessage(channel=user, text=text)
