"""The core: accept a call order, keep it, place it once, record its results.

It knows nothing of Slack. Front ends (the Slack adapter today) hand it a
`CallOrder`, and hear back through `Observer.request_changed` at each step.
Its promises: an order is stored before it is acknowledged; `POST /call` is
sent at most once per request (a status compare-and-set guards it); a callback
is applied once; a failure is recorded in words a user can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.intron.errors import (
    AuthenticationError,
    IntronConnectionError,
    IntronError,
    IntronValidationError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
)
from bot.intron.models import CallRequest, CompletionCallback, Workflow, is_final
from bot.intron.validation import (
    RECIPIENT_TAG,
    REFERENCE_TAG,
    InvalidCallRequest,
    Problem,
    Recipient,
    build_call_request,
)
from bot.store import (
    CallRecord,
    RequestRecord,
    RequestStatus,
    Store,
    new_request_id,
    now_iso,
)
from bot.text import clip, quoted
from bot.voices import Voice

log = logging.getLogger(__name__)


class CallProvider(Protocol):
    """What the core needs from a provider (IntronClient has it)."""

    async def place_calls(
        self, request: CallRequest, *, before_send: Callable[[], None] | None = None
    ) -> str: ...


class Event(StrEnum):
    ACCEPTED = "accepted"
    PLACED = "placed"
    FOUND = "found"  # an "outcome unknown" request turned out to have been placed
    FAILED = "failed"
    UNKNOWN = "unknown"
    COMPLETED = "completed"


class Observer(Protocol):
    """A front end that shows requests to people."""

    async def request_changed(self, record: RequestRecord, event: Event) -> None: ...


@dataclass(frozen=True)
class CallOrder:
    """What someone asked for, before validation."""

    workflow: str  # a name (any case) or an id
    recipients: Sequence[Recipient]
    voice: Voice | None
    requested_by: str
    channel: str | None
    source: str
    # The same key twice is the same order (e.g. Slack resending a submission).
    idempotency_key: str | None = None


class CallbackOutcome(StrEnum):
    APPLIED = "applied"
    PROGRESS = "progress"  # not final yet: calls' results stored, request still open
    DUPLICATE = "duplicate"
    UNKNOWN_REQUEST = "unknown_request"


class CallService:
    """The core service: one instance per process."""

    def __init__(
        self,
        store: Store,
        provider: CallProvider,
        *,
        default_region: str | None = None,
    ) -> None:
        self.store = store
        self.provider = provider
        self.default_region = default_region
        self.observers: list[Observer] = []

    # ------------------------------------------------------------ workflows

    def find_workflow(self, ref: str) -> Workflow:
        """The cached workflow with this id, or this name (case-insensitive)."""
        wanted = ref.strip()
        if (by_id := self.store.workflow(wanted)) is not None:
            return by_id
        workflows = self.store.workflows()
        matches = [w for w in workflows if w.name.casefold() == wanted.casefold()]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(w.name for w in workflows) or "none yet"
        if matches:
            message = (
                f"workflow {quoted(ref)} names {len(matches)} workflows; "
                f"use the id instead ({', '.join(w.id for w in matches)})"
            )
        else:
            message = f"workflow {quoted(ref)} does not exist; known workflows: {clip(known, 500)}"
        raise InvalidCallRequest([Problem("workflow", ref, message)])

    # ------------------------------------------------------------ requests

    def accept(self, order: CallOrder) -> tuple[RequestRecord, bool]:
        """Validate and store an order; returns the record and whether it is new.

        Raises InvalidCallRequest (every problem listed) and stores nothing when
        the order is wrong. Nothing is sent to the provider here: call `dispatch`.
        """
        workflow = self.find_workflow(order.workflow)
        request_id = new_request_id()
        call_request = build_call_request(
            workflow_id=workflow.id,
            message=workflow.message,
            recipients=order.recipients,
            voice=order.voice,
            reference=request_id,
            default_region=self.default_region,
        )
        now = now_iso()
        record = RequestRecord(
            id=request_id,
            created_at=now,
            updated_at=now,
            status=RequestStatus.ACCEPTED,
            workflow_id=workflow.id,
            workflow_name=workflow.name,
            voice=order.voice.key if order.voice else None,
            requested_by=order.requested_by,
            channel=order.channel,
            source=order.source,
            idempotency_key=order.idempotency_key,
            recipient_count=len(call_request.workflow_params),
        )
        calls = [
            CallRecord(
                request_id=request_id,
                position=position,
                phone_number=p.phone_number,
                variables=p.workflow_variables,
            )
            for position, p in enumerate(call_request.workflow_params, start=1)
        ]
        with self.store.atomic():  # the request and its audit row, or neither
            stored, created = self.store.add_request(
                record, call_request.model_dump(exclude_none=True), calls
            )
            if created:
                self.store.audit(
                    order.requested_by,
                    "request.accepted",
                    request_id,
                    {
                        "workflow": workflow.id,
                        "voice": record.voice,
                        "channel": order.channel,
                        "numbers": [c.phone_number for c in calls],
                    },
                )
        return stored, created

    async def dispatch(self, request_id: str) -> RequestRecord | None:
        """Tell observers, then place the request's calls, exactly once.

        The request becomes SENDING only when the client has its rate-limit slot
        and is about to put `POST /call` on the wire (a compare-and-set from
        ACCEPTED, so a second dispatch of the same request sends nothing). Until
        then a crash leaves it ACCEPTED, and it is simply sent after the restart.
        """
        record = self.store.request(request_id)
        if record is None or record.status != RequestStatus.ACCEPTED:
            return record
        await self._notify(record, Event.ACCEPTED)
        body = CallRequest.model_validate(self.store.call_request_body(request_id))

        def mark_sending() -> None:
            current = self.store.request(request_id)
            if current is not None and current.status == RequestStatus.SENDING:
                return  # our own retry after a 429/503: still the same single request
            if (
                self.store.transition(request_id, [RequestStatus.ACCEPTED], RequestStatus.SENDING)
                is None
            ):
                raise _AlreadyTaken()

        try:
            batch_id = await self.provider.place_calls(body, before_send=mark_sending)
        except _AlreadyTaken:
            return self.store.request(request_id)
        except OutcomeUnknownError as exc:
            return await self._settle(
                request_id, RequestStatus.UNKNOWN, Event.UNKNOWN, error=describe_failure(exc)
            )
        except IntronError as exc:
            return await self._settle(
                request_id, RequestStatus.FAILED, Event.FAILED, error=describe_failure(exc)
            )
        except Exception as exc:  # a bug must not leave the request SENDING forever
            log.exception("placing %s failed unexpectedly", request_id)
            return await self._settle(
                request_id,
                RequestStatus.UNKNOWN,
                Event.UNKNOWN,
                error=f"an internal error ({type(exc).__name__}) "
                "interrupted sending; it was not resent",
            )
        self.store.audit("provider", "request.placed", request_id, {"batch_id": batch_id})
        return await self._settle(request_id, RequestStatus.PLACED, Event.PLACED, batch_id=batch_id)

    async def _settle(
        self, request_id: str, status: RequestStatus, event: Event, **fields: str
    ) -> RequestRecord | None:
        # From ACCEPTED too: a failure before anything was sent (e.g. our own limiter
        # refusing a long wait) settles a request that never became SENDING.
        record = self.store.transition(
            request_id, [RequestStatus.SENDING, RequestStatus.ACCEPTED], status, **fields
        )
        if record is None:  # a callback completed it meanwhile; nothing to add
            return self.store.request(request_id)
        if status in (RequestStatus.FAILED, RequestStatus.UNKNOWN):
            self.store.audit("provider", f"request.{status}", request_id, {"error": record.error})
        await self._notify(record, event)
        return record

    async def resume(self) -> None:
        """After a restart: send what was accepted but never sent; mark what was
        being sent as "outcome unknown", because it may have reached the provider."""
        for record in self.store.requests_with_status(RequestStatus.SENDING):
            await self._settle(
                record.id,
                RequestStatus.UNKNOWN,
                Event.UNKNOWN,
                error="the app stopped while sending this request to Intron, so it may or may "
                "not have been placed; it was not resent",
            )
        for record in self.store.requests_with_status(RequestStatus.ACCEPTED):
            await self.dispatch(record.id)

    def lookup(self, ref: str) -> RequestRecord | None:
        """A request by our id or by the provider's batch id."""
        ref = ref.strip()
        return self.store.request(ref) or self.store.request_by_batch(ref)

    # ------------------------------------------------------------ results

    def match_callback(self, callback: CompletionCallback) -> RequestRecord | None:
        """The request a callback is about: by batch id, else by the request id we tagged
        on every recipient (the callback can beat the answer to POST /call)."""
        if record := self.store.request_by_batch(callback.request_id):
            return record
        tagged = {
            str(c.user_tag_identifiers.get(REFERENCE_TAG, "")) for c in callback.request_calls
        } - {""}
        if len(tagged) == 1:
            record = self.store.request(tagged.pop())
            if record is not None and record.batch_id in (None, callback.request_id):
                return record
        return None

    def record_callback(
        self, callback: CompletionCallback, raw: str, source: str = "intron"
    ) -> tuple[CallbackOutcome, RequestRecord | None]:
        """Store a completion callback's results, once. Fast and synchronous, so the
        HTTP answer can wait for it; observers are told separately (`announce`).

        A callback whose status is not final (e.g. PROCESSING) only records the
        calls' results so far; one arriving after the request completed (late, or
        out of order) changes nothing.
        """
        record = self.match_callback(callback)
        if record is None:
            self.store.log_callback(
                raw, CallbackOutcome.UNKNOWN_REQUEST, callback.request_id, None, source
            )
            return CallbackOutcome.UNKNOWN_REQUEST, None
        results = _results_by_position(callback, self.store.calls(record.id))
        with self.store.atomic():  # results, log and audit row together, or none of them
            if not is_final(callback.status):
                progressed = self.store.record_progress(record, callback.request_id, results)
                outcome = CallbackOutcome.PROGRESS if progressed else CallbackOutcome.DUPLICATE
                self.store.log_callback(raw, outcome, callback.request_id, record.id, source)
                return outcome, record
            completed = self.store.complete(record, callback, results)
            outcome = CallbackOutcome.APPLIED if completed else CallbackOutcome.DUPLICATE
            self.store.log_callback(raw, outcome, callback.request_id, record.id, source)
            if completed:
                self.store.audit(
                    "provider",
                    "request.completed",
                    record.id,
                    {
                        "source": source,
                        "status": callback.status,
                        "results": {c.phone_number: c.status for c in self.store.calls(record.id)},
                    },
                )
        return outcome, completed or record

    async def found_placed(self, request_id: str, batch_id: str) -> RequestRecord | None:
        """Reconciliation found the calls of an "outcome unknown" request at the provider."""
        record = self.store.transition(
            request_id,
            [RequestStatus.UNKNOWN],
            RequestStatus.PLACED,
            batch_id=batch_id,
            error=None,
        )
        if record is not None:
            self.store.audit(
                "reconciler", "request.found_placed", request_id, {"batch_id": batch_id}
            )
            await self._notify(record, Event.FOUND)
        return record

    async def not_placed(self, request_id: str) -> RequestRecord | None:
        """Reconciliation found no trace of an "outcome unknown" request: nobody was called."""
        record = self.store.transition(
            request_id,
            [RequestStatus.UNKNOWN],
            RequestStatus.FAILED,
            error="Checked with Intron: it has no calls for this request, so nobody was "
            "called. It is safe to send it again.",
        )
        if record is not None:
            self.store.audit("reconciler", "request.not_placed", request_id, {})
            await self._notify(record, Event.FAILED)
        return record

    async def announce_completed(self, record: RequestRecord) -> None:
        await self._notify(record, Event.COMPLETED)

    async def _notify(self, record: RequestRecord, event: Event) -> None:
        for observer in self.observers:
            try:
                await observer.request_changed(record, event)
            except Exception:  # showing a request must never stop it being placed
                log.exception("observer failed on %s for %s", event, record.id)


