"""Running escalations: call a policy's steps one after another until someone acknowledges.

Knows nothing of Slack or of any provider's API. Each step's call is an ordinary
request through `CallService` (source "escalation", no channel, so the calls'
notifier posts nothing for it); this service listens to the core
(`CallService.listeners`) and, inside the transaction that changed a step's
request, only queues a job to look at it.

Everything is a row and a job, written together:

- `escalation.step` calls one step: a compare-and-set on the step's row
  (pending → calling), the request that places its call and the step's timer
  (`escalation.timeout`, due when its wait is over) in one transaction, so a step
  is called at most once however often the job runs, and a worker killed at any
  moment leaves either nothing done (the job runs again) or everything. Before
  that, the calling rules (`bot/core/consent.py`): a number on the opt-out list,
  or, for a policy that is not urgent, a callee outside their calling hours now,
  skips the step and the chain moves on at once. A pager cannot wait for the
  morning: the ordinary request would become a call scheduled at the window's
  opening, which would ring hours after the escalation ended.
- `escalation.result` reads what became of a step's call: key 1 acknowledges; any
  other key, no answer, busy or a failed call ends the step and moves on at once;
  a call that could not be placed at all is placed once more with the policy's
  `fallback_workflow`, when it has one.
- `escalation.timeout`: the wait is over and the step still has no result: it
  counts as not acknowledged, and the chain moves on. A key 1 that comes after that,
  while the escalation still runs (at a later step), still acknowledges it. A fallback
  call gets a timer of its own, with the step's whole wait. And each step has a
  watchdog (an `escalation.timeout` due a margin after its wait): a step still pending
  then, its job having failed for good (parked), is skipped and the chain moves on, so
  a bug in one step never leaves an escalation running with no timer.

Moving on is a compare-and-set on the escalation's position (round, step), so
two jobs deciding at once (a result and the timer) move it once. Front ends hear
of every change through `EscalationListener`s, inside the transaction. When an
escalation ends (acknowledged, resolved, exhausted), any request of its steps not
dialled yet is cancelled in the same transaction: nobody is called for an
escalation that is over.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from bot import failpoints
from bot.core.consent import RULE_OPT_OUT, NoCallingHours, zones_for
from bot.core.events import Event
from bot.core.jobs import Job, Kind, NewJob, RetryLater, is_transient
from bot.core.models import RequestRecord, RequestStatus, now_iso
from bot.core.orders import InvalidOrder
from bot.core.policies import format_wait, is_user_id
from bot.input import phones
from bot.providers.base import CallOutcome
from bot.store.consent import NOT_CALLED

if TYPE_CHECKING:
    from bot.core.consent import Consent
    from bot.core.jobs import Jobs
    from bot.core.policies import Policy
    from bot.core.requests import CallService
    from bot.providers.base import Workflow
    from bot.store import Store

log = logging.getLogger(__name__)

STEP = "escalation.step"
RESULT = "escalation.result"
TIMEOUT = "escalation.timeout"
LANE = "results"  # results and timers: a few DB writes each, never behind a call
STEP_LANE = "calls"  # a step's job orders its call (and may wait for Slack's users.info)
SOURCE = "escalation"  # the source of every step's request
ACK_KEY = "1"
# A step's watchdog is due this long after its wait would be over, had it been called at
# once: by then a step still pending has a job that failed for good (or was lost).
WATCHDOG_MARGIN = 60.0
# While the step's job is still trying (backing off after a failure), the watchdog looks
# again this much later.
WATCHDOG_RECHECK = 15.0
# A timer that finds its step's wait not over yet (the fallback's call, placed later, has
# its own timer) leaves the step to that later timer.
EARLY = 0.5
# The alert text as the callee hears it: a long alert is cut, so the call is still short
# and within every provider's message limit.
SPOKEN_MESSAGE = 500
# Request events that may change what a step's call became.
WATCHED = frozenset(
    {
        Event.PROGRESS,
        Event.COMPLETED,
        Event.FAILED,
        Event.KEY_REFUSED,
        Event.UNKNOWN,
        Event.FOUND,
        Event.CANCELLED,
    }
)


class EscalationStatus(StrEnum):
    RUNNING = "running"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    EXHAUSTED = "exhausted"  # nobody acknowledged


class StepState(StrEnum):
    PENDING = "pending"  # its job will call it
    CALLING = "calling"  # its call is placed (or being placed); waiting for its result
    ENDED = "ended"  # its outcome is known (or its wait ran out)
    # Never called: no phone, the call could not be ordered, the number is on the opt-out
    # list, or (not urgent) the callee is outside their calling hours.
    SKIPPED = "skipped"


class StepOutcome(StrEnum):
    """How a step ended, in the core's words (front ends put them in theirs)."""

    ACKNOWLEDGED = "acknowledged"  # pressed 1
    OTHER_KEY = "other_key"  # answered, pressed another key
    NO_KEY = "no_key"  # answered (or voicemail), no key pressed
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # the call failed
    NOT_PLACED = "not_placed"  # the call could not be placed at all (nor by the fallback)
    NO_RESULT = "no_result"  # the wait ran out before the call's result came
    NO_PHONE = "no_phone"  # skipped: no usable phone number
    NOT_ORDERED = "not_ordered"  # skipped: the order was refused (workflow gone, values)
    # Skipped: not urgent, and the callee is outside the workflow's calling hours now
    # (`detail`: the window and zone; `due_at`: when it opens, None when it never does).
    OUTSIDE_HOURS = "outside_hours"
    # Skipped (or kept back at the dial): the number is on the opt-out list.
    OPTED_OUT = "opted_out"
    # Its call was cancelled before it was dialled: the escalation had ended first.
    NOT_CALLED = "not_called"


