"""The Intron client against the sandbox over a real socket: operations, errors, retries."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from bot.providers.base import (
    AuthenticationError,
    NotFoundError,
    Order,
    OrderRecipient,
    OutcomeUnknownError,
    ProviderConnectionError,
    RateLimitedError,
    RefusedError,
    ServerError,
    Workflow,
)
from bot.providers.intron.client import IntronClient
from bot.providers.intron.models import CallRequest, WorkflowCreate, WorkflowUpdate
from bot.providers.intron.provider import REFERENCE_TAG
from bot.providers.intron.provider import call_request as body_for
from bot.providers.intron.sandbox import Fault
from tests.conftest import FAST_RETRIES, NUMBER, CallbackReceiver, Sandbox, make_client

REMINDER = WorkflowCreate(
    name="Appointment reminder",
    description="Reminds patients",
    message="Hello [name], your appointment is on [date]. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)


def order(
    workflow_id: str, numbers: list[str], reference: str, voice: str | None = None
) -> CallRequest:
    """`POST /call`'s body for these numbers, as the Intron provider builds it."""
    return body_for(
        Order(
            request_id=reference,
            workflow=Workflow(id=workflow_id, provider="intron", name="Appointment reminder"),
            recipients=[
                OrderRecipient(position, number, {"name": f"P{position}", "date": "Monday"})
                for position, number in enumerate(numbers, start=1)
            ],
            voice=voice,
        )
    )


def call_request(workflow_id: str, digits: str = "1", reference: str = "req-1") -> CallRequest:
    return order(workflow_id, [NUMBER.format(d) for d in digits], reference, "igbo/female")


# ---------------------------------------------------------------- workflows


async def test_workflow_lifecycle(client: IntronClient) -> None:
    created = await client.create_workflow(REMINDER)
    assert created.id and created.name == "Appointment reminder"
    assert created.variables == ["name", "date"]
    assert created.response_options == {"1": "Confirm", "2": "Cancel"}

    assert [w.id for w in await client.list_workflows()] == [created.id]
    assert (await client.get_workflow(created.id)).message == REMINDER.message

    updated = await client.update_workflow(created.id, WorkflowUpdate(name="Renamed"))
    assert updated.name == "Renamed" and updated.message == REMINDER.message

    await client.delete_workflow(created.id)
    assert await client.list_workflows() == []
    with pytest.raises(NotFoundError, match="not found"):
        await client.get_workflow(created.id)


async def test_update_that_breaks_the_workflow_is_refused(client: IntronClient) -> None:
    created = await client.create_workflow(REMINDER)
    with pytest.raises(RefusedError, match="response_options is empty"):
        await client.update_workflow(created.id, WorkflowUpdate(response_options={}))
    assert (await client.get_workflow(created.id)).response_options == {
        "1": "Confirm",
        "2": "Cancel",
    }


# ---------------------------------------------------------------- calls and results


async def test_place_calls_status_and_callback(
    sandbox: Sandbox, client: IntronClient, receiver: CallbackReceiver
) -> None:
    workflow = await client.create_workflow(
        REMINDER.model_copy(update={"call_back_url": receiver.url})
    )
    batch_id = await client.place_calls(call_request(workflow.id, digits="12093"))
    assert (await client.call_status(batch_id)).processing_status == "VOICE_CALL_QUEUED"

    (callback,) = await receiver.wait_for(1)
    assert callback["request_id"] == batch_id
    outcomes = {c["phone_number"][-1]: c for c in callback["request_calls"]}
    assert outcomes["1"]["status"] == "COMPLETED"
    assert outcomes["1"]["call_result_options_selected"] == "1"
    assert outcomes["2"]["call_result_options_selected"] == "2"
    assert outcomes["0"]["status"] == "TIMEOUT"
    assert outcomes["9"]["status"] == "FAILED"
    assert outcomes["3"]["status"] == "COMPLETED"
    assert outcomes["3"]["call_result_options_selected"] is None
    assert all(
        c["user_tag_identifiers"][REFERENCE_TAG] == "req-1" for c in callback["request_calls"]
    )
    assert callback["stats"] == {
        "total_calls": 5,
        "completed_calls": 3,
        "timeout_calls": 1,
        "replied_calls": 2,
        "replied_option_one_count": 1,
        "replied_option_two_count": 1,
        "avg_duration": callback["stats"]["avg_duration"],
        "success_rate": 60.0,
    }

    one_call = outcomes["1"]["id"]
    status = await client.call_status(one_call)
    assert status.processing_status == "VOICE_CALL_PROCESSED"
    assert status.call_duration_in_seconds == outcomes["1"]["call_result_duration"] > 0
    assert (await client.call_status(batch_id)).processing_status == "VOICE_CALL_PROCESSED"
    assert sandbox.state.numbers_called() == {NUMBER.format(d): 1 for d in "12093"}


