"""A closed-loop load generator: N requests, C in flight at any time, each timed.

It uses aiohttp rather than httpx because it costs less CPU per request, and on
a 2-core machine the load generator's own cost lands in every latency measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

REQUEST_TIMEOUT = 10.0  # an answer slower than this counts as none (status 0)


@dataclass(frozen=True)
class Prepared:
    """One request ready to send; `kind` labels it in the results."""

    kind: str
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Sample:
    """One request's outcome: when it was sent (monotonic), how long the answer took,
    its HTTP status (0: no answer) and whether its body was as expected."""

    kind: str
    sent_at: float
    latency: float
    status: int
    ok: bool


Check = Callable[[Prepared, int, bytes], bool]


def session(concurrency: int) -> aiohttp.ClientSession:
    """A session keeping up to `concurrency` connections alive, never using a proxy."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        trust_env=False,
    )


async def send(http: aiohttp.ClientSession, request: Prepared, check: Check) -> Sample:
    """Send one request and time it up to the last byte of the answer."""
    sent = time.monotonic()
    try:
        async with http.post(request.url, data=request.body, headers=request.headers) as answer:
            body = await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError):
        return Sample(request.kind, sent, time.monotonic() - sent, 0, False)
    return Sample(request.kind, sent, time.monotonic() - sent, status, check(request, status, body))


async def closed_loop(
    http: aiohttp.ClientSession,
    make: Callable[[int], Prepared],
    indexes: Sequence[int],
    concurrency: int,
    check: Check,
) -> tuple[list[Sample], float]:
    """Send `make(i)` for each index, `concurrency` at a time; return the samples and
    the seconds from the first send to the last answer. Requests are built (and so
    signed) just before they are sent."""
    queue = list(reversed(indexes))
    samples: list[Sample] = []

    async def worker() -> None:
        while queue:
            samples.append(await send(http, make(queue.pop()), check))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(indexes)))))
    return samples, time.monotonic() - started


def ok_status(request: Prepared, status: int, body: bytes) -> bool:
    """The default check: any 200 answer."""
    return status == 200
