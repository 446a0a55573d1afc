"""Finds out what happened to requests whose results never came.

A request still `placed` long after it was sent (its callback was lost, or the
app was down when it came), or `unknown` (we could not tell whether Intron got
it), is looked up in the workflow-calls listing: by batch id, or by the request
id we tagged on every recipient. What is found is recorded as if Intron had
called back; an `unknown` request with no trace at Intron is reported as not
placed. Reads draw on the 6/min management quota, so a round stops as soon as
the quota would make it wait, and carries on at the next.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

from bot.intron.errors import IntronError, RateLimitedError
from bot.intron.models import CompletionCallback, WorkflowCall, is_final, stats_from_calls
from bot.intron.validation import REFERENCE_TAG
from bot.service import CallbackOutcome, CallService
from bot.store import RequestRecord, RequestStatus
from bot.workflows import WorkflowService

log = logging.getLogger(__name__)

MAX_PAGES = 10  # per request per round: 1,000 calls


class Reconciler:
    """Checks open requests older than `after` against Intron's records."""

    def __init__(self, service: CallService, workflows: WorkflowService, *, after: float):
        self.service = service
        self.workflows = workflows
        self.after = timedelta(seconds=after)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.after.total_seconds() / 2))
            await self.run_once()

    async def run_once(self) -> None:
        """One round over every open request that is old enough."""
        cutoff = datetime.now(UTC) - self.after
        for record in self.service.store.requests_with_status(
            RequestStatus.PLACED, RequestStatus.UNKNOWN
        ):
            if datetime.fromisoformat(record.updated_at) > cutoff:
                continue
            try:
                await self._reconcile(record)
            except RateLimitedError:
                return  # the quota is spent: the next round carries on
            except IntronError as exc:
                log.warning("could not reconcile %s: %s", record.id, exc)

    async def _reconcile(self, record: RequestRecord) -> None:
        if record.batch_id:
            calls = await self._calls(record, batch_id=record.batch_id)
            if calls and all(is_final(c.status) for c in calls):
                await self._complete(record, record.batch_id, calls)
            return
        first = self.service.store.calls(record.id)[0]
        calls = await self._calls(record, phone_number=first.phone_number)
        ours = [c for c in calls if c.user_tag_identifiers.get(REFERENCE_TAG) == record.id]
        if not ours:
            await self.service.not_placed(record.id)
        elif ours[0].batch_id:
            await self.service.found_placed(record.id, ours[0].batch_id)

    async def _calls(self, record: RequestRecord, **filters: str) -> list[WorkflowCall]:
        found: list[WorkflowCall] = []
        for page in range(1, MAX_PAGES + 1):
            listing = await self.workflows.calls(
                record.workflow_id, page=page, per_page=100, **filters
            )
            found += listing.items
            if not listing.has_next:
                break
        return found

    async def _complete(
        self, record: RequestRecord, batch_id: str, calls: list[WorkflowCall]
    ) -> None:
        callback = CompletionCallback(
            request_id=batch_id,
            status="COMPLETED",
            stats=stats_from_calls(calls),
            request_calls=calls,
        )
        raw = json.dumps({"reconciled_from": "workflow calls", "batch_id": batch_id})
        outcome, completed = self.service.record_callback(callback, raw, source="reconciler")
        if outcome == CallbackOutcome.APPLIED and completed is not None:
            log.info("reconciled %s from the workflow-calls listing", record.id)
            await self.service.announce_completed(completed)
