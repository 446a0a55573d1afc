"""Run an ASGI app under uvicorn inside the current event loop, on a socket we bind.

Binding the socket ourselves lets port 0 pick a free port and tells us which one,
which the embedded sandbox and the tests need. It serves with the same connection
rules as `python -m bot serve` (`bot.web.connections`): a deadline for each request,
a bound on connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from bot.web.connections import MAX_CONNECTIONS, REQUEST_TIMEOUT, server_options


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever owns the process, and
    stops as soon as it is asked (`exit_now`) rather than at uvicorn's next 0.1 s tick
    and after its fixed 0.1 s pause: the test suite stops three servers per test."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_asked = asyncio.Event()

    def exit_now(self) -> None:
        """Stop serving: the main loop wakes at once."""
        self.should_exit = True
        self._exit_asked.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):  # uvicorn's tick: the Date header, limits
                    await self._exit_asked.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, polling every 10 ms for connections and tasks to finish
        instead of pausing 0.1 s first and then polling every 0.1 s."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn offers no event for either: polled, as uvicorn itself does.
                while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                for server in self.servers:
                    await server.wait_closed()
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()


@dataclass
class RunningServer:
    """A uvicorn server serving in a task of the current loop."""

    server: uvicorn.Server
    task: asyncio.Task
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if isinstance(self.server, EmbeddedServer):
            self.server.exit_now()
        else:
            self.server.should_exit = True
        await self.task


async def start_server(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    *,
    request_timeout: float = REQUEST_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> RunningServer:
    """Start serving `app` and return once it accepts connections (`request_timeout`
    and `max_connections`: see `bot.web.connections`)."""
    # IPPROTO_TCP (not 0) so asyncio sets TCP_NODELAY on accepted connections;
    # without it Nagle's algorithm adds ~40 ms to small answers.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # A request still being answered at shutdown (a test's deliberately slow answer)
    # gets a second, not as long as it likes.
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
        **server_options(request_timeout=request_timeout, max_connections=max_connections),
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError(f"server on {host}:{port} stopped while starting")
        await asyncio.sleep(0.005)
    return RunningServer(server, task, host, sock.getsockname()[1])
