"""The workflow actions a click asked for, run by the worker: a provider's answer can take
seconds (and its quota), so the click is acknowledged at once and the modal or
list it came from is updated here with the outcome."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.jobs import Job, Kind, NewJob
from bot.core.workflows import describe_workflow_failure
from bot.logsafety import secrets_in
from bot.providers.base import Provider, ProviderError, WorkflowDraft
from bot.slack.blocks import done_modal
from bot.slack.calls.views import NAME, workflow_summary
from bot.slack.context import SlackContext
from bot.slack.home.jobs import publish_home
from bot.slack.workflows import views as wv
from bot.slack.workflows.listing import workflows_message
from bot.text import outside, outside_error

log = logging.getLogger(__name__)

SAVE = "slack.workflow.save"
DELETE = "slack.workflow.delete"
FIX = "slack.workflow.fix"
REFRESH = "slack.workflows.refresh"
SHOW = "slack.workflows.show"
VIEW = "slack.workflow.view"
CALLS = "slack.workflow.calls"
LANE = "default"


def _source(body: dict[str, Any], response_url: str | None = None) -> dict[str, Any]:
    """Where the click came from, so the job can redraw it."""
    user = body.get("user") or {}
    return {
        "user": user.get("id") if isinstance(user, dict) else user,
        "home": (body.get("view") or {}).get("type") == "home",
        "response_url": response_url or body.get("response_url"),
    }


def save_job(body: dict, form: wv.WorkflowForm, draft: WorkflowDraft) -> NewJob:
    payload = {
        "source": _source(body, form.response_url),
        "view_id": body["view"]["id"],
        "form": form.model_dump(),
        "draft": draft.model_dump(),
    }
    return NewJob(SAVE, payload, lane=LANE)


def delete_job(body: dict, ref: wv.WorkflowRef, name: str) -> NewJob:
    payload = {
        "source": _source(body, ref.response_url),
        "view_id": body["view"]["id"],
        "workflow_id": ref.workflow_id,
        "name": name,
    }
    return NewJob(DELETE, payload, lane=LANE)


def fix_job(body: dict, workflow_id: str) -> NewJob:
    return NewJob(FIX, {"source": _source(body), "workflow_id": workflow_id}, lane=LANE)


def refresh_job(body: dict) -> NewJob:
    return NewJob(REFRESH, {"source": _source(body)}, lane=LANE)


def show_job(body: dict, *, page: int = 1, notice: str | None = None) -> NewJob:
    return NewJob(SHOW, {"source": _source(body), "page": page, "notice": notice}, lane=LANE)


def view_job(view_id: str, workflow_id: str) -> NewJob:
    return NewJob(VIEW, {"view_id": view_id, "workflow_id": workflow_id}, lane=LANE)


def calls_job(view_id: str, query: wv.CallsQuery) -> NewJob:
    return NewJob(CALLS, {"view_id": view_id, "query": query.model_dump()}, lane=LANE)


class WorkflowJobs:
    """Runs the workflow jobs with the interactive Slack client."""

    def __init__(self, ctx: SlackContext, client: AsyncWebClient) -> None:
        self.ctx = ctx
        self.client = client

    def kinds(self) -> dict[str, Kind]:
        # One attempt each: a change may not be resent blindly, and a person is
        # waiting to hear how it went.
        return {
            SAVE: Kind(self.save, LANE, max_attempts=1),
            DELETE: Kind(self.delete, LANE, max_attempts=1),
            FIX: Kind(self.fix, LANE, max_attempts=1),
            REFRESH: Kind(self.refresh, LANE, max_attempts=1),
            SHOW: Kind(self.show, LANE, max_attempts=3),
            VIEW: Kind(self.view, LANE, max_attempts=1),
            CALLS: Kind(self.calls, LANE, max_attempts=1),
        }

    async def save(self, job: Job) -> None:
        ctx, payload = self.ctx, job.payload
        form = wv.WorkflowForm.model_validate(payload["form"])
        draft = WorkflowDraft.model_validate(payload["draft"])
        provider = ctx.provider(form.provider)
        sandbox = ctx.sandbox
        if job.attempts > 1:  # the worker saving it died: it may have reached the provider
            await self._modal(
                payload["view_id"],
                done_modal(
                    "Not sure it saved",
                    f":grey_question: *{outside(draft.name, NAME)}* may or may not have been "
                    "saved (the app stopped while saving it). Refresh the list to check before "
                    "trying again.",
                    sandbox,
                ),
            )
            return
        user = payload["source"]["user"]
        try:
            if form.workflow_id:
                saved = await ctx.workflows.update(form.workflow_id, draft, actor=user)
            else:
                saved = await ctx.workflows.create(provider, draft, actor=user)
        except ProviderError as exc:
            await self._modal(
                payload["view_id"],
                done_modal(
                    "Not saved",
                    f":x: *{outside(draft.name, NAME)}* was not saved. "
                    f"{self._failure(exc, provider)}",
                    sandbox,
                ),
            )
            return
        verb = "Updated" if form.workflow_id else "Created"
        await self._modal(
            payload["view_id"],
            done_modal(
                "Saved",
                f":white_check_mark: {verb} *{outside(saved.name, NAME)}*. "
                f"Its results come back to this app.\n{workflow_summary(saved)}",
                sandbox,
            ),
        )
        await self._redraw(
            payload["source"], notice=f":white_check_mark: {verb} *{outside(saved.name, NAME)}*."
        )

    async def delete(self, job: Job) -> None:
        ctx, payload = self.ctx, job.payload
        name = payload["name"]
        try:
            await ctx.workflows.delete(payload["workflow_id"], actor=payload["source"]["user"])
        except ProviderError as exc:
            await self._modal(
                payload["view_id"],
                done_modal(
                    "Not deleted",
                    f":x: *{outside(name, NAME)}* was not deleted. {self._failure(exc)}",
                    ctx.sandbox,
                ),
            )
            return
        await self._modal(
            payload["view_id"],
            done_modal("Deleted", f":wastebasket: Deleted *{outside(name, NAME)}*.", ctx.sandbox),
        )
        await self._redraw(
            payload["source"], notice=f":wastebasket: Deleted *{outside(name, NAME)}*."
        )

    async def fix(self, job: Job) -> None:
        payload = job.payload
        try:
            fixed = await self.ctx.workflows.repoint(
                payload["workflow_id"], actor=payload["source"]["user"]
            )
            shown = outside(fixed.name, NAME)
            notice = f":white_check_mark: *{shown}* now sends its results to this app."
        except ProviderError as exc:
            notice = f":x: The callback URL was not changed. {self._failure(exc)}"
        await self._redraw(payload["source"], notice=notice)

    async def refresh(self, job: Job) -> None:
        try:
            await self.ctx.workflows.refresh()
            notice = ":arrows_counterclockwise: Refreshed just now."
        except ProviderError as exc:
            notice = f"{self._failure(exc)} Showing the list as last fetched."
        await self._redraw(job.payload["source"], notice=notice)

    async def show(self, job: Job) -> None:
        await self._redraw(
            job.payload["source"], page=job.payload["page"], notice=job.payload.get("notice")
        )

    async def view(self, job: Job) -> None:
        ctx, payload = self.ctx, job.payload
        workflow = ctx.workflows.get(payload["workflow_id"])
        if workflow is None:
            return
        try:
            recent, notice = await ctx.workflows.requests(workflow.id), None
        except ProviderError as exc:
            recent, notice = None, self._failure(exc)
        await self._modal(
            payload["view_id"],
            wv.view_modal(
                workflow,
                calls_back_here=ctx.workflows.calls_back_here(workflow),
                recent=recent,
                ours=ctx.workflows.requests_using(workflow.id),
                notice=notice,
                sandbox=ctx.sandbox,
            ),
        )

    async def calls(self, job: Job) -> None:
        query = wv.CallsQuery.model_validate(job.payload["query"])
        try:
            page = await self.ctx.workflows.calls(
                query.workflow_id,
                page=query.page,
                ref=query.batch_id,
                outcome=query.outcome,
                phone=query.phone_number,
            )
            notice = None
        except ProviderError as exc:
            page, notice = None, self._failure(exc)
        await self._modal(
            job.payload["view_id"],
            wv.calls_modal(query, page, notice=notice, sandbox=self.ctx.sandbox),
        )

    def _failure(self, exc: ProviderError, provider: Provider | None = None) -> str:
        """What went wrong, for people: the provider's words escaped, numbers masked and
        our secrets removed."""
        text = describe_workflow_failure(exc, provider)
        return outside_error(text, 1000, secrets_in(self.ctx.settings))

    async def _modal(self, view_id: str, view: Any) -> None:
        """Update a modal the user may have closed meanwhile; that is not an error."""
        try:
            await self.client.views_update(view_id=view_id, view=view)
        except SlackApiError as exc:
            if exc.response.get("error") not in ("not_found", "view_not_found"):
                raise

    async def _redraw(
        self, source: dict[str, Any], *, page: int = 1, notice: str | None = None
    ) -> None:
        """Redraw whatever the click came from: the Home tab, or the list message."""
        user = source["user"]
        if source.get("home"):
            await publish_home(
                self.ctx, self.client, user, can_manage=await self.ctx.can_manage(user)
            )
        elif source.get("response_url"):
            listing = await workflows_message(self.ctx, user, page, notice)
            respond = AsyncRespond(response_url=source["response_url"])
            await respond(replace_original=True, text=listing.text, blocks=listing.blocks)
