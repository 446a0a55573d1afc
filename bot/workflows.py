"""Workflow management: the cache, and every change to Intron's workflows.

Knows nothing of Slack. Intron allows only 6 management requests a minute and
60 an hour, so: lists come from the SQLite cache; a change that would have to
wait longer than `interactive_wait` for a slot is refused at once with the time
it becomes possible (`RateLimitedError.retry_after`), never sent to draw a 429;
and every change is recorded in the audit trail. Workflows we create or edit
always call back to this app; ones created elsewhere are flagged when they don't.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from bot.intron.client import IntronClient
from bot.intron.endpoints import LimitGroup
from bot.intron.errors import (
    AuthenticationError,
    IntronConnectionError,
    IntronError,
    IntronValidationError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
)
from bot.intron.models import (
    Page,
    Workflow,
    WorkflowCall,
    WorkflowCreate,
    WorkflowRequest,
    WorkflowUpdate,
)
from bot.store import RequestRecord, Store


class WorkflowService:
    """Workflows for every front end: cached reads, quota-aware audited changes."""

    def __init__(
        self,
        store: Store,
        client: IntronClient,
        callback_url: str,
        *,
        max_age: timedelta = timedelta(minutes=10),
        interactive_wait: float = 10.0,
    ) -> None:
        self.store = store
        self.client = client
        self.callback_url = callback_url
        self.max_age = max_age
        self.interactive_wait = interactive_wait
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------ reads (cache)

    def cached(self) -> list[Workflow]:
        """Every cached workflow, by name."""
        return self.store.workflows()

    def get(self, workflow_id: str) -> Workflow | None:
        return self.store.workflow(workflow_id)

    def fetched_at(self) -> datetime | None:
        return self.store.workflows_fetched_at()

    def stale(self) -> bool:
        fetched = self.fetched_at()
        return fetched is None or datetime.now(UTC) - fetched > self.max_age

    def calls_back_here(self, workflow: Workflow) -> bool:
        """True when Intron will send this workflow's results to this app."""
        return (workflow.call_back_url or "").rstrip("/") == self.callback_url.rstrip("/")

    def requests_using(self, workflow_id: str) -> list[RequestRecord]:
        """Our requests that used this workflow, newest first."""
        return self.store.requests_for_workflow(workflow_id)

    def wait_time(self) -> float:
        """Seconds before Intron's management quota allows one more request."""
        return self.client.wait_time(LimitGroup.MANAGEMENT)

    # ------------------------------------------------------------ Intron

    @asynccontextmanager
    async def _turn(self, action: str) -> AsyncIterator[None]:
        """One management request at a time, each checked against the quota first, so a
        burst of clicks is told when to retry instead of queueing for minutes."""
        async with self._lock:
            self.check_quota(action)
            yield

    async def refresh(self) -> list[Workflow]:
        """Replace the cache with Intron's list."""
        async with self._turn("refresh the list"):
            workflows = await self.client.list_workflows()
        self.store.replace_workflows(workflows)
        return workflows

    async def create(self, draft: WorkflowCreate, actor: str) -> Workflow:
        async with self._turn("create a workflow"):
            workflow = await self.client.create_workflow(
                draft.model_copy(update={"call_back_url": self.callback_url})
            )
        self.store.put_workflow(workflow)
        self.store.audit(actor, "workflow.created", workflow.id, {"name": workflow.name})
        return workflow

    async def update(self, workflow_id: str, draft: WorkflowCreate, actor: str) -> Workflow:
        """Replace every editable field of the workflow with the draft's."""
        before = self.get(workflow_id)
        changes = WorkflowUpdate.model_validate(
            draft.model_dump()
            | {"call_back_url": self.callback_url, "response_options": draft.response_options or {}}
        )
        async with self._turn("edit a workflow"):
            workflow = await self.client.update_workflow(workflow_id, changes)
        self.store.put_workflow(workflow)
        self.store.audit(
            actor,
            "workflow.updated",
            workflow_id,
            {
                "changed": sorted(_changed_fields(before, workflow)),
            },
        )
        return workflow

    async def fix_callback(self, workflow_id: str, actor: str) -> Workflow:
        """Point an existing workflow's results at this app."""
        before = self.get(workflow_id)
        async with self._turn("fix a callback URL"):
            workflow = await self.client.update_workflow(
                workflow_id, WorkflowUpdate(call_back_url=self.callback_url)
            )
        self.store.put_workflow(workflow)
        self.store.audit(
            actor,
            "workflow.callback_fixed",
            workflow_id,
            {
                "from": before.call_back_url if before else None,
                "to": self.callback_url,
            },
        )
        return workflow

    async def delete(self, workflow_id: str, actor: str) -> None:
        before = self.get(workflow_id)
        async with self._turn("delete a workflow"):
            await self.client.delete_workflow(workflow_id)
        self.store.delete_workflow(workflow_id)
        self.store.audit(
            actor,
            "workflow.deleted",
            workflow_id,
            {
                "name": before.name if before else None,
            },
        )

    async def requests(self, workflow_id: str, page: int = 1) -> Page[WorkflowRequest]:
        async with self._turn("list a workflow's requests"):
            return await self.client.list_workflow_requests(workflow_id, page=page, per_page=5)

    async def calls(
        self,
        workflow_id: str,
        *,
        page: int = 1,
        per_page: int = 10,
        batch_id: str | None = None,
        status: str | None = None,
        phone_number: str | None = None,
    ) -> Page[WorkflowCall]:
        async with self._turn("list a workflow's calls"):
            return await self.client.list_workflow_calls(
                workflow_id,
                page=page,
                per_page=per_page,
                batch_id=batch_id,
                status=status,
                phone_number=phone_number,
            )

    def check_quota(self, action: str) -> None:
        """Refuse, with the time it becomes possible, an action the quota would make wait."""
        wait = self.wait_time()
        if wait > self.interactive_wait:
            raise RateLimitedError(
                f"Intron allows 6 workflow requests a minute and 60 an hour; you can "
                f"{action} again in {wait:.0f} s",
                operation=action,
                retry_after=wait,
            )


def _changed_fields(before: Workflow | None, after: Workflow) -> set[str]:
    if before is None:
        return {"*"}
    fields = (
        "name",
        "description",
        "workflow_type",
        "message",
        "include_reply",
        "response_options",
        "call_back_url",
    )
    return {f for f in fields if getattr(before, f) != getattr(after, f)}


def describe_workflow_failure(exc: IntronError) -> str:
    """What went wrong with a workflow change, in words a user can act on."""
    if isinstance(exc, RateLimitedError):
        wait = f"in {exc.retry_after:.0f} s" if exc.retry_after else "shortly"
        return (
            f"Intron allows 6 workflow requests a minute and 60 an hour; "
            f"this is possible again {wait}."
        )
    if isinstance(exc, OutcomeUnknownError):
        return (
            "Intron gave no clear answer, so the change may or may not have been made; "
            "refresh the list to check before trying again."
        )
    if isinstance(exc, AuthenticationError):
        return "Intron refused our API key; an admin should check INTRON_API_KEY."
    if isinstance(exc, NotFoundError):
        return "Intron no longer has this workflow; refresh the list."
    if isinstance(exc, IntronConnectionError):
        return "Intron could not be reached; nothing was changed. Try again in a minute."
    if isinstance(exc, IntronValidationError):
        return f"Intron refused it: {exc.message}"
    return f"Intron failed ({exc.message})."
