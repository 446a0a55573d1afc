"""Which providers are enabled, and how each is opened (the only module that knows them all).

With `INTRON_API_KEY` set, the real Intron workflow API at `INTRON_BASE_URL`.
With no provider key at all (demo mode), or with `SANDBOX=1`, the sandbox
instead: the web process serves it under `/_sandbox/intron` on its own port
(`sandbox_apps`), and both processes reach it there, so a fresh machine runs
everything without an account and without placing real calls.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from starlette.types import ASGIApp

from bot.core.ratelimit import SlotLog, Window
from bot.providers.base import Provider
from bot.providers.intron.client import IntronClient
from bot.providers.intron.endpoints import IntronPaths, LimitGroup
from bot.providers.intron.provider import IntronProvider
from bot.providers.intron.sandbox import SandboxConfig, create_sandbox_app
from bot.settings import Settings

SANDBOX_PREFIX = "/_sandbox/intron"

SlotLogs = Callable[[str], SlotLog]


def sandbox_apps(settings: Settings, sandbox_key: str) -> dict[str, ASGIApp]:
    """The sandboxes the web process serves (mount path → app); none with a real key."""
    if not settings.uses_sandbox:
        return {}
    config = SandboxConfig(callback_delay=settings.sandbox_callback_delay, api_key=sandbox_key)
    return {SANDBOX_PREFIX: create_sandbox_app(config)}


def open_providers(
    settings: Settings, *, slot_logs: SlotLogs, callback_token: str, sandbox_key: str
) -> dict[str, Provider]:
    """Every enabled provider, by id (close them with `aclose`)."""
    callback_url = f"{settings.public_url.rstrip('/')}/callbacks/intron/{callback_token}"
    if settings.uses_sandbox:
        key, base_url = sandbox_key, settings.local_url + SANDBOX_PREFIX
    else:
        assert settings.intron_api_key is not None
        key, base_url = settings.intron_api_key.get_secret_value(), settings.intron_base_url
    client = IntronClient(
        key,
        base_url,
        paths=IntronPaths(),
        call_windows=(Window(settings.intron_calls_per_second, 1.0),),
        management_windows=(
            Window(settings.intron_management_per_minute, 60.0),
            Window(settings.intron_management_per_hour, 3600.0),
        ),
        slot_logs={group: slot_logs(f"intron:{group}") for group in LimitGroup},
        max_wait=settings.intron_max_wait,
        timeout=httpx.Timeout(settings.intron_timeout, connect=5.0),
    )
    intron = IntronProvider(client, callback_url=callback_url, sandbox=settings.uses_sandbox)
    return {intron.id: intron}
