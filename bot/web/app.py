"""The web process: verifies, stores and answers, and nothing else.

Routes (DESIGN.md): `/slack/events`, `/callbacks/{provider}/{token}` (so
Intron's is `/callbacks/intron/{token}`), `/healthz`; and in demo mode the
providers' sandboxes under `/_sandbox/…`. Each request is answered from the
database: a slash command or a click is acknowledged once what it asked for is
stored with its job; a callback once it is stored with its job. The worker
(`python -m bot worker`) does the rest. The only Slack calls made here are the
ones a click needs at once: opening or updating the modal it asked for
(Slack's trigger ids expire after 3 seconds).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from bot.app import open_runtime, sandbox_mounts
from bot.input.alerts import webhook_token
from bot.settings import Settings
from bot.slack.app import build_bolt
from bot.store import Store
from bot.web.alerts import alert_webhook
from bot.web.audio import audio_file
from bot.web.callbacks import provider_callback
from bot.web.health import healthz
from bot.web.slack_events import slack_events
from bot.web.state import WebState

WEB_CHECKPOINT_PAGES = 50_000  # about 200 MB of WAL: only if no worker has run for long


def create_app(settings: Settings) -> Starlette:
    """The web process as ASGI; `app.state.web` is set while it runs."""
    # Opened (and upgraded) before serving. Checkpoints are the worker's to make: one
    # here would hold up the request whose commit set it off.
    store = Store(settings.database_path, checkpoint_pages=WEB_CHECKPOINT_PAGES)
    sandboxes = sandbox_mounts(settings, store)
    # ALERT_WEBHOOK_TOKEN, or the one generated on first start and kept (POST /alerts/…).
    alert_token = webhook_token(settings.alert_webhook_token, store.meta)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(store.close)
            runtime = await stack.enter_async_context(open_runtime(settings, store))
            for sandbox in sandboxes.values():
                stack.push_async_callback(sandbox.state.sandbox.close)
            signing = settings.slack_signing_secret
            bolt = build_bolt(
                runtime.slack, signing_secret=signing.get_secret_value() if signing else None
            )
            if settings.slack_app_token is not None:
                socket_mode = AsyncSocketModeHandler(
                    bolt, settings.slack_app_token.get_secret_value()
                )
                await socket_mode.connect_async()
                stack.push_async_callback(socket_mode.close_async)
            app.state.web = WebState(runtime, AsyncSlackRequestHandler(bolt))
            # What start-up made lives as long as the process: keep it out of the
            # collector's full passes, which otherwise pause every answer now and then.
            gc.freeze()
            try:
                yield
            finally:
                app.state.web = None

    routes: list[BaseRoute] = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/callbacks/{provider}/{token}", provider_callback, methods=["POST"]),
        # PUT too: Grafana's webhook contact point may be set to send with PUT.
        Route("/alerts/{token}", alert_webhook, methods=["POST", "PUT"]),
        Route("/healthz", healthz, methods=["GET"]),
        # Recorded messages uploaded in the workflow modal, for the provider to fetch.
        Route("/audio/{name}", audio_file, methods=["GET", "HEAD"]),
    ]
    routes += [Mount(path, app=sandbox) for path, sandbox in sandboxes.items()]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.web = None
    app.state.alert_token = alert_token
    return app
