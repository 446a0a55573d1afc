"""Command line: `python -m bot serve` (the app) and `python -m bot sandbox` (Intron stand-in)."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from bot import logsafety
from bot.sandbox import SandboxConfig, create_sandbox_app
from bot.settings import Settings

SETUP_HINT = (
    "Create the Slack app from manifest.yml (https://api.slack.com/apps → Create New App → "
    "From an app manifest), install it to your workspace, then put the values in .env "
    "(see .env.example)."
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the Slack app (settings from the environment/.env)")
    sandbox = commands.add_parser("sandbox", help="serve an Intron-compatible sandbox API")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8081)
    sandbox.add_argument(
        "--callback-delay",
        type=float,
        default=2.0,
        help="seconds before a request's completion callback is sent",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        serve()
    else:
        app = create_sandbox_app(SandboxConfig(callback_delay=args.callback_delay))
        print(f"Intron sandbox on http://{args.host}:{args.port} (any non-empty bearer token)")
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")


def serve() -> None:
    from bot.web import create_app  # slack_bolt is only needed here

    settings = Settings()
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
    if settings.uses_sandbox:
        logging.getLogger("bot").warning(
            "INTRON_API_KEY is not set: using the built-in sandbox; no real calls are placed"
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
    )


if __name__ == "__main__":
    main()
