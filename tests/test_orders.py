"""Checking an order before anything is stored: every problem named, nothing built when
anything is wrong; and the body Intron's provider makes of a checked order."""

from __future__ import annotations

import pytest

from bot.core.orders import InvalidOrder, check_recipients
from bot.input.recipients import Recipient
from bot.providers.base import Order, Workflow
from bot.providers.intron.provider import CAPABILITIES, REFERENCE_TAG, call_request

MESSAGE = "Hello [name], your appointment is on [date]."


def check(recipients: list[Recipient], message: str = MESSAGE, **kw):
    return check_recipients(recipients, template=message, capabilities=CAPABILITIES, **kw)


def test_a_valid_order_is_normalised_and_tagged_for_intron() -> None:
    recipients = check(
        [
            Recipient("+234 807 696 0623", {"name": "Ada", "date": "Monday"}),
            Recipient("+14155550123", {"name": "Bo", "date": "Tuesday", "extra": "fine"}),
        ]
    )
    assert [(r.position, r.phone) for r in recipients] == [
        (1, "+2348076960623"),
        (2, "+14155550123"),
    ]
    workflow = Workflow(id="wf-1", provider="intron", name="Reminder", message=MESSAGE)
    order = Order(
        request_id="req-42", workflow=workflow, recipients=recipients, voice="yoruba/female"
    )
    body = call_request(order).model_dump(exclude_none=True)
    assert body["workflow_id"] == "wf-1"
    assert body["tts_voice_accent"] == "yoruba" and body["tts_voice_gender"] == "female"
    first, second = body["workflow_params"]
    assert first["phone_number"] == "+2348076960623"
    assert first["workflow_variables"] == {"name": "Ada", "date": "Monday"}
    assert first["user_tag_identifiers"] == {REFERENCE_TAG: "req-42", "robocall_recipient": "1"}
    assert second["user_tag_identifiers"]["robocall_recipient"] == "2"


def test_every_problem_is_reported_with_recipient_field_and_value() -> None:
    with pytest.raises(InvalidOrder) as caught:
        check(
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
    assert "4,038 characters" in str(by_recipient[5])
    assert "Intron's limit is 4,000" in str(by_recipient[5])


def test_no_recipients_is_a_problem() -> None:
    with pytest.raises(InvalidOrder, match="no recipients"):
        check([])


def test_a_message_of_exactly_the_limit_is_allowed() -> None:
    assert check([Recipient("+2348076960623", {"text": "x" * 4000})], message="[text]")
    with pytest.raises(InvalidOrder, match="4,001 characters"):
        check([Recipient("+2348076960623", {"text": "x" * 4001})], message="[text]")


def test_both_template_syntaxes_are_filled_and_counted() -> None:
    message = "Hi {{name}}, see you [date]."
    with pytest.raises(InvalidOrder, match=r"no value for \[date\]"):
        check([Recipient("+2348076960623", {"name": "Ada"})], message=message)
    assert check([Recipient("+2348076960623", {"name": "Ada", "date": "Monday"})], message=message)


def test_default_region_lets_people_omit_the_country_code() -> None:
    recipients = check(
        [Recipient("0807 696 0623", {"name": "A", "date": "B"})], default_region="NG"
    )
    assert recipients[0].phone == "+2348076960623"
