"""The app under test, for real: the web process's app under uvicorn on a socket, a
worker over the same SQLite file (its own connection, as a second process would
have), the fake Slack Web API, the sandbox as Intron. `restart()` stops both and
starts new ones on the same port and database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from starlette.applications import Starlette

from bot.app import Runtime, make_worker, open_runtime
from bot.core.jobs import Worker
from bot.providers.intron.models import Workflow, WorkflowCreate
from bot.serving import RunningServer, start_server
from bot.settings import Settings
from bot.store import Store
from bot.store.slack import SlackStore
from bot.web.app import create_app
from tests.conftest import Sandbox, make_client
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import SlackRequester

# The app's own processes that tests start (`python -m bot …`, with this environment)
# call any number at any hour, often, as the in-process app does (see `settings`):
# calling hours and the frequency cap off for them too, unless a test sets them.
os.environ.setdefault("CALLING_HOURS", "00:00-24:00")
os.environ.setdefault("CALLS_PER_DAY_CAP", "0")

SIGNING_SECRET = "test-signing-secret"
CALLBACK_TOKEN = "cb-test-token"
# Jobs that wait for a later time by design; `settled` does not wait for them.
TIMERS = ("workflows.refresh", "request.reconcile")


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
    worker_enabled: bool = True
    server: RunningServer | None = None
    app: Starlette | None = None
    slack: SlackRequester | None = None
    worker: Worker | None = None
    worker_task: asyncio.Task | None = None
    _worker_stack: AsyncExitStack | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callbacks/intron/{CALLBACK_TOKEN}"

    @property
    def running(self) -> Runtime:
        """The web process's runtime."""
        assert self.app is not None and self.app.state.web is not None
        return self.app.state.web.runtime

    @property
    def store(self) -> Store:
        return self.running.store

    @property
    def slack_store(self) -> SlackStore:
        return self.running.slack.slack_store

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": "xoxb-test-token",
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": self.fake.api_url,
            "public_url": self.url,
            "callback_token": CALLBACK_TOKEN,
            "database_path": str(self.tmp_path / "robocall.db"),
            "host": "127.0.0.1",
            "port": self.port,
            "intron_management_per_minute": 1000,
            "intron_management_per_hour": 100000,
            "sandbox_callback_delay": 0.05,
            "job_lease": 3.0,
            # Existing tests call any number at any hour, often: calling hours and the
            # frequency cap are off unless a test sets them (tests/test_consent.py).
            "calling_hours": "00:00-24:00",
            "calls_per_day_cap": 0,
        }
        if self.box is not None:
            values |= {"intron_api_key": "test-intron-key", "intron_base_url": self.box.url}
        return Settings(_env_file=None, **(values | self.overrides))

    async def start(self, *, wait_for_workflows: bool = True) -> Harness:
        settings = self.settings()
        self.app = create_app(settings)
        self.server = await start_server(self.app, port=self.port)
        self.slack = SlackRequester(self.url, SIGNING_SECRET, fake=self.fake)
        if self.worker_enabled:
            await self.start_worker()
            if wait_for_workflows:
                await self.wait_until(lambda: self.store.workflows.fetched_at("intron"))
        return self

    async def start_worker(self) -> Worker:
        self._worker_stack = AsyncExitStack()
        runtime = await self._worker_stack.enter_async_context(open_runtime(self.settings()))
        self.worker_runtime = runtime  # the worker's own (`running` is the web's)
        self.worker = make_worker(runtime)
        self.worker_task = asyncio.create_task(self.worker.run(), name="test worker")
        return self.worker

    async def stop_worker(self) -> None:
        if self.worker_task is not None:
            self.worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker_task
        if self._worker_stack is not None:
            await self._worker_stack.aclose()
        self.worker = self.worker_task = self._worker_stack = None

    async def stop(self) -> None:
        await self.stop_worker()
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

    async def parent_ts(self, request_id: str, timeout: float = 5.0) -> str:
        """The ts of a request's parent message, once it is posted and recorded (before
        that, a thread lookup by ts None would find the channel's top-level messages)."""
        return await self.wait_until(
            lambda: (shown := self.slack_store.message(request_id)) and shown.ts, timeout
        )

    async def wait_until(self, predicate, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
        return result

    def due_jobs(self) -> list:
        now = time.time()
        return [
            j for j in self.store.jobs.pending() if j.run_at <= now + 0.2 and j.kind not in TIMERS
        ]

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every job that is due has run (timers for later do not count)."""
        assert self.worker is not None
        quiet_since = None
        async with asyncio.timeout(timeout):
            while True:
                idle = not self.due_jobs() and self.worker.busy() == 0
                if not idle:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 0.1:
                    return
                await asyncio.sleep(0.01)


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
