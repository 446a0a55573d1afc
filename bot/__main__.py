"""Command line: `python -m bot sandbox [--port N]`."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from bot.sandbox import SandboxConfig, create_sandbox_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot")
    commands = parser.add_subparsers(dest="command", required=True)
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
    if args.command == "sandbox":
        app = create_sandbox_app(SandboxConfig(callback_delay=args.callback_delay))
        print(f"Intron sandbox on http://{args.host}:{args.port} (any non-empty bearer token)")
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
