"""Unauthenticated load: bodies over the limit are refused unread, and connections that
never deliver a request are closed (bot/web/limits.py, bot/web/connections.py).

Over raw sockets, so the test controls exactly what is sent and when: a body that
claims 100 MB and sends a few bytes, a chunked body that never ends, a connection
that sends nothing or half a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.serving import RunningServer, start_server
from bot.web.connections import LINGER
from bot.web.limits import read_body
from bot.web.slack_events import MAX_SLACK_BYTES
from tests.harness import Harness
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import slash_command

# Methods through which the app acts in Slack; nothing refused here may cause one.
ACTING_METHODS = {
    "views.open",
    "views.push",
    "views.update",
    "views.publish",
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
}
HUNDRED_MB = 100 * 1024 * 1024


def acting_calls(fake: FakeSlack) -> list[str]:
    return [c.method for c in fake.calls() if c.method in ACTING_METHODS]


def head(path: str, *lines: str) -> bytes:
    """A request head for 127.0.0.1, with `lines` as its headers."""
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


async def response(reader: asyncio.StreamReader, timeout: float = 3.0) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length."""
    async with asyncio.timeout(timeout):
        lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), body


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Whether the server closes the connection within `timeout` seconds (reading and
    dropping anything it sends first)."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


# ================================================================ bodies over the limit


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    harness: Harness,
) -> None:
    before = acting_calls(harness.fake)
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    started = time.monotonic()
    writer.write(
        head(
            "/slack/events",
            "Content-Type: application/x-www-form-urlencoded",
            f"Content-Length: {HUNDRED_MB}",
        )
        + b"command=%2Frobocall&text=help"
    )
    status, body = await response(reader)
    # Answered at once, with 100 MB still to come: nothing waited for the body.
    assert time.monotonic() - started < 1.0
    assert status == 413
    assert json.loads(body) == {"error": f"body larger than {MAX_SLACK_BYTES} bytes"}
    # The rest is waited for LINGER s (so that a client can read the answer), no more.
    assert await closed_within(reader, LINGER + 1.0)
    writer.close()
    assert acting_calls(harness.fake) == before


async def test_the_limit_comes_before_the_signature(harness: Harness) -> None:
    """A correctly signed body over the limit is refused all the same (the signature
    check would have to read it)."""
    answer = await harness.slack.post(*slash_command("help " + "x" * MAX_SLACK_BYTES))
    assert answer.status_code == 413
    # At the limit and unsigned: read, then refused for its signature.
    answer = await harness.slack.client.post(
        f"{harness.url}/slack/events", content=b"x" * MAX_SLACK_BYTES
    )
    assert answer.status_code == 401
    assert (await harness.slack.command("help")).status_code == 200


async def test_a_chunked_body_is_cut_off_at_the_limit(harness: Harness) -> None:
    before = acting_calls(harness.fake)
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    writer.write(
        head(
            "/slack/events",
            "Content-Type: application/x-www-form-urlencoded",
            "Transfer-Encoding: chunked",
        )
    )
    answer = asyncio.create_task(response(reader, timeout=10.0))
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    sent = 0
    with contextlib.suppress(ConnectionError):  # closed while we are still sending
        while sent < HUNDRED_MB and not answer.done():
            writer.write(chunk)
            await writer.drain()
            sent += 64 * 1024
    status, body = await answer
    assert status == 413
    assert json.loads(body) == {"error": f"body larger than {MAX_SLACK_BYTES} bytes"}
    # Cut off near the limit (what the sockets' buffers hold aside), far from 100 MB.
    assert sent < 16 * MAX_SLACK_BYTES
    writer.close()
    assert acting_calls(harness.fake) == before


async def test_a_client_that_sends_it_all_before_reading_gets_the_answer(
    harness: Harness,
) -> None:
    """httpx writes the whole body before it reads: it gets the 413, not a reset, and
    the connection can serve the next request."""
    http = harness.slack.client
    for size in (MAX_SLACK_BYTES + 1, 8 * MAX_SLACK_BYTES):
        answer = await http.post(f"{harness.url}/slack/events", content=b"x" * size)
        assert answer.status_code == 413, size
    assert (await harness.slack.command("help")).status_code == 200


async def test_an_answered_body_is_drained_for_a_while_only(harness: Harness) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    writer.write(head("/slack/events", f"Content-Length: {HUNDRED_MB}"))
    assert (await response(reader))[0] == 413
    started = time.monotonic()
    with contextlib.suppress(ConnectionError):
        while time.monotonic() - started < 5 * LINGER:  # keep sending, slowly
            writer.write(b"x" * 4096)
            await writer.drain()
            await asyncio.sleep(0.01)
    assert LINGER * 0.8 < time.monotonic() - started < LINGER + 1.0
    writer.close()


