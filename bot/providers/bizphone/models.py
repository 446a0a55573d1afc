"""Pydantic models for B3networks' BizPhone robo-call API (seed 004).

What we send (`CallRequest`, `CallFlow` and its steps) is strict: unknown fields
are refused, numbers, digits, pitch and rate checked, and every message checked
against each destination's properties after `{{var}}` substitution
(`check_call_flow`), each problem naming the step's path
(`callFlow.steps[1].branches[0].callFlow.steps[0].message.msg`).

What BizPhone sends (`StatusResult`, the answer of `GET /status/{requestId}`)
is lenient and bounded with `bot/providers/fields.py`: a hostile or malformed
value becomes "unreadable" or None, never an exception, and one bad destination
never loses the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.providers.fields import Duration, Keys, OptionalId, Phone, Text, Word

# Seed 004: "msg … Max 1000 characters" (after the destination's properties are filled in).
MAX_MESSAGE_CHARS = 1000
MAX_DEPTH = 8  # gathers nested in gathers: deeper than this is refused
MAX_STEPS = 50  # steps in one call flow
MAX_DETAILS = 10_000  # destinations read from one status answer
MAX_STEP_REPORTS = 100  # steps read per destination

# Seed 004's pattern for `phone` and `caller`.
PHONE_PATTERN = r"^\+?[1-9]\d{1,14}$"
_PHONE = re.compile(PHONE_PATTERN)
_EXTENSION = re.compile(r"^Ext:\d{1,10}$")
# A transfer goes to a number written with its `+` (so an extension without `Ext:` is
# never dialled as a number) or to an extension.
_TRANSFER_NUMBER = re.compile(r"^\+[1-9]\d{1,14}$")
_REQUEST_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
GATHER_DIGITS = frozenset("0123456789*#")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class Outgoing(BaseModel):
    """A payload we send: a misspelt field is an error, not something silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Incoming(BaseModel):
    """A payload BizPhone sends: unknown fields are ignored, every value bounded."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# ---------------------------------------------------------------- what we send


def _flag(value: Any) -> Any:
    """The seed writes booleans as strings (`"default": "false"`): read both forms."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


# `default` of a branch: read as a bool or as the seed's "true"/"false"; sent as the seed
# writes it, a string.
BranchFlag = Annotated[
    bool,
    BeforeValidator(_flag),
    PlainSerializer(lambda v: "true" if v else "false", return_type=str),
]
Level = Annotated[int, Field(ge=0, le=9, strict=True)]
SeedPhone = Annotated[str, StringConstraints(pattern=PHONE_PATTERN)]


class Message(Outgoing):
    """What is spoken: `msg` (≤ 1000 characters once `{{var}}`s are filled in) and the voice."""

    msg: Annotated[str, StringConstraints(min_length=1)]
    # The seed's table says `language`, its example `lang`: both are read, `lang` is sent.
    lang: str | None = Field(default=None, validation_alias=AliasChoices("lang", "language"))
    gender: Literal["male", "female"] | None = None
    pitch: Level | None = None  # 0 (lowest) … 9 (highest); BizPhone's default 5
    rate: Level | None = None  # 0 (slowest) … 9 (fastest); BizPhone's default 5

    @field_validator("msg")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the message is empty; say something")
        return value


class PlayStep(Outgoing):
    name: Literal["play"]
    message: Message


class Branch(Outgoing):
    """Where a gather goes next: on a `digit`, or by `default` (no or another key)."""

    digit: str | None = None
    default: BranchFlag = False
    callFlow: CallFlow

    @field_validator("digit", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is not None and value not in GATHER_DIGITS:
            raise ValueError(f"digit '{value}' is not one keypad key: 0-9, * or #")
        return value

    @model_validator(mode="after")
    def _digit_or_default(self) -> Branch:
        if self.digit is None and not self.default:
            raise ValueError("a branch needs a digit, or default true")
        return self


class GatherStep(Outgoing):
    """Speak `message`, then read a key; `maxRetries` times at most (BizPhone's default 3)."""

    name: Literal["gather"]
    message: Message
    maxRetries: Annotated[int, Field(ge=0, le=10, strict=True)] | None = None
    branches: Annotated[list[Branch], Field(min_length=1)]


def _destination(value: str) -> str:
    if not (_TRANSFER_NUMBER.fullmatch(value) or _EXTENSION.fullmatch(value)):
        raise ValueError(
            f"transfer destination '{value}' is neither an E.164 number (+6591991191) "
            "nor an extension (Ext:1000)"
        )
    return value


class TransferStep(Outgoing):
    name: Literal["transfer"]
    destination: Annotated[str, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)]

    @field_validator("destination")
    @classmethod
    def _where(cls, value: str) -> str:
        return _destination(value)


