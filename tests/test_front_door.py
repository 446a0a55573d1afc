"""The front door: what a newcomer meets first, from a clone and an empty directory.

`python -m bot run` as a user runs it (a real process, settings from the environment and
`.env`, the fake Slack as Slack): the example `.env` copied unchanged is refused, naming
each placeholder; a token Slack refuses stops start-up; a good start says where the app
listens, which URLs to paste into Slack and where providers call back (the token masked),
and whose workspace the token is for. And the README stands on its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.__main__ import mask, startup_lines
from bot.settings import Settings, is_placeholder
from tests.harness import SIGNING_SECRET, free_port
from tests.support.fake_slack import FakeSlack, run_fake_slack
from tests.test_entrypoint import processes_in

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
# The environment without any of the app's settings, so only what a test gives counts.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in SETTING_NAMES and not k.startswith(("SLACK_", "INTRON_", "ROBOCALL_"))
}
BOT_TOKEN = "xoxb-9876543210-1234567890-FrontDoorToken"
CALLBACK = "cb-1front-door-token-7c21d9e0"
PUBLIC = "https://robocall.example.test"


def example_env() -> dict[str, str]:
    """The settings `.env.example` sets (its uncommented lines), as the app reads them."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.split(" #")[0].strip()
    return values


def start(
    command: str, folder: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m bot <command>` run to its end from `folder`."""
    return subprocess.run(
        [sys.executable, "-m", "bot", command],
        cwd=folder,
        env=CLEAN_ENV | env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def serve_until_healthy(command: str, folder: Path, env: dict[str, str]) -> str:
    """Start `python -m bot <command>`, wait until it answers /healthz, stop it (SIGTERM);
    return everything it wrote."""
    port = int(env["PORT"])
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", command),
        cwd=folder,
        env=CLEAN_ENV | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(trust_env=False) as http, asyncio.timeout(30):
            while True:
                assert process.returncode is None, "the app exited while starting"
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # the lines said once it listens are written by now
    finally:
        if process.returncode is None:
            process.terminate()
        output = (await process.communicate())[0].decode("utf-8", "replace")
    # `run` exits 0 on SIGTERM; `serve` ends as uvicorn does, by the signal it was sent.
    assert process.returncode in (0, -15), output
    assert processes_in(folder) == [], "a process outlived the app"
    return output


def served_env(fake: FakeSlack, **extra: str) -> dict[str, str]:
    port = free_port()
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "CALLBACK_TOKEN": CALLBACK,
        "PUBLIC_URL": PUBLIC,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **extra,
    }


# ---- placeholders


def test_the_example_env_copied_unchanged_is_refused_naming_each_placeholder(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    placeholders = [name for name, value in example_env().items() if is_placeholder(value)]
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"} <= set(placeholders)

    result = start("run", tmp_path, {})

    assert result.returncode != 0
    assert "these settings are missing" in result.stderr  # as when they are not set at all
    for name in placeholders:
        assert f"{name} (still the example's placeholder)" in result.stderr, result.stderr
    assert "manifest.yml" in result.stderr
    assert "listening" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # nothing was started


def test_every_placeholder_of_the_example_is_refused_once_uncommented(tmp_path: Path) -> None:
    """The optional lines too: SLACK_APP_TOKEN, INTRON_API_KEY uncommented but not filled."""
    text = re.sub(r"^# ?([A-Z_]+=\S*your-)", r"\1", (ROOT / ".env.example").read_text(), flags=re.M)
    (tmp_path / ".env").write_text(text)
    result = start("serve", tmp_path, {})
    assert result.returncode != 0
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "INTRON_API_KEY"):
        assert f"{name} (still the example's placeholder)" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "value",
    [
        "xoxb-your-bot-token",
        "your-signing-secret",
        "xoxb-...",
        "...",
        "xoxb-…",
        "changeme",
        "CHANGE-ME",
        "<your token>",
        "<signing-secret>",
        "xapp-",
        "  your_intron_key  ",
    ],
)
def test_a_placeholder_counts_as_missing(value: str) -> None:
    assert is_placeholder(value)
    settings = Settings(_env_file=None, slack_bot_token=value, slack_signing_secret=value)
    missing = " ".join(settings.missing())
    assert "SLACK_BOT_TOKEN (still" in missing and "SLACK_SIGNING_SECRET (still" in missing


@pytest.mark.parametrize(
    "value",
    [
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef",
        "8f742231b10e8888abcd99yyyzzz85a5",
        "Q3v_k-8dZr0YbLx2-pW9_hTq4mNs1uJe",  # as secrets.token_urlsafe(24) makes them
    ],
)
def test_a_real_looking_value_is_not_a_placeholder(value: str) -> None:
    assert not is_placeholder(value)
    settings = Settings(_env_file=None, slack_bot_token=value, slack_signing_secret=value)
    assert settings.missing() == []


def test_an_emptied_line_is_unset() -> None:
    """`SLACK_APP_TOKEN=` does not switch on Socket Mode with an empty token."""
    settings = Settings(
        _env_file=None, slack_bot_token=BOT_TOKEN, slack_signing_secret="s", slack_app_token=" "
    )
    assert settings.slack_app_token is None
    assert settings.missing() == []


# ---- the bot token, shown to Slack


async def test_a_token_slack_refuses_stops_start_up(tmp_path: Path) -> None:
    async with run_fake_slack(tokens={"xoxb-1-2-the-installed-one"}) as fake:
        result = await asyncio.to_thread(start, "run", tmp_path, served_env(fake))
    assert result.returncode != 0
    assert "Cannot start: Slack refused SLACK_BOT_TOKEN (invalid_auth)" in result.stderr
    assert "OAuth & Permissions" in result.stderr
    assert BOT_TOKEN not in result.stdout + result.stderr
    assert [c.method for c in fake.calls()] == []  # refused: nothing recorded as delivered
    assert [r.error for r in fake.rejected] == ["invalid_auth"]
    assert "listening" not in result.stdout + result.stderr  # nothing was served
    assert processes_in(tmp_path) == []


async def test_slack_out_of_reach_is_a_warning_and_the_app_starts(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api/"  # nobody listens there
    async with run_fake_slack() as fake:
        env = served_env(fake, SLACK_API_URL=closed)
        output = await serve_until_healthy("serve", tmp_path, env)
    assert "could not reach Slack" in output and "starting anyway" in output, output
    assert "Slack app → Event Subscriptions → Request URL" in output


# ---- a good start


async def test_a_good_start_says_where_it_listens_and_what_to_paste_into_slack(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    env = served_env(fake_slack)
    output = await serve_until_healthy("run", tmp_path, env)
    lines = output.splitlines()

    def line_with(text: str) -> str:
        found = [line for line in lines if text in line]
        assert len(found) == 1, f"{text!r} in {len(found)} lines:\n{output}"
        assert " INFO " in found[0], found[0]  # seen with the default logging
        return found[0]

    line_with(f"listening on http://127.0.0.1:{env['PORT']}")
    events = f"{PUBLIC}/slack/events"
    assert line_with("Event Subscriptions → Request URL").endswith(
        f"{events} (re-verify it there now that the app is up)"
    )
    assert line_with("Interactivity & Shortcuts → Request URL").endswith(events)
    assert line_with("Slash Commands → /robocall → Request URL").endswith(events)
    assert line_with("intron callbacks").endswith(f"{PUBLIC}/callbacks/intron/cb-1…")
    assert CALLBACK not in output  # the callback token is never shown whole
    assert BOT_TOKEN not in output
    # The workspace the token belongs to, from auth.test, asked once for both processes.
    workspace = line_with("SLACK_BOT_TOKEN is the bot user")
    assert "'Fake Workspace'" in workspace and "https://fake-workspace.slack.com/" in workspace
    assert len(fake_slack.calls("auth.test")) == 1
    # No warning about the URLs themselves (the worker may log that the sandbox was
    # not up yet as it started: that is not about PUBLIC_URL).
    start_up = [line for line in output.splitlines() if " web bot " in line]
    assert not [line for line in start_up if "URL" in line and "WARNING" in line], output
    assert "cannot reach" not in output, output


def test_socket_mode_needs_no_slack_url_but_callbacks_still_need_public_url() -> None:
    settings = Settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_app_token="xapp-1-A1-2-abcdef0123456789",
        public_url="http://localhost:3000",
        port=3000,
    )
    lines = startup_lines(settings, CALLBACK)
    text = "\n".join(line for _, line in lines)
    assert "Slack needs no request URL" in text
    assert "provider callbacks still need PUBLIC_URL" in text
    assert "Request URL:" not in text
    assert "http://localhost:3000/callbacks/intron/cb-1…" in text
    assert CALLBACK not in text


def test_a_local_public_url_is_called_out() -> None:
    settings = Settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        intron_api_key="intron-key-123456",
        public_url="http://localhost:3000",
        port=8000,
    )
    warnings = [line for level, line in startup_lines(settings, CALLBACK) if level >= 30]
    assert any("Slack cannot reach" in w and "cloudflared tunnel" in w for w in warnings)
    assert any("Intron cannot reach" in w for w in warnings)
    assert any("listens on port 8000" in w for w in warnings)


@pytest.mark.parametrize(
    ("token", "shown"), [("cb-1234567890", "cb-1…"), ("abcdef", "ab…"), ("ab", "…")]
)
def test_a_token_is_masked(token: str, shown: str) -> None:
    assert mask(token) == shown


# ---- the README, from a clone alone


README = (ROOT / "README.md").read_text()


def test_the_readme_refers_to_nothing_outside_the_repository() -> None:
    assert "../" not in README
    assert not re.search(r"DESIGN\.md", README, re.IGNORECASE)
    assert not re.search(r"\bseeds?\s+0", README, re.IGNORECASE)
    assert not re.search(r"\bissues?\s+#?\d", README, re.IGNORECASE)
    for link in re.findall(r"\]\(([^)]+)\)", README):  # relative links name files we have
        if not re.match(r"[a-z]+:|#", link):
            assert (ROOT / link.split("#")[0]).exists(), link


def test_every_setting_is_in_the_readme_settings_table() -> None:
    section = README.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    assert SETTING_NAMES - named == set()


def test_the_readme_starts_a_newcomer_off() -> None:
    top = README.split("\n## ", 3)
    getting_started = next(part for part in top if part.startswith("Getting started"))
    for needed in (
        "manifest.yml",
        "cp .env.example .env",
        "SLACK_APP_TOKEN",
        "cloudflared tunnel --url http://localhost:3000",
        "PUBLIC_URL",
        "Event Subscriptions",
        "docker build -t robocall .",
        "docker run --env-file .env -p 3000:3000 -v robocall-data:/data robocall",
    ):
        assert needed in getting_started, needed
