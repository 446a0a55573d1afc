"""What happens to a simulated BizPhone call: decided by the last digit of the number
(DESIGN.md's outcome table), and how it is reported on `GET /status/{requestId}`.

| last digit | outcome                                   | `call_status`  | key pressed |
|------------|-------------------------------------------|----------------|-------------|
| 1          | answered, pressed 1                       | `answered`     | 1           |
| 2          | answered, pressed 2                       | `answered`     | 2           |
| 0          | not answered (timeout)                    | `not_answered` |             |
| 9          | failed                                    | `failed`       |             |
| 8          | busy: reported as not answered            | `not_answered` |             |
| 7          | voicemail: reported as answered, no key   | `answered`     |             |
| other      | answered, no key pressed                  | `answered`     |             |

A key is reported (`userPressedDigits`) only when the first gather of the call flow
has a branch for it, as on a real call; otherwise nothing was pressed and the
gather's default branch (if any) is followed. A gather is a fork: the chosen
branch's call flow runs and the call ends with it. Later gathers hear no key and
take their default. A transfer ends the call and reports `transfer_status`
`answered`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.providers.bizphone.models import CallFlow, GatherStep, PlayStep, TransferStep

# The seed spells the step's success `sucess_ok`; it is kept as written.
STEP_OK = "sucess_ok"
STEP_ERROR = "error"


@dataclass(frozen=True)
class Outcome:
    call_status: str  # answered / not_answered / failed
    key: str | None  # the key the callee presses at the first gather
    duration: int  # seconds; 0 when nobody answered

    @property
    def answered(self) -> bool:
        return self.call_status == "answered"


def outcome_for(phone: str) -> Outcome:
    last = phone[-1]
    if last in ("0", "8"):  # BizPhone reports a busy line as not answered (DESIGN.md)
        return Outcome("not_answered", None, 0)
    if last == "9":
        return Outcome("failed", None, 0)
    duration = 20 + sum(int(d) for d in phone if d.isdigit()) % 20
    return Outcome("answered", last if last in ("1", "2") else None, duration)


def final_steps(flow: CallFlow, outcome: Outcome) -> list[dict[str, Any]]:
    """`callFlowSteps` of a finished call."""
    first = flow.steps[0].name
    if not outcome.answered:
        status = STEP_ERROR if outcome.call_status == "failed" else STEP_OK
        info = {"call_state": "ended", "call_status": outcome.call_status, "status": status}
        return [{"stepName": first, "info": info}]
    steps: list[dict[str, Any]] = []
    _walk(flow, outcome.key, steps)
    if steps:
        steps[-1]["info"]["duration"] = outcome.duration
    return steps


def _walk(flow: CallFlow, key: str | None, out: list[dict[str, Any]]) -> None:
    for step in flow.steps:
        info: dict[str, Any] = {"call_state": "ended", "call_status": "answered", "status": STEP_OK}
        out.append({"stepName": step.name, "info": info})
        if isinstance(step, PlayStep):
            continue
        if isinstance(step, TransferStep):
            info["transfer_status"] = "answered"
            return
        assert isinstance(step, GatherStep)
        chosen = next((b for b in step.branches if key is not None and b.digit == key), None)
        info["userPressedDigits"] = key if chosen is not None else ""
        if chosen is None:
            chosen = next((b for b in step.branches if b.default), None)
        if chosen is not None:
            _walk(chosen.callFlow, None, out)
        return
