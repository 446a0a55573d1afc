"""Numbers nobody should robo-call: premium-rate, shared-cost and satellite numbers and
short codes are refused unless ALLOWED_NUMBER_TYPES allows them, emergency numbers
always; the refusal names the number masked. And an extension typed in `/robocall call`
is refused instead of the main line being called."""

from __future__ import annotations

import json

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType, shortnumberinfo
from phonenumbers.phonemetadata import PhoneMetadata
from pydantic import ValidationError

from bot.core.orders import InvalidOrder, check_recipients
from bot.input import phones
from bot.input.phones import NumberType, PhoneNumberError
from bot.input.recipients import parse_call_command, parse_recipient_lines
from bot.providers.intron.models import WorkflowCreate
from bot.providers.intron.provider import CAPABILITIES
from bot.settings import Settings
from tests.conftest import Sandbox
from tests.harness import Harness

SETTING = "ALLOWED_NUMBER_TYPES"


def example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None, (region, kind)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def satellite(code: int) -> str:
    number = phonenumbers.example_number_for_non_geo_entity(code)
    assert number is not None, code
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def spaced(e164: str) -> str:
    """How a person might type the number: the international format, with spaces."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)


def refusal(typed: str, **kw) -> str:
    with pytest.raises(PhoneNumberError) as caught:
        phones.to_e164(typed, **kw)
    return str(caught.value)


def assert_masked(message: str, e164: str, typed: str) -> None:
    assert phones.mask(e164) in message
    assert e164 not in message and typed not in message
    assert e164[1:] not in message  # not even without the +


PREMIUM = [example(region, PhoneNumberType.PREMIUM_RATE) for region in ("GB", "US", "DE", "FR")]
# phonenumbers has shared-cost examples for DE and FR only (GB and US have none).
SHARED_COST = [example(region, PhoneNumberType.SHARED_COST) for region in ("DE", "FR")]
SATELLITE = [satellite(code) for code in (870, 881, 882)]


# --- each refused type ------------------------------------------------------------------


def test_the_examples_are_the_numbers_in_the_finding() -> None:
    assert [n[:4] for n in PREMIUM] == ["+449", "+190", "+499", "+338"]
    assert PREMIUM[1].startswith("+1900") and PREMIUM[2].startswith("+49900")
    assert [n[:4] for n in SATELLITE] == ["+870", "+881", "+882"]


@pytest.mark.parametrize("e164", PREMIUM)
def test_premium_rate_numbers_are_refused_and_named_masked(e164: str) -> None:
    typed = spaced(e164)
    message = refusal(typed)
    assert "is a premium-rate number" in message
    assert "robo calls to premium-rate numbers are refused" in message
    assert f"{SETTING}=premium_rate" in message
    assert_masked(message, e164, typed)


@pytest.mark.parametrize("e164", SHARED_COST)
def test_shared_cost_numbers_are_refused(e164: str) -> None:
    message = refusal(e164)
    assert "is a shared-cost number" in message and f"{SETTING}=shared_cost" in message
    assert_masked(message, e164, e164)


@pytest.mark.parametrize("e164", SATELLITE)
def test_satellite_numbers_are_refused_by_their_country_code(e164: str) -> None:
    number = phonenumbers.parse(e164)
    # phonenumbers cannot tell: region "001", type MOBILE, so the country code decides.
    assert phonenumbers.region_code_for_number(number) == "001"
    assert phonenumbers.number_type(number) == PhoneNumberType.MOBILE
    message = refusal(e164)
    assert "is a satellite phone number" in message and f"{SETTING}=satellite" in message
    assert_masked(message, e164, e164)


def test_global_premium_and_shared_cost_services_are_refused_too() -> None:
    assert "premium-rate" in refusal(satellite(979))  # +979: international premium rate
    assert "shared-cost" in refusal(satellite(808))  # +808: international shared cost


@pytest.mark.parametrize(
    ("typed", "region"),
    [
        ("+44 999", None),
        ("+1 911", None),
        ("+49 112", None),
        ("+33 112", None),
        ("+112", None),
        ("+911", None),
        ("112", None),  # no country code, still an emergency number somewhere
        ("911", None),
        ("999", "GB"),
        ("911", "US"),
        ("112", "DE"),
        ("112", "NG"),  # any region's: 112 is not in Nigeria's list, but is in 110 others
        ("911", "NG"),
        ("999", "NG"),
    ],
)
def test_emergency_numbers_are_never_called(typed: str, region: str | None) -> None:
    for allowed in (frozenset(), phones.ALL_NUMBER_TYPES):
        message = refusal(typed, default_region=region, allowed=allowed)
        assert "is an emergency number; robo calls to emergency numbers are never placed" in (
            message
        )
        assert f"'{typed}'" not in message  # named masked, like the other refusals
        assert SETTING not in message  # nothing an admin could do


def test_no_emergency_number_is_longer_than_the_check_looks() -> None:
    # to_e164 skips the emergency check for longer numbers; a phonenumbers update
    # with a longer emergency number anywhere must fail here first.
    longest = max(
        length
        for region in shortnumberinfo.SUPPORTED_SHORT_REGIONS
        if (data := PhoneMetadata.short_metadata_for_region(region)) and data.emergency
        for length in data.emergency.possible_length or ()
    )
    assert longest <= phones._EMERGENCY_MAX_DIGITS


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [("611", "US", "+1611"), ("+1 611", None, "+1611"), ("+44 118 118", None, "+44118118")],
)
def test_short_codes_are_refused_unless_allowed(typed: str, region: str | None, e164: str) -> None:
    message = refusal(typed, default_region=region)
    assert "is a short code" in message and f"{SETTING}=short_code" in message
    assert phones.mask(e164) in message and f"'{typed}'" not in message
    allowed = {NumberType.SHORT_CODE}
    assert phones.to_e164(typed, region, allowed) == e164


def test_a_premium_rate_short_code_needs_premium_rate_allowed_as_well() -> None:
    short = {NumberType.SHORT_CODE}
    assert "premium-rate" in refusal("+33 3630", allowed=short)  # a French premium service
    assert phones.to_e164("+33 3630", allowed=short | {NumberType.PREMIUM_RATE}) == "+333630"


@pytest.mark.parametrize(
    "e164",
    [
        "+2348076960623",
        "+14155550123",
        *(example(r, PhoneNumberType.MOBILE) for r in ("GB", "DE", "FR", "NG")),
        *(example(r, PhoneNumberType.FIXED_LINE) for r in ("GB", "US", "DE", "FR", "NG")),
        *(example(r, PhoneNumberType.TOLL_FREE) for r in ("GB", "US", "DE", "FR")),
    ],
)
def test_ordinary_numbers_still_pass(e164: str) -> None:
    assert phones.to_e164(spaced(e164)) == e164


# --- the setting ------------------------------------------------------------------------


def test_allowing_one_type_lets_that_type_through_and_no_other() -> None:
    allowed = {NumberType.PREMIUM_RATE}
    for e164 in PREMIUM:
        assert phones.to_e164(e164, allowed=allowed) == e164
    assert "shared-cost" in refusal(SHARED_COST[0], allowed=allowed)
    assert "satellite" in refusal(SATELLITE[0], allowed=allowed)
    assert "emergency" in refusal("112", allowed=allowed)


def test_the_setting_reaches_the_order_check() -> None:
    recipients = [
        r.to_recipient() for r in parse_call_command(f"wf {PREMIUM[0]} {SATELLITE[1]}").recipients
    ]
    with pytest.raises(InvalidOrder) as caught:
        check_recipients(recipients, template="Hello", capabilities=CAPABILITIES)
    assert [str(p) for p in caught.value.problems] == [
        f"recipient 1: {refusal(PREMIUM[0])}",
        f"recipient 2: {refusal(SATELLITE[1])}",
    ]
    allowed = {NumberType.PREMIUM_RATE, NumberType.SATELLITE}
    checked = check_recipients(
        recipients, template="Hello", capabilities=CAPABILITIES, allowed_types=allowed
    )
    assert [r.phone for r in checked] == [PREMIUM[0], SATELLITE[1]]


def test_the_setting_reads_a_comma_separated_list_and_defaults_to_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SETTING, raising=False)
    assert Settings(_env_file=None).allowed_number_types == []
    monkeypatch.setenv(SETTING, " premium_rate, Satellite ,")
    assert Settings(_env_file=None).allowed_number_types == [
        NumberType.PREMIUM_RATE,
        NumberType.SATELLITE,
    ]
    allowed = [NumberType.SHARED_COST, NumberType.SHORT_CODE]
    assert Settings(_env_file=None, allowed_number_types=allowed).allowed_number_types == allowed


@pytest.mark.parametrize(
    ("value", "named"),
    [("premium", "'premium'"), ("premium_rate,emergency", "'emergency'"), ("toll_free", "'toll")],
)
def test_an_unknown_type_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str, named: str
) -> None:
    monkeypatch.setenv(SETTING, value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    message = str(caught.value)
    assert SETTING in message and named in message
    assert "premium_rate, shared_cost, satellite, short_code" in message
    if "emergency" in value:
        assert "emergency numbers can never be allowed" in message


def test_is_e164_is_about_the_form_not_about_calling() -> None:
    # Intron's payloads are checked with is_e164: a call an admin allowed must still parse.
    assert all(phones.is_e164(n) for n in [*PREMIUM, *SHARED_COST, *SATELLITE])
    assert not phones.is_e164("+44999") and not phones.is_e164("+2348076960623#5")


# --- extensions in /robocall call -------------------------------------------------------

EXTENSION = (
    "has an extension (5); a robo call cannot dial an extension, so only the main line "
    "would ring; give a number that reaches the person directly, without the extension"
)


def command_problems(text: str) -> list[str]:
    parsed = parse_call_command(text)
    with pytest.raises(InvalidOrder) as caught:
        check_recipients(
            [r.to_recipient() for r in parsed.recipients],
            template="Hello",
            capabilities=CAPABILITIES,
        )
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    "typed",
    [
        "+2348076960623#5",
        "+2348076960623 #5",
        "+2348076960623 ext. 5",
        "+2348076960623 ext.5",
        "+2348076960623 ext 5",
        "+2348076960623 x5",
        "+2348076960623 x 5",
        "+234 807 696 0623 extension 5",
    ],
)
def test_an_extension_in_the_command_is_refused_naming_the_recipient(typed: str) -> None:
    parsed = parse_call_command(f"reminder +14155550123, {typed} name=Ada")
    assert [r.phone for r in parsed.recipients] == ["+14155550123", typed]
    assert command_problems(f"reminder +14155550123, {typed} name=Ada") == [
        f"recipient 2: phone number '{typed}' {EXTENSION}"
    ]


def test_the_command_refuses_an_extension_as_the_modal_does() -> None:
    (line,) = parse_recipient_lines("+2348076960623#5 name=Ada")
    with pytest.raises(InvalidOrder) as caught:
        check_recipients([line.to_recipient()], template="Hello", capabilities=CAPABILITIES)
    (modal,) = caught.value.problems
    assert command_problems("reminder +2348076960623#5 name=Ada") == [
        f"recipient 1: {modal.message}"
    ]


def test_a_long_extension_and_the_number_after_it() -> None:
    text = "reminder +2348076960623 ext. 123456 +14155550123"
    parsed = parse_call_command(text)
    assert [r.phone for r in parsed.recipients] == [
        "+2348076960623 ext. 123456",
        "+14155550123",
    ]
    (problem,) = command_problems(text)
    assert problem.startswith("recipient 1: ") and "has an extension (123456)" in problem


def test_what_is_not_an_extension_stays_as_it_was() -> None:
    # A lone marker with no digits after it, or a marker after a comma, is not glued on.
    assert [r.phone for r in parse_call_command("wf +2348076960623 x").recipients] == [
        "+2348076960623",
        "x",
    ]
    assert [r.phone for r in parse_call_command("wf +2348076960623, x5").recipients] == [
        "+2348076960623",
        "x5",
    ]


# --- end to end -------------------------------------------------------------------------

REMINDER = WorkflowCreate(name="Appointment reminder", message="Hello [name].")


async def test_a_premium_rate_number_in_the_command_is_refused_and_not_called(
    harness: Harness, sandbox: Sandbox
) -> None:
    await harness.create_workflow(REMINDER)
    assert harness.slack is not None
    typed = spaced(PREMIUM[1])  # +1 900-234-5678
    response = await harness.slack.command(f'call "Appointment reminder" {typed} name=Ada')
    assert response.status_code == 200, response.text
    # bolt answers a text-only ack as plain text, one with blocks as JSON
    json_body = response.headers["content-type"].startswith("application/json")
    answer = json.dumps(response.json(), ensure_ascii=False) if json_body else response.text
    assert "Nothing was sent" in answer
    assert "recipient 1: phone number +1•••••5678 is a premium-rate number" in answer
    assert f"{SETTING}=premium_rate" in answer
    assert PREMIUM[1] not in answer and PREMIUM[1][1:] not in answer and typed not in answer
    await harness.settled()
    assert sandbox.state.batches == {}
    assert sandbox.state.requests_seen.get("place_calls", 0) == 0
    assert harness.store.requests.recent() == []
