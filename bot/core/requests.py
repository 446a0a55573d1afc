"""The core: accept a call order, keep it, place it once, record its results.

It knows nothing of Slack and no provider's API. Front ends hand it a
`CallOrder`; listeners hear of each change inside the transaction that makes
it (`bot/core/events.py`). Its promises: an order is stored, with the job that
places it, before it is acknowledged; a submit is sent at most once per request
(a compare-and-set to SENDING guards it, taken only when the request is about
to leave); results are applied once; a failure is recorded in words a user can
act on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot import failpoints
from bot.core.consent import (
    OPT_OUT_DIGIT,
    RULE_HOURS,
    CallingHours,
    Consent,
    NoCallingHours,
)
from bot.core.events import Event, Listener
from bot.core.jobs import Job, Jobs, NewJob, RetryLater
from bot.core.models import (
    CallRecord,
    RequestRecord,
    RequestStatus,
    new_request_id,
    now_iso,
)
from bot.core.orders import InvalidOrder, Problem, check_recipients
from bot.core.providers import Providers, UnknownProvider
from bot.core.workflows import WorkflowService
from bot.input import phones
from bot.input.phones import NumberType
from bot.input.recipients import Recipient
from bot.input.voices import UnknownVoiceError, parse_voice
from bot.providers.base import (
    AuthenticationError,
    CallbackReport,
    CallOutcome,
    CallUpdate,
    NotFoundError,
    Order,
    OrderRecipient,
    OutcomeUnknownError,
    Provider,
    ProviderConnectionError,
    ProviderError,
    RateLimitedError,
    RefusedError,
    Workflow,
)
from bot.store import Store
from bot.store.consent import NOT_CALLED

log = logging.getLogger(__name__)

PLACE = "request.place"
RECONCILE = "request.reconcile"
APPLY_CALLBACK = "callback.apply"
CALLS_LANE = "calls"  # submits, which may wait for a provider's rate limit
RESULTS_LANE = "results"  # callbacks and lookups, which must not wait behind them

# Requests a provider may report on. Not SCHEDULED or CANCELLED: those were never sent,
# so no callback can complete them.
OPEN = (RequestStatus.ACCEPTED, RequestStatus.SENDING, RequestStatus.PLACED, RequestStatus.UNKNOWN)
# A scheduled request dialled later than this (the app was not running at its time) is
# dialled at once, and its thread says how late.
LATE_AFTER = 60.0
# What may still be cancelled: nothing has been sent.
CANCELLABLE = (RequestStatus.SCHEDULED, RequestStatus.ACCEPTED)


@dataclass(frozen=True)
class CallOrder:
    """What someone asked for, before validation."""

    workflow: str  # a name (any case) or an id, on any provider
    recipients: Sequence[Recipient]
    voice: str | None  # as typed (`igbo/female`); None for the provider's default
    requested_by: str
    channel: str | None
    source: str
    # The same key twice is the same order (e.g. Slack resending a submission).
    idempotency_key: str | None = None
    # When to dial it (aware); None: at once. A front end checks it (bot.input.schedules).
    at: datetime | None = None
    # Recipients given as a Slack user (their number read from the profile), by 1-based
    # position in `recipients`: recorded in the audit row, never in the variables.
    recipient_users: Mapping[int, str] = field(default_factory=dict)
    # An urgent escalation ignores calling hours (bot/core/consent.py); only escalations
    # set it. Escalations (source "escalation") are exempt from the frequency cap anyway.
    urgent: bool = False


@dataclass(frozen=True)
class CheckedOrder:
    """An order that passed every check: where it goes, and its recipients as placed."""

    workflow: Workflow
    provider: Provider
    voice: str | None
    recipients: list[OrderRecipient]
    # Recipients outside their calling hours at the order's time, by position: when their
    # window opens (aware UTC). They are accepted and wait (bot/core/consent.py).
    waits: Mapping[int, datetime] = field(default_factory=dict)


class CallbackOutcome(StrEnum):
    ACCEPTED = "accepted"  # stored; the worker applies it
    APPLIED = "applied"
    PROGRESS = "progress"  # not final yet: calls' results stored, request still open
    DUPLICATE = "duplicate"
    UNKNOWN_REQUEST = "unknown_request"
    CONFLICT = "conflict"  # its reference and its calls' tags name different requests


class CallbackConflict(Exception):
    """A callback whose reference (batch id) and calls' tags name different requests:
    believing either could put one request's results on another."""


