"""Command line: `python -m bot run | serve | worker | sandbox`.

`run` is what `make run` and the Docker image start: the web process and one
worker, as two child processes, stopped together on Ctrl-C or SIGTERM (and
together when either one stops).

Before anything starts, `run` and `serve` check the settings: a required one
unset, or still holding .env.example's placeholder, stops start-up naming it;
the bot token is shown to Slack (`auth.test`), once, and a token Slack refuses
stops start-up too. Once the web process listens it says where, and which URLs
to paste into the Slack app's settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import uvicorn
from pydantic import ValidationError

from bot import logsafety
from bot.settings import Settings

SETUP_HINT = (
    "Create the Slack app from manifest.yml (https://api.slack.com/apps → Create New App → "
    "From an app manifest), install it to your workspace, then put the values in .env "
    "(see .env.example)."
)
LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s"
SLACK_CHECK_TIMEOUT = 10  # seconds auth.test may take before start-up goes on without it
# What Slack answers auth.test with when the token itself is refused.
REFUSED_TOKEN = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
    }
)
# `run` starts its web process with this, having checked the token itself.
CHECKED = "--slack-checked"

log = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="the web process and a worker, stopped together")
    serve_command = commands.add_parser(
        "serve", help="the web process: Slack and provider callbacks"
    )
    serve_command.add_argument(CHECKED, action="store_true", help=argparse.SUPPRESS)
    commands.add_parser("worker", help="a worker: runs the jobs the web process stores")
    sandbox = commands.add_parser("sandbox", help="serve a provider's sandbox API")
    sandbox.add_argument(
        "--provider", default="intron", choices=["intron", "intron-direct", "bizphone"]
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8081)
    sandbox.add_argument(
        "--callback-delay",
        type=float,
        default=2.0,
        help="seconds before a request's completion callback is sent (intron), before a "
        "call's first event (intron-direct), a call's length (bizphone)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if args.command == "sandbox":
        serve_sandbox(args.host, args.port, args.callback_delay, args.provider)
        return
    settings = _settings_or_exit()
    if args.command == "run":
        _set_process_name("run")
        check_slack_token(settings)
        sys.exit(run_both())
    if args.command == "serve":
        if not args.slack_checked:
            check_slack_token(settings)
        serve(settings)
    else:
        from bot.app import run_worker

        _set_process_name("worker")
        asyncio.run(run_worker(settings))


def _settings_or_exit() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:  # one line per wrong setting, no traceback
        lines = "\n".join(
            f"  - {'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        sys.exit(f"Cannot start: these settings are wrong:\n{lines}")
    logsafety.install(logsafety.secrets_in(settings))  # every SecretStr setting, new ones too
    if missing := settings.missing():
        lines = "\n".join(f"  - {item}" for item in missing)
        sys.exit(f"Cannot start: these settings are missing:\n{lines}\n{SETUP_HINT}")
    return settings


def check_slack_token(settings: Settings) -> None:
    """Show the bot token to Slack (`auth.test`) and say whose it is. A token Slack refuses
    stops start-up; Slack out of reach is only a warning (the app retries its calls)."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError, SlackClientError

    assert settings.slack_bot_token is not None  # _settings_or_exit saw to it
    quiet = logging.getLogger("bot.startup.slack_sdk")  # its own error line would repeat ours
    quiet.setLevel(logging.CRITICAL)
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=SLACK_CHECK_TIMEOUT,
        retry_handlers=[],
        logger=quiet,
    )
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error") or exc.response.status_code)
        if error in REFUSED_TOKEN:
            sys.exit(
                f"Cannot start: Slack refused SLACK_BOT_TOKEN ({error}): it is not a "
                "current bot token of an installed Slack app. Copy the Bot User OAuth Token "
                "(xoxb-…) again from your Slack app's page under OAuth & Permissions "
                "(install or reinstall the app to your workspace if it is not there), "
                "and put it in .env."
            )
        log.warning(
            "could not check SLACK_BOT_TOKEN: Slack answered auth.test with %s; starting anyway",
            error,
        )
        return
    except (SlackClientError, OSError, ValueError) as exc:
        log.warning(
            "could not reach Slack at %s to check SLACK_BOT_TOKEN (%s); starting anyway",
            settings.slack_api_url,
            exc.__class__.__name__ if not str(exc) else exc,
        )
        return
    log.info(
        "Slack: SLACK_BOT_TOKEN is the bot user @%s of the workspace %r (%s, %s)",
        auth.get("user"),
        auth.get("team"),
        auth.get("url"),
        auth.get("team_id"),
    )
    if not auth.get("bot_id"):
        log.warning(
            "SLACK_BOT_TOKEN is not a bot token (xoxb-…): use the Bot User OAuth Token from "
            "OAuth & Permissions"
        )


