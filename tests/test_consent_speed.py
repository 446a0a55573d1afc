"""The calling-rules checks of an order stay cheap before the Slack ack: no number is
parsed again (orders give E.164), each time-zone prefix is looked up once, each distinct
set of zones' window is computed once, the workflow's hours are read once, and the
opt-out list and the frequency cap are asked in a few set-based queries. Counted, not
timed (README, *Calling responsibly*, has the measured figure).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import phonenumbers
import pytest
from phonenumbers import timezone as phone_zones

from bot.core import consent as rules
from bot.core.consent import Consent, NoCallingHours
from bot.core.orders import InvalidOrder
from bot.core.requests import CallOrder, CallService
from bot.input.recipients import Recipient
from bot.providers.base import Capabilities, Workflow
from bot.store import Store

CACHES = (
    rules.zones_for,
    rules._prefix_zones,
    rules._placed_by_prefix,
    rules._known,
    rules._spans,
)
# Prefixes of Nigerian mobiles, US area codes, Australian landlines and mobiles.
PREFIXES = ("+234803", "+234806", "+1212", "+1415", "+1907", "+612", "+618", "+614")
LENGTHS = {"+234": 14, "+1": 12, "+61": 12}


def distinct_numbers(count: int, seed: int = 3) -> list[str]:
    """`count` distinct valid E.164 numbers under PREFIXES, as `phones.to_e164` gives them."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < count:
        prefix = rng.choice(PREFIXES)
        length = next(n for code, n in LENGTHS.items() if prefix.startswith(code))
        number = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            found[number] = None
    return list(found)


@pytest.fixture
def cold() -> Iterator[None]:
    """The rules' caches empty, as in a process that just started."""
    for cache in CACHES:
        cache.cache_clear()
    yield
    for cache in CACHES:
        cache.cache_clear()


def counting(target: Any, name: str) -> Any:
    return mock.patch.object(target, name, wraps=getattr(target, name))


def test_no_number_is_parsed_again_and_each_prefix_is_looked_up_once(cold: None) -> None:
    numbers = distinct_numbers(1000)
    prefixes = {(rules._zone_prefix(n[1:]), rules._country_code(n[1:])) for n in numbers}
    with (
        counting(phonenumbers, "parse") as parse,
        counting(phone_zones, "time_zones_for_number") as lookup,
        counting(phonenumbers, "number_type") as number_type,
    ):
        zones = {n: rules.zones_for(n) for n in numbers}
    assert parse.call_count == 0
    assert lookup.call_count == 0
    # Every prefix here decides the type by itself (US area codes and Australian landlines
    # hold only fixed lines, +61 4 only mobiles): no number's type is asked either.
    assert number_type.call_count == 0
    assert rules._prefix_zones.cache_info().misses == len(prefixes) < 60
    # The same zones as parsing each number and asking phonenumbers.
    assert zones == {n: rules._zones_parsed(n) for n in numbers}


def test_the_zones_are_those_of_parsing_every_kind_of_number(cold: None) -> None:
    """The prefix reading gives phonenumbers' own answer: example numbers of every type in
    every region, a prefix shared by fixed lines and mobiles (each number's type decides),
    a leading zero (Italy), a toll-free number and a number not written in E.164."""
    numbers = {
        "+12426025678",  # Bahamas fixed line: Nassau's zone
        "+12428191443",  # Bahamas mobile, same prefix: not placed, +1's zones
        "+18005550199",  # +1 toll-free
        "+390612345678",  # Rome: a leading zero
        "+1 212 555 0121",  # not E.164: parsed
        "+999123",  # no such country code
    }
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in range(11):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.add(
                    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                )
    assert len(numbers) > 900
    wrong = {n for n in numbers if rules.zones_for(n) != rules._zones_parsed(n)}
    assert wrong == set()
    assert rules.zones_for("+12426025678") == ("America/Nassau",)
    assert len(rules.zones_for("+12428191443")) > 20


def test_a_pattern_reading_says_which_numbers_can_start_so() -> None:
    pattern = r"(?:2[0-9]|3[2-9])\d{6}"
    assert rules._can_start_with(pattern, "")
    assert rules._can_start_with(pattern, "32")
    assert rules._can_start_with(pattern, "2012345")
    assert rules._can_start_with(pattern, "20123456")  # the whole of a number
    assert not rules._can_start_with(pattern, "31")
    assert not rules._can_start_with(pattern, "201234567")  # too long
    assert not rules._can_start_with(r"4\d{8}", "2")
    assert rules._can_start_with(r"[^4]\d", "2")


