"""The sandbox as a server: raw HTTP, as any Intron client would see it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest

from bot.core.ratelimit import MemorySlotLog, Window
from bot.providers.base import Order, OrderRecipient, Workflow
from bot.providers.intron.client import IntronClient
from bot.providers.intron.models import WorkflowCreate
from bot.providers.intron.provider import call_request
from bot.providers.registry import SANDBOX_PREFIX, open_providers, sandbox_apps
from bot.settings import Settings
from tests.conftest import NUMBER, CallbackReceiver, Sandbox, start_sandbox

AUTH = {"Authorization": "Bearer anything"}


def order(workflow_id: str, number: str, values: dict[str, str] | None = None):
    """`POST /call`'s body for one number, as the Intron provider builds it."""
    return call_request(
        Order(
            request_id="r",
            workflow=Workflow(id=workflow_id, provider="intron", name="w"),
            recipients=[OrderRecipient(1, number, values or {})],
        )
    )


async def test_requests_without_a_bearer_token_are_refused(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
            response = await http.get("/workflows", headers=headers)
            assert response.status_code == 401
            assert response.json()["status"] == "Error"
            assert "Bearer" in response.json()["message"]
        assert (await http.get("/workflows", headers=AUTH)).json() == {
            "data": [],
            "message": "workflows found",
            "status": "Ok",
        }


async def test_bad_requests_get_intrones_error_envelope(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, headers=AUTH) as http:
        not_json = await http.post("/workflows", content=b"{nope")
        assert not_json.status_code == 400
        assert not_json.json()["message"] == "request body is not valid JSON"
        bad = await http.post(
            "/call", json={"workflow_id": "w", "workflow_params": [{"phone_number": "08076960623"}]}
        )
        assert bad.status_code == 400
        assert bad.json() == {
            "data": None,
            "status": "Error",
            "message": "workflow_params.0.phone_number: phone_number '08076960623' is not a "
            "valid E.164 number, e.g. +2348076960623",
        }
        missing = await http.get("/workflows/123")
        assert missing.status_code == 404 and missing.json()["message"] == (
            "workflow 123 not found"
        )
        paging = await http.get("/workflows/123/calls", params={"page": "0"})
        assert paging.status_code == 404  # the workflow is checked first


async def test_the_sandbox_answers_429_beyond_the_limit() -> None:
    box = await start_sandbox(call_windows=(Window(5, 1.0),))
    try:
        async with httpx.AsyncClient(base_url=box.url, headers=AUTH) as http:
            answers = [await http.get("/status/x") for _ in range(6)]
        assert [a.status_code for a in answers] == [404] * 5 + [429]
        assert 0 < float(answers[-1].headers["Retry-After"]) <= 1.0
        assert box.state.rate_limited == {"call_status": 1}
    finally:
        await box.server.stop()


async def test_no_key_press_is_reported_for_a_workflow_without_a_reply(
    client: IntronClient, receiver: CallbackReceiver
) -> None:
    workflow = await client.create_workflow(
        WorkflowCreate(name="Alert", message="Server [host] is down", call_back_url=receiver.url)
    )
    await client.place_calls(order(workflow.id, NUMBER.format(1), {"host": "db1"}))
    (callback,) = await receiver.wait_for(1)
    assert callback["request_calls"][0]["status"] == "COMPLETED"
    assert callback["request_calls"][0]["call_result_options_selected"] is None
    assert callback["stats"]["replied_calls"] == 0


async def test_callbacks_are_retried_until_answered_200(
    client: IntronClient, receiver: CallbackReceiver, sandbox: Sandbox
) -> None:
    sandbox.state.config.callback_backoff = 0.02
    receiver.refuse_first = 2
    workflow = await client.create_workflow(
        WorkflowCreate(name="Alert", message="Down", call_back_url=receiver.url)
    )
    batch_id = await client.place_calls(order(workflow.id, NUMBER.format(3)))
    (callback,) = await receiver.wait_for(1)
    assert callback["request_id"] == batch_id
    async with asyncio.timeout(5):  # the sandbox notes the 200 just after sending it
        while len(sandbox.state.callbacks[0]["attempts"]) < 3:
            await asyncio.sleep(0.01)
    assert sandbox.state.callbacks == [
        {"url": receiver.url, "request_id": batch_id, "attempts": [503, 503, 200]}
    ]


async def test_state_and_faults_over_http(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        added = await http.post(
            "/_sandbox/faults", json={"operation": "list_workflows", "status": 503}
        )
        assert added.json() == {"pending_faults": 1}
        assert (await http.get("/workflows", headers=AUTH)).status_code == 503
        state = (await http.get("/_sandbox/state")).json()
    assert state["requests_seen"] == {"list_workflows": 1}
    assert state["pending_faults"] == []


def test_python_m_bot_sandbox_serves_on_the_given_port(unused_tcp_port: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", str(unused_tcp_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{unused_tcp_port}/workflows", headers=AUTH, timeout=1
                )
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["status"] == "Ok"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _providers(settings: Settings) -> dict:
    return open_providers(
        settings,
        slot_logs=lambda name: MemorySlotLog(),
        callback_token="cb",
        sandbox_key="sandbox-secret",
    )


async def test_without_an_api_key_the_app_uses_the_sandbox_by_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTRON_API_KEY", raising=False)
    settings = Settings(_env_file=None, sandbox_callback_delay=0.01, port=3999)
    assert settings.uses_sandbox
    providers = _providers(settings)
    assert list(providers) == ["intron", "intron-direct", "bizphone"]  # demo: all three
    intron = providers["intron"]
    assert all(p.sandbox for p in providers.values())
    assert intron.client.base_url == f"http://127.0.0.1:3999{SANDBOX_PREFIX}"
    # The web process serves them there, accepting only the stored sandbox key.
    apps = sandbox_apps(settings, "sandbox-secret")
    assert list(apps) == [SANDBOX_PREFIX, "/_sandbox/intron-direct", "/_sandbox/bizphone"]
    assert all(a.state.sandbox.config.api_key == "sandbox-secret" for a in apps.values())
    for provider in providers.values():
        await provider.aclose()


async def test_with_an_api_key_the_configured_base_url_is_used() -> None:
    settings = Settings(
        _env_file=None, intron_api_key="real-key", intron_base_url="http://127.0.0.1:9/voicebot/v1/"
    )
    [intron] = _providers(settings).values()
    assert not intron.sandbox
    assert intron.client.base_url == "http://127.0.0.1:9/voicebot/v1"
    assert sandbox_apps(settings, "sandbox-secret") == {}
    await intron.aclose()


async def test_path_overrides_move_client_and_sandbox_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTRON_PATH_WORKFLOWS", "/workflow")
    box = await start_sandbox()
    try:
        async with httpx.AsyncClient(base_url=box.url, headers=AUTH) as http:
            assert (await http.get("/workflow")).status_code == 200
            assert (await http.get("/workflows")).status_code == 404
        async with IntronClient("k", box.url) as client:
            assert await client.list_workflows() == []
    finally:
        await box.server.stop()
    await asyncio.sleep(0)
