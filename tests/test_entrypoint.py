"""`python -m bot serve` as a user runs it: a real process, settings from the environment."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bot.store import Store
from tests.conftest import NUMBER
from tests.harness import SIGNING_SECRET, free_port
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import SlackRequester

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "INTRON_", "CALLBACK_", "PUBLIC_URL"))
}


def test_missing_slack_settings_stop_the_app_with_one_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "these settings are missing" in result.stderr
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr
    assert "manifest.yml" in result.stderr


async def test_the_app_serves_from_a_fresh_directory_with_the_sandbox(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    port = free_port()
    env = CLEAN_ENV | {
        "SLACK_BOT_TOKEN": "xoxb-entry",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SANDBOX_CALLBACK_DELAY": "0.05",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",  # the web process and a worker, as `make run` starts them
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient() as http:
            async with asyncio.timeout(30):
                while True:
                    try:
                        health = await http.get(f"http://127.0.0.1:{port}/healthz")
                        if health.status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
        assert health.json()["provider"] == "sandbox"
        async with SlackRequester(
            f"http://127.0.0.1:{port}", SIGNING_SECRET, fake=fake_slack
        ) as slack:
            async with asyncio.timeout(10):  # the demo workflow appears once warmed up
                while "Demo reminder" not in (await slack.command("workflows")).text:
                    await asyncio.sleep(0.1)
            # Slack escapes &, < and > in command text.
            answer = await slack.command(f'call "Demo reminder" {NUMBER.format(1)} name=Ada&amp;Bo')
            assert "accepted" in answer.text and "Sandbox" in answer.text
        thread = await fake_slack.wait_for(
            lambda f: [m for m in f.messages("C1") if m.params.get("thread_ts")], timeout=10
        )
        results = thread[0].all_text()  # the key and its label, however the line words them
        assert "pressed 1" in results and "Confirm" in results, results
        store = Store(tmp_path / "data" / "robocall.db")
        [request] = store.requests.recent()
        assert store.requests.calls(request.id)[0].variables == {"name": "Ada&Bo"}
        store.close()
    finally:
        process.terminate()  # SIGTERM, as `docker stop` sends: both processes stop
        output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert processes_in(tmp_path) == [], "a child process outlived `python -m bot run`"
    assert "xoxb-entry" not in output  # the token never reaches the logs
    assert "+2348031234561" not in output  # nor a whole phone number
    assert "worker started" in output and "Uvicorn running" in output


def command_line(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()
    except OSError:  # it ended meanwhile
        return b""


def processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is `folder` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry, "cwd").resolve() == folder.resolve():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_run_stops_everything_when_one_process_dies(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """If the worker dies, `python -m bot run` does not go on serving without one: it
    stops the web process too and exits with an error, for a supervisor to restart."""
    port = free_port()
    env = CLEAN_ENV | {
        "SLACK_BOT_TOKEN": "xoxb-entry",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env
    )
    try:
        # Until both children run their own command (just forked, a child still shows
        # its parent's command line).
        async with asyncio.timeout(30):
            while not (
                worker := next(
                    (p for p in processes_in(tmp_path) if b"worker" in command_line(p)), None
                )
            ):
                await asyncio.sleep(0.1)
        os.kill(worker, signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 1
        async with asyncio.timeout(10):
            while processes_in(tmp_path):
                await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.kill()
