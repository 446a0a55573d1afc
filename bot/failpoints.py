"""Named points where a test can make the process fail, to prove what survives it.

`ROBOCALL_FAILPOINTS=request.failed,web.slack_events=raise` makes the process
SIGKILL itself on reaching `request.failed`, and raise an exception (carrying
what the point was handed) at `web.slack_events`; `campaign.chunk_placed=kill@2`
kills on the second time the point is reached (mid-way, not at the first step).
Unset, as it always is outside tests, a point costs one set lookup.
"""

from __future__ import annotations

import os
import signal


def _armed() -> dict[str, str]:
    points = {}
    for entry in os.environ.get("ROBOCALL_FAILPOINTS", "").split(","):
        name, _, action = entry.strip().partition("=")
        if name:
            points[name] = action or "kill"
    return points


_ARMED = _armed()
_REACHED: dict[str, int] = {}


class FailpointError(RuntimeError):
    """Raised at a point armed with `=raise`."""


def reach(name: str, detail: str = "") -> None:
    """Die (or raise) here, if the point is armed."""
    action = _ARMED.get(name)
    if action is None:
        return
    if action.startswith("kill@"):
        _REACHED[name] = _REACHED.get(name, 0) + 1
        action = "kill" if str(_REACHED[name]) == action.removeprefix("kill@") else ""
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise FailpointError(f"failpoint {name}: {detail}")