class CallService:
    """The core service: one per process, over the shared database."""

    def __init__(
        self,
        store: Store,
        jobs: Jobs,
        providers: Providers,
        workflows: WorkflowService,
        *,
        default_region: str | None = None,
        allowed_number_types: Collection[NumberType] = frozenset(),
        reconcile_after: float = 600.0,
        # Off unless given: the app passes CALLING_HOURS and CALLS_PER_DAY_CAP (settings).
        calling_hours: str = "00:00-24:00",
        calls_per_day_cap: int = 0,
    ) -> None:
        self.store = store
        # Calling hours, the opt-out list and the frequency cap: checked when an order is
        # checked, and again before every dial (campaigns and policies ask it too).
        self.consent = Consent(
            store, hours=CallingHours.parse(calling_hours), cap=calls_per_day_cap
        )
        self.requests = store.requests
        self.jobs = jobs
        self.providers = providers
        self.workflows = workflows
        self.default_region = default_region
        self.allowed_number_types = frozenset(allowed_number_types)
        self.reconcile_after = reconcile_after
        self.listeners: list[Listener] = []
        # Front ends that order requests for something of their own may hold a waiting one
        # back for a while (a paused campaign): seconds to wait, or None to let it go.
        self.holds: list[Callable[[RequestRecord], float | None]] = []

    # ------------------------------------------------------------ accepting

    def check(self, order: CallOrder) -> CheckedOrder:
        """Every check an order must pass, storing nothing: the order as it would be
        placed, or InvalidOrder listing every problem (a front end asking "call 120
        people?" checks first)."""
        workflow = self.workflows.find(order.workflow)
        provider = self.providers.get(workflow.provider)
        problems: list[Problem] = []
        voice = None
        if order.voice:
            try:
                voice = parse_voice(order.voice, provider.voices()).key
            except UnknownVoiceError as exc:
                problems.append(Problem("voice", order.voice, str(exc)))
        recipients: list[OrderRecipient] = []
        try:
            recipients = check_recipients(
                order.recipients,
                template=workflow.message,
                capabilities=provider.capabilities,
                default_region=self.default_region,
                allowed_types=self.allowed_number_types,
            )
        except InvalidOrder as exc:
            problems += exc.problems
        waits = self._consent_checks(order, workflow, recipients, problems)
        if problems:
            raise InvalidOrder(problems)
        return CheckedOrder(workflow, provider, voice, recipients, waits)

    def _consent_checks(
        self,
        order: CallOrder,
        workflow: Workflow,
        recipients: Sequence[OrderRecipient],
        problems: list[Problem],
    ) -> dict[int, datetime]:
        """Calling responsibly, when an order is checked: a number on the opt-out list, over
        the frequency cap, or whose calling hours never open is a problem (naming it, the
        rule and when it would be allowed); one outside its hours at the order's time
        waits for them. Returns position → when its window opens, for those that wait."""
        at = _aware(order.at) or datetime.now(UTC)
        # Calling hours for all of them at once (the hours read once, one window per zone set).
        opens, never = self.consent.waits_until_many(
            [r.phone for r in recipients], workflow, at, urgent=order.urgent
        )
        waits = {r.position: opens[r.phone] for r in recipients if r.phone in opens}
        # The opt-out list and the cap, for all of them at once, each at its dial time.
        refused = never | self.consent.refusals(
            [(r.phone, waits.get(r.position, at)) for r in recipients if r.phone not in never],
            source=order.source,
        )
        for recipient in recipients:
            if (refusal := refused.get(recipient.phone)) is not None:
                problems.append(
                    Problem(
                        "recipients",
                        phones.mask(recipient.phone),
                        refusal.reason,
                        recipient=recipient.position,
                    )
                )
        return waits

    def accept(self, order: CallOrder) -> tuple[RequestRecord, bool]:
        """Validate and store an order with the job that places it; returns the
        record and whether it is new. Raises InvalidOrder (every problem listed) and
        stores nothing when the order is wrong. Nothing is sent from here."""
        checked = self.check(order)
        workflow, provider, voice = checked.workflow, checked.provider, checked.voice
        recipients = checked.recipients
        size = max(1, provider.capabilities.max_batch)
        now = now_iso()
        first_id = new_request_id()
        when = _aware(order.at)  # a naive time is a front end's slip: read as UTC
        # Those outside their calling hours wait for them: a part (or parts) of their own,
        # scheduled at their window's opening, after the parts dialled at the order's time.
        groups: dict[datetime | None, list[OrderRecipient]] = {}
        for recipient in recipients:
            groups.setdefault(checked.waits.get(recipient.position), []).append(recipient)
        chunks: list[list[OrderRecipient]] = []
        times: list[datetime | None] = []
        for opens in sorted(groups, key=lambda t: (t is not None, t or datetime.min)):
            members = groups[opens]
            for i in range(0, len(members), size):
                chunks.append(members[i : i + size])
                times.append(opens or when)
        scheduled = [t.astimezone(UTC).isoformat(timespec="seconds") if t else None for t in times]
        parts = [
            RequestRecord(
                id=first_id if part == 1 else new_request_id(),
                created_at=now,
                updated_at=now,
                status=RequestStatus.SCHEDULED if at else RequestStatus.ACCEPTED,
                scheduled_at=at,
                provider=provider.id,
                workflow_id=workflow.id,
                workflow_name=workflow.name,
                voice=voice,
                requested_by=order.requested_by,
                channel=order.channel,
                source=order.source,
                idempotency_key=_part_key(order.idempotency_key, part),
                recipient_count=len(chunk),
                part_of=first_id if len(chunks) > 1 else None,
                part=part,
                parts=len(chunks),
            )
            for part, (chunk, at) in enumerate(zip(chunks, scheduled, strict=True), start=1)
        ]
        with self.store.write():  # every part, its audit row and its jobs, or none
            stored, created = self.requests.add(parts[0], _calls(parts[0], chunks[0]))
            if created:
                for record, chunk in zip(parts, chunks, strict=True):
                    if record is not parts[0]:
                        self.requests.add_part(record, _calls(record, chunk))
                    if order.urgent:  # ignores calling hours, at the dial too
                        self.store.consent.mark_urgent(record.id)
                    if any(r.position in checked.waits for r in chunk) and record.scheduled_at:
                        self._waits(record, chunk, workflow)
                    self._accepted(record, chunk, provider.id, order, (record.part - 1) * size)
        return stored, created

    def _waits(
        self, record: RequestRecord, chunk: Sequence[OrderRecipient], workflow: Workflow
    ) -> None:
        """Note that this part waits for its recipients' calling hours (the ack says so)."""
        assert record.scheduled_at is not None
        # Its recipients share the opening, not always the zone: name a few windows.
        windows = dict.fromkeys(self.consent.describe_window(r.phone, workflow) for r in chunk[:20])
        why = "; ".join(list(windows)[:3]) + ("; …" if len(windows) > 3 else "")
        self.store.consent.note_wait(record.id, record.scheduled_at, why)
        self.store.audit.record(
            "consent",
            "request.waits_for_calling_hours",
            record.id,
            {"opens_at": record.scheduled_at, "window": why, "recipients": len(chunk)},
        )

    def _accepted(
        self,
        record: RequestRecord,
        chunk: Sequence[OrderRecipient],
        provider_id: str,
        order: CallOrder,
        start: int = 0,
    ) -> None:
        # Recipient N (1-based, in the whole order) was @U123: where its number came from.
        positions = {r.position for r in chunk}  # parts waiting for calling hours skip some
        users = {
            str(n): f"@{user}"
            for n, user in sorted(order.recipient_users.items())
            if n in positions
        }
        self.store.audit.record(
            order.requested_by,
            "request.accepted",
            record.id,
            {
                "provider": provider_id,
                "workflow": record.workflow_id,
                "voice": record.voice,
                "channel": order.channel,
                "numbers": [r.phone for r in chunk],
                **({"slack_users": users} if users else {}),
                **({"part": f"{record.part}/{record.parts}"} if record.parts > 1 else {}),
                **({"scheduled_at": record.scheduled_at} if record.scheduled_at else {}),
            },
        )
        run_at = (
            datetime.fromisoformat(record.scheduled_at).timestamp() if record.scheduled_at else None
        )
        self.jobs.add(NewJob(PLACE, {"request_id": record.id}, lane=CALLS_LANE, run_at=run_at))
        self._changed(record, Event.ACCEPTED)

    # ------------------------------------------------------------ scheduled, cancelled

    def _due(self, record: RequestRecord) -> RequestRecord | None:
        """A scheduled request's time has come: SCHEDULED → ACCEPTED (compare-and-set, so
        a cancel racing it wins or loses whole), with its audit row and the note of how
        late it is when the app was not running at that time. None: cancelled first."""
        late = _late_by(record)
        with self.store.write():
            moved = self.requests.transition(
                record.id, [RequestStatus.SCHEDULED], RequestStatus.ACCEPTED
            )
            if moved is None:
                return None
            self.store.audit.record(
                "scheduler", "request.due", record.id, {"late_seconds": round(late)}
            )
            self._changed(moved, Event.LATE if late > LATE_AFTER else Event.DUE)
        return moved

    def cancel(self, request_id: str, actor: str) -> list[RequestRecord]:
        """Cancel a request before it is dialled: SCHEDULED (or ACCEPTED, not yet SENDING)
        → CANCELLED, every part of a split request together or none, each with its audit
        row and event. Raises NotPossible naming the state otherwise; changes nothing then.
        Each move is a compare-and-set against the place job's own: a request is either
        cancelled or dialled, never both."""
        record = self.requests.get(request_id)
        if record is None:
            raise NotPossible("there is no such request here")
        with self.store.write():
            parts = self.requests.parts(record.id)
            cancelled: list[RequestRecord] = []
            for part in parts:
                done = self.requests.transition(
                    part.id, CANCELLABLE, RequestStatus.CANCELLED, cancelled_by=actor
                )
                if done is None:  # undone with the transaction: the parts go together
                    current = self.requests.get(part.id) or part
                    which = f"part {part.part} of {part.parts} of it" if part.parts > 1 else "it"
                    raise NotPossible(_why_not_cancel(current.status, which))
                cancelled.append(done)
            for done in cancelled:
                self.store.audit.record(
                    actor, "request.cancelled", done.id, {"scheduled_at": done.scheduled_at}
                )
                self._changed(done, Event.CANCELLED)
        return cancelled

    # ------------------------------------------------------------ placing (a job)

    async def place(self, job: Job) -> None:
        """Send a request's submit, exactly once (the `request.place` job)."""
        request_id = job.payload["request_id"]
        record = self.requests.get(request_id)
        if record is None:
            return
        if record.status == RequestStatus.SCHEDULED:
            if (early := -_late_by(record, signed=True)) > 0.5:  # never before its time
                raise RetryLater(early, "not due yet")
            self._hold_for_hours(record)  # raises RetryLater when its hours are over
            self._held(record)  # ...or when its owner holds it back
            if (moved := self._due(record)) is None:
                return  # cancelled meanwhile: never dialled
            record = moved
        elif record.status == RequestStatus.ACCEPTED:
            # Accepted inside its hours, but reached only now (the worker was down, or its
            # job waited behind others): it waits again if they are over (RetryLater).
            self._hold_for_hours(record)
        if record.status == RequestStatus.SENDING:  # the worker sending it died
            self._settle(
                record.id,
                RequestStatus.UNKNOWN,
                Event.UNKNOWN,
                error="the app stopped while sending this request to "
                f"{self._label(record)}, so it may or may not have been placed; "
                "it was not resent",
            )
            return
        if record.status != RequestStatus.ACCEPTED:
            return
        try:
            provider = self.providers.get(record.provider)
        except UnknownProvider:
            self._settle(
                record.id,
                RequestStatus.FAILED,
                Event.FAILED,
                error=f"the provider '{record.provider}' is not enabled any more, "
                "so nobody was called",
            )
            return
        if self._not_called(record):
            return  # every recipient refused just before the dial: nobody to call
        await self._submit(record, provider)

    def _held(self, record: RequestRecord) -> None:
        """A scheduled request its owner holds back (`holds`) waits: RetryLater, and the
        owner is asked again then."""
        for hold in self.holds:
            if (delay := hold(record)) is not None:
                raise RetryLater(delay, "held back by what ordered it")

    def _hold_for_hours(self, record: RequestRecord, *, may_drop: bool = True) -> None:
        """Just before a request is dialled (scheduled and due, or accepted and reached
        only now: the app was down past its recipients' window, its job waited behind
        others or behind the provider's rate limit, or the workflow's hours changed):
        when any recipient is outside their calling hours it waits again. SCHEDULED or
        ACCEPTED → SCHEDULED (compare-and-set, so a cancel still wins) at the first moment
        inside every recipient's window, its channel message saying until when, and
        RetryLater raised. Only an urgent request (an urgent escalation) ignores hours.

        A part whose recipients' windows no longer share a moment (the workflow's hours
        changed since it was accepted) cannot wait for all of them: those inside their
        hours now are dialled, and the others recorded as not called (calling hours),
        saying when theirs open; when nobody is inside now, it waits for the first
        opening. `may_drop` False (the order is already built): it only waits."""
        if self.store.consent.is_urgent(record.id):
            return
        workflow = self.store.workflows.get(record.workflow_id) if record.workflow_id else None
        if self.consent.hours_for(workflow).always:
            return  # 00:00-24:00: nothing to wait for
        now = datetime.now(UTC)
        waiting: dict[int, tuple[str, datetime]] = {}
        members: list[str] = []
        for call in self.requests.calls(record.id):
            if _kept_back(call):
                continue
            try:
                until = self.consent.waits_until(call.phone_number, workflow, now)
            except NoCallingHours:
                continue  # accepted before its hours changed: the dial itself decides
            members.append(call.phone_number)
            if until is not None:
                waiting[call.position] = (call.phone_number, until)
        if not waiting:
            return
        opens = self.consent.common_opening(members, workflow, now)
        if opens is None:  # no moment inside every recipient's window
            if may_drop and len(waiting) < len(members):
                self._not_called_for_hours(record, workflow, waiting)
                return
            opens = min(until for _, until in waiting.values())
        at = opens.astimezone(UTC).isoformat(timespec="seconds")
        windows = dict.fromkeys(
            self.consent.describe_window(phone, workflow) for phone, _ in waiting.values()
        )
        with self.store.write():
            moved = self.requests.transition(
                record.id,
                [RequestStatus.SCHEDULED, RequestStatus.ACCEPTED],
                RequestStatus.SCHEDULED,
                scheduled_at=at,
            )
            if moved is None:
                return  # cancelled (or taken) meanwhile: `place` finds it so
            why = "; ".join(list(windows)[:3]) + ("; …" if len(windows) > 3 else "")
            self.store.consent.note_wait(record.id, at, why)
            self.store.audit.record(
                "consent",
                "request.waits_for_calling_hours",
                record.id,
                {
                    "opens_at": at,
                    "window": why,
                    "was_due": record.scheduled_at or record.created_at,
                },
            )
            self._changed(moved, Event.PROGRESS)
        raise RetryLater(max(0.0, opens.timestamp() - time.time()), "outside calling hours")

    def _not_called_for_hours(
        self,
        record: RequestRecord,
        workflow: Workflow | None,
        waiting: Mapping[int, tuple[str, datetime]],
    ) -> None:
        """Record these recipients as not called (calling hours), each saying when theirs
        open, with the audit row: the others of the part are dialled now."""
        reasons = {
            position: f"{phones.mask(phone)} is outside its calling hours "
            f"({self.consent.describe_window(phone, workflow)}) and shares none with the "
            f"others of its request, so it is not called; its hours open at "
            f"{until.astimezone(UTC):%Y-%m-%d %H:%M} UTC: send it again then"
            for position, (phone, until) in waiting.items()
        }
        with self.store.write():
            self._record_not_called(record, {p: (RULE_HOURS, r) for p, r in reasons.items()})
            self._changed(record, Event.PROGRESS)

    def _not_called(self, record: RequestRecord) -> bool:
        """Before every dial: a recipient put on the opt-out list, or over the frequency
        cap, since the request was accepted is dropped from what is sent and its call is
        recorded as not called, with the rule (and its audit row). True when nobody is
        left to call: the request is then completed, as every call has its result."""
        calls = [c for c in self.requests.calls(record.id) if not _kept_back(c)]
        now = datetime.now(UTC)
        by_number = self.consent.refusals(
            [(c.phone_number, now) for c in calls],
            source=record.source,
            exclude_request=record.id,
            pending=False,
        )
        refused = {
            c.position: by_number[c.phone_number] for c in calls if c.phone_number in by_number
        }
        if not refused:
            return False
        everyone = len(refused) == len(calls)
        with self.store.write():
            self._record_not_called(record, {p: (r.rule, r.reason) for p, r in refused.items()})
            if everyone:
                calls_now = self.requests.calls(record.id)
                self._record(record, calls_now, {}, final=True, ref=None, source="consent")
            else:
                self._changed(record, Event.PROGRESS)
        return everyone

    def _record_not_called(
        self, record: RequestRecord, refused: Mapping[int, tuple[str, str]]
    ) -> None:
        """These recipients (position → the rule, and why in words) are recorded as not
        called, with one audit row; inside the caller's transaction."""
        results = {
            position: {
                "provider_call_id": None,
                "outcome": CallOutcome.CANCELLED,
                "provider_status": f"{NOT_CALLED}: {rule}",
                "duration": None,
                "key_pressed": None,
            }
            for position, (rule, _) in refused.items()
        }
        self.requests.record_results(record.id, results)
        self.store.audit.record(
            "consent",
            "request.not_called",
            record.id,
            {"calls": [f"{p}: {why}" for p, (_, why) in sorted(refused.items())]},
        )

    async def _submit(self, record: RequestRecord, provider: Provider) -> None:
        order = self.order_for(record, provider)

        def mark_sending() -> None:
            current = self.requests.get(record.id)
            if current is not None and current.status == RequestStatus.SENDING:
                return  # our own retry after a 429/503: still the same single submit
            if current is not None:
                # At the dial itself: a wait for the provider's rate limit may have run
                # past the recipients' calling hours. The order is built: only wait.
                try:
                    self._hold_for_hours(current, may_drop=False)
                except RetryLater as held:
                    raise _Held(held) from None
            if (
                self.requests.transition(record.id, [RequestStatus.ACCEPTED], RequestStatus.SENDING)
                is None
            ):
                raise _AlreadyTaken()
            failpoints.reach("request.sending")

        try:
            ref = await provider.submit(order, before_send=mark_sending)
        except _AlreadyTaken:
            return
        except _Held as held:  # outside calling hours at the dial: nothing was sent
            raise held.retry from None
        except OutcomeUnknownError as exc:
            self._settle(
                record.id,
                RequestStatus.UNKNOWN,
                Event.UNKNOWN,
                error=describe_failure(exc, provider),
            )
            return
        except ProviderError as exc:
            refused_key = isinstance(exc, AuthenticationError)
            self._settle(
                record.id,
                RequestStatus.FAILED,
                Event.KEY_REFUSED if refused_key else Event.FAILED,
                error=describe_failure(exc, provider),
            )
            return
        except Exception as exc:  # a bug must not leave the request SENDING forever
            log.exception("placing %s failed unexpectedly", record.id)
            current = self.requests.get(record.id)
            sent = current is not None and current.status == RequestStatus.SENDING
            self._settle(
                record.id,
                RequestStatus.UNKNOWN if sent else RequestStatus.FAILED,
                Event.UNKNOWN if sent else Event.FAILED,
                error=f"an internal error ({type(exc).__name__}) interrupted sending; "
                + ("it was not resent" if sent else "nobody was called"),
            )
            return
        self._settle(
            record.id,
            RequestStatus.PLACED,
            Event.PLACED,
            provider_ref=ref,
            call_ids=_call_ids(provider, ref, order),
        )

    def _settle(
        self,
        request_id: str,
        status: RequestStatus,
        event: Event,
        *,
        error: str | None = None,
        provider_ref: str | None = None,
        call_ids: Mapping[int, str] | None = None,
    ) -> RequestRecord | None:
        """Record where sending ended, with its audit row and the jobs that follow, at once.

        From ACCEPTED too: a failure before anything was sent (our own limiter
        refusing a long wait, say) settles a request that never became SENDING.
        `call_ids` (position → the provider's call id, as the submit answered) are kept
        in the same transaction, so a call's events find it even after a restart."""
        fields: dict[str, Any] = {"error": error}
        if provider_ref is not None:
            fields["provider_ref"] = provider_ref
        with self.store.write():
            record = self.requests.transition(
                request_id, [RequestStatus.SENDING, RequestStatus.ACCEPTED], status, **fields
            )
            if call_ids:
                self.requests.set_call_ids(request_id, call_ids)
            if record is None:  # a callback completed it meanwhile
                if provider_ref is not None:
                    self.requests.set_ref(request_id, provider_ref)
                return None
            detail = {"provider_ref": provider_ref} if provider_ref else {"error": error}
            self.store.audit.record("provider", f"request.{status}", request_id, detail)
            if status in (RequestStatus.PLACED, RequestStatus.UNKNOWN):
                from bot.core.reconcile import first_look  # here: reconcile imports us

                on = record.provider in self.providers  # a polling one looks sooner
                caps = self.providers.get(record.provider).capabilities if on else None
                self.schedule_reconcile(request_id, delay=first_look(caps, self.reconcile_after))
            self._changed(record, event)
        failpoints.reach(f"request.{status}")
        return record

    def schedule_reconcile(self, request_id: str, *, delay: float, round: int = 1) -> None:
        """Look the request up at its provider after `delay` seconds, if it is still open."""
        self.jobs.add(
            NewJob(
                RECONCILE,
                {"request_id": request_id, "round": round},
                lane=RESULTS_LANE,
                dedupe=f"{RECONCILE}:{request_id}",
                run_at=time.time() + delay,
            )
        )

    def order_for(self, record: RequestRecord, provider: Provider) -> Order:
        """The provider's order for a stored request."""
        workflow = (
            self.store.workflows.get(record.workflow_id) if record.workflow_id else None
        ) or (
            Workflow(id=record.workflow_id or "", provider=provider.id, name=record.workflow_name)
        )
        recipients = [
            OrderRecipient(position=c.position, phone=c.phone_number, variables=c.variables)
            for c in self.requests.calls(record.id)
            if not _kept_back(c)  # refused before the dial (bot/core/consent.py)
        ]
        return Order(
            request_id=record.id, workflow=workflow, recipients=recipients, voice=record.voice
        )

    # ------------------------------------------------------------ again, and checking now

    def again_order(
        self,
        request_id: str,
        *,
        only_unanswered: bool,
        requested_by: str,
        channel: str | None,
        key: str,
    ) -> CallOrder:
        """The order that sends a request again, for `accept`: to those of a completed
        request's recipients whose call ended unanswered (`only_unanswered`: no answer,
        busy, voicemail, failed…; a call with no result may have been answered, so it is
        left out), or to every recipient of a failed one (nobody was called). Same
        workflow, voice and values per recipient. `key` is its idempotency key: the same
        key twice is one new request. Raises NotPossible, saying why, for any other
        request or when nobody is left to call; stores nothing.

        An "outcome unknown" request is never sent again from here: its calls may have
        been placed. `check_now` finds out; it becomes failed if nobody was called."""
        record = self.requests.get(request_id)
        if record is None:
            raise NotPossible("there is no such request here")
        wanted = RequestStatus.COMPLETED if only_unanswered else RequestStatus.FAILED
        if record.status != wanted:
            raise NotPossible(_why_not_again(record.status, only_unanswered))
        calls = self.requests.calls(record.id)
        if only_unanswered:
            ended = [c for c in calls if c.outcome is not None and c.outcome.final]
            calls = [c for c in ended if c.outcome != CallOutcome.ANSWERED]
            if not calls:
                raise NotPossible(
                    "every call was answered, so nobody is left to call"
                    if len(ended) == record.recipient_count
                    else "no call is known to have gone unanswered (the others have no "
                    "result), so nobody is left to call"
                )
        return CallOrder(
            workflow=record.workflow_id or record.workflow_name,
            recipients=[Recipient(c.phone_number, dict(c.variables)) for c in calls],
            voice=record.voice,
            requested_by=requested_by,
            channel=channel,
            source=f"{'call again' if only_unanswered else 'try again'}:{record.id}",
            idempotency_key=key,
        )

    def check_now(self, request_id: str, *, requested_by: str) -> float:
        """Ask the provider now what became of a placed or "outcome unknown" request:
        its `request.reconcile` job is brought forward (keeping the page it had got to),
        or added, due now, when it has none. Returns in how many seconds the provider is
        asked: 0, or longer when the provider asked us to wait (Retry-After). Raises
        NotPossible for any other request; changes nothing then."""
        record = self.requests.get(request_id)
        if record is None:
            raise NotPossible("there is no such request here")
        if record.status not in (RequestStatus.PLACED, RequestStatus.UNKNOWN):
            raise NotPossible(
                f"{_this_request(record.status)}; only a request that is placed or whose "
                "outcome is unknown can be checked with its provider"
            )
        if record.provider not in self.providers:
            raise NotPossible(
                f"its provider '{record.provider}' is not enabled any more, so it cannot be asked"
            )
        now = time.time()
        with self.store.write():
            due = self.jobs.store.bring_forward(f"{RECONCILE}:{record.id}", now)
            if due is None:
                self.schedule_reconcile(record.id, delay=0)
                due = now
            else:  # brought forward, not added: wake the workers as an add would
                self.store.db.after_commit(self.jobs.wake)
            self.store.audit.record(requested_by, "request.check_now", record.id, {})
        return max(0.0, due - now)

    # ------------------------------------------------------------ results

    def receive_callback(
        self, provider_id: str, body: bytes
    ) -> tuple[CallbackOutcome, RequestRecord | None]:
        """Store a callback with the job that applies it; fast, for the web process.
        Raises BadCallback when the body cannot be read, UnknownProvider for a
        provider that is not enabled."""
        provider = self.providers.get(provider_id)
        report = provider.read_callback(body)

        def log(outcome: CallbackOutcome, record: RequestRecord | None) -> int:
            return self.requests.log_callback(
                provider=provider_id,
                body=body.decode("utf-8", "replace"),
                outcome=outcome,
                ref=report.provider_ref,
                request_id=record.id if record else None,
                source="callback",
            )

        try:
            record = self.match(provider_id, report)
        except CallbackConflict:
            log(CallbackOutcome.CONFLICT, None)
            return CallbackOutcome.CONFLICT, None
        if record is None:
            log(CallbackOutcome.UNKNOWN_REQUEST, None)
            return CallbackOutcome.UNKNOWN_REQUEST, None
        if record.status == RequestStatus.COMPLETED:
            log(CallbackOutcome.DUPLICATE, record)
            return CallbackOutcome.DUPLICATE, record
        with self.store.write():
            callback_id = log(CallbackOutcome.ACCEPTED, record)
            self.jobs.add(NewJob(APPLY_CALLBACK, {"callback_id": callback_id}, lane=RESULTS_LANE))
        return CallbackOutcome.ACCEPTED, record

    async def apply_callback(self, job: Job) -> None:
        """Apply a stored callback (the `callback.apply` job)."""
        row = self.requests.callback(job.payload["callback_id"])
        if row is None or row["outcome"] != CallbackOutcome.ACCEPTED:
            return
        provider = self.providers.get(row["provider"])
        report = provider.read_callback(row["body"].encode())
        try:
            record = self.match(provider.id, report)
        except CallbackConflict:
            self.requests.set_callback_outcome(row["id"], CallbackOutcome.CONFLICT)
            return
        if record is None:
            self.requests.set_callback_outcome(row["id"], CallbackOutcome.UNKNOWN_REQUEST)
            return
        self.record_updates(
            record,
            report.updates,
            final=report.final,
            ref=report.provider_ref,
            callback_id=row["id"],
        )

    def match(self, provider_id: str, report: CallbackReport) -> RequestRecord | None:
        """The request a report is about: by the provider's reference, else by the call
        it names (a provider whose events name only a call id, as Intron direct's: the
        id of a batch's call, kept when its submit answered), else by the request id we
        tagged on every call (a callback can beat the submit's answer). Raises
        CallbackConflict when the reference, the call and the tags, or the tags among
        themselves, name different requests."""
        ref = report.provider_ref
        by_ref = self.requests.by_ref(provider_id, ref) if ref else None
        by_call = self.requests.by_call_id(provider_id, ref) if ref else []
        named = set(report.request_ids) | ({by_ref.id} if by_ref else set())
        named |= {r.id for r in by_call}
        if len(named) > 1:
            log.warning(
                "a %s callback for batch %s names requests %s (by its reference, the call "
                "it names or its calls' tags): refused",
                provider_id,
                report.provider_ref,
                ", ".join(sorted(named)),
            )
            raise CallbackConflict()
        if by_ref is not None:
            return by_ref
        if by_call:
            return by_call[0]
        if not report.request_ids:
            return None
        (tag,) = report.request_ids
        tagged = self.requests.get(tag)
        if tagged is None or tagged.provider != provider_id:
            return None
        if tagged.provider_ref not in (None, report.provider_ref):
            raise CallbackConflict()  # tagged with a request that has another batch
        return tagged

    def record_updates(
        self,
        record: RequestRecord,
        updates: Sequence[CallUpdate],
        *,
        final: bool,
        ref: str | None = None,
        source: str = "callback",
        callback_id: int | None = None,
    ) -> CallbackOutcome:
        """Store calls' outcomes; complete the request when every call has one (or the
        provider says it is over). Once completed, nothing changes it again. The stored
        callback these came from (`callback_id`) gets its outcome in the same transaction."""
        calls = self.requests.calls(record.id)  # read before taking the write lock
        results = _results_by_position(updates, calls)
        with self.store.write():
            outcome = self._record(record, calls, results, final=final, ref=ref, source=source)
            if callback_id is not None:
                self.requests.set_callback_outcome(callback_id, outcome)
        if outcome == CallbackOutcome.APPLIED:
            failpoints.reach("request.completed")
        return outcome

    def _record(
        self,
        record: RequestRecord,
        calls: list[CallRecord],
        results: dict[int, dict[str, Any]],
        *,
        final: bool,
        ref: str | None,
        source: str,
    ) -> CallbackOutcome:
        """`record_updates` inside its transaction."""
        current = self.requests.get(record.id)
        if current is None or current.status == RequestStatus.COMPLETED:
            return CallbackOutcome.DUPLICATE
        self.requests.record_results(record.id, results)
        self._pressed_stop(current, calls, results)
        if ref and not current.provider_ref:
            self.requests.set_ref(record.id, ref)
        if not (final or self.requests.all_final(record.id)):
            self.requests.touch(record.id)
            if results:
                self._changed(current, Event.PROGRESS)
            return CallbackOutcome.PROGRESS
        completed = self.requests.transition(record.id, OPEN, RequestStatus.COMPLETED, error=None)
        if completed is None:
            return CallbackOutcome.DUPLICATE
        self.requests.keep_stats(record.id)  # final now: shown many times, counted once
        outcomes = {
            c.phone_number: results.get(c.position, {}).get("outcome", c.outcome) for c in calls
        }
        answered = sum(o == CallOutcome.ANSWERED for o in outcomes.values())
        self.store.audit.record(
            "provider",
            "request.completed",
            record.id,
            {"source": source, "answered": answered, "total": len(calls), "results": outcomes},
        )
        self._changed(completed, Event.COMPLETED)
        return CallbackOutcome.APPLIED

    def _pressed_stop(
        self,
        record: RequestRecord,
        calls: Sequence[CallRecord],
        results: Mapping[int, Mapping[str, Any]],
    ) -> None:
        """A callee who pressed 9 on a workflow with "press 9 to stop these calls" goes on
        the opt-out list (in the transaction that records the key)."""
        pressed = [p for p, r in results.items() if r.get("key_pressed") == OPT_OUT_DIGIT]
        if not pressed or not record.workflow_id:
            return
        workflow = self.store.workflows.get(record.workflow_id)
        if workflow is None or not self.store.consent.press_9(workflow):
            return
        numbers = {c.position: c.phone_number for c in calls}
        added = self.store.consent.add(
            [numbers[p] for p in pressed if p in numbers], by=record.id, source="keypad"
        )
        for phone in added:
            self.store.audit.record(
                "callee", "optout.added", record.id, {"phone": phones.mask(phone), "key": "9"}
            )

    def found_placed(self, request_id: str, ref: str) -> RequestRecord | None:
        """Reconciliation found the calls of an "outcome unknown" request at the provider."""
        with self.store.write():
            record = self.requests.transition(
                request_id,
                [RequestStatus.UNKNOWN],
                RequestStatus.PLACED,
                provider_ref=ref,
                error=None,
            )
            if record is not None:
                self.store.audit.record(
                    "reconciler", "request.found_placed", request_id, {"ref": ref}
                )
                self._changed(record, Event.FOUND)
        return record

    def not_placed(self, request_id: str) -> RequestRecord | None:
        """Reconciliation found no trace of an "outcome unknown" request: nobody was called."""
        with self.store.write():
            current = self.requests.get(request_id)
            label = self._label(current) if current else "the provider"
            record = self.requests.transition(
                request_id,
                [RequestStatus.UNKNOWN],
                RequestStatus.FAILED,
                error=f"Checked with {label}: it has no calls for this request, so nobody "
                "was called. It is safe to send it again.",
            )
            if record is not None:
                self.store.audit.record("reconciler", "request.not_placed", request_id, {})
                self._changed(record, Event.FAILED)
        return record

    def lookup(self, ref: str) -> RequestRecord | None:
        """A request by our id or by the provider's reference (batch id)."""
        ref = ref.strip()
        return self.requests.get(ref) or self.requests.by_any_ref(ref)

    # ------------------------------------------------------------ helpers

    def _changed(self, record: RequestRecord, event: Event) -> None:
        for listener in self.listeners:
            listener.request_changed(record, event)

    def _label(self, record: RequestRecord) -> str:
        if record.provider in self.providers:
            return self.providers.get(record.provider).capabilities.label
        return record.provider