# Outcomes of a step that never called anyone: the calling rules or no usable number.
SKIPPED_OUTCOMES = frozenset(
    {
        StepOutcome.NO_PHONE,
        StepOutcome.NOT_ORDERED,
        StepOutcome.OUTSIDE_HOURS,
        StepOutcome.OPTED_OUT,
    }
)


class EscalationRecord(BaseModel):
    """One escalation, as stored."""

    id: str
    policy_id: str
    policy_name: str
    channel: str
    message: str
    status: EscalationStatus
    started_by: str
    source: str  # "command" | "shortcut" | "alertmanager" | "grafana" | "test"
    group_key: str | None = None
    test: bool = False
    round: int = 0  # 0-based repeat
    step: int = 0  # 0-based
    calling: str | None = None  # user id or masked number being called now
    started_at: str
    ended_at: str | None = None
    ended_by: str | None = None

    @property
    def running(self) -> bool:
        return self.status == EscalationStatus.RUNNING


class StepRecord(BaseModel):
    """One step of one round, once it is due."""

    escalation_id: str
    round: int
    step: int
    call: str  # as the policy says: a Slack user id or an E.164 number
    state: StepState
    phone: str | None = None  # the number called (whole; shown masked)
    name: str | None = None
    request_id: str | None = None
    fallback_request_id: str | None = None
    outcome: StepOutcome | None = None
    key_pressed: str | None = None
    detail: str | None = None  # why it was skipped or not placed; which fallback was used
    started_at: str | None = None
    ended_at: str | None = None
    # When its wait is over (unix time); for a step skipped outside calling hours, when
    # those hours open (no wait was started: the column is free, and no migration needed).
    due_at: float | None = None

    @property
    def is_user(self) -> bool:
        return _is_user(self.call)

    @property
    def who(self) -> str:
        """Who it calls, safe for a channel: the user id, or the number masked."""
        return self.call if self.is_user else phones.mask(self.call)

    @property
    def skipped(self) -> bool:
        """Never called anyone (no usable number, or the calling rules kept it back)."""
        return self.outcome in SKIPPED_OUTCOMES

    @property
    def opens_at(self) -> str | None:
        """A step skipped outside calling hours: when they open (ISO, UTC); else None."""
        if self.outcome != StepOutcome.OUTSIDE_HOURS or self.due_at is None:
            return None
        return datetime.fromtimestamp(self.due_at, UTC).isoformat(timespec="seconds")


class Change(StrEnum):
    """What happened to an escalation, for its listeners."""

    STARTED = "started"
    CALLING = "calling"  # a step's call is placed
    FALLBACK = "fallback"  # a step's call could not be placed: the fallback is tried
    STEP_ENDED = "step_ended"  # a step's outcome (or that it was skipped)
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    EXHAUSTED = "exhausted"


class EscalationListener(Protocol):
    """A front end showing escalations: called inside the transaction of each change, it
    may only write to the store (queue the jobs that show it)."""

    def escalation_changed(
        self, record: EscalationRecord, change: Change, step: StepRecord | None
    ) -> None: ...


@dataclass(frozen=True)
class Contact:
    """A Slack user's phone number as their profile has it now (E.164), and their name;
    or why there is no usable number (`problem`, in words for the channel)."""

    phone: str | None
    name: str | None = None
    problem: str | None = None


class PhoneBook(Protocol):
    """Reads the phone number of a user (the Slack adapter implements it: the `phone`
    field of their Slack profile)."""

    async def contact(self, user_id: str) -> Contact: ...