async def test_workflow_requests_and_calls_are_paginated_and_filtered(
    client: IntronClient, sandbox: Sandbox
) -> None:
    workflow = await client.create_workflow(REMINDER)
    # 25 calls over three requests: 10 + 9 + 6.
    first = await client.place_calls(call_request(workflow.id, "1234567890", "a"))
    await client.place_calls(call_request(workflow.id, "123456789", "b"))
    await client.place_calls(order(workflow.id, [f"+23480312345{d}1" for d in range(6)], "c"))
    await asyncio.sleep(0.2)  # let the sandbox finish the calls

    requests = await client.list_workflow_requests(workflow.id, per_page=2)
    assert len(requests.items) == 2 and requests.total == 3 and requests.has_next
    last_page = await client.list_workflow_requests(workflow.id, page=2, per_page=2)
    assert [r.id for r in last_page.items] == [first] and not last_page.has_next
    assert last_page.items[0].stats is not None
    assert last_page.items[0].stats.total_calls == 10

    pages = [await client.list_workflow_calls(workflow.id, page=p, per_page=10) for p in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [10, 10, 5]
    assert len({c.id for p in pages for c in p.items}) == 25

    by_batch = await client.list_workflow_calls(workflow.id, batch_id=first, per_page=100)
    assert by_batch.total == 10 and {c.batch_id for c in by_batch.items} == {first}
    timeouts = await client.list_workflow_calls(workflow.id, status="TIMEOUT", per_page=100)
    # Not answered: the numbers ending in 0, and in 8 (busy, reported as not answered).
    assert sorted(c.phone_number for c in timeouts.items) == sorted(
        [NUMBER.format(0), NUMBER.format(8), NUMBER.format(8)]
    )
    by_number = await client.list_workflow_calls(workflow.id, phone_number=NUMBER.format(5))
    assert len(by_number.items) == 2
    assert {c.user_tag_identifiers[REFERENCE_TAG] for c in by_number.items} == {"a", "b"}


# ---------------------------------------------------------------- error classes


async def test_intron_validation_errors_carry_intrones_message(client: IntronClient) -> None:
    workflow = await client.create_workflow(REMINDER)
    # Built by hand, skipping our own checks, to see the sandbox's.
    raw = CallRequest(
        workflow_id=workflow.id,
        workflow_params=[{"phone_number": NUMBER.format(3), "workflow_variables": {"name": "Ada"}}],
    )
    with pytest.raises(RefusedError, match=r"missing workflow variables \[date\]") as e:
        await client.place_calls(raw)
    assert e.value.status_code == 400
    with pytest.raises(NotFoundError, match="workflow nope not found"):
        await client.place_calls(raw.model_copy(update={"workflow_id": "nope"}))
    with pytest.raises(RefusedError, match="per_page must be at most 100"):
        await client.list_workflow_calls(workflow.id, per_page=500)


@pytest.mark.parametrize("status", [401, 403])
async def test_authentication_error(sandbox: Sandbox, client: IntronClient, status: int):
    sandbox.state.faults.append(Fault("list_workflows", status=status))
    with pytest.raises(AuthenticationError, match=f"HTTP {status}.*check INTRON_API_KEY"):
        await client.list_workflows()
    assert sandbox.state.requests_seen["list_workflows"] == 1


def test_a_blank_key_is_refused_before_anything_is_sent() -> None:
    for blank in ("", "   "):
        with pytest.raises(ValueError, match="needs an API key"):
            IntronClient(blank, "http://127.0.0.1:9")


async def test_server_error_on_a_read_is_not_retried(sandbox: Sandbox, client: IntronClient):
    sandbox.state.faults.append(Fault("list_workflows", status=500))
    with pytest.raises(ServerError, match="HTTP 500"):
        await client.list_workflows()
    assert sandbox.state.requests_seen["list_workflows"] == 1


async def test_connection_error_after_retries() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}", policy=FAST_RETRIES) as client:
        with pytest.raises(ProviderConnectionError, match="could not connect"):
            await client.list_workflows()
        # Nothing was sent, so even POST /call may be retried; it still fails cleanly.
        with pytest.raises(ProviderConnectionError):
            await client.place_calls(call_request("wf"))


# ---------------------------------------------------------------- retries


async def test_a_503_on_post_call_is_retried_and_calls_once(
    sandbox: Sandbox, client: IntronClient
) -> None:
    workflow = await client.create_workflow(REMINDER)
    sandbox.state.faults.append(Fault("place_calls", status=503))
    batch_id = await client.place_calls(call_request(workflow.id, "13"))
    assert batch_id in sandbox.state.batches
    assert sandbox.state.requests_seen["place_calls"] == 2
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1, NUMBER.format(3): 1}


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_errors_are_retried_for_reads(
    sandbox: Sandbox, client: IntronClient, status: int
) -> None:
    sandbox.state.faults.append(Fault("list_workflows", status=status, times=2))
    assert await client.list_workflows() == []
    assert sandbox.state.requests_seen["list_workflows"] == 3


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_post_call_that_may_have_been_acted_on_is_not_resent(
    sandbox: Sandbox, client: IntronClient, status: int
) -> None:
    workflow = await client.create_workflow(REMINDER)
    sandbox.state.faults.append(Fault("place_calls", status=status))
    with pytest.raises(OutcomeUnknownError, match="not resent"):
        await client.place_calls(call_request(workflow.id))
    assert sandbox.state.requests_seen["place_calls"] == 1


