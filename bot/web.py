"""The HTTP app: Slack, Intron's callbacks and a health check in one Starlette app.

Startup opens the store, the provider (the embedded sandbox when there is no
INTRON_API_KEY) and the Slack client, then in the background refreshes the
workflow cache and resumes any request a previous run left unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
from pydantic import ValidationError
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.background import Background
from bot.intron.errors import IntronError
from bot.intron.models import CompletionCallback, WorkflowCreate
from bot.provider import Provider, open_provider
from bot.reconcile import Reconciler
from bot.service import CallbackOutcome, CallService
from bot.settings import Settings
from bot.slack.context import SlackContext
from bot.slack.handlers import register
from bot.slack.home import HomeUpdater
from bot.slack.notifier import SlackNotifier
from bot.slack.outbox import SlackOutbox
from bot.store import Store
from bot.workflows import WorkflowService

log = logging.getLogger(__name__)

MAX_CALLBACK_BYTES = 1024 * 1024
WORKFLOW_REFRESH_EVERY = 60.0  # seconds between staleness checks

DEMO_WORKFLOW = WorkflowCreate(
    name="Demo reminder",
    description="Created by the robocall bot in the sandbox so there is something to try.",
    message="Hello [name], this is a test call from Slack. Press 1 to confirm, 2 to cancel.",
    include_reply=True,
    response_options={"1": "Confirm", "2": "Cancel"},
)


@dataclass
class Running:
    """Everything the routes need once the app has started."""

    settings: Settings
    store: Store
    provider: Provider
    service: CallService
    workflows: WorkflowService
    outbox: SlackOutbox
    slack: AsyncSlackRequestHandler
    background: Background
    callback_token: str

    @property
    def callback_url(self) -> str:
        return f"{self.settings.public_url.rstrip('/')}/callbacks/intron/{self.callback_token}"


def slack_clients(
    settings: Settings, session: aiohttp.ClientSession
) -> tuple[AsyncWebClient, AsyncWebClient]:
    """Two Slack Web API clients over one connection pool (a new connection per call
    costs ~10% of the CPU): one for interactive calls (views.open…), which waits out
    429s and retries 5xx and drops; one for the outbox, which handles 429s itself,
    waiting exactly Retry-After."""
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


def create_app(settings: Settings) -> Starlette:
    """The whole app as ASGI; `app.state.running` is set while it runs."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            running = await _start(settings, stack)
            app.state.running = running
            try:
                yield
            finally:
                app.state.running = None
                await running.background.drain(grace=5.0)
                with contextlib.suppress(TimeoutError):  # what is left waits in the outbox
                    await asyncio.wait_for(running.outbox.idle(), timeout=3.0)

    app = Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/callbacks/intron/{token}", intron_callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.running = None
    return app


async def _start(settings: Settings, stack: AsyncExitStack) -> Running:
    store = Store(settings.database_path)
    stack.callback(store.close)
    provider = await stack.enter_async_context(open_provider(settings))
    token_setting = settings.callback_token
    token = store.callback_token(token_setting.get_secret_value() if token_setting else None)
    callback_url = f"{settings.public_url.rstrip('/')}/callbacks/intron/{token}"
    service = CallService(store, provider.client, default_region=settings.default_phone_region)
    workflows = WorkflowService(store, provider.client, callback_url)
    session = aiohttp.ClientSession()
    stack.push_async_callback(session.close)
    client, outbox_client = slack_clients(settings, session)
    signing = settings.slack_signing_secret
    bolt = AsyncApp(
        client=client,
        signing_secret=signing.get_secret_value() if signing else None,
        request_verification_enabled=signing is not None,
    )
    background = Background()
    register(bolt, SlackContext(service, workflows, settings, background, provider.is_sandbox))
    outbox = SlackOutbox(outbox_client, store, sandbox=provider.is_sandbox)
    stack.push_async_callback(outbox.close)
    notifier = SlackNotifier(store, outbox)
    service.observers.append(notifier)
    await notifier.catch_up()
    service.observers.append(
        HomeUpdater(client, store, workflows, sandbox=provider.is_sandbox, spawn=background.spawn)
    )
    running = Running(
        settings=settings,
        store=store,
        provider=provider,
        service=service,
        workflows=workflows,
        outbox=outbox,
        slack=AsyncSlackRequestHandler(bolt),
        background=background,
        callback_token=token,
    )
    outbox.kick()  # deliver what a previous run left pending
    if settings.slack_app_token is not None:
        socket_mode = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
        await socket_mode.connect_async()
        stack.push_async_callback(socket_mode.close_async)
    background.spawn(_warm_up(running), name="warm-up")
    return running


