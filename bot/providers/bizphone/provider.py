"""BizPhone's robo-call API (seed 004) behind the provider interface.

An order becomes one `POST /call`: `requestId` derived from our request id (so
asking again after an unknown outcome asks about the same request), one
destination per recipient (`caller` = `BIZPHONE_CALLER_ID`, `properties` = the
recipient's values), and a call flow built from the workflow (`call_flow_for`).

BizPhone never calls back: results are read with `GET /status/{requestId}`
(`poll`), which the core repeats until every destination is final. Because
`requestId` is ours, an unknown outcome is settled by the same read (`find`):
found → placed; 404 or "no such request" → certainly not placed, safe to send.

Workflows of this provider live in this app's database (`workflows_at_provider`
False): BizPhone has no workflow API, so the management methods list nothing and
refuse changes (`NotImplementedError`); the app's own workflow store handles them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from bot.core.ratelimit import SlotLog, Window
from bot.core.retry import PROVIDER_RETRIES, RetryPolicy
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
    Page,
    Poll,
    ProviderCall,
    ProviderRequest,
    RefusedError,
    Voice,
    Workflow,
    WorkflowDraft,
)
from bot.providers.bizphone import models
from bot.providers.bizphone.client import BizPhoneClient
from bot.providers.bizphone.endpoints import LimitGroup

PROVIDER_ID = "bizphone"

CAPABILITIES = Capabilities(
    label="BizPhone",
    key_setting="BIZPHONE_API_KEY",
    template_syntax="braces",
    message_limit=models.MAX_MESSAGE_CHARS,
    keypad=True,
    schedule=False,  # the app schedules
    cancel=False,  # the seed documents no cancel
    audio=False,
    transfer=True,
    results="polling",
    resend_safe=True,  # requestId is ours: an unknown submit is settled by GET /status
    workflows_at_provider=False,
    listings=False,
    # The seed documents no limit on `destinations`; 1,000 keeps a status answer
    # to a few hundred KB.
    max_batch=1_000,
    # Results come only by reading the status: first after 5 s, then each wait 1.5
    # times the last, up to 60 s (the core's reconcile job, `poll_interval`).
    poll_interval=(5.0, 60.0),
)

# Voices: the seed shows `"lang": "en"` and the genders male/female only.
VOICES = (Voice("en/female", "English", "female"), Voice("en/male", "English", "male"))

REQUEST_ID_PREFIX = "robocall-"
_SAFE = re.compile(r"[^A-Za-z0-9_.:-]")

# What the default flow says after a key (`call_flow_for`).
CHOSEN = "You chose: {meaning}. Thank you, goodbye."
NO_CHOICE = "We did not get a choice. Goodbye."
GATHER_RETRIES = 3

# Words of BizPhone's (lower-cased, `_`/`-`/space removed) that mean "not over yet".
# The seed's lists of possible values are lost; it shows `submitted`, `onProgress`
# and `ongoing`. The rest are the usual words.
_WAITING = {"", "queued", "queue", "pending", "submitted", "scheduled", "waiting", "new"}
_RUNNING = {
    "onprogress",
    "inprogress",
    "progress",
    "ongoing",
    "ringing",
    "dialing",
    "calling",
    "initiated",
    "started",
    "running",
    "processing",
    "connected",
}
_CALL_OUTCOMES = {
    "answered": CallOutcome.ANSWERED,
    "completed": CallOutcome.ANSWERED,
    "success": CallOutcome.ANSWERED,
    "noanswer": CallOutcome.NO_ANSWER,
    "notanswered": CallOutcome.NO_ANSWER,
    "unanswered": CallOutcome.NO_ANSWER,
    "timeout": CallOutcome.NO_ANSWER,
    "missed": CallOutcome.NO_ANSWER,
    "busy": CallOutcome.BUSY,
    "voicemail": CallOutcome.VOICEMAIL,
    "failed": CallOutcome.FAILED,
    "failure": CallOutcome.FAILED,
    "error": CallOutcome.FAILED,
    "rejected": CallOutcome.REJECTED,
    "declined": CallOutcome.REJECTED,
    "cancelled": CallOutcome.CANCELLED,
    "canceled": CallOutcome.CANCELLED,
}
_NOT_FOUND = re.compile(
    r"not\s*found|no\s+such|does\s+not\s+exist|doesn't\s+exist|unknown\s+request|"
    r"invalid\s+request\s*id",
    re.I,
)

# Polls draw on this share of the status limit, and never wait long for it.
POLL_SHARE = 2 / 3
POLL_MAX_WAIT = 1.0


def request_id_for(request_id: str) -> str:
    """BizPhone's `requestId` for one of our requests: stable, so every attempt and
    every look-up uses the same one; plain, and at most 100 characters."""
    safe = _SAFE.sub("_", request_id)
    candidate = REQUEST_ID_PREFIX + safe
    if safe == request_id and len(candidate) <= 100:
        return candidate
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:16]
    return f"{REQUEST_ID_PREFIX}{safe[:60]}-{digest}"


def _word(value: str) -> str:
    return re.sub(r"[\s_-]", "", value).lower()


class BizPhoneProvider:
    """`Provider` for BizPhone's robo-call API."""

    id = PROVIDER_ID
    capabilities = CAPABILITIES
    callback_url: str | None = None  # it never calls back

    def __init__(
        self,
        client: BizPhoneClient,
        *,
        caller_id: str | None = None,
        enable_call_recording: bool = False,
        sandbox: bool = False,
    ) -> None:
        self.client = client
        self.caller_id = caller_id or None
        self.enable_call_recording = enable_call_recording
        self.sandbox = sandbox

    def voices(self) -> Sequence[Voice]:
        return VOICES

    def wait_time(self, purpose: Literal["calls", "management"]) -> float:
        # No management API: the status reads are what the core's reads draw on.
        group = LimitGroup.CALLS if purpose == "calls" else LimitGroup.STATUS
        return self.client.wait_time(group)

    async def aclose(self) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------ calls

    async def submit(self, order: Order, *, before_send: BeforeSend) -> str:
        request = self.call_request(order)
        try:
            return await self.client.place_calls(request, before_send=before_send)
        except RefusedError as exc:
            # A conflict may say "this requestId was already submitted" (the sandbox's
            # 409): if BizPhone has it, it was placed once, and that is our answer.
            if exc.status_code == 409 and await self.find(order) is not None:
                return request.requestId
            raise _for_recipient(exc, order) from None

    def call_request(self, order: Order) -> models.CallRequest:
        """The body of `POST /call` for an order; RefusedError (naming the recipient and
        the step path) when it would break the seed's rules."""
        body: dict[str, Any] = {
            "requestId": request_id_for(order.request_id),
            "destinations": [
                {"phone": r.phone, "properties": {k: str(v) for k, v in r.variables.items()}}
                | ({"caller": self.caller_id} if self.caller_id else {})
                for r in order.recipients
            ],
            "callFlow": call_flow_for(order.workflow, order.voice),
        }
        if recording_for(order.workflow, self.enable_call_recording):
            body["enableCallRecording"] = True
        try:
            return models.CallRequest.model_validate(body)
        except ValidationError as exc:
            raise _refused(exc, order) from None

    async def find(self, order: Order) -> str | None:
        """The request's `requestId` if BizPhone has it; None if it certainly has not."""
        request_id = request_id_for(order.request_id)
        try:
            status = await self.client.call_status(request_id, max_wait=POLL_MAX_WAIT)
        except NotFoundError:
            return None
        except RefusedError as exc:
            if _NOT_FOUND.search(exc.message):
                return None
            raise
        if not status.details and _NOT_FOUND.search(status.message or ""):
            return None  # a 200 that says "no such request"
        return request_id

    async def poll(self, ref: str, order: Order, cursor: str | None) -> Poll:
        """Every destination's call as it stands (one read: the answer is not paged)."""
        status = await self.client.call_status(ref, share=POLL_SHARE, max_wait=POLL_MAX_WAIT)
        return Poll(updates=updates_for(status, order))

    def read_callback(self, body: bytes | str) -> CallbackReport:
        raise BadCallback(404, "BizPhone does not call back; its requests are polled")

    # ------------------------------------------------------------ workflows (in this app)

    async def list_workflows(self) -> list[Workflow]:
        return []  # none at BizPhone: this provider's workflows are in this app's database

    async def create_workflow(self, draft: WorkflowDraft) -> Workflow:
        raise NotImplementedError("BizPhone keeps no workflows; they live in this app")

    async def update_workflow(self, workflow_id: str, draft: WorkflowDraft) -> Workflow:
        raise NotImplementedError("BizPhone keeps no workflows; they live in this app")

    async def repoint_workflow(self, workflow_id: str) -> Workflow:
        raise NotImplementedError("BizPhone has no callbacks to point anywhere")

    async def delete_workflow(self, workflow_id: str) -> None:
        raise NotImplementedError("BizPhone keeps no workflows; they live in this app")

    async def workflow_requests(self, workflow_id: str, page: int) -> Page[ProviderRequest]:
        return Page[ProviderRequest](page=page)  # no listings (capabilities.listings)

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


