"""Block Kit for the App Home tab: the latest requests at a glance, the workflows, the
main actions.

A request is shown as in its channel: the same emoji and words first, then who, where
and when (in the reader's own time zone), and the same buttons
(`bot.slack.calls.views.request_actions`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock
from slack_sdk.models.views import View

from bot.core.models import RequestRecord, Stats
from bot.providers.base import Workflow
from bot.slack.blocks import md, note, plural, sandbox_blocks, when
from bot.slack.calls.views import VOICE, headline, request_actions
from bot.slack.ids import ActionId
from bot.slack.workflows.views import workflow_blocks
from bot.text import outside

MAX_WORKFLOWS = 20  # 2 blocks each; with 10 requests of 3 blocks, within Slack's 100


def home_view(
    requests: Sequence[tuple[RequestRecord, Stats]],
    workflows: Sequence[Workflow],
    *,
    voice_of: Mapping[str, str],
    provider_of: Mapping[str, str] | None = None,
    calls_back_here: Mapping[str, bool],
    can_manage: bool,
    sandbox: bool,
) -> View:
    """The Home tab: latest requests at a glance, the workflows, and the main actions.
    `voice_of` and `provider_of` (the provider's label, for *Check with …*) are by
    request id."""
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
    ]
    if not requests:
        blocks.append(md("No requests yet: send one above or with `/robocall` in a channel."))
    for record, stats in requests:
        blocks += request_blocks(
            record,
            stats,
            voice=voice_of.get(record.id, ""),
            provider=(provider_of or {}).get(record.id, "the provider"),
        )
    blocks.append(HeaderBlock(text="Workflows"))
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


def request_blocks(
    record: RequestRecord, stats: Stats, *, voice: str, provider: str
) -> list[Block]:
    """One request: its state first, then recipients, voice, who, where, when, its id;
    and its buttons."""
    details = [plural(record.recipient_count, "recipient")]
    if shown_voice := outside(voice, VOICE):
        details.append(shown_voice)
    where = f" in <#{record.channel}>" if record.channel else ""
    details.append(f"<@{record.requested_by}>{where}")
    if started := when(record.created_at):
        details.append(started)
    details.append(f"`{record.id}`")
    blocks: list[Block] = [md(headline(record, stats)), note(" · ".join(details))]
    if actions := request_actions(record, stats, provider=provider):
        blocks.append(actions)
    return blocks
