"""`python -m bench`: run the benchmarks and print one Markdown table.

    python -m bench                  # all six, full size (what `make bench` runs)
    python -m bench --only 1,3       # some of them
    python -m bench --scale 0.05     # 5% of the counts, to try things out
    python -m bench --profile        # also sample the app with py-spy (pip install py-spy)

The table goes to stdout (and to bench/out/<time>/results.md with the notes);
progress goes to stderr. The exit status is 0 even when a goal is missed: a
benchmark reports, it does not gate.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import shutil
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

from bench.common import Report, Row, markdown_table, notes_markdown, say, write_text

OUT = Path(__file__).resolve().parent / "out"

# Number → (name, module with `async def run(folder, scale, profile) -> Report`, the
# most seconds it may take). The budgets add up to under 11 minutes; a full run
# usually needs under 5 1/2. Modules are imported only when chosen.
BENCHMARKS: dict[int, tuple[str, str, float]] = {
    1: ("ack latency", "bench.ack", 75.0),
    2: ("callback intake", "bench.intake", 100.0),
    3: ("dispatch", "bench.dispatch", 110.0),
    4: ("Slack pacing", "bench.pacing", 200.0),
    5: ("scale", "bench.scale", 90.0),
    6: ("unauthenticated load", "bench.flood", 75.0),
    7: ("escalation", "bench.escalation", 240.0),
    8: ("campaign", "bench.campaign", 200.0),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with `numbers`: the benchmarks chosen."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark numbers (1-6)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the counts (1.0: the issue's)"
    )
    parser.add_argument("--profile", action="store_true", help="sample the app with py-spy")
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and results")
    args = parser.parse_args(argv)
    args.numbers = [int(n) for n in args.only.split(",") if n.strip()] or sorted(BENCHMARKS)
    if unknown := set(args.numbers) - set(BENCHMARKS):
        parser.error(f"no benchmark numbered {sorted(unknown)}")
    beside = Path(sys.executable).with_name("py-spy")
    if args.profile and not (shutil.which("py-spy") or beside.exists()):
        parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    return args


async def run_all(numbers: list[int], folder: Path, scale_: float, profile: bool) -> list[Report]:
    """Run the chosen benchmarks one after the other (never two at once)."""
    reports = []
    for number in numbers:
        name, module, budget = BENCHMARKS[number]
        say(f"benchmark {number}: {name} …")
        started = time.monotonic()
        report = await _guarded(number, name, module, budget, folder, scale_, profile)
        report.seconds = time.monotonic() - started
        say(f"benchmark {number}: done in {report.seconds:.0f} s")
        reports.append(report)
    return reports


async def _guarded(
    number: int, name: str, module: str, budget: float, folder: Path, scale_: float, profile: bool
) -> Report:
    """Run one benchmark within its time budget; a failure becomes a row saying so,
    so the others still run and the table still prints."""
    try:
        async with asyncio.timeout(budget):
            return await importlib.import_module(module).run(folder, scale_, profile)
    except Exception as exc:  # reported in the table, with the logs' folder
        what = (
            f"did not finish within {budget:.0f} s" if isinstance(exc, TimeoutError) else _gist(exc)
        )
        say(f"benchmark {number} failed: {what}\n{traceback.format_exc()}")
        report = Report(number, name)
        report.add(Row("ran to the end", "no", goal="yes", met=False))
        report.note(f"failed: {what}; see the logs under {folder}")
        return report


def _gist(exc: BaseException) -> str:
    """One line for the notes: the exception's first line and the error that caused it
    (a server's failure comes with the tail of its log)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
    cause = next((line for line in reversed(lines) if "Error" in line), "")
    return f"{type(exc).__name__}: {lines[0]}" + (f" … {cause}" if cause != lines[0] else "")


def header(scale_: float, seconds: float) -> str:
    """What the table was measured on."""
    return (
        f"`make bench` on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now().strftime('%Y-%m-%d %H:%M')}; scale {scale_:g}; "
        f"wall time {seconds:.0f} s."
    )


def main(argv: list[str] | None = None) -> None:
    """Run, print the table, keep the results and logs."""
    args = parse_args(argv)
    # Absolute: the servers run in folders of their own and are handed paths in this one.
    folder = (args.out or OUT / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    say(f"logs and results: {folder}")
    started = time.monotonic()
    reports = asyncio.run(run_all(args.numbers, folder, args.scale, args.profile))
    seconds = time.monotonic() - started
    table = markdown_table(reports)
    text = f"{header(args.scale, seconds)}\n\n{table}\n\n{notes_markdown(reports)}"
    write_text(folder / "results.md", text)
    print(header(args.scale, seconds))
    print()
    print(table)
    print()
    print(notes_markdown(reports))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
