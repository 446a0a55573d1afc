"""Benchmark 4: reporting 60 results in one channel while Slack holds the channel to
about one message a second.

The fake Slack allows at most BURST messages (`chat.postMessage` and
`chat.update`) in any PER_SECONDS-second window per channel, and answers 429 with
an integer `Retry-After` beyond that, as Slack does. 60 requests in one channel
are stored as "placed" before the app starts; their completion callbacks then
arrive within one second. Each result needs two messages in the channel: the
parent edited to "completed" and the results posted in its thread.

The baseline is the least time those limits allow for those messages: BURST go at
once, then BURST more every PER_SECONDS seconds. "In a row" is about the fake's
own order of answers in the channel: a 429 followed by another 429 means the app
retried (or another of its tasks sent) before the limit had room.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import aiohttp

from bench.common import Report, Row, ratio, say, scaled
from bench.load import Prepared, send, session
from bench.procs import free_port
from bench.seed import Seeded, callback_body, seed
from bench.stack import CALLBACK_TOKEN, Run, SlackWatcher
from tests.support.fake_slack import MESSAGE_METHODS

RESULTS = 60
CALLS_EACH = 5
MESSAGES_PER_RESULT = 2  # the parent's edit and the thread reply (≤ 40 calls: one reply)
BURST = 4
PER_SECONDS = 4.0
ARRIVAL_SPAN = 1.0  # the callbacks arrive within this many seconds
TIME_GOAL = 1.25
IDLE = 15.0  # no traffic at the fake for this long: the app has given up
EXTRA = 30.0  # seconds past the goal we keep waiting, to see how long it does take


def least_time(messages: int) -> float:
    """Seconds from the first to the last message under the fake's limit."""
    return (math.ceil(messages / BURST) - 1) * PER_SECONDS


def longest_429_run(calls: list[dict], rejected: list[dict], channel: str) -> int:
    """The longest run of consecutive 429s among the fake's answers in `channel`."""
    answers = [(c["at"], 200) for c in calls if c["channel"] == channel]
    answers += [(r["at"], r["status"]) for r in rejected if r["channel"] == channel]
    longest = current = 0
    for _, status in sorted(answers):
        current = current + 1 if status == 429 else 0
        longest = max(longest, current)
    return longest


async def run(folder: Path, scale: float, profile: bool) -> Report:
    """Run benchmark 4 and return its rows."""
    report = Report(4, "Slack pacing: 60 results in one channel at ~1 message/s")
    results = scaled(RESULTS, scale, least=BURST)
    async with Run(folder / "4-pacing", profile) as run:
        sandbox = await run.sandbox()
        slack = await run.fake_slack(burst=BURST, per_seconds=PER_SECONDS)
        port = free_port()
        workflow = await run.create_workflow(sandbox, port)
        requests = seed(
            run.folder / "app.db", workflow, range(results), calls_each=CALLS_EACH, channels=1
        )
        app = await run.app(
            "app", port=port, sandbox=sandbox, slack=slack, database=run.folder / "app.db"
        )
        await run.wait_for_workflow(app, workflow.name)
        watcher = SlackWatcher(run, slack)
        bodies = [callback_body(r, workflow) for r in requests]
        url = f"{app.url}/callbacks/intron/{CALLBACK_TOKEN}"
        async with run.profiled(app, "4-pacing-app"):
            first = time.monotonic()
            answers = await _arrive(url, bodies)
            done = await _follow(
                watcher, requests, first, least_time(results * MESSAGES_PER_RESULT)
            )
    _rows(report, watcher, requests, answers, first, done)
    return report


async def _arrive(url: str, bodies: list[bytes]) -> list[int]:
    """POST the callbacks spread evenly over ARRIVAL_SPAN; return their statuses."""
    headers = {"Content-Type": "application/json"}
    start = time.monotonic()

    async def one(http: aiohttp.ClientSession, index: int, body: bytes) -> int:
        await asyncio.sleep(max(0.0, start + index * ARRIVAL_SPAN / len(bodies) - time.monotonic()))
        sample = await send(http, Prepared("callback", url, body, headers), lambda *_: True)
        return sample.status

    async with session(len(bodies)) as http:
        return list(await asyncio.gather(*(one(http, i, b) for i, b in enumerate(bodies))))


async def _follow(
    watcher: SlackWatcher, requests: list[Seeded], first: float, least: float
) -> bool:
    """Watch the fake until all are reported, the app goes quiet, or time is up."""
    keys = {(r.channel, r.ts) for r in requests}
    deadline = first + TIME_GOAL * least + EXTRA
    last_activity, seen = time.monotonic(), 0
    while time.monotonic() < deadline:
        await watcher.poll()
        if watcher.reported(keys) == keys:
            return True
        if len(watcher.calls) + len(watcher.rejected) != seen:
            seen, last_activity = len(watcher.calls) + len(watcher.rejected), time.monotonic()
        elif time.monotonic() - last_activity > IDLE:
            say(f"  4: no Slack traffic for {IDLE:.0f} s: the app has stopped trying")
            return False
        await asyncio.sleep(0.25)
    say("  4: still not all reported when the time ran out")
    return False


def _rows(
    report: Report,
    watcher: SlackWatcher,
    requests: list[Seeded],
    answers: list[int],
    first: float,
    done: bool,
) -> None:
    channel = requests[0].channel
    keys = {(r.channel, r.ts) for r in requests}
    reported = watcher.reported(keys)
    messages = [c for c in watcher.calls if c["method"] in MESSAGE_METHODS]
    rejected = [r for r in watcher.rejected if r["status"] == 429]
    needed = len(requests) * MESSAGES_PER_RESULT
    least = least_time(needed)
    report.add(
        Row(
            "results reported",
            f"{len(reported)} / {len(requests)}",
            goal="all",
            met=len(reported) == len(requests),
        )
    )
    in_a_row = longest_429_run(messages, rejected, channel)
    report.add(
        Row("longest run of 429s in a row at the fake", in_a_row, goal="≤ 1", met=in_a_row <= 1)
    )
    report.add(Row("429s answered by the fake", len(rejected)))
    last = max((c["at"] for c in messages), default=first)
    total = last - first
    r = ratio(total, least)
    report.add(
        Row(
            "time from first result to last message" + ("" if done else " (not all sent)"),
            total,
            least,
            "s",
            r,
            f"ratio ≤ {TIME_GOAL}, all sent",
            done and r is not None and r <= TIME_GOAL,
        )
    )
    report.note(
        f"{len(requests)} callbacks ({CALLS_EACH} calls each) POSTed over {ARRIVAL_SPAN:.0f} s, "
        f"answered {sorted(set(answers))}; the fake allows {BURST} messages per "
        f"{PER_SECONDS:.0f} s per channel; {needed} messages needed, {len(messages)} delivered "
        f"({len(watcher.calls) - len(messages)} other calls)"
    )
    retry_afters = sorted({r["retry_after"] for r in rejected})
    if rejected:
        report.note(f"Retry-After values the fake sent: {retry_afters} s")
