"""An asyncio event loop in a background thread, for tests that must stay synchronous.

Hypothesis cannot drive ``async def`` tests, and restarting the app for every
generated example would cost far more than the examples themselves. So the whole
environment (the app under uvicorn, the fake Slack, the sandbox) is started once
on a loop that runs in a daemon thread, and a synchronous test talks to it over
HTTP with a plain `httpx.Client`.

Everything that touches the environment's objects runs on that loop through
`LoopThread.run` / `LoopThread.call`: the app's SQLite connection belongs to the
thread that opened it, and asyncio objects are not thread-safe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

import uvicorn
from starlette.types import ASGIApp

from bot.serving import EmbeddedServer, RunningServer

T = TypeVar("T")


async def serve_nodelay(app: ASGIApp, port: int, host: str = "127.0.0.1") -> RunningServer:
    """Like `bot.serving.start_server`, but uvicorn binds the socket itself.

    `start_server` binds ``socket.socket()``, whose ``proto`` is 0, so asyncio does not
    set TCP_NODELAY on the connections it accepts, and each response (headers and body
    written separately) waits ~40 ms for the client's delayed ACK. One request costs
    nothing; a thousand generated ones would cost 40 s.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"server on {host}:{port} stopped while starting")
        await asyncio.sleep(0.005)
    return RunningServer(server, task, host, port)


class LoopThread:
    """A running event loop in a daemon thread; `run` executes coroutines on it."""

    def __init__(self, name: str = "test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> Self:
        """Start the thread (and so the loop); returns self."""
        self._thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the loop and return its result (or raise its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Call a plain function on the loop's thread (e.g. a read of the app's store)."""

        async def invoke() -> T:
            return fn(*args)

        return self.run(invoke(), timeout)

    def stop(self) -> None:
        """Cancel what is left on the loop, stop it, join the thread and close the loop."""
        if not self._thread.is_alive():
            return

        async def cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.run(cancel_rest(), timeout=10.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10.0)
            if not self._thread.is_alive():
                self.loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
