"""What every benchmark shares: the result rows and their table, statistics, rounds."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NO_GOAL = "—"


@dataclass
class Row:
    """One line of the results table.

    `ours` and `baseline` are numbers (formatted with `unit`) or already-written text;
    `ratio` is ours / baseline where that comparison means something; `met` is None
    for a figure that has no goal of its own (shown for context).
    """

    figure: str
    ours: float | str | None
    baseline: float | str | None = None
    unit: str = ""
    ratio: float | None = None
    goal: str = NO_GOAL
    met: bool | None = None


@dataclass
class Report:
    """What one benchmark hands back: its rows, and notes printed under the table."""

    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, row: Row) -> Row:
        """Append `row` (its figure prefixed with the benchmark's number) and return it."""
        row.figure = f"{self.number}. {row.figure}"
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        """Keep `text` for the notes under the table, and say it now."""
        self.notes.append(text)
        say(f"  {self.number}: {text}")


def say(text: str) -> None:
    """Progress on stderr, so stdout stays the clean table."""
    print(text, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (the value that `pct`% of samples do not exceed)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def round_figures(rounds: Sequence[Sequence[float]], pct: float) -> list[float]:
    """The `pct` percentile of each round's values (empty rounds left out)."""
    return [percentile(values, pct) for values in rounds if len(values)]


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def robust_check(
    report: Report,
    label: str,
    ours: Sequence[Sequence[float]],
    base: Sequence[Sequence[float]],
    goal: float,
    unit_scale: float = 1000.0,
) -> None:
    """Add a row with the median over rounds of each round's p99 (ours against the
    baseline), which one slow moment of the machine cannot move, and note each round's
    p99. Say so when it and the pooled p99 (the goal's figure) disagree on the goal."""
    mine, theirs = round_figures(ours, 99), round_figures(base, 99)
    robust = ratio(median(mine), median(theirs))
    report.add(
        Row(
            f"{label} p99, median of the rounds",
            unit_scale * median(mine),
            unit_scale * median(theirs),
            "ms",
            robust,
        )
    )
    listed = {
        name: " → ".join(f"{unit_scale * v:.0f}" for v in values)
        for name, values in (("ours", mine), ("baseline", theirs))
    }
    report.note(
        f"{label} p99 round by round (ms), ours: {listed['ours']}; baseline: {listed['baseline']}"
    )
    pooled = ratio(
        percentile([v for r in ours for v in r], 99), percentile([v for r in base for v in r], 99)
    )
    if robust is not None and pooled is not None and (robust <= goal) != (pooled <= goal):
        report.note(
            f"{label}: the pooled p99 (ratio {pooled:.2f}) and the median round "
            f"({robust:.2f}) disagree on the goal, so the verdict rests on a few slow "
            "rounds (see above): a noisy moment, or a tail of the app's own; run again "
            "before trusting it"
        )


def scaled(count: int, scale: float, least: int = 1) -> int:
    """`count` times `scale`, rounded, never below `least` (small runs while developing)."""
    return max(least, round(count * scale))


def abba(rounds: int) -> Iterator[tuple[int, bool]]:
    """(round, ours_first) for each round: ours-baseline, baseline-ours, ... so drift in
    the machine's load over the run falls on both sides alike."""
    for index in range(rounds):
        yield index, index % 2 == 0


def split(items: Sequence, parts: int) -> list[Sequence]:
    """`items` cut into `parts` consecutive slices of nearly equal size."""
    size, extra = divmod(len(items), parts)
    slices, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        slices.append(items[start:end])
        start = end
    return [s for s in slices if len(s)]


def ratio(ours: float, baseline: float) -> float | None:
    """ours / baseline, or None when the baseline is zero or missing."""
    if not baseline or math.isnan(baseline) or math.isnan(ours):
        return None
    return ours / baseline


# ---------------------------------------------------------------- the table

HEADER = ("figure", "ours", "baseline", "ratio", "goal", "met?")


def _value(value: float | str | None, unit: str) -> str:
    if value is None:
        return NO_GOAL
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    if float(value).is_integer() or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(met: bool | None) -> str:
    return NO_GOAL if met is None else ("yes" if met else "**NO**")


def markdown_table(reports: Sequence[Report]) -> str:
    """Every report's rows as one Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for report in reports:
        for row in report.rows:
            cells = (
                row.figure,
                _value(row.ours, row.unit),
                _value(row.baseline, row.unit),
                NO_GOAL if row.ratio is None else f"{row.ratio:.2f}",
                row.goal,
                _met(row.met),
            )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes_markdown(reports: Sequence[Report]) -> str:
    """The notes of every report, as a Markdown list under a heading per benchmark."""
    parts = []
    for report in reports:
        parts.append(f"**{report.number}. {report.title}** ({report.seconds:.0f} s)")
        parts += [f"- {note}" for note in report.notes] or ["- (no notes)"]
        parts.append("")
    return "\n".join(parts)


def write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` (creating folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
