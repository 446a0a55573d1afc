"""Waking workers the moment a job is added, from any process of this machine.

A worker listens on a UDP port of 127.0.0.1 and writes it in the database
(`meta`, key `worker_wake:<worker id>`); a process that commits a new job sends
each listed port one byte. That is only a hint: a lost datagram costs the
worker's next look at the table (`Worker.poll`), never a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store.meta import MetaStore

PREFIX = "worker_wake:"
REFRESH_EVERY = 2.0  # seconds a sender trusts its list of workers


class WakeSender:
    """Sends the hint; cheap enough for every commit that adds a job."""

    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._ports: list[int] = []
        self._read_at = 0.0

    def send(self) -> None:
        if time.monotonic() - self._read_at > REFRESH_EVERY:
            self._ports = [int(p) for p in self.meta.values(PREFIX) if p.isdigit()]
            self._read_at = time.monotonic()
        for port in self._ports:
            with contextlib.suppress(OSError):  # a worker that is gone, a full buffer
                self._socket.sendto(b"!", ("127.0.0.1", port))

    def close(self) -> None:
        self._socket.close()


class WakeListener:
    """A worker's end: calls `wake` for every hint received."""

    def __init__(self, meta: MetaStore, worker_id: str, wake: Callable[[], None]) -> None:
        self.meta = meta
        self.key = PREFIX + worker_id
        self.wake = wake
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._socket.bind(("127.0.0.1", 0))

    def start(self, stale: list[str]) -> None:
        """Listen, and be listed (`stale`: worker ids whose entries to remove)."""
        asyncio.get_running_loop().add_reader(self._socket.fileno(), self._drain)
        for worker in stale:
            self.meta.delete(PREFIX + worker)
        self.meta.set(self.key, str(self._socket.getsockname()[1]))

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._socket.recv(64):
                pass
        self.wake()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._socket.fileno())
        with contextlib.suppress(Exception):
            self.meta.delete(self.key)
        self._socket.close()
