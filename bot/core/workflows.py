"""Workflow management: the cache, and every change to the workflows kept at a provider.

Knows nothing of Slack. A provider may allow few management requests (Intron:
6 a minute, 60 an hour), so: lists come from the SQLite cache; a change that
would have to wait longer than `interactive_wait` for a slot is refused at
once with the time it becomes possible (`RateLimitedError.retry_after`), never
sent to draw a 429; and every change is recorded in the audit trail. Workflows
we create or edit always send their results to this app; ones created
elsewhere are flagged when they don't.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.models import RequestRecord
from bot.core.orders import InvalidOrder, Problem
from bot.core.providers import Providers
from bot.core.workflow_checks import app_workflow, check_app_workflow
from bot.input import templates
from bot.providers.base import (
    AuthenticationError,
    Capabilities,
    NotFoundError,
    OutcomeUnknownError,
    Page,
    Provider,
    ProviderCall,
    ProviderConnectionError,
    ProviderError,
    ProviderRequest,
    RateLimitedError,
    RefusedError,
    Workflow,
    WorkflowDraft,
)
from bot.store import Store
from bot.text import clip, quoted

log = logging.getLogger(__name__)


class InvalidWorkflow(RefusedError):
    """A draft of an app-side workflow that its provider's rules refuse; `problems` is
    field → what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        text = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        super().__init__(text, operation="workflow", field=next(iter(problems), None))


def kept_as_code(workflow: Workflow) -> RefusedError:
    return RefusedError(
        f"'{workflow.name}' is kept as code (WORKFLOWS_FILE): change it in that file, not in Slack",
        operation="workflow",
    )


