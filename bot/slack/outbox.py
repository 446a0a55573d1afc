"""Delivers queued Slack work: per channel, in order, patiently.

Slack allows about one message per second per channel, in short bursts, and
says how long to wait (429 + Retry-After) beyond that. So each channel gets one
worker that sends its items in the order they were queued (a thread's parent
before its edits and replies), waits exactly as long as Slack asks after a 429
(not longer, as slack_sdk's handler would with its jitter, and never retrying
early), and backs off on 5xx and connection errors. An item is marked delivered
only after Slack accepted it; what is pending at a restart is delivered then.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import views
from bot.store import OutboxItem, RequestRecord, SlackMessage, Store

log = logging.getLogger(__name__)

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
MAX_BACKOFF = 60.0


class SlackOutbox:
    """One delivery worker per channel with pending work."""

    def __init__(self, client: AsyncWebClient, store: Store, *, sandbox: bool) -> None:
        self.client = client
        self.store = store
        self.sandbox = sandbox
        self._workers: dict[str, asyncio.Task] = {}
        self._in_flight: dict[str, int] = {}  # request id → parent/edit being delivered
        self._closed = False

    def kick(self) -> None:
        """Make sure every channel with pending work has a worker."""
        if self._closed:
            return
        for channel in self.store.pending_channels():
            worker = self._workers.get(channel)
            if worker is None or worker.done():
                self._workers[channel] = asyncio.create_task(
                    self._drain(channel), name=f"slack outbox {channel}"
                )

    def edit_pending(self, request_id: str) -> bool:
        """True when an edit not yet started is queued: a new one would add nothing."""
        return self.store.has_pending(
            request_id, ["parent", "edit"], after_id=self._in_flight.get(request_id, 0)
        )

    async def idle(self) -> None:
        """Wait until nothing is pending (or being sent)."""
        while any(not w.done() for w in self._workers.values()):
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def _drain(self, channel: str) -> None:
        while items := self.store.pending_outbox(channel, limit=50):
            for item in items:
                await self._deliver_patiently(item)

    async def _deliver_patiently(self, item: OutboxItem) -> None:
        backoff = 1.0
        while True:
            try:
                problem = await self._deliver(item)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                status = exc.response.status_code
                if status == 429:
                    wait = _retry_after(exc.response.headers)
                    log.info("slack asks to wait %.1fs before posting in %s", wait, item.channel)
                    await asyncio.sleep(wait)
                    continue
                if error in PERMANENT or (400 <= status < 500 and status != 408):
                    self._give_up(item, error or f"HTTP {status}")
                    return
                log.warning(
                    "slack %s for %s; retrying in %.0fs", error or status, item.kind, backoff
                )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning(
                    "slack unreachable (%s); retrying in %.0fs", type(exc).__name__, backoff
                )
            else:
                if problem:
                    self._give_up(item, problem)
                else:
                    self.store.outbox_done(item.id)
                return
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _deliver(self, item: OutboxItem) -> str | None:
        """Send one item; return why it can never be sent, or None once it was."""
        if item.kind == "dm":
            assert item.payload is not None
            await self.client.chat_postMessage(channel=item.channel, **item.payload)
            return None
        record = self.store.request(item.request_id)
        message = self.store.slack_message(item.request_id)
        if record is None or message is None:
            return "unknown request"
        if item.kind in ("parent", "edit"):
            if item.kind == "edit" and message.ts is None:
                return "the parent message was never posted"
            # From here the parent shows the state read now: a change from now on
            # needs an edit of its own, so this item no longer counts as pending.
            self._in_flight[item.request_id] = item.id
            try:
                await self._show_parent(item, record, message)
            finally:
                self._in_flight.pop(item.request_id, None)
            return None
        if message.ts is None:
            return "the parent message was never posted"
        assert item.payload is not None
        await self.client.chat_postMessage(
            channel=item.channel, thread_ts=message.ts, **item.payload
        )
        return None

    async def _show_parent(
        self, item: OutboxItem, record: RequestRecord, message: SlackMessage
    ) -> None:
        """Post the parent message, or edit it, rendered from the request as it is now."""
        rendered = views.request_message(
            record, self.store.workflow(record.workflow_id), self.sandbox
        )
        if item.kind == "parent":
            answer = await self.client.chat_postMessage(
                channel=item.channel, text=rendered.text, blocks=rendered.blocks
            )
            self.store.set_slack_ts(item.request_id, answer["ts"])
        else:
            await self.client.chat_update(
                channel=item.channel, ts=message.ts, text=rendered.text, blocks=rendered.blocks
            )

    def _give_up(self, item: OutboxItem, error: str) -> None:
        log.warning("slack refused %s for %s: %s", item.kind, item.request_id, error)
        self.store.outbox_done(item.id, failed=error)
        if item.kind == "parent" and error in CANNOT_POST:
            self._tell_requester(item, error)

    def _tell_requester(self, item: OutboxItem, error: str) -> None:
        """The channel is closed to the bot: say so to the requester directly."""
        record = self.store.request(item.request_id)
        if record is None:
            return
        text = (
            f"I could not post request `{record.id}` in <#{item.channel}> ({error}); "
            "invite me there with `/invite @Robocall`. The request itself goes ahead: "
            f"follow it with `/robocall status {record.id}`."
        )
        self.store.enqueue(
            [
                OutboxItem(
                    request_id=record.id,
                    channel=record.requested_by,
                    kind="dm",
                    payload={"text": text},
                )
            ]
        )
        self.kick()


def _retry_after(headers: Mapping[str, str]) -> float:
    """Slack's Retry-After in seconds (1 if it is missing or unreadable)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0
