"""The provider interface: what the core asks of any robo-call API, in the core's own terms.

The core (`bot/core/`), the store and the Slack adapter know providers only
through this module. Each provider package (`bot/providers/<id>/`) turns these
types into its API's payloads and back: an `Order` into a submission, its
callbacks or status answers into `CallUpdate`s, its errors into the
`ProviderError` family below, so a user reads the same words whichever API
placed the call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from bot.input import templates

T = TypeVar("T")


# ---------------------------------------------------------------- what a provider can do


@dataclass(frozen=True)
class Capabilities:
    """What a provider offers, so the core and the front ends ask only for that."""

    label: str  # how people name it: "Intron"
    key_setting: str  # the setting an admin checks when the key is refused
    template_syntax: Literal["brackets", "braces"]  # how it writes variables: [x] or {{x}}
    message_limit: int  # characters per message after the variables are filled in
    keypad: bool  # a call can take a key press
    schedule: bool  # the provider itself can dial at a given time
    cancel: bool  # a queued call can be cancelled at the provider
    audio: bool  # a call can play a recorded file
    transfer: bool  # a call can be transferred to a person
    results: Literal["callback", "polling"]  # how results reach us
    resend_safe: bool  # an unknown submit can be settled by asking, then resent
    workflows_at_provider: bool  # workflows live at the provider (cached here)
    workflow_kinds: tuple[str, ...] = ("robocall",)
    listings: bool = False  # lists a workflow's requests and calls
    quota_note: str = ""  # the management quota, in words, for "possible again in …"
    max_batch: int = 1_000  # recipients one submission carries; larger requests are split
    # For a provider whose results come only by polling: the first and the longest wait
    # (s) between looks at a placed request (None: RECONCILE_AFTER, doubling).
    poll_interval: tuple[float, float] | None = None
    # Characters one variable's value may have at the provider (None: no limit of its own).
    value_limit: int | None = None


# ---------------------------------------------------------------- workflows


class Workflow(BaseModel):
    """What a call says and which keys mean what, on one provider."""

    model_config = ConfigDict(frozen=True)

    id: str
    provider: str
    name: str
    description: str | None = None
    kind: str = "robocall"
    message: str = ""
    keypad: dict[str, str] = Field(default_factory=dict)  # digit -> meaning; {} = no reply
    callback_url: str | None = None  # where the provider sends results, when set per workflow
    created_at: datetime | None = None
    # For providers whose workflows live in this app: a recorded message instead of the
    # text (`audio_url`), a whole call flow (BizPhone's `callFlow`), and the provider's
    # own settings (voice, caller id, language, retries, what each key answers…).
    audio_url: str | None = None
    call_flow: dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    read_only: bool = False  # kept as code (WORKFLOWS_FILE): shown, not edited, in Slack
    # Calling responsibly (bot/core/consent.py): the daily window in the callee's local
    # time ("08:00-21:00"; None: CALLING_HOURS), and whether key 9 means "stop these
    # calls" (the callee is put on the opt-out list).
    calling_hours: str | None = None
    press_9_to_stop: bool = False

    @property
    def variables(self) -> list[str]:
        """The variables its message needs, in order of first use."""
        return templates.variables(self.message)

    def label(self, digit: str) -> str:
        return self.keypad.get(digit, "no label")


class WorkflowDraft(BaseModel):
    """A workflow as someone wrote it, before the provider has it."""

    name: str
    description: str | None = None
    kind: str = "robocall"
    message: str
    keypad: dict[str, str] = Field(default_factory=dict)
    audio_url: str | None = None
    call_flow: dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    calling_hours: str | None = None  # as on Workflow
    press_9_to_stop: bool = False


@dataclass(frozen=True)
class Voice:
    """A voice a provider speaks in; `key` is how people name it (`igbo/female`)."""

    key: str
    language: str
    gender: str

    @property
    def label(self) -> str:
        return f"{self.language} ({self.gender})"


# ---------------------------------------------------------------- orders and results


@dataclass(frozen=True)
class OrderRecipient:
    """One person to call: our position for them (1-based), the E.164 number, the values."""

    position: int
    phone: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Order:
    """Everything a provider needs to place one request's calls."""

    request_id: str  # ours; a provider tags it on each call where its API allows
    workflow: Workflow
    recipients: Sequence[OrderRecipient]
    voice: str | None = None  # a `Voice.key` of this provider, or its default
    at: datetime | None = None  # dial at this time, when the provider can schedule


class CallOutcome(StrEnum):
    """A call's state in the core's words; the first two are not final."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self not in (CallOutcome.QUEUED, CallOutcome.IN_PROGRESS)


@dataclass(frozen=True)
class CallUpdate:
    """What a provider reports about one call. `position` is ours when the provider
    echoed our tag; otherwise the call is matched by `phone`."""

    outcome: CallOutcome
    provider_status: str  # the provider's own word for it, kept for the record
    phone: str | None = None
    position: int | None = None
    provider_call_id: str | None = None
    duration: float | None = None
    key_pressed: str | None = None


@dataclass(frozen=True)
class CallbackReport:
    """A provider's callback, read: which submission, which request, what happened.
    The calls' updates are worked out when first asked for: the web process, which
    only checks and stores a callback, never needs them."""

    provider_ref: str | None  # the provider's id for the submission (Intron's batch id)
    request_ids: frozenset[str]  # our request ids the callback's calls were tagged with
    final: bool  # the submission is over: every call has its outcome
    status: str  # the provider's word for the submission ("COMPLETED")
    read_updates: Callable[[], Sequence[CallUpdate]] = field(repr=False, compare=False)

    @cached_property
    def updates(self) -> Sequence[CallUpdate]:
        return self.read_updates()


@dataclass(frozen=True)
class Poll:
    """One step of asking a provider what became of a submission."""

    updates: Sequence[CallUpdate]
    cursor: str | None = None  # where the next step starts, when there is more to read


class Page(BaseModel, Generic[T]):
    """One page of a provider's listing."""

    items: list[T] = Field(default_factory=list)
    page: int = 1
    per_page: int = 10
    total: int | None = None
    has_next: bool = False


