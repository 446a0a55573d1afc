"""Delivers Slack messages as jobs: per channel, in order, patiently.

Slack allows about one message per second per channel, in short bursts, and
says how long to wait (429 + Retry-After) beyond that. Every message is a
`slack.post` job in its channel's queue, so a channel's messages go out one at
a time in the order they were queued (a thread's parent before its edits and
replies); after a 429 the job waits exactly as long as Slack asks (not longer,
as slack_sdk's handler would with its jitter, and never retrying early); a 5xx
or a dropped connection backs off with the project's retry policy. A job is
finished only after Slack accepted the message; what is pending at a restart
is delivered then.

The parent message is rendered when it is delivered, from the request's state
at that moment, so edits coalesce: a burst of changes becomes one edit showing
the latest (the `dedupe` key of a parent or edit job).

The results are one reply in the thread; a request with more calls than the reply
lists (`views.INLINE_CALLS`) also gets them as a CSV file there (files_upload_v2,
scope `files:write`), counted as the results' last part so it is shared once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.jobs import Job, NewJob, RetryLater
from bot.slack.calls import views
from bot.slack.context import SlackContext
from bot.text import outside

log = logging.getLogger(__name__)

POST = "slack.post"
LANE = "slack"

# Slack errors that no retry will mend.
PERMANENT = {
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "restricted_action",
    "msg_too_long",
    "invalid_blocks",
    "invalid_arguments",
    "message_not_found",
    "cant_update_message",
    "no_text",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "missing_scope",
    "user_not_found",
    "cannot_dm_bot",
}
CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
# Slack errors that say "try again later" even in an answer of HTTP 200.
TRANSIENT = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}


def post_job(
    request_id: str, channel: str, what: str, message: views.Message | None = None
) -> NewJob:
    """A message for a request's channel: its parent (`parent`, `edit`), a `reply` in
    its thread or its `results` there (rendered when sent), or a `dm` to a person (then
    `channel` is their user id)."""
    return NewJob(
        POST,
        {
            "request_id": request_id,
            "channel": channel,
            "what": what,
            "message": message.model_dump() if message else None,
        },
        lane=LANE,
        queue=f"slack:{channel}",
        dedupe=f"slack.edit:{request_id}" if what in ("parent", "edit") else None,
    )


class Delivery:
    """Runs `slack.post` jobs with the client that leaves 429s to us."""

    def __init__(self, ctx: SlackContext, client: AsyncWebClient) -> None:
        self.ctx = ctx
        self.client = client

    async def run(self, job: Job) -> None:
        payload = job.payload
        try:
            problem = await self._deliver(payload)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            status = exc.response.status_code
            if status == 429:
                wait = retry_after(exc.response.headers)
                log.info("slack asks to wait %.1fs before posting in %s", wait, payload["channel"])
                raise RetryLater(wait, "Slack's rate limit") from None
            if error in PERMANENT or (400 <= status < 500 and status != 408):
                self._give_up(payload, error or f"HTTP {status}")
                return
            # 5xx: Slack is having trouble; back off and try again until it is over.
            raise ConnectionError(f"Slack answered HTTP {status} ({error or 'no error'})") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionError(f"Slack unreachable ({type(exc).__name__})") from None
        if problem:
            self._give_up(payload, problem)

    async def _deliver(self, payload: Mapping[str, Any]) -> str | None:
        """Send one message; return why it can never be sent, or None once it was."""
        what, channel = payload["what"], payload["channel"]
        content = {k: v for k, v in (payload["message"] or {}).items() if v}
        if what == "dm":
            await self.client.chat_postMessage(channel=channel, **content)
            return None
        store = self.ctx.slack_store
        record = self.ctx.service.requests.get(payload["request_id"])
        shown = store.message(payload["request_id"])
        if record is None or shown is None:
            return "unknown request"
        if what in ("parent", "edit"):
            rendered = self._parent(record)
            if shown.ts is None:
                if what == "edit":
                    return "the parent message was never posted"
                answer = await self.client.chat_postMessage(
                    channel=channel, text=rendered.text, blocks=rendered.blocks
                )
                store.set_ts(record.id, answer["ts"])
            else:  # posted already (this job ran before and its worker died): edit it
                await self.client.chat_update(
                    channel=channel, ts=shown.ts, text=rendered.text, blocks=rendered.blocks
                )
            return None
        if shown.ts is None:
            return "the parent message was never posted"
        if what == "results":
            await self._results(record, channel, shown.ts)
            return None
        await self.client.chat_postMessage(channel=channel, thread_ts=shown.ts, **content)
        return None

    async def _results(self, record: Any, channel: str, ts: str) -> None:
        """The results, rendered from the calls as stored: the summary reply, then, for a
        request too large to list its calls in the thread, the calls as a CSV file. Each
        part is recorded once Slack took it (the CSV is the last part), so a retry after
        a failure part way goes on from the first part not yet in the thread."""
        requests = self.ctx.service.requests
        workflow = self.ctx.store.workflows.get(record.workflow_id or "")
        store = self.ctx.slack_store
        posted = store.results_posted(record.id)
        listed = views.lists_calls(record)  # else every call goes into the CSV
        calls = requests.calls(record.id, limit=views.INLINE_CALLS if listed else None)
        parts = views.results_messages(record, calls, workflow, requests.stats(record.id))
        for index in range(posted, len(parts)):
            part = parts[index]
            await self.client.chat_postMessage(
                channel=channel, thread_ts=ts, text=part.text, blocks=part.blocks
            )
            store.result_posted(record.id, index + 1)
        csv_file = views.results_csv(record, calls, workflow)
        if csv_file is not None and posted <= len(parts):
            await self._upload(csv_file, channel, ts)
            store.result_posted(record.id, len(parts) + 1)

    async def _upload(self, csv_file: views.CsvFile, channel: str, ts: str) -> None:
        """The CSV into the thread (`files:write`). If Slack refuses it for good (no
        scope, the bot not in the channel), the thread says so instead: the job must
        not be retried for ever, and the summary promised a file."""
        try:
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                filename=csv_file.filename,
                title=csv_file.title,
                content=csv_file.content,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"HTTP {status}")
            if status == 429 or status >= 500:
                raise  # waited out (429) or retried (5xx) as any message
            if error in TRANSIENT:
                raise ConnectionError(f"Slack could not take the file ({error})") from None
            log.warning("slack refused the calls' CSV in %s: %s", channel, error)
            refusal = views.csv_failed_reply(error)
            await self.client.chat_postMessage(
                channel=channel, thread_ts=ts, text=refusal.text, blocks=refusal.blocks
            )
        except SlackRequestError as exc:  # the upload URL answered other than 200
            raise ConnectionError(f"Slack's file upload failed ({type(exc).__name__})") from None

    def _parent(self, record: Any) -> views.Message:
        ctx = self.ctx
        workflow = ctx.store.workflows.get(record.workflow_id) if record.workflow_id else None
        return views.request_message(
            record,
            workflow,
            ctx.service.requests.stats(record.id),
            voice=ctx.voice_label(record.provider, record.voice),
            provider=_label(ctx, record.provider),
            sandbox=ctx.sandbox,
            waiting=ctx.store.consent.waits([record.id]).get(record.id),  # calling hours
        )

    def _give_up(self, payload: Mapping[str, Any], error: str) -> None:
        log.warning("slack refused %s for %s: %s", payload["what"], payload["request_id"], error)
        if payload["what"] == "parent" and error in CANNOT_POST:
            self._tell_requester(payload, error)

    def _tell_requester(self, payload: Mapping[str, Any], error: str) -> None:
        """The channel is closed to the bot: say so to the requester directly."""
        record = self.ctx.service.requests.get(payload["request_id"])
        if record is None:
            return
        text = (
            f"I could not post request `{record.id}` in <#{payload['channel']}> "
            f"({outside(error, 100)}); "
            "invite me there with `/invite @Robocall`. The request itself goes ahead: "
            f"follow it with `/robocall status {record.id}`."
        )
        self.ctx.jobs.add(
            post_job(record.id, record.requested_by, "dm", views.Message(text=text, blocks=[]))
        )


def _label(ctx: SlackContext, provider_id: str) -> str:
    providers = ctx.service.providers
    return (
        providers.get(provider_id).capabilities.label if provider_id in providers else provider_id
    )


def retry_after(headers: Mapping[str, str]) -> float:
    """Slack's Retry-After in seconds (1 if it is missing or unreadable); for every
    job that talks to Slack with the client that leaves 429s to its caller."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0
