"""The core's records: a request, its calls, and the figures computed from them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel

from bot.providers.base import CallOutcome


class RequestStatus(StrEnum):
    """Where a request is in its life."""

    SCHEDULED = "scheduled"  # stored, to be dialled at `scheduled_at`; may be cancelled
    ACCEPTED = "accepted"  # stored; nothing sent to the provider yet
    SENDING = "sending"  # the submit is under way
    PLACED = "placed"  # the provider has it; waiting for results
    COMPLETED = "completed"  # every call has its outcome
    FAILED = "failed"  # refused or not sent: nobody was called
    UNKNOWN = "unknown"  # may or may not have been placed: check before resending
    CANCELLED = "cancelled"  # cancelled before it was dialled: nobody was called


FINAL_STATUSES = frozenset(
    {
        RequestStatus.COMPLETED,
        RequestStatus.FAILED,
        RequestStatus.UNKNOWN,
        RequestStatus.CANCELLED,
    }
)


class RequestRecord(BaseModel):
    """One call request, as stored."""

    id: str
    created_at: str
    updated_at: str
    status: RequestStatus
    provider: str
    workflow_id: str | None = None
    workflow_name: str
    voice: str | None = None
    requested_by: str
    channel: str | None = None
    source: str
    idempotency_key: str | None = None
    recipient_count: int
    provider_ref: str | None = None  # the provider's id for the submission (a batch id)
    error: str | None = None
    completed_at: str | None = None
    # A request larger than one submission carries is split (CallService.accept):
    # `part` of `parts`, all sharing `part_of`, the id of the first.
    part_of: str | None = None
    part: int = 1
    parts: int = 1
    # A scheduled request: when it is to be dialled (ISO, UTC); who cancelled it, if anyone.
    scheduled_at: str | None = None
    cancelled_by: str | None = None


class CallRecord(BaseModel):
    """One recipient of a request and, once known, the call's result."""

    request_id: str
    position: int
    phone_number: str
    variables: dict[str, str]
    provider_call_id: str | None = None
    outcome: CallOutcome | None = None
    provider_status: str | None = None
    duration: float | None = None
    key_pressed: str | None = None


class Stats(BaseModel):
    """A request's figures, computed from its calls."""

    total: int = 0
    answered: int = 0
    voicemail: int = 0
    no_answer: int = 0
    busy: int = 0
    failed: int = 0  # failed, rejected or cancelled
    pending: int = 0  # no outcome yet
    keys: dict[str, int] = {}  # key pressed -> how many calls
    avg_duration: float | None = None  # over answered calls
    success_rate: float | None = None  # answered / total, in percent

    @property
    def not_answered(self) -> int:
        return self.no_answer + self.busy

    @property
    def replied(self) -> int:
        return sum(self.keys.values())

    @classmethod
    def from_counts(
        cls,
        outcomes: Mapping[str | None, int],
        keys: Mapping[str, int],
        avg_duration: float | None,
    ) -> Stats:
        """Figures from the number of calls per outcome and per key pressed."""
        total = sum(outcomes.values())
        answered = outcomes.get(CallOutcome.ANSWERED, 0)
        failed = sum(
            outcomes.get(o, 0)
            for o in (CallOutcome.FAILED, CallOutcome.REJECTED, CallOutcome.CANCELLED)
        )
        pending = sum(n for o, n in outcomes.items() if o is None or not CallOutcome(o).final)
        return cls(
            total=total,
            answered=answered,
            voicemail=outcomes.get(CallOutcome.VOICEMAIL, 0),
            no_answer=outcomes.get(CallOutcome.NO_ANSWER, 0),
            busy=outcomes.get(CallOutcome.BUSY, 0),
            failed=failed,
            pending=pending,
            keys=dict(sorted(keys.items())),
            avg_duration=round(avg_duration, 1) if avg_duration is not None else None,
            success_rate=round(100.0 * answered / total, 1) if total else None,
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_request_id() -> str:
    """Short, unique, easy to read out: `rq-3f9c2a7b1d04`."""
    return f"rq-{uuid.uuid4().hex[:12]}"
