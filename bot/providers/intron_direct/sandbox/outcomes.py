"""What happens to a simulated direct-API call: decided by the last digit of the number.

| last digit | events sent                          | `result`    |
|------------|--------------------------------------|-------------|
| 1          | answered, dtmf 1, completed          | answered    |
| 2          | answered, dtmf 2, completed          | answered    |
| 0          | completed                            | no_answer   |
| 9          | completed                            | failed      |
| 8          | completed                            | busy        |
| 7          | completed                            | voicemail   |
| other      | answered, completed                  | answered    |

A key press is reported only when the call listens for keys (`dtmf_config`
enabled), as a real call would.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    result: str
    answered: bool
    digit: str | None
    duration: int  # seconds; 0 when nobody answered


_UNANSWERED = {"0": "no_answer", "9": "failed", "8": "busy", "7": "voicemail"}


def outcome_for(phone_number: str, listens_for_keys: bool) -> Outcome:
    last = phone_number[-1]
    if last in _UNANSWERED:
        # A voicemail plays the message to a recorder: a short duration, no answer event.
        return Outcome(_UNANSWERED[last], False, None, 15 if last == "7" else 0)
    duration = 20 + sum(int(d) for d in phone_number if d.isdigit()) % 20
    digit = last if last in ("1", "2") and listens_for_keys else None
    return Outcome("answered", True, digit, duration)