async def test_a_body_within_the_limit_is_read_whole() -> None:
    seen: list[bytes | None] = []

    async def echo(request: Request) -> Response:
        seen.append(await read_body(request, 10))
        return PlainTextResponse("ok")

    server = await start_server(Starlette(routes=[Route("/", echo, methods=["POST"])]))
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        for body in (b"0123456789", b"01234567890"):  # at the limit; one over
            writer.write(head("/", "Transfer-Encoding: chunked") + b"a\r\n0123456789\r\n")
            if len(body) > 10:
                writer.write(b"1\r\n0\r\n")
            writer.write(b"0\r\n\r\n")
            assert (await response(reader))[0] == 200
        assert seen == [b"0123456789", None]
        writer.close()
    finally:
        await server.stop()


# ================================================================ slow and idle connections

TIMEOUT = 0.4  # the test servers' request deadline


@pytest.fixture
async def tiny() -> AsyncIterator[tuple[RunningServer, list[str]]]:
    """A server with a 0.4 s request deadline and at most 5 connections; its routes
    record what happened to the requests they read."""
    events: list[str] = []

    async def upload(request: Request) -> Response:
        try:
            await request.body()
        except ClientDisconnect:
            events.append("disconnected")
            raise
        return PlainTextResponse("read")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(3 * TIMEOUT)
        return PlainTextResponse("slow")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/upload", upload, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )
    server = await start_server(app, request_timeout=TIMEOUT, max_connections=5)
    yield server, events
    await server.stop()


async def test_a_connection_that_sends_nothing_or_half_a_request_is_closed(tiny) -> None:
    server, _ = tiny
    for sent in (b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-"):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(sent)
        started = time.monotonic()
        assert await closed_within(reader, 5 * TIMEOUT), sent
        assert time.monotonic() - started >= TIMEOUT * 0.8
        writer.close()


async def test_a_body_that_stops_arriving_is_cut_off(tiny) -> None:
    server, events = tiny
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        head("/upload", "Content-Length: 100") + b"only forty bytes of the hundred promised"
    )
    assert await closed_within(reader, 5 * TIMEOUT)
    await asyncio.sleep(0.05)
    assert events == ["disconnected"]
    writer.close()


async def test_a_request_received_whole_is_answered_however_long_it_takes(tiny) -> None:
    server, _ = tiny
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(head("/slow", "Content-Length: 0"))
    assert await response(reader, timeout=10 * TIMEOUT) == (200, b"slow")
    # Then the next request has a deadline of its own: kept alive, idle, closed.
    assert await closed_within(reader, 5 * TIMEOUT)
    writer.close()


async def test_beyond_the_bound_the_oldest_idle_connection_makes_room(tiny) -> None:
    """With at most 5 connections (requests included), idle ones cannot make a real
    request wait or fail: the one nearest its deadline is closed instead."""
    server, _ = tiny
    idle = []
    for _ in range(4):
        idle.append(await asyncio.open_connection(server.host, server.port))
        await asyncio.sleep(0.02)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert await response(reader) == (200, b'{"ok":true}')  # not uvicorn's 503
    assert await closed_within(idle[0][0], TIMEOUT / 2)  # the oldest, at once
    assert not await closed_within(idle[1][0], 0.05)  # the others wait their deadline
    for _, w in [*idle, (reader, writer)]:
        w.close()


async def test_beyond_the_bound_with_every_connection_busy_the_new_one_is_refused(tiny) -> None:
    server, _ = tiny
    busy = []
    for _ in range(4):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(head("/slow", "Content-Length: 0"))
        busy.append((reader, writer))
    await asyncio.sleep(0.1)  # all four being answered
    reader, writer = await asyncio.open_connection(server.host, server.port)
    assert await closed_within(reader, TIMEOUT / 2)  # at once, not at its deadline
    for r, _ in busy:  # the requests in progress are answered all the same
        assert await response(r, timeout=10 * TIMEOUT) == (200, b"slow")
    for _, w in [*busy, (reader, writer)]:
        w.close()


# ================================================================ open files


def test_serve_raises_the_open_files_limit_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard limit here is {hard}: nothing to raise")
    script = (
        "from bot.web.connections import connection_limit, raise_open_files_limit\n"
        "before = connection_limit()\n"
        "print(before, raise_open_files_limit(), connection_limit())\n"
    )

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    out = subprocess.run(
        [sys.executable, "-c", script], preexec_fn=lowered, capture_output=True, check=True
    )
    before, raised, after = (int(n) for n in out.stdout.split())
    assert before == 1024 - 256  # the bound leaves room for the process's own files
    assert raised == (hard if hard != resource.RLIM_INFINITY else max(1024, 65536))
    assert after == 1000
