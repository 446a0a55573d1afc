"""Where each operation of Intron's direct robo-call API lives (seed 001), and which
limit it draws on: the one place for paths. Each path can be overridden with
`INTRON_DIRECT_PATH_<NAME>`; the sandbox serves the same paths."""

from __future__ import annotations

from enum import StrEnum

from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.providers.http import Endpoint


class LimitGroup(StrEnum):
    """`calls`: placing calls, held to the plan's concurrent calls (each call also
    counts against calls per minute, see `IntronDirectClient`); `lookups`: status and
    cancel, for which seed 001 documents no limit."""

    CALLS = "calls"
    LOOKUPS = "lookups"


class IntronDirectPaths(BaseSettings):
    """Path templates under INTRON_DIRECT_BASE_URL."""

    model_config = SettingsConfigDict(
        env_prefix="INTRON_DIRECT_PATH_", env_file=".env", extra="ignore"
    )

    call: str = "/call"
    batch: str = "/call/batch"
    status: str = "/call/{call_id}"


def endpoints(paths: IntronDirectPaths) -> dict[str, Endpoint]:
    """Every operation, keyed by name."""
    calls, lookups = LimitGroup.CALLS, LimitGroup.LOOKUPS
    table = [
        Endpoint("place_call", "POST", paths.call, calls, resend_safe=False),
        Endpoint("place_batch", "POST", paths.batch, calls, resend_safe=False),
        Endpoint("call_status", "GET", paths.status, lookups, resend_safe=True),
        # Cancelling twice cancels once: safe to resend.
        Endpoint("cancel_call", "DELETE", paths.status, lookups, resend_safe=True),
    ]
    return {endpoint.name: endpoint for endpoint in table}
