"""Command line: `python -m bot run | serve | worker | sandbox`.

`run` is what `make run` and the Docker image start: the web process and one
worker, as two child processes, stopped together on Ctrl-C or SIGTERM (and
together when either one stops).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
import time

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="the web process and a worker, stopped together")
    commands.add_parser("serve", help="the web process: Slack and provider callbacks")
    commands.add_parser("worker", help="a worker: runs the jobs the web process stores")
    sandbox = commands.add_parser("sandbox", help="serve a provider's sandbox API")
    sandbox.add_argument("--provider", default="intron", choices=["intron"])
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8081)
    sandbox.add_argument(
        "--callback-delay",
        type=float,
        default=2.0,
        help="seconds before a request's completion callback is sent",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if args.command == "sandbox":
        serve_sandbox(args.host, args.port, args.callback_delay)
        return
    settings = _settings_or_exit()
    if args.command == "run":
        sys.exit(run_both())
    if args.command == "serve":
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
    logsafety.install(
        secret.get_secret_value()
        for secret in (
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.intron_api_key,
            settings.callback_token,
        )
        if secret is not None
    )
    if missing := settings.missing_for_slack():
        lines = "\n".join(f"  - {item}" for item in missing)
        sys.exit(f"Cannot start: these settings are missing:\n{lines}\n{SETUP_HINT}")
    return settings


def serve(settings: Settings) -> None:
    """The web process, under uvicorn, logging through this process's redaction."""
    from bot.web.app import create_app  # slack_bolt is only needed here
    from bot.web.connections import raise_open_files_limit, server_options

    _set_process_name("web")
    log = logging.getLogger("bot")
    # Room for the connection bound (bot/web/connections.py) above the usual 1,024.
    open_files = raise_open_files_limit()
    if settings.uses_sandbox:
        log.warning("no provider key is set: using the built-in sandbox; no real calls are placed")
    options = server_options()
    log.info(
        "listening on %s:%d (at most %d connections, %d open files); "
        "Slack's request URL: %s/slack/events",
        settings.host,
        settings.port,
        options["limit_concurrency"],
        open_files,
        settings.public_url.rstrip("/"),
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        log_config=None,  # uvicorn's loggers then go through ours, redaction included
        timeout_graceful_shutdown=5,
        **options,  # request deadline, connection bound, keep-alive, header size
    )


def run_both() -> int:
    """Start `serve` and `worker` as children; stop both when either stops or on a signal."""
    children = [
        subprocess.Popen([sys.executable, "-m", "bot", role], preexec_fn=_die_with_parent)
        for role in ("serve", "worker")
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


def serve_sandbox(host: str, port: int, callback_delay: float) -> None:
    from bot.providers.intron.sandbox import SandboxConfig, create_sandbox_app

    app = create_sandbox_app(SandboxConfig(callback_delay=callback_delay))
    print(f"Intron sandbox on http://{host}:{port} (any non-empty bearer token)")
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None)


def _set_process_name(name: str) -> None:
    import multiprocessing

    multiprocessing.current_process().name = name


if __name__ == "__main__":
    main()
