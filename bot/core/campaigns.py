"""Campaigns: a spreadsheet's recipients, called in small chunks through `CallService`.

No Slack, no provider API. A campaign is first a *draft* (its preview: who will
be called, who will not and why, how long it will take); a confirmation makes
it *running*. It is then placed chunk by chunk, each chunk an ordinary request
(`CallOrder(source="campaign", channel=None)`), by the `campaign.pump` job:

- **pacing**: a few chunks are accepted ahead of the provider's rate limit
  (about a second's worth, so the client-side limiter always has the next one
  and the limit is used to the full, never exceeded), and never more calls in
  flight (handed over, no outcome yet) than `Pace.in_flight`;
- **pause / cancel** stop the pump before its next chunk, and take back every chunk
  none of whose parts has been sent (accepted, or waiting for its calling hours):
  pause puts them back in line for resume; a chunk being sent goes on;
- a chunk **failing as a whole** (the provider refused our key, or the batch) pauses
  the campaign by itself, saying why, instead of every next chunk failing the same way;
- **restarts**: a chunk moves `pending` → `placed` by a compare-and-set in the
  same transaction as its request (and the request's idempotency key is the
  chunk's), so nobody is called twice and nobody is lost;
- a core listener (`request_changed`) hears of every campaign request's change
  inside its transaction and only adds jobs: the next pump, and the front ends'
  progress (`CampaignListener`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from bot import failpoints
from bot.core.consent import RULE_CAP, Consent
from bot.core.events import Event
from bot.core.jobs import Job, NewJob, RetryLater
from bot.core.models import RequestRecord, RequestStatus, now_iso
from bot.core.orders import InvalidOrder
from bot.core.requests import CANCELLABLE, CallOrder, CallService, NotPossible
from bot.input import phones, templates
from bot.input.recipients import Recipient
from bot.input.spreadsheets import Refusal, Sheet
from bot.input.voices import UnknownVoiceError, parse_voice
from bot.providers.base import Provider, Workflow
from bot.store.campaigns import UNKNOWN_SETTLES_AFTER

log = logging.getLogger(__name__)

PUMP = "campaign.pump"
PUMP_LANE = "default"
SOURCE = "campaign"
PAUSED_RECHECK = 10.0  # seconds: how often a paused campaign's waiting part looks again
CHUNK = 25  # recipients a chunk carries at most (and never more than a submission may)
QUEUE_SECONDS = 2.0  # chunks accepted ahead of the rate limit: about this long of submits
IN_FLIGHT = 1_000  # calls in flight at most when the provider states no limit of its own
LARGE = 500  # above this many recipients, the confirmation names the count
SAMPLE = 10  # refused rows and duplicates kept in the preview to list

# Request events after which the pump looks again (ACCEPTED is its own doing).
_PUMP_EVENTS = frozenset(
    {
        Event.PLACED,
        Event.FOUND,
        Event.COMPLETED,
        Event.FAILED,
        Event.KEY_REFUSED,
        Event.UNKNOWN,
        Event.CANCELLED,
    }
)


class CampaignStatus(StrEnum):
    DRAFT = "draft"  # previewed, not confirmed: nothing is sent
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"  # no more chunks; those in flight finish
    COMPLETED = "completed"


class CampaignEvent(StrEnum):
    STARTED = "started"
    PROGRESS = "progress"
    PAUSED = "paused"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    FINISHED = "finished"  # every chunk placed has its outcome: the end can be shown


@dataclass(frozen=True)
class Pace:
    """A provider's limits, as a campaign uses them."""

    submits_per_second: float  # submissions (requests) per second
    max_batch: int  # recipients one submission may carry
    calls_per_second: float | None = None  # when the provider also counts calls
    in_flight: int = IN_FLIGHT  # calls placed without their outcome, at most

    @property
    def chunk(self) -> int:
        return max(1, min(CHUNK, self.max_batch))

    @property
    def queue(self) -> int:
        """Chunks accepted ahead of the rate limit."""
        rate = self.submits_per_second
        if self.calls_per_second is not None:
            rate = min(rate, self.calls_per_second / self.chunk)
        return max(2, math.ceil(rate * QUEUE_SECONDS)) + 1

    def seconds(self, recipients: int) -> float:
        """How long placing `recipients` takes at these limits (not the calls' length)."""
        chunks = math.ceil(recipients / self.chunk)
        seconds = chunks / self.submits_per_second
        if self.calls_per_second:
            seconds = max(seconds, recipients / self.calls_per_second)
        return seconds