class NotPossible(Exception):
    """Why a request cannot be sent again or checked now, in words for the person who
    asked (completing "request rq-…: "); nothing was changed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


_STATE_WORDS = {
    RequestStatus.SCHEDULED: "this request is scheduled, and not dialled yet",
    RequestStatus.CANCELLED: "this request was cancelled before it was dialled (nobody was called)",
    RequestStatus.ACCEPTED: "this request is accepted, and its calls are about to be placed",
    RequestStatus.SENDING: "this request is being sent to its provider",
    RequestStatus.PLACED: "this request is placed, and waiting for its results",
    RequestStatus.COMPLETED: "this request is completed",
    RequestStatus.FAILED: "this request is failed (nobody was called)",
    RequestStatus.UNKNOWN: "this request's outcome is unknown (its calls may have been placed)",
}


def _this_request(status: RequestStatus) -> str:
    return _STATE_WORDS[status]


def _why_not_again(status: RequestStatus, only_unanswered: bool) -> str:
    if only_unanswered:
        why = f"{_this_request(status)}; only a completed one can be called again"
        return why + (": use Try again" if status == RequestStatus.FAILED else "")
    why = f"{_this_request(status)}; only a failed one can be sent again"
    if status == RequestStatus.UNKNOWN:
        why += (
            ". Outcome unknown is not failed: it is never resent blindly, so that nobody "
            "is called twice. Check with the provider first"
        )
    elif status == RequestStatus.COMPLETED:
        why += " (Call again calls those who did not answer)"
    return why


_CANCEL_WORDS = {
    RequestStatus.SENDING: "{it} is already being dialled",
    RequestStatus.PLACED: "{it} was already dialled (its calls are placed)",
    RequestStatus.COMPLETED: "{it} was already dialled, and is completed",
    RequestStatus.FAILED: "{it} already failed, so nobody was called",
    RequestStatus.UNKNOWN: "{it} was already sent (its outcome is unknown)",
    RequestStatus.CANCELLED: "{it} is already cancelled",
}


def _why_not_cancel(status: RequestStatus, it: str) -> str:
    """Why a request (`it`: "it", or "part 2 of 3 of it") cannot be cancelled."""
    words = _CANCEL_WORDS.get(status, "{it} is " + str(status))
    return words.format(it=it) + "; only a request not dialled yet can be cancelled"


def _late_by(record: RequestRecord, *, signed: bool = False) -> float:
    """Seconds since a scheduled request's time (0 for none; for one not due yet, 0, or
    how long until it, negative, when `signed`)."""
    if not record.scheduled_at:
        return 0.0
    try:
        due = datetime.fromisoformat(record.scheduled_at)
    except ValueError:
        return 0.0
    late = time.time() - due.timestamp()
    return late if signed else max(0.0, late)


def _part_key(key: str | None, part: int) -> str | None:
    """The idempotency key of one part: the order's own for the first."""
    return key if key is None or part == 1 else f"{key}#{part}"