def test_one_window_per_zone_set_and_the_hours_read_once(tmp_path: Path, cold: None) -> None:
    """An order's calling hours: the workflow's hours read once (one query, not one per
    number), each distinct set of zones' opening computed once, with the same answers
    as asking number by number; a number whose hours never open is refused."""
    store = Store(tmp_path / "robocall.db")
    consent = Consent(store)
    numbers = [*distinct_numbers(1000), "+18005550199"]
    kept = Workflow(id="wf-kept", provider="intron", name="Kept")  # hours kept by the store
    store.consent.set_workflow_rules("wf-kept", calling_hours="08:00-12:00", press_9_to_stop=False)
    at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    zone_sets = {rules.zones_for(n) for n in numbers}
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    with counting(rules, "_opening") as opening:
        waiting, never = consent.waits_until_many(numbers, kept, at)
    store.db.conn.set_trace_callback(None)
    assert len(statements) == 1 and "workflow_consent" in statements[0]
    assert opening.call_count == len(zone_sets) < 40
    one_by_one, refused = {}, set()
    for n in numbers:
        try:
            opens = consent.waits_until(n, kept, at)
        except NoCallingHours:
            refused.add(n)
            continue
        if opens is not None:
            one_by_one[n] = opens
    assert waiting == one_by_one
    assert set(never) == refused
    # Guam to Pago Pago (+1 800), or Perth to Lord Howe (an Australian mobile), share no
    # moment of 08:00-12:00: refused, saying what would allow it.
    assert "+18005550199" in never
    assert any(n.startswith("+614") for n in never)
    assert not any(n.startswith(("+1212", "+234")) for n in never)
    assert "wider calling hours" in never["+18005550199"].reason
    assert 0 < len(waiting) < len(numbers)
    assert consent.waits_until_many(numbers, kept, at, urgent=True) == ({}, {})


class _Provider:
    id = "intron"
    sandbox = True
    capabilities = Capabilities(
        label="Intron",
        key_setting="INTRON_API_KEY",
        template_syntax="brackets",
        message_limit=1000,
        keypad=True,
        schedule=False,
        cancel=False,
        audio=False,
        transfer=False,
        results="callback",
        resend_safe=True,
        workflows_at_provider=True,
    )

    def voices(self) -> list[Any]:
        return []


class _One:
    """Providers and workflows both: one of each."""

    workflow = Workflow(id="wf-1", provider="intron", name="Reminder", message="Hello [name]")

    def get(self, _id: str) -> _Provider:
        return _Provider()

    def find(self, _name: str) -> Workflow:
        return self.workflow


def test_checking_an_order_asks_the_store_a_few_set_based_queries(
    tmp_path: Path, cold: None
) -> None:
    """CallService.check on 1,200 numbers with calling hours and the cap on: the
    workflow's hours once, the opt-out list and the call history 500 numbers a query
    (and the entry of each number refused for the list), never a query per number."""
    store = Store(tmp_path / "robocall.db")
    one = _One()
    service = CallService(
        store,
        None,  # type: ignore[arg-type]
        one,  # type: ignore[arg-type]
        one,  # type: ignore[arg-type]
        calling_hours="08:00-21:00",
        calls_per_day_cap=3,
    )
    numbers = distinct_numbers(1200)
    store.consent.add(numbers[:3], by="U1", source="slack")
    order = CallOrder(
        workflow="Reminder",
        recipients=[Recipient(phone=n, variables={"name": "Ada"}) for n in numbers],
        voice=None,
        requested_by="U1",
        channel="C1",
        source="slack",
        at=datetime.now(UTC) + timedelta(minutes=5),
    )
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    with pytest.raises(InvalidOrder) as refused:
        service.check(order)
    store.db.conn.set_trace_callback(None)
    assert [p.recipient for p in refused.value.problems] == [1, 2, 3]
    assert all("opt-out list" in p.message for p in refused.value.problems)

    def count(word: str) -> int:
        return sum(word in s for s in statements)

    assert count("workflow_consent") == 1
    assert count("SELECT phone FROM opt_outs") == 3  # 1,200 numbers, 500 a query
    assert count("JOIN requests") == 3  # the cap's call history, likewise
    assert count("SELECT * FROM opt_outs") == 3  # each refused number's entry
    assert len(statements) == 10