async def test_read_timeout_on_post_call_is_outcome_unknown(sandbox: Sandbox) -> None:
    async with make_client(sandbox.url, timeout=0.3) as client:
        workflow = await client.create_workflow(REMINDER)
        sandbox.state.faults.append(Fault("place_calls", answer_delay=1.0))
        with pytest.raises(OutcomeUnknownError, match=r"ReadTimeout.*may have reached Intron"):
            await client.place_calls(call_request(workflow.id, "1"))
    # The sandbox did place the call: resending would have called this person twice.
    assert sandbox.state.requests_seen["place_calls"] == 1
    assert sandbox.state.numbers_called() == {NUMBER.format(1): 1}


async def test_read_timeout_on_a_read_is_retried(sandbox: Sandbox) -> None:
    async with make_client(sandbox.url, timeout=0.3) as client:
        sandbox.state.faults.append(Fault("list_workflows", answer_delay=1.0))
        assert await client.list_workflows() == []
    assert sandbox.state.requests_seen["list_workflows"] == 2


async def test_429_honours_retry_after(sandbox: Sandbox, client: IntronClient) -> None:
    sandbox.state.faults.append(Fault("list_workflows", status=429, retry_after=0.5))
    start = time.monotonic()
    assert await client.list_workflows() == []
    assert time.monotonic() - start >= 0.5
    assert sandbox.state.requests_seen["list_workflows"] == 2


async def test_429_longer_than_we_will_wait_is_reported_with_the_time(
    sandbox: Sandbox,
) -> None:
    async with make_client(sandbox.url, max_wait=5) as client:
        sandbox.state.faults.append(Fault("place_calls", status=429, retry_after=90))
        with pytest.raises(RateLimitedError, match="wait 90 s") as caught:
            await client.place_calls(call_request("wf"))
        assert caught.value.retry_after == 90


# ---------------------------------------------------------------- rate limits


@pytest.mark.slow
async def test_a_burst_of_20_calls_waits_its_turn_without_a_429(
    sandbox: Sandbox, client: IntronClient
) -> None:
    """Against a real server, over a real socket, in real time: the sandbox sees the
    arrivals and would answer 429 to the 6th in any second. (The limiter's rule itself is
    tested with a fake clock and 50 requests in tests/test_ratelimit.py.)"""
    workflow = await client.create_workflow(REMINDER)
    requests = [call_request(workflow.id, "3", reference=f"r{i}") for i in range(20)]
    start = time.monotonic()
    batch_ids = await asyncio.gather(*(client.place_calls(r) for r in requests))
    elapsed = time.monotonic() - start
    assert len(set(batch_ids)) == 20
    assert sandbox.state.rate_limited == {}
    # 5 per rolling second: the 20th request cannot go before 3 s after the first.
    assert elapsed >= 3.0
    assert elapsed < 6.0


async def test_management_limits_make_a_burst_wait_not_fail() -> None:
    from bot.core.ratelimit import Window
    from tests.conftest import start_sandbox

    scaled = (Window(6, 0.6), Window(10, 1.5))  # Intron's 6/min and 60/h, scaled down
    box = await start_sandbox(management_windows=scaled)
    try:
        async with make_client(box.url, management_windows=scaled) as client:
            start = time.monotonic()
            results = await asyncio.gather(*(client.list_workflows() for _ in range(14)))
            elapsed = time.monotonic() - start
        assert results == [[]] * 14
        assert box.state.rate_limited == {}
        # 10 per 1.5 s: the 11th..14th go only after the first leaves the long window.
        assert elapsed >= 1.5
    finally:
        await box.server.stop()


async def test_a_wait_longer_than_allowed_fails_fast_with_the_time() -> None:
    from bot.core.ratelimit import Window
    from tests.conftest import start_sandbox

    hourly = (Window(2, 3600.0),)
    box = await start_sandbox(management_windows=hourly)
    try:
        async with make_client(box.url, management_windows=hourly, max_wait=1) as client:
            await client.list_workflows()
            await client.list_workflows()
            with pytest.raises(RateLimitedError, match="possible again in 3600 s") as caught:
                await client.list_workflows()
        assert caught.value.retry_after == pytest.approx(3600, abs=2)
        assert box.state.requests_seen["list_workflows"] == 2  # the third was never sent
    finally:
        await box.server.stop()


# ---------------------------------------------------------------- secrets


async def test_the_api_key_never_appears_in_errors_or_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    key = "test-key-0123456789"
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []
    async with make_client(sandbox.url, timeout=0.2) as client:
        assert key not in repr(client)
        sandbox.state.faults += [
            Fault("list_workflows", status=503),
            Fault("get_workflow", status=500),
            Fault("place_calls", answer_delay=0.5),
        ]
        await client.list_workflows()
        for attempt in (client.get_workflow("x"), client.place_calls(call_request("wf"))):
            try:
                await attempt
            except Exception as exc:
                errors.append(exc)
    assert len(errors) == 2
    assert all(key not in str(e) and key not in repr(e) for e in errors)
    assert caplog.records and all(key not in r.getMessage() for r in caplog.records)
