"""Check what someone asked for before anything is stored or sent, and say exactly why not.

Every problem is collected (not just the first), each naming the recipient, the
field, the value and what would be right, so one correction round is enough.
The limits come from the workflow's provider (`Capabilities`), not from here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.input import phones, templates
from bot.input.recipients import Recipient
from bot.providers.base import Capabilities, OrderRecipient


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an order. `recipient` is 1-based; None for the whole order."""

    field: str
    value: str
    message: str
    recipient: int | None = None

    def __str__(self) -> str:
        where = f"recipient {self.recipient}: " if self.recipient is not None else ""
        return f"{where}{self.message}"


class InvalidOrder(ValueError):
    """Nothing was stored or sent; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems[:20]))


def check_recipients(
    recipients: Sequence[Recipient],
    *,
    template: str,
    capabilities: Capabilities,
    default_region: str | None = None,
    allowed_types: Collection[phones.NumberType] = frozenset(),
) -> list[OrderRecipient]:
    """Every recipient as a valid `OrderRecipient` (E.164, values filled, within the
    provider's length limit), or InvalidOrder listing every problem. Numbers of the
    refusable types (premium-rate…) pass only when in `allowed_types`."""
    problems: list[Problem] = []
    if not recipients:
        problems.append(Problem("recipients", "", "no recipients; give at least one number"))
    checked: list[OrderRecipient] = []
    seen: dict[str, int] = {}
    for index, recipient in enumerate(recipients, start=1):
        found = _check_recipient(
            index, recipient, template, capabilities, default_region, allowed_types, seen
        )
        if isinstance(found, OrderRecipient):
            checked.append(found)
        else:
            problems.extend(found)
    if problems:
        raise InvalidOrder(problems)
    return checked


def _check_recipient(
    index: int,
    recipient: Recipient,
    template: str,
    capabilities: Capabilities,
    default_region: str | None,
    allowed_types: Collection[phones.NumberType],
    seen: dict[str, int],
) -> OrderRecipient | list[Problem]:
    problems: list[Problem] = []
    try:
        number = phones.to_e164(recipient.phone, default_region, allowed_types)
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
    problems.extend(_values_too_long(index, values, capabilities))
    missing = templates.missing_variables(template, values)
    if missing:
        needed = ", ".join(f"[{name}]" for name in templates.variables(template))
        problems.append(
            Problem(
                "workflow_variables",
                ", ".join(missing),
                f"no value for {', '.join(f'[{m}]' for m in missing)}; the message needs {needed} "
                f"(give them as name=value){_unused_hint(template, values)}",
                index,
            )
        )
    else:
        length = len(templates.render(template, values))
        limit = capabilities.message_limit
        if length > limit:
            problems.append(
                Problem(
                    "message",
                    f"{length} characters",
                    f"the message becomes {length:,} characters with these values; "
                    f"{capabilities.label}'s limit is {limit:,}, so shorten a value by "
                    f"{length - limit:,}",
                    index,
                )
            )
    if problems:
        return problems
    return OrderRecipient(position=index, phone=number, variables=values)


def _values_too_long(
    index: int, values: Mapping[str, str], capabilities: Capabilities
) -> list[Problem]:
    """A provider that caps each value on its own refuses the whole submission for one
    long value: refused here, naming it, before anything is stored."""
    limit = capabilities.value_limit
    if limit is None:
        return []
    return [
        Problem(
            "workflow_variables",
            name,
            f"the value of {name} is {len(value):,} characters; {capabilities.label} takes "
            f"at most {limit:,} per value, so shorten it by {len(value) - limit:,}",
            index,
        )
        for name, value in values.items()
        if len(value) > limit
    ]


def _unused_hint(template: str, values: Mapping[str, str]) -> str:
    unused = sorted(set(values) - set(templates.variables(template)))
    return f"; {', '.join(unused)} is not used by this message" if unused else ""
