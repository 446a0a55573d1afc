"""Pydantic models for every payload exchanged with Intron's voicebot workflow API.

What we send is strict (unknown fields are refused, values checked) so that bad
input never leaves this process. What Intron sends is lenient: unknown extra
fields are kept, and the two shapes of reply counts are both understood.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from bot.input import phones, templates
from bot.providers.fields import (
    Count,
    Duration,
    Keys,
    OptionalId,
    Phone,
    Ref,
    Text,
    Word,
    count,
)
from bot.providers.intron import voices

T = TypeVar("T")

REPLY_DIGITS = tuple("123456789")
# Seed 000: "the message length after replacing variables must not exceed 4000 characters".
MAX_MESSAGE_CHARS = 4000


class Outgoing(BaseModel):
    """A payload we send: a misspelt field is an error, not something silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Incoming(BaseModel):
    """A payload Intron sends: extra fields are kept, so new ones never break parsing."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class WorkflowType(StrEnum):
    ROBOCALL = "ROBOCALL"
    CONVERSATION = "CONVERSATION"


# ---------------------------------------------------------------- field rules


def _e164(value: str) -> str:
    if not phones.is_e164(value):
        raise ValueError(f"phone_number '{value}' is not a valid E.164 number, e.g. +2348076960623")
    return value


def _template(value: str) -> str:
    if problem := templates.bracket_problem(value):
        raise ValueError(f"message: {problem}")
    if len(value) > MAX_MESSAGE_CHARS:
        raise ValueError(
            f"message is {len(value):,} characters; the limit is {MAX_MESSAGE_CHARS:,}"
        )
    return value


def _options(value: dict[str, str]) -> dict[str, str]:
    for digit, text in value.items():
        if digit not in REPLY_DIGITS:
            raise ValueError(f"response_options key '{digit}' is not a keypad digit 1-9")
        if not text.strip():
            raise ValueError(f"response_options['{digit}'] is empty; say what pressing it means")
    return dict(sorted(value.items()))


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"call_back_url '{value}' is not an http(s) URL")
    return value


E164 = Annotated[str, AfterValidator(_e164)]
WorkflowName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)
]
MessageTemplate = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_template)
]
ResponseOptions = Annotated[dict[str, str], AfterValidator(_options)]
CallbackUrl = Annotated[str, AfterValidator(_http_url)]


# ---------------------------------------------------------------- workflows (seed 003)


class WorkflowCreate(Outgoing):
    """Body of `POST /workflows`."""

    name: WorkflowName
    description: str | None = None
    workflow_type: WorkflowType = WorkflowType.ROBOCALL
    message: MessageTemplate
    include_reply: bool = False
    response_options: ResponseOptions | None = None
    call_back_url: CallbackUrl | None = None

    @model_validator(mode="after")
    def _reply_needs_options(self) -> WorkflowCreate:
        if self.include_reply and not self.response_options:
            raise ValueError("include_reply is true but response_options is empty; add one")
        return self


class WorkflowUpdate(Outgoing):
    """Body of `PUT /workflows/{id}`: only the fields that are set are sent."""

    name: WorkflowName | None = None
    description: str | None = None
    workflow_type: WorkflowType | None = None
    message: MessageTemplate | None = None
    include_reply: bool | None = None
    response_options: ResponseOptions | None = None
    call_back_url: CallbackUrl | None = None

    @model_validator(mode="after")
    def _reply_needs_options(self) -> WorkflowUpdate:
        if self.include_reply and self.response_options == {}:
            raise ValueError("include_reply is true but response_options is empty; add one")
        return self


class Workflow(Incoming):
    """A workflow as Intron returns it."""

    id: str = Field(validation_alias=AliasChoices("id", "workflow_id", "_id"))
    name: str
    description: str | None = None
    workflow_type: str = WorkflowType.ROBOCALL
    message: str = ""
    include_reply: bool = False
    response_options: dict[str, str] | None = None
    call_back_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def variables(self) -> list[str]:
        """The `[variables]` its message needs, in order of first use."""
        return templates.variables(self.message)


# ---------------------------------------------------------------- calls (seeds 000, 002)


class WorkflowParam(Outgoing):
    """One recipient of `POST /call`: the number, its template values, our tags."""

    phone_number: E164
    workflow_variables: dict[str, str] = Field(default_factory=dict)
    user_tag_identifiers: dict[str, str] = Field(default_factory=dict)


class CallRequest(Outgoing):
    """Body of `POST /call`. `IntronProvider` builds it from an order that
    `bot.core.orders` has checked (template variables, the 4000-character rule)."""

    workflow_id: Annotated[str, StringConstraints(min_length=1)]
    workflow_params: Annotated[list[WorkflowParam], Field(min_length=1)]
    tts_voice_accent: str | None = None
    tts_voice_gender: Literal["male", "female"] | None = None

    @model_validator(mode="after")
    def _known_voice(self) -> CallRequest:
        accent, gender = self.tts_voice_accent, self.tts_voice_gender
        if accent is None and gender is None:
            return self
        if accent is None or gender is None:
            raise ValueError("tts_voice_accent and tts_voice_gender go together: give both or none")
        if not voices.is_premium(accent, gender):
            keys = ", ".join(v.key for v in voices.premium_voices())
            raise ValueError(
                f"voice '{accent}/{gender}' is not a premium voice; choose one of: {keys}"
            )
        return self


class Envelope(Incoming, Generic[T]):
    """Intron's response wrapper: `{"data": …, "message": …, "status": "Ok"}`."""

    data: T | None = None
    message: Text = None
    status: Word = ""


class CallBatch(Incoming):
    """`data` of `POST /call`: the batch id, which the callback calls `request_id`."""

    batch_id: Ref


