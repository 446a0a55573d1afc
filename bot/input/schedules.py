"""When a scheduled request is to be dialled, as people type it: `at=` in `/robocall call`.

The forms read:

- ISO 8601 with an offset: `2026-12-02T09:00+01:00`, `2026-12-02T08:00Z` (no time zone
  needed);
- local forms, in the requester's IANA time zone (`Europe/London`): `09:00` (today; refused
  once passed, suggesting `tomorrow 09:00`), `today 09:00`, `tomorrow 09:00`, and
  `2026-12-02 09:00` (or `2026-12-02T09:00`, an ISO time without an offset).

A local time that does not exist (the hour skipped when clocks go forward) is refused,
naming the first time that does; one that occurs twice (clocks going back) is the first
of the two. Every time is returned as an aware UTC datetime, and `check` refuses the
past (more than `GRACE` ago) and more than `MAX_AHEAD` ahead, naming the value and what
would be right.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.text import quoted

MAX_AHEAD = timedelta(days=30)
GRACE = timedelta(minutes=1)  # a time this little in the past is "now"
EXAMPLES = "at=2026-12-02T09:00+01:00, at=09:00 or at=tomorrow 09:00"

_CLOCK = r"(?P<hour>\d{1,2}):(?P<minute>\d{2})"
_DATE = r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
_LOCAL = [
    re.compile(rf"{_CLOCK}"),
    re.compile(rf"(?P<word>today|tomorrow)\s+{_CLOCK}", re.IGNORECASE),
    re.compile(rf"{_DATE}[T\s]+{_CLOCK}"),
]
_OFFSET = re.compile(r"(Z|[+-]\d{2}(:?\d{2})?)$", re.IGNORECASE)


class ScheduleError(ValueError):
    """A time that cannot be used, in words naming it and what would be right."""


class NeedsTimeZone(ScheduleError):
    """A local time, but the requester's time zone is not known."""


def _is_absolute(text: str) -> bool:
    return "-" in text[:10] and bool(_OFFSET.search(text)) and len(text) > 10


def is_local(text: str) -> bool:
    """True when `text` is read in a time zone (and so needs the requester's)."""
    text = text.strip()
    return not _is_absolute(text) and any(p.fullmatch(text) for p in _LOCAL)


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone `name`, or None when it is unset or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse(text: str, tz: str | None = None, *, now: datetime | None = None) -> datetime:
    """`text` as an aware UTC datetime, checked (`check`); ScheduleError saying why not,
    NeedsTimeZone for a local form when `tz` is unknown."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    typed = " ".join(text.split())
    shown = quoted(f"at={typed}")
    if not typed:
        raise ScheduleError(f"at= has no time; write e.g. {EXAMPLES}")
    if _is_absolute(typed):
        try:
            moment = datetime.fromisoformat(typed.replace("z", "Z"))
        except ValueError:
            raise ScheduleError(
                f"{shown} is not a date and time I can read; write e.g. {EXAMPLES}"
            ) from None
        if moment.tzinfo is None:  # pragma: no cover - an offset was seen
            raise ScheduleError(f"{shown} has no offset; write e.g. 2026-12-02T09:00+01:00")
        return check(moment, now=now, value=f"at={typed}")
    found = next((m for p in _LOCAL if (m := p.fullmatch(typed))), None)
    if found is None:
        raise ScheduleError(f"{shown} is not a time I can read; write e.g. {EXAMPLES}")
    where = zone(tz)
    if where is None:
        raise NeedsTimeZone(
            f"{shown} is a local time, but your Slack time zone is not known here; give "
            "the offset too, e.g. at=2026-12-02T09:00+01:00"
        )
    parts = found.groupdict()
    hour, minute = int(parts["hour"]), int(parts["minute"])
    if hour > 23 or minute > 59:
        raise ScheduleError(f"{shown}: {hour:02d}:{minute:02d} is not a time of day (00:00-23:59)")
    today = now.astimezone(where).date()
    if parts.get("year"):
        try:
            day = datetime(int(parts["year"]), int(parts["month"]), int(parts["day"])).date()
        except ValueError:
            raise ScheduleError(f"{shown} is not a date; write e.g. 2026-12-02 09:00") from None
    elif (parts.get("word") or "").lower() == "tomorrow":
        day = today + timedelta(days=1)
    else:
        day = today
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=where)
    moment = local.astimezone(UTC)
    if moment.astimezone(where).replace(tzinfo=None) != local.replace(tzinfo=None):
        first = moment.astimezone(where)  # the clocks went forward over it
        raise ScheduleError(
            f"{shown}: {hour:02d}:{minute:02d} does not exist on {day.isoformat()} in {tz} "
            f"(the clocks go forward then); choose a time after the change, e.g. {first:%H:%M}"
        )
    bare = not parts.get("year") and not parts.get("word")
    if bare and moment < now - GRACE:
        raise ScheduleError(
            f"{shown}: {hour:02d}:{minute:02d} today ({tz}) has already passed; "
            f"for tomorrow write at=tomorrow {hour:02d}:{minute:02d}"
        )
    return check(moment, now=now, value=f"at={typed}", tz=where)


def check(
    moment: datetime,
    *,
    now: datetime | None = None,
    value: str | None = None,
    tz: ZoneInfo | None = None,
) -> datetime:
    """`moment` in UTC if it can be scheduled: not more than GRACE ago, at most
    MAX_AHEAD ahead; ScheduleError naming it otherwise."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    moment = moment.astimezone(UTC)
    shown = quoted(value) if value else "that time"
    said = moment.astimezone(tz) if tz else moment
    label = said.strftime("%Y-%m-%d %H:%M ") + (str(tz) if tz else "UTC")
    if moment < now - GRACE:
        raise ScheduleError(
            f"{shown} ({label}) is in the past; it is now {now:%Y-%m-%d %H:%M} UTC. "
            "Give a time from now on, or leave at= out to call at once"
        )
    if moment > now + MAX_AHEAD:
        days = (moment - now).days
        raise ScheduleError(
            f"{shown} ({label}) is {days} days ahead; at most {MAX_AHEAD.days} days ahead "
            f"can be scheduled (until {now + MAX_AHEAD:%Y-%m-%d %H:%M} UTC)"
        )
    return moment
