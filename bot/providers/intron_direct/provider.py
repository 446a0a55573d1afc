"""Intron's direct robo-call API (seed 001) behind the provider interface.

The API has no workflows of its own: each call carries its message (or audio) and
its keypad actions, so this provider's workflows live in this app's database and
the workflow-management methods below are refused (`NotImplementedError`).

An order of one recipient becomes `POST /call`, and its reference is the call id.
An order of several becomes `POST /call/batch`; seed 001 gives calls no metadata or
tags to carry our request id, so the reference keeps the batch id together with the
call ids in our recipients' order (`batch:<batch_id>:<call_id>,<call_id>,…`, see
`BatchRef`), which lets `poll` and `cancel` reach each call. Results arrive as
per-call webhook events (`robo_call.answered`, `.dtmf`, `.completed`), each naming
only its call id: `read_callback` reports it as `provider_ref`. So that an event of
a batch's call finds its request, `call_ids` hands the core each call's id by our
recipient's position right after the submit; the core keeps them with the calls and
matches an event by the call it names (`CallService.match`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from bot.input import templates
from bot.providers.base import (
    BadCallback,
    BeforeSend,
    CallbackReport,
    CallOutcome,
    CallUpdate,
    Capabilities,
    NotFoundError,
    Order,
    OutcomeUnknownError,
    Page,
    Poll,
    ProviderCall,
    ProviderRequest,
    RefusedError,
    Voice,
    Workflow,
    WorkflowDraft,
)
from bot.providers.intron_direct import models
from bot.providers.intron_direct.client import (
    DEFAULT_BASE_URL,
    FREE_CALLS_PER_MINUTE,
    FREE_CONCURRENT_CALLS,
    IntronDirectClient,
)
from bot.providers.intron_direct.endpoints import LimitGroup

PROVIDER_ID = "intron-direct"

# Seed 001 names one voice, its default.
VOICES = (Voice(key=models.DEFAULT_VOICE, language="English", gender="female"),)

POLL_PAGE = 20  # status lookups per poll step
POLL_MAX_WAIT = 1.0  # a lookup waits no longer for the limiter: its job comes back later


# Seed 001 documents no batch size; a batch's calls count against calls per minute
# and take their slots together, so a batch carries at most the plan's calls per
# minute, and never more than our request model takes.
MAX_BATCH_CALLS = 1_000


def capabilities(
    calls_per_minute: int = FREE_CALLS_PER_MINUTE, max_batch: int | None = None
) -> Capabilities:
    return Capabilities(
        label="Intron (direct)",
        key_setting="INTRON_DIRECT_API_KEY",
        template_syntax="braces",
        message_limit=models.MAX_MESSAGE_CHARS,
        value_limit=models.MAX_VALUE_CHARS,
        keypad=True,
        schedule=True,
        cancel=True,
        audio=True,
        transfer=False,
        results="callback",
        resend_safe=False,
        workflows_at_provider=False,
        # Every call of a batch counts against calls per minute, and a batch takes
        # its slots together: a larger request is split into parts of at most that.
        max_batch=max(
            1, min(calls_per_minute if max_batch is None else max_batch, MAX_BATCH_CALLS)
        ),
    )


CAPABILITIES = capabilities()

# `result` of a completed call (seed 001's table), and `status` of GET /call/{id}.
_RESULTS = {
    "answered": CallOutcome.ANSWERED,
    "voicemail": CallOutcome.VOICEMAIL,
    "busy": CallOutcome.BUSY,
    "no_answer": CallOutcome.NO_ANSWER,
    "failed": CallOutcome.FAILED,
    "rejected": CallOutcome.REJECTED,
}
_STATUSES = {
    "queued": CallOutcome.QUEUED,
    "scheduled": CallOutcome.QUEUED,
    "pending": CallOutcome.QUEUED,
    "ringing": CallOutcome.IN_PROGRESS,
    "dialing": CallOutcome.IN_PROGRESS,
    "in_progress": CallOutcome.IN_PROGRESS,
    "answered": CallOutcome.IN_PROGRESS,  # a status, not a result: still on the line
    "cancelled": CallOutcome.CANCELLED,
    "canceled": CallOutcome.CANCELLED,
    "failed": CallOutcome.FAILED,
}


def result_outcome(result: str | None) -> CallOutcome:
    """A completed call's `result`, in the core's words (an unknown word: failed)."""
    return _RESULTS.get(str(result or "").strip().lower(), CallOutcome.FAILED)


def status_outcome(status: str | None, result: str | None) -> CallOutcome:
    """`GET /call/{id}`: `completed` reads its `call_result`; other words their state."""
    word = str(status or "").strip().lower()
    if word == "completed":
        return result_outcome(result)
    if word in _STATUSES:
        return _STATUSES[word]
    return result_outcome(result) if result else CallOutcome.IN_PROGRESS


# ---------------------------------------------------------------- references

_BATCH_REF = re.compile(r"batch:([^:]+):(.*)")


@dataclass(frozen=True)
class BatchRef:
    """A submission's reference: one call id, or a batch id with its call ids in
    our recipients' order (`None` where the answer named none)."""

    batch_id: str | None
    call_ids: tuple[str | None, ...]

    def __str__(self) -> str:
        if self.batch_id is None and len(self.call_ids) == 1 and self.call_ids[0]:
            return self.call_ids[0]
        return f"batch:{self.batch_id}:" + ",".join(c or "" for c in self.call_ids)

    @classmethod
    def parse(cls, ref: str) -> BatchRef:
        if match := _BATCH_REF.fullmatch(ref):
            return cls(match.group(1), tuple(c or None for c in match.group(2).split(",")))
        return cls(None, (ref,))