def _results_by_position(callback: CompletionCallback, calls: list[CallRecord]) -> dict[int, dict]:
    """Each reported call matched to our recipient: by the position we tagged, else by number."""
    unmatched = {c.position: c for c in calls}
    results: dict[int, dict] = {}
    for call in callback.request_calls:
        tag = str(call.user_tag_identifiers.get(RECIPIENT_TAG, ""))
        position = int(tag) if tag.isdigit() and int(tag) in unmatched else None
        if position is None:
            position = next(
                (p for p, c in unmatched.items() if c.phone_number == call.phone_number), None
            )
        if position is None:
            continue
        unmatched.pop(position)
        results[position] = {
            "provider_call_id": call.id,
            "status": call.status,
            "duration": call.call_result_duration,
            "key_pressed": call.call_result_options_selected,
        }
    return results


def describe_failure(exc: IntronError) -> str:
    """What went wrong, in words a user can act on."""
    if isinstance(exc, OutcomeUnknownError):
        return (
            "Intron may or may not have placed these calls (we got no clear answer). "
            "They were not resent, so nobody is called twice: check the results or the "
            "workflow's calls before sending again."
        )
    if isinstance(exc, AuthenticationError):
        return (
            "Intron refused our API key, so nobody was called. "
            "An admin should check INTRON_API_KEY."
        )
    if isinstance(exc, NotFoundError):
        return (
            "Intron does not know this workflow (it may have been deleted), "
            "so nobody was called. Pick another workflow."
        )
    if isinstance(exc, RateLimitedError):
        wait = f" in {exc.retry_after:.0f} s" if exc.retry_after else " shortly"
        return f"Intron's rate limit is reached, so nobody was called. Try again{wait}."
    if isinstance(exc, IntronConnectionError):
        return "Intron could not be reached, so nobody was called. Try again in a minute."
    if isinstance(exc, IntronValidationError):
        return f"Intron refused the request, so nobody was called: {exc.message}"
    return f"Intron failed ({exc.message}); nobody was called."


class _AlreadyTaken(Exception):
    """Another task moved the request on first: this one must not send it."""
