"""Building a call request: every problem named, nothing built when anything is wrong."""

from __future__ import annotations

import pytest

from bot.intron.validation import (
    REFERENCE_TAG,
    InvalidCallRequest,
    Recipient,
    build_call_request,
)
from bot.voices import parse_voice

MESSAGE = "Hello [name], your appointment is on [date]."


def build(recipients: list[Recipient], **kw):
    args = {"workflow_id": "wf-1", "message": MESSAGE, "voice": None, "reference": "req-42"}
    return build_call_request(recipients=recipients, **(args | kw))


def test_a_valid_request_is_normalised_and_tagged() -> None:
    request = build(
        [
            Recipient("+234 807 696 0623", {"name": "Ada", "date": "Monday"}),
            Recipient("+14155550123", {"name": "Bo", "date": "Tuesday", "extra": "fine"}),
        ],
        voice=parse_voice("yoruba/female"),
    )
    body = request.model_dump(exclude_none=True)
    assert body["workflow_id"] == "wf-1"
    assert body["tts_voice_accent"] == "yoruba" and body["tts_voice_gender"] == "female"
    first, second = body["workflow_params"]
    assert first["phone_number"] == "+2348076960623"
    assert first["workflow_variables"] == {"name": "Ada", "date": "Monday"}
    assert first["user_tag_identifiers"] == {REFERENCE_TAG: "req-42", "robocall_recipient": "1"}
    assert second["user_tag_identifiers"]["robocall_recipient"] == "2"


def test_every_problem_is_reported_with_recipient_field_and_value() -> None:
    with pytest.raises(InvalidCallRequest) as caught:
        build(
            [
                Recipient("+2348076960623", {"name": "Ada", "date": "Monday"}),
                Recipient("+234 80", {"name": "Bo", "date": "x"}),
                Recipient("+2348076960623", {"name": "Ada", "date": "Monday"}),
                Recipient("+14155550123", {"nmae": "Cy"}),
                Recipient("+447911123456", {"name": "D" * 4000, "date": "Friday"}),
            ]
        )
    problems = caught.value.problems
    by_recipient = {p.recipient: p for p in problems}
    assert sorted(by_recipient) == [2, 3, 4, 5]
    assert "'+234 80' is too short" in str(by_recipient[2])
    assert "already recipient 1" in str(by_recipient[3])
    missing = str(by_recipient[4])
    assert "recipient 4: no value for [name], [date]" in missing
    assert "nmae is not used by this message" in missing
    assert by_recipient[5].field == "message"
    assert "4,038 characters" in str(by_recipient[5]) and "limit is 4,000" in str(by_recipient[5])


def test_no_recipients_is_a_problem() -> None:
    with pytest.raises(InvalidCallRequest, match="no recipients"):
        build([])


def test_a_message_of_exactly_4000_characters_is_allowed() -> None:
    message = "[text]"
    assert build([Recipient("+2348076960623", {"text": "x" * 4000})], message=message)
    with pytest.raises(InvalidCallRequest, match="4,001 characters"):
        build([Recipient("+2348076960623", {"text": "x" * 4001})], message=message)


def test_default_region_lets_people_omit_the_country_code() -> None:
    request = build([Recipient("0807 696 0623", {"name": "A", "date": "B"})], default_region="NG")
    assert request.workflow_params[0].phone_number == "+2348076960623"