class IntronDirectProvider:
    """`Provider` for Intron's direct robo-call API."""

    id = PROVIDER_ID

    def __init__(
        self,
        client: IntronDirectClient,
        *,
        callback_url: str | None,
        sandbox: bool = False,
        max_batch: int | None = None,
    ) -> None:
        self.client = client
        self.callback_url = callback_url
        self.sandbox = sandbox
        self.capabilities = capabilities(client.calls_per_minute, max_batch)

    def voices(self) -> Sequence[Voice]:
        return VOICES

    def wait_time(self, purpose: Literal["calls", "management"]) -> float:
        return self.client.wait_time(LimitGroup.CALLS if purpose == "calls" else LimitGroup.LOOKUPS)

    async def aclose(self) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------ calls

    async def submit(self, order: Order, *, before_send: BeforeSend) -> str:
        try:
            if len(order.recipients) == 1:
                queued = await self.client.place_call(
                    call_request(order, self.callback_url), before_send=before_send
                )
                return str(BatchRef(None, (queued.call_id,)))
            batch = await self.client.place_batch(
                batch_request(order, self.callback_url), before_send=before_send
            )
        except RefusedError as exc:
            raise _for_recipient(exc, order) from None
        return str(BatchRef(batch.batch_id, _call_ids(order, batch)))

    def call_ids(self, ref: str, order: Order) -> dict[int, str]:
        """Each call's id by our recipient's position, from a submission's reference
        (optional method, not in the `Provider` protocol): the core keeps them, so an
        event naming only its call id finds its request and its recipient."""
        ids = BatchRef.parse(ref).call_ids
        return {
            recipient.position: call_id
            for recipient, call_id in zip(order.recipients, ids, strict=False)
            if call_id
        }

    async def find(self, order: Order) -> str | None:
        """Never settles an unknown submit: seed 001 has no listing of calls and no
        tag of ours on them, so nothing can show that a call was *not* placed (None
        would let it be sent again, calling people twice). It raises, and the
        request stays "outcome unknown" for a person to decide."""
        raise OutcomeUnknownError(
            "find: Intron's direct API cannot be asked which calls it has (no listing, "
            "no tags), so whether these calls were placed cannot be told",
            operation="find",
        )

    async def poll(self, ref: str, order: Order, cursor: str | None) -> Poll:
        """One step of status lookups, `POLL_PAGE` calls at a time."""
        parsed = BatchRef.parse(ref)
        start = int(cursor) if cursor and cursor.isdigit() else 0
        chunk = parsed.call_ids[start : start + POLL_PAGE]
        updates = []
        for offset, call_id in enumerate(chunk):
            if call_id is None:
                continue
            try:
                status = await self.client.call_status(call_id, max_wait=POLL_MAX_WAIT)
            except NotFoundError:
                continue
            index = start + offset
            position = order.recipients[index].position if index < len(order.recipients) else None
            updates.append(_status_update(status, position))
        end = start + len(chunk)
        return Poll(updates=updates, cursor=str(end) if end < len(parsed.call_ids) else None)

    async def cancel(self, ref: str) -> None:
        """Cancel every call of a submission that is not dialled yet (optional method,
        not in the `Provider` protocol). A call already dialled, or gone, is left as
        it is; other errors are raised."""
        for call_id in BatchRef.parse(ref).call_ids:
            if call_id is None:
                continue
            try:
                await self.client.cancel_call(call_id)
            except (NotFoundError, RefusedError):
                continue

    def read_callback(self, body: bytes | str) -> CallbackReport:
        return read_callback(body)

    # ------------------------------------------------------------ workflows
    # This API keeps no workflows: they live in this app's database
    # (capabilities.workflows_at_provider is False), managed by the core.

    async def list_workflows(self) -> list[Workflow]:
        return []

    async def create_workflow(self, draft: WorkflowDraft) -> Workflow:
        raise NotImplementedError("intron-direct workflows live in this app, not at Intron")

    async def update_workflow(self, workflow_id: str, draft: WorkflowDraft) -> Workflow:
        raise NotImplementedError("intron-direct workflows live in this app, not at Intron")

    async def repoint_workflow(self, workflow_id: str) -> Workflow:
        raise NotImplementedError("intron-direct sends its callback URL with every call")

    async def delete_workflow(self, workflow_id: str) -> None:
        raise NotImplementedError("intron-direct workflows live in this app, not at Intron")

    async def workflow_requests(self, workflow_id: str, page: int) -> Page[ProviderRequest]:
        return Page[ProviderRequest](page=page)

    async def workflow_calls(
        self,
        workflow_id: str,
        *,
        page: int,
        per_page: int,
        ref: str | None = None,
        outcome: str | None = None,
        phone: str | None = None,
    ) -> Page[ProviderCall]:
        return Page[ProviderCall](page=page, per_page=per_page)


