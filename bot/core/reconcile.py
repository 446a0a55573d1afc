"""Finds out what happened to requests whose results never came (the `request.reconcile` job).

Every request that is placed, or whose outcome is unknown, gets a reconcile job
due `RECONCILE_AFTER` seconds later. If the request is still open then, its
provider is asked: an unknown request is looked for (found: placed; certainly
absent: failed, "safe to send again"); a placed one has its calls read, a page
per step, and what is found is recorded as if the provider had called back.
Each request backs off on its own (the next round waits twice as long as the
last, up to `MAX_ROUND_DELAY`), and reads draw on only part of a provider's
management quota (`share` in the provider), so people are never locked out.

A provider whose results come only by polling (`Capabilities.poll_interval`,
first and longest wait) is looked at sooner: first after its first wait
(`first_look`), then each wait 1.5 times the last, up to the longest, and back to
the first after a round that found something new.
"""

from __future__ import annotations

import logging
import time

from bot.core.jobs import Job, NewJob, RetryLater
from bot.core.models import CallRecord, RequestStatus
from bot.core.providers import UnknownProvider
from bot.core.requests import RECONCILE, RESULTS_LANE, CallbackOutcome, CallService
from bot.providers.base import Capabilities, ProviderError, RateLimitedError

log = logging.getLogger(__name__)

MAX_ROUND_DELAY = 6 * 3600.0
POLL_GROWTH = 1.5  # a polling provider's next wait, after a round that found nothing new


def first_look(capabilities: Capabilities | None, reconcile_after: float) -> float:
    """Seconds from placing a request (or its outcome turning unknown) to the first look
    at its provider: a polling provider's first wait, else `reconcile_after`."""
    if capabilities is not None and capabilities.poll_interval:
        return capabilities.poll_interval[0]
    return reconcile_after


def round_delay(
    capabilities: Capabilities, reconcile_after: float, round_: int, *, progressed: bool = False
) -> float:
    """Seconds before the round after `round_` (1: the first look's): twice the last up to
    `MAX_ROUND_DELAY`; for a polling provider 1.5 times the last from its first wait up to
    its longest, and its first again after a round that recorded new results."""
    if capabilities.poll_interval is None:
        return min(reconcile_after * 2 ** (round_ - 1), MAX_ROUND_DELAY)
    first, longest = capabilities.poll_interval
    if progressed:
        return first
    return min(first * POLL_GROWTH**round_, longest)


class Reconciler:
    """Runs `request.reconcile` jobs for the core service."""

    def __init__(self, service: CallService) -> None:
        self.service = service

    async def run(self, job: Job) -> None:
        request_id = job.payload["request_id"]
        round_ = int(job.payload.get("round", 1))
        record = self.service.requests.get(request_id)
        if record is None or record.status not in (RequestStatus.PLACED, RequestStatus.UNKNOWN):
            return  # finished meanwhile: nothing to find out
        try:
            provider = self.service.providers.get(record.provider)
        except UnknownProvider:
            return
        order = self.service.order_for(record, provider)
        try:
            if record.status == RequestStatus.UNKNOWN and not record.provider_ref:
                ref = await provider.find(order)
                if ref is None:
                    self.service.not_placed(record.id)
                    return
                self.service.found_placed(record.id, ref)
                self._next_round(
                    record.id, round_, cursor=None, capabilities=provider.capabilities, soon=True
                )
                return
            ref = record.provider_ref
            assert ref is not None
            poll = await provider.poll(ref, order, job.payload.get("cursor"))
        except RateLimitedError as exc:  # the share of the quota is spent: wait for it
            raise RetryLater(exc.retry_after or 60.0, "the provider's quota is spent") from None
        except ProviderError as exc:  # try again next round, from the page it stopped at
            log.warning("could not reconcile %s: %s", record.id, exc.message)
            self._next_round(
                record.id,
                round_,
                cursor=job.payload.get("cursor"),
                capabilities=provider.capabilities,
            )
            return
        current = self.service.requests.get(record.id)
        if current is not None and current.status == RequestStatus.UNKNOWN:
            self.service.found_placed(record.id, ref)
            current = self.service.requests.get(record.id)
        progressed = False
        if current is not None:
            before = _known(self.service.requests.calls(record.id))
            outcome = self.service.record_updates(
                current, poll.updates, final=False, ref=ref, source="reconciler"
            )
            if outcome == CallbackOutcome.APPLIED:
                log.info("reconciled %s from %s's records", record.id, provider.id)
                return
            progressed = _known(self.service.requests.calls(record.id)) != before
        self._next_round(
            record.id,
            round_,
            cursor=poll.cursor,
            capabilities=provider.capabilities,
            soon=poll.cursor is not None,
            progressed=progressed,
        )

    def _next_round(
        self,
        request_id: str,
        round_: int,
        *,
        cursor: str | None,
        capabilities: Capabilities,
        soon: bool = False,
        progressed: bool = False,
    ) -> None:
        """Carry on with the next page at once, or look again later, backing off."""
        if soon:
            delay, next_round = 0.0, round_
        else:
            after = self.service.reconcile_after
            delay = round_delay(capabilities, after, round_, progressed=progressed)
            # After new results a polling provider's waits grow again from the first.
            next_round = 1 if progressed and capabilities.poll_interval else round_ + 1
        payload = {"request_id": request_id, "round": next_round}
        if cursor is not None:
            payload["cursor"] = cursor
        self.service.jobs.add(
            NewJob(
                RECONCILE,
                payload,
                lane=RESULTS_LANE,
                dedupe=f"{RECONCILE}:{request_id}",
                run_at=time.time() + delay,
            )
        )


def _known(calls: list[CallRecord]) -> list[tuple]:
    """What a request's calls say so far, to tell whether a round found anything new."""
    return [(c.position, c.outcome, c.key_pressed, c.duration) for c in calls]
