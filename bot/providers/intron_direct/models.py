"""Pydantic models for every payload of Intron's direct robo-call API (seed 001).

What we send is strict (unknown fields refused, `message` XOR `audio_url`,
`retry_count` 0-3, DTMF actions keyed by keypad digit) so that a bad call never
leaves this process; the sandbox validates with the same models. What Intron
sends is lenient and bounded (`bot/providers/fields.py`): extra fields are kept,
a bad value becomes "unreadable" or None, only the call id that identifies an
answer or an event is required.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    model_validator,
)

from bot.input import phones, templates
from bot.providers.fields import Duration, Keys, OptionalId, Phone, Ref, Text, Word

# Seed 001 states no message limit. 4000 characters after substitution is Intron's
# documented rule for its voicebot API (seed 000); we assume the same here.
MAX_MESSAGE_CHARS = 4000
# One variable's value: our assumption; the seed names no cap.
MAX_VALUE_CHARS = 1000
DEFAULT_VOICE = "en-female-1"  # seed 001's default
MAX_RETRY_COUNT = 3
DTMF_DIGITS = tuple("0123456789*#")
MAX_BATCH_ANSWER = 10_000  # calls in a batch answer we read at most

EVENT_ANSWERED = "robo_call.answered"
EVENT_DTMF = "robo_call.dtmf"
EVENT_COMPLETED = "robo_call.completed"

RESULTS = ("answered", "voicemail", "busy", "no_answer", "failed", "rejected")


class Outgoing(BaseModel):
    """A payload we send: a misspelt field is an error, not something silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Incoming(BaseModel):
    """A payload Intron sends: extra fields are kept, values bounded."""

    model_config = ConfigDict(extra="allow")


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


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+\S*$", value):
        raise ValueError(f"'{value[:100]}' is not an http(s) URL")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("schedule_at needs a time zone, e.g. 2024-01-20T07:00:00Z")
    return value


def _when(value: Any) -> datetime | None:
    """A timestamp Intron sends: an ISO 8601 string, else None (never an error)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


E164 = Annotated[str, AfterValidator(_e164)]
Message = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_template)
]
Value = Annotated[str, StringConstraints(max_length=MAX_VALUE_CHARS)]
HttpUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
VoiceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")]
CallerId = Annotated[str, StringConstraints(pattern=r"^\+?[0-9A-Za-z ]{1,32}$")]
VariableName = Annotated[str, StringConstraints(pattern=rf"^{templates.NAME}$")]
ScheduleAt = Annotated[datetime, AfterValidator(_aware)]
When = Annotated[datetime | None, BeforeValidator(_when)]


# ---------------------------------------------------------------- what we send


class DtmfAction(Outgoing):
    """What pressing one digit does: seed 001 shows `webhook` with a `url` and a
    `response_message` spoken back to the caller."""

    action: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")] = "webhook"
    url: HttpUrl | None = None
    response_message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS)] | None = None

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> DtmfAction:
        if self.action == "webhook" and self.url is None:
            raise ValueError("a 'webhook' action needs a url")
        return self


def _digits(value: dict[str, DtmfAction]) -> dict[str, DtmfAction]:
    for digit in value:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"dtmf_config.actions key '{digit}' is not a keypad key 0-9, * or #")
    return dict(sorted(value.items()))


class DtmfConfig(Outgoing):
    """`dtmf_config`: listen for key presses and what each digit does."""

    enabled: bool = True
    timeout: Annotated[int, Field(ge=1, le=60)] = 10  # seconds to wait for a key
    max_digits: Annotated[int, Field(ge=1, le=8)] = 1
    actions: Annotated[dict[str, DtmfAction], AfterValidator(_digits)] = Field(default_factory=dict)


class _Speech(Outgoing):
    """What a call plays: a TTS `message` or an `audio_url`, never both."""

    message: Message | None = None
    audio_url: HttpUrl | None = None
    variables: dict[VariableName, Value] | None = None

    def _one_of(self, where: str = "") -> None:
        if (self.message is None) == (self.audio_url is None):
            raise ValueError(f"{where}give either message or audio_url, not both and not neither")
        if self.message is not None:
            values = self.variables or {}
            if missing := templates.missing_variables(self.message, values):
                names = ", ".join(f"{{{{{m}}}}}" for m in missing)
                raise ValueError(f"{where}message needs variables {names}")
            length = len(templates.render(self.message, values))
            if length > MAX_MESSAGE_CHARS:
                raise ValueError(
                    f"{where}message is {length:,} characters after filling in the variables; "
                    f"the limit is {MAX_MESSAGE_CHARS:,}"
                )


class _Options(Outgoing):
    """The options a single call and a batch share."""

    voice: VoiceId | None = None
    caller_id: CallerId | None = None
    language: Language | None = None
    retry_count: Annotated[int, Field(ge=0, le=MAX_RETRY_COUNT)] | None = None
    retry_delay: Annotated[int, Field(ge=1, le=24 * 60)] | None = None  # minutes
    callback_url: HttpUrl | None = None
    schedule_at: ScheduleAt | None = None
    dtmf_config: DtmfConfig | None = None


class CallRequest(_Speech, _Options):
    """Body of `POST /call`."""

    phone_number: E164

    @model_validator(mode="after")
    def _speech(self) -> CallRequest:
        self._one_of()
        return self


class BatchCall(_Speech, _Options):
    """One of `calls` in `POST /call/batch`: its own number, message and values; the
    options, when given, override the batch's."""

    phone_number: E164

    @model_validator(mode="after")
    def _speech(self) -> BatchCall:
        self._one_of()
        return self


