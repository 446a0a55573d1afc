"""The servers benchmarks run beside the app, each as its own process:

    python -m bench.servers sandbox --port N [--calls-per-second 5] [--callback-delay 1]
    python -m bench.servers fake-slack --port N [--burst B --per-seconds S]
    python -m bench.servers bolt-baseline --port N --signing-secret S --slack-api-url U
    python -m bench.servers callback-baseline --port N --database PATH

The sandbox and the fake Slack are the project's own (bot.sandbox, tests.support),
with a few read-only `/_bench/...` routes added for what the benchmarks measure:
when each request arrived at the sandbox, and what the fake Slack accepted or
refused, and when. The two baselines are served exactly as `python -m bot serve`
serves the app: Starlette under `uvicorn.run`, logging at INFO, no access log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.core.ratelimit import Window
from bot.providers.intron.sandbox import SandboxConfig, create_sandbox_app
from tests.support.fake_slack import FakeSlack, RateLimit

HOST = "127.0.0.1"
BENCH_PREFIX = "/_bench/"


def with_bench_routes(inner: ASGIApp, routes: list[Route]) -> ASGIApp:
    """`inner`, except that paths under /_bench/ go to `routes`. Lifespan events reach
    `inner` untouched (the sandbox needs its own to open its HTTP client)."""
    extra = Starlette(routes=routes)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(BENCH_PREFIX):
            await extra(scope, receive, send)
        else:
            await inner(scope, receive, send)

    return app


# ---------------------------------------------------------------- the sandbox


class ArrivalLog:
    """ASGI middleware noting when each request arrived (monotonic) and its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrivals: list[tuple[float, str, str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        status = 0

        async def noting_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            self.arrivals.append((arrived, scope["method"], scope["path"], status))


def sandbox_app(calls_per_second: int, callback_delay: float) -> ASGIApp:
    """The project's sandbox with its calls limit set, plus `/_bench/arrivals`."""
    config = SandboxConfig(
        callback_delay=callback_delay, call_windows=(Window(calls_per_second, 1.0),)
    )
    sandbox = create_sandbox_app(config)
    log = ArrivalLog(sandbox)
    state = sandbox.state.sandbox

    async def arrivals(request: Request) -> Response:
        rows = [
            {"at": at, "method": method, "path": path, "status": status}
            for at, method, path, status in log.arrivals
        ]
        return JSONResponse({"arrivals": rows})

    async def summary(request: Request) -> Response:
        called = state.numbers_called()
        return JSONResponse(
            {
                "requests_seen": dict(state.requests_seen),
                "rate_limited": dict(state.rate_limited),
                "numbers": len(called),
                "calls": sum(called.values()),
                "numbers_called_twice": sum(1 for n in called.values() if n > 1),
                "callbacks": len(state.callbacks),
                "callbacks_not_accepted": sum(
                    1 for c in state.callbacks if 200 not in c["attempts"]
                ),
            }
        )

    return with_bench_routes(
        log,
        [
            Route("/_bench/arrivals", arrivals, methods=["GET"]),
            Route("/_bench/summary", summary, methods=["GET"]),
        ],
    )


# ---------------------------------------------------------------- the fake Slack


def fake_slack_app(burst: int | None, per_seconds: float | None) -> ASGIApp:
    """The project's fake Slack Web API (optionally rate-limited per channel), plus
    `/_bench/records?calls_from=N&rejected_from=M`: slim records of what it accepted
    and refused since those indexes, and `/_bench/published` (see `PublishWatch`)."""
    fake = FakeSlack()
    if burst and per_seconds:
        fake.set_rate_limit(RateLimit(burst, per_seconds))

    async def records(request: Request) -> Response:
        calls_from = int(request.query_params.get("calls_from", "0"))
        rejected_from = int(request.query_params.get("rejected_from", "0"))
        calls = [
            {
                "method": c.method,
                "channel": c.params.get("channel"),
                "ts": c.params.get("ts"),
                "thread_ts": c.params.get("thread_ts"),
                "user_id": c.params.get("user_id"),
                "text": str(c.params.get("text", ""))[:120],
                "at": c.at,
            }
            for c in fake.calls()[calls_from:]
        ]
        rejected = [
            {
                "method": r.method,
                "channel": r.params.get("channel"),
                "status": r.status,
                "retry_after": r.retry_after,
                "at": r.at,
            }
            for r in fake.rejected[rejected_from:]
        ]
        return JSONResponse({"calls": calls, "rejected": rejected})

    published = PublishWatch(fake)
    return with_bench_routes(
        published,
        [
            Route("/_bench/records", records, methods=["GET"]),
            Route("/_bench/published", published.wait, methods=["GET"]),
        ],
    )


class PublishWatch:
    """ASGI middleware over the fake that notes when each user's Home tab was published,
    and `/_bench/published?user_id=U&timeout=S`, which answers as soon as it was."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.at: dict[str, float] = {}
        self._seen = 0
        self._changed = asyncio.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fake.app(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == "/api/views.publish":
            calls = self.fake.calls()
            for call in calls[self._seen :]:
                if call.method == "views.publish":
                    self.at.setdefault(str(call.params.get("user_id")), call.at)
            self._seen = len(calls)
            async with self._changed:
                self._changed.notify_all()

    async def wait(self, request: Request) -> Response:
        """`{"at": monotonic time}` once `user_id`'s Home tab is published, else 404."""
        user = request.query_params["user_id"]
        timeout = float(request.query_params.get("timeout", "10"))
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: user in self.at)
        except TimeoutError:
            return JSONResponse({"at": None}, status_code=404)
        return JSONResponse({"at": self.at[user]})


# ---------------------------------------------------------------- baselines


def bolt_baseline_app(signing_secret: str, slack_api_url: str) -> Starlette:
    """Benchmark 1's baseline: a bare bolt AsyncApp whose `/robocall` listener only acks,
    behind the same Starlette request handler the app uses."""
    client = AsyncWebClient(token="xoxb-bench-token", base_url=slack_api_url)
    bolt = AsyncApp(client=client, signing_secret=signing_secret)

    @bolt.command("/robocall")
    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def callback_baseline_app(database: str) -> Starlette:
    """Benchmark 2's baseline: parse the callback's JSON and insert it into SQLite
    (WAL, one commit per callback, like the app's store), nothing else."""
    db = sqlite3.connect(database, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS callbacks (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "received_at TEXT NOT NULL, request_id TEXT, body TEXT NOT NULL)"
    )

    async def callback(request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw)
        with db:
            db.execute(
                "INSERT INTO callbacks (received_at, request_id, body) VALUES (?, ?, ?)",
                [datetime.now(UTC).isoformat(), body.get("request_id"), raw.decode()],
            )
        return JSONResponse({"ok": True})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/callbacks/intron/{token}", callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


# ---------------------------------------------------------------- command line

Builder = Callable[[argparse.Namespace], ASGIApp]

BUILDERS: dict[str, Builder] = {
    "sandbox": lambda a: sandbox_app(a.calls_per_second, a.callback_delay),
    "fake-slack": lambda a: fake_slack_app(a.burst, a.per_seconds),
    "bolt-baseline": lambda a: bolt_baseline_app(a.signing_secret, a.slack_api_url),
    "callback-baseline": lambda a: callback_baseline_app(a.database),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Which server, on which port, with which options."""
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    kinds = parser.add_subparsers(dest="kind", required=True)
    sandbox = kinds.add_parser("sandbox")
    sandbox.add_argument("--calls-per-second", type=int, default=5)
    sandbox.add_argument("--callback-delay", type=float, default=1.0)
    slack = kinds.add_parser("fake-slack")
    slack.add_argument("--burst", type=int)
    slack.add_argument("--per-seconds", type=float)
    bolt = kinds.add_parser("bolt-baseline")
    bolt.add_argument("--signing-secret", required=True)
    bolt.add_argument("--slack-api-url", required=True)
    callbacks = kinds.add_parser("callback-baseline")
    callbacks.add_argument("--database", required=True)
    for sub in (sandbox, slack, bolt, callbacks):
        sub.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve one helper server on 127.0.0.1 until SIGTERM."""
    args = parse_args(argv)
    # As `python -m bot serve` does, so the baselines pay for the same logging setup.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        BUILDERS[args.kind](args), host=HOST, port=args.port, log_level="info", access_log=False
    )


if __name__ == "__main__":
    main()
