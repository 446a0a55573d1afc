"""Phone numbers: parse what people type into E.164, and mask numbers for display.

Some numbers are never worth a robo call: emergency numbers (never allowed), and,
unless an admin allows them with ALLOWED_NUMBER_TYPES, premium-rate, shared-cost
and satellite numbers and short codes. `to_e164` refuses them, naming the number
masked: the refusal may be shown where others can read it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from enum import StrEnum
from functools import cache

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneNumberType,
    ShortNumberCost,
    ValidationResult,
    shortnumberinfo,
)
from phonenumbers.phonemetadata import PhoneMetadata

from bot.text import quoted, without_invisibles

# Shown in channels instead of the whole number: country code, a fixed run of
# bullets (so the length of the number is not revealed either), last four digits.
MASK = "•••••"


class NumberType(StrEnum):
    """A kind of number refused unless ALLOWED_NUMBER_TYPES names it (emergency never is)."""

    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    SATELLITE = "satellite"
    SHORT_CODE = "short_code"


ALL_NUMBER_TYPES: frozenset[NumberType] = frozenset(NumberType)

# The global satellite services: Inmarsat (+870), the Global Mobile Satellite System
# (+881: Iridium, Globalstar, Thuraya…) and International Networks (+882, mostly
# satellite, maritime and aeronautical operators). phonenumbers files them under
# region "001" and calls them MOBILE, so they are told apart by country code.
SATELLITE_CODES = frozenset({870, 881, 882})

_TYPE_NAMES = {
    NumberType.PREMIUM_RATE: ("a premium-rate number", "premium-rate numbers"),
    NumberType.SHARED_COST: ("a shared-cost number", "shared-cost numbers"),
    NumberType.SATELLITE: ("a satellite phone number", "satellite phone numbers"),
    NumberType.SHORT_CODE: ("a short code (a service number, not a person's phone)", "short codes"),
}
_BY_NUMBER_TYPE = {
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
}

# What most numbers are typed with; anything else may hold an extension (`#5`, `x5`).
_PLAIN = re.compile(r"\+?[\d\s\-.()]*")

# Emergency numbers have at most 6 digits in every region phonenumbers knows.
_EMERGENCY_MAX_DIGITS = 6


class PhoneNumberError(ValueError):
    """A number that cannot be called; the message says why and what would be right.

    The message names the number as typed (quoted), or as `shown` when given: the
    refusals of kinds of number name it masked.
    """

    def __init__(self, value: str, reason: str, *, shown: str | None = None) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"phone number {shown or quoted(value)} {reason}")


_POSSIBLE_REASONS = {
    ValidationResult.TOO_SHORT: "is too short",
    ValidationResult.TOO_LONG: "is too long",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits",
    ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
}

E164_HINT = "write it in E.164 form, e.g. +2348076960623"

EXTENSION_HINT = (
    "a robo call cannot dial an extension, so only the main line would ring; "
    "give a number that reaches the person directly, without the extension"
)


def to_e164(
    raw: str,
    default_region: str | None = None,
    allowed: Collection[NumberType] = frozenset(),
) -> str:
    """Return `raw` as an E.164 number (`+2348076960623`), or raise PhoneNumberError.

    Spaces, dashes, dots and brackets are allowed. A number without a leading `+`
    is read in `default_region` (an ISO country code such as "NG") when one is
    given, and rejected otherwise: guessing a country could call a stranger.

    Refused as well: a number with an extension (`#5`, `ext. 5`, `x5`), since only
    the main line would ring; emergency numbers (112, 911, 999… of any region);
    and premium-rate, shared-cost and satellite numbers and short codes unless
    their type is in `allowed`. An allowed short code is returned as `+<country
    code><digits>`.
    """
    text = without_invisibles(raw).strip()
    if not text:
        raise PhoneNumberError(raw, f"is empty; {E164_HINT}")
    region = None if text.startswith("+") else default_region
    if not _PLAIN.fullmatch(text):
        _refuse_extension(raw, text, region)
    # phonenumbers reads vanity letters (1-800-FLOWERS) as digits; a robo call to
    # a number typed with letters is far more likely a typo than intended.
    if any(ch.isalpha() for ch in text):
        raise PhoneNumberError(raw, f"contains letters; {E164_HINT}")
    digits = "".join(ch for ch in text if ch.isdigit())
    if _is_emergency_anywhere(digits):
        _refuse_emergency(raw, mask(text))
    if not text.startswith("+") and not default_region:
        raise PhoneNumberError(
            raw, f"has no country code; start it with + and the country code ({E164_HINT})"
        )
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneNumberError(raw, f"is not a phone number ({exc._msg}); {E164_HINT}") from exc
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if _is_emergency_in(number, default_region):
        _refuse_emergency(raw, mask(e164))
    valid = phonenumbers.is_valid_number(number)
    if not valid and shortnumberinfo.is_valid_short_number(number):
        _refuse_unless_allowed(raw, e164, NumberType.SHORT_CODE, allowed)
        if shortnumberinfo.expected_cost(number) == ShortNumberCost.PREMIUM_RATE:
            _refuse_unless_allowed(raw, e164, NumberType.PREMIUM_RATE, allowed)
        return e164
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        where = _country(number)
        raise PhoneNumberError(raw, f"{_POSSIBLE_REASONS[possible]} for {where}; {E164_HINT}")
    if not valid:
        raise PhoneNumberError(raw, f"is not a valid number for {_country(number)}; {E164_HINT}")
    if (kind := refusable_type(number)) is not None:
        _refuse_unless_allowed(raw, e164, kind, allowed)
    return e164


def refusable_type(number: phonenumbers.PhoneNumber) -> NumberType | None:
    """The refusable type of a valid (not short) number, or None for an ordinary one."""
    if number.country_code in SATELLITE_CODES:
        return NumberType.SATELLITE
    return _BY_NUMBER_TYPE.get(phonenumbers.number_type(number))


def is_e164(value: str) -> bool:
    """True when `value` is already a valid number written exactly in E.164 form
    (of any type an admin could allow: this is about the form, not about calling)."""
    try:
        return to_e164(value, allowed=ALL_NUMBER_TYPES) == value
    except PhoneNumberError:
        return False


def mask(number: str) -> str:
    """`+2348076960623` → `+234•••••0623`; anything unparseable keeps only its last 4 digits.

    The last digits are the national number's, so a short one (`+44999`) does not
    repeat the country code's digits (`+44•••••999`)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except NumberParseException:
        country, digits = "", "".join(ch for ch in number if ch.isdigit())
    else:
        country, digits = f"+{parsed.country_code}", str(parsed.national_number)
    return f"{country}{MASK}{digits[-4:]}"


