"""What happens to a simulated call: decided by the last digit of the number (DESIGN.md).

| last digit | outcome                   |
|------------|---------------------------|
| 1          | answered, pressed 1       |
| 2          | answered, pressed 2       |
| 0          | not answered (timeout)    |
| 9          | failed                    |
| 8          | busy: not answered        |
| 7          | voicemail: answered, no key pressed |
| other      | answered, no key pressed  |

A key press is only reported when the workflow takes a keypad reply and offers
that digit, as a real call would.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SimStatus(StrEnum):
    """Call statuses the sandbox reports (`status` of each call in callbacks and listings)."""

    QUEUED = "QUEUED"
    COMPLETED = "COMPLETED"
    TIMEOUT = "TIMEOUT"
    FAILED = "FAILED"


# `processing_status` of `GET /status/{call_id}`; VOICE_CALL_PROCESSED is seed 002's.
PROCESSING_STATUS = {
    SimStatus.QUEUED: "VOICE_CALL_QUEUED",
    SimStatus.COMPLETED: "VOICE_CALL_PROCESSED",
    SimStatus.TIMEOUT: "VOICE_CALL_NOT_ANSWERED",
    SimStatus.FAILED: "VOICE_CALL_FAILED",
}


@dataclass(frozen=True)
class Outcome:
    status: SimStatus
    key_pressed: str | None
    duration: int  # seconds; 0 when nobody answered


def outcome_for(phone_number: str, reply_digits: frozenset[str] = frozenset()) -> Outcome:
    """The outcome for a call to `phone_number` with a workflow offering `reply_digits`."""
    last = phone_number[-1]
    if last in ("0", "8"):  # the workflow API reports a busy line as not answered
        return Outcome(SimStatus.TIMEOUT, None, 0)
    if last == "9":
        return Outcome(SimStatus.FAILED, None, 0)
    # A stable, plausible duration so repeated runs report the same figures.
    duration = 20 + sum(int(d) for d in phone_number if d.isdigit()) % 20
    key = last if last in ("1", "2") and last in reply_digits else None
    return Outcome(SimStatus.COMPLETED, key, duration)
