"""The `/robocall workflows` list, as one user may act on it."""

from __future__ import annotations

from bot.slack.blocks import Message
from bot.slack.context import SlackContext
from bot.slack.workflows import views as wv


async def workflows_message(
    ctx: SlackContext, user_id: str, page: int = 1, notice: str | None = None
) -> Message:
    """One page of the cached workflows, with the buttons this user may press."""
    cached = ctx.workflows.cached()
    return wv.workflows_list(
        cached,
        page=page,
        calls_back_here={w.id: ctx.workflows.calls_back_here(w) for w in cached},
        can_manage=await ctx.can_manage(user_id),
        fetched_at=ctx.workflows.fetched_at(),
        sandbox=ctx.sandbox,
        notice=notice,
        labels={p.id: p.capabilities.label for p in ctx.service.providers},
        refused=ctx.workflows.file_refusals,
    )