def _calls(record: RequestRecord, recipients: Sequence[OrderRecipient]) -> list[CallRecord]:
    return [
        CallRecord(
            request_id=record.id,
            position=r.position,
            phone_number=r.phone,
            variables=dict(r.variables),
        )
        for r in recipients
    ]


def _call_ids(provider: Provider, ref: str, order: Order) -> dict[int, str]:
    """The provider's id of each call of a submission, by position, when it tells them
    (an optional provider method, `call_ids`; Intron direct's batch answer lists them)."""
    known = getattr(provider, "call_ids", None)
    if known is None:
        return {}
    try:
        return dict(known(ref, order))
    except Exception:  # the submit went through: never let this undo recording it
        log.exception("reading the call ids of %s's submission failed", provider.id)
        return {}


def _results_by_position(
    updates: Sequence[CallUpdate], calls: list[CallRecord]
) -> dict[int, dict[str, Any]]:
    """Each reported call matched to our recipient: by the position we tagged, else by
    the provider's call id we kept, else by number."""
    unmatched = {c.position: c for c in calls}
    by_call_id = {c.provider_call_id: c.position for c in calls if c.provider_call_id}
    results: dict[int, dict[str, Any]] = {}
    for update in updates:
        position = update.position if update.position in unmatched else None
        if position is None and update.provider_call_id:
            found = by_call_id.get(update.provider_call_id)
            position = found if found in unmatched else None
        if position is None and update.phone:
            position = next(
                (p for p, c in unmatched.items() if c.phone_number == update.phone), None
            )
        if position is None:
            continue
        unmatched.pop(position)
        results[position] = {
            "provider_call_id": update.provider_call_id,
            "outcome": update.outcome,
            "provider_status": update.provider_status,
            "duration": update.duration,
            "key_pressed": update.key_pressed,
        }
    return results


