"""Choose and open the call provider from settings.

With `INTRON_API_KEY` set, the real Intron API at `INTRON_BASE_URL`; without
it, the built-in sandbox, started inside this process on a free local port, so
a fresh machine can run everything without an Intron account or real calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from bot.intron.client import IntronClient
from bot.ratelimit import Window
from bot.sandbox import SandboxConfig, SandboxState, create_sandbox_app
from bot.serving import start_server
from bot.settings import Settings


@dataclass
class Provider:
    """An open Intron client, and the sandbox behind it when there is one."""

    client: IntronClient
    sandbox: SandboxState | None = None

    @property
    def is_sandbox(self) -> bool:
        return self.sandbox is not None


def client_limits(settings: Settings) -> dict[str, Any]:
    """The client's rate limits and patience, from settings."""
    return {
        "timeout": httpx.Timeout(settings.intron_timeout, connect=5.0),
        "call_windows": (Window(settings.intron_calls_per_second, 1.0),),
        "management_windows": (
            Window(settings.intron_management_per_minute, 60.0),
            Window(settings.intron_management_per_hour, 3600.0),
        ),
        "max_wait": settings.intron_max_wait,
    }


@asynccontextmanager
async def open_provider(settings: Settings) -> AsyncIterator[Provider]:
    """Open the provider the settings ask for; close it (and any sandbox) on exit."""
    if not settings.uses_sandbox:
        assert settings.intron_api_key is not None
        key = settings.intron_api_key.get_secret_value()
        async with IntronClient(key, settings.intron_base_url, **client_limits(settings)) as client:
            yield Provider(client)
        return
    app = create_sandbox_app(SandboxConfig(callback_delay=settings.sandbox_callback_delay))
    server = await start_server(app)
    try:
        async with IntronClient("sandbox", server.url, **client_limits(settings)) as client:
            yield Provider(client, app.state.sandbox)
    finally:
        await server.stop()