def serve(settings: Settings) -> None:
    """The web process, under uvicorn, logging through this process's redaction."""
    from bot.web.app import create_app  # slack_bolt is only needed here
    from bot.web.connections import raise_open_files_limit, server_options

    _set_process_name("web")
    # Room for the connection bound (bot/web/connections.py) above the usual 1,024.
    open_files = raise_open_files_limit()
    if settings.uses_sandbox:
        log.warning("no provider key is set: using the built-in sandbox; no real calls are placed")
    options = server_options()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        log_config=None,  # uvicorn's loggers then go through ours, redaction included
        timeout_graceful_shutdown=5,
        **options,  # request deadline, connection bound, keep-alive, header size
    )
    limits = f"at most {options['limit_concurrency']} connections, {open_files} open files"
    lines = startup_lines(settings, _callback_token(settings), limits)
    server = _AnnouncingServer(config, lambda: _announce(lines))
    # Ctrl-C: uvicorn stops cleanly, then raises it again (uvicorn.run swallows it too).
    with contextlib.suppress(KeyboardInterrupt):
        server.run()  # what uvicorn.run does, with the announcement once it listens
    if not server.started:
        sys.exit(3)  # uvicorn's own code for "could not start"


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server, which says `announce` once it listens and the app has started."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()


def _announce(lines: list[tuple[int, str]]) -> None:
    for level, line in lines:
        log.log(level, "%s", line)


def _callback_token(settings: Settings) -> str:
    """The provider callbacks' token: CALLBACK_TOKEN, or the one kept in the database (made
    now on a first start, as the runtime would)."""
    from bot.store import Store

    store = Store(settings.database_path)
    try:
        configured = settings.callback_token
        return store.meta.token(
            "callback_token", configured.get_secret_value() if configured else None
        )
    finally:
        store.close()


POLLED_PROVIDERS = {"bizphone"}  # no callback: the app reads their status


