"""The async Intron voicebot client: one class, typed results, typed errors.

Its transport is the providers' shared one (`bot/providers/http.py`): rate
limits before sending, retries only where resending cannot do something twice,
the errors of `bot/providers/base.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from bot.core.ratelimit import SlidingWindowLimiter, SlotLog, Window
from bot.core.retry import PROVIDER_RETRIES, RetryPolicy
from bot.providers.base import ServerError
from bot.providers.http import DEFAULT_TIMEOUT, ProviderHTTP
from bot.providers.intron.endpoints import IntronPaths, LimitGroup, endpoints
from bot.providers.intron.models import (
    CallBatch,
    CallRequest,
    CallStatus,
    Page,
    Workflow,
    WorkflowCall,
    WorkflowCreate,
    WorkflowRequest,
    WorkflowUpdate,
)

M = TypeVar("M")

DEFAULT_CALL_WINDOWS = (Window(5, 1.0),)
DEFAULT_MANAGEMENT_WINDOWS = (Window(6, 60.0), Window(60, 3600.0))


class IntronClient:
    """Every operation of Intron's voicebot workflow API (seeds 000, 002, 003)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://voicebot.intron.health/voicebot/v1",
        *,
        paths: IntronPaths | None = None,
        call_windows: tuple[Window, ...] = DEFAULT_CALL_WINDOWS,
        management_windows: tuple[Window, ...] = DEFAULT_MANAGEMENT_WINDOWS,
        slot_logs: Mapping[str, SlotLog] | None = None,
        limit_margin: float = 0.01,
        max_wait: float | None = 120.0,
        policy: RetryPolicy = PROVIDER_RETRIES,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key.strip():
            raise ValueError("IntronClient needs an API key (INTRON_API_KEY)")
        logs = dict(slot_logs or {})
        windows = {LimitGroup.CALLS: call_windows, LimitGroup.MANAGEMENT: management_windows}
        self.limiters = {
            group: SlidingWindowLimiter(windows[group], logs.get(group), margin=limit_margin)
            for group in LimitGroup
        }
        self.http = ProviderHTTP(
            label="Intron",
            key_setting="INTRON_API_KEY",
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            endpoints=endpoints(paths or IntronPaths()),
            limiters=self.limiters,
            policy=policy,
            max_wait=max_wait,
            timeout=timeout,
            transport=transport,
            # A refusal pointing into `workflow_params` names a recipient: `place_calls`
            # raises RefusedError with `recipient` (index + 1 in this submission) and `field`.
            recipients_field="workflow_params",
        )
        self.base_url = self.http.base_url

    def wait_time(self, group: LimitGroup, share: float = 1.0) -> float:
        """Seconds before a request of `group` could be sent without waiting on our limiter."""
        return self.http.wait_time(group, share)

    def __repr__(self) -> str:  # never show the key
        return f"IntronClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> IntronClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------ calls

    async def place_calls(
        self, request: CallRequest, *, before_send: Callable[[], None] | None = None
    ) -> str:
        """`POST /call`; returns the batch id. Never resent once it may have reached Intron.

        `before_send` runs once a rate-limit slot is ours, just before each attempt
        goes on the wire: the moment a crash would leave the outcome unknown.
        It may raise to stop the attempt.
        """
        data = await self._send(
            "place_calls", json=request.model_dump(exclude_none=True), before_send=before_send
        )
        return _parse(CallBatch, data, "place_calls").batch_id

    async def call_status(self, call_id: str) -> CallStatus:
        """`GET /status/{call_id}`."""
        data = await self._send("call_status", path_params={"call_id": call_id})
        return _parse(CallStatus, data, "call_status")

    # ------------------------------------------------------------ workflows

    async def create_workflow(self, workflow: WorkflowCreate) -> Workflow:
        """`POST /workflows`."""
        data = await self._send("create_workflow", json=workflow.model_dump(exclude_none=True))
        return _parse(Workflow, data, "create_workflow")

    async def list_workflows(self) -> list[Workflow]:
        """`GET /workflows`."""
        data = await self._send("list_workflows")
        return _parse(Page[Workflow], data, "list_workflows").items

    async def get_workflow(self, workflow_id: str) -> Workflow:
        """`GET /workflows/{id}`."""
        data = await self._send("get_workflow", path_params={"workflow_id": workflow_id})
        return _parse(Workflow, data, "get_workflow")

    async def update_workflow(self, workflow_id: str, changes: WorkflowUpdate) -> Workflow:
        """`PUT /workflows/{id}` with only the fields set in `changes`."""
        data = await self._send(
            "update_workflow",
            path_params={"workflow_id": workflow_id},
            json=changes.model_dump(exclude_unset=True),
        )
        return _parse(Workflow, data, "update_workflow")

    async def delete_workflow(self, workflow_id: str) -> None:
        """`DELETE /workflows/{id}`."""
        await self._send("delete_workflow", path_params={"workflow_id": workflow_id})

    async def list_workflow_requests(
        self, workflow_id: str, *, page: int = 1, per_page: int = 10
    ) -> Page[WorkflowRequest]:
        """`GET /workflows/{id}/requests`: the batches sent with this workflow."""
        data = await self._send(
            "list_workflow_requests",
            path_params={"workflow_id": workflow_id},
            params={"page": page, "per_page": per_page},
        )
        return _page(WorkflowRequest, data, page, per_page, "list_workflow_requests")

    async def list_workflow_calls(
        self,
        workflow_id: str,
        *,
        page: int = 1,
        per_page: int = 10,
        batch_id: str | None = None,
        status: str | None = None,
        phone_number: str | None = None,
        share: float = 1.0,
        max_wait: float | None = None,
    ) -> Page[WorkflowCall]:
        """`GET /workflows/{id}/calls`, optionally filtered by batch, status and number.
        `share` below 1 leaves the rest of the quota to people, and `max_wait` 0 asks
        not to wait for it (reconciliation, which can come back later)."""
        filters = {"batch_id": batch_id, "status": status, "phone_number": phone_number}
        data = await self._send(
            "list_workflow_calls",
            path_params={"workflow_id": workflow_id},
            params={"page": page, "per_page": per_page}
            | {k: v for k, v in filters.items() if v is not None},
            share=share,
            max_wait=max_wait,
        )
        return _page(WorkflowCall, data, page, per_page, "list_workflow_calls")

    # ------------------------------------------------------------ transport

    async def _send(self, name: str, **options: Any) -> Any:
        """Send one operation; return the envelope's `data`."""
        return _data(await self.http.send(name, **options))


def _data(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        raise ServerError(
            f"Intron answered HTTP {response.status_code} with a body that is not JSON",
            status_code=response.status_code,
        ) from None
    return body.get("data") if isinstance(body, dict) else body


def _parse(model: type[M] | Any, data: Any, operation: str) -> M:
    try:
        return TypeAdapter(model).validate_python(data)
    except ValueError as exc:
        raise ServerError(
            f"{operation}: Intron's answer has an unexpected shape: {exc}", operation=operation
        ) from None


def _page(item: type[BaseModel], data: Any, page: int, per_page: int, operation: str) -> Page:
    parsed = _parse(Page[item], data, operation)  # type: ignore[valid-type]
    fields = parsed.model_fields_set
    return parsed.model_copy(
        update={
            "page": parsed.page if "page" in fields else page,
            "per_page": parsed.per_page if "per_page" in fields else per_page,
        }
    )