# ---------------------------------------------------------------- orders → requests


def _speech(order: Order, variables: dict[str, str]) -> dict[str, object]:
    """What a call plays: the workflow's `audio_url` (an extra of its record, when it
    has one) or its message in `{{var}}` syntax with the recipient's values."""
    workflow = order.workflow
    audio = getattr(workflow, "audio_url", None) or None
    if audio and not workflow.message.strip():
        return {"audio_url": audio}
    message = templates.in_syntax(workflow.message, "braces")
    used = set(templates.variables(message))
    values = {k: v for k, v in variables.items() if k in used}
    return {"message": message, "variables": values or None}


def _saved(order: Order) -> dict[str, object]:
    """The workflow's saved options (`bot/core/workflow_checks.py`), "" read as unset."""
    options = getattr(order.workflow, "options", None) or {}
    return {k: v for k, v in options.items() if v is not None and v != ""}


def _voice(order: Order) -> str:
    """The workflow's voice, else the order's when it is one of ours, else the default."""
    saved = _saved(order).get("voice")
    if isinstance(saved, str) and saved:
        return saved
    if order.voice in {v.key for v in VOICES}:
        return str(order.voice)
    return models.DEFAULT_VOICE


def _responses(order: Order) -> dict[str, str]:
    """What the caller hears after each key, for the keypad's digits (workflow option
    `responses`, digit → message)."""
    responses = _saved(order).get("responses")
    if not isinstance(responses, dict):
        return {}
    return {
        str(d): str(text)
        for d, text in responses.items()
        if str(d) in order.workflow.keypad and isinstance(text, str) and text.strip()
    }