def default_pace(provider: Provider) -> Pace:
    """What a provider offers when the wiring says nothing more: 5 submissions a second."""
    return Pace(submits_per_second=5.0, max_batch=provider.capabilities.max_batch)


class Campaign(BaseModel):
    """A campaign, as stored."""

    id: str
    created_at: str
    updated_at: str
    status: CampaignStatus
    provider: str
    workflow_id: str
    workflow_name: str
    voice: str | None = None
    requested_by: str
    channel: str | None = None
    file_name: str | None = None
    start_at: str | None = None  # ISO UTC: not dialled before
    total: int
    chunk_size: int
    preview: dict[str, Any] = {}
    parent_ts: str | None = None
    shown_at: float = 0.0
    again_of: str | None = None
    finished_at: str | None = None
    end_posted: int = 0
    stopped_by: str | None = None

    @property
    def callable(self) -> int:
        """Recipients it will try to call (the preview's valid rows, opted-out ones out)."""
        return self.total - int(self.preview.get("opted_out", 0))


@dataclass
class Progress:
    """A campaign's figures: recipients by outcome, keys pressed, time left."""

    total: int
    outcomes: dict[str, int] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)
    seconds_left: float | None = None
    waiting_hours: int = 0  # placed, waiting for their calling hours to open
    hours_open_at: str | None = None  # when the last of them may be called (ISO, UTC)

    def count(self, *names: str) -> int:
        return sum(self.outcomes.get(n, 0) for n in names)

    @property
    def done(self) -> int:
        """Recipients whose fate is known (an outcome, or not called and why)."""
        return self.total - self.count("pending", "waiting", "later")


class CampaignListener(Protocol):
    """A front end that shows campaigns; called inside the transaction of the change,
    and may only write to the store (add jobs)."""

    def campaign_changed(self, campaign: Campaign, event: CampaignEvent) -> None: ...


@dataclass
class ConsentCounts:
    """The calling rules over a preview's rows (CampaignService._consent_counts)."""

    opted: list[str]  # on the opt-out list: not called
    outside: int  # outside their calling hours at the start: they wait
    until: datetime | None  # when the last of them may be called
    kept: list  # the rows kept (the opted-out too, recorded as such)
    never: list[Refusal]  # rows whose calling hours never open: refused
    capped: int = 0  # over the frequency cap at the start (checked again at their dial)
    capped_until: datetime | None = None  # when the last of them is allowed again


def new_campaign_id() -> str:
    """Short, unique, easy to read out: `cp-3f9c2a7b1d`."""
    return f"cp-{uuid.uuid4().hex[:10]}"


def again_campaign_id(campaign_id: str) -> str:
    """The id of a campaign's *Call again*: one per campaign, however often it is asked."""
    return f"cp-{hashlib.sha256(f'again:{campaign_id}'.encode()).hexdigest()[:10]}"


def unknown_job(campaign_id: str, at: float) -> NewJob:
    """A look at a campaign once its oldest "outcome unknown" chunk counts as settled
    (CampaignStore's UNKNOWN_SETTLES_AFTER): a key of its own, so that it never holds
    back the pumps its requests' events add."""
    return NewJob(
        PUMP,
        {"campaign_id": campaign_id},
        lane=PUMP_LANE,
        dedupe=f"{PUMP}:{campaign_id}:unknown",
        run_at=at,
    )


def pump_job(campaign_id: str, at: float | None = None) -> NewJob:
    return NewJob(
        PUMP,
        {"campaign_id": campaign_id},
        lane=PUMP_LANE,
        dedupe=f"{PUMP}:{campaign_id}",
        run_at=at,
    )


