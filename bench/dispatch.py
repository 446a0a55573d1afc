"""Benchmark 3: dispatching one campaign of 5,000 recipients through the sandbox, which
enforces Intron's 5 requests/s on `POST /call` (429 with Retry-After beyond it).

Today the app sends one `POST /call` per request, with all its recipients. So the
campaign is cut into requests of 50 recipients (100 requests), measured twice:

- a: straight through `IntronClient` (all 100 `place_calls` started at once; the
  client's limiter queues them);
- b: through the app: 100 signed `/robocall call` commands of 50 numbers each,
  sent back to back; the app acks each and places it in the background.

Requests/s is as the sandbox saw them arrive. Under a rule of "at most L requests
in any window of W seconds", n requests arriving over a span S can be at most
L·(S/W) + L, so the figure is (n - L) / S, whose best possible value is L/W = 5/s.
Every number in the campaign is distinct: any number the sandbox saw twice was
sent twice. At the issue's 1 recipient per request the campaign would take at
least 1,000 s, more than the whole budget of `make bench`.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bench.common import Report, Row, percentile, ratio, say, scaled, write_text
from bench.procs import Proc, free_port
from bench.stack import INTRON_KEY, PATHS, Run, SlackWatcher, number
from bot.providers.base import Order, OrderRecipient
from bot.providers.base import Workflow as Ordered
from bot.providers.intron.client import IntronClient
from bot.providers.intron.models import Workflow
from bot.providers.intron.provider import call_request

RECIPIENTS = 5000
BATCH = 50  # recipients per request
LIMIT = 5  # Intron's calls limit: requests per WINDOW seconds
WINDOW = 1.0
RATE_GOAL = 0.95
SETTLE = 3.0  # seconds to keep watching after the last request, for any resend


def campaign(recipients: int) -> list[list[str]]:
    """The campaign's distinct numbers, cut into requests of BATCH."""
    numbers = [number(i) for i in range(recipients)]
    return [numbers[i : i + BATCH] for i in range(0, len(numbers), BATCH)]


async def run(folder: Path, scale: float, profile: bool) -> Report:
    """Run benchmark 3 and return its rows."""
    report = Report(3, "Dispatch: a 5,000-recipient campaign at Intron's 5 requests/s")
    recipients = scaled(RECIPIENTS, scale, least=BATCH * 2 * LIMIT)
    batches = campaign(recipients)
    report.note(
        f"{recipients:,} recipients as {len(batches)} requests of {BATCH}; the least time "
        f"the limit allows is {(len(batches) - LIMIT) / LIMIT * WINDOW:.1f} s"
    )
    async with Run(folder / "3a-client", profile) as run:
        await _direct(run, report, batches)
    async with Run(folder / "3b-app", profile) as run:
        await _through_app(run, report, batches)
    return report


async def _direct(run: Run, report: Report, batches: list[list[str]]) -> None:
    sandbox = await run.sandbox()
    workflow = await run.create_workflow(sandbox, None)  # no callbacks needed here
    ordered = Ordered(id=workflow.id, provider="intron", name=workflow.name)
    requests = [
        call_request(
            Order(
                request_id=f"rq-bench{index:06d}",
                workflow=ordered,
                recipients=[
                    OrderRecipient(position, n, {"name": "Ada"})
                    for position, n in enumerate(batch, start=1)
                ],
            )
        )
        for index, batch in enumerate(batches)
    ]
    started = time.monotonic()
    async with IntronClient(INTRON_KEY, sandbox.url, paths=PATHS) as intron:
        results = await asyncio.gather(
            *(intron.place_calls(r) for r in requests), return_exceptions=True
        )
    say(f"  3a: {len(requests)} place_calls returned in {time.monotonic() - started:.1f} s")
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        report.note(f"a: {len(failures)} place_calls failed, e.g. {failures[0]!r}")
    await asyncio.sleep(SETTLE)
    await _rows(run, sandbox, report, "a", "via IntronClient", len(batches) * BATCH)


