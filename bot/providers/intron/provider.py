"""Intron's workflow API behind the provider interface.

An order becomes one `POST /call` with every recipient, each tagged with our
request id and its position (`user_tag_identifiers`), so that a callback or a
listing can always be matched to our request and recipient. Results come back
in the completion callback (seed 002); when one never comes, the workflow-calls
listing is read, drawing on at most two thirds of the management quota.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import ValidationError

from bot.input import templates
from bot.providers import fields
from bot.providers.base import (
    BadCallback,
    BeforeSend,
    CallbackReport,
    CallOutcome,
    CallUpdate,
    Capabilities,
    Order,
    Page,
    Poll,
    ProviderCall,
    ProviderRequest,
    RefusedError,
    ServerError,
    Voice,
    Workflow,
    WorkflowDraft,
)
from bot.providers.intron import models, voices
from bot.providers.intron.client import IntronClient
from bot.providers.intron.endpoints import LimitGroup

PROVIDER_ID = "intron"

CAPABILITIES = Capabilities(
    label="Intron",
    key_setting="INTRON_API_KEY",
    template_syntax="brackets",
    message_limit=models.MAX_MESSAGE_CHARS,
    keypad=True,
    schedule=False,
    cancel=False,
    audio=False,
    transfer=False,
    results="callback",
    resend_safe=False,
    workflows_at_provider=True,
    workflow_kinds=("robocall", "conversation"),
    listings=True,
    quota_note="Intron allows 6 workflow requests a minute and 60 an hour",
    # Intron documents no limit on `workflow_params`. 1,000 keeps a batch's completion
    # callback near 350 KB and its calls listing to 10 pages of 100.
    max_batch=1_000,
)

# Under these keys of each recipient's `user_tag_identifiers` travel our request
# id and the recipient's position in it.
REFERENCE_TAG = "robocall_request_id"
RECIPIENT_TAG = "robocall_recipient"

# Reconciliation reads leave a third of the management quota to people.
RECONCILE_SHARE = 2 / 3
RECONCILE_MAX_WAIT = 1.0  # a lookup waits no longer for the quota: its job comes back later
LISTING_PAGE = 100
FIND_PAGES = 10  # pages of one number's calls looked through for our tag

# Intron documents COMPLETED only; the others are the usual words for the rest.
_OUTCOMES = {
    "COMPLETED": CallOutcome.ANSWERED,
    "ANSWERED": CallOutcome.ANSWERED,
    "TIMEOUT": CallOutcome.NO_ANSWER,
    "NO_ANSWER": CallOutcome.NO_ANSWER,
    "NOT_ANSWERED": CallOutcome.NO_ANSWER,
    "BUSY": CallOutcome.BUSY,
    "VOICEMAIL": CallOutcome.VOICEMAIL,
    "FAILED": CallOutcome.FAILED,
    "REJECTED": CallOutcome.REJECTED,
    "CANCELLED": CallOutcome.CANCELLED,
    "CANCELED": CallOutcome.CANCELLED,
    "QUEUED": CallOutcome.QUEUED,
    "PENDING": CallOutcome.QUEUED,
    "SCHEDULED": CallOutcome.QUEUED,
    "PROCESSING": CallOutcome.IN_PROGRESS,
    "IN_PROGRESS": CallOutcome.IN_PROGRESS,
    "RINGING": CallOutcome.IN_PROGRESS,
    "INITIATED": CallOutcome.IN_PROGRESS,
    "ONGOING": CallOutcome.IN_PROGRESS,
}
# The status words the calls listing filters by, for each outcome.
_STATUS_FOR = {
    CallOutcome.ANSWERED: "COMPLETED",
    CallOutcome.NO_ANSWER: "TIMEOUT",
    CallOutcome.FAILED: "FAILED",
    CallOutcome.QUEUED: "QUEUED",
}


def outcome_of(status: str | None) -> CallOutcome:
    """A call status of Intron's, in the core's words (an unknown final word: failed)."""
    return _OUTCOMES.get(str(status or "").upper(), CallOutcome.FAILED)


class IntronProvider:
    """`Provider` for Intron's voicebot workflow API."""

    id = PROVIDER_ID
    capabilities = CAPABILITIES

    def __init__(self, client: IntronClient, *, callback_url: str, sandbox: bool = False) -> None:
        self.client = client
        self.callback_url = callback_url
        self.sandbox = sandbox

    def voices(self) -> Sequence[Voice]:
        return voices.premium_voices()

    def wait_time(self, purpose: Literal["calls", "management"]) -> float:
        return self.client.wait_time(LimitGroup(purpose))

    async def aclose(self) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------ calls

    async def submit(self, order: Order, *, before_send: BeforeSend) -> str:
        try:
            return await self.client.place_calls(call_request(order), before_send=before_send)
        except RefusedError as exc:
            raise _for_recipient(exc, order) from None

    async def find(self, order: Order) -> str | None:
        """The batch of our order, looked for among the first recipient's calls."""
        first = order.recipients[0]
        for page in range(1, FIND_PAGES + 1):
            listing = await self.client.list_workflow_calls(
                order.workflow.id,
                page=page,
                per_page=LISTING_PAGE,
                phone_number=first.phone,
                share=RECONCILE_SHARE,
                max_wait=RECONCILE_MAX_WAIT,
            )
            for call in listing.items:
                if call.user_tag_identifiers.get(REFERENCE_TAG) == order.request_id:
                    return call.batch_id or None
            if not listing.has_next:
                return None
        raise ServerError(
            "find: cannot tell: our calls are not among the first 1,000 of that number",
            operation="find",
        )

    async def poll(self, ref: str, order: Order, cursor: str | None) -> Poll:
        """One page of the batch's calls from the workflow-calls listing."""
        page = int(cursor) if cursor and cursor.isdigit() else 1
        listing = await self.client.list_workflow_calls(
            order.workflow.id,
            page=page,
            per_page=LISTING_PAGE,
            batch_id=ref,
            share=RECONCILE_SHARE,
            max_wait=RECONCILE_MAX_WAIT,
        )
        return Poll(
            updates=[_update(call) for call in listing.items],
            cursor=str(page + 1) if listing.has_next else None,
        )

    def read_callback(self, body: bytes | str) -> CallbackReport:
        return read_callback(body)

    # ------------------------------------------------------------ workflows

    async def list_workflows(self) -> list[Workflow]:
        return [self._workflow(w) for w in await self.client.list_workflows()]

    async def create_workflow(self, draft: WorkflowDraft) -> Workflow:
        created = await self.client.create_workflow(
            models.WorkflowCreate(
                name=draft.name,
                description=draft.description,
                workflow_type=models.WorkflowType(draft.kind.upper()),
                message=templates.in_syntax(draft.message, "brackets"),
                include_reply=bool(draft.keypad),
                response_options=dict(draft.keypad) or None,
                call_back_url=self.callback_url,
            )
        )
        return self._workflow(created)

    async def update_workflow(self, workflow_id: str, draft: WorkflowDraft) -> Workflow:
        updated = await self.client.update_workflow(
            workflow_id,
            models.WorkflowUpdate(
                name=draft.name,
                description=draft.description,
                workflow_type=models.WorkflowType(draft.kind.upper()),
                message=templates.in_syntax(draft.message, "brackets"),
                include_reply=bool(draft.keypad),
                response_options=dict(draft.keypad),
                call_back_url=self.callback_url,
            ),
        )
        return self._workflow(updated)

    async def repoint_workflow(self, workflow_id: str) -> Workflow:
        updated = await self.client.update_workflow(
            workflow_id, models.WorkflowUpdate(call_back_url=self.callback_url)
        )
        return self._workflow(updated)

    async def delete_workflow(self, workflow_id: str) -> None:
        await self.client.delete_workflow(workflow_id)

    async def workflow_requests(self, workflow_id: str, page: int) -> Page[ProviderRequest]:
        listing = await self.client.list_workflow_requests(workflow_id, page=page, per_page=5)
        return Page[ProviderRequest](
            items=[
                ProviderRequest(
                    ref=item.id,
                    status=item.status,
                    total=(item.stats.total_calls or 0) if item.stats else 0,
                    answered=(item.stats.completed_calls or 0) if item.stats else 0,
                    success_rate=item.stats.success_rate if item.stats else None,
                    avg_duration=item.stats.avg_duration if item.stats else None,
                    created_at=item.created_at,
                )
                for item in listing.items
            ],
            page=listing.page,
            per_page=listing.per_page,
            total=listing.total,
            has_next=listing.has_next,
        )

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
        status = _STATUS_FOR.get(CallOutcome(outcome)) if outcome else None
        listing = await self.client.list_workflow_calls(
            workflow_id,
            page=page,
            per_page=per_page,
            batch_id=ref,
            status=status,
            phone_number=phone,
        )
        return Page[ProviderCall](
            items=[
                ProviderCall(
                    phone=call.phone_number,
                    outcome=outcome_of(call.status),
                    provider_status=call.status,
                    duration=call.call_result_duration,
                    key_pressed=call.call_result_options_selected,
                    provider_ref=call.batch_id,
                    request_id=call.user_tag_identifiers.get(REFERENCE_TAG),
                )
                for call in listing.items
            ],
            page=listing.page,
            per_page=listing.per_page,
            total=listing.total,
            has_next=listing.has_next,
        )

    def _workflow(self, workflow: models.Workflow) -> Workflow:
        return Workflow(
            id=workflow.id,
            provider=PROVIDER_ID,
            name=workflow.name,
            description=workflow.description,
            kind=str(workflow.workflow_type).lower(),
            message=workflow.message,
            keypad=dict(workflow.response_options or {}) if workflow.include_reply else {},
            callback_url=workflow.call_back_url,
            created_at=workflow.created_at,
        )