class CampaignService:
    """Drafts, confirms, places, pauses, resumes, cancels and reports campaigns."""

    def __init__(
        self,
        calls: CallService,
        *,
        pace: Callable[[Provider], Pace] = default_pace,
        consent: Consent | None = None,
    ) -> None:
        self.calls = calls
        self.store = calls.store
        self.campaigns = calls.store.campaigns
        self.jobs = calls.jobs
        self.pace_of = pace
        self._consent = consent
        self.listeners: list[CampaignListener] = []
        calls.listeners.append(self)
        calls.holds.append(self.held)

    def held(self, record: RequestRecord) -> float | None:
        """The waiting part (calling hours) of a paused campaign's chunk that was already
        partly sent is held until the campaign resumes (asked again every PAUSED_RECHECK
        s); chunks none of whose parts was sent are taken back by Pause instead."""
        if record.source != SOURCE:
            return None
        campaign_id = self.campaigns.campaign_of(record.part_of or record.id)
        campaign = self.campaigns.get(campaign_id) if campaign_id else None
        if campaign is not None and campaign["status"] == CampaignStatus.PAUSED:
            return PAUSED_RECHECK
        return None

    @property
    def consent(self) -> Consent:
        """The calling rules (bot/core/consent.py): the CallService's own, unless given."""
        return self._consent if self._consent is not None else self.calls.consent

    def get(self, campaign_id: str) -> Campaign | None:
        row = self.campaigns.get(campaign_id)
        return Campaign.model_validate(row) if row else None

    def recent(self, limit: int = 5) -> list[Campaign]:
        return [Campaign.model_validate(r) for r in self.campaigns.recent(limit)]

    def pace(self, provider_id: str) -> Pace:
        return self.pace_of(self.calls.providers.get(provider_id))

    # ------------------------------------------------------------ the preview

    def draft(
        self,
        sheet: Sheet,
        *,
        workflow: str,
        voice: str | None,
        requested_by: str,
        channel: str | None,
        file_name: str,
        start_at: datetime | None = None,
        again_of: str | None = None,
        campaign_id: str | None = None,
    ) -> Campaign:
        """Store a draft campaign from a read spreadsheet and return it with its preview.
        Raises NotPossible naming the workflow or voice when they cannot be used. The same
        `campaign_id` twice (a job run again) is the same draft."""
        if campaign_id is not None and (existing := self.get(campaign_id)) is not None:
            return existing
        try:
            found = self.calls.workflows.find(workflow)
        except InvalidOrder as exc:  # no such workflow (any more), or the name is ambiguous
            raise NotPossible(str(exc)) from exc
        provider = self.calls.providers.get(found.provider)
        voice_key = None
        if voice:
            try:
                voice_key = parse_voice(voice, provider.voices()).key
            except UnknownVoiceError as exc:
                raise NotPossible(str(exc)) from exc
        pace = self.pace_of(provider)
        refused = list(sheet.refused)
        limit = provider.capabilities.message_limit
        rows = []
        value_limit = getattr(provider.capabilities, "value_limit", None)
        for row in sheet.rows:
            long = next(
                (n for n, v in row.variables.items() if value_limit and len(v) > value_limit),
                None,
            )
            if long is not None:
                refused.append(
                    Refusal(
                        row.line,
                        f"{len(row.variables[long])} characters",
                        f"the [{long}] value is {len(row.variables[long]):,} characters; "
                        f"{provider.capabilities.label} takes at most {value_limit:,}",
                    )
                )
                continue
            if not sheet.missing:
                length = len(templates.render(found.message, row.variables))
                if length > limit:
                    refused.append(
                        Refusal(
                            row.line,
                            f"{length} characters",
                            f"the message becomes {length:,} characters with this row's "
                            f"values; {provider.capabilities.label}'s limit is {limit:,}",
                        )
                    )
                    continue
            rows.append(row)
        at = start_at.astimezone(UTC) if start_at else datetime.now(UTC)
        checked = self._consent_counts(rows, found, at)
        opted, rows = checked.opted, checked.kept
        refused += checked.never
        refused.sort(key=lambda r: r.line)
        callable_count = len(rows) - len(opted)
        preview = {
            "file_name": file_name,
            "valid": len(rows),
            "refused": len(refused),
            "refused_rows": [[r.line, r.value, r.reason] for r in refused[:SAMPLE]],
            "duplicates": len(sheet.duplicates),
            "duplicate_rows": [
                [d.line, phones.mask(d.phone), d.first_line] for d in sheet.duplicates[:SAMPLE]
            ],
            "missing": list(sheet.missing),
            "columns": dict(sheet.columns),
            "phone_column": sheet.phone_column,
            "ignored": list(sheet.ignored),
            "variables": found.variables,
            "opted_out": len(opted),
            "outside_hours": checked.outside,
            "outside_until": checked.until.isoformat(timespec="minutes") if checked.until else None,
            "over_cap": checked.capped,
            "over_cap_until": checked.capped_until.isoformat(timespec="minutes")
            if checked.capped_until
            else None,
            "seconds": pace.seconds(callable_count),
            "chunk": pace.chunk,
            "submits_per_second": pace.submits_per_second,
            "calls_per_second": pace.calls_per_second,
            "in_flight": pace.in_flight,
            "provider_label": provider.capabilities.label,
        }
        campaign_id = campaign_id or new_campaign_id()
        row = {
            "id": campaign_id,
            "created_at": now_iso(),
            "status": CampaignStatus.DRAFT,
            "provider": provider.id,
            "workflow_id": found.id,
            "workflow_name": found.name,
            "voice": voice_key,
            "requested_by": requested_by,
            "channel": channel,
            "file_name": file_name,
            "start_at": start_at.astimezone(UTC).isoformat(timespec="seconds")
            if start_at
            else None,
            "chunk_size": pace.chunk,
            "preview": preview,
            "again_of": again_of,
            "refused": [[r.line, r.value, r.reason] for r in refused],
        }
        with self.store.write():
            if (existing := self.get(campaign_id)) is not None:
                return existing  # the same job, run twice at once: one draft
            self.campaigns.add(row, [(r.line, r.phone, r.variables) for r in rows])
            for phone in opted:
                self.campaigns.skip_recipient(campaign_id, phone, "opted_out")
            self.store.audit.record(
                requested_by,
                "campaign.drafted",
                campaign_id,
                {"workflow": found.id, "file": file_name, "valid": len(rows)},
            )
        campaign = self.get(campaign_id)
        assert campaign is not None
        return campaign

    def _consent_counts(self, rows: list, workflow: Workflow, at: datetime) -> ConsentCounts:
        """The calling rules over the preview's rows, in a few queries (the consent API's
        batched checks): the opted-out numbers, those outside their calling hours at `at`
        and until when the last of them waits, those over the frequency cap then (they
        stay in the campaign: the cap is checked again before their dial), and the rows
        whose calling hours never open (refused)."""
        consent = self.consent
        numbers = [row.phone for row in rows]
        opted = self.store.consent.opted_out(numbers)
        waits, never = consent.waits_until_many(
            [p for p in numbers if p not in opted], workflow, at
        )
        capped = {
            phone: refusal
            for phone, refusal in consent.refusals(
                [(p, waits.get(p, at)) for p in numbers if p not in opted and p not in never],
                source=SOURCE,
            ).items()
            if refusal.rule == RULE_CAP
        }
        allowed = [r.allowed_at for r in capped.values() if r.allowed_at is not None]
        return ConsentCounts(
            opted=[p for p in numbers if p in opted],
            outside=len(waits),
            until=max(waits.values()) if waits else None,
            kept=[row for row in rows if row.phone not in never],
            never=[
                Refusal(row.line, phones.mask(row.phone), never[row.phone].reason)
                for row in rows
                if row.phone in never
            ],
            capped=len(capped),
            capped_until=max(allowed) if allowed else None,
        )

    def again(self, campaign_id: str, *, requested_by: str, new_id: str | None = None) -> Campaign:
        """A draft of the same campaign for those whose call ended unanswered (no answer,
        busy, voicemail, failed…) and those never dialled (their chunk failed as a whole, or
        the campaign was cancelled first); a call with no result may have been answered, so
        it is left out, and so is a number a calling rule kept back. Raises NotPossible
        saying why when nobody is left or it is not over."""
        campaign = self.get(campaign_id)
        if campaign is None:
            raise NotPossible("there is no such campaign here")
        if campaign.finished_at is None:
            raise NotPossible(
                f"this campaign is {campaign.status}; Call again is possible once it has ended"
            )
        unanswered = [
            r
            for r in self.campaigns.results(campaign_id)
            if r["result"] == "not_placed"  # never dialled: its chunk failed or was not sent
            or (
                r["outcome"] is not None
                and r["result"] not in ("opted_out", "not_called", "refused", "unknown")
                and r["outcome"] not in ("answered", "queued", "in_progress")
            )
        ]
        if not unanswered:
            raise NotPossible("every call with a result was answered, so nobody is left to call")
        from bot.input.spreadsheets import SheetRow

        sheet = Sheet(
            phone_column="phone",
            columns={},
            missing=[],
            ignored=[],
            rows=[SheetRow(r["line"], r["phone"], r["variables"]) for r in unanswered],
        )
        return self.draft(
            sheet,
            workflow=campaign.workflow_id,
            voice=campaign.voice,
            requested_by=requested_by,
            channel=campaign.channel,
            file_name=f"call again of {campaign.file_name or campaign.id}",
            again_of=campaign.id,
            campaign_id=new_id,
        )

    # ------------------------------------------------------------ confirm, pause, resume, cancel

    def confirm(self, campaign_id: str, actor: str) -> Campaign:
        """draft → running (compare-and-set: a second click does nothing), with the first
        pump due at its start time. Raises NotPossible saying why otherwise."""
        campaign = self._existing(campaign_id)
        if campaign.preview.get("missing"):
            missing = ", ".join(f"[{v}]" for v in campaign.preview["missing"])
            raise NotPossible(f"no column fills {missing}; add it to the file and upload it again")
        if campaign.callable <= 0:
            raise NotPossible("nobody in this file can be called")
        start = datetime.fromisoformat(campaign.start_at).timestamp() if campaign.start_at else None
        with self.store.write():
            if not self.campaigns.transition(
                campaign_id, [CampaignStatus.DRAFT], CampaignStatus.RUNNING
            ):
                current = self._existing(campaign_id)
                raise NotPossible(f"this campaign was already sent (it is {current.status})")
            self.store.audit.record(actor, "campaign.confirmed", campaign_id, {})
            self.jobs.add(pump_job(campaign_id, start))
            self._changed(campaign_id, CampaignEvent.STARTED)
        return self._existing(campaign_id)

    def pause(self, campaign_id: str, actor: str) -> Campaign:
        """No chunk is placed after this; every chunk none of whose parts has been sent
        (accepted, or scheduled: waiting for its time or its recipients' calling hours)
        is taken back (its requests cancelled before any dial, compare-and-set against
        the dial itself) and placed anew on resume. A chunk being sent goes on."""
        with self.store.write():
            self._move(
                campaign_id,
                [CampaignStatus.RUNNING],
                CampaignStatus.PAUSED,
                actor,
                CampaignEvent.PAUSED,
            )
            self._take_back(campaign_id, actor)
        return self._existing(campaign_id)

    def _take_back(self, campaign_id: str, actor: str) -> int:
        """Cancel and put back in line (pending) every chunk none of whose parts has been
        sent; inside the write lock, so each is either wholly taken back or dialled."""
        taken = 0
        with self.store.write():
            for request_id in self.campaigns.untouched_chunk_requests(campaign_id):
                try:
                    self.calls.cancel(request_id, actor)
                except NotPossible:  # pragma: no cover - checked under the same lock
                    continue
                taken += self.campaigns.unplace(campaign_id, request_id)
        return taken

    def resume(self, campaign_id: str, actor: str) -> Campaign:
        with self.store.write():
            self._move(
                campaign_id,
                [CampaignStatus.PAUSED],
                CampaignStatus.RUNNING,
                actor,
                CampaignEvent.RESUMED,
            )
            self.campaigns.set_note(campaign_id, None)
            self.jobs.add(pump_job(campaign_id))
        return self._existing(campaign_id)

    def cancel(self, campaign_id: str, actor: str) -> Campaign:
        """No more chunks; those none of whose parts was sent are taken back (not placed),
        and the parts still waiting of the others are cancelled. Calls already with the
        provider finish, and the end is shown once they have."""
        with self.store.write():
            campaign = self._move(
                campaign_id,
                [CampaignStatus.RUNNING, CampaignStatus.PAUSED],
                CampaignStatus.CANCELLED,
                actor,
                CampaignEvent.CANCELLED,
            )
            self._take_back(campaign_id, actor)
            self.campaigns.skip_pending(campaign_id)
            for request_id in self.campaigns.queued_requests(campaign_id):
                self._cancel_request(request_id, actor)
            self.jobs.add(pump_job(campaign_id))  # shows the end once nothing is in flight
        return campaign

    def _cancel_request(self, request_id: str, actor: str) -> None:
        """Cancel one part still waiting of a chunk's request some part of which was sent
        (those none of whose parts was sent are taken back whole: `_take_back`). Each part
        on its own, by compare-and-set (the core's cancel takes every part or none, and
        a part already sent goes on, its results counting)."""
        record = self.calls.requests.get(request_id)
        if record is None or record.status not in CANCELLABLE:
            return
        done = self.calls.requests.transition(
            request_id, CANCELLABLE, RequestStatus.CANCELLED, cancelled_by=actor
        )
        if done is not None:
            self.store.audit.record(actor, "request.cancelled", request_id, {"campaign": True})
            for listener in self.calls.listeners:
                listener.request_changed(done, Event.CANCELLED)

    def _move(
        self,
        campaign_id: str,
        from_: Sequence[CampaignStatus],
        to: CampaignStatus,
        actor: str,
        event: CampaignEvent,
    ) -> Campaign:
        with self.store.write():
            if not self.campaigns.transition(campaign_id, from_, to, stopped_by=actor):
                current = self._existing(campaign_id)
                if current.status == to:
                    return current  # a double click (or Slack's repeat): done once already
                done = {CampaignStatus.RUNNING: "resumed"}.get(to, str(to))
                raise NotPossible(f"this campaign is {current.status}, so it cannot be {done}")
            self.store.audit.record(actor, f"campaign.{to}", campaign_id, {})
            self._changed(campaign_id, event)
        return self._existing(campaign_id)

    def _existing(self, campaign_id: str) -> Campaign:
        campaign = self.get(campaign_id)
        if campaign is None:
            raise NotPossible("there is no such campaign here")
        return campaign

    # ------------------------------------------------------------ placing (a job)

    async def pump(self, job: Job) -> None:
        """Place the next chunks of a running campaign, as its limits allow (the
        `campaign.pump` job); show the end once every placed chunk has its outcome."""
        campaign_id = job.payload["campaign_id"]
        campaign = self.get(campaign_id)
        if campaign is None:
            return
        if campaign.status == CampaignStatus.RUNNING and campaign.start_at:
            wait = datetime.fromisoformat(campaign.start_at).timestamp() - time.time()
            if wait > 0.5:
                raise RetryLater(wait, "not due yet")
        self.step(campaign_id)
        if job.dedupe and job.dedupe.endswith(":unknown"):
            # An "outcome unknown" chunk younger than the bound is left: look again then.
            unknown = self.campaigns.counts(campaign_id).unknown_since
            if unknown is not None:
                self.jobs.add(unknown_job(campaign_id, unknown + UNKNOWN_SETTLES_AFTER + 1.0))

    def step(self, campaign_id: str) -> None:
        """One look at a campaign: place what may be placed now; finish it when over."""
        if not self._may_act(campaign_id):
            return  # most looks (a result came in) change nothing: no write lock for them
        placed: list[tuple[int, int]] = []
        self._step(campaign_id, placed)
        if placed:  # committed: the chunks' requests are stored, none is sent yet
            failpoints.reach("campaign.chunk_placed", f"{campaign_id}: {placed}")

    def _step(self, campaign_id: str, placed: list[tuple[int, int]]) -> None:
        with self.store.write():
            campaign = self.get(campaign_id)
            if campaign is None:
                return
            pace = self.pace(campaign.provider)
            counts = self.campaigns.counts(campaign_id)
            if campaign.status == CampaignStatus.RUNNING and counts.pending:
                room = pace.queue - counts.queued
                calls_room = (pace.in_flight - counts.open_calls) // max(1, campaign.chunk_size)
                take = min(room, calls_room)
                if counts.open_calls == 0:
                    take = max(take, 1)  # a limit below one chunk still moves on
                for chunk, attempt in self.campaigns.next_pending(campaign_id, max(0, take)):
                    if not self._place(campaign, chunk, attempt):
                        break  # refused as a whole: the campaign is paused, saying why
                    placed.append((chunk, attempt))
                if placed:  # a chunk waiting for its calling hours sends no other event
                    self._changed(campaign_id, CampaignEvent.PROGRESS)
                counts = self.campaigns.counts(campaign_id)
            over = campaign.status in (CampaignStatus.RUNNING, CampaignStatus.CANCELLED) and (
                counts.pending == 0 and counts.unfinished == 0
            )
            if over:
                if campaign.status == CampaignStatus.RUNNING:
                    self.campaigns.transition(
                        campaign_id, [CampaignStatus.RUNNING], CampaignStatus.COMPLETED
                    )
                if self.campaigns.finish(campaign_id):
                    self.store.audit.record("campaigns", "campaign.finished", campaign_id, {})
                    self._changed(campaign_id, CampaignEvent.FINISHED)

    def _may_act(self, campaign_id: str) -> bool:
        """Without the write lock: whether a step could place a chunk or end the campaign
        (the step itself decides again inside its transaction)."""
        campaign = self.get(campaign_id)
        if campaign is None or campaign.finished_at is not None:
            return False
        counts = self.campaigns.counts(campaign_id)
        if campaign.status == CampaignStatus.RUNNING and counts.pending:
            pace = self.pace(campaign.provider)
            room = pace.queue - counts.queued
            calls_room = (pace.in_flight - counts.open_calls) // max(1, campaign.chunk_size)
            return min(room, calls_room) > 0 or counts.open_calls == 0
        return campaign.status in (CampaignStatus.RUNNING, CampaignStatus.CANCELLED) and (
            counts.pending == 0 and counts.unfinished == 0
        )

    def _place(self, campaign: Campaign, chunk: int, attempt: int = 0) -> bool:
        """One chunk as one request (inside the pump's transaction). The calling rules are
        the core's (accept() checks them, and again before the dial): a recipient they
        refuse is recorded as not called, with the rule's sentence. False when the order
        is refused as a whole (its workflow is gone…): the chunk stays in line and the
        campaign is paused, saying why, rather than every chunk failing the same way."""
        recipients = [
            Recipient(phone, values)
            for phone, values in self.campaigns.chunk_recipients(campaign.id, chunk)
        ]
        for _ in range(3):
            if not recipients:
                self.campaigns.skip_chunk(campaign.id, chunk)
                return True
            order = CallOrder(
                workflow=campaign.workflow_id,
                recipients=recipients,
                voice=campaign.voice,
                requested_by=campaign.requested_by,
                channel=None,  # the campaign's parent shows it; the calls notifier does not
                source=SOURCE,
                # A chunk taken back by a pause (its request cancelled before it was
                # dialled) is a new request when placed again: a new key.
                idempotency_key=f"campaign:{campaign.id}:{chunk}"
                + (f":{attempt}" if attempt else ""),
            )
            try:
                record, _ = self.calls.accept(order)
            except InvalidOrder as exc:
                refused = {p.recipient: p.message for p in exc.problems if p.recipient is not None}
                if not refused:  # the order as a whole (its workflow is gone…)
                    log.warning("campaign %s chunk %d refused: %s", campaign.id, chunk, exc)
                    self._stop(campaign.id, f"chunk {chunk} was refused: {exc}")
                    return False
                opted = self.store.consent.opted_out(recipients[i - 1].phone for i in refused)
                for index, why in refused.items():
                    phone = recipients[index - 1].phone
                    word = "opted_out" if phone in opted else "refused"
                    self.campaigns.skip_recipient(campaign.id, phone, word, why)
                recipients = [r for i, r in enumerate(recipients, 1) if i not in refused]
                continue
            self.campaigns.place_chunk(campaign.id, chunk, record.id)
            return True
        self.campaigns.skip_chunk(campaign.id, chunk)
        return True

    def _stop(self, campaign_id: str, why: str) -> bool:
        """Pause a running campaign by itself (the provider refused our key, or a whole
        chunk), saying why on its parent; the chunks not sent yet are taken back, and
        Resume places them. True when it was running."""
        with self.store.write():
            if not self.campaigns.transition(
                campaign_id, [CampaignStatus.RUNNING], CampaignStatus.PAUSED, stopped_by=None
            ):
                return False
            self.campaigns.set_note(campaign_id, why)
            self.store.audit.record("campaigns", "campaign.stopped", campaign_id, {"why": why})
            self._take_back(campaign_id, "campaigns")
            self._changed(campaign_id, CampaignEvent.PAUSED)
        return True

    # ------------------------------------------------------------ hearing of requests

    def request_changed(self, record: RequestRecord, event: Event) -> None:
        """The core listener: a campaign request changed (inside its transaction). Only
        adds jobs: the next pump, and the front ends' progress."""
        if record.source != SOURCE or event == Event.ACCEPTED:
            return
        campaign_id = self.campaigns.campaign_of(record.part_of or record.id)
        if campaign_id is None:
            return
        if (
            event == Event.FAILED
            and record.part_of is None
            and self.campaigns.never_placed(record.id)
        ):
            self._place_again(campaign_id, record)
        elif event == Event.KEY_REFUSED or (
            event == Event.FAILED and not self.campaigns.found_absent(record.id)
        ):
            self._failed(campaign_id, record, event)
        if event in _PUMP_EVENTS:
            self.jobs.add(pump_job(campaign_id))
        if event == Event.UNKNOWN:
            self.jobs.add(unknown_job(campaign_id, time.time() + UNKNOWN_SETTLES_AFTER + 1.0))
        self._changed(campaign_id, CampaignEvent.PROGRESS)

    def _place_again(self, campaign_id: str, record: RequestRecord) -> None:
        """A chunk's request cut off while it was being sent (a worker killed), which the
        provider was then found never to have had: nobody of it was called, so the chunk
        is placed again (a new request, a new key) instead of being lost."""
        campaign = self.get(campaign_id)
        if campaign is None or campaign.status not in (
            CampaignStatus.RUNNING,
            CampaignStatus.PAUSED,
        ):
            return
        if self.campaigns.unplace(campaign_id, record.id):
            log.info("campaign %s: %s never placed; its chunk goes again", campaign_id, record.id)
            self.store.audit.record(
                "campaigns", "campaign.chunk_again", campaign_id, {"request": record.id}
            )

    def _failed(self, campaign_id: str, record: RequestRecord, event: Event) -> None:
        """A chunk's request failed as a whole (the provider refused the batch, or our
        key): nobody of it was dialled. The campaign pauses, saying why, instead of every
        next chunk failing the same way; a chunk of one request (no parts) goes back in
        line, so Resume places it again (and Call again counts it if it never is)."""
        why = record.error or "the provider refused it"
        if event == Event.KEY_REFUSED:
            why = f"the provider refused the app's API key ({why})"
        campaign = self.get(campaign_id)
        if campaign is None or campaign.status not in (
            CampaignStatus.RUNNING,
            CampaignStatus.PAUSED,
        ):
            return  # cancelled: its recipients stay not placed (Call again has them)
        if record.part_of is None:  # one request, no parts: nobody of the chunk was dialled
            self.campaigns.unplace(campaign_id, record.id)
        self._stop(campaign_id, f"a chunk failed as a whole: {why}")

    def _changed(self, campaign_id: str, event: CampaignEvent) -> None:
        if not self.listeners:
            return
        campaign = self.get(campaign_id)
        if campaign is None:
            return
        for listener in self.listeners:
            listener.campaign_changed(campaign, event)

    # ------------------------------------------------------------ figures

    def progress(self, campaign: Campaign) -> Progress:
        """Recipients by outcome (`pending` once handed over, `waiting` not yet), keys
        pressed, and the time left at the provider's limits."""
        counts = self.campaigns.outcomes(campaign.id)
        keys = {k.removeprefix("key:"): n for k, n in counts.items() if k.startswith("key:")}
        outcomes = {k: n for k, n in counts.items() if not k.startswith("key:")}
        not_placed = outcomes.pop("not_placed", 0)
        if campaign.status in (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.DRAFT):
            outcomes["waiting"] = outcomes.get("waiting", 0) + not_placed
        elif not_placed:
            outcomes["not_placed"] = not_placed
        left = None
        if campaign.status == CampaignStatus.RUNNING:
            pace = (
                self.pace(campaign.provider) if campaign.provider in self.calls.providers else None
            )
            if pace is not None:
                left = pace.seconds(outcomes.get("waiting", 0)) + (
                    5.0 if outcomes.get("pending") else 0.0
                )
        chunks = self.campaigns.counts(campaign.id)
        return Progress(
            total=campaign.total,
            outcomes=outcomes,
            keys=keys,
            seconds_left=left,
            waiting_hours=chunks.waiting_hours,
            hours_open_at=chunks.hours_open_at,
        )

    def results(self, campaign_id: str) -> list[dict[str, Any]]:
        """One row per recipient (see CampaignStore.results)."""
        return self.campaigns.results(campaign_id)
