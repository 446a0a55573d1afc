"""Where each BizPhone operation lives: the one place for its paths and rate-limit groups.

Seed 004 documents `POST /call` and `GET /status/{requestId}` under
`https://{baseOpenAPI}/v1` (its host is a placeholder: `BIZPHONE_BASE_URL` has no
default). It documents no rate limit; ours (`BizPhoneClient`'s windows) is a
courtesy and a setting.
"""

from __future__ import annotations

from enum import StrEnum

from bot.providers.http import Endpoint


class LimitGroup(StrEnum):
    CALLS = "calls"  # POST /call
    STATUS = "status"  # GET /status/{requestId}: polling and finding


CALL_PATH = "/call"
STATUS_PATH = "/status/{request_id}"


def endpoints() -> dict[str, Endpoint]:
    """Both operations, keyed by name. `POST /call` is never resent once it may have
    arrived; `GET /status` is read-only and always safe to repeat."""
    table = [
        Endpoint("place_calls", "POST", CALL_PATH, LimitGroup.CALLS, resend_safe=False),
        Endpoint("call_status", "GET", STATUS_PATH, LimitGroup.STATUS, resend_safe=True),
    ]
    return {endpoint.name: endpoint for endpoint in table}
