"""Decides what Slack must show about a request, and queues it as jobs.

A `Listener` of the core: called inside the transaction that changed the
request, it only writes jobs (`bot/slack/delivery.py` delivers and renders
them), so the change and its Slack work are kept, or lost, together. Results
are queued once (a flag set in the same transaction).
"""

from __future__ import annotations

from dataclasses import replace

from bot import logsafety
from bot.core.events import Event
from bot.core.jobs import NewJob
from bot.core.models import RequestRecord, RequestStatus
from bot.slack.calls import views
from bot.slack.context import SlackContext
from bot.slack.delivery import post_job
from bot.slack.home.jobs import refresh_job
from bot.store.slack import SlackMessage


class RequestNotifier:
    """Queues the parent message, its edits and thread replies, and a Home refresh."""

    def __init__(self, ctx: SlackContext) -> None:
        self.ctx = ctx

    def request_changed(self, record: RequestRecord, event: Event) -> None:
        jobs = self.ctx.jobs
        if record.channel:  # the record as the change left it: no need to read it again
            for job in self._channel_jobs(record, event, record.channel):
                jobs.add(job)
        if event == Event.KEY_REFUSED:
            for job in self._admin_jobs(record):
                jobs.add(job)
        jobs.add(refresh_job())

    def _admin_jobs(self, record: RequestRecord) -> list[NewJob]:
        """A DM to each admin (ADMIN_USER_IDS) naming the setting to check; the channel
        is only told that the admins know. One per admin however many parts fail."""
        capabilities = self.ctx.provider(record.provider).capabilities
        where = f" in <#{record.channel}>" if record.channel else ""
        text = (
            f":warning: {capabilities.label} refused our API key, so request `{record.id}` "
            f"({record.recipient_count} recipients, asked by <@{record.requested_by}>{where}) "
            f"was not placed: nobody was called. Check `{capabilities.key_setting}`, restart "
            "the app, then send the request again."
        )
        whole = record.part_of or record.id
        return [
            replace(
                post_job(record.id, admin, "dm", views.Message(text=text, blocks=[])),
                dedupe=f"slack.key_refused:{whole}:{admin}",
            )
            for admin in self.ctx.settings.admin_user_ids
        ]

    def _channel_jobs(self, record: RequestRecord, event: Event, channel: str) -> list:
        store = self.ctx.slack_store
        first = store.add_message(SlackMessage(request_id=record.id, channel=channel))
        jobs = [post_job(record.id, channel, "parent" if first else "edit")]
        if event in (Event.FAILED, Event.KEY_REFUSED, Event.UNKNOWN):
            secrets = logsafety.secrets_in(self.ctx.settings)
            reply = views.failure_reply(record, secrets)
            jobs.append(post_job(record.id, channel, "reply", reply))
        if event == Event.LATE:
            jobs.append(post_job(record.id, channel, "reply", views.late_reply(record)))
        if event == Event.CANCELLED:
            jobs.append(post_job(record.id, channel, "reply", views.cancelled_reply(record)))
        if event == Event.FOUND:
            provider = self.ctx.provider(record.provider).capabilities.label
            jobs.append(post_job(record.id, channel, "reply", views.found_reply(record, provider)))
        if record.status == RequestStatus.COMPLETED and store.mark_results_queued(record.id):
            # Rendered when delivered, not here: this runs inside the transaction that
            # completed the request, and the database stays locked while it runs.
            jobs.append(post_job(record.id, channel, "results"))
        return jobs

    async def catch_up(self, job: object = None) -> None:
        """The `slack.catch_up` job: queue what the first release's crash windows kept
        from being queued (a database upgraded from it runs this once)."""
        with self.ctx.store.write():
            for record in self.ctx.slack_store.requests_missing():
                event = (
                    Event.COMPLETED if record.status == RequestStatus.COMPLETED else Event.PLACED
                )
                self.request_changed(record, event)
