"""Benchmark 6: unauthenticated load. While 1,100 idle connections (a third of them
sending half a request) and four 100 MB uploads to `/slack/events` (unsigned, two
declaring their length, two chunked, each streamed at 2 MiB/s) are under way,
does the app still answer `/healthz` and a signed `/robocall help` within 1 s, and
does its web process stay under 150 MB?

The web process is started with the soft open-files limit most systems default
to, 1,024 (what `python -m bot serve` raises it from). The attack keeps going for
the whole flood: a connection the server closes is opened again a second later,
an upload the server refuses starts again a second later. `/healthz` (every
0.1 s) and `/robocall help` (every 0.2 s) each open a new connection, as a client
arriving during the attack would. The baseline is the same probes on the quiet
app just before the flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import Report, Row, percentile, ratio, say, scaled
from bench.load import Prepared, Sample, send
from bench.procs import HOST, Proc, free_port
from bench.stack import SIGNING_SECRET, AppProc, Run
from bot.web.connections import REQUEST_TIMEOUT
from bot.web.slack_events import MAX_SLACK_BYTES
from tests.support.slack_requests import sign, slash_command

IDLE = 1100  # idle connections held open
HALF_EVERY = 3  # one idle connection in 3 sends half a request head
UPLOADS = 4  # two with Content-Length, two chunked
UPLOAD_BYTES = 100 * 1024 * 1024
UPLOAD_CHUNK = 64 * 1024
UPLOAD_RATE = 2 * 1024 * 1024  # bytes per second, per upload
REOPEN_AFTER = 1.0  # seconds before the attacker opens again what the server closed
QUIET_SECONDS = 5.0
FLOOD_SECONDS = 30.0  # three request deadlines
HEALTHZ_EVERY = 0.1
HELP_EVERY = 0.2
PROBE_TIMEOUT = 5.0
LATENCY_GOAL = 1.0  # seconds, every probe
RSS_GOAL = 150.0  # MB, the web process's peak
START_NOFILE = 1024  # the soft open-files limit the web process starts with

HALF_HEAD = b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica"


@dataclass
class Flood:
    """What the attacker saw, and what the web process used meanwhile."""

    opened: int = 0
    open_now: int = 0
    most_open: int = 0
    connect_errors: int = 0
    answered: int = 0  # idle connections the server sent anything to
    lifetimes: list[float] = field(default_factory=list)  # idle connections it closed
    open_since: dict[int, float] = field(default_factory=dict)  # those still open
    oldest_open: float = 0.0  # seconds the oldest still open had been, when it ended
    uploads: list[Upload] = field(default_factory=list)
    unfinished: list[tuple[bool, int]] = field(default_factory=list)  # (declared, sent)
    rss: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Upload:
    declared: bool  # Content-Length (True) or chunked
    status: int | None  # None: the connection was closed with no answer
    sent: int  # bytes sent before the answer or the close
    seconds: float


async def run(folder: Path, scale: float, profile: bool) -> Report:
    """Run benchmark 6 and return its rows."""
    report = Report(6, "Unauthenticated load: idle connections and 100 MB uploads")
    idle = scaled(IDLE, scale, least=50)
    flood_seconds = max(3 * REQUEST_TIMEOUT / 2, FLOOD_SECONDS * scale)
    _own_open_files(idle)
    async with Run(folder / "6-flood", profile) as run:
        sandbox = await run.sandbox()
        slack = await run.fake_slack()
        port = free_port()
        with _open_files_limit(START_NOFILE):  # inherited by the app's processes
            app = await run.app(
                "app", port=port, sandbox=sandbox, slack=slack, database=run.folder / "app.db"
            )
        limits = _open_files(app.pid)
        async with _probes() as http:
            quiet = await _probe(http, app, QUIET_SECONDS)
            rss_before = Proc.memory_mb(app)[0]
            calls_before = len((await run.slack_records(slack))["calls"])
            flood = Flood()
            async with run.profiled(app, "6-flood-app"):
                loud = await _under_flood(http, app, flood, idle, flood_seconds)
            calls = (await run.slack_records(slack, calls_before))["calls"]
        peak = Proc.memory_mb(app)[1]
        after = (await run.http.get(app.url + "/healthz")).status_code
    _rows(report, quiet, loud, flood, rss_before, peak, len(calls))
    halves = len(range(0, idle, HALF_EVERY))
    report.note(
        f"{idle:,} idle connections ({halves:,} sending half a request head) and "
        f"{UPLOADS} uploads of {UPLOAD_BYTES // 2**20} MB at {UPLOAD_RATE // 2**20} MiB/s for "
        f"{flood_seconds:.0f} s; what the server closed was opened again {REOPEN_AFTER:.0f} s "
        f"later: {flood.opened:,} connections in all, at most {flood.most_open:,} open at once "
        f"(client side), {flood.connect_errors} refused at connect"
    )
    report.note(
        f"the web process started with {START_NOFILE:,} open files allowed and raised it to "
        f"{limits}; most file descriptors it had open: {max(flood.fds, default=0):,}; its RSS "
        f"before the flood {rss_before:.0f} MB, during it {min(flood.rss, default=0):.0f} to "
        f"{max(flood.rss, default=0):.0f} MB; `/healthz` after the flood: {after}"
    )
    return report


# ---------------------------------------------------------------- the attacker


async def _idle_connection(port: int, half: bool, flood: Flood) -> None:
    """Open a connection, send nothing (or half a request head), wait for the server to
    close it; again, until cancelled."""
    while True:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            flood.connect_errors += 1
            await asyncio.sleep(REOPEN_AFTER)
            continue
        opened = time.monotonic()
        flood.opened += 1
        flood.open_since[id(writer)] = opened
        flood.open_now += 1
        flood.most_open = max(flood.most_open, flood.open_now)
        try:
            if half:
                writer.write(HALF_HEAD)
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    flood.answered += bool(data)
            flood.lifetimes.append(time.monotonic() - opened)
        finally:
            flood.open_now -= 1
            del flood.open_since[id(writer)]
            writer.close()
        await asyncio.sleep(REOPEN_AFTER)


async def _upload(port: int, declared: bool, flood: Flood) -> None:
    """Stream a 100 MB unsigned body to /slack/events until the server answers or closes;
    again, until cancelled."""
    framing = f"Content-Length: {UPLOAD_BYTES}" if declared else "Transfer-Encoding: chunked"
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
    ).encode()
    piece = b"x" * UPLOAD_CHUNK
    chunk = piece if declared else b"%x\r\n%s\r\n" % (UPLOAD_CHUNK, piece)
    while True:
        reader, writer = await asyncio.open_connection(HOST, port)
        started = time.monotonic()
        answer = asyncio.create_task(_status(reader))
        sent = 0
        try:
            writer.write(head)
            with contextlib.suppress(ConnectionError):
                while sent < UPLOAD_BYTES and not answer.done():
                    writer.write(chunk)
                    await writer.drain()
                    sent += UPLOAD_CHUNK
                    await asyncio.sleep(UPLOAD_CHUNK / UPLOAD_RATE)
            try:
                status = await asyncio.wait_for(answer, 5.0)
            except TimeoutError:
                status = None
            flood.uploads.append(Upload(declared, status, sent, time.monotonic() - started))
        except asyncio.CancelledError:
            if not answer.done():
                flood.unfinished.append((declared, sent))
            raise
        finally:
            answer.cancel()
            writer.close()
        await asyncio.sleep(REOPEN_AFTER)


async def _status(reader: asyncio.StreamReader) -> int | None:
    """The status of the answer on `reader`, or None if it closes first."""
    try:
        line = await reader.readuntil(b"\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    return int(line.split()[1])


async def _watch(proc: Proc, flood: Flood) -> None:
    """Sample the web process's RSS and open file descriptors, until cancelled."""
    while True:
        flood.rss.append(Proc.memory_mb(proc)[0])  # the web process alone
        with contextlib.suppress(OSError):
            flood.fds.append(len(os.listdir(f"/proc/{proc.pid}/fd")))
        await asyncio.sleep(0.25)


