"""The app under test, for real: uvicorn on a socket, the fake Slack Web API, the
sandbox as Intron, a SQLite file in tmp_path. `restart()` stops it and starts a
new instance on the same port and database."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from starlette.applications import Starlette

from bot.intron.models import Workflow, WorkflowCreate
from bot.serving import RunningServer, start_server
from bot.settings import Settings
from bot.web import Running, create_app
from tests.conftest import Sandbox, make_client
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import SlackRequester

SIGNING_SECRET = "test-signing-secret"
CALLBACK_TOKEN = "cb-test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Harness:
    tmp_path: Path
    fake: FakeSlack
    box: Sandbox | None
    port: int = field(default_factory=free_port)
    overrides: dict[str, Any] = field(default_factory=dict)
    server: RunningServer | None = None
    app: Starlette | None = None
    slack: SlackRequester | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callbacks/intron/{CALLBACK_TOKEN}"

    @property
    def running(self) -> Running:
        assert self.app is not None and self.app.state.running is not None
        return self.app.state.running

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": "xoxb-test-token",
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": self.fake.api_url,
            "public_url": self.url,
            "callback_token": CALLBACK_TOKEN,
            "database_path": str(self.tmp_path / "robocall.db"),
            "port": self.port,
            "intron_management_per_minute": 1000,
            "intron_management_per_hour": 100000,
            "sandbox_callback_delay": 0.05,
        }
        if self.box is not None:
            values |= {"intron_api_key": "test-intron-key", "intron_base_url": self.box.url}
        return Settings(_env_file=None, **(values | self.overrides))

    async def start(self) -> Harness:
        self.app = create_app(self.settings())
        self.server = await start_server(self.app, port=self.port)
        self.slack = SlackRequester(self.url, SIGNING_SECRET, fake=self.fake)
        await self.wait_until(lambda: self.running.store.workflows_fetched_at() is not None)
        return self

    async def stop(self) -> None:
        if self.slack is not None:
            await self.slack.aclose()
        if self.server is not None:
            await self.server.stop()
        self.server = self.app = self.slack = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def create_workflow(self, workflow: WorkflowCreate) -> Workflow:
        """Create a workflow in the sandbox (calling back to this app) and refresh the cache."""
        assert self.box is not None
        async with make_client(self.box.url) as client:
            created = await client.create_workflow(
                workflow.model_copy(update={"call_back_url": self.callback_url})
            )
        await self.running.workflows.refresh()
        return created

    async def wait_until(self, predicate, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
        return result

    async def settled(self) -> None:
        """Wait until the app has no background work left (other than its refresh loop)."""
        await self.wait_until(lambda: len(self.running.background) == 0)
        await self.running.outbox.idle()


def assert_valid_blocks(blocks: list[dict]) -> None:
    """Every block parses back into slack_sdk's models and is within Slack's limits."""
    assert blocks, "no blocks"
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()


def assert_valid_view(view: dict) -> None:
    fields = {k: v for k, v in view.items() if k not in ("id", "hash", "state", "team_id")}
    View(**fields).validate_json()
    assert_valid_blocks(view["blocks"])