def _dtmf(
    order: Order, callback_url: str | None, variables: dict[str, str] | None = None
) -> models.DtmfConfig | None:
    """The workflow's keypad: listen for one key. Each digit with a saved response
    message gets seed 001's action, `webhook` to our callback URL with the
    `response_message` the caller hears (`{{var}}`s filled with `variables` when
    given). The digit itself reaches us in the `robo_call.dtmf` and
    `robo_call.completed` events; the action's own POST, whose body seed 001 does
    not describe, is answered as an unreadable callback and changes nothing. With
    no callback URL a `webhook` action cannot be written, so none is sent."""
    if not order.workflow.keypad:
        return None
    actions: dict[str, models.DtmfAction] = {}
    if callback_url:
        for digit, text in _responses(order).items():
            spoken = templates.in_syntax(text, "braces")
            if variables is not None:
                spoken = templates.render(spoken, variables)
            actions[digit] = models.DtmfAction(
                action="webhook", url=callback_url, response_message=spoken
            )
    return models.DtmfConfig(enabled=True, max_digits=1, actions=actions)


def _personal(order: Order) -> bool:
    """Whether a response message uses a variable, so each call needs its own keypad."""
    return any(templates.variables(text) for text in _responses(order).values())


def _options(
    order: Order, callback_url: str | None, variables: dict[str, str] | None = None
) -> dict[str, object]:
    saved = _saved(order)
    return {
        "voice": _voice(order),
        "caller_id": saved.get("caller_id"),
        "language": saved.get("language"),
        "retry_count": saved.get("retry_count"),
        "retry_delay": saved.get("retry_delay"),
        "callback_url": callback_url,
        "schedule_at": order.at,
        "dtmf_config": _dtmf(order, callback_url, variables),
    }


def call_request(order: Order, callback_url: str | None) -> models.CallRequest:
    """The body of `POST /call` for a one-recipient order."""
    (recipient,) = order.recipients
    variables = dict(recipient.variables)
    return models.CallRequest(
        phone_number=recipient.phone,
        **_speech(order, variables),
        **_options(order, callback_url, variables),
    )


def batch_request(order: Order, callback_url: str | None) -> models.BatchRequest:
    """The body of `POST /call/batch`: the options once, each call its number and values
    (and its own keypad when a response message has variables to fill)."""
    personal = _personal(order)

    def call(r) -> models.BatchCall:
        variables = dict(r.variables)
        own = {"dtmf_config": _dtmf(order, callback_url, variables)} if personal else {}
        return models.BatchCall(phone_number=r.phone, **_speech(order, variables), **own)

    return models.BatchRequest(
        calls=[call(r) for r in order.recipients],
        **_options(order, callback_url),
    )


def _call_ids(order: Order, batch: models.BatchQueued) -> tuple[str | None, ...]:
    """The batch's call ids in our recipients' order: by position in the answer when it
    lists every call, else by phone number."""
    ids: list[str | None] = [c.call_id for c in batch.calls]
    if len(ids) == len(order.recipients):
        return tuple(ids)
    by_phone = {c.phone_number: c.call_id for c in batch.calls if c.phone_number}
    return tuple(by_phone.get(r.phone) for r in order.recipients)