def describe_failure(exc: ProviderError, provider: Provider) -> str:
    """What went wrong, in words a user can act on."""
    label = provider.capabilities.label
    if isinstance(exc, OutcomeUnknownError):
        return (
            f"{label} may or may not have placed these calls (we got no clear answer). "
            "They were not resent, so nobody is called twice: check the results or the "
            "workflow's calls before sending again."
        )
    if isinstance(exc, AuthenticationError):
        # Said in the channel: the setting's name is for the admins, who are told by DM
        # (the event is KEY_REFUSED).
        return f"{label} refused our API key, so nobody was called; the admins have been told."
    if isinstance(exc, NotFoundError):
        return (
            f"{label} does not know this workflow (it may have been deleted), "
            "so nobody was called. Pick another workflow."
        )
    if isinstance(exc, RateLimitedError):
        wait = f" in {exc.retry_after:.0f} s" if exc.retry_after else " shortly"
        return f"{label}'s rate limit is reached, so nobody was called. Try again{wait}."
    if isinstance(exc, ProviderConnectionError):
        return f"{label} could not be reached, so nobody was called. Try again in a minute."
    if isinstance(exc, RefusedError) and exc.recipient is not None:
        who = f"recipient {exc.recipient}"
        if exc.phone:
            who += f" ({phones.mask(exc.phone)})"
        what = exc.message.strip().rstrip(".") or "refused"
        if exc.field:
            what = f"{exc.field} — {what}"
        return (
            f"{label} refused {who}: {what}. Nobody was called; fix that recipient and send again."
        )
    if isinstance(exc, RefusedError):
        return f"{label} refused the request, so nobody was called: {exc.message}"
    return f"{label} failed ({exc.message}); nobody was called."


class _Held(Exception):
    """Raised from `before_send`: the request waits for calling hours; nothing was sent."""

    def __init__(self, retry: RetryLater) -> None:
        super().__init__(str(retry))
        self.retry = retry


class _AlreadyTaken(Exception):
    """Another worker moved the request on first: this one must not send it."""


def _aware(moment: datetime | None) -> datetime | None:
    """An order's time as aware UTC (a naive one is a front end's slip: read as UTC)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _kept_back(call: CallRecord) -> bool:
    """A call the consent rules kept from being dialled (recorded as not called)."""
    return (call.provider_status or "").startswith(NOT_CALLED)
