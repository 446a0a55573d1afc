"""Turn what a user asked for into a `CallRequest` Intron will accept, or say exactly why not.

Every problem is collected (not just the first), each naming the recipient, the
field, the value and what would be right, so one correction round is enough.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot import phones, templates
from bot.intron.models import CallRequest, WorkflowParam
from bot.voices import Voice

# The key under which our own request id travels in each recipient's
# `user_tag_identifiers`, so calls can be matched to our requests when
# reconciling through the workflow-calls listing.
REFERENCE_TAG = "robocall_request_id"
RECIPIENT_TAG = "robocall_recipient"


@dataclass(frozen=True)
class Recipient:
    """One person to call, as the user gave it: the number as typed and template values."""

    phone: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a call request. `recipient` is 1-based; None for the whole request."""

    field: str
    value: str
    message: str
    recipient: int | None = None

    def __str__(self) -> str:
        where = f"recipient {self.recipient}: " if self.recipient is not None else ""
        return f"{where}{self.message}"


class InvalidCallRequest(ValueError):
    """The request was not sent; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def build_call_request(
    *,
    workflow_id: str,
    message: str,
    recipients: Sequence[Recipient],
    voice: Voice | None,
    reference: str,
    default_region: str | None = None,
) -> CallRequest:
    """Validate and assemble the body of `POST /call`.

    `message` is the workflow's template; every variable it uses must be filled
    for every recipient, and the filled message must fit Intron's 4000 characters.
    `reference` (our request id) is tagged on every recipient for reconciliation.
    """
    problems: list[Problem] = []
    if not recipients:
        problems.append(Problem("recipients", "", "no recipients; give at least one number"))
    params: list[WorkflowParam] = []
    seen: dict[str, int] = {}
    for index, recipient in enumerate(recipients, start=1):
        found = _check_recipient(index, recipient, message, default_region, seen)
        if isinstance(found, WorkflowParam):
            params.append(
                found.model_copy(
                    update={
                        "user_tag_identifiers": {
                            REFERENCE_TAG: reference,
                            RECIPIENT_TAG: str(index),
                        }
                    }
                )
            )
        else:
            problems.extend(found)
    if problems:
        raise InvalidCallRequest(problems)
    return CallRequest(
        workflow_id=workflow_id,
        workflow_params=params,
        tts_voice_accent=voice.accent if voice else None,
        tts_voice_gender=voice.gender if voice else None,  # type: ignore[arg-type]
    )


def _check_recipient(
    index: int,
    recipient: Recipient,
    message: str,
    default_region: str | None,
    seen: dict[str, int],
) -> WorkflowParam | list[Problem]:
    problems: list[Problem] = []
    try:
        number = phones.to_e164(recipient.phone, default_region)
    except phones.PhoneNumberError as exc:
        return [Problem("phone_number", recipient.phone, str(exc), index)]
    if number in seen:
        problems.append(
            Problem(
                "phone_number",
                recipient.phone,
                f"phone number '{recipient.phone}' is already recipient {seen[number]}; "
                "each number is called once per request",
                index,
            )
        )
    seen.setdefault(number, index)
    values = {name: str(value) for name, value in recipient.variables.items()}
    missing = templates.missing_variables(message, values)
    if missing:
        needed = ", ".join(f"[{name}]" for name in templates.variables(message))
        problems.append(
            Problem(
                "workflow_variables",
                ", ".join(missing),
                f"no value for {', '.join(f'[{m}]' for m in missing)}; the message needs {needed} "
                f"(give them as name=value){_unused_hint(message, values)}",
                index,
            )
        )
    else:
        length = len(templates.render(message, values))
        if length > templates.MAX_MESSAGE_CHARS:
            problems.append(
                Problem(
                    "message",
                    f"{length} characters",
                    f"the message becomes {length:,} characters with these values; "
                    f"Intron's limit is {templates.MAX_MESSAGE_CHARS:,}, so shorten a value by "
                    f"{length - templates.MAX_MESSAGE_CHARS:,}",
                    index,
                )
            )
    if problems:
        return problems
    return WorkflowParam(phone_number=number, workflow_variables=values)


def _unused_hint(message: str, values: Mapping[str, str]) -> str:
    unused = sorted(set(values) - set(templates.variables(message)))
    return f"; {', '.join(unused)} is not used by this message" if unused else ""