class NotPossible(Exception):
    """Why an escalation cannot be acknowledged or resolved (it has ended); nothing changed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class _Policy:
    """The policy as it was when the escalation started (stored with it, so editing or
    deleting the policy meanwhile does not change a running chain)."""

    data: dict[str, Any]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.data["steps"])

    @property
    def repeat(self) -> int:
        return int(self.data.get("repeat") or 0)

    @property
    def workflow(self) -> str:
        return str(self.data["workflow"])

    @property
    def fallback(self) -> str | None:
        return self.data.get("fallback_workflow") or None

    @property
    def voice(self) -> str | None:
        return self.data.get("voice") or None

    @property
    def urgent(self) -> bool:
        return bool(self.data.get("urgent"))


class EscalationService:
    """One per process, over the shared database. `start`, `acknowledge` and `resolve`
    only write (fast, for the web process); the worker runs the jobs that call."""

    def __init__(
        self,
        store: Store,
        jobs: Jobs,
        calls: CallService,
        *,
        phonebook: PhoneBook | None = None,
    ) -> None:
        self.store = store
        self.table = store.escalations
        self.jobs = jobs
        self.calls = calls
        self.phonebook = phonebook
        self.listeners: list[EscalationListener] = []

    def kinds(self) -> dict[str, Kind]:
        """The worker's job kinds for escalations."""
        return {
            STEP: Kind(self.run_step, STEP_LANE),
            RESULT: Kind(self.run_result, LANE),
            TIMEOUT: Kind(self.run_timeout, LANE),
        }

    # ------------------------------------------------------------ starting and stopping

    def start(
        self,
        policy: Policy,
        message: str,
        *,
        started_by: str,
        source: str,
        group_key: str | None = None,
        test: bool = False,
    ) -> tuple[EscalationRecord, bool]:
        """Stored with its first step's job in one transaction; (record, created). While an
        escalation with the same group_key is RUNNING, returns it with created=False."""
        snapshot = policy.model_dump(mode="json")
        first = snapshot["steps"][0]["call"]
        record = EscalationRecord(
            id=f"es-{uuid.uuid4().hex[:12]}",
            policy_id=policy.id,
            policy_name=policy.name,
            channel=policy.channel,
            message=message,
            status=EscalationStatus.RUNNING,
            started_by=started_by,
            source=source,
            group_key=group_key,
            test=test,
            calling=_who(first),
            started_at=now_iso(),
        )
        with self.store.write():
            if group_key and (found := self.table.running_in_group(group_key)):
                return EscalationRecord.model_validate(found), False
            self.table.add(record.model_dump(mode="json"), snapshot)
            self._add_step(record.id, 0, 0, first, float(snapshot["steps"][0]["wait"]))
            self.store.audit.record(
                started_by,
                "escalation.started",
                record.id,
                {"policy": policy.id, "source": source, "test": test, "group_key": group_key},
            )
            self._changed(record, Change.STARTED, None)
        return record, True

    def acknowledge(self, escalation_id: str, by: str) -> EscalationRecord:
        """Stop the chain: acknowledged by `by` (a Slack user id). Raises NotPossible if it
        has ended. A call in flight still has its result reported."""
        return self._stop(escalation_id, EscalationStatus.ACKNOWLEDGED, by)

    def resolve(self, escalation_id: str, by: str) -> EscalationRecord:
        """Stop the chain: resolved by `by`. Raises NotPossible if it has ended."""
        return self._stop(escalation_id, EscalationStatus.RESOLVED, by)

    def resolve_group(self, group_key: str, by: str) -> EscalationRecord | None:
        """Resolve the running escalation of an alert group; None when there is none."""
        found = self.table.running_in_group(group_key)
        if found is None:
            return None
        try:
            return self.resolve(found["id"], by)
        except NotPossible:  # it ended meanwhile
            return None

    def running(self) -> list[EscalationRecord]:
        return [
            EscalationRecord.model_validate(r)
            for r in self.table.with_status(EscalationStatus.RUNNING)
        ]

    def get(self, escalation_id: str) -> EscalationRecord | None:
        row = self.table.get(escalation_id)
        return EscalationRecord.model_validate(row) if row else None

    def steps(self, escalation_id: str) -> list[StepRecord]:
        """Every step called (or due) so far, in order."""
        return [StepRecord.model_validate(r) for r in self.table.steps(escalation_id)]

    def policy_steps(self, escalation_id: str) -> int:
        """How many steps the escalation's policy had when it started."""
        policy = self.table.policy(escalation_id)
        return len(policy["steps"]) if policy else 0

    def policy_repeat(self, escalation_id: str) -> int:
        policy = self.table.policy(escalation_id)
        return int(policy.get("repeat") or 0) if policy else 0

    def _stop(self, escalation_id: str, status: EscalationStatus, by: str) -> EscalationRecord:
        with self.store.write():
            if not self.table.end(escalation_id, status, ended_at=now_iso(), ended_by=by):
                current = self.get(escalation_id)
                raise NotPossible(_why_not(current))
            record = self.get(escalation_id)
            assert record is not None
            self.store.audit.record(by, f"escalation.{status}", escalation_id, {})
            self._cancel_leftovers(escalation_id)
            change = Change.ACKNOWLEDGED if status == EscalationStatus.ACKNOWLEDGED else None
            self._changed(record, change or Change.RESOLVED, None)
        return record

    # ------------------------------------------------------------ hearing of the calls

    def request_changed(self, record: RequestRecord, event: Event) -> None:
        """A core listener: a step's request changed → queue a look at it (nothing else
        here: this runs inside the core's transaction)."""
        if record.source != SOURCE or event not in WATCHED:
            return
        row = self.table.step_by_request(record.id)
        if row is None:
            return
        self.jobs.add(
            NewJob(
                RESULT,
                {
                    "escalation_id": row["escalation_id"],
                    "round": row["round"],
                    "step": row["step"],
                    "request_id": record.id,
                },
                lane=LANE,
                dedupe=f"{RESULT}:{record.id}",
            )
        )

    # ------------------------------------------------------------ the jobs

    async def run_step(self, job: Job) -> None:
        """Call one step (the `escalation.step` job), at most once."""
        escalation_id, round, step = _position(job.payload)
        record = self.get(escalation_id)
        row = self.table.step(escalation_id, round, step)
        if record is None or row is None or row["state"] != StepState.PENDING:
            return  # called already (this job ran before), or never due
        if not record.running or (record.round, record.step) != (round, step):
            return  # stopped before this step was called
        policy = self._policy(escalation_id)
        call = row["call"]
        contact = await self._contact(call)
        if contact.phone is None:
            self._skip(record, round, step, StepOutcome.NO_PHONE, contact.problem or "no phone")
            return
        wait = float(policy.steps[step]["wait"])
        try:
            self._start_call(record, policy, round, step, contact, wait, policy.workflow, "call")
        except _Stopped:
            return
        except _NotAllowed as refused:  # opted out, or outside calling hours (not urgent)
            self._skip_refused(record, round, step, contact, refused)
            return
        except (InvalidOrder, LookupError) as exc:  # the workflow is gone, a value too long
            why = _order_problem(exc)
            if policy.fallback is None:
                self._skip(record, round, step, StepOutcome.NOT_ORDERED, why)
                return
            detail = f"{why}. Calling with the fallback workflow instead."
            try:
                self._start_call(
                    record, policy, round, step, contact, wait, policy.fallback, "fallback", detail
                )
            except _Stopped:
                return
            except _NotAllowed as refused:  # the fallback's own calling hours
                self._skip_refused(record, round, step, contact, refused)
            except (InvalidOrder, LookupError) as again:
                why += (
                    f"; the fallback workflow could not be ordered either: {_order_problem(again)}"
                )
                self._skip(record, round, step, StepOutcome.NOT_ORDERED, why)
            return
        failpoints.reach("escalation.calling")  # committed: the call will be placed once

    def _start_call(
        self,
        record: EscalationRecord,
        policy: _Policy,
        round: int,
        step: int,
        contact: Contact,
        wait: float,
        workflow: str,
        what: str,
        detail: str | None = None,
    ) -> None:
        """One transaction: the step pending → calling (the compare-and-set that calls it
        at most once), its request, its timer. Raises _Stopped (all undone) when another
        run took the step or the escalation stopped; InvalidOrder when the order is wrong;
        _NotAllowed (nothing stored) when the calling rules keep the call back."""
        assert contact.phone is not None
        if (refused := self._refused(contact.phone, workflow, urgent=policy.urgent)) is not None:
            raise refused
        order = self._order(record, policy, workflow, contact, round, step, what)
        escalation_id = record.id
        with self.store.write():
            started = self.table.step_transition(
                escalation_id,
                round,
                step,
                [StepState.PENDING],
                StepState.CALLING,
                phone=contact.phone,
                name=contact.name,
                started_at=now_iso(),
                due_at=time.time() + wait,
                detail=detail,
            )
            if started is None:
                raise _Stopped()  # another run of this job took it
            current = self.get(escalation_id)
            if current is None or not current.running:
                raise _Stopped()
            request, _ = self.calls.accept(order)
            self._must_not_wait(request, contact.phone, workflow, policy.urgent)
            fields = {"request_id": request.id}
            if what == "fallback":
                fields["fallback_request_id"] = request.id
            self.table.set_step(escalation_id, round, step, **fields)
            self.table.set_calling(escalation_id, _who(started["call"]))
            self.jobs.add(
                NewJob(
                    TIMEOUT,
                    {"escalation_id": escalation_id, "round": round, "step": step},
                    lane=LANE,
                    dedupe=f"{TIMEOUT}:{escalation_id}:{round}:{step}",
                    run_at=time.time() + wait,
                )
            )
            change = Change.FALLBACK if what == "fallback" else Change.CALLING
            self._changed(
                self._get(escalation_id), change, self._step_now(escalation_id, round, step)
            )

    async def run_result(self, job: Job) -> None:
        """What a step's call became (the `escalation.result` job)."""
        escalation_id, round, step = _position(job.payload)
        request_id = job.payload["request_id"]
        row = self.table.step(escalation_id, round, step)
        request = self.calls.requests.get(request_id)
        if row is None or request is None:
            return
        if row["fallback_request_id"] and request_id != row["fallback_request_id"]:
            return  # the first call failed and the fallback's is the one that counts
        if row["state"] != StepState.CALLING:
            if row["state"] == StepState.ENDED and row["outcome"] == StepOutcome.NO_RESULT:
                self._late_result(escalation_id, round, step, request_id)
            return  # decided already
        calls = self.calls.requests.calls(request_id)
        call = calls[0] if calls else None
        key = call.key_pressed if call else None
        if key == ACK_KEY:
            self._acknowledged_by_call(escalation_id, round, step, key)
            return
        if request.status == RequestStatus.FAILED:
            await self._not_placed(escalation_id, round, step, row, request)
            return
        if request.status == RequestStatus.CANCELLED:  # the escalation ended before the dial
            self._end_step(
                escalation_id,
                round,
                step,
                StepOutcome.NOT_CALLED,
                detail="the escalation had ended before this call was dialled",
            )
            return
        if request.status != RequestStatus.COMPLETED:
            return  # still going, or "outcome unknown": the step's timer decides
        if call is not None and (call.provider_status or "").startswith(NOT_CALLED):
            # Kept back just before the dial: the number went on the opt-out list after
            # the step's call was ordered (escalations are exempt from the frequency cap).
            opted_out = RULE_OPT_OUT in (call.provider_status or "")
            self._end_step(
                escalation_id,
                round,
                step,
                StepOutcome.OPTED_OUT if opted_out else StepOutcome.NOT_CALLED,
                detail=f"{phones.mask(call.phone_number)} is on the opt-out list"
                if opted_out
                else call.provider_status,
            )
            return
        outcome = _outcome(call.outcome if call else None, key)
        self._end_step(escalation_id, round, step, outcome, key=key)

    async def run_timeout(self, job: Job) -> None:
        """A step's wait is over (the `escalation.timeout` job): without a result yet, it
        counts as not acknowledged, and the chain moves on."""
        escalation_id, round, step = _position(job.payload)
        row = self.table.step(escalation_id, round, step)
        record = self.get(escalation_id)
        if row is None or record is None:
            return
        if job.payload.get("watchdog"):
            self._watchdog(record, row)
            return
        if row["state"] != StepState.CALLING:
            return
        if not record.running:
            return  # stopped: the call's result is still reported when it comes
        if row["due_at"] is not None and time.time() < float(row["due_at"]) - EARLY:
            return  # the fallback's call was placed later: its own timer decides
        self._end_step(escalation_id, round, step, StepOutcome.NO_RESULT)

    def _watchdog(self, record: EscalationRecord, row: dict[str, Any]) -> None:
        """A margin after the step's wait: a step still pending (its job failed for good,
        and was parked, or was lost) is skipped and the chain moves on, so the escalation
        never stays running with nothing left to move it. While the step's job is still
        trying (backing off), look again later."""
        round, step = int(row["round"]), int(row["step"])
        if row["state"] != StepState.PENDING or not record.running:
            return
        if (record.round, record.step) != (round, step):
            return
        dedupe = _step_dedupe(record.id, round, step)
        trying = [j for j in self.jobs.store.pending(STEP) if j.dedupe == dedupe]
        # A job running now, or not tried yet (the worker was down until now), is left to
        # call the step; one backing off after failing past the step's wait and this margin
        # (Slack down and no number kept, say) is given up on: the chain must not stall on
        # one person (the job's compare-and-set then finds the step skipped).
        now = time.time()
        if any(j.attempts == 0 or (j.lease_until or 0) > now for j in trying):
            raise RetryLater(WATCHDOG_RECHECK, "the step's job is still trying")
        log.error(
            "escalation %s: step %d of round %d was never called (its job failed); skipped",
            record.id,
            step + 1,
            round + 1,
        )
        self._skip(
            record,
            round,
            step,
            StepOutcome.NOT_ORDERED,
            "its call could not be ordered: the job calling it kept failing (the worker's "
            "log says why)",
        )

    # ------------------------------------------------------------ deciding

    def _acknowledged_by_call(self, escalation_id: str, round: int, step: int, key: str) -> None:
        with self.store.write():
            ended = self.table.step_transition(
                escalation_id,
                round,
                step,
                [StepState.CALLING],
                StepState.ENDED,
                outcome=StepOutcome.ACKNOWLEDGED,
                key_pressed=key,
                ended_at=now_iso(),
            )
            if ended is None:
                return
            self._credit(escalation_id, StepRecord.model_validate(ended), late=False)

    def _late_result(self, escalation_id: str, round: int, step: int, request_id: str) -> None:
        """The result of a call whose step's wait ran out first (the step ended as
        no_result and the chain moved on). Key 1 still acknowledges the escalation while
        it runs: the callee did answer, just late, and the chain must not go on to end as
        "nobody acknowledged". Once it has ended, the key is reported, not credited."""
        calls = self.calls.requests.calls(request_id)
        key = calls[0].key_pressed if calls else None
        if key != ACK_KEY:
            return  # the wait is over: any other outcome changes nothing
        wait = float(self._policy(escalation_id).steps[step]["wait"])
        with self.store.write():
            current = self._get(escalation_id)
            words = f"pressed 1 after the step's wait ({format_wait(wait)}) was over"
            if not current.running:
                words += ", once the escalation had ended"
            ended = self.table.step_transition(
                escalation_id,
                round,
                step,
                [StepState.ENDED],
                StepState.ENDED,
                outcome_from=StepOutcome.NO_RESULT,
                outcome=StepOutcome.ACKNOWLEDGED,
                key_pressed=key,
                detail=words,
            )
            if ended is None:
                return  # another run of this job did it
            self._credit(escalation_id, StepRecord.model_validate(ended), late=True)

    def _credit(self, escalation_id: str, done: StepRecord, *, late: bool) -> None:
        """Inside the transaction that recorded a key 1 on `done`: acknowledge the
        escalation if it still runs (cancelling whatever of its calls is not dialled yet),
        and report the step either way."""
        stopped = self.table.end(
            escalation_id, EscalationStatus.ACKNOWLEDGED, ended_at=now_iso(), ended_by=done.who
        )
        record = self._get(escalation_id)
        self._changed(record, Change.STEP_ENDED, done)
        if stopped:
            how = {"by": "call", "after_wait": True} if late else {"by": "call"}
            self.store.audit.record(done.who, "escalation.acknowledged", escalation_id, how)
            self._cancel_leftovers(escalation_id)
            self._changed(record, Change.ACKNOWLEDGED, done)

    async def _not_placed(
        self, escalation_id: str, round: int, step: int, row: dict[str, Any], request: Any
    ) -> None:
        """The call could not be placed at all: the fallback workflow, once, if the policy
        has one and the escalation still runs; else the step ends and the chain moves on."""
        policy = self._policy(escalation_id)
        record = self._get(escalation_id)
        first_failed = request.id == row["request_id"] and not row["fallback_request_id"]
        if first_failed and policy.fallback and record.running:
            contact = Contact(phone=row["phone"], name=row["name"])
            error = request.error or "the call could not be placed"
            refused = self._refused(row["phone"], policy.fallback, urgent=policy.urgent)
            if refused is not None:  # the fallback's calling hours, or opted out meanwhile
                detail = f"{error}; the fallback workflow was not tried: {refused.words}"
                self._end_step(escalation_id, round, step, StepOutcome.NOT_PLACED, detail=detail)
                return
            order = self._order(record, policy, policy.fallback, contact, round, step, "fallback")
            wait = float(policy.steps[step]["wait"])
            try:
                with self.store.write():
                    # Read again under the write lock: Acknowledge or Resolve may have been
                    # pressed since the look above, and nothing must ring after that.
                    current = self.get(escalation_id)
                    if current is None or not current.running:
                        raise _Ended()
                    fallback, _ = self.calls.accept(order)
                    self._must_not_wait(fallback, row["phone"], policy.fallback, policy.urgent)
                    if not self.table.claim_fallback(escalation_id, round, step, fallback.id):
                        raise _Stopped()  # undoes the request: another run placed it
                    detail = (
                        f"{request.error or 'the call could not be placed'} "
                        f"Calling again with the fallback workflow '{fallback.workflow_name}'."
                    )
                    # The fallback's call gets the step's whole wait, on a timer of its own
                    # (the step's first timer, finding the wait not over, leaves it be).
                    due = time.time() + wait
                    self.table.set_step(escalation_id, round, step, detail=detail, due_at=due)
                    self.jobs.add(
                        NewJob(
                            TIMEOUT,
                            {"escalation_id": escalation_id, "round": round, "step": step},
                            lane=LANE,
                            dedupe=f"{TIMEOUT}:{escalation_id}:{round}:{step}:fallback",
                            run_at=due,
                        )
                    )
                    self._changed(
                        current, Change.FALLBACK, self._step_now(escalation_id, round, step)
                    )
                return
            except _Ended:
                pass  # stopped meanwhile: the step ends below, its reply says so
            except _Stopped:
                return
            except _NotAllowed as kept:  # undone: the fallback's call would have waited
                detail = f"{error}; the fallback workflow was not tried: {kept.words}"
                self._end_step(escalation_id, round, step, StepOutcome.NOT_PLACED, detail=detail)
                return
            except (InvalidOrder, LookupError) as exc:
                error = f"{error}; the fallback could not be ordered either: {_order_problem(exc)}"
                self._end_step(escalation_id, round, step, StepOutcome.NOT_PLACED, detail=error)
                return
        self._end_step(
            escalation_id,
            round,
            step,
            StepOutcome.NOT_PLACED,
            detail=request.error or "the call could not be placed",
        )

    def _skip(
        self,
        record: EscalationRecord,
        round: int,
        step: int,
        outcome: StepOutcome,
        why: str,
        **fields: Any,
    ) -> None:
        """The step is never called (pending → skipped, once): report it and move on at
        once. `fields`: more of the step's row (the number, when its hours open)."""
        with self.store.write():
            skipped = self.table.step_transition(
                record.id,
                round,
                step,
                [StepState.PENDING],
                StepState.SKIPPED,
                outcome=outcome,
                detail=why,
                ended_at=now_iso(),
                **fields,
            )
            if skipped is None:
                return
            current = self._get(record.id)
            self._changed(current, Change.STEP_ENDED, StepRecord.model_validate(skipped))
            self._move_on(current, round, step)

    def _skip_refused(
        self,
        record: EscalationRecord,
        round: int,
        step: int,
        contact: Contact,
        refused: _NotAllowed,
    ) -> None:
        """Skip a step the calling rules keep back, keeping the number (shown masked) and,
        outside calling hours, when they open (in `due_at`: this step has no wait)."""
        self._skip(
            record,
            round,
            step,
            refused.outcome,
            refused.detail,
            phone=contact.phone,
            name=contact.name,
            due_at=refused.opens,
        )

    def _end_step(
        self,
        escalation_id: str,
        round: int,
        step: int,
        outcome: StepOutcome,
        *,
        key: str | None = None,
        detail: str | None = None,
    ) -> None:
        """A step's call ended without acknowledgement (or its wait ran out): report it,
        and move on if the escalation still runs at this step."""
        with self.store.write():
            fields: dict[str, Any] = {"outcome": outcome, "ended_at": now_iso()}
            if key is not None:
                fields["key_pressed"] = key
            if detail is not None:
                fields["detail"] = detail
            ended = self.table.step_transition(
                escalation_id, round, step, [StepState.CALLING], StepState.ENDED, **fields
            )
            if ended is None:
                return
            record = self._get(escalation_id)
            self._changed(record, Change.STEP_ENDED, StepRecord.model_validate(ended))
            self._move_on(record, round, step)
        failpoints.reach("escalation.step_ended")

    def _move_on(self, record: EscalationRecord, round: int, step: int) -> None:
        """To the next step, the next round, or the end: nobody acknowledged. Inside the
        caller's transaction; a compare-and-set on the position, so it happens once."""
        if not record.running or (record.round, record.step) != (round, step):
            return
        policy = self._policy(record.id)
        steps = policy.steps
        if record.test:
            following = None  # a test calls only the first step
        elif step + 1 < len(steps):
            following = (round, step + 1)
        elif round < policy.repeat:
            following = (round + 1, 0)
        else:
            following = None
        if following is None:
            if self.table.end(
                record.id,
                EscalationStatus.EXHAUSTED,
                ended_at=now_iso(),
                ended_by=None,
                at=(round, step),
            ):
                self.store.audit.record("escalation", "escalation.exhausted", record.id, {})
                self._cancel_leftovers(record.id)
                self._changed(self._get(record.id), Change.EXHAUSTED, None)
            return
        call = steps[following[1]]["call"]
        if self.table.move(record.id, (round, step), following, _who(call)):
            self._add_step(record.id, *following, call, float(steps[following[1]]["wait"]))
            self._changed(self._get(record.id), Change.CALLING, None)

    # ------------------------------------------------------------ the calling rules

    def _refused(self, phone: str, workflow_ref: str, *, urgent: bool) -> _NotAllowed | None:
        """Whether the calling rules keep a step's call back now, asked before it is
        ordered: the opt-out list always; calling hours unless the policy is urgent. A
        pager cannot wait: an ordinary request outside its hours would be scheduled at
        their opening and ring long after the escalation ended, so the step is skipped.
        None when the call may go (or the workflow cannot be found: ordering it says so,
        and the fallback may be tried). Escalations are exempt from the frequency cap."""
        consent = self.calls.consent
        if consent.is_opted_out(phone):
            return _NotAllowed(
                StepOutcome.OPTED_OUT, f"{phones.mask(phone)} is on the opt-out list"
            )
        if urgent:
            return None
        try:
            workflow = self.calls.workflows.find(workflow_ref)
        except (InvalidOrder, LookupError):
            return None
        try:
            opens = consent.waits_until(phone, workflow, datetime.now(UTC))
        except NoCallingHours as exc:  # its hours never open in all of its zones
            return _NotAllowed(StepOutcome.OUTSIDE_HOURS, str(exc))
        if opens is None:
            return None
        return _NotAllowed(
            StepOutcome.OUTSIDE_HOURS, _window_words(consent, phone, workflow), opens.timestamp()
        )

    def _must_not_wait(
        self, request: RequestRecord, phone: str, workflow_ref: str, urgent: bool
    ) -> None:
        """Inside the transaction that accepted a step's call: should it have become a call
        scheduled for later after all (the window closed between the check above and the
        order), raise _NotAllowed, which undoes the request with everything else."""
        if request.status != RequestStatus.SCHEDULED and request.parts <= 1:
            return
        refused = self._refused(phone, workflow_ref, urgent=urgent)
        if refused is None:  # cannot tell why: still never leave it waiting
            opens = request.scheduled_at
            refused = _NotAllowed(
                StepOutcome.OUTSIDE_HOURS,
                "calling hours",
                datetime.fromisoformat(opens).timestamp() if opens else None,
            )
        raise refused

    def _cancel_leftovers(self, escalation_id: str) -> None:
        """Belt and braces, inside the transaction that ends the escalation: cancel every
        request of its steps that is not dialled yet (scheduled, or accepted and not being
        sent), so nothing rings for an escalation that is over. A request being sent or
        dialled already is left alone: its result is still reported."""
        from bot.core.requests import CANCELLABLE  # here: the requests module imports the store
        from bot.core.requests import NotPossible as CannotCancel

        for row in self.table.steps(escalation_id):
            for request_id in {row["request_id"], row["fallback_request_id"]} - {None}:
                parts = self.calls.requests.parts(request_id)
                # All or none (CallService.cancel moves every part together); read under
                # this transaction's lock, so the place job cannot move them meanwhile.
                if not parts or any(p.status not in CANCELLABLE for p in parts):
                    continue
                try:
                    self.calls.cancel(request_id, SOURCE)
                except CannotCancel:  # not expected under the lock; never fail the end
                    log.warning("could not cancel %s of escalation %s", request_id, escalation_id)
                    continue
                log.info("cancelled %s: escalation %s has ended", request_id, escalation_id)

    # ------------------------------------------------------------ helpers

    def _add_step(self, escalation_id: str, round: int, step: int, call: str, wait: float) -> None:
        """The step's row (pending), its job, and its watchdog (see `_watchdog`)."""
        added = self.table.add_step(
            {
                "escalation_id": escalation_id,
                "round": round,
                "step": step,
                "call": call,
                "state": StepState.PENDING,
            }
        )
        if added:
            where = {"escalation_id": escalation_id, "round": round, "step": step}
            self.jobs.add(
                NewJob(STEP, where, lane=STEP_LANE, dedupe=_step_dedupe(escalation_id, round, step))
            )
            self.jobs.add(
                NewJob(
                    TIMEOUT,
                    where | {"watchdog": True},
                    lane=LANE,
                    dedupe=f"{TIMEOUT}:{escalation_id}:{round}:{step}:watchdog",
                    run_at=time.time() + wait + WATCHDOG_MARGIN,
                )
            )

    async def _contact(self, call: str) -> Contact:
        if not _is_user(call):
            return Contact(phone=call)
        if self.phonebook is None:
            return Contact(phone=None, problem="no way to read Slack profiles is configured")
        try:
            return await self.phonebook.contact(call)
        except Exception as exc:  # an unexpected failure must not stall the chain
            if is_transient(exc):
                raise  # Slack down and no number kept: the job tries again (the watchdog bounds it)
            log.exception("reading the phone of %s failed", call)
            return Contact(phone=None, problem=f"their profile could not be read ({exc})")

    def _order(
        self,
        record: EscalationRecord,
        policy: _Policy,
        workflow: str,
        contact: Contact,
        round: int,
        step: int,
        what: str,
    ) -> Any:
        from bot.core.requests import CallOrder  # here: the requests module imports the store
        from bot.input.recipients import Recipient

        assert contact.phone is not None
        values = {
            "message": _spoken(record.message),
            "policy": record.policy_name,
            "name": contact.name or "on-call engineer",
            "step": str(step + 1),
        }
        return CallOrder(
            workflow=workflow,
            recipients=[Recipient(contact.phone, values)],
            voice=policy.voice,
            requested_by=record.started_by,
            channel=None,  # the calls' notifier posts nothing: the escalation reports it
            source=SOURCE,
            idempotency_key=f"{record.id}:{round}:{step}:{what}",
            urgent=policy.urgent,
        )

    def _policy(self, escalation_id: str) -> _Policy:
        data = self.table.policy(escalation_id)
        assert data is not None
        return _Policy(data)

    def _get(self, escalation_id: str) -> EscalationRecord:
        record = self.get(escalation_id)
        assert record is not None
        return record

    def _step_now(self, escalation_id: str, round: int, step: int) -> StepRecord:
        row = self.table.step(escalation_id, round, step)
        assert row is not None
        return StepRecord.model_validate(row)

    def _changed(self, record: EscalationRecord, change: Change, step: StepRecord | None) -> None:
        for listener in self.listeners:
            listener.escalation_changed(record, change, step)


