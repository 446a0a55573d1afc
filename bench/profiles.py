"""Read a py-spy profile written by `python -m bench --profile` (collapsed stacks, one
`frame;frame;… count` per line) and list where the time went:

    python -m bench.profiles bench/out/<run>/1-ack/profile-1-ack-app.txt [--top 25]
    python -m bench.profiles FILE --under "bot/"   # only frames from the project's code
    python -m bench.profiles FILE --buckets "acks=slack_events,callbacks=intron_callback"

"self" is time in the frame itself; "total" is time with it anywhere on the stack
(counted once per sample even when a frame recurses).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """Each sampled stack (outermost frame first) and how many samples it had."""
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def tally(
    stacks: list[tuple[list[str], int]], under: str | None
) -> tuple[Counter[str], Counter[str], int]:
    """(self samples, total samples, all samples) per frame, optionally only frames
    whose text contains `under` (a frame's self time then goes to the innermost
    such frame: "time spent in or below this project function")."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks:
        samples += count
        kept = [f for f in frames if under is None or under in f]
        if not kept:
            continue
        own[kept[-1]] += count
        for frame in set(kept):
            total[frame] += count
    return own, total, samples


def buckets(stacks: list[tuple[list[str], int]], spec: str) -> str:
    """Share of samples per bucket: `name=text,...`; a sample goes to the first bucket
    (in the order given) with `text` anywhere in its stack, else to "other"."""
    rules = [part.split("=", 1) for part in spec.split(",") if "=" in part]
    counts: Counter[str] = Counter()
    for frames, count in stacks:
        stack = ";".join(frames)
        name = next((name for name, text in rules if text in stack), "other")
        counts[name] += count
    samples = max(sum(counts.values()), 1)
    return "\n".join(f"  {100.0 * n / samples:5.1f}%  {name}" for name, n in counts.most_common())


def report(path: Path, top: int, under: str | None) -> str:
    """The top frames by self and by total time, as text."""
    own, total, samples = tally(read_stacks(path), under)
    lines = [f"{path}: {samples} samples" + (f", frames containing {under!r}" if under else "")]
    for title, counter in (("self", own), ("total", total)):
        lines.append(f"\nby {title} time:")
        for frame, count in counter.most_common(top):
            lines.append(f"  {100.0 * count / max(samples, 1):5.1f}%  {frame}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the summary of one profile."""
    parser = argparse.ArgumentParser(prog="python -m bench.profiles")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--under", default=None, help="keep only frames containing this text")
    parser.add_argument("--buckets", default=None, help="name=text,... (see above)")
    args = parser.parse_args(argv)
    if args.buckets:
        print(buckets(read_stacks(args.profile), args.buckets))
    else:
        print(report(args.profile, args.top, args.under))


if __name__ == "__main__":
    main()
