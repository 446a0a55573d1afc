"""Both sides against the seeds' own examples (tests/contracts/): the client sends what
seed 002 shows and reads what it answers; the sandbox accepts what it shows and answers,
and calls back, in its shape. So a model cannot be wrong on both sides unnoticed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.providers.base import CallOutcome
from bot.providers.intron.client import IntronClient
from bot.providers.intron.models import CallRequest, WorkflowCreate, WorkflowUpdate
from bot.providers.intron.provider import read_callback
from tests.conftest import CallbackReceiver, Sandbox

CONTRACTS = Path(__file__).parent / "contracts" / "intron"


def contract(name: str) -> Any:
    return json.loads((CONTRACTS / name).read_text())


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, lists by their first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def assert_has_shape(actual: Any, expected: Any, where: str = "") -> None:
    """`actual` has every key of `expected`, with values of the same kind (a null on
    either side stands for a value the example happened to leave out)."""
    if expected == "null" or actual == "null":
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, item in expected.items():
            assert key in actual, f"{where}.{key} is missing; has {sorted(actual)}"
            assert_has_shape(actual[key], item, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list"
        if expected and actual:
            assert_has_shape(actual[0], expected[0], f"{where}[0]")
    else:
        assert actual == expected, f"{where}: {actual} where the seed has {expected}"


# ---------------------------------------------------------------- the client


async def test_the_client_sends_seed_002s_request_and_reads_its_answers() -> None:
    sent: list[httpx.Request] = []

    def intron(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "POST" and request.url.path.endswith("/call"):
            return httpx.Response(200, json=contract("place_calls.response.json"))
        return httpx.Response(200, json=contract("call_status.response.json"))

    seed_request = contract("place_calls.request.json")
    async with IntronClient(
        "api-key", "https://voicebot.example/voicebot/v1", transport=httpx.MockTransport(intron)
    ) as client:
        body = CallRequest.model_validate(seed_request)  # our model takes the seed's body
        batch_id = await client.place_calls(body)
        status = await client.call_status("12a9767f-b865-4404-91d0-a65d4cdt78fs")
    assert batch_id == "c4971df1-2978-4c06-b32c-7d5ea47256e1"
    assert status.processing_status == "VOICE_CALL_PROCESSED"
    posted = sent[0]
    assert posted.url.path == "/voicebot/v1/call"
    assert posted.headers["authorization"] == "Bearer api-key"
    assert json.loads(posted.content) == seed_request  # field for field, nothing added
    assert sent[1].url.path == "/voicebot/v1/status/12a9767f-b865-4404-91d0-a65d4cdt78fs"


def test_the_provider_reads_seed_002s_callback() -> None:
    report = read_callback((CONTRACTS / "completion_callback.json").read_bytes())
    assert report.provider_ref == "123e4567-e89b-12d3-a456-426614174000"
    assert report.final and report.status == "COMPLETED"
    assert [(u.outcome, u.key_pressed, u.duration) for u in report.updates] == [
        (CallOutcome.ANSWERED, "1", 32),
        (CallOutcome.ANSWERED, "2", 28),
    ]
    assert report.request_ids == frozenset()  # the seed's calls carry no tag of ours


def test_workflow_bodies_use_only_seed_003s_fields() -> None:
    fields = contract("workflow_fields.json")
    created = WorkflowCreate(
        name="Reminder",
        description="d",
        message="Hello [name]",
        include_reply=True,
        response_options={"1": "Yes"},
        call_back_url="https://bot.example/callbacks/intron/t",
    ).model_dump(exclude_none=True)
    assert set(created) <= set(fields["create"])
    assert {f for f, rule in fields["create"].items() if rule["required"]} <= set(created)
    assert created["workflow_type"] in fields["create"]["workflow_type"]["options"]
    updated = WorkflowUpdate(name="Renamed").model_dump(exclude_unset=True)
    assert set(updated) <= set(fields["update"])


# ---------------------------------------------------------------- the sandbox


async def test_the_sandbox_takes_seed_002s_request_and_answers_in_its_shape(
    sandbox: Sandbox, receiver: CallbackReceiver
) -> None:
    headers = {"Authorization": "Bearer api-key"}
    fields = contract("workflow_fields.json")["create"]
    async with httpx.AsyncClient(base_url=sandbox.url, headers=headers) as http:
        workflow = await http.post(
            "/workflows",
            json={
                "name": "Seed",
                "description": "every field of seed 003",
                "workflow_type": fields["workflow_type"]["options"][0],
                "message": "Hello [name]",
                "include_reply": True,
                "response_options": {"1": "Confirm", "2": "Cancel"},
                "call_back_url": receiver.url,
            },
        )
        assert workflow.status_code == 200, workflow.text
        body = contract("place_calls.request.json")
        body["workflow_id"] = workflow.json()["data"]["id"]
        placed = await http.post("/call", json=body)
        assert placed.status_code == 200, placed.text
        assert_has_shape(shape(placed.json()), shape(contract("place_calls.response.json")))
        status = await http.get(f"/status/{placed.json()['data']['batch_id']}")
        assert_has_shape(shape(status.json()), shape(contract("call_status.response.json")))
        query = {
            name: "1" if name.startswith("page") or name == "per_page" else "x"
            for name in contract("workflow_fields.json")["list_calls_query"]
        }
        listed = await http.get(f"/workflows/{body['workflow_id']}/calls", params=query)
        assert listed.status_code == 200
    (callback,) = await receiver.wait_for(1)
    assert_has_shape(shape(callback), shape(contract("completion_callback.json")))
    assert callback["request_calls"][0]["user_tag_identifiers"] == {"customer_id": "CUST001"}
    report = read_callback(json.dumps(callback))
    assert report.updates[0].outcome == CallOutcome.ANSWERED  # +…0623: answered, no key


@pytest.mark.parametrize("missing", ["workflow_id", "workflow_params"])
async def test_the_sandbox_refuses_what_seed_002_requires(sandbox: Sandbox, missing: str) -> None:
    body = contract("place_calls.request.json")
    del body[missing]
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": "Bearer k"}
    ) as http:
        answer = await http.post("/call", json=body)
    assert answer.status_code == 400 and missing in answer.json()["message"]