class ProviderRequest(BaseModel):
    """A submission as the provider lists it (a workflow's recent requests)."""

    ref: str
    status: str | None = None
    total: int = 0
    answered: int = 0
    success_rate: float | None = None
    avg_duration: float | None = None
    created_at: datetime | None = None


class ProviderCall(BaseModel):
    """A call as the provider lists it (a workflow's calls)."""

    phone: str
    outcome: CallOutcome
    provider_status: str
    duration: float | None = None
    key_pressed: str | None = None
    provider_ref: str | None = None
    request_id: str | None = None  # ours, when the call carries our tag


# ---------------------------------------------------------------- errors


class ProviderError(Exception):
    """Base class: `operation` is what we were doing; `status_code` what the API answered.
    None of these ever carries an API key. `transient`: trying again later may work
    (the worker then retries a job for as long as it takes)."""

    transient = False

    def __init__(
        self, message: str, *, operation: str = "", status_code: int | None = None
    ) -> None:
        self.message = message
        self.operation = operation
        self.status_code = status_code
        super().__init__(message)


class AuthenticationError(ProviderError):
    """401/403: the API key is missing, wrong or lacks access."""


class NotFoundError(ProviderError):
    """404: the workflow, call or submission does not exist."""


class RefusedError(ProviderError):
    """400/422: the provider refused the request as sent; `message` is its explanation.
    `recipient` is our position of the recipient it names, when it names one (and
    `phone` that recipient's number, for showing it masked); `field` is the field it
    names (`phone_number`, `workflow_variables.name`), when it names one."""

    def __init__(
        self,
        message: str,
        *,
        recipient: int | None = None,
        field: str | None = None,
        phone: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.recipient = recipient
        self.field = field
        self.phone = phone
        super().__init__(message, **kwargs)


class RateLimitedError(ProviderError):
    """The provider answered 429, or our limiter says the wait is longer than allowed.
    `retry_after` is the number of seconds after which it is possible again."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(ProviderError):
    """5xx after the retries we are allowed to make, or an answer of an unexpected shape."""

    transient = True


class ProviderConnectionError(ProviderError):
    """The provider could not be reached before anything was sent."""

    transient = True


class OutcomeUnknownError(ProviderError):
    """The request may or may not have been carried out (read timeout, 500 on a POST).
    Never resent blindly: settle it by asking the provider."""


class BadCallback(ValueError):
    """A callback body that cannot be read: `status` 400 (not JSON) or 422 (wrong shape)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


# ---------------------------------------------------------------- the interface

BeforeSend = Callable[[], None]


class Provider(Protocol):
    """One robo-call API. Implementations live in `bot/providers/<id>/`."""

    id: str
    capabilities: Capabilities
    sandbox: bool  # True when this is a local stand-in: no real call is placed
    callback_url: str | None  # where it sends results to this app, when it calls back

    def voices(self) -> Sequence[Voice]:
        """The voices a request may choose, in display order."""
        ...

    async def submit(self, order: Order, *, before_send: BeforeSend) -> str:
        """Place the order's calls; returns the provider's reference for them.
        `before_send` runs once the request is about to leave (a crash from then on
        leaves the outcome unknown); it may raise to stop it."""
        ...

    async def find(self, order: Order) -> str | None:
        """After an unknown outcome: the reference of the order's submission if the
        provider has it, None if it certainly has not. Raises when it cannot tell."""
        ...

    async def poll(self, ref: str, order: Order, cursor: str | None) -> Poll:
        """One step of reading what became of a submission's calls."""
        ...

    def read_callback(self, body: bytes) -> CallbackReport:
        """A callback body, read; raises BadCallback when it cannot be."""
        ...

    def wait_time(self, purpose: Literal["calls", "management"]) -> float:
        """Seconds before our limiter would let one more request of this kind through."""
        ...

    # Workflows kept at the provider (capabilities.workflows_at_provider).
    async def list_workflows(self) -> list[Workflow]: ...

    async def create_workflow(self, draft: WorkflowDraft) -> Workflow: ...

    async def update_workflow(self, workflow_id: str, draft: WorkflowDraft) -> Workflow: ...

    async def repoint_workflow(self, workflow_id: str) -> Workflow:
        """Send this workflow's results to this app, changing nothing else."""
        ...

    async def delete_workflow(self, workflow_id: str) -> None: ...

    async def workflow_requests(self, workflow_id: str, page: int) -> Page[ProviderRequest]: ...

    async def workflow_calls(
        self,
        workflow_id: str,
        *,
        page: int,
        per_page: int,
        ref: str | None = None,
        outcome: str | None = None,
        phone: str | None = None,
    ) -> Page[ProviderCall]: ...

    async def aclose(self) -> None: ...
