"""The pieces of one benchmark run, each its own process: the sandbox as Intron, the
fake Slack Web API, the app (`python -m bot serve` and `python -m bot worker`) and
the baselines.

A `Run` owns a folder (logs, databases, profiles) and stops every process it
started when it closes, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from bench.procs import HOST, REPO, Proc, free_port, python
from bot.providers.intron.client import IntronClient
from bot.providers.intron.endpoints import IntronPaths
from bot.providers.intron.models import Workflow, WorkflowCreate
from tests.support.slack_requests import sign, slash_command

BOT_TOKEN = "xoxb-bench-token"
SIGNING_SECRET = "bench-signing-secret"
CALLBACK_TOKEN = "bench-callback-token"
INTRON_KEY = "bench-intron-key"
PATHS = IntronPaths(_env_file=None)  # Intron's default paths, whatever a .env says

BENCH_WORKFLOW = WorkflowCreate(
    name="Bench reminder",
    description="Created by the benchmarks.",
    message="Hello [name], this is a reminder from the clinic. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)


def number(index: int) -> str:
    """A valid Nigerian mobile number, distinct for each index below 9,000,000; its last
    digit (the index's) picks the sandbox's outcome, so outcomes are varied."""
    return f"+234803{1_000_000 + index % 9_000_000:07d}"


@dataclass
class Run:
    """Processes of one benchmark, stopped together on exit."""

    folder: Path
    profile: bool = False
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    http: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(trust_env=False, timeout=30.0)
    )

    async def __aenter__(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        await self._stack.__aenter__()
        self._stack.push_async_callback(self.http.aclose)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _start(self, proc: Proc, ready_path: str | None) -> Proc:
        if proc.cwd == REPO:  # no process of ours should read the repository's .env
            proc.cwd = self.folder
        self._stack.push_async_callback(proc.stop)
        return await proc.start(ready_path)

    # ------------------------------------------------------------ helpers

    async def sandbox(self, *, calls_per_second: int = 5, callback_delay: float = 1.0) -> Proc:
        """The project's sandbox (Intron's documented limits unless told otherwise)."""
        port = free_port()
        argv = python(
            "-m",
            "bench.servers",
            "sandbox",
            "--port",
            str(port),
            "--calls-per-second",
            str(calls_per_second),
            "--callback-delay",
            str(callback_delay),
        )
        proc = Proc("sandbox", argv, port, self.folder / "sandbox.log")
        return await self._start(proc, "/_bench/summary")

    async def fake_slack(self, *, burst: int | None = None, per_seconds: float | None = None):
        """The project's fake Slack Web API, optionally with a per-channel message limit."""
        port = free_port()
        argv = python("-m", "bench.servers", "fake-slack", "--port", str(port))
        if burst and per_seconds:
            argv += ["--burst", str(burst), "--per-seconds", str(per_seconds)]
        proc = Proc("fake-slack", argv, port, self.folder / "fake-slack.log")
        return await self._start(proc, "/_bench/records?calls_from=0&rejected_from=0")

    async def app(
        self,
        name: str,
        *,
        port: int,
        sandbox: Proc,
        slack: Proc,
        database: Path,
        env: dict[str, str] | None = None,
    ) -> Proc:
        """The app: `python -m bot serve` and one `python -m bot worker`, configured only
        through environment variables, in an empty folder (so no `.env` is read). The web
        process is returned; its worker is `.worker`."""
        settings = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack.url}/api/",
            "INTRON_API_KEY": INTRON_KEY,
            "INTRON_BASE_URL": sandbox.url,
            "PUBLIC_URL": f"http://{HOST}:{port}",
            "CALLBACK_TOKEN": CALLBACK_TOKEN,
            "DATABASE_PATH": str(database),
            "HOST": HOST,
            "PORT": str(port),
            # The benchmarks call the same numbers over and over, at any hour: the calling
            # rules (README, Calling responsibly) would hold them back and change what is
            # measured, so they are off unless a benchmark sets them.
            "CALLING_HOURS": "00:00-24:00",
            "CALLS_PER_DAY_CAP": "0",
            # What is measured is dispatch, not the click confirming a large send.
            "CONFIRM_ABOVE": "100000",
        } | (env or {})
        cwd = self.folder / name
        cwd.mkdir(parents=True, exist_ok=True)
        web = AppProc(
            name, python("-m", "bot", "serve"), port, self.folder / f"{name}.log", settings, cwd
        )
        await self._start(web, "/healthz")
        await self._wait_healthy(web)
        worker = Proc(
            f"{name}-worker",
            python("-m", "bot", "worker"),
            0,
            self.folder / f"{name}-worker.log",
            settings,
            cwd,
        )
        web.worker = await self._start(worker, None)
        return web

    async def _wait_healthy(self, proc: Proc, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while (await self.http.get(proc.url + "/healthz")).status_code != 200:
                await asyncio.sleep(0.1)

    async def bolt_baseline(self, slack: Proc) -> Proc:
        """Benchmark 1's baseline server."""
        port = free_port()
        argv = python(
            "-m",
            "bench.servers",
            "bolt-baseline",
            "--port",
            str(port),
            "--signing-secret",
            SIGNING_SECRET,
            "--slack-api-url",
            f"{slack.url}/api/",
        )
        return await self._start(
            Proc("bolt-baseline", argv, port, self.folder / "bolt.log"), "/healthz"
        )

    async def callback_baseline(self, database: Path) -> Proc:
        """Benchmark 2's baseline server."""
        port = free_port()
        argv = python(
            "-m",
            "bench.servers",
            "callback-baseline",
            "--port",
            str(port),
            "--database",
            str(database),
        )
        proc = Proc("callback-baseline", argv, port, self.folder / "callback-baseline.log")
        return await self._start(proc, "/healthz")

    # ------------------------------------------------------------ talking to them

    async def create_workflow(
        self,
        sandbox: Proc,
        callback_app_port: int | None,
        template: WorkflowCreate = BENCH_WORKFLOW,
    ) -> Workflow:
        """Create a workflow in the sandbox, calling back to the app on that port."""
        url = (
            f"http://{HOST}:{callback_app_port}/callbacks/intron/{CALLBACK_TOKEN}"
            if callback_app_port
            else None
        )
        async with IntronClient(INTRON_KEY, sandbox.url, paths=PATHS) as intron:
            return await intron.create_workflow(template.model_copy(update={"call_back_url": url}))

    async def wait_for_workflow(self, app: Proc, name: str, timeout: float = 30.0) -> None:
        """Until the app's workflow cache holds `name` (it loads it in the background)."""
        async with asyncio.timeout(timeout):
            while name not in (await self.command(app, "workflows")).text:
                await asyncio.sleep(0.2)

    async def command(self, app: Proc, text: str, **fields: Any) -> httpx.Response:
        """Send one signed `/robocall <text>` to the app."""
        body, content_type = slash_command(text, **fields)
        headers = sign(SIGNING_SECRET, body, content_type=content_type)
        return await self.http.post(app.url + "/slack/events", content=body, headers=headers)

    async def slack_records(
        self, slack: Proc, calls_from: int = 0, rejected_from: int = 0
    ) -> dict[str, list[dict[str, Any]]]:
        """What the fake Slack accepted and refused since those indexes."""
        answer = await self.http.get(
            slack.url + "/_bench/records",
            params={"calls_from": calls_from, "rejected_from": rejected_from},
        )
        answer.raise_for_status()
        return answer.json()

    async def published_at(self, slack: Proc, user_id: str, timeout: float = 10.0) -> float | None:
        """When (monotonic) the fake Slack received the Home tab of `user_id`; None if it
        did not within `timeout` seconds."""
        answer = await self.http.get(
            slack.url + "/_bench/published", params={"user_id": user_id, "timeout": timeout}
        )
        return answer.json()["at"]

    async def sandbox_summary(self, sandbox: Proc) -> dict[str, Any]:
        """Requests seen, 429s answered, numbers called (and how often), callbacks."""
        answer = await self.http.get(sandbox.url + "/_bench/summary")
        answer.raise_for_status()
        return answer.json()

    async def arrivals(self, sandbox: Proc) -> list[dict[str, Any]]:
        """Every request the sandbox received: monotonic time, method, path, status."""
        answer = await self.http.get(sandbox.url + "/_bench/arrivals")
        answer.raise_for_status()
        return answer.json()["arrivals"]

    def profiled(self, proc: Proc, label: str) -> _Profiling:
        """A context in which `proc` (and an app's worker) is sampled by py-spy when
        profiling is on."""
        return _Profiling(proc, self.folder, label if self.profile else None)


@dataclass
class AppProc(Proc):
    """The app's web process, with the worker that runs its jobs."""

    worker: Proc | None = None

    def memory_mb(self) -> tuple[float, float]:
        """(current, peak) RSS of both processes together, in MB."""
        web = super().memory_mb()
        if self.worker is None:
            return web
        worker = self.worker.memory_mb()
        return web[0] + worker[0], web[1] + worker[1]


@dataclass
class _Profiling:
    proc: Proc
    folder: Path
    label: str | None

    def _procs(self) -> list[tuple[Proc, Path]]:
        procs = [(self.proc, self.folder / f"profile-{self.label}.txt")]
        if isinstance(self.proc, AppProc) and self.proc.worker is not None:
            procs.append((self.proc.worker, self.folder / f"profile-{self.label}-worker.txt"))
        return procs

    async def __aenter__(self) -> None:
        if self.label is not None:
            for proc, out in self._procs():
                await proc.start_profile(out)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.label is not None:
            for proc, _ in self._procs():
                await proc.stop_profile()


class SlackWatcher:
    """Follows what the fake Slack accepted and refused, fetching only what is new."""

    def __init__(self, run: Run, slack: Proc) -> None:
        self.run = run
        self.slack = slack
        self.calls: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self._updated: set[tuple[str, str]] = set()
        self._results: set[tuple[str, str]] = set()
        self.reported_at: dict[tuple[str, str], float] = {}

    async def poll(self) -> None:
        """Fetch the records added since the last poll."""
        new = await self.run.slack_records(self.slack, len(self.calls), len(self.rejected))
        self.calls += new["calls"]
        self.rejected += new["rejected"]
        for call in new["calls"]:
            self._note(call)

    def _note(self, call: dict[str, Any]) -> None:
        channel = call["channel"]
        if call["method"] == "chat.update" and "completed" in call["text"]:
            self._updated.add((channel, call["ts"]))
        elif call["method"] == "chat.postMessage" and call["text"].startswith("Results for"):
            self._results.add((channel, call["thread_ts"]))
        else:
            return
        key = (channel, call["ts"] or call["thread_ts"])
        if key in self._updated and key in self._results:
            self.reported_at.setdefault(key, call["at"])

    def reported(self, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of `keys` (channel, parent ts) whose parent message was edited to
        "completed" and whose results were posted in its thread."""
        return keys & self.reported_at.keys()

    async def wait_reported(
        self, keys: set[tuple[str, str]], timeout: float, interval: float = 0.25
    ) -> bool:
        """Poll until every key is reported (True) or `timeout` seconds pass (False)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self.poll()
            if self.reported(keys) == keys:
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(interval)
