"""Message templates: `[name]` or `{{name}}` placeholders, filled per recipient.

People may write either syntax in any workflow; each provider is sent its own
(`in_syntax`), and each checks its own length limit after filling in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

Syntax = Literal["brackets", "braces"]

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
VARIABLE = re.compile(rf"\[({NAME})\]|\{{\{{\s*({NAME})\s*\}}\}}")


def variables(template: str) -> list[str]:
    """The distinct variable names in `template`, in order of first use."""
    return list(dict.fromkeys(a or b for a, b in VARIABLE.findall(template)))


def missing_variables(template: str, values: Mapping[str, str]) -> list[str]:
    """Variables the template uses that `values` leaves unfilled (empty counts as unfilled)."""
    return [name for name in variables(template) if not str(values.get(name, "")).strip()]


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill every placeholder from `values`; unknown placeholders are left as written."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return str(values[name]) if name in values else match.group(0)

    return VARIABLE.sub(fill, template)


def in_syntax(template: str, syntax: Syntax) -> str:
    """`template` with every placeholder written the way a provider expects."""

    def rewrite(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return f"[{name}]" if syntax == "brackets" else f"{{{{{name}}}}}"

    return VARIABLE.sub(rewrite, template)


def bracket_problem(template: str) -> str | None:
    """Describe the first unbalanced or malformed `[`/`]` or `{{`/`}}`, or None."""
    index = 0
    while index < len(template):
        if template.startswith("{{", index):
            end = template.find("}}", index + 2)
            if end < 0:
                return f"'{{{{' at character {index + 1} is never closed with '}}}}'"
            inner = template[index + 2 : end].strip()
            if not re.fullmatch(NAME, inner):
                return (
                    f"'{{{{{inner}}}}}' at character {index + 1} is not a variable name; "
                    "use letters, digits and underscores, e.g. {{first_name}}"
                )
            index = end + 2
            continue
        ch = template[index]
        if ch == "[":
            end = template.find("]", index + 1)
            opened = template.find("[", index + 1)
            if end < 0:
                return f"'[' at character {index + 1} is never closed"
            if 0 <= opened < end:
                return f"'[' at character {index + 1} is not closed before another '['"
            inner = template[index + 1 : end]
            if not re.fullmatch(NAME, inner):
                return (
                    f"'[{inner}]' at character {index + 1} is not a variable name; "
                    "use letters, digits and underscores, e.g. [first_name]"
                )
            index = end + 1
            continue
        if ch == "]":
            return f"']' at character {index + 1} has no matching '['"
        if template.startswith("}}", index):
            return f"'}}}}' at character {index + 1} has no matching '{{{{'"
        index += 1
    return None