class CallStatus(Incoming):
    """`data` of `GET /status/{call_id}`."""

    call_id: str
    processing_status: Word
    call_duration_in_seconds: float | None = None


# ---------------------------------------------------------------- results (seed 002)

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"], start=1
    )
}
_OPTION_COUNT = re.compile(r"^replied_option_(\w+?)_count$")


class CallStats(Incoming):
    """Completion statistics. Reply counts come either as `replied_option_one_count`,
    `replied_option_two_count`, … or as a map of digit → count under any key;
    `reply_counts` reads both."""

    total_calls: Count = 0
    completed_calls: Count = 0
    timeout_calls: Count = 0
    replied_calls: Count = 0
    replied_option_one_count: Count = None
    replied_option_two_count: Count = None
    avg_duration: Duration = None
    success_rate: Duration = None

    @property
    def reply_counts(self) -> dict[str, int]:
        """Count of calls per key pressed, keyed by digit ("1"…"9")."""
        counts: dict[str, int] = {}
        for key, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, dict):
                for digit, raw in value.items():
                    digit = _NUMBER_WORDS.get(str(digit).lower(), str(digit))
                    if digit in REPLY_DIGITS and (n := count(raw)) is not None:
                        counts[digit] = n
            elif (match := _OPTION_COUNT.match(key)) and (n := count(value)) is not None:
                digit = _NUMBER_WORDS.get(match.group(1), match.group(1))
                if digit in REPLY_DIGITS:
                    counts[digit] = n
        return dict(sorted(counts.items()))


class RequestCall(Incoming):
    """One call's result, as in the callback's `request_calls` and the workflow-calls listing."""

    id: OptionalId = None
    status: Word = ""
    phone_number: Phone = None
    user_tag_identifiers: dict[str, Any] = Field(default_factory=dict)
    call_result_duration: Duration = None
    call_result_options_selected: Keys = None
    created_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _tags_or_nothing(cls, value: Any) -> Any:
        if isinstance(value, dict) and not isinstance(value.get("user_tag_identifiers"), dict):
            return {**value, "user_tag_identifiers": {}}
        return value


# Statuses that mean "not over yet" (Intron documents only COMPLETED; these are
# the usual in-progress words). Anything else is an outcome.
IN_PROGRESS_STATUSES = frozenset(
    {
        "QUEUED",
        "PENDING",
        "PROCESSING",
        "IN_PROGRESS",
        "RINGING",
        "INITIATED",
        "SCHEDULED",
        "ONGOING",
    }
)
NOT_ANSWERED_STATUSES = frozenset({"TIMEOUT", "NO_ANSWER", "NOT_ANSWERED", "BUSY"})


def is_final(status: str | None) -> bool:
    """True when a call or request status is an outcome, not a step on the way."""
    return bool(status) and str(status).upper() not in IN_PROGRESS_STATUSES


def stats_from_calls(calls: list[RequestCall]) -> CallStats:
    """Seed 002's statistics computed from the calls themselves."""
    total = len(calls)
    answered = [c for c in calls if (c.status or "").upper() == "COMPLETED"]
    keys = [c.call_result_options_selected for c in answered if c.call_result_options_selected]
    durations = [float(c.call_result_duration or 0) for c in answered]
    counts = {digit: keys.count(digit) for digit in sorted(set(keys))}
    return CallStats(
        total_calls=total,
        completed_calls=len(answered),
        timeout_calls=sum((c.status or "").upper() in NOT_ANSWERED_STATUSES for c in calls),
        replied_calls=len(keys),
        replied_option_one_count=counts.get("1", 0),
        replied_option_two_count=counts.get("2", 0),
        avg_duration=round(sum(durations) / len(durations), 1) if durations else 0.0,
        success_rate=round(100.0 * len(answered) / total, 1) if total else 0.0,
        **({"replied_option_counts": counts} if set(counts) - {"1", "2"} else {}),
    )


class CompletionCallback(Incoming):
    """What Intron POSTs to a workflow's `call_back_url` when a request completes."""

    request_id: Ref
    status: Word  # required: it says whether the request is over
    integrator_id: OptionalId = None
    stats: CallStats = Field(default_factory=CallStats)
    request_calls: list[RequestCall] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _stats_or_none(cls, value: Any) -> Any:
        # Statistics are only shown; a malformed block must not lose the calls' results.
        if isinstance(value, dict) and not isinstance(value.get("stats", {}), dict):
            return {**value, "stats": {}}
        return value


class WorkflowRequest(Incoming):
    """One item of `GET /workflows/{id}/requests`: a batch and its statistics."""

    id: str = Field(validation_alias=AliasChoices("id", "batch_id", "request_id"))
    status: Word = ""
    stats: CallStats | None = None
    created_at: datetime | None = None


class WorkflowCall(RequestCall):
    """One item of `GET /workflows/{id}/calls`."""

    batch_id: OptionalId = None


class Page(Incoming, Generic[T]):
    """One page of a listing. Intron's docs do not show the listing shape, so both a
    bare list and an object holding the list (`items`, `data`, `results`, …) are read."""

    items: list[T] = Field(default_factory=list)
    page: int = 1
    per_page: int = 10
    total: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _find_items(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"items": value}
        if isinstance(value, dict) and "items" not in value:
            for key in ("data", "results", "requests", "calls", "workflows"):
                if isinstance(value.get(key), list):
                    return {**value, "items": value[key]}
        return value

    @property
    def has_next(self) -> bool:
        """True when a later page exists (or may exist, if Intron gives no total)."""
        if self.total is not None:
            return self.page * self.per_page < self.total
        return len(self.items) >= self.per_page
