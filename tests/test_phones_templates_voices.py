"""Phone numbers, message templates and the voice catalogue."""

from __future__ import annotations

import pytest

from bot.input import phones, templates
from bot.input.voices import UnknownVoiceError, parse_voice
from bot.providers.intron.voices import premium_voices


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+234 807 696 0623", "+2348076960623"),
        ("+234-807-696-0623", "+2348076960623"),
        ("  +2348076960623 ", "+2348076960623"),
        ("+1 (415) 555-0123", "+14155550123"),
    ],
)
def test_numbers_are_normalised_to_e164(typed: str, expected: str) -> None:
    assert phones.to_e164(typed) == expected


def test_a_number_without_plus_needs_a_default_region() -> None:
    with pytest.raises(phones.PhoneNumberError, match="no country code"):
        phones.to_e164("08076960623")
    assert phones.to_e164("0807 696 0623", default_region="NG") == "+2348076960623"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "is empty"),
        ("+234 80", "too short"),
        ("+2348076960623999999", "too long"),
        ("+1-800-FLOWERS", "contains letters"),
        ("call me", "contains letters"),
        ("+999 123 456", "unknown country code|not a phone number|not a valid"),
        ("+234 000 000 0000", "not a valid number for NG"),
    ],
)
def test_bad_numbers_say_what_is_wrong(typed: str, reason: str) -> None:
    with pytest.raises(phones.PhoneNumberError, match=reason) as caught:
        phones.to_e164(typed)
    assert f"'{typed}'" in str(caught.value)
    assert "E.164" in str(caught.value)


def test_masking_keeps_country_code_and_last_four() -> None:
    assert phones.mask("+2348076960623") == "+234•••••0623"
    assert phones.mask("+14155550123") == "+1•••••0123"
    assert "807696" not in phones.mask("+2348076960623")


def test_both_placeholder_syntaxes_are_read_and_rewritten() -> None:
    message = "Hi {{name}}, see you [date]. Bye {{ name }}."
    assert templates.variables(message) == ["name", "date"]
    assert templates.render(message, {"name": "Ada", "date": "Monday"}) == (
        "Hi Ada, see you Monday. Bye Ada."
    )
    assert templates.in_syntax(message, "brackets") == "Hi [name], see you [date]. Bye [name]."
    assert templates.in_syntax(message, "braces") == (
        "Hi {{name}}, see you {{date}}. Bye {{name}}."
    )
    assert "never closed" in (templates.bracket_problem("Hi {{name") or "")
    assert "not a variable name" in (templates.bracket_problem("Hi {{first name}}") or "")


def test_template_variables_render_and_brackets() -> None:
    message = "Hello [name], your appointment is on [date] at [time]. Bye [name]."
    assert templates.variables(message) == ["name", "date", "time"]
    assert templates.missing_variables(message, {"name": "Ada", "date": " "}) == ["date", "time"]
    filled = templates.render(message, {"name": "Ada", "date": "Monday", "time": "9am"})
    assert filled == "Hello Ada, your appointment is on Monday at 9am. Bye Ada."
    assert templates.bracket_problem(message) is None
    assert "never closed" in (templates.bracket_problem("Hi [name") or "")
    assert "no matching" in (templates.bracket_problem("Hi name]") or "")
    assert "not a variable name" in (templates.bracket_problem("Press [1 or 2]") or "")


def test_the_catalogue_is_seed_000s_premium_list() -> None:
    catalogue = premium_voices()
    assert len(catalogue) == 29
    assert parse_voice("Igbo/Female", catalogue).key == "igbo/female"
    assert parse_voice("hausa/male", catalogue).label == "Hausa (male)"
    assert "hausa/female" not in {v.key for v in catalogue}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hausa/female", "hausa comes as: male"),
        ("klingon/male", "not a premium voice; choose one of: afrikaans/female"),
        ("igbo", "accent/gender"),
    ],
)
def test_unknown_voices_name_the_choices(text: str, reason: str) -> None:
    with pytest.raises(UnknownVoiceError, match=reason):
        parse_voice(text, premium_voices())