def _for_recipient(exc: RefusedError, order: Order) -> RefusedError:
    """A refusal re-addressed to our recipient: `calls.<n>` of a batch, or the only
    recipient of a single call when it names a field of theirs."""
    index = exc.recipient
    if index is None and len(order.recipients) == 1 and exc.field in ("phone_number", "variables"):
        index = 1
    if index is None:
        return exc
    if not 1 <= index <= len(order.recipients):
        return exc
    recipient = order.recipients[index - 1]
    return RefusedError(
        exc.message,
        recipient=recipient.position,
        field=exc.field,
        phone=recipient.phone,
        operation=exc.operation,
        status_code=exc.status_code,
    )


# ---------------------------------------------------------------- results


def _status_update(status: models.CallStatus, position: int | None) -> CallUpdate:
    return CallUpdate(
        outcome=status_outcome(status.status, status.call_result),
        provider_status=status.call_result or status.status,
        phone=status.phone_number,
        position=position,
        provider_call_id=status.call_id,
        duration=status.duration,
        key_pressed=status.dtmf_input,
    )


def event_update(
    event: models.AnsweredEvent | models.DtmfEvent | models.CompletedEvent,
) -> CallUpdate:
    """One webhook event as a `CallUpdate` (no position: the API carries no tag of ours)."""
    if isinstance(event, models.CompletedEvent):
        return CallUpdate(
            outcome=result_outcome(event.result),
            provider_status=event.result or "completed",
            phone=event.phone_number,
            provider_call_id=event.call_id,
            duration=event.duration,
            key_pressed=event.dtmf_input,
        )
    if isinstance(event, models.DtmfEvent):
        return CallUpdate(
            outcome=CallOutcome.IN_PROGRESS,
            provider_status="dtmf",
            phone=event.phone_number,
            provider_call_id=event.call_id,
            key_pressed=event.digit,
        )
    return CallUpdate(
        outcome=CallOutcome.IN_PROGRESS,
        provider_status="answered",
        phone=event.phone_number,
        provider_call_id=event.call_id,
    )


def read_callback(body: bytes | str) -> CallbackReport:
    """A per-call webhook event, read; BadCallback when it cannot be."""
    try:
        event = models.WEBHOOK_EVENT.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise BadCallback(400, "body is not JSON") from None
        where = ", ".join(".".join(str(p) for p in e["loc"]) or e["type"] for e in errors[:5])
        raise BadCallback(422, f"not a robo_call event: {where}") from None
    update = event_update(event)
    return CallbackReport(
        provider_ref=event.call_id,
        request_ids=frozenset(),
        # One call's event never says the submission is over: a batch has other calls.
        # The request completes when each of its calls has its final outcome (the
        # core counts them), a single call's with its `robo_call.completed`.
        final=False,
        status=event.event.removeprefix("robo_call."),
        read_updates=lambda: [update],
    )


# ---------------------------------------------------------------- wiring


def open_intron_direct(
    api_key: str,
    *,
    base_url: str = DEFAULT_BASE_URL,
    callback_url: str | None,
    calls_per_minute: int = FREE_CALLS_PER_MINUTE,
    concurrent_calls: int = FREE_CONCURRENT_CALLS,
    max_wait: float | None = 120.0,
    sandbox: bool = False,
    slot_logs: dict | None = None,
    max_batch: int | None = None,
) -> IntronDirectProvider:
    """The provider, ready: what the registry calls (`INTRON_DIRECT_API_KEY`,
    `INTRON_DIRECT_BASE_URL`, `INTRON_DIRECT_CALLS_PER_MINUTE`,
    `INTRON_DIRECT_CONCURRENT_CALLS`; `callback_url` is
    `PUBLIC_URL/callbacks/intron-direct/<token>`; `max_batch`: recipients a
    submission, at most `calls_per_minute`, which is the default)."""
    client = IntronDirectClient(
        api_key,
        base_url,
        calls_per_minute=calls_per_minute,
        concurrent_calls=concurrent_calls,
        max_wait=max_wait,
        slot_logs=slot_logs,
    )
    return IntronDirectProvider(
        client, callback_url=callback_url, sandbox=sandbox, max_batch=max_batch
    )
