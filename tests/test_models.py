"""The pydantic models: seed 002's callback, both reply-count shapes, strict requests."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from bot.providers.intron.models import (
    CallRequest,
    CallStats,
    CompletionCallback,
    Page,
    Workflow,
    WorkflowCreate,
    WorkflowUpdate,
)

# Verbatim from ../shared/seeds/002 (completion callback example).
SEED_002_CALLBACK = {
    "request_id": "123e4567-e89b-12d3-a456-426614174000",
    "status": "COMPLETED",
    "integrator_id": "456e7890-e12b-34d5-b678-526614174111",
    "stats": {
        "total_calls": 2,
        "completed_calls": 2,
        "timeout_calls": 0,
        "replied_calls": 2,
        "replied_option_one_count": 1,
        "replied_option_two_count": 1,
        "avg_duration": 30.0,
        "success_rate": 100.0,
    },
    "request_calls": [
        {
            "id": "aaa111bb-2222-3333-4444-555555555555",
            "status": "COMPLETED",
            "phone_number": "+23480xxxxxxxx",
            "user_tag_identifiers": {"customer_id": "CUST001"},
            "call_result_duration": 32,
            "call_result_options_selected": "1",
            "created_at": "2024-06-21T10:00:00.000000",
        },
        {
            "id": "bbb222cc-3333-4444-5555-666666666666",
            "status": "COMPLETED",
            "phone_number": "+23480xxxxxxxx",
            "user_tag_identifiers": {"customer_id": "CUST002"},
            "call_result_duration": 28,
            "call_result_options_selected": "2",
            "created_at": "2024-06-21T10:01:00.000000",
        },
    ],
}


def test_seed_002_callback_parses_field_for_field() -> None:
    cb = CompletionCallback.model_validate(SEED_002_CALLBACK)
    assert cb.request_id == "123e4567-e89b-12d3-a456-426614174000"
    assert cb.status == "COMPLETED"
    assert cb.integrator_id == "456e7890-e12b-34d5-b678-526614174111"
    assert cb.stats.model_dump(exclude_none=True) == SEED_002_CALLBACK["stats"]
    assert cb.stats.reply_counts == {"1": 1, "2": 1}
    assert len(cb.request_calls) == 2
    for parsed, raw in zip(cb.request_calls, SEED_002_CALLBACK["request_calls"], strict=True):
        assert parsed.id == raw["id"]
        assert parsed.status == raw["status"]
        assert parsed.phone_number == raw["phone_number"]
        assert parsed.user_tag_identifiers == raw["user_tag_identifiers"]
        assert parsed.call_result_duration == raw["call_result_duration"]
        assert type(parsed.call_result_duration) is int
        assert parsed.call_result_options_selected == raw["call_result_options_selected"]
    assert cb.request_calls[0].created_at == datetime(2024, 6, 21, 10, 0, 0)
    assert cb.request_calls[1].created_at == datetime(2024, 6, 21, 10, 1, 0)


def test_reply_counts_as_a_map_and_unknown_fields_are_accepted() -> None:
    body = {
        **SEED_002_CALLBACK,
        "brand_new_field": {"anything": True},
        "stats": {
            "total_calls": 5,
            "completed_calls": 4,
            "replied_option_counts": {"1": 2, "2": 1, "3": "1"},
            "replied_option_four_count": 0,
            "cost_in_kobo": 1200,
        },
    }
    cb = CompletionCallback.model_validate(body)
    assert cb.stats.reply_counts == {"1": 2, "2": 1, "3": 1, "4": 0}
    assert cb.model_extra == {"brand_new_field": {"anything": True}}
    assert cb.stats.model_extra is not None and cb.stats.model_extra["cost_in_kobo"] == 1200


def test_no_reply_counts_at_all() -> None:
    assert CallStats(total_calls=1).reply_counts == {}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "request_id"),
        ({"request_id": "x"}, "status"),
        ({"request_id": "x" * 129, "status": "COMPLETED"}, "request_id"),
        ({"request_id": "<@U1>", "status": "COMPLETED"}, "request_id"),
        ({"request_id": "x", "status": "COMPLETED", "request_calls": "many"}, "request_calls"),
    ],
)
def test_malformed_callbacks_are_refused(body: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        CompletionCallback.model_validate(body)


def test_a_callbacks_unreadable_values_are_kept_as_unreadable_not_refused() -> None:
    """One bad value must not lose the other calls' results: it is bounded instead."""
    cb = CompletionCallback.model_validate(
        {
            "request_id": "b1",
            "status": "X" * 3100,
            "stats": {"total_calls": "many", "replied_option_counts": {"1": "²", "2": 3}},
            "request_calls": [
                {
                    "id": "c" * 500,
                    "status": "<!channel>",
                    "phone_number": "+234" + "9" * 5000,
                    "call_result_duration": float("inf"),
                    "call_result_options_selected": "<@U123>",
                    "user_tag_identifiers": "not a map",
                },
                {"id": "c2", "status": "COMPLETED", "phone_number": "+2348031000001"},
            ],
        }
    )
    assert cb.status == "UNREADABLE"
    assert cb.stats.total_calls is None and cb.stats.reply_counts == {"2": 3}
    bad, good = cb.request_calls
    assert (bad.id, bad.status, bad.phone_number) == (None, "UNREADABLE", None)
    assert (bad.call_result_duration, bad.call_result_options_selected) == (None, "UNREADABLE")
    assert bad.user_tag_identifiers == {}
    assert (good.id, good.status, good.phone_number) == ("c2", "COMPLETED", "+2348031000001")


