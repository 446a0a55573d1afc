"""The App Home tab: published when a user opens it, and again when results arrive.

Re-publishing is coalesced: a burst of finished requests (a campaign) causes one
round of `views.publish` per recent viewer, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.service import Event
from bot.slack.workflow_views import home_view
from bot.store import RequestRecord, Store
from bot.workflows import WorkflowService

log = logging.getLogger(__name__)

LATEST = 10  # requests shown
VIEWER_WINDOW_HOURS = 24  # who counts as a recent viewer
MAX_VIEWERS = 50
COALESCE_SECONDS = 1.0


async def publish_home(
    client: AsyncWebClient,
    store: Store,
    workflows: WorkflowService,
    user_id: str,
    *,
    can_manage: bool,
    sandbox: bool,
) -> None:
    """Render and publish the Home tab for one user, and remember they look at it."""
    cached = workflows.cached()
    view = home_view(
        store.recent_requests(LATEST),
        cached,
        workflow_of={w.id: w for w in cached},
        calls_back_here={w.id: workflows.calls_back_here(w) for w in cached},
        can_manage=can_manage,
        sandbox=sandbox,
    )
    store.touch_home_viewer(user_id, can_manage)
    await client.views_publish(user_id=user_id, view=view)


class HomeUpdater:
    """An Observer that refreshes the Home tab of recent viewers when a request changes."""

    def __init__(
        self,
        client: AsyncWebClient,
        store: Store,
        workflows: WorkflowService,
        *,
        sandbox: bool,
        spawn: Callable[[Awaitable[None], str], object],
    ) -> None:
        self.client = client
        self.store = store
        self.workflows = workflows
        self.sandbox = sandbox
        self.spawn = spawn
        self._scheduled = False

    async def request_changed(self, record: RequestRecord, event: Event) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.spawn(self._publish_soon(), "home refresh")

    async def _publish_soon(self) -> None:
        await asyncio.sleep(COALESCE_SECONDS)
        self._scheduled = False
        for user_id, can_manage in self.store.home_viewers(VIEWER_WINDOW_HOURS, MAX_VIEWERS):
            try:
                await publish_home(
                    self.client,
                    self.store,
                    self.workflows,
                    user_id,
                    can_manage=can_manage,
                    sandbox=self.sandbox,
                )
            except SlackApiError as exc:
                log.warning(
                    "could not refresh the Home tab of %s: %s", user_id, exc.response.get("error")
                )
