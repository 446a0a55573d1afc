"""Benchmark 1: how fast the app acks signed slash commands, against bare bolt.

The app (`python -m bot serve`, its own process) and the baseline (a bolt
AsyncApp whose `/robocall` listener only acks, behind the same Starlette handler
and uvicorn, its own process) are both running for the whole benchmark; rounds
alternate between them (ABBA). Half the commands are `/robocall call …` (one
recipient: stored, acked, then placed with the sandbox in the background), half
`/robocall voices`. Latency is from sending the request to the last byte of the
answer, 25 requests in flight at any time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from bench.common import Report, Row, abba, percentile, ratio, robust_check, scaled, split
from bench.load import Prepared, Sample, closed_loop, session
from bench.procs import Proc, free_port
from bench.stack import SIGNING_SECRET, Run, number
from tests.support.slack_requests import sign, slash_command

TOTAL = 1000  # per side
CONCURRENCY = 25
ROUNDS = 10
WARMUP = 50  # per side, not measured: imports, caches, connections
CHANNELS = 20
P99_GOAL = 1.2
SLOWEST_GOAL = 3.0  # seconds


def command_text(index: int, workflow: str) -> tuple[str, str]:
    """(kind, text) of the index-th command: calls and voices alternate."""
    if index % 2 == 0:
        return "call", f'call "{workflow}" {number(index)} name=Ada'
    return "voices", "voices"


def maker(url: str, workflow: str) -> Callable[[int], Prepared]:
    """Builds (and signs, at send time) the index-th command for the server at `url`."""

    def make(index: int) -> Prepared:
        kind, text = command_text(index, workflow)
        body, content_type = slash_command(
            text, channel_id=f"CBENCH{index % CHANNELS:02d}", user_id=f"UBENCH{index % 7}"
        )
        headers = sign(SIGNING_SECRET, body, content_type=content_type)
        return Prepared(kind, url + "/slack/events", body, headers)

    return make


def app_answer_ok(request: Prepared, status: int, body: bytes) -> bool:
    """The app's ack says the call was accepted, or lists the voices."""
    expected = b"accepted" if request.kind == "call" else b"blocks"
    return status == 200 and expected in body


def baseline_answer_ok(request: Prepared, status: int, body: bytes) -> bool:
    """The baseline acks everything with an empty 200."""
    return status == 200


async def run(folder: Path, scale: float, profile: bool) -> Report:
    """Run benchmark 1 and return its rows."""
    report = Report(1, "Ack latency: signed slash commands, 25 at a time")
    total = scaled(TOTAL, scale, least=ROUNDS * 2)
    async with Run(folder / "1-ack", profile) as run:
        sandbox = await run.sandbox(callback_delay=1.0)
        slack = await run.fake_slack()
        port = free_port()
        workflow = await run.create_workflow(sandbox, port)
        app = await run.app(
            "app", port=port, sandbox=sandbox, slack=slack, database=run.folder / "app.db"
        )
        baseline = await run.bolt_baseline(slack)
        await run.wait_for_workflow(app, workflow.name)
        ours, base = await _measure(run, app, baseline, workflow.name, total)
        summary = await run.sandbox_summary(sandbox)
    _rows(report, ours, base, total)
    report.note(
        f"{total:,} commands per side ({total // 2} `call`, {total - total // 2} `voices`) in "
        f"{ROUNDS} interleaved rounds; the sandbox enforces Intron's 5 calls/s, so "
        f"{summary['requests_seen'].get('place_calls', 0)} calls were placed during the run "
        f"(the rest were still queued when it ended), "
        f"{sum(summary['rate_limited'].values())} 429s"
    )
    return report


async def _measure(
    run: Run, app: Proc, baseline: Proc, workflow: str, total: int
) -> tuple[list[list[Sample]], list[list[Sample]]]:
    sides = {
        "ours": (maker(app.url, workflow), app_answer_ok),
        "baseline": (maker(baseline.url, workflow), baseline_answer_ok),
    }
    results: dict[str, list[list[Sample]]] = {"ours": [], "baseline": []}
    indexes = list(range(WARMUP, WARMUP + total))
    async with session(CONCURRENCY) as http:
        for make, check in sides.values():
            await closed_loop(http, make, range(WARMUP), CONCURRENCY, check)
        async with run.profiled(app, "1-ack-app"):
            for index, ours_first in abba(ROUNDS):
                chunk = split(indexes, ROUNDS)[index]
                for side in ("ours", "baseline") if ours_first else ("baseline", "ours"):
                    make, check = sides[side]
                    samples, _ = await closed_loop(http, make, chunk, CONCURRENCY, check)
                    results[side].append(samples)
                    await asyncio.sleep(0.2)  # let the other server's stragglers settle
    return results["ours"], results["baseline"]


def _ms(samples: list[Sample], pct: float, kind: str | None = None) -> float:
    return 1000.0 * percentile([s.latency for s in samples if kind in (None, s.kind)], pct)


def _rows(
    report: Report, ours_rounds: list[list[Sample]], base_rounds: list[list[Sample]], total: int
) -> None:
    ours = [s for r in ours_rounds for s in r]
    base = [s for r in base_rounds for s in r]
    p50, b50 = _ms(ours, 50), _ms(base, 50)
    report.add(Row("ack p50", p50, b50, "ms", ratio(p50, b50)))
    p99, b99 = _ms(ours, 99), _ms(base, 99)
    r99 = ratio(p99, b99)
    report.add(
        Row(
            "ack p99",
            p99,
            b99,
            "ms",
            r99,
            f"ratio ≤ {P99_GOAL}",
            r99 is not None and r99 <= P99_GOAL,
        )
    )
    robust_check(
        report,
        "ack",
        [[s.latency for s in r] for r in ours_rounds],
        [[s.latency for s in r] for r in base_rounds],
        P99_GOAL,
    )
    for kind in ("call", "voices"):
        mine, theirs = _ms(ours, 99, kind), _ms(base, 99, kind)
        report.add(Row(f"ack p99, `{kind}` only", mine, theirs, "ms", ratio(mine, theirs)))
    slowest, base_slowest = _ms(ours, 100), _ms(base, 100)
    bad = [s for s in ours if not s.ok]
    report.add(
        Row(
            "slowest ack (every answer)",
            slowest,
            base_slowest,
            "ms",
            ratio(slowest, base_slowest),
            f"≤ {SLOWEST_GOAL * 1000:.0f} ms, all answered",
            slowest <= SLOWEST_GOAL * 1000 and not bad and len(ours) == total,
        )
    )
    if bad:
        report.note(f"{len(bad)} of our answers were missing or wrong: {bad[:3]}")
    base_bad = sum(1 for s in base if not s.ok)
    if base_bad:
        report.note(f"{base_bad} baseline answers were missing or not 200")