async def _warm_up(running: Running) -> None:
    """Fill the workflow cache, give the sandbox a demo workflow, resume unfinished work."""
    client = running.provider.client
    try:
        if running.provider.is_sandbox and not await client.list_workflows():
            demo = DEMO_WORKFLOW.model_copy(update={"call_back_url": running.callback_url})
            await client.create_workflow(demo)
        await running.workflows.refresh()
    except IntronError as exc:
        log.warning("could not load workflows from Intron: %s", exc)
    await running.service.resume()
    running.background.spawn_loop(_keep_workflows_fresh(running.workflows), name="refresh")
    reconciler = Reconciler(
        running.service, running.workflows, after=running.settings.reconcile_after
    )
    running.background.spawn_loop(reconciler.run_forever(), name="reconcile")


async def _keep_workflows_fresh(workflows: WorkflowService) -> None:
    while True:
        await asyncio.sleep(WORKFLOW_REFRESH_EVERY)
        if workflows.stale():
            try:
                await workflows.refresh()
            except IntronError as exc:
                log.warning("could not refresh workflows: %s", exc)


def _running(request: Request) -> Running | None:
    return request.app.state.running


async def slack_events(request: Request) -> Response:
    """Verify Slack's signature ourselves first: bolt parses a body (and logs a refused
    one) before checking, so a malformed forgery would otherwise get a 500, and the
    body of a refused request, numbers and all, would reach the log."""
    running = _running(request)
    if running is None:
        return JSONResponse({"error": "starting"}, status_code=503)
    secret = running.settings.slack_signing_secret
    if secret is not None and not _signed_by_slack(
        secret.get_secret_value(), request, await request.body()
    ):
        return JSONResponse({"error": "invalid or missing Slack signature"}, status_code=401)
    return await running.slack.handle(request)


def _signed_by_slack(secret: str, request: Request, body: bytes) -> bool:
    """Slack's v0 signature, with a timestamp no more than 5 minutes off."""
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature:
        return False
    try:
        return SignatureVerifier(secret).is_valid(
            body=body, timestamp=timestamp, signature=signature
        )
    except UnicodeDecodeError:  # Slack sends UTF-8; anything else is not from Slack
        return False


async def healthz(request: Request) -> Response:
    running = _running(request)
    if running is None:
        return JSONResponse({"ok": False, "database": "not open"}, status_code=503)
    running.store.db.execute("SELECT 1").fetchone()
    return JSONResponse(
        {
            "ok": True,
            "database": "open",
            "provider": "sandbox" if running.provider.is_sandbox else "intron",
        }
    )


async def intron_callback(request: Request) -> Response:
    """Store a completion callback, answer 200, then tell Slack in the background."""
    running = _running(request)
    if running is None:
        return JSONResponse({"error": "starting"}, status_code=503)
    if not hmac.compare_digest(
        request.path_params["token"].encode(), running.callback_token.encode()
    ):
        return JSONResponse({"error": "not found"}, status_code=404)
    raw = await _read_limited(request)
    if raw is None:
        return JSONResponse(
            {"error": f"body larger than {MAX_CALLBACK_BYTES} bytes"}, status_code=413
        )
    try:
        body = json.loads(raw)
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    try:
        callback = CompletionCallback.model_validate(body)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        return JSONResponse({"error": f"not a completion callback: {fields}"}, status_code=422)
    outcome, record = running.service.record_callback(callback, raw.decode("utf-8", "replace"))
    if outcome == CallbackOutcome.UNKNOWN_REQUEST:
        return JSONResponse({"error": f"unknown request_id {callback.request_id}"}, status_code=404)
    if outcome == CallbackOutcome.APPLIED and record is not None:
        running.background.spawn(
            running.service.announce_completed(record), name=f"announce {record.id}"
        )
    return JSONResponse({"ok": True, "outcome": str(outcome)})


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None once it passes MAX_CALLBACK_BYTES (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CALLBACK_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CALLBACK_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