async def _through_app(run: Run, report: Report, batches: list[list[str]]) -> None:
    sandbox = await run.sandbox(callback_delay=1.0)
    slack = await run.fake_slack()
    port = free_port()
    workflow = await run.create_workflow(sandbox, port)
    app = await run.app(
        "app", port=port, sandbox=sandbox, slack=slack, database=run.folder / "app.db"
    )
    await run.wait_for_workflow(app, workflow.name)
    started = time.monotonic()
    async with run.profiled(app, "3b-app"):
        refused = await _send_commands(run, app, workflow, batches)
        await _wait_placed(run, sandbox, len(batches) - refused, started)
        await asyncio.sleep(SETTLE)
    seconds = time.monotonic() - started
    say(f"  3b: {len(batches)} requests placed {seconds:.1f} s after the first command")
    if refused:
        report.note(f"b: {refused} commands were not acked as accepted")
    watcher = SlackWatcher(run, slack)
    await watcher.poll()
    report.note(
        f"b: the app made {len(watcher.calls)} Slack calls meanwhile "
        f"(parent messages, edits, results)"
    )
    await _rows(run, sandbox, report, "b", "via the app", len(batches) * BATCH)


async def _send_commands(run: Run, app: Proc, workflow: Workflow, batches: list[list[str]]) -> int:
    """Send one `/robocall call` per batch, back to back; return how many were refused."""
    refused = 0
    for index, batch in enumerate(batches):
        text = f'call "{workflow.name}" {" ".join(batch)} name=Ada'
        answer = await run.command(app, text, channel_id=f"CCAMP{index % 10}")
        if answer.status_code != 200 or "accepted" not in answer.text:
            refused += 1
    return refused


async def _wait_placed(run: Run, sandbox: Proc, expected: int, started: float) -> None:
    """Until the sandbox has taken `expected` calls requests (or twice the least time)."""
    deadline = started + 2 * expected / LIMIT * WINDOW + 30
    while time.monotonic() < deadline:
        seen = (await run.sandbox_summary(sandbox))["requests_seen"].get("place_calls", 0)
        if seen >= expected:
            return
        await asyncio.sleep(0.5)


def arrival_rate(times: list[float]) -> float:
    """(n - L) / span: requests per second past the first window's worth (see above)."""
    if len(times) <= LIMIT:
        return float("nan")
    return (len(times) - LIMIT) / (max(times) - min(times))


def window_lags(times: list[float]) -> list[float]:
    """For each request k+L: seconds past the earliest the limit allowed (request k's
    arrival + W). Zero everywhere would be a perfect client."""
    ordered = sorted(times)
    return [b - a - WINDOW for a, b in zip(ordered, ordered[LIMIT:], strict=False)]


async def _rows(
    run: Run, sandbox: Proc, report: Report, letter: str, how: str, recipients: int
) -> None:
    arrivals = [
        a for a in await run.arrivals(sandbox) if a["method"] == "POST" and a["path"] == PATHS.call
    ]
    taken = [a["at"] for a in arrivals if a["status"] == 200]
    write_text(run.folder / "arrivals.json", json.dumps(arrivals, indent=0))
    rate = arrival_rate(taken)
    summary = await run.sandbox_summary(sandbox)
    limit = LIMIT / WINDOW
    r = ratio(rate, limit)
    report.add(
        Row(
            f"{letter}: POST /call per second, {how}",
            rate,
            limit,
            "/s",
            r,
            f"ratio ≥ {RATE_GOAL}",
            r is not None and r >= RATE_GOAL,
        )
    )
    too_many = summary["rate_limited"].get("place_calls", 0)
    report.add(
        Row(f"{letter}: 429s answered by the sandbox", too_many, goal="0", met=too_many == 0)
    )
    twice, called = summary["numbers_called_twice"], summary["numbers"]
    report.add(
        Row(
            f"{letter}: recipients called twice",
            f"{twice} ({called:,} of {recipients:,} called)",
            goal="0, all called",
            met=twice == 0 and called == recipients,
        )
    )
    if len(taken) > LIMIT:
        lags = window_lags(taken)
        report.note(
            f"{letter}: {len(taken)} requests arrived over {max(taken) - min(taken):.2f} s "
            f"({len(arrivals) - len(taken)} answered otherwise); request k+{LIMIT} arrived "
            f"{1000 * percentile(lags, 50):.0f} ms (median), {1000 * max(lags):.0f} ms (most) "
            f"later than the limit allowed"
        )