class _Stopped(Exception):
    """Undo the transaction: the escalation stopped, or another run did this first."""


class _Ended(_Stopped):
    """Undo the transaction: the escalation has ended (acknowledged, resolved)."""


class _NotAllowed(Exception):
    """The calling rules keep a step's call back: how the step ends (`outcome`), why
    (`detail`: the masked number on the opt-out list, or the window and zone), and when
    its calling hours open (unix time; None: not until someone changes something)."""

    def __init__(self, outcome: StepOutcome, detail: str, opens: float | None = None) -> None:
        self.outcome = outcome
        self.detail = detail
        self.opens = opens
        super().__init__(detail)

    @property
    def words(self) -> str:
        """In a sentence, for a reply that cannot format dates (the fallback's detail)."""
        if self.outcome != StepOutcome.OUTSIDE_HOURS:
            return self.detail
        if self.opens is None:
            return f"outside calling hours: {self.detail}"
        opens = datetime.fromtimestamp(self.opens, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"outside calling hours ({self.detail}), which open {opens}"


def _window_words(consent: Consent, phone: str, workflow: Workflow) -> str:
    """`08:00-21:00, Africa/Lagos`: the workflow's calling hours and the callee's zone; for
    a number that may be in several zones, the hours valid in all of them, saying so."""
    names = zones_for(phone)
    if len(names) > 1:
        return consent.describe_window(phone, workflow)
    zone = names[0] if names else "UTC (its time zone is not known)"
    return f"{consent.hours_for(workflow)}, {zone}"


def _position(payload: dict[str, Any]) -> tuple[str, int, int]:
    return str(payload["escalation_id"]), int(payload["round"]), int(payload["step"])


def _step_dedupe(escalation_id: str, round: int, step: int) -> str:
    """The dedupe key of a step's `escalation.step` job."""
    return f"{STEP}:{escalation_id}:{round}:{step}"


def _is_user(call: str) -> bool:
    return is_user_id(call)


def _who(call: str) -> str:
    return call if _is_user(call) else phones.mask(call)


def _spoken(message: str) -> str:
    """The alert as the callee hears it: on one line, and short."""
    text = " ".join(message.split())
    return text if len(text) <= SPOKEN_MESSAGE else text[: SPOKEN_MESSAGE - 1] + "…"


def _outcome(outcome: CallOutcome | None, key: str | None) -> StepOutcome:
    if key:
        return StepOutcome.OTHER_KEY
    match outcome:
        case CallOutcome.ANSWERED | CallOutcome.VOICEMAIL:
            return StepOutcome.NO_KEY
        case CallOutcome.NO_ANSWER:
            return StepOutcome.NO_ANSWER
        case CallOutcome.BUSY:
            return StepOutcome.BUSY
        case _:
            return StepOutcome.FAILED


def _order_problem(exc: Exception) -> str:
    if isinstance(exc, InvalidOrder):
        return "; ".join(p.message for p in exc.problems) or "the order was refused"
    return str(exc) or type(exc).__name__


def _why_not(record: EscalationRecord | None) -> str:
    if record is None:
        return "there is no such escalation here"
    words = {
        EscalationStatus.ACKNOWLEDGED: "it was already acknowledged",
        EscalationStatus.RESOLVED: "it was already resolved",
        EscalationStatus.EXHAUSTED: "it has ended: nobody acknowledged",
    }
    return words.get(record.status, f"it is {record.status}")


def elapsed(since: str | None, until: str | None = None) -> float:
    """Seconds between two stored ISO times (until now when `until` is None)."""
    if not since:
        return 0.0
    start = datetime.fromisoformat(since)
    end = datetime.fromisoformat(until) if until else datetime.now(UTC)
    return max(0.0, (end - start).total_seconds())
