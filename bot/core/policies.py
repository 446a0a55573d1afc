"""Escalation policies: who is called, in which order, how long each has to acknowledge.

Knows nothing of Slack or of any provider API. A policy is created in Slack
(`source="slack"`) or kept as code in `ESCALATION_POLICIES_FILE`
(`source="file"`, read-only in Slack). Checks that need the outside world (a
user's phone, the workflow cache, the channel) live in `bot/core/policy_checks.py`.
"""

from __future__ import annotations

import hashlib
import re
import secrets

# The models are defined next to their table, so that the store can return them while
# knowing no service (tests/test_layout.py); this is where everyone imports them from.
from bot.store.policies import MAX_REPEAT, MAX_STEPS, Policy, PolicyStep, is_user_id

__all__ = [
    "ESCALATION_VARIABLES",
    "MAX_REPEAT",
    "MAX_STEPS",
    "MAX_WAIT",
    "MIN_WAIT",
    "Policy",
    "PolicyStep",
    "file_policy_id",
    "format_wait",
    "is_user_id",
    "new_policy_id",
    "parse_wait",
]

MIN_WAIT = 5.0  # seconds: anything from 5s, so demos and tests can be quick
MAX_WAIT = 24 * 3600.0  # a day: longer than that is surely a typo

# The variables the app fills in an escalation call's message.
ESCALATION_VARIABLES = ("message", "policy", "name", "step")


def new_policy_id() -> str:
    """A fresh id for a policy made in Slack."""
    return "ep-" + secrets.token_hex(6)


def file_policy_id(name: str) -> str:
    """The stable id of a policy kept as code: the same name gives the same id at every start."""
    digest = hashlib.sha256(name.strip().casefold().encode()).hexdigest()
    return "ep-" + digest[:12]


_WAIT = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])", re.IGNORECASE)
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_wait(text: str) -> float:
    """Seconds from "30s", "5m", "1h30m" (a bare number is seconds).

    Raises ValueError with a message naming the value and what would be right.
    """
    raw = str(text).strip()
    value = raw.lower().replace(" ", "")
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    elif value and re.fullmatch(r"(?:\d+(?:\.\d+)?[hms])+", value):
        units = [unit for _, unit in _WAIT.findall(value)]
        if len(units) == len(set(units)):
            seconds = sum(float(n) * _UNITS[u] for n, u in _WAIT.findall(value))
    if seconds is None:
        raise ValueError(f"wait '{raw}' is not a duration; write it like 30s, 5m or 1h30m")
    if seconds < MIN_WAIT:
        raise ValueError(f"wait '{raw}' is too short; it must be at least 5s")
    if seconds > MAX_WAIT:
        raise ValueError(f"wait '{raw}' is too long; it must be at most 24h")
    return seconds


def format_wait(seconds: float) -> str:
    """The shortest text that `parse_wait` reads back as these seconds ("1h30m", "45s")."""
    total = round(seconds)
    if total != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
