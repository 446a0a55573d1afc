"""Wiring: the one place that puts the parts together, for either process.

`open_runtime` opens what both processes share (the store, the providers, the
core services, the Slack context); `run_worker` adds the job worker and every
job kind; `bot/web/app.py` adds the routes. Nothing else imports a provider
package or builds a Slack client.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.types import ASGIApp

from bot.core.campaigns import PUMP, PUMP_LANE, CampaignService, Pace
from bot.core.escalation import EscalationService
from bot.core.jobs import Job, Jobs, Kind, NewJob, Worker
from bot.core.providers import Providers
from bot.core.reconcile import Reconciler
from bot.core.requests import (
    APPLY_CALLBACK,
    CALLS_LANE,
    PLACE,
    RECONCILE,
    RESULTS_LANE,
    CallService,
)
from bot.core.wakeup import WakeSender
from bot.core.workflows import WorkflowService
from bot.providers.base import (
    Provider,
    ProviderConnectionError,
    ProviderError,
    Workflow,
    WorkflowDraft,
)
from bot.providers.registry import open_providers, sandbox_apps
from bot.settings import Settings
from bot.slack import app as slack_app
from bot.slack.context import SlackContext
from bot.slack.escalations import handlers as escalation_policies
from bot.store import Store
from bot.store.ratelimits import SqliteSlotLog
from bot.store.slack import SlackStore

log = logging.getLogger(__name__)

REFRESH_WORKFLOWS = "workflows.refresh"
REFRESH_EVERY = 60.0  # seconds between looks at whether a provider's list is stale

DEMO_WORKFLOW = WorkflowDraft(
    name="Demo reminder",
    description="Created by the robocall bot in the sandbox so there is something to try.",
    message="Hello [name], this is a test call from Slack. Press 1 to confirm, 2 to cancel.",
    keypad={"1": "Confirm", "2": "Cancel"},
)

# The demo workflows of the providers whose workflows live in this app (in the
# sandbox), put straight into the workflow store, once (`demo_workflow:<provider>`).
APP_SIDE_DEMO_MESSAGE = (
    "Hello {{name}}, this is a test call from Slack. Press 1 to confirm, 2 to cancel."
)
APP_SIDE_DEMO_NAMES = {
    "intron-direct": "Demo reminder (Intron direct)",
    "bizphone": "Demo reminder (BizPhone)",
}


def demo_workflow(provider: Provider) -> Workflow:
    """The demo workflow of a provider whose workflows live in this app."""
    return Workflow(
        id=f"demo-{provider.id}",
        provider=provider.id,
        name=APP_SIDE_DEMO_NAMES.get(provider.id, f"Demo reminder ({provider.capabilities.label})"),
        description="Created by the robocall bot in the sandbox so there is something to try.",
        message=APP_SIDE_DEMO_MESSAGE,
        keypad={"1": "Confirm", "2": "Cancel"},
    )


def put_demo_workflows(runtime: Runtime) -> None:
    """In the sandbox, a demo workflow for each provider whose workflows live in this app,
    once: one deleted is not made again."""
    store = runtime.store
    for provider in runtime.providers:
        key = f"demo_workflow:{provider.id}"
        if not provider.sandbox or provider.capabilities.workflows_at_provider:
            continue
        if store.meta.get(key) is None:
            workflow = demo_workflow(provider)
            with store.db.write():
                store.workflows.put(workflow)
                store.meta.set(key, workflow.id)


@dataclass
class Runtime:
    """Everything a process of the app uses, open."""

    settings: Settings
    store: Store
    jobs: Jobs
    providers: Providers
    workflows: WorkflowService
    service: CallService
    slack: SlackContext
    delivery_client: AsyncWebClient
    callback_token: str
    sandbox_key: str
    escalations: EscalationService | None = None
    campaigns: CampaignService | None = None


def slack_clients(
    settings: Settings, session: aiohttp.ClientSession
) -> tuple[AsyncWebClient, AsyncWebClient]:
    """Two Slack Web API clients over one connection pool: one for answers people wait
    for (views.open…), which waits out 429s and retries 5xx and drops; one for the
    message jobs, which handle 429s themselves, waiting exactly Retry-After."""
    assert settings.slack_bot_token is not None
    common = {
        "token": settings.slack_bot_token.get_secret_value(),
        "base_url": settings.slack_api_url,
        "session": session,
    }
    interactive = AsyncWebClient(
        **common,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=3),
            AsyncRateLimitErrorRetryHandler(max_retry_count=10),
            AsyncServerErrorRetryHandler(max_retry_count=3),
        ],
    )
    return interactive, AsyncWebClient(**common)


@asynccontextmanager
async def open_runtime(settings: Settings, store: Store | None = None) -> AsyncIterator[Runtime]:
    """Open the store (upgrading it), the providers, the core and the Slack context."""
    async with AsyncExitStack() as stack:
        if store is None:
            store = Store(settings.database_path)
            stack.callback(store.close)
        configured = settings.callback_token
        token = store.meta.token(
            "callback_token", configured.get_secret_value() if configured else None
        )
        sandbox_key = store.meta.token("sandbox_key", None)
        providers = Providers(
            open_providers(
                settings,
                slot_logs=lambda name: SqliteSlotLog(
                    store.db, name, max_in_flight=settings.intron_timeout + 10.0
                ),
                callback_token=token,
                sandbox_key=sandbox_key,
            )
        )
        for provider in providers:
            stack.push_async_callback(provider.aclose)
        jobs = Jobs(store.jobs)
        waker = WakeSender(store.meta)  # tells the workers at once when a job is added
        stack.callback(waker.close)
        jobs.on_add(waker.send)
        workflows = WorkflowService(store, providers)
        workflows.load_file(settings.workflows_file)  # refusals are logged; the rest load
        service = CallService(
            store,
            jobs,
            providers,
            workflows,
            default_region=settings.default_phone_region,
            allowed_number_types=settings.allowed_number_types,
            reconcile_after=settings.reconcile_after,
            calling_hours=settings.calling_hours,  # bot/core/consent.py
            calls_per_day_cap=settings.calls_per_day_cap,
        )
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        interactive, delivery = slack_clients(settings, session)
        slack = SlackContext(service, workflows, SlackStore(store.db), jobs, settings, interactive)
        service.listeners.append(slack_app.notifier(slack))
        # Escalations: steps' calls are requests; their changes are heard as a listener.
        escalations = EscalationService(store, jobs, service, phonebook=slack_app.phonebook(slack))
        service.listeners.append(escalations)
        escalations.listeners.append(slack_app.escalation_notifier(slack))
        escalations.listeners.append(escalation_policies.HomeEscalations(slack))  # Home tab
        slack.escalations = escalations
        # Campaigns: chunks are requests; their changes are heard as a listener.
        campaigns = CampaignService(service, pace=lambda p: campaign_pace(settings, p))
        campaigns.listeners.append(slack_app.campaign_notifier(slack))
        slack.campaigns = campaigns
        yield Runtime(
            settings=settings,
            store=store,
            jobs=jobs,
            providers=providers,
            workflows=workflows,
            service=service,
            slack=slack,
            delivery_client=delivery,
            callback_token=token,
            sandbox_key=sandbox_key,
            escalations=escalations,
            campaigns=campaigns,
        )


def sandbox_mounts(settings: Settings, store: Store) -> dict[str, ASGIApp]:
    """The sandboxes the web process serves in demo mode (path → app); none otherwise."""
    return sandbox_apps(settings, store.meta.token("sandbox_key", None))


def campaign_pace(settings: Settings, provider: Provider) -> Pace:
    """A provider's limits as a campaign uses them (the settings its client is opened with,
    bot/providers/registry.py): submissions per second, calls per second where the plan
    counts calls, calls in flight where it limits them."""
    batch = provider.capabilities.max_batch
    if provider.id == "intron-direct":
        per_second = settings.intron_direct_calls_per_minute / 60.0
        return Pace(
            submits_per_second=per_second,
            max_batch=batch,
            calls_per_second=per_second,
            in_flight=settings.intron_direct_concurrent_calls,
        )
    if provider.id == "bizphone":
        return Pace(submits_per_second=5.0, max_batch=batch)  # open_bizphone's default
    return Pace(submits_per_second=float(settings.intron_calls_per_second), max_batch=batch)


def job_kinds(runtime: Runtime) -> dict[str, Kind]:
    """Every kind of job, the core's and the Slack adapter's."""
    service = runtime.service
    kinds = {
        PLACE: Kind(service.place, CALLS_LANE),
        RECONCILE: Kind(Reconciler(service).run, RESULTS_LANE),
        APPLY_CALLBACK: Kind(service.apply_callback, RESULTS_LANE, max_attempts=10),
        REFRESH_WORKFLOWS: Kind(WorkflowRefresher(runtime).run, "default"),
    }
    if runtime.escalations is not None:
        kinds |= runtime.escalations.kinds()
    if runtime.campaigns is not None:
        kinds[PUMP] = Kind(runtime.campaigns.pump, PUMP_LANE)
    return kinds | slack_app.job_kinds(runtime.slack, runtime.delivery_client)


def make_worker(runtime: Runtime) -> Worker:
    """A worker over the runtime's database, with its first refresh queued."""
    # ESCALATION_POLICIES_FILE is loaded by the worker only, as its first job (refusals
    # are logged and shown to admins; the rest load): the web reads policies from the
    # database, so each start reads every user's profile once, not once per process.
    runtime.jobs.add(escalation_policies.load_job())
    runtime.jobs.add(refresh_workflows_job())
    return Worker(
        runtime.jobs,
        job_kinds(runtime),
        runtime.settings.lanes(),
        runtime.store.meta,
        lease=runtime.settings.job_lease,
        on_parked=slack_app.parked_reporter(runtime.slack),
    )