def _country(number: phonenumbers.PhoneNumber) -> str:
    region = phonenumbers.region_code_for_number(number)
    code = f"+{number.country_code}"
    return f"{region} ({code})" if region and region != "ZZ" else f"country code {code}"


def _refuse_extension(raw: str, text: str, region: str | None) -> None:
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return  # the checks after this one say what is wrong
    if number.extension:
        raise PhoneNumberError(raw, f"has an extension ({number.extension}); {EXTENSION_HINT}")


def _refuse_emergency(raw: str, shown: str) -> None:
    raise PhoneNumberError(
        raw,
        "is an emergency number; robo calls to emergency numbers are never placed",
        shown=shown,
    )


def _refuse_unless_allowed(
    raw: str, e164: str, kind: NumberType, allowed: Collection[NumberType]
) -> None:
    if kind in allowed:
        return
    one, many = _TYPE_NAMES[kind]
    raise PhoneNumberError(
        raw,
        f"is {one}; robo calls to {many} are refused "
        f"(an admin can allow them with ALLOWED_NUMBER_TYPES={kind.value})",
        shown=mask(e164),
    )


def _is_emergency_anywhere(digits: str) -> bool:
    """True when `digits`, dialled as they are, reach emergency services in some region."""
    return len(digits) <= _EMERGENCY_MAX_DIGITS and bool(_emergency_anywhere().fullmatch(digits))


@cache
def _emergency_anywhere() -> re.Pattern[str]:
    """Every region's emergency numbers in one pattern: what `is_emergency_number` matches,
    region by region, but one match instead of one per region (there are 241)."""
    patterns = []
    for region in sorted(shortnumberinfo.SUPPORTED_SHORT_REGIONS):
        metadata = PhoneMetadata.short_metadata_for_region(region)
        if metadata and metadata.emergency and metadata.emergency.national_number_pattern:
            patterns.append(f"(?:{metadata.emergency.national_number_pattern})")
    return re.compile("|".join(patterns))


def _is_emergency_in(number: phonenumbers.PhoneNumber, default_region: str | None) -> bool:
    """True when `number`'s national digits are an emergency number in its country."""
    national = phonenumbers.national_significant_number(number)
    if len(national) > _EMERGENCY_MAX_DIGITS:
        return False
    regions = set(phonenumbers.region_codes_for_country_code(number.country_code or 0))
    if default_region:
        regions.add(default_region.upper())
    return any(phonenumbers.is_emergency_number(national, region) for region in regions)
