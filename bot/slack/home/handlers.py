"""Slack listeners for the App Home tab: opening it queues its publishing."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.context import SlackContext
from bot.slack.home.jobs import open_job
from bot.slack.interaction import Interaction, guarded


def register(app: AsyncApp, ctx: SlackContext) -> None:
    """Attach the Home tab's listeners."""

    async def handle_home_opened(slack: Interaction) -> None:
        event = slack.body.get("event") or {}
        if event.get("tab", "home") == "home":
            ctx.jobs.add(open_job(event["user"]))

    app.event("app_home_opened")(guarded(handle_home_opened, sandbox=ctx.sandbox))