def startup_lines(
    settings: Settings, callback_token: str, limits: str = ""
) -> list[tuple[int, str]]:
    """What the web process says once it listens (level, line): where, the URLs to paste
    into the Slack app's settings, and where providers call back, its token masked."""
    public = settings.public_url.rstrip("/")
    here = f"http://{_url_host(settings.host)}:{settings.port}"
    where = here if here == settings.local_url else f"{here}, on this machine {settings.local_url}"
    lines = [(logging.INFO, f"listening on {where}" + (f" ({limits})" if limits else ""))]
    events = f"{public}/slack/events"
    socket_mode = settings.slack_app_token is not None
    if socket_mode:
        lines += [
            (
                logging.INFO,
                "Socket Mode (SLACK_APP_TOKEN is set): Slack needs no request URL; "
                "provider callbacks still need PUBLIC_URL to reach this app",
            ),
        ]
    else:
        lines += [
            (
                logging.INFO,
                f"Slack app → Event Subscriptions → Request URL: {events} "
                "(re-verify it there now that the app is up)",
            ),
            (logging.INFO, f"Slack app → Interactivity & Shortcuts → Request URL: {events}"),
            (logging.INFO, f"Slack app → Slash Commands → /robocall → Request URL: {events}"),
        ]
    who = "the built-in sandbox" if settings.uses_sandbox else "the provider"
    for provider in settings.enabled_providers:
        if provider in POLLED_PROVIDERS:
            lines.append((logging.INFO, f"{provider}: no callbacks (its results are polled)"))
            continue
        route = f"{public}/callbacks/{provider}/{mask(callback_token)}"
        lines.append((logging.INFO, f"{provider} callbacks ({who} calls back): POST {route}"))
    lines.append(
        (
            logging.INFO,
            f"alert webhooks (Alertmanager, Grafana): POST {public}/alerts/<token>; the whole "
            "URL is on the Home tab of an admin (ADMIN_USER_IDS)",
        )
    )
    unreachable = _is_local(public)
    if unreachable and not socket_mode:
        lines.append(
            (
                logging.WARNING,
                f"PUBLIC_URL is {public}, which Slack cannot reach: start a tunnel to "
                f"{settings.local_url} (e.g. `cloudflared tunnel --url {settings.local_url}`) "
                "and set PUBLIC_URL to its https address, or use Socket Mode (SLACK_APP_TOKEN)",
            )
        )
    if unreachable and _port(public) != settings.port:
        lines.append(
            (
                logging.WARNING,
                f"PUBLIC_URL is {public}, but this app listens on port {settings.port}: "
                "unless something forwards that port here, provider callbacks sent there "
                "are lost",
            )
        )
    if unreachable and not settings.uses_sandbox:
        lines.append(
            (
                logging.WARNING,
                f"PUBLIC_URL is {public}, which Intron cannot reach: its results will not "
                "come back until PUBLIC_URL is a public https address of this app",
            )
        )
    return lines


def mask(token: str) -> str:
    """A token shown without giving it away: at most its first 4 characters (a third of
    a short one), then `…`."""
    return token[: min(4, len(token) // 3)] + "…"


def _port(url: str) -> int | None:
    parts = urlsplit(url)
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_local(url: str) -> bool:
    """True for a URL only this machine can reach (localhost, a loopback address, none)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def run_both() -> int:
    """Start `serve` and `worker` as children; stop both when either stops or on a signal."""
    children = [
        subprocess.Popen([sys.executable, "-m", "bot", *role], preexec_fn=_die_with_parent)
        for role in (("serve", CHECKED), ("worker",))
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    by_signal = stopping
    stop(signal.SIGTERM, None)
    codes = [child.wait(timeout=15) for child in children]
    return 0 if by_signal and all(code in (0, -signal.SIGTERM) for code in codes) else 1


def _die_with_parent() -> None:
    """In a child: be sent SIGTERM if the parent dies, even by SIGKILL (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def serve_sandbox(host: str, port: int, callback_delay: float, provider: str = "intron") -> None:
    """One provider's sandbox, alone, accepting any non-empty key."""
    if provider == "intron-direct":
        from bot.providers.intron_direct.sandbox import SandboxConfig as DirectConfig
        from bot.providers.intron_direct.sandbox import create_sandbox_app as direct_app

        app = direct_app(DirectConfig(event_delay=callback_delay))
        what = "Intron direct sandbox"
        auth = "any non-empty bearer token"
    elif provider == "bizphone":
        from bot.providers.bizphone.client import API_KEY_HEADER
        from bot.providers.bizphone.sandbox import SandboxConfig as BizPhoneConfig
        from bot.providers.bizphone.sandbox import create_sandbox_app as bizphone_app

        app = bizphone_app(BizPhoneConfig(call_seconds=callback_delay))
        what = "BizPhone sandbox"
        auth = f"any non-empty {API_KEY_HEADER} header"
    else:
        from bot.providers.intron.sandbox import SandboxConfig, create_sandbox_app

        app = create_sandbox_app(SandboxConfig(callback_delay=callback_delay))
        what = "Intron sandbox"
        auth = "any non-empty bearer token"
    print(f"{what} on http://{host}:{port} ({auth})")
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None)


def _set_process_name(name: str) -> None:
    import multiprocessing

    multiprocessing.current_process().name = name


if __name__ == "__main__":
    main()