async def run_worker(settings: Settings) -> None:
    """`python -m bot worker`: run jobs until cancelled, at a lower CPU priority than the
    web process, so that a busy worker never slows an acknowledgement."""
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    async with open_runtime(settings) as runtime:
        log.info("worker started (lanes %s)", runtime.settings.lanes())
        worker = make_worker(runtime)
        gc.freeze()  # what start-up made stays: out of the collector's full passes
        await worker.run()


def refresh_workflows_job(delay: float = 0.0) -> NewJob:
    return NewJob(
        REFRESH_WORKFLOWS,
        {},
        lane="default",
        dedupe=REFRESH_WORKFLOWS,
        run_at=time.time() + delay,
    )


class WorkflowRefresher:
    """Keeps each provider's cached workflows fresh (a job that queues its next run);
    in the sandbox, gives it a demo workflow so there is something to try."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, job: Job) -> None:
        workflows = self.runtime.workflows
        try:
            for provider in workflows.managed():
                never_fetched = self.runtime.store.workflows.fetched_at(provider.id) is None
                if provider.sandbox and never_fetched and not await provider.list_workflows():
                    await workflows.create(provider, DEMO_WORKFLOW, actor="sandbox")
                if workflows.stale(provider):
                    await workflows.refresh(provider)
            # After the Intron one, so "Demo reminder" names it whenever it is listed.
            put_demo_workflows(self.runtime)
        except ProviderConnectionError as exc:  # e.g. the web process, with the sandbox, is
            log.info("could not refresh the workflows yet: %s", exc.message)  # not up yet
            self.runtime.jobs.add(refresh_workflows_job(delay=2.0))
            return
        except ProviderError as exc:
            log.warning("could not refresh the workflows: %s", exc.message)
        self.runtime.jobs.add(refresh_workflows_job(delay=REFRESH_EVERY))