# ---------------------------------------------------------------- the probes


def _probes() -> aiohttp.ClientSession:
    """A session opening a new connection for every request, never using a proxy."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, limit=0),
        timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
        trust_env=False,
    )


def _help(url: str) -> Prepared:
    body, content_type = slash_command("help", channel_id="CFLOOD", user_id="UFLOOD")
    headers = sign(SIGNING_SECRET, body, content_type=content_type)
    return Prepared("help", url + "/slack/events", body, headers)


def _answer_ok(request: Prepared, status: int, body: bytes) -> bool:
    expected = b"/robocall help" if request.kind == "help" else b'"ok":true'
    return status == 200 and expected in body


async def _healthz(http: aiohttp.ClientSession, url: str) -> Sample:
    sent = time.monotonic()
    try:
        async with http.get(url + "/healthz") as answer:
            body, status = await answer.read(), answer.status
    except (aiohttp.ClientError, TimeoutError):
        return Sample("healthz", sent, time.monotonic() - sent, 0, False)
    ok = _answer_ok(Prepared("healthz", url, b"", {}), status, body)
    return Sample("healthz", sent, time.monotonic() - sent, status, ok)


async def _every(seconds: float, until: float, probe: Callable[[], Awaitable[Sample]]):
    samples: list[Sample] = []
    while time.monotonic() < until:
        sample = await probe()
        samples.append(sample)
        await asyncio.sleep(max(0.0, seconds - sample.latency))
    return samples


async def _probe(http: aiohttp.ClientSession, app: AppProc, seconds: float) -> list[Sample]:
    """`/healthz` and `/robocall help`, each on its own schedule, for `seconds`."""
    until = time.monotonic() + seconds
    healthz, help_ = await asyncio.gather(
        _every(HEALTHZ_EVERY, until, lambda: _healthz(http, app.url)),
        _every(HELP_EVERY, until, lambda: send(http, _help(app.url), _answer_ok)),
    )
    return healthz + help_


async def _under_flood(
    http: aiohttp.ClientSession, app: AppProc, flood: Flood, idle: int, seconds: float
) -> list[Sample]:
    tasks = [
        asyncio.create_task(_idle_connection(app.port, i % HALF_EVERY == 0, flood))
        for i in range(idle)
    ]
    tasks += [asyncio.create_task(_upload(app.port, i % 2 == 0, flood)) for i in range(UPLOADS)]
    tasks.append(asyncio.create_task(_watch(app, flood)))
    try:
        await asyncio.sleep(1.0)  # the flood in place before the first probe
        say(f"  6: flood under way, {flood.open_now:,} idle connections open")
        return await _probe(http, app, seconds)
    finally:
        now = time.monotonic()
        flood.oldest_open = max((now - t for t in flood.open_since.values()), default=0.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- open files


def _own_open_files(idle: int) -> None:
    """Make room in this process for the connections it opens."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = idle + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted * 2, hard), hard))


