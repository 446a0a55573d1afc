"""Shared fixtures: the sandbox on a real socket, a client pointed at it, a callback receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.core.ratelimit import Window
from bot.core.retry import PROVIDER_RETRIES
from bot.providers.intron.client import IntronClient
from bot.providers.intron.sandbox import SandboxConfig, SandboxState, create_sandbox_app
from bot.serving import RunningServer, start_server
from tests.support.fake_slack import FakeSlack
from tests.support.fixtures import fake_slack

__all__ = ["fake_slack"]  # a fixture, re-exported for every test module

# Management limits wide enough for functional tests; the limit tests set their own.
ROOMY = (Window(1000, 1.0),)

# The project's retry policy, fifty times faster, so retries take milliseconds.
FAST_RETRIES = PROVIDER_RETRIES.faster(50)

# Nigerian mobile numbers whose last digit picks the sandbox outcome.
NUMBER = "+234803123456{}"


@dataclass
class Sandbox:
    server: RunningServer
    state: SandboxState

    @property
    def url(self) -> str:
        return self.server.url


async def start_sandbox(**config: Any) -> Sandbox:
    settings = {"callback_delay": 0.05, "management_windows": ROOMY, **config}
    app = create_sandbox_app(SandboxConfig(**settings))
    return Sandbox(await start_server(app), app.state.sandbox)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = await start_sandbox()
    yield box
    await box.server.stop()


def make_client(url: str, **options: Any) -> IntronClient:
    settings = {"management_windows": ROOMY, "policy": FAST_RETRIES, **options}
    return IntronClient("test-key-0123456789", url, **settings)


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[IntronClient]:
    async with make_client(sandbox.url) as intron:
        yield intron


@dataclass
class CallbackReceiver:
    """A stand-in for our app's callback route: records bodies, can refuse the first few."""

    server: RunningServer | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    refuse_first: int = 0
    attempts: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/callbacks/intron/token"

    async def handle(self, request: Request) -> JSONResponse:
        self.attempts += 1
        if self.attempts <= self.refuse_first:
            return JSONResponse({"error": "not yet"}, status_code=503)
        self.received.append(await request.json())
        return JSONResponse({"ok": True})

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                await asyncio.sleep(0.01)
        return self.received


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    rec = CallbackReceiver()
    app = Starlette(routes=[Route("/callbacks/intron/token", rec.handle, methods=["POST"])])
    rec.server = await start_server(app)
    yield rec
    await rec.server.stop()


@pytest.fixture
async def harness(tmp_path: Path, fake_slack: FakeSlack, sandbox: Sandbox) -> AsyncIterator[Any]:
    """The app (web process and a worker) against the fake Slack and the sandbox; modules
    that need other settings define their own."""
    from tests.harness import Harness  # here: tests.harness imports this module

    app = Harness(tmp_path, fake_slack, sandbox)
    await app.start()
    yield app
    await app.stop()
