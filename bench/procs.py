"""Servers as separate processes: started, waited for, measured (RSS), profiled, stopped.

Every server listens on 127.0.0.1 only. Each process writes its output to a log
file in the run's folder, which is where to look when a benchmark fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import say

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STOP_GRACE = 15.0  # the app drains background work for up to 5 s on shutdown

# Settings that must never leak from the shell into a benchmark's app (a real token,
# Socket Mode, allow-lists) and proxies that must never carry loopback traffic.
_SCRUBBED_PREFIXES = ("SLACK_", "INTRON_", "ALLOWED_", "ADMIN_", "SANDBOX_")
_SCRUBBED = {"PUBLIC_URL", "CALLBACK_TOKEN", "DATABASE_PATH", "HOST", "PORT"}
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without app settings or proxies, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED and k.lower() not in _PROXIES
    }
    env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
    env["PYTHONPATH"] = str(REPO)
    return env | dict(extra)


@dataclass
class Proc:
    """One server process; `url` is where it listens."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    process: asyncio.subprocess.Process | None = None
    _profiler: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """Its process id (once started)."""
        assert self.process is not None
        return self.process.pid

    async def start(self, ready_path: str | None, *, timeout: float = 30.0) -> Proc:
        """Start the process and return once `ready_path` answers below 500 (at once
        when it serves nothing: `ready_path` None)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=clean_env(self.env),
                cwd=self.cwd,
            )
        if ready_path is not None:
            await self._wait_ready(ready_path, timeout)
        return self

    async def _wait_ready(self, path: str, timeout: float) -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(self.url + path)).status_code < 500:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the process's output, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def memory_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) of the process in MB, from /proc."""
        values = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024.0  # kB → MB
        return values["VmRSS"], values["VmHWM"]

    async def start_profile(self, out: Path) -> None:
        """Sample the process with py-spy until `stop_profile` (needs py-spy installed)."""
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out.parent.mkdir(parents=True, exist_ok=True)
        self._profiler = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def stop_profile(self) -> None:
        """Stop sampling; py-spy writes its file on SIGINT."""
        if self._profiler is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._profiler.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self._profiler.wait(), 20.0)
        except TimeoutError:
            self._profiler.kill()
            await self._profiler.wait()
        self._profiler = None

    async def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL after a grace period."""
        await self.stop_profile()
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            say(f"  {self.name} did not stop in {STOP_GRACE}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def python(*args: str) -> list[str]:
    """argv running this interpreter (the project's virtualenv under `make bench`)."""
    return [sys.executable, *args]