class BatchRequest(_Options):
    """Body of `POST /call/batch`: `calls`, and options for every call."""

    calls: Annotated[list[BatchCall], Field(min_length=1, max_length=1000)]

    def effective(self, index: int) -> dict[str, Any]:
        """Call `index` with the batch's options filled in where it has none."""
        call = self.calls[index]
        merged = self.model_dump(exclude_none=True, exclude={"calls"})
        merged.update(call.model_dump(exclude_none=True))
        return merged


# ---------------------------------------------------------------- what Intron answers


class CallQueued(Incoming):
    """Answer to `POST /call` (queued or scheduled)."""

    status: Word = ""
    call_id: Ref
    message: Text = None
    scheduled_at: When = None
    estimated_start: When = None


class BatchCallQueued(Incoming):
    call_id: OptionalId = None
    phone_number: Phone = None
    status: Word = ""


class BatchQueued(Incoming):
    """Answer to `POST /call/batch`."""

    status: Word = ""
    batch_id: Ref
    total_calls: int | None = None
    calls: Annotated[list[BatchCallQueued], Field(max_length=MAX_BATCH_ANSWER)] = Field(
        default_factory=list
    )


class CallStatus(Incoming):
    """Answer to `GET /call/{call_id}`."""

    call_id: Ref
    status: Word = ""
    phone_number: Phone = None
    duration: Duration = None
    created_at: When = None
    started_at: When = None
    ended_at: When = None
    dtmf_input: Keys = None
    call_result: Word = ""


class CancelResult(Incoming):
    """Answer to `DELETE /call/{call_id}`."""

    status: Word = ""
    message: Text = None
    call_id: OptionalId = None


# ---------------------------------------------------------------- webhook events


class _Event(Incoming):
    call_id: Ref
    timestamp: When = None


class AnsweredEvent(_Event):
    event: Literal["robo_call.answered"]
    phone_number: Phone = None


class DtmfEvent(_Event):
    event: Literal["robo_call.dtmf"]
    digit: Keys = None
    phone_number: Phone = None


class CompletedEvent(_Event):
    event: Literal["robo_call.completed"]
    phone_number: Phone = None
    duration: Duration = None
    result: Word = ""
    dtmf_input: Keys = None


def _event_tag(value: Any) -> str | None:
    event = value.get("event") if isinstance(value, dict) else getattr(value, "event", None)
    return event if event in (EVENT_ANSWERED, EVENT_DTMF, EVENT_COMPLETED) else None


# Any of the three per-call events, told apart by `event`.
WebhookEvent = Annotated[
    Annotated[AnsweredEvent, Tag(EVENT_ANSWERED)]
    | Annotated[DtmfEvent, Tag(EVENT_DTMF)]
    | Annotated[CompletedEvent, Tag(EVENT_COMPLETED)],
    Discriminator(_event_tag),
]
WEBHOOK_EVENT: TypeAdapter[AnsweredEvent | DtmfEvent | CompletedEvent] = TypeAdapter(WebhookEvent)
