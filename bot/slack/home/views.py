"""Block Kit for the App Home tab: the latest requests at a glance, the workflows, the
main actions."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock
from slack_sdk.models.views import View

from bot.core.models import RequestRecord, Stats
from bot.providers.base import Workflow
from bot.slack.blocks import md, plural, sandbox_blocks
from bot.slack.calls.views import NAME, VOICE, one_line_summary
from bot.slack.ids import ActionId
from bot.slack.workflows.views import workflow_blocks
from bot.text import outside

MAX_WORKFLOWS = 20


def home_view(
    requests: Sequence[tuple[RequestRecord, Stats]],
    workflows: Sequence[Workflow],
    *,
    workflow_of: dict[str, Workflow],
    voice_of: dict[str, str],
    calls_back_here: dict[str, bool],
    can_manage: bool,
    sandbox: bool,
) -> View:
    """The Home tab: latest requests at a glance, the workflows, and the main actions."""
    actions = [
        ButtonElement(
            text="Send a robo call", action_id=ActionId.HOME_SEND, value="send", style="primary"
        )
    ]
    if can_manage:
        actions.append(
            ButtonElement(text="New workflow", action_id=ActionId.WORKFLOW_NEW, value="new")
        )
    actions.append(
        ButtonElement(text="Refresh workflows", action_id=ActionId.WORKFLOWS_REFRESH, value="1")
    )
    blocks: list[Block] = [
        *sandbox_blocks(sandbox),
        HeaderBlock(text="Robocall"),
        ActionsBlock(block_id="home_actions", elements=actions),
        HeaderBlock(text="Latest requests"),
        md(
            _latest_text(requests, workflow_of, voice_of)
            or "No requests yet: send one above or with `/robocall` in a channel."
        ),
        HeaderBlock(text="Workflows"),
    ]
    if not workflows:
        blocks.append(md("No workflows yet."))
    for workflow in workflows[:MAX_WORKFLOWS]:
        blocks += workflow_blocks(
            workflow, calls_back_here=calls_back_here[workflow.id], can_manage=can_manage
        )
    if len(workflows) > MAX_WORKFLOWS:
        blocks.append(
            md(f"…and {len(workflows) - MAX_WORKFLOWS} more: `/robocall workflows` lists all.")
        )
    return View(type="home", blocks=blocks)


def _latest_text(
    requests: Sequence[tuple[RequestRecord, Stats]],
    workflow_of: dict[str, Workflow],
    voice_of: dict[str, str],
) -> str:
    lines = []
    for record, stats in requests:
        state = record.status.value
        if stats.total > stats.pending:
            workflow = workflow_of.get(record.workflow_id or "")
            state += f" — {one_line_summary(stats, workflow)}"
        where = f" in <#{record.channel}>" if record.channel else ""
        lines.append(
            f"• `{record.id}` · *{outside(record.workflow_name, NAME)}* · {state} · "
            f"{plural(record.recipient_count, 'recipient')} · "
            f"{outside(voice_of.get(record.id), VOICE)} · "
            f"<@{record.requested_by}>{where} · {record.created_at[:16].replace('T', ' ')}"
        )
    return "\n".join(lines)
