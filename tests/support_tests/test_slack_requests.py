"""Signed Slack requests: signatures and body shapes, as slack_sdk and Bolt read them."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from tests.support.slack_requests import (
    app_home_opened,
    block_actions,
    block_suggestion,
    event_callback,
    modal_view,
    option,
    plain_text_value,
    sign,
    slash_command,
    static_select_value,
    view_submission,
)

SECRET = "s3cret"
CALL_VALUES = {
    "phone": {"number": plain_text_value("+442079460000")},
    "voice": {"voice": static_select_value("ada", "Ada")},
}

JsonDict = dict[str, Any]


def parsed(body_and_type: tuple[bytes, str]) -> JsonDict:
    """The request body as Bolt parses it."""
    body, content_type = body_and_type
    return parse_body(body.decode(), content_type)


# ---- signing and body shapes


def test_sign_matches_slack_sdk_verifier() -> None:
    body, _ = slash_command("+442079460000")
    verifier = SignatureVerifier(SECRET)

    headers = sign(SECRET, body)

    assert verifier.is_valid_request(body, headers)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)
    stale = sign(SECRET, body, timestamp=int(verifier.clock.now()) - 6 * 60)
    assert not verifier.is_valid_request(body, stale)
    assert sign(SECRET, b'{"type": "event_callback"}')["Content-Type"] == "application/json"


def test_slash_command_has_slacks_fields() -> None:
    body, content_type = slash_command("+44 20 7946 0000", user_id="U7", response_url="http://x/r")

    fields = dict(parse_qsl(body.decode()))
    assert content_type == "application/x-www-form-urlencoded"
    assert {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "response_url",
        "trigger_id",
    } <= fields.keys()
    assert (fields["command"], fields["text"], fields["user_id"]) == (
        "/robocall",
        "+44 20 7946 0000",
        "U7",
    )
    assert fields["response_url"] == "http://x/r"


def test_view_submission_carries_state_values_as_given() -> None:
    payload = parsed(view_submission("place_call", CALL_VALUES, "C1", user_id="U7"))

    assert payload["type"] == "view_submission"
    assert payload["user"]["id"] == "U7"
    assert payload["view"]["callback_id"] == "place_call"
    assert payload["view"]["private_metadata"] == "C1"
    assert payload["view"]["state"]["values"] == CALL_VALUES


def test_block_actions_in_a_view_and_in_a_message() -> None:
    view = modal_view("place_call", values=CALL_VALUES, view_id="V9")
    in_view = parsed(block_actions("voice", selected_option="bola", view=view))
    in_message = parsed(block_actions("cancel", "call-1", channel_id="C1", message_ts="1.2"))

    assert in_view["container"] == {"type": "view", "view_id": "V9"}
    assert in_view["actions"][0]["selected_option"] == option("bola")
    assert in_view["state"]["values"] == CALL_VALUES
    assert in_message["container"]["channel_id"] == "C1"
    assert in_message["message"]["ts"] == "1.2"
    assert in_message["actions"][0]["value"] == "call-1"
    assert in_message["response_url"].startswith("http://127.0.0.1:")


def test_block_suggestion_and_event_callback() -> None:
    suggestion = parsed(block_suggestion("voice", "ad"))
    event = parsed(event_callback(app_home_opened("U7"), event_id="Ev1"))

    assert (suggestion["type"], suggestion["action_id"], suggestion["value"]) == (
        "block_suggestion",
        "voice",
        "ad",
    )
    assert event["type"] == "event_callback"
    assert event["event_id"] == "Ev1"
    assert event["event"]["type"] == "app_home_opened"
    assert event["event"]["user"] == "U7"
