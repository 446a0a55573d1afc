"""Named points where a test can make the process fail, to prove what survives it.

`ROBOCALL_FAILPOINTS=request.failed,web.slack_events=raise` makes the process
SIGKILL itself on reaching `request.failed`, and raise an exception (carrying
what the point was handed) at `web.slack_events`. Unset, as it always is
outside tests, a point costs one set lookup.
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


class FailpointError(RuntimeError):
    """Raised at a point armed with `=raise`."""


def reach(name: str, detail: str = "") -> None:
    """Die (or raise) here, if the point is armed."""
    action = _ARMED.get(name)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise FailpointError(f"failpoint {name}: {detail}")