@contextlib.contextmanager
def _open_files_limit(soft: int) -> Iterator[None]:
    """This process's soft open-files limit at `soft` for a while, so the processes it
    starts meanwhile inherit it."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, old[1]), old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def _open_files(pid: int) -> str:
    """The process's soft open-files limit, from /proc."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                return f"{int(line.split()[3]):,}"
    return "?"


# ---------------------------------------------------------------- the table


def _rows(
    report: Report,
    quiet: list[Sample],
    loud: list[Sample],
    flood: Flood,
    rss_before: float,
    peak: float,
    slack_calls: int,
) -> None:
    for kind, label in (("healthz", "`/healthz`"), ("help", "signed `/robocall help`")):
        ours = [s for s in loud if s.kind == kind]
        base = [s for s in quiet if s.kind == kind]
        for pct in (50, 99):
            mine = 1000 * percentile([s.latency for s in ours], pct)
            theirs = 1000 * percentile([s.latency for s in base], pct)
            report.add(
                Row(f"{label} p{pct} (flood vs quiet)", mine, theirs, "ms", ratio(mine, theirs))
            )
        slowest = max(s.latency for s in ours)
        bad = [s for s in ours if not s.ok]
        report.add(
            Row(
                f"{label} slowest, during the flood",
                1000 * slowest,
                1000 * max(s.latency for s in base),
                "ms",
                goal=f"≤ {LATENCY_GOAL * 1000:.0f} ms, all answered",
                met=slowest <= LATENCY_GOAL and not bad,
            )
        )
        report.note(
            f"{label}: {len(ours)} probes during the flood, {len(bad)} not answered right"
            + (f" (statuses {sorted({s.status for s in bad})})" if bad else "")
            + f"; {len(base)} before it"
        )
    report.add(
        Row(
            "web process peak RSS (during the flood vs before it)",
            peak,
            rss_before,
            "MB",
            ratio(peak, rss_before),
            f"< {RSS_GOAL:.0f} MB",
            peak < RSS_GOAL,
        )
    )
    deadline = [t for t in flood.lifetimes if t >= REQUEST_TIMEOUT - 0.5]
    longest = max([*flood.lifetimes, flood.oldest_open])
    report.add(
        Row(
            "idle connections closed by the server",
            f"{len(flood.lifetimes):,} ({len(deadline):,} at the deadline, "
            f"{len(flood.lifetimes) - len(deadline):,} to make room)",
            goal="—",
        )
    )
    report.add(
        Row(
            "longest an idle connection stayed open (closed, or still open at the end)",
            longest,
            unit="s",
            goal=f"≤ {REQUEST_TIMEOUT + 1:.0f} s, none answered",
            met=longest <= REQUEST_TIMEOUT + 1 and flood.answered == 0,
        )
    )
    for declared, label in ((True, "with Content-Length"), (False, "chunked")):
        ups = [u for u in flood.uploads if u.declared == declared]
        # Unanswered at the end with well over the limit sent: the server should have
        # refused it by then (the sockets' buffers hold a MiB or two).
        unanswered = sum(
            1 for d, sent in flood.unfinished if d == declared and sent > MAX_SLACK_BYTES + 2**21
        )
        refused = [u for u in ups if u.status == 413]
        most = max((u.sent for u in ups), default=0)
        within = (
            f", each within {max(u.seconds for u in refused):.2f} s, "
            f"after at most {most / 2**20:.2f} MiB sent"
            if refused
            else ""
        )
        report.add(
            Row(
                f"100 MB uploads {label}: answered 413",
                f"{len(refused)} of {len(ups) + unanswered}{within}",
                goal="all 413, none read to the end",
                met=bool(ups) and len(refused) == len(ups) + unanswered,
            )
        )
    report.add(
        Row("Slack API calls made during the flood", slack_calls, goal="0", met=not slack_calls)
    )
    if flood.unfinished:
        report.note(
            f"{len(flood.unfinished)} uploads were under way, unanswered, when the flood ended, "
            f"after {', '.join(f'{sent / 2**20:.2f}' for _, sent in flood.unfinished)} MiB "
            f"(more than {(MAX_SLACK_BYTES + 2**21) / 2**20:.0f} MiB counts as not refused)"
        )
    report.note(f"the limit on /slack/events bodies: {MAX_SLACK_BYTES:,} bytes")