class WorkflowService:
    """Workflows for every front end: cached reads, quota-aware audited changes."""

    def __init__(
        self,
        store: Store,
        providers: Providers,
        *,
        max_age: timedelta = timedelta(minutes=10),
        interactive_wait: float = 10.0,
    ) -> None:
        self.store = store
        self.cache = store.workflows
        self.providers = providers
        self.max_age = max_age
        self.interactive_wait = interactive_wait
        self._locks: dict[str, asyncio.Lock] = {}
        # WORKFLOWS_FILE's refused workflows as last loaded, for the admins to see in Slack.
        self.file_refusals: list[str] = []

    # ------------------------------------------------------------ reads (cache)

    def cached(self) -> list[Workflow]:
        """Every cached workflow of an enabled provider, by name."""
        return [w for w in self.cache.all() if w.provider in self.providers]

    def get(self, workflow_id: str) -> Workflow | None:
        workflow = self.cache.get(workflow_id)
        return workflow if workflow is not None and workflow.provider in self.providers else None

    def find(self, ref: str) -> Workflow:
        """The workflow with this id, or this name (any case); InvalidOrder otherwise."""
        wanted = ref.strip()
        if (by_id := self.get(wanted)) is not None:
            return by_id
        workflows = self.cached()
        matches = [w for w in workflows if w.name.casefold() == wanted.casefold()]
        if len(matches) == 1:
            return matches[0]
        if matches:
            message = (
                f"workflow {quoted(ref)} names {len(matches)} workflows; "
                f"use the id instead ({', '.join(w.id for w in matches)})"
            )
        else:
            known = ", ".join(w.name for w in workflows) or "none yet"
            message = f"workflow {quoted(ref)} does not exist; known workflows: {clip(known, 500)}"
        raise InvalidOrder([Problem("workflow", ref, message)])

    def managed(self) -> list[Provider]:
        """The providers whose workflows live at the provider (and are cached here)."""
        return [p for p in self.providers if p.capabilities.workflows_at_provider]

    def app_side(self) -> list[Provider]:
        """The providers whose workflows live in this app's database."""
        return [p for p in self.providers if not p.capabilities.workflows_at_provider]

    def load_file(self, path: Path | None) -> list[str]:
        """Load the workflows kept as code (`WORKFLOWS_FILE`) in place of the ones loaded
        before; each refused workflow is logged, and the refusals returned."""
        from bot.input.workflows_file import load_workflows_file

        if path is None:
            workflows, refusals = [], []
        else:
            workflows, refusals = load_workflows_file(path, [p.id for p in self.providers])
        self.cache.replace_kept(workflows)
        self.file_refusals = list(refusals)
        for refusal in refusals:
            log.warning("WORKFLOWS_FILE: %s", refusal)
        return refusals

    def fetched_at(self) -> datetime | None:
        """When the oldest of the providers' lists was fetched (None: one never was)."""
        times = [self.cache.fetched_at(p.id) for p in self.managed()]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def stale(self, provider: Provider) -> bool:
        fetched = self.cache.fetched_at(provider.id)
        return fetched is None or datetime.now(UTC) - fetched > self.max_age

    def calls_back_here(self, workflow: Workflow) -> bool:
        """True when the provider will send this workflow's results to this app."""
        provider = self.providers.get(workflow.provider)
        expected = provider.callback_url
        if expected is None or not provider.capabilities.workflows_at_provider:
            return True
        return (workflow.callback_url or "").rstrip("/") == expected.rstrip("/")

    def requests_using(self, workflow_id: str) -> list[RequestRecord]:
        """Our requests that used this workflow, newest first."""
        return self.store.requests.for_workflow(workflow_id)

    def wait_time(self, provider: Provider) -> float:
        """Seconds before the provider's management quota allows one more request."""
        return provider.wait_time("management")

    # ------------------------------------------------------------ the provider

    @asynccontextmanager
    async def _turn(self, provider: Provider, action: str) -> AsyncIterator[None]:
        """One management request at a time per provider, each checked against the quota
        first, so a burst of clicks is told when to retry instead of queueing for minutes."""
        async with self._locks.setdefault(provider.id, asyncio.Lock()):
            self.check_quota(provider, action)
            yield

    def check_quota(self, provider: Provider, action: str) -> None:
        """Refuse, with the time it becomes possible, an action the quota would make wait."""
        if not provider.capabilities.workflows_at_provider:
            return  # its workflows live here: no management request, no quota
        wait = self.wait_time(provider)
        if wait > self.interactive_wait:
            raise RateLimitedError(
                f"{provider.capabilities.quota_note}; you can {action} again in {wait:.0f} s",
                operation=action,
                retry_after=wait,
            )

    async def refresh(self, provider: Provider | None = None) -> list[Workflow]:
        """Replace the cache with the provider's list (every managed provider's if None)."""
        found: list[Workflow] = []
        for each in [provider] if provider is not None else self.managed():
            if not each.capabilities.workflows_at_provider:
                found += [w for w in self.cached() if w.provider == each.id]
                continue  # its list is this app's own
            async with self._turn(each, "refresh the list"):
                workflows = await each.list_workflows()
            # The provider keeps no calling hours nor press-9 option: ours, put back.
            workflows = [self.store.consent.overlay(w) for w in workflows]
            self.cache.replace(each.id, workflows)
            found += workflows
        return found

    async def create(self, provider: Provider, draft: WorkflowDraft, actor: str) -> Workflow:
        draft = _consent_draft(draft, provider)  # calling hours, press 9 (bot/core/consent.py)
        if not provider.capabilities.workflows_at_provider:
            if problems := check_app_workflow(draft, provider.id):
                raise InvalidWorkflow(problems)
            workflow = app_workflow(
                draft, provider.id, f"wf-{secrets.token_hex(6)}", created_at=datetime.now(UTC)
            )
        else:
            async with self._turn(provider, "create a workflow"):
                workflow = await provider.create_workflow(draft)
        workflow = _with_consent(workflow, draft)
        with self.store.write():
            self.cache.put(workflow)
            _keep_consent(self.store, workflow)
            self.store.audit.record(actor, "workflow.created", workflow.id, {"name": workflow.name})
        return workflow

    async def update(self, workflow_id: str, draft: WorkflowDraft, actor: str) -> Workflow:
        """Replace every editable field of the workflow with the draft's."""
        before = self._known(workflow_id)
        if before.read_only:
            raise kept_as_code(before)
        provider = self.providers.get(before.provider)
        draft = _consent_draft(draft, provider)
        if not provider.capabilities.workflows_at_provider:
            if problems := check_app_workflow(draft, provider.id):
                raise InvalidWorkflow(problems)
            workflow = app_workflow(draft, provider.id, workflow_id, created_at=before.created_at)
        else:
            async with self._turn(provider, "edit a workflow"):
                workflow = await provider.update_workflow(workflow_id, draft)
        workflow = _with_consent(workflow, draft)
        with self.store.write():
            self.cache.put(workflow)
            _keep_consent(self.store, workflow)
            self.store.audit.record(
                actor,
                "workflow.updated",
                workflow_id,
                {"changed": _changed_fields(before, workflow)},
            )
        return workflow

    async def repoint(self, workflow_id: str, actor: str) -> Workflow:
        """Point an existing workflow's results at this app."""
        before = self._known(workflow_id)
        provider = self.providers.get(before.provider)
        async with self._turn(provider, "fix a callback URL"):
            workflow = await provider.repoint_workflow(workflow_id)
        with self.store.write():
            self.cache.put(workflow)
            self.store.audit.record(
                actor,
                "workflow.callback_fixed",
                workflow_id,
                {"from": before.callback_url, "to": workflow.callback_url},
            )
        return workflow

    async def delete(self, workflow_id: str, actor: str) -> None:
        before = self._known(workflow_id)
        if before.read_only:
            raise kept_as_code(before)
        provider = self.providers.get(before.provider)
        if provider.capabilities.workflows_at_provider:
            async with self._turn(provider, "delete a workflow"):
                await provider.delete_workflow(workflow_id)
        with self.store.write():
            self.cache.delete(workflow_id)
            self.store.audit.record(actor, "workflow.deleted", workflow_id, {"name": before.name})

    async def requests(self, workflow_id: str, page: int = 1) -> Page[ProviderRequest]:
        provider = self.providers.get(self._known(workflow_id).provider)
        async with self._turn(provider, "list a workflow's requests"):
            return await provider.workflow_requests(workflow_id, page)

    async def calls(
        self,
        workflow_id: str,
        *,
        page: int = 1,
        per_page: int = 10,
        ref: str | None = None,
        outcome: str | None = None,
        phone: str | None = None,
    ) -> Page[ProviderCall]:
        provider = self.providers.get(self._known(workflow_id).provider)
        async with self._turn(provider, "list a workflow's calls"):
            return await provider.workflow_calls(
                workflow_id, page=page, per_page=per_page, ref=ref, outcome=outcome, phone=phone
            )

    def _known(self, workflow_id: str) -> Workflow:
        workflow = self.get(workflow_id)
        if workflow is None:
            raise NotFoundError(
                "that workflow is no longer in the list; refresh it", operation="workflow"
            )
        return workflow


