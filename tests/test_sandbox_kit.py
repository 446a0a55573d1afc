"""What the three sandboxes share (`bot/providers/sandbox_kit.py`), checked on each of
them over a real socket: a request without its key is refused, a fault scripted through
`POST /_sandbox/faults` is answered once in the sandbox's own error envelope (and does
nothing), and `GET /_sandbox/state` counts what was asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.providers.bizphone.client import API_KEY_HEADER
from bot.providers.bizphone.sandbox import create_sandbox_app as bizphone_app
from bot.providers.intron.sandbox import create_sandbox_app as intron_app
from bot.providers.intron_direct.sandbox import create_sandbox_app as direct_app
from bot.serving import start_server


@dataclass
class Case:
    make: Any
    auth: dict[str, str]
    operation: str  # a read that changes nothing
    path: str
    envelope: dict[str, Any]  # the sandbox's own error body, for a 503 fault


CASES = {
    "intron": Case(
        intron_app,
        {"Authorization": "Bearer k"},
        "call_status",
        "/status/nope",
        {"data": None, "message": "sandbox fault: HTTP 503", "status": "Error"},
    ),
    "intron-direct": Case(
        direct_app,
        {"Authorization": "Bearer k"},
        "call_status",
        "/call/nope",
        {"status": "error", "message": "sandbox fault: HTTP 503"},
    ),
    "bizphone": Case(
        bizphone_app,
        {API_KEY_HEADER: "k"},
        "call_status",
        "/status/nope",
        {"status": "error", "message": "sandbox fault: HTTP 503"},
    ),
}


@pytest.fixture(params=list(CASES))
async def box(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Case, httpx.AsyncClient]]:
    case = CASES[request.param]
    server = await start_server(case.make())
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield case, http
    await server.stop()


async def test_no_key_is_401_and_counts_nothing(box: tuple[Case, httpx.AsyncClient]) -> None:
    case, http = box
    assert (await http.get(case.path)).status_code == 401
    wrong = {k: "" for k in case.auth}
    assert (await http.get(case.path, headers=wrong)).status_code == 401
    state = (await http.get("/_sandbox/state")).json()
    assert state["requests_seen"] == {}


async def test_a_scripted_fault_is_answered_once_in_the_sandboxs_envelope(
    box: tuple[Case, httpx.AsyncClient],
) -> None:
    case, http = box
    added = await http.post(
        "/_sandbox/faults", json={"operation": case.operation, "status": 503, "retry_after": 2}
    )
    assert added.json() == {"pending_faults": 1}
    faulted = await http.get(case.path, headers=case.auth)
    assert faulted.status_code == 503 and faulted.json() == case.envelope
    assert faulted.headers["retry-after"] == "2"
    # Once: the next is the sandbox's own answer (no such call or request).
    assert (await http.get(case.path, headers=case.auth)).status_code == 404
    # HEAD is answered as GET would be, not with an error of the sandbox's own.
    assert (await http.head(case.path, headers=case.auth)).status_code == 404
    state = (await http.get("/_sandbox/state")).json()
    assert state["requests_seen"][case.operation] == 3
