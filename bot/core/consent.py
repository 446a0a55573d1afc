"""Calling responsibly: calling hours, the opt-out list and the frequency cap.

The rules only: no Slack, no provider API. `CallService` asks them when an order
is checked and again before every dial; campaigns and escalation policies ask
the same public functions (`Consent.is_opted_out`, `Consent.window`,
`Consent.next_open`), so every front end refuses and waits for the same reasons.

- **Calling hours** are read in the callee's local time, from the number
  (`phonenumbers` time zones). A number that may be in several zones (a country
  spanning them, a toll-free or mobile range) is called only in the hours valid
  in all of them (their intersection). A call outside its hours is not refused:
  it waits for them to open.
- **Opt-out list:** a number on it is never dialled.
- **Frequency cap:** at most `cap` campaign or request calls per number in any
  24 hours; escalations (`source == "escalation"`) are exempt.

Every refusal names the number (masked), the rule and when it would be allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as phone_zones
from phonenumbers.phonemetadata import PhoneMetadata

from bot.input import phones

if TYPE_CHECKING:
    from bot.providers.base import Workflow
    from bot.store import Store

T = TypeVar("T")

DAY = 86_400
# The key that, on a workflow with `press_9_to_stop`, puts the callee on the opt-out list.
OPT_OUT_DIGIT = "9"
OPT_OUT_LABEL = "Stop these calls"
ESCALATION_SOURCE = "escalation"  # exempt from the frequency cap

RULE_OPT_OUT = "opt-out list"
RULE_CAP = "frequency cap"
RULE_HOURS = "calling hours"

# How far ahead `next_open` looks for an opening (a window never open in that time is none).
HORIZON_DAYS = 9


class NoCallingHours(ValueError):
    """No moment is inside the calling hours in all of a number's time zones: it can never
    be called with these hours (widen them for its workflow)."""


# ---------------------------------------------------------------- calling hours


_HOURS = re.compile(
    r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:-|\u2013|\u2014|to)\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$"
)


@dataclass(frozen=True)
class CallingHours:
    """A daily window in local time: `start` and `end` in seconds after midnight.
    `end` ≤ `start` crosses midnight (21:00-02:00); 00:00-24:00 is always open."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> CallingHours:
        """`08:00-21:00` (also `08:00\u201321:00` with a dash, `8:00 to 21:00`, seconds allowed:
        `08:00:30-21:00`); ValueError saying what would be right otherwise."""
        found = _HOURS.match(text or "")
        if not found:
            raise ValueError(
                f"{text!r} is not a daily window; write it as HH:MM-HH:MM, e.g. 08:00-21:00"
            )
        h1, m1, s1, h2, m2, s2 = (int(g) if g else 0 for g in found.groups())
        for h, m, s in ((h1, m1, s1), (h2, m2, s2)):
            if m > 59 or s > 59 or h > 24 or (h == 24 and (m or s)):
                raise ValueError(
                    f"{text!r}: {h:02d}:{m:02d} is not a time of day; use 00:00 to 24:00"
                )
        start, end = h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2
        if start == DAY:
            raise ValueError(f"{text!r}: a window cannot start at 24:00; start it at 00:00")
        if start == end:
            raise ValueError(
                f"{text!r}: the window starts and ends at the same time; "
                "use 00:00-24:00 for at any time"
            )
        return cls(start, end)

    @property
    def always(self) -> bool:
        return self.start == 0 and self.end == DAY

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"

    def spans(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The window of the local day `day` in `zone`, as aware UTC datetimes."""
        # Wall-clock times on the local date, placed by the zone (so DST is honoured).
        start = _local(day, self.start, zone)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        end = _local(end_day, self.end, zone)
        return start.astimezone(UTC), end.astimezone(UTC)


def _local(day: date, seconds: int, zone: ZoneInfo) -> datetime:
    if seconds >= DAY:
        day, seconds = day + timedelta(days=1), seconds - DAY
    clock = time(seconds // 3600, seconds % 3600 // 60, seconds % 60)
    return datetime.combine(day, clock, tzinfo=zone)


def _clock(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


DEFAULT_HOURS = CallingHours(8 * 3600, 21 * 3600)
ALWAYS = CallingHours(0, DAY)


class Window(NamedTuple):
    """A number's calling window: `start` and `end` as times of day, and in words which
    zone(s) they are in. For one zone they are local times in it (tzinfo: that zone);
    for several, the intersection, as UTC times of today (tzinfo: UTC), and `zones` says
    so."""

    start: time
    end: time
    zones: str


# A number as `phones.to_e164` gives it (what orders, campaigns and policies keep): read
# from its digits, without parsing it again (see `zones_for`).
_E164 = re.compile(r"\+[1-9]\d{2,19}")


@lru_cache(maxsize=65536)
def zones_for(phone: str) -> tuple[str, ...]:
    """The IANA zones a number may be in (several for a country or range spanning them);
    () when `phonenumbers` does not know (then the hours are read in UTC, and said so).

    `phone` in E.164 (`+2348031234567`, as `phones.to_e164` gives it) is not parsed
    again: its zones are those of its longest prefix in `phonenumbers`' time-zone table,
    looked up once per prefix (`_prefix_zones`). Only where that prefix's zones differ
    from its country's (a US area code, an Australian landline) does the answer depend
    on the number's type: a fixed line is placed by its prefix, a toll-free number or
    most mobiles by their country. Where `phonenumbers`' patterns allow only one kind
    under the prefix, that decides, once per prefix (`_placed_by_prefix`); where both
    (a Bahamas fixed line and mobile share +1 242), and for short codes, this number's
    type is asked. The same answers as parsing each number (`_zones_parsed`, which any
    other form of number goes through) for every number `phones.to_e164` accepts;
    an invalid one under a fixed-line prefix gets the prefix's zones, not its country's
    (tests/test_consent_speed.py compares the two)."""
    if not _E164.fullmatch(phone):
        return _zones_parsed(phone)
    digits = phone[1:]
    country = _country_code(digits)
    national = digits[len(country) :] if country else ""
    if country is None or not 2 <= len(national) <= 17 or national[0] == "0":
        # Not a number phonenumbers would parse, or one with a leading zero (Italy):
        # parsed, as before.
        return _zones_parsed(phone)
    prefix = _zone_prefix(digits)
    geographic, whole_country = _prefix_zones(prefix, country)
    if geographic == whole_country:
        return geographic
    assert prefix is not None  # without one, both are the country's
    placed = _placed_by_prefix(prefix, country)
    if placed is False:
        return whole_country  # no fixed line can start so: never placed by its prefix
    if placed and len(national) not in _short_code_lengths(country):
        return geographic  # a valid number here can only be a fixed line
    code = int(country)
    kind = phonenumbers.number_type(
        phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    )
    # As `time_zones_for_number`: a fixed line (or a mobile where mobiles are placed) by
    # its prefix, any other type (toll-free, most mobiles, unknown) by its country.
    return geographic if phonenumbers.is_number_type_geographical(kind, code) else whole_country


def _zones_parsed(phone: str) -> tuple[str, ...]:
    """`zones_for`, by parsing the number and asking `phonenumbers` for its zones."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    names = tuple(phone_zones.time_zones_for_number(number))
    if not names or names == (phone_zones.UNKNOWN_TIMEZONE,):
        # A number in no known range: its country's zones, when the country code has them.
        names = tuple(phone_zones.TIMEZONE_DATA.get(str(number.country_code), ()))
    return _known(names)


def _country_code(digits: str) -> str | None:
    """The country calling code the digits of an E.164 number start with (codes are
    prefix-free: at most one of the first 1-3 digits is one), as `phonenumbers.parse`
    reads it; None for none."""
    for size in (1, 2, 3):
        if int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return digits[:size]
    return None


def _zone_prefix(digits: str) -> str | None:
    """The longest prefix of these digits in `phonenumbers`' time-zone table."""
    for size in range(min(len(digits), phone_zones.TIMEZONE_LONGEST_PREFIX), 0, -1):
        if digits[:size] in phone_zones.TIMEZONE_DATA:
            return digits[:size]
    return None


@lru_cache(maxsize=8192)
def _prefix_zones(prefix: str | None, country: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The zones of a number under this prefix when its type is placed by its prefix
    (fixed lines), and when it is not (its country's): one lookup per prefix."""
    whole_country = tuple(phone_zones.TIMEZONE_DATA.get(country, ()))
    found = tuple(phone_zones.TIMEZONE_DATA.get(prefix, ())) if prefix else ()
    if not found or found == (phone_zones.UNKNOWN_TIMEZONE,):
        found = whole_country
    return _known(found), _known(whole_country)


@lru_cache(maxsize=8192)
def _placed_by_prefix(prefix: str, country: str) -> bool | None:
    """Whether a number under this prefix is placed by it, as far as the prefix alone
    decides, from `phonenumbers`' own patterns of every region of its country: False
    when no geographic type (a fixed line; a mobile where mobiles are placed) can start
    with it, so no number under it is; True when no other type (toll-free, premium-rate,
    most mobiles…) can, so every valid number under it is; None when both can (a
    Bahamas fixed line and mobile share +1 242: each number's type decides)."""
    code = int(country)
    start = prefix[len(country) :]
    mobiles_placed = phonenumbers.is_number_type_geographical(PhoneNumberType.MOBILE, code)
    geographic = other = False
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None:
            continue
        for name in _TYPE_DESCS:
            if name == "mobile" and metadata.same_mobile_and_fixed_line_pattern:
                continue  # a number matching it is a fixed line too (the US): never MOBILE
            desc = getattr(metadata, name, None)
            pattern = desc.national_number_pattern if desc is not None else None
            if not pattern or not _can_start_with(pattern, start):
                continue
            if name == "fixed_line" or (name == "mobile" and mobiles_placed):
                geographic = True
            else:
                other = True
            if geographic and other:
                return None
    if not geographic:
        return False
    return None if other else True


# Every type `phonenumbers.number_type` tells apart, by the field of its metadata.
_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


@lru_cache(maxsize=512)
def _short_code_lengths(country: str) -> frozenset[int]:
    """How many digits a short code of this country may have (`to_e164` lets allowed
    short codes through; their type is unknown, so they are placed by their country)."""
    lengths: set[int] = set()
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(country), ()):
        metadata = PhoneMetadata.short_metadata_for_region(region)
        if metadata is not None and metadata.general_desc is not None:
            lengths |= set(metadata.general_desc.possible_length)
    return frozenset(lengths)


class _Feasible(Exception):
    """The digits ran out while the pattern still wanted more: it can go on from them."""


@lru_cache(maxsize=65536)
def _can_start_with(pattern: str, digits: str) -> bool:
    """Whether some string that `pattern` matches in full starts with `digits`. Errs only
    towards True (an unknown construct, a look-around: True or ignored), so a False is
    certain: no number of that type starts with these digits."""
    try:
        ends = _walk(_parsed(pattern), digits, 0)
    except _Feasible:
        return True
    except Exception:  # a construct this reading does not know: not certain
        return True
    return len(digits) in ends


@lru_cache(maxsize=4096)
def _parsed(pattern: str) -> Sequence[tuple[object, object]]:
    return sre_parse.parse(pattern)


def _walk(nodes: Sequence[tuple[object, object]], digits: str, at: int) -> set[int]:
    """Where in `digits` a match of `nodes` from `at` may end; raises _Feasible when one
    runs past their end (and so could go on with more digits)."""
    positions = {at}
    for op, arg in nodes:
        after: set[int] = set()
        for i in positions:
            after |= _step(op, arg, digits, i)
        if not after:
            return after
        positions = after
    return positions


def _step(op: object, arg: object, digits: str, i: int) -> set[int]:
    if op in (sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY):
        if i == len(digits):
            raise _Feasible
        if op is sre.ANY:
            return {i + 1}
        if op in (sre.LITERAL, sre.NOT_LITERAL):
            hit = ord(digits[i]) == arg
            return {i + 1} if hit == (op is sre.LITERAL) else set()
        return {i + 1} if _in(arg, digits[i]) else set()  # type: ignore[arg-type]
    if op is sre.BRANCH:
        out: set[int] = set()
        for branch in arg[1]:  # type: ignore[index]
            out |= _walk(branch, digits, i)
        return out
    if op is sre.SUBPATTERN:
        return _walk(arg[3], digits, i)  # type: ignore[index]
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
        low, high, body = cast("tuple[int, int, object]", arg)
        return _repeat(low, high, body, digits, i)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return {i}  # anchors and look-arounds ignored: only ever more possible
    raise _Feasible  # anything else: not certain


def _repeat(low: int, high: int, body: object, digits: str, i: int) -> set[int]:
    current, seen = {i}, ({i} if low == 0 else set())
    ends = set(seen)
    count = 0
    while current and count < high:
        count += 1
        after: set[int] = set()
        for p in current:
            after |= _walk(body, digits, p)  # type: ignore[arg-type]
        if count >= low:
            current = after - seen  # from a place already reached, all was explored
            seen |= after
            ends |= after
        else:
            current = after
    return ends


def _in(items: Sequence[tuple[object, object]], char: str) -> bool:
    code, found, negate = ord(char), False, False
    for op, arg in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            found |= code == arg
        elif op is sre.RANGE:
            found |= arg[0] <= code <= arg[1]  # type: ignore[index]
        elif op is sre.CATEGORY:
            found |= char.isdigit() if arg is sre.CATEGORY_DIGIT else True  # others: possible
        else:
            found = True  # not known: possible
    return found != negate


@lru_cache(maxsize=4096)
def _known(names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of these zone names this machine's tz database has, sorted, once per set
    (a ZoneInfo made and dropped is read from disk again: its cache keeps only a few)."""
    known = []
    for name in names:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        known.append(name)
    return tuple(sorted(set(known)))


def _zone_words(names: Sequence[str]) -> str:
    if not names:
        return "UTC (its time zone is not known)"
    if len(names) == 1:
        return names[0]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"the {len(names)} time zones its number may be in ({shown})"


def _intersect(
    a: list[tuple[datetime, datetime]], b: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if s < e:
                out.append((s, e))
    return sorted(out)


def open_spans(
    phone: str, hours: CallingHours, around: datetime
) -> list[tuple[datetime, datetime]]:
    """The moments (UTC) within `hours` in every zone of `phone`, from two days before
    `around` to HORIZON_DAYS after it."""
    first = (around.astimezone(UTC) - timedelta(days=2)).date()
    return _spans(zones_for(phone) or ("UTC",), hours, first)


def _opening(names: tuple[str, ...], hours: CallingHours, now: datetime) -> datetime | None:
    """`now` (aware UTC) when it is within `hours` in all of these zones, else when they
    next all are; None when they never are (within the horizon)."""
    first = (now - timedelta(days=2)).date()
    for start, end in _spans(names or ("UTC",), hours, first):
        if end > now:
            return max(start, now)
    return None


@lru_cache(maxsize=1024)
def _spans(
    names: tuple[str, ...], hours: CallingHours, first: date
) -> list[tuple[datetime, datetime]]:
    # Cached: an order of thousands of numbers shares a few zone sets and one day.
    spans: list[tuple[datetime, datetime]] | None = None
    for name in names:
        zone = ZoneInfo(name)
        mine = [hours.spans(first + timedelta(days=n), zone) for n in range(HORIZON_DAYS + 3)]
        spans = mine if spans is None else _intersect(spans, mine)
    return spans or []


# ---------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refusal:
    """Why a number is not called: the rule, the sentence for a person (naming the
    number, masked, the rule and when it would be allowed), and that time (None: not
    until someone changes something)."""

    phone: str
    rule: str
    reason: str
    allowed_at: datetime | None = None


def _utc_words(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class Consent:
    """The rules over the store: one per process (`CallService.consent`)."""

    def __init__(
        self,
        store: Store,
        *,
        hours: CallingHours = DEFAULT_HOURS,
        cap: int = 3,
        cap_window: timedelta = timedelta(hours=24),
    ) -> None:
        self.store = store
        self.hours = hours  # CALLING_HOURS: the default of a workflow that sets none
        self.cap = cap  # CALLS_PER_DAY_CAP; 0 means no cap
        self.cap_window = cap_window

    # ------------------------------------------------------------ public questions

    def is_opted_out(self, phone: str) -> bool:
        """True when this number (E.164) is on the opt-out list."""
        return self.store.consent.is_opted_out(phone)

    def hours_for(self, workflow: Workflow | None) -> CallingHours:
        """The workflow's calling hours (its own, else CALLING_HOURS)."""
        text = self.store.consent.workflow_hours(workflow) if workflow is not None else None
        if text:
            try:
                return CallingHours.parse(text)
            except ValueError:
                pass  # refused when saved; a stale value falls back to the default
        return self.hours

    def window(self, phone: str, workflow: Workflow | None, now: datetime | None = None) -> Window:
        """The number's calling window under this workflow: (start, end, which zone(s)).
        Several zones: their intersection today (UTC times), and the words say so.
        Raises NoCallingHours when no moment is valid in all of them."""
        hours = self.hours_for(workflow)
        names = zones_for(phone)
        if hours.always:
            return Window(time(0), time(0), "at any time (calling hours 00:00-24:00)")
        if len(names) <= 1:
            zone = ZoneInfo(names[0]) if names else UTC
            start, end = _as_time(hours.start, zone), _as_time(hours.end, zone)
            return Window(start, end, f"{hours} in {_zone_words(names)}")
        now = (now or datetime.now(UTC)).astimezone(UTC)
        spans = open_spans(phone, hours, now)
        if not spans:
            raise NoCallingHours(self._never(phone, hours, names))
        current = next((s for s in spans if s[1] > now), spans[-1])
        start, end = current
        return Window(
            start.timetz(),
            end.timetz(),
            f"{start:%H:%M}-{end:%H:%M} UTC: the hours that are within {hours} local time "
            f"in all of {_zone_words(names)}",
        )

    def next_open(self, phone: str, workflow: Workflow | None, now: datetime) -> datetime:
        """`now` when the number may be called now under this workflow's hours, else when
        its window next opens (aware, UTC). Raises NoCallingHours when it never does."""
        now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
        hours = self.hours_for(workflow)
        if hours.always:
            return now
        names = zones_for(phone)
        opens = _opening(names, hours, now)
        if opens is None:
            raise NoCallingHours(self._never(phone, hours, names))
        return opens

    def waits_until(
        self, phone: str, workflow: Workflow | None, at: datetime, *, urgent: bool = False
    ) -> datetime | None:
        """When a call meant for `at` must wait for its calling hours: the opening; None
        when it may go at `at` (or is urgent, which ignores calling hours)."""
        if urgent:
            return None
        opens = self.next_open(phone, workflow, at)
        return opens if opens > at + timedelta(seconds=1) else None

    def common_opening(
        self, numbers: Iterable[str], workflow: Workflow | None, now: datetime
    ) -> datetime | None:
        """The first moment from `now` inside the calling hours of every one of these
        numbers (`now` itself when they all are now; aware UTC): the intersection of all
        their zones' windows, so a request whose recipients are in several zones waits
        for a time that suits each of them. None when no such moment comes within the
        horizon (their windows do not overlap)."""
        now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
        hours = self.hours_for(workflow)
        if hours.always:
            return now
        names: set[str] = set()
        for phone in numbers:
            names |= set(zones_for(phone) or ("UTC",))
        if not names:
            return now
        return _opening(tuple(sorted(names)), hours, now)

    def waits_until_many(
        self,
        numbers: Iterable[str],
        workflow: Workflow | None,
        at: datetime,
        *,
        urgent: bool = False,
    ) -> tuple[dict[str, datetime], dict[str, Refusal]]:
        """`waits_until` for all the numbers of one order (an order of thousands is checked
        before its ack): number → when its window opens, for those that must wait; and
        number → its refusal, for those whose hours never open. The workflow's hours are
        read once, each number's zones from its prefix (`zones_for`), and each distinct
        set of zones' opening is computed once."""
        if urgent:
            return {}, {}
        hours = self.hours_for(workflow)
        if hours.always:
            return {}, {}
        now = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        later = now + timedelta(seconds=1)
        openings: dict[tuple[str, ...], datetime | None] = {}
        waiting: dict[str, datetime] = {}
        never: dict[str, Refusal] = {}
        for phone in numbers:
            names = zones_for(phone)
            if names in openings:
                opens = openings[names]
            else:
                opens = openings[names] = _opening(names, hours, now)
            if opens is None:
                never[phone] = Refusal(phone, RULE_HOURS, self._never(phone, hours, names))
            elif opens > later:
                waiting[phone] = opens
        return waiting, never

    def describe_window(self, phone: str, workflow: Workflow | None) -> str:
        """`08:00-21:00 in America/New_York`, or the intersection's words."""
        try:
            return self.window(phone, workflow).zones
        except NoCallingHours as exc:
            return str(exc)

    def refusals(
        self,
        calls: Sequence[tuple[str, datetime]],
        *,
        source: str,
        exclude_request: str | None = None,
        pending: bool = True,
    ) -> dict[str, Refusal]:
        """Why each of these numbers may not be called at its time (opt-out list, then
        frequency cap), in a few queries (an order of thousands is checked before its
        ack): number → its refusal, for those refused. `exclude_request`: the request
        being dialled (its own calls do not count); `pending`: count calls accepted but
        not dialled yet (at acceptance)."""
        if not calls:
            return {}
        found: dict[str, Refusal] = {}
        numbers = [phone for phone, _ in calls]
        for phone in self.store.consent.opted_out(numbers):
            entry = self.store.consent.opt_out(phone) or {}
            found[phone] = Refusal(
                phone,
                RULE_OPT_OUT,
                f"{phones.mask(phone)} is on the opt-out list (since "
                f"{str(entry.get('added_at', ''))[:16].replace('T', ' ')} UTC, {_how(entry)}), "
                "so it is not called; it can be called again only once an admin takes it off "
                "the list (/robocall optout remove, with the number)",
            )
        if source.startswith(ESCALATION_SOURCE) or self.cap <= 0:
            return found
        rest = [(phone, at) for phone, at in calls if phone not in found]
        if not rest:
            return found
        since = min(at for _, at in rest) - self.cap_window
        until = max(at for _, at in rest)
        times = self.store.consent.call_times_many(
            [phone for phone, _ in rest],
            since,
            until,
            exclude_request=exclude_request,
            pending=pending,
        )
        for phone, at in rest:
            mine = [t for t in times.get(phone, ()) if at - self.cap_window < t <= at]
            if (refusal := self._capped(phone, mine, at)) is not None:
                found[phone] = refusal
        return found

    def _capped(self, phone: str, times: list[datetime], at: datetime) -> Refusal | None:
        count = len(times)
        if count < self.cap:
            return None
        # Allowed again once enough of those calls are more than 24 h old.
        allowed = sorted(times)[count - self.cap] + self.cap_window
        hours = self.cap_window.total_seconds() / 3600
        return Refusal(
            phone,
            RULE_CAP,
            f"{phones.mask(phone)} has had {count} calls in the last {hours:g} hours "
            f"(frequency cap: at most {self.cap} campaign or request calls per number in "
            f"{hours:g} hours, CALLS_PER_DAY_CAP), so it is not called; it can be called "
            f"again from {_utc_words(allowed)}",
            allowed_at=allowed,
        )

    # ------------------------------------------------------------ helpers

    def _never(self, phone: str, hours: CallingHours, names: Sequence[str]) -> str:
        return (
            f"{phones.mask(phone)} may be in {_zone_words(names)}, and no time is within "
            f"{hours} local time in all of them (calling hours), so it cannot be called "
            "with this workflow; it would be allowed with wider calling hours on the "
            "workflow (e.g. 00:00-24:00 for a number known to be awake)"
        )


def _as_time(seconds: int, zone: ZoneInfo | type[UTC] | object) -> time:
    seconds %= DAY
    return time(seconds // 3600, seconds % 3600 // 60, seconds % 60, tzinfo=zone)  # type: ignore[arg-type]


def _how(entry: dict) -> str:
    if entry.get("source") == "keypad":
        return f"the callee pressed {OPT_OUT_DIGIT} on a call"
    return f"added by {entry.get('added_by') or 'someone'}"


# ---------------------------------------------------------------- a workflow's two fields


def check_consent_fields(draft: object, capabilities: object) -> dict[str, str]:
    """Problems with a workflow draft's `calling_hours` and `press_9_to_stop`, by field,
    each saying what would be right ({} when both are fine)."""
    problems: dict[str, str] = {}
    hours = getattr(draft, "calling_hours", None)
    if hours:
        try:
            CallingHours.parse(hours)
        except ValueError as exc:
            problems["calling_hours"] = f"Calling hours: {exc}."
    if getattr(draft, "press_9_to_stop", False):
        label = getattr(capabilities, "label", "This provider")
        keypad: dict[str, str] = getattr(draft, "keypad", {}) or {}
        message: str = getattr(draft, "message", "") or ""
        if not getattr(capabilities, "keypad", True):
            problems["press_9_to_stop"] = (
                f'{label}\'s calls take no key press, so "press 9 to stop these calls" '
                "cannot work; leave it off"
            )
        elif getattr(draft, "call_flow", None):
            problems["press_9_to_stop"] = (
                "a workflow with its own call flow (BizPhone) decides itself what each key "
                'does, so "press 9 to stop these calls" cannot be added to it; leave it off'
            )
        elif keypad.get(OPT_OUT_DIGIT, OPT_OUT_LABEL) != OPT_OUT_LABEL:
            problems["keypad"] = (
                f'key {OPT_OUT_DIGIT} already means {keypad[OPT_OUT_DIGIT]!r}, and "press 9 to '
                'stop these calls" needs it; give that option another digit'
            )
        elif message and OPT_OUT_DIGIT not in message and not getattr(draft, "audio_url", None):
            problems["message"] = (
                'With "press 9 to stop these calls" on, the message must tell callees so: '
                'add e.g. "Press 9 to stop these calls."'
            )
    return problems


def with_stop_key(draft: T) -> T:
    """A draft with key 9 meaning "Stop these calls" on its keypad when it has the press-9
    option (so the provider offers it and reports it back); unchanged otherwise."""
    keypad = dict(getattr(draft, "keypad", {}) or {})
    if not getattr(draft, "press_9_to_stop", False):
        if keypad.get(OPT_OUT_DIGIT) != OPT_OUT_LABEL:
            return draft
        del keypad[OPT_OUT_DIGIT]  # the option was turned off: its key goes with it
        return draft.model_copy(update={"keypad": keypad})  # type: ignore[attr-defined]
    keypad[OPT_OUT_DIGIT] = OPT_OUT_LABEL
    return draft.model_copy(update={"keypad": dict(sorted(keypad.items()))})  # type: ignore[attr-defined]
