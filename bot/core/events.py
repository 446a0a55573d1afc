"""How the core tells front ends that a request changed.

A listener is called inside the transaction that changed the request, and may
only write to the store (typically: add the jobs that will show the change).
So the change and the work of showing it are kept, or lost, together: a crash
can never leave a channel showing "Placing…" for a request that has failed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from bot.core.models import RequestRecord


class Event(StrEnum):
    ACCEPTED = "accepted"  # accepted, or scheduled (the record's status says which)
    DUE = "due"  # a scheduled request's time came: it is being dialled
    LATE = "late"  # ...more than a minute late (the app was not running then)
    CANCELLED = "cancelled"  # cancelled before it was dialled
    PLACED = "placed"
    FOUND = "found"  # an "outcome unknown" request turned out to have been placed
    PROGRESS = "progress"  # some calls have their outcome
    FAILED = "failed"
    KEY_REFUSED = "key_refused"  # failed because the provider refused our API key
    UNKNOWN = "unknown"
    COMPLETED = "completed"


class Listener(Protocol):
    """A front end that shows requests to people."""

    def request_changed(self, record: RequestRecord, event: Event) -> None: ...
