"""Phone numbers: parse what people type into E.164, and mask numbers for display."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

from bot.text import quoted, without_invisibles

# Shown in channels instead of the whole number: country code, a fixed run of
# bullets (so the length of the number is not revealed either), last four digits.
MASK = "•••••"


class PhoneNumberError(ValueError):
    """A number that cannot be called; the message says why and what would be right."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"phone number {quoted(value)} {reason}")


_POSSIBLE_REASONS = {
    ValidationResult.TOO_SHORT: "is too short",
    ValidationResult.TOO_LONG: "is too long",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits",
    ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
}

E164_HINT = "write it in E.164 form, e.g. +2348076960623"


def to_e164(raw: str, default_region: str | None = None) -> str:
    """Return `raw` as an E.164 number (`+2348076960623`), or raise PhoneNumberError.

    Spaces, dashes, dots and brackets are allowed. A number without a leading `+`
    is read in `default_region` (an ISO country code such as "NG") when one is
    given, and rejected otherwise: guessing a country could call a stranger.
    """
    text = without_invisibles(raw).strip()
    if not text:
        raise PhoneNumberError(raw, f"is empty; {E164_HINT}")
    # phonenumbers reads vanity letters (1-800-FLOWERS) as digits; a robo call to
    # a number typed with letters is far more likely a typo than intended.
    if any(ch.isalpha() for ch in text):
        raise PhoneNumberError(raw, f"contains letters; {E164_HINT}")
    if not text.startswith("+") and not default_region:
        raise PhoneNumberError(
            raw, f"has no country code; start it with + and the country code ({E164_HINT})"
        )
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except NumberParseException as exc:
        raise PhoneNumberError(raw, f"is not a phone number ({exc._msg}); {E164_HINT}") from exc
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        where = _country(number)
        raise PhoneNumberError(raw, f"{_POSSIBLE_REASONS[possible]} for {where}; {E164_HINT}")
    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberError(raw, f"is not a valid number for {_country(number)}; {E164_HINT}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_e164(value: str) -> bool:
    """True when `value` is already a valid number written exactly in E.164 form."""
    try:
        return to_e164(value) == value
    except PhoneNumberError:
        return False


def mask(number: str) -> str:
    """`+2348076960623` → `+234•••••0623`; anything unparseable keeps only its last 4 digits."""
    try:
        parsed = phonenumbers.parse(number, None)
        country = f"+{parsed.country_code}"
    except NumberParseException:
        country = ""
    digits = "".join(ch for ch in number if ch.isdigit())
    return f"{country}{MASK}{digits[-4:]}"


def _country(number: phonenumbers.PhoneNumber) -> str:
    region = phonenumbers.region_code_for_number(number)
    code = f"+{number.country_code}"
    return f"{region} ({code})" if region and region != "ZZ" else f"country code {code}"