def read_callback(body: bytes | str) -> CallbackReport:
    """A completion callback (seed 002), read; BadCallback when it cannot be."""
    try:
        callback = models.CompletionCallback.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise BadCallback(400, "body is not JSON") from None
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
        raise BadCallback(422, f"not a completion callback: {where}") from None
    tags = {fields.tag(c.user_tag_identifiers.get(REFERENCE_TAG)) for c in callback.request_calls}
    return CallbackReport(
        provider_ref=callback.request_id,
        request_ids=frozenset(tags - {""}),
        final=models.is_final(callback.status),
        status=callback.status,
        read_updates=lambda: [_update(call) for call in callback.request_calls],
    )


def call_request(order: Order) -> models.CallRequest:
    """The body of `POST /call` for an order, every recipient tagged with our ids."""
    accent, gender = voices.accent_and_gender(order.voice) if order.voice else (None, None)
    return models.CallRequest(
        workflow_id=order.workflow.id,
        workflow_params=[
            models.WorkflowParam(
                phone_number=r.phone,
                workflow_variables=dict(r.variables),
                user_tag_identifiers={
                    REFERENCE_TAG: order.request_id,
                    RECIPIENT_TAG: str(r.position),
                },
            )
            for r in order.recipients
        ],
        tts_voice_accent=accent,
        tts_voice_gender=gender,  # type: ignore[arg-type]
    )


def _for_recipient(exc: RefusedError, order: Order) -> RefusedError:
    """A refusal naming the n-th of `workflow_params`, re-addressed to that recipient:
    our position for them in the request, and their number."""
    if exc.recipient is None:
        return exc
    if not 1 <= exc.recipient <= len(order.recipients):  # not one we sent: say it as it came
        where = f"workflow_params[{exc.recipient - 1}]" + (f".{exc.field}" if exc.field else "")
        return RefusedError(
            f"{where}: {exc.message}", operation=exc.operation, status_code=exc.status_code
        )
    recipient = order.recipients[exc.recipient - 1]
    return RefusedError(
        exc.message,
        recipient=recipient.position,
        field=exc.field,
        phone=recipient.phone,
        operation=exc.operation,
        status_code=exc.status_code,
    )


def _update(call: models.RequestCall) -> CallUpdate:
    tag = fields.tag(call.user_tag_identifiers.get(RECIPIENT_TAG))
    return CallUpdate(
        outcome=outcome_of(call.status),
        provider_status=call.status,
        phone=call.phone_number,
        position=int(tag) if tag.isdigit() else None,
        provider_call_id=call.id,
        duration=call.call_result_duration,
        key_pressed=call.call_result_options_selected or None,
    )
