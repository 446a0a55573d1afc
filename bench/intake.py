"""Benchmark 2: how many completion callbacks the app takes in per second, against a
bare route that parses the JSON and inserts it into SQLite.

2,000 requests (10 calls each, spread over 200 channels) are stored as "placed"
in the app's database before it starts, each with its Slack message. Their
callbacks (the sandbox's shape) are POSTed 32 at a time, in rounds alternating
with the baseline (ABBA). After each of the app's rounds we wait until the fake
Slack (no rate limit here) has every request of the round reported (parent
edited to "completed", results in its thread) before the next round starts, so
the app's Slack work never runs during the baseline's rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Report, Row, abba, percentile, ratio, say, scaled, split
from bench.load import Prepared, Sample, closed_loop, ok_status, session
from bench.procs import Proc, free_port
from bench.seed import Seeded, callback_body, seed
from bench.stack import CALLBACK_TOKEN, Run, SlackWatcher

TOTAL = 2000  # per side
CALLS_EACH = 10
CHANNELS = 200
CONCURRENCY = 32
ROUNDS = 10
WARMUP = 64  # per side, not measured
THROUGHPUT_GOAL = 0.7
REPORT_TIMEOUT = 120.0  # seconds for one round's Slack reports


def maker(url: str, bodies: dict[int, bytes]) -> Callable[[int], Prepared]:
    """The callback of the index-th request, for the server at `url`."""
    target = f"{url}/callbacks/intron/{CALLBACK_TOKEN}"
    headers = {"Content-Type": "application/json"}
    return lambda index: Prepared("callback", target, bodies[index], headers)


def applied(request: Prepared, status: int, body: bytes) -> bool:
    """The app stored the callback, with the job that applies it (not a duplicate, not
    an unknown request)."""
    return status == 200 and b'"accepted"' in body


@dataclass
class Intake:
    """What the rounds measured, per side ("ours", "baseline")."""

    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"ours": [], "baseline": []})
    busy: dict[str, float] = field(default_factory=lambda: {"ours": 0.0, "baseline": 0.0})
    paces: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "baseline": []})
    drains: list[float] = field(default_factory=list)  # ours only
    reported: set = field(default_factory=set)

    def rate(self, side: str) -> float:
        """Callbacks per second over the time that side's rounds took."""
        return len(self.samples[side]) / self.busy[side]


async def run(folder: Path, scale: float, profile: bool) -> Report:
    """Run benchmark 2 and return its rows."""
    report = Report(2, "Callback intake: 10-call callbacks, 32 at a time")
    total = scaled(TOTAL, scale, least=ROUNDS * 2)
    async with Run(folder / "2-intake", profile) as run:
        sandbox = await run.sandbox()
        slack = await run.fake_slack()
        port = free_port()
        workflow = await run.create_workflow(sandbox, port)
        started = time.monotonic()
        requests = seed(
            run.folder / "app.db",
            workflow,
            range(WARMUP + total),
            calls_each=CALLS_EACH,
            channels=CHANNELS,
        )
        bodies = {r.index: callback_body(r, workflow) for r in requests}
        say(f"  2: seeded {len(requests)} placed requests in {time.monotonic() - started:.1f} s")
        app = await run.app(
            "app", port=port, sandbox=sandbox, slack=slack, database=run.folder / "app.db"
        )
        baseline = await run.callback_baseline(run.folder / "baseline.db")
        await run.wait_for_workflow(app, workflow.name)
        sides = {
            "ours": (maker(app.url, bodies), applied),
            "baseline": (maker(baseline.url, bodies), ok_status),
        }
        measured = await _measure(run, app, SlackWatcher(run, slack), sides, requests, total)
    _rows(report, measured, total)
    return report


async def _measure(
    run: Run,
    app: Proc,
    watcher: SlackWatcher,
    sides: dict[str, tuple[Callable[[int], Prepared], Callable]],
    requests: list[Seeded],
    total: int,
) -> Intake:
    intake = Intake()
    keys = {r.index: (r.channel, r.ts) for r in requests}
    async with session(CONCURRENCY) as http:
        warm = range(WARMUP)
        for make, check in sides.values():
            await closed_loop(http, make, warm, CONCURRENCY, check)
        await watcher.wait_reported({keys[i] for i in warm}, REPORT_TIMEOUT)
        rounds = split(range(WARMUP, WARMUP + total), ROUNDS)
        async with run.profiled(app, "2-intake-app"):
            for index, ours_first in abba(ROUNDS):
                for side in ("ours", "baseline") if ours_first else ("baseline", "ours"):
                    make, check = sides[side]
                    got, seconds = await closed_loop(http, make, rounds[index], CONCURRENCY, check)
                    intake.samples[side] += got
                    intake.busy[side] += seconds
                    intake.paces[side].append(len(got) / seconds)
                    if side == "ours":
                        round_keys = {keys[i] for i in rounds[index]}
                        intake.drains.append(await _drain(watcher, round_keys))
    intake.reported = watcher.reported({keys[i] for i in range(WARMUP, WARMUP + total)})
    return intake


async def _drain(watcher: SlackWatcher, keys: set) -> float:
    """Seconds from the end of a round until Slack has all of it (inf: not in time)."""
    started = time.monotonic()
    done = await watcher.wait_reported(keys, REPORT_TIMEOUT, interval=0.05)
    return time.monotonic() - started if done else float("inf")


def _rows(report: Report, intake: Intake, total: int) -> None:
    ours, base = intake.samples["ours"], intake.samples["baseline"]
    rate, base_rate = intake.rate("ours"), intake.rate("baseline")
    r = ratio(rate, base_rate)
    report.add(
        Row(
            "callbacks/s",
            rate,
            base_rate,
            "/s",
            r,
            f"ratio ≥ {THROUGHPUT_GOAL}",
            r is not None and r >= THROUGHPUT_GOAL,
        )
    )
    for pct in (50, 99):
        mine = 1000 * percentile([s.latency for s in ours], pct)
        theirs = 1000 * percentile([s.latency for s in base], pct)
        report.add(Row(f"callback answer p{pct}", mine, theirs, "ms", ratio(mine, theirs)))
    reported = len(intake.reported)
    report.add(
        Row(
            "callbacks reported to Slack",
            f"{reported:,} / {total:,}",
            goal="all",
            met=reported == total,
        )
    )
    slowest = max(intake.drains)
    report.add(Row("Slack caught up after a round (slowest)", slowest, unit="s"))
    bad = [s for s in ours if not s.ok]
    if bad:
        report.note(f'{len(bad)} callbacks were not answered 200 "accepted": {bad[:3]}')
    paces = {side: " → ".join(f"{p:.0f}" for p in values) for side, values in intake.paces.items()}
    report.note(
        f"{total:,} callbacks per side in {ROUNDS} rounds; callbacks/s round by round, "
        f"ours: {paces['ours']}; baseline: {paces['baseline']}"
    )
    report.note(
        f"after each of the app's rounds ({total // ROUNDS} callbacks) the fake Slack had "
        f"every report within {min(intake.drains):.1f} to {slowest:.1f} s"
    )