Step = Annotated[PlayStep | GatherStep | TransferStep, Field(discriminator="name")]


class CallFlow(Outgoing):
    """`callFlow`: the steps, from start to end."""

    steps: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]


Branch.model_rebuild()


class Destination(Outgoing):
    """One number to call, the caller id it shows, and its `{{var}}` values."""

    phone: SeedPhone
    caller: SeedPhone | None = None
    properties: dict[str, str] = Field(default_factory=dict)


class CallRequest(Outgoing):
    """Body of `POST /call`. `requestId` is ours and unique: it is how the request is
    found again (`GET /status/{requestId}`)."""

    requestId: Annotated[str, StringConstraints(pattern=_REQUEST_ID)]
    destinations: Annotated[list[Destination], Field(min_length=1)]
    enableCallRecording: bool | None = None
    callFlow: CallFlow

    @model_validator(mode="after")
    def _every_message_fits(self) -> CallRequest:
        problems: list[str] = []
        seen: dict[str, int] = {}
        for index, destination in enumerate(self.destinations):
            if (first := seen.setdefault(_digits(destination.phone), index)) != index:
                problems.append(
                    f"destinations[{index}].phone: the same number as destinations[{first}]"
                )
        structure = check_call_flow(self.callFlow)
        problems += [p.text for p in structure]
        if not structure:
            for index, destination in enumerate(self.destinations):
                problems += [
                    f"destinations[{index}]: {p.text}"
                    for p in check_call_flow(self.callFlow, destination.properties)
                ]
        if problems:
            more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise ValueError("; ".join(problems[:10]) + more)
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body, as the seed writes it."""
        return self.model_dump(mode="json", exclude_none=True)


def _digits(phone: str) -> str:
    return phone.lstrip("+")


# ---------------------------------------------------------------- checking a call flow


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a call flow: where (`path`), and what."""

    path: str
    message: str

    @property
    def text(self) -> str:
        return f"{self.path}: {self.message}"


def render(template: str, properties: Mapping[str, str]) -> str:
    """`{{var}}`s filled in from `properties`, as BizPhone does; unknown ones left as written."""
    return _PLACEHOLDER.sub(
        lambda m: str(properties[m.group(1)]) if m.group(1) in properties else m.group(0),
        template,
    )


def placeholders(template: str) -> list[str]:
    """The `{{var}}` names a message uses, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(template)))


def check_call_flow(
    flow: CallFlow, properties: Mapping[str, str] | None = None, *, path: str = "callFlow"
) -> list[Problem]:
    """Every problem of `flow`, each naming its step path: digits given twice in a gather,
    more than one default, nesting deeper than `MAX_DEPTH`, and, for one destination's
    `properties`, each message longer than 1000 characters once filled in or using a
    `{{var}}` the destination has no property for. Without `properties`, the
    messages are measured as written."""
    problems: list[Problem] = []
    _check(flow, properties, path, 1, problems)
    return problems


def _check(
    flow: CallFlow,
    properties: Mapping[str, str] | None,
    path: str,
    depth: int,
    problems: list[Problem],
) -> None:
    if depth > MAX_DEPTH:
        problems.append(Problem(path, f"call flows nest at most {MAX_DEPTH} deep"))
        return
    for index, step in enumerate(flow.steps):
        here = f"{path}.steps[{index}]"
        if isinstance(step, PlayStep | GatherStep):
            _check_message(step.message, properties, f"{here}.message.msg", problems)
        if not isinstance(step, GatherStep):
            continue
        digits: dict[str, int] = {}
        default: int | None = None
        for b, branch in enumerate(step.branches):
            where = f"{here}.branches[{b}]"
            if branch.digit is not None:
                if branch.digit in digits:
                    problems.append(
                        Problem(
                            f"{where}.digit",
                            f"digit '{branch.digit}' is already taken by "
                            f"branches[{digits[branch.digit]}]",
                        )
                    )
                else:
                    digits[branch.digit] = b
            if branch.default:
                if default is not None:
                    problems.append(
                        Problem(
                            f"{where}.default",
                            f"only one branch may be the default; branches[{default}] already is",
                        )
                    )
                else:
                    default = b
            _check(branch.callFlow, properties, f"{where}.callFlow", depth + 1, problems)


def _check_message(
    message: Message, properties: Mapping[str, str] | None, path: str, problems: list[Problem]
) -> None:
    if properties is None:
        text = message.msg
    else:
        if missing := [n for n in placeholders(message.msg) if n not in properties]:
            names = ", ".join(f"{{{{{n}}}}}" for n in missing)
            problems.append(
                Problem(path, f"uses {names}, which the destination has no property for")
            )
        text = render(message.msg, properties)
    if len(text) > MAX_MESSAGE_CHARS:
        filled = " once its properties are filled in" if properties is not None else ""
        problems.append(
            Problem(
                path,
                f"the message is {len(text):,} characters{filled}; "
                f"the limit is {MAX_MESSAGE_CHARS:,}",
            )
        )


def flow_problems(flow: Any, properties: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of a `callFlow` as written (a dict, e.g. from a workflow kept as
    code), each naming its path from `callFlow`: its shape first, then its rules, then
    (with one recipient's `properties`) its messages once filled in. [] when it is fine."""
    try:
        parsed = CallFlow.model_validate(flow)
    except ValidationError as exc:
        return [f"callFlow.{p}" if not p.startswith("[") else f"callFlow{p}" for p in describe(exc)]
    structure = check_call_flow(parsed)
    if structure or properties is None:
        return [p.text for p in structure]
    return [p.text for p in check_call_flow(parsed, properties)]


