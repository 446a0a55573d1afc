"""Shows each request in Slack: the parent message, its edits, and thread replies.

The parent message is always rendered from the request's *current* state, and
work for one request is serialised, so edits that race (placed vs. completed)
still end on the latest state. Results are posted once: a flag in the store
records that they were.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.service import Event
from bot.slack import views
from bot.store import RequestRecord, RequestStatus, SlackMessage, Store

log = logging.getLogger(__name__)

# Slack errors meaning "the bot cannot post in that channel".
CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}


class SlackNotifier:
    """An `Observer` of the core service that speaks Slack."""

    def __init__(self, client: AsyncWebClient, store: Store, *, sandbox: bool) -> None:
        self.client = client
        self.store = store
        self.sandbox = sandbox
        self._locks: dict[str, asyncio.Lock] = {}

    async def request_changed(self, record: RequestRecord, event: Event) -> None:
        lock = self._locks.setdefault(record.id, asyncio.Lock())
        async with lock:
            latest = self.store.request(record.id) or record
            message = self.store.slack_message(latest.id)
            if message is None or message.ts is None:
                message = await self._post_parent(latest)
            else:
                await self._update_parent(latest, message)
            if message is None:
                return
            if event in (Event.FAILED, Event.UNKNOWN):
                await self._reply(message, views.failure_reply(latest))
            if latest.status == RequestStatus.COMPLETED and not message.results_posted:
                await self._post_results(latest, message)
        if latest.status in (RequestStatus.COMPLETED, RequestStatus.FAILED):
            self._locks.pop(record.id, None)

    async def _post_parent(self, record: RequestRecord) -> SlackMessage | None:
        if not record.channel:
            return None
        rendered = views.request_message(
            record, self.store.workflow(record.workflow_id), self.sandbox
        )
        try:
            answer = await self.client.chat_postMessage(
                channel=record.channel, text=rendered.text, blocks=rendered.blocks
            )
        except SlackApiError as exc:
            if exc.response.get("error") not in CANNOT_POST:
                raise
            await self._tell_requester(record, exc.response.get("error", ""))
            return None
        message = SlackMessage(request_id=record.id, channel=answer["channel"], ts=answer["ts"])
        self.store.save_slack_message(message)
        return message

    async def _update_parent(self, record: RequestRecord, message: SlackMessage) -> None:
        rendered = views.request_message(
            record, self.store.workflow(record.workflow_id), self.sandbox
        )
        await self.client.chat_update(
            channel=message.channel, ts=message.ts, text=rendered.text, blocks=rendered.blocks
        )

    async def _post_results(self, record: RequestRecord, message: SlackMessage) -> None:
        workflow = self.store.workflow(record.workflow_id)
        for part in views.results_messages(record, self.store.calls(record.id), workflow):
            await self._reply(message, part)
        self.store.save_slack_message(message.model_copy(update={"results_posted": True}))

    async def _reply(self, message: SlackMessage, part: views.Message) -> None:
        await self.client.chat_postMessage(
            channel=message.channel, thread_ts=message.ts, text=part.text, blocks=part.blocks
        )

    async def _tell_requester(self, record: RequestRecord, error: str) -> None:
        """The channel is closed to the bot: say so to the requester directly."""
        log.warning("cannot post request %s in %s: %s", record.id, record.channel, error)
        text = (
            f"I could not post request `{record.id}` in <#{record.channel}> ({error}); "
            "invite me there with `/invite @Robocall`. The request itself goes ahead: "
            f"follow it with `/robocall status {record.id}`."
        )
        await self.client.chat_postMessage(channel=record.requested_by, text=text)
