"""Workflow message templates: `[variable]` placeholders and Intron's length rule."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Intron: "the message length after replacing variables must not exceed 4000 characters".
MAX_MESSAGE_CHARS = 4000

VARIABLE = re.compile(r"\[([A-Za-z_][A-Za-z0-9_]*)\]")


def variables(template: str) -> list[str]:
    """The distinct variable names in `template`, in order of first use."""
    return list(dict.fromkeys(VARIABLE.findall(template)))


def missing_variables(template: str, values: Mapping[str, str]) -> list[str]:
    """Variables the template uses that `values` leaves unfilled (empty counts as unfilled)."""
    return [name for name in variables(template) if not str(values.get(name, "")).strip()]


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill every `[name]` from `values`; unknown placeholders are left as written."""
    return VARIABLE.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def bracket_problem(template: str) -> str | None:
    """Describe the first unbalanced or malformed `[`/`]`, or None when the brackets are fine."""
    depth_start: int | None = None
    for index, ch in enumerate(template):
        if ch == "[":
            if depth_start is not None:
                return f"'[' at character {depth_start + 1} is not closed before another '['"
            depth_start = index
        elif ch == "]":
            if depth_start is None:
                return f"']' at character {index + 1} has no matching '['"
            inner = template[depth_start + 1 : index]
            if not VARIABLE.fullmatch(f"[{inner}]"):
                return (
                    f"'[{inner}]' at character {depth_start + 1} is not a variable name; "
                    "use letters, digits and underscores, e.g. [first_name]"
                )
            depth_start = None
    if depth_start is not None:
        return f"'[' at character {depth_start + 1} is never closed"
    return None
