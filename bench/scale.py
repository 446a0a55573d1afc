"""Benchmark 5: does the app stay as fast and as small with 100,000 stored calls as
with 1,000?

Two apps run side by side, each its own process with its own database, seeded
before it starts: 1,000 calls (100 completed requests of 10 calls) and 100,000
calls (9,500 completed requests of 10, plus one campaign of 5,000), each request
with its callback logged and its Slack message. Rounds alternate between them
(ABBA); each round sends `/robocall status <id>` for random stored requests (half
by our request id, half by Intron's batch id), 10 at a time, then opens the Home
tab for new users, 4 at a time. Status latency is from sending the command to
the ack (which carries the answer); Home tab latency is from sending the
`app_home_opened` event to the fake Slack receiving the `views.publish`.
RSS is read from /proc: the peak (VmHWM) over the app's whole life.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import Report, Row, abba, percentile, ratio, robust_check, say, scaled, split
from bench.load import Prepared, Sample, closed_loop, session
from bench.procs import Proc, free_port
from bench.seed import Seeded, seed
from bench.stack import SIGNING_SECRET, Run
from bot.providers.intron.models import Workflow
from tests.support.slack_requests import app_home_opened, event_callback, sign, slash_command

SMALL = 1_000  # stored calls
LARGE = 100_000
CALLS_EACH = 10
CAMPAIGN = 5_000  # calls in the one big request of the large database
CHANNELS = 100
STATUS_TOTAL = 1000  # per side
STATUS_CONCURRENCY = 10
HOME_TOTAL = 500  # per side: p99 is then the 5th slowest, steadier than the 2nd
HOME_CONCURRENCY = 4
ROUNDS = 10
WARMUP = 50
RSS_GOAL_MB = 150.0
P99_GOAL = 1.5
PUBLISH_TIMEOUT = 5.0  # seconds to wait for one Home tab's views.publish
MAX_MISSING = 3  # Home tabs never published before we stop trying on that app


def seed_database(path: Path, workflow: Workflow, calls: int) -> list[Seeded]:
    """Completed requests holding `calls` calls; above CAMPAIGN·2, one is a campaign."""
    campaign = CAMPAIGN if calls >= 2 * CAMPAIGN else 0
    requests = seed(
        path,
        workflow,
        range((calls - campaign) // CALLS_EACH),
        calls_each=CALLS_EACH,
        channels=CHANNELS,
        completed=True,
    )
    if campaign:
        big = range(len(requests), len(requests) + 1)
        requests += seed(
            path, workflow, big, calls_each=campaign, channels=CHANNELS, completed=True
        )
    return requests


def status_maker(url: str, requests: list[Seeded], seed_: int) -> Callable[[int], Prepared]:
    """`/robocall status` for a random stored request (by our id or Intron's batch id)."""
    chooser = random.Random(seed_)

    def make(index: int) -> Prepared:
        request = chooser.choice(requests)
        ref = request.id if index % 2 else request.provider_ref
        body, content_type = slash_command(f"status {ref}", user_id=request.requested_by)
        headers = sign(SIGNING_SECRET, body, content_type=content_type)
        return Prepared("status", url + "/slack/events", body, headers)

    return make


def found(request: Prepared, status: int, body: bytes) -> bool:
    """The ack shows a stored request."""
    return status == 200 and b"Request" in body and b"No request" not in body


async def run(folder: Path, scale: float, profile: bool) -> Report:
    """Run benchmark 5 and return its rows."""
    report = Report(5, "Scale: /robocall status and the Home tab, 1,000 vs 100,000 calls")
    large = max(SMALL, scaled(LARGE, scale))
    status_total = scaled(STATUS_TOTAL, scale, least=ROUNDS * 2)
    home_total = scaled(HOME_TOTAL, scale, least=ROUNDS)
    async with Run(folder / "5-scale", profile) as run:
        sandbox = await run.sandbox()
        slack = await run.fake_slack()
        ports = {"small": free_port(), "large": free_port()}
        workflow = await run.create_workflow(sandbox, ports["large"])
        stored: dict[str, list[Seeded]] = {}
        for name, calls in (("small", SMALL), ("large", large)):
            started = time.monotonic()
            stored[name] = seed_database(run.folder / f"{name}.db", workflow, calls)
            say(f"  5: seeded {calls:,} calls in {time.monotonic() - started:.1f} s")
        apps = {
            name: await run.app(
                name, port=port, sandbox=sandbox, slack=slack, database=run.folder / f"{name}.db"
            )
            for name, port in ports.items()
        }
        for app in apps.values():
            await run.wait_for_workflow(app, workflow.name)
        started_mb = {name: app.memory_mb()[0] for name, app in apps.items()}
        status, homes = await _measure(run, apps, slack, stored, status_total, home_total)
        campaign = await _campaign_status(run, apps["large"], stored["large"])
        memory = {name: app.memory_mb() for name, app in apps.items()}
        if any(tabs.missing for tabs in homes.values()):
            report.note(f"Home tabs never published; the app's last error: {_last_error(apps)}")
    _rows(report, status, homes, memory, campaign)
    report.note(
        f"{status_total:,} status commands and {home_total} Home tabs per side in {ROUNDS} "
        f"rounds; databases of {SMALL:,} and {large:,} calls "
        f"({len(stored['small']):,} and {len(stored['large']):,} requests); RSS just after "
        f"start {started_mb['small']:.0f} MB (1k) and {started_mb['large']:.0f} MB "
        f"({large // 1000}k)"
    )
    return report


def _last_error(apps: dict[str, Proc]) -> str:
    """The last line naming an error in the apps' logs, to say why something failed."""
    for app in apps.values():
        for line in reversed(app.log_tail(200).splitlines()):
            if "Error" in line and not line.startswith(" "):
                return f"`{line.strip()}` ({app.name}.log)"
    return "none logged"


async def _measure(
    run: Run,
    apps: dict[str, Proc],
    slack: Proc,
    stored: dict[str, list[Seeded]],
    status_total: int,
    home_total: int,
) -> tuple[dict[str, list[list[Sample]]], dict[str, HomeTabs]]:
    makers = {name: status_maker(app.url, stored[name], seed_=5) for name, app in apps.items()}
    status: dict[str, list[list[Sample]]] = {name: [] for name in apps}
    status_rounds = split(range(WARMUP, WARMUP + status_total), ROUNDS)
    home_rounds = split(range(WARMUP, WARMUP + home_total), ROUNDS)
    async with session(STATUS_CONCURRENCY) as http:
        homes = {name: HomeTabs(run, http, app, slack, name) for name, app in apps.items()}
        for name in apps:
            await closed_loop(http, makers[name], range(WARMUP), STATUS_CONCURRENCY, found)
            await homes[name].open(range(HOME_CONCURRENCY * 2))
            homes[name].rounds.clear()
        async with run.profiled(apps["large"], "5-scale-large"):
            for index, large_first in abba(ROUNDS):
                for name in ("large", "small") if large_first else ("small", "large"):
                    got, _ = await closed_loop(
                        http, makers[name], status_rounds[index], STATUS_CONCURRENCY, found
                    )
                    status[name].append(got)
                    await homes[name].open(home_rounds[index])
    return status, homes


@dataclass
class HomeTabs:
    """Opens the Home tab on one app for new users and times each until its
    `views.publish`; stops trying after MAX_MISSING tabs that never came."""

    run: Run
    http: aiohttp.ClientSession
    app: Proc
    slack: Proc
    name: str
    rounds: list[list[float]] = field(default_factory=list)  # seconds, per `open`
    missing: int = 0

    @property
    def latencies(self) -> list[float]:
        """Every Home tab's seconds, all rounds together."""
        return [seconds for values in self.rounds for seconds in values]

    async def open(self, indexes: range) -> None:
        """One new user per index, HOME_CONCURRENCY at a time: one round."""
        queue = list(reversed(indexes))
        self.rounds.append([])

        async def worker() -> None:
            while queue and self.missing < MAX_MISSING:
                await self._one(f"UHOME{self.name.upper()}{queue.pop():06d}")

        await asyncio.gather(*(worker() for _ in range(HOME_CONCURRENCY)))

    async def _one(self, user: str) -> None:
        body, content_type = event_callback(app_home_opened(user))
        headers = sign(SIGNING_SECRET, body, content_type=content_type)
        sent = time.monotonic()
        try:
            async with self.http.post(
                self.app.url + "/slack/events", data=body, headers=headers
            ) as ack:
                await ack.read()
        except (aiohttp.ClientError, TimeoutError):
            self.missing += 1
            return
        at = await self.run.published_at(self.slack, user, timeout=PUBLISH_TIMEOUT)
        if at is None:
            self.missing += 1
        else:
            self.rounds[-1].append(at - sent)


async def _campaign_status(run: Run, app: Proc, requests: list[Seeded]) -> list[float]:
    """Seconds for `/robocall status` of the largest request, one at a time."""
    biggest = max(requests, key=lambda r: len(r.numbers))
    if len(biggest.numbers) <= CALLS_EACH:
        return []
    latencies = []
    for _ in range(20):
        started = time.monotonic()
        await run.command(app, f"status {biggest.id}")
        latencies.append(time.monotonic() - started)
    return latencies


def _latency_rows(
    report: Report, label: str, large_rounds: list[list[float]], small_rounds: list[list[float]]
) -> None:
    """p50 (for context), p99 (the goal) and the median of the rounds' p99 of one figure,
    large database against small."""
    large = [v for r in large_rounds for v in r]
    small = [v for r in small_rounds for v in r]
    for pct in (50, 99):
        mine, base = 1000 * percentile(large, pct), 1000 * percentile(small, pct)
        r = ratio(mine, base)
        goal = pct == 99
        report.add(
            Row(
                f"{label} p{pct} (100k vs 1k calls)",
                mine,
                base,
                "ms",
                r,
                f"ratio ≤ {P99_GOAL}" if goal else "—",
                (r is not None and r <= P99_GOAL) if goal else None,
            )
        )
    robust_check(report, label.rstrip(","), large_rounds, small_rounds, P99_GOAL)


def _rows(
    report: Report,
    status: dict[str, list[list[Sample]]],
    home: dict[str, HomeTabs],
    memory: dict[str, tuple[float, float]],
    campaign: list[float],
) -> None:
    (large_now, large_peak), (small_now, small_peak) = memory["large"], memory["small"]
    report.add(
        Row(
            "peak RSS (ours: 100k calls, baseline: 1k)",
            large_peak,
            small_peak,
            "MB",
            ratio(large_peak, small_peak),
            f"≤ {RSS_GOAL_MB:.0f} MB",
            large_peak <= RSS_GOAL_MB and small_peak <= RSS_GOAL_MB,
        )
    )
    seconds = {name: [[s.latency for s in r] for r in rounds] for name, rounds in status.items()}
    _latency_rows(report, "`/robocall status`", seconds["large"], seconds["small"])
    _latency_rows(
        report, "Home tab, event → views.publish,", home["large"].rounds, home["small"].rounds
    )
    missing = {name: tabs.missing for name, tabs in home.items()}
    report.add(
        Row(
            "Home tabs never published",
            missing["large"],
            missing["small"],
            goal="0",
            met=not any(missing.values()),
        )
    )
    if campaign:
        report.add(
            Row(
                f"`/robocall status` of the {CAMPAIGN:,}-call request, p99",
                1000 * percentile(campaign, 99),
                unit="ms",
            )
        )
    wrong = {name: sum(1 for r in rounds for s in r if not s.ok) for name, rounds in status.items()}
    if any(wrong.values()):
        report.note(f"status answers that did not show the request: {wrong}")
    report.note(f"RSS at the end: {large_now:.0f} MB (100k), {small_now:.0f} MB (1k)")
    if home["large"].latencies and home["small"].latencies:
        slowest = {name: 1000 * max(tabs.latencies) for name, tabs in home.items()}
        report.note(
            f"slowest Home tab: {slowest['large']:.0f} ms (100k), {slowest['small']:.0f} ms (1k)"
        )
