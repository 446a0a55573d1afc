"""The web server's connections: each request must arrive within a deadline, and there
are never more connections than the server can hold.

uvicorn (0.54, h11; `httptools_impl` behaves the same) times out only a keep-alive
connection left idle after a response: the timer starts when a response ends and
any byte received cancels it for good. A connection that never sends a request,
or sends half of one and stops, is never closed, so a few hundred idle sockets
use up the process's file descriptors and `/healthz` can no longer be accepted.
And `limit_concurrency` counts open connections, idle ones included: set below
what a client can hold open, it makes a flood of idle connections turn every
real request into a 503.

`GuardedH11Protocol` adds, below ASGI (no route sees any of it):

- a deadline: a connection must deliver a whole request (head and body) within
  `request_timeout` seconds of opening, or of its previous answer; otherwise it is
  closed. A request received whole is never cut off while it is being answered.
- an answered request whose body is still arriving (a 413 before reading it) is
  given `LINGER` seconds more: uvicorn reads the rest and drops it, so a client
  that writes its whole body before it reads (most do) gets the answer rather than
  a reset; then the connection is closed, however much is still to come.
- a bound: opening a connection when `limit_concurrency` would be reached closes
  the one nearest its deadline among those owed no answer (idle, or sending a
  request head), or, if every one is being answered, the new one. So uvicorn's 503
  only ever means "too many requests in progress", never "too many idle sockets".

`server_options` is what `python -m bot serve` and the embedded server both pass
to uvicorn; `raise_open_files_limit` lets `serve` hold that many connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# Slack and Intron send a request in one go, in milliseconds; 10 s is generous
# for any honest client and keeps an idle flood from lasting.
REQUEST_TIMEOUT = 10.0
# After answering a request whose body was not read: time for the client to finish
# sending it and read the answer (nginx's lingering close), at line rate at most.
LINGER = 2.0
# uvicorn's default, made explicit: a keep-alive connection idle after an answer.
KEEP_ALIVE_TIMEOUT = 5.0
# Connections (and requests in progress) at once. An idle connection costs the web
# process a few KB (h11 and uvicorn's state, the transport), a request head in
# progress up to MAX_HEAD_BYTES more: 1,000 of them are at most ~25 MB.
MAX_CONNECTIONS = 1000
# File descriptors kept for the process's own use (SQLite and its WAL, the Slack
# and provider HTTP pools, the hint socket, logs) below its open-files limit.
FD_RESERVE = 256
# A request head (request line and headers) larger than this is refused with 400
# (h11's own default, made explicit); Slack's are under 2 KB.
MAX_HEAD_BYTES = 16 * 1024


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a per-request deadline and a connection bound."""

    request_timeout: float = REQUEST_TIMEOUT
    _deadline: asyncio.TimerHandle | None = None
    _lingering_after: object = None  # the answered request (uvicorn's cycle) being drained

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.request_timeout)
        if self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        unread = self.conn.their_state is h11.SEND_BODY  # answered before its body came
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if unread:
            self._arm(LINGER, lingering_after=self.cycle)
        else:
            self._arm(self.request_timeout)

    def _arm(self, seconds: float, *, lingering_after: object = None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._lingering_after = lingering_after
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        """The deadline passed: close unless a request came whole and is being answered."""
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            return
        drained = self._lingering_after
        if drained is not None and self.cycle is not drained and not self.cycle.response_complete:
            self._arm(self.request_timeout)  # the body came; the next request has begun
        else:
            self._close()

    def _owed_nothing(self) -> bool:
        """No answer is owed: idle, sending a request head, or its answer already sent."""
        return self.cycle is None or self.cycle.response_complete

    def _make_room(self) -> None:
        """Close the connection owed nothing that is nearest its deadline, or this one."""
        idle = [
            c
            for c in self.connections
            if c is not self and isinstance(c, GuardedH11Protocol) and c._owed_nothing()
        ]
        min(idle, key=GuardedH11Protocol._due, default=self)._close()

    def _due(self) -> float:
        return self._deadline.when() if self._deadline is not None else 0.0

    def _close(self) -> None:
        # Out of the server's count at once: the next request must not see it.
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()


def connection_limit(limit: int = MAX_CONNECTIONS) -> int:
    """`limit`, or fewer if the open-files limit leaves less room."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(1, min(limit, soft - FD_RESERVE))


def server_options(
    *, request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS
) -> dict[str, Any]:
    """The uvicorn settings of every server of ours (`uvicorn.Config` keywords)."""
    protocol = type(
        GuardedH11Protocol.__name__, (GuardedH11Protocol,), {"request_timeout": request_timeout}
    )
    return {
        "http": protocol,
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "limit_concurrency": connection_limit(max_connections),
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to its hard one; return the soft limit
    in force (unchanged where the system refuses)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
