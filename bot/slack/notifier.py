"""Decides what Slack must show about a request, and queues it in the outbox.

Nothing here talks to Slack: each change is written to the store first
(`bot/slack/outbox.py` delivers it), so a restart or a Slack outage loses
nothing. The parent message is rendered when it is delivered, from the
request's state at that moment, so edits coalesce: a burst of changes becomes
one edit showing the latest. Results are queued once (a flag set in the same
transaction).
"""

from __future__ import annotations

from bot.service import Event
from bot.slack import views
from bot.slack.outbox import SlackOutbox
from bot.store import OutboxItem, RequestRecord, RequestStatus, SlackMessage, Store


class SlackNotifier:
    """An `Observer` of the core service that queues Slack work."""

    def __init__(self, store: Store, outbox: SlackOutbox) -> None:
        self.store = store
        self.outbox = outbox

    async def request_changed(self, record: RequestRecord, event: Event) -> None:
        latest = self.store.request(record.id) or record
        if not latest.channel:
            return
        message = self.store.slack_message(latest.id)
        items: list[OutboxItem] = []
        if message is None:
            message = SlackMessage(request_id=latest.id, channel=latest.channel)
            self.store.add_slack_message(message)
            items.append(self._item(latest, "parent"))
        elif not self.outbox.edit_pending(latest.id):
            items.append(self._item(latest, "edit"))
        if event in (Event.FAILED, Event.UNKNOWN):
            items.append(self._item(latest, "reply", views.failure_reply(latest)))
        if event == Event.FOUND:
            items.append(self._item(latest, "reply", views.found_reply(latest)))
        results_for = None
        if latest.status == RequestStatus.COMPLETED and not message.results_queued:
            workflow = self.store.workflow(latest.workflow_id)
            calls = self.store.calls(latest.id, limit=views.MAX_CALL_LINES)
            items += [
                self._item(latest, "reply", part)
                for part in views.results_messages(latest, calls, workflow)
            ]
            results_for = latest.id
        self.store.enqueue(items, results_for=results_for)
        self.outbox.kick()

    async def catch_up(self) -> None:
        """After a restart: queue what a crash kept from being queued."""
        for record in self.store.requests_missing_from_slack():
            event = Event.COMPLETED if record.status == RequestStatus.COMPLETED else Event.PLACED
            await self.request_changed(record, event)

    @staticmethod
    def _item(record: RequestRecord, kind: str, message: views.Message | None = None) -> OutboxItem:
        assert record.channel is not None
        return OutboxItem(
            request_id=record.id,
            channel=record.channel,
            kind=kind,
            payload=message.model_dump() if message else None,
        )