_STEP_TAGS = frozenset({"play", "gather", "transfer"})


def describe(exc: ValidationError) -> list[str]:
    """A validation error's problems, each with its path written as the seed names fields
    (`callFlow.steps[0].message.pitch: …`)."""
    out = []
    for error in exc.errors():
        parts: list[str] = []
        for item in error["loc"]:
            if isinstance(item, int):
                parts.append(f"[{item}]")
            elif item in _STEP_TAGS:  # the discriminated union's tag: not a field
                continue
            else:
                parts.append(("." if parts else "") + str(item))
        where = "".join(parts)
        message = str(error["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {message}" if where else message)
    return out


# ---------------------------------------------------------------- what BizPhone sends


def _dicts(limit: int):
    """A list of objects: anything else becomes [], items that are not objects are dropped,
    and at most `limit` are kept."""

    def keep(value: Any) -> Any:
        if not isinstance(value, list):
            return []
        return [item for item in value if isinstance(item, dict)][:limit]

    return BeforeValidator(keep)


def _object(value: Any) -> Any:
    return value if isinstance(value, dict) else {}


class StepInfo(Incoming):
    """`info` of one step of a destination's call flow."""

    call_state: Word = ""  # e.g. ongoing
    call_status: Word = ""  # e.g. answered
    status: Word = ""  # the step's execution: the seed shows sucess_ok / error_concurrent_…
    userPressedDigits: Keys = None
    transfer_status: Word = ""
    # Not in the seed; read when present.
    duration: Duration = Field(
        default=None, validation_alias=AliasChoices("duration", "callDuration")
    )


class StepReport(Incoming):
    stepName: Word = ""
    info: Annotated[StepInfo, BeforeValidator(_object)] = Field(default_factory=StepInfo)


class Monitor(Incoming):
    uuid: OptionalId = None
    type: Word = ""
    dest: Text = None


class Detail(Incoming):
    """One destination's call, in `details` of a status answer."""

    requestId: OptionalId = None
    caller: Phone = None
    destination: Phone = None
    status: Word = ""  # the call flow's status, e.g. onProgress
    callFlowSteps: Annotated[list[StepReport], _dicts(MAX_STEP_REPORTS)] = Field(
        default_factory=list
    )
    monitorData: Annotated[list[Monitor], _dicts(MAX_STEP_REPORTS)] = Field(default_factory=list)


class StatusResult(Incoming):
    """The answer of `GET /status/{requestId}` (and of `POST /call`, in the seed's
    "example of successful result")."""

    requestId: OptionalId = None
    status: Word = ""  # e.g. submitted
    message: Text = None
    details: Annotated[list[Detail], _dicts(MAX_DETAILS)] = Field(default_factory=list)


def read_status(body: Any) -> StatusResult:
    """A status answer, read; never raises (a body that is not an object reads as empty)."""
    try:
        return StatusResult.model_validate(body if isinstance(body, dict) else {})
    except ValidationError:  # every field is lenient: only a bug gets here
        return StatusResult()