def test_workflow_create_rules() -> None:
    ok = WorkflowCreate(
        name=" Reminder ",
        message="Hi [name]",
        include_reply=True,
        response_options={"2": "no", "1": "yes"},
    )
    assert ok.name == "Reminder"
    assert list(ok.response_options or {}) == ["1", "2"]
    bad = [
        ({"name": "", "message": "x"}, "name"),
        ({"name": "n", "message": "Hi [name"}, "never closed"),
        ({"name": "n", "message": "x" * 4001}, "4,001 characters"),
        ({"name": "n", "message": "x", "include_reply": True}, "response_options is empty"),
        ({"name": "n", "message": "x", "response_options": {"0": "zero"}}, "'0' is not a keypad"),
        ({"name": "n", "message": "x", "call_back_url": "ftp://x"}, "not an http"),
        ({"name": "n", "message": "x", "colour": "red"}, "colour"),
    ]
    for body, problem in bad:
        with pytest.raises(ValidationError, match=problem):
            WorkflowCreate.model_validate(body)


def test_workflow_update_sends_only_what_is_set() -> None:
    assert WorkflowUpdate(name="New").model_dump(exclude_unset=True) == {"name": "New"}


def test_call_request_voice_must_be_a_catalogue_pair() -> None:
    base = {"workflow_id": "w", "workflow_params": [{"phone_number": "+2348076960623"}]}
    assert CallRequest.model_validate(
        {**base, "tts_voice_accent": "igbo", "tts_voice_gender": "female"}
    )
    with pytest.raises(ValidationError, match="not a premium voice"):
        CallRequest.model_validate(
            {**base, "tts_voice_accent": "hausa", "tts_voice_gender": "female"}
        )
    with pytest.raises(ValidationError, match="give both or none"):
        CallRequest.model_validate({**base, "tts_voice_accent": "igbo"})
    with pytest.raises(ValidationError, match=r"not a valid E\.164"):
        CallRequest.model_validate(
            {"workflow_id": "w", "workflow_params": [{"phone_number": "0807 696 0623"}]}
        )


def test_workflow_and_pages_accept_both_shapes() -> None:
    assert Workflow.model_validate({"workflow_id": "w1", "name": "n"}).id == "w1"
    bare = Page[Workflow].model_validate([{"id": "a", "name": "A"}])
    wrapped = Page[Workflow].model_validate({"data": [{"id": "a", "name": "A"}], "total": 11})
    assert [w.id for w in bare.items] == [w.id for w in wrapped.items] == ["a"]
    assert wrapped.has_next and not bare.has_next
