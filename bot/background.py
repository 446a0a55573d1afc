"""Work that runs after Slack has been answered: tracked, logged, drained on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """A set of running tasks; a failed task is logged, never silently lost."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._loops: set[asyncio.Task] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Run `work` now; shutdown gives it a grace period to finish."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def spawn_loop(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Run a never-ending `work`; shutdown cancels it at once."""
        task = asyncio.create_task(work, name=name)
        self._loops.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._loops.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background task %s failed", task.get_name(), exc_info=error)

    async def drain(self, grace: float) -> None:
        """Cancel the loops; let other work finish for up to `grace` seconds, then cancel it."""
        for loop in list(self._loops):
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def __len__(self) -> int:
        """How much work (not counting loops) is still running."""
        return len(self._tasks)
