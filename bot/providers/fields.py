"""Bounded fields for what providers send: every string and number is checked as it
arrives, so no value from outside can grow the database, break a message or crash a
job later.

A value that is not what it should be does not make the whole payload unreadable
(one bad call must not lose 999 good results): a word becomes `UNREADABLE`, a
number or an optional id becomes None, and the rest is kept. Only what identifies
a payload (its batch id) is refused outright, by the model that uses `Ref`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

UNREADABLE = "UNREADABLE"  # shown to people as "unreadable"

MAX_WORD = 40  # a status such as COMPLETED or NO_ANSWER
MAX_ID = 128  # a provider's id for a call or a batch
MAX_PHONE = 32  # E.164 is at most 16 characters; some slack for formatting
MAX_KEYS = 8  # keys pressed in one call
MAX_DURATION = 24 * 3600.0  # seconds: no robo call lasts a day
MAX_COUNT = 10_000_000
MAX_TEXT = 500  # a provider's explanation of an error

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_ -]*")
_ID = re.compile(r"[A-Za-z0-9._:@+=/-]+")
_PHONE = re.compile(r"\+?[0-9A-Za-z ().-]+")  # letters: documentation writes +23480xxxx
_KEYS = re.compile(r"[0-9*#]+")
_COUNT = re.compile(r"[0-9]{1,9}")  # not str.isdigit: "²" is a digit int() cannot read


def _word(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip() if isinstance(value, str | int) else ""
    if not text:
        return ""
    return text if len(text) <= MAX_WORD and _WORD.fullmatch(text) else UNREADABLE


def _optional_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_ID and _ID.fullmatch(value) else None


def _phone(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_PHONE and _PHONE.fullmatch(value) else None


def _keys(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return UNREADABLE
    value = value.strip()
    if not value:
        return None
    return value if len(value) <= MAX_KEYS and _KEYS.fullmatch(value) else UNREADABLE


def _duration(value: Any) -> int | float | None:
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6})?", value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) and 0 <= value <= MAX_DURATION else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def count(value: Any) -> int | None:
    """A count as a provider may write it (7, 7.0, "7"), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _COUNT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and 0 <= value <= MAX_COUNT:
        return value
    return None


# A provider's word for a state (COMPLETED, TIMEOUT…): short letters, else UNREADABLE.
Word = Annotated[str, BeforeValidator(_word)]
# An id the payload is about (a batch id): refused when it is not a plausible id.
Ref = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_ID, pattern=f"^{_ID.pattern}$"
    ),
]
# An id of one call, a phone number, keys pressed, a duration, a count: None when unreadable
# (keys: UNREADABLE, so that "a key was pressed" is not lost).
OptionalId = Annotated[str | None, BeforeValidator(_optional_id)]
Phone = Annotated[str | None, BeforeValidator(_phone)]
Keys = Annotated[str | None, BeforeValidator(_keys)]
Duration = Annotated[int | float | None, BeforeValidator(_duration)]
Count = Annotated[int | None, BeforeValidator(count)]
# A provider's explanation (an error message): clipped; escaped where it is shown.
Text = Annotated[str | None, BeforeValidator(_text)]


def tag(value: Any) -> str:
    """One of our own tags echoed back (a request id, a position): "" unless short and
    plain, so a forged huge tag costs nothing."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if text and len(text) <= 64 and _ID.fullmatch(text) else ""