def _consent_draft(draft: WorkflowDraft, provider: Provider) -> WorkflowDraft:
    """The draft as its provider gets it: with key 9 ("Stop these calls") on its keypad
    when it has the press-9 option; InvalidWorkflow when the two fields are wrong."""
    from bot.core.consent import check_consent_fields, with_stop_key

    if problems := check_consent_fields(draft, provider.capabilities):
        raise InvalidWorkflow(problems)
    return with_stop_key(draft)


def _with_consent(workflow: Workflow, draft: WorkflowDraft) -> Workflow:
    return workflow.model_copy(
        update={"calling_hours": draft.calling_hours, "press_9_to_stop": draft.press_9_to_stop}
    )


def _keep_consent(store: Store, workflow: Workflow) -> None:
    store.consent.set_workflow_rules(
        workflow.id,
        calling_hours=workflow.calling_hours,
        press_9_to_stop=workflow.press_9_to_stop,
    )


NAME_LIMIT = 150


def check_draft(draft: WorkflowDraft, capabilities: Capabilities) -> dict[str, str]:
    """Every problem with a draft at once, by field, each saying what would be right."""
    problems: dict[str, str] = {}
    if not draft.name:
        problems["name"] = "Give the workflow a name, e.g. Appointment reminder."
    elif len(draft.name) > NAME_LIMIT:
        problems["name"] = f"The name is {len(draft.name)} characters; keep it to {NAME_LIMIT}."
    if not draft.message:
        problems["message"] = "Write the message the call will speak."
    elif problem := templates.bracket_problem(draft.message):
        problems["message"] = problem
    elif len(draft.message) > capabilities.message_limit:
        problems["message"] = (
            f"The message is {len(draft.message):,} characters; {capabilities.label}'s limit "
            f"is {capabilities.message_limit:,}, after the variables are filled in."
        )
    if draft.kind not in capabilities.workflow_kinds:
        kinds = ", ".join(capabilities.workflow_kinds)
        problems["kind"] = f"'{draft.kind}' is not a type {capabilities.label} knows; use {kinds}."
    bad = [d for d in draft.keypad if d not in "123456789" or len(d) != 1]
    if bad:
        problems["keypad"] = f"'{bad[0]}' is not a keypad digit; options use the digits 1-9."
    return problems


def _changed_fields(before: Workflow, after: Workflow) -> list[str]:
    fields = (
        "name",
        "description",
        "kind",
        "message",
        "keypad",
        "callback_url",
        "audio_url",
        "call_flow",
        "options",
    )
    return sorted(f for f in fields if getattr(before, f) != getattr(after, f))


def describe_workflow_failure(exc: ProviderError, provider: Provider | None = None) -> str:
    """What went wrong with a workflow change, in words a user can act on."""
    label = provider.capabilities.label if provider else "The provider"
    if isinstance(exc, RateLimitedError):
        wait = f"in {exc.retry_after:.0f} s" if exc.retry_after else "shortly"
        note = provider.capabilities.quota_note if provider else "The quota is spent"
        return f"{note}; this is possible again {wait}."
    if isinstance(exc, OutcomeUnknownError):
        return (
            f"{label} gave no clear answer, so the change may or may not have been made; "
            "refresh the list to check before trying again."
        )
    if isinstance(exc, AuthenticationError):
        key = provider.capabilities.key_setting if provider else "the API key"
        return f"{label} refused our API key; an admin should check {key}."
    if isinstance(exc, NotFoundError):
        return f"{label} no longer has this workflow; refresh the list."
    if isinstance(exc, ProviderConnectionError):
        return f"{label} could not be reached; nothing was changed. Try again in a minute."
    if isinstance(exc, RefusedError):
        return f"{label} refused it: {exc.message}"
    return f"{label} failed ({exc.message})."