def open_bizphone(
    *,
    api_key: str,
    base_url: str,
    caller_id: str | None = None,
    enable_call_recording: bool = False,
    calls_per_second: int = 5,
    status_per_second: int = 10,
    slot_logs: Mapping[str, SlotLog] | None = None,
    max_wait: float | None = 120.0,
    timeout: float = 15.0,
    policy: RetryPolicy = PROVIDER_RETRIES,
    sandbox: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> BizPhoneProvider:
    """The provider as the registry opens it. `slot_logs` by group (`calls`, `status`),
    e.g. `{g: slot_logs(f"bizphone:{g}") for g in LimitGroup}`, so both processes share
    the limits."""
    client = BizPhoneClient(
        api_key,
        base_url,
        call_windows=(Window(calls_per_second, 1.0),),
        status_windows=(Window(status_per_second, 1.0),),
        slot_logs=slot_logs,
        max_wait=max_wait,
        policy=policy,
        timeout=httpx.Timeout(timeout, connect=5.0),
        transport=transport,
    )
    return BizPhoneProvider(
        client,
        caller_id=caller_id,
        enable_call_recording=enable_call_recording,
        sandbox=sandbox,
    )


# ---------------------------------------------------------------- the call flow


def call_flow_for(workflow: Workflow, voice: str | None = None) -> dict[str, Any]:
    """The `callFlow` of a workflow: its own (`call_flow`, seed 004's shape) when it
    carries one, else built from its message and keypad: a play step, or a gather
    with one branch per digit that says the digit's meaning and a default branch.
    The workflow's `pitch` and `rate` options go on every message, where it does
    not set its own. A voice (`en/female`) is set on every message that names none."""
    explicit = getattr(workflow, "call_flow", None)
    if explicit is None:
        explicit = (workflow.model_extra or {}).get("call_flow")
    if isinstance(explicit, models.CallFlow):
        flow = explicit.model_dump(mode="json", exclude_none=True)
    elif isinstance(explicit, Mapping):
        flow = dict(explicit)
    else:
        flow = _from_keypad(workflow)
    if levels := _voice_levels(workflow):
        flow = _with_levels(flow, levels)
    if voice:
        lang, _, gender = voice.partition("/")
        flow = _with_voice(flow, lang, gender)
    return flow


def recording_for(workflow: Workflow, default: bool) -> bool:
    """Whether calls are recorded: the workflow's `recording` option when it is set
    (on or off), else `default` (the global `BIZPHONE_CALL_RECORDING`)."""
    recording = (getattr(workflow, "options", None) or {}).get("recording")
    return recording if isinstance(recording, bool) else default


def _voice_levels(workflow: Workflow) -> dict[str, int]:
    """The workflow's `pitch` and `rate` options (0-9) that are set."""
    options = getattr(workflow, "options", None) or {}
    return {
        key: value
        for key in ("pitch", "rate")
        if isinstance(value := options.get(key), int) and not isinstance(value, bool)
    }


def problems_for(
    workflow: Workflow, variables: Mapping[str, str] | None = None, voice: str | None = None
) -> list[str]:
    """What is wrong with sending `workflow` to a recipient with these `variables`
    (None: the workflow alone), each problem naming its step path; [] when nothing is.
    For the core's checks before a request is accepted, and for workflows kept as code."""
    properties = None if variables is None else {k: str(v) for k, v in variables.items()}
    return models.flow_problems(call_flow_for(workflow, voice), properties)


def _from_keypad(workflow: Workflow) -> dict[str, Any]:
    message = {"msg": templates.in_syntax(workflow.message, "braces")}
    if not workflow.keypad:
        return {"steps": [{"name": "play", "message": message}]}
    branches: list[dict[str, Any]] = [
        {"digit": digit, "callFlow": _say(CHOSEN.format(meaning=meaning))}
        for digit, meaning in sorted(workflow.keypad.items())
    ]
    branches.append({"default": True, "callFlow": _say(NO_CHOICE)})
    return {
        "steps": [
            {
                "name": "gather",
                "message": message,
                "maxRetries": GATHER_RETRIES,
                "branches": branches,
            }
        ]
    }


def _say(text: str) -> dict[str, Any]:
    return {"steps": [{"name": "play", "message": {"msg": text}}]}


def _with_levels(flow: Any, levels: Mapping[str, int]) -> Any:
    """A copy of `flow` with `levels` (`pitch`, `rate`) on every message, where the
    message sets none of its own."""
    if isinstance(flow, list):
        return [_with_levels(item, levels) for item in flow]
    if not isinstance(flow, Mapping):
        return flow
    out = {key: _with_levels(value, levels) for key, value in flow.items()}
    message = out.get("message")
    if isinstance(message, dict) and "msg" in message:
        out["message"] = {**levels, **message}
    return out


def _with_voice(flow: Any, lang: str, gender: str) -> Any:
    """A copy of `flow` with `lang`/`gender` on every message that sets neither."""
    if isinstance(flow, list):
        return [_with_voice(item, lang, gender) for item in flow]
    if not isinstance(flow, Mapping):
        return flow
    out = {key: _with_voice(value, lang, gender) for key, value in flow.items()}
    message = out.get("message")
    if (
        isinstance(message, dict)
        and "msg" in message
        and not ({"lang", "language", "gender"} & message.keys())
    ):
        out["message"] = {**message, "lang": lang} | ({"gender": gender} if gender else {})
    return out


# ---------------------------------------------------------------- results


def updates_for(status: models.StatusResult, order: Order) -> list[CallUpdate]:
    """Each destination's call in the core's words, matched to our recipient by number."""
    positions = {r.phone.lstrip("+"): r.position for r in order.recipients}
    out = []
    for detail in status.details:
        phone = detail.destination
        normalised = phone.lstrip("+") if phone else None
        if phone and not phone.startswith("+") and normalised in positions:
            phone = "+" + normalised
        out.append(
            CallUpdate(
                outcome=outcome_of(detail),
                provider_status=provider_status(detail),
                phone=phone,
                position=positions.get(normalised) if normalised else None,
                provider_call_id=next((m.uuid for m in detail.monitorData if m.uuid), None),
                duration=next(
                    (s.info.duration for s in detail.callFlowSteps if s.info.duration), None
                ),
                key_pressed=key_pressed(detail),
            )
        )
    return out


def _last(values: Sequence[str]) -> str:
    return next((v for v in reversed(values) if v), "")


def outcome_of(detail: models.Detail) -> CallOutcome:
    """One destination's state: waiting or running while its call flow or call says so;
    then the call's status (answered, not answered, busy, …); a final word we do not
    know is failed (kept as BizPhone said it in `provider_status`)."""
    infos = [s.info for s in detail.callFlowSteps]
    flow = _word(detail.status)
    state = _word(_last([i.call_state for i in infos]))
    call = _word(_last([i.call_status for i in infos]))
    if flow in _WAITING and not infos:
        return CallOutcome.QUEUED
    if flow in _RUNNING or state in _RUNNING or (flow in _WAITING and state in _WAITING):
        return CallOutcome.IN_PROGRESS if (infos or flow in _RUNNING) else CallOutcome.QUEUED
    if call in _CALL_OUTCOMES:
        return _CALL_OUTCOMES[call]
    if flow in _CALL_OUTCOMES and flow not in ("completed", "success"):
        return _CALL_OUTCOMES[flow]  # the flow failed, with no call status
    return CallOutcome.FAILED


def key_pressed(detail: models.Detail) -> str | None:
    """The reply to the first gather that got one (the keypad's meaning is the first's)."""
    return next(
        (s.info.userPressedDigits for s in detail.callFlowSteps if s.info.userPressedDigits), None
    )


def provider_status(detail: models.Detail) -> str:
    """BizPhone's own words for the call, kept for the record: the call's status (or the
    flow's), and the transfer's when there was one (`answered transfer answered`)."""
    infos = [s.info for s in detail.callFlowSteps]
    words = _last([i.call_status for i in infos]) or detail.status or "unknown"
    if transfer := _last([i.transfer_status for i in infos]):
        words = f"{words} transfer {transfer}"
    return words[:40]


def _refused(exc: ValidationError, order: Order) -> RefusedError:
    """Our own check of the body failed: name the recipient when it is about one."""
    problems = models.describe(exc)
    text = "; ".join(problems[:5])
    where = re.search(r"destinations\[(\d+)\]", text)
    if where and int(where.group(1)) < len(order.recipients):
        recipient = order.recipients[int(where.group(1))]
        return RefusedError(
            text, recipient=recipient.position, phone=recipient.phone, operation="place_calls"
        )
    return RefusedError(text, operation="place_calls")


def _for_recipient(exc: RefusedError, order: Order) -> RefusedError:
    """A refusal naming the n-th of `destinations`, re-addressed to our recipient."""
    if exc.recipient is None or not 1 <= exc.recipient <= len(order.recipients):
        return exc
    recipient = order.recipients[exc.recipient - 1]
    return RefusedError(
        exc.message,
        recipient=recipient.position,
        field=exc.field,
        phone=recipient.phone,
        operation=exc.operation,
        status_code=exc.status_code,
    )
