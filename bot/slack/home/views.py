"""Block Kit for the App Home tab: the latest requests at a glance, the workflows, the
main actions.

A request is shown as in its channel: the same emoji and words first, then who, where
and when (in the reader's own time zone), and the same buttons
(`bot.slack.calls.views.request_actions`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock
from slack_sdk.models.views import View

from bot.core.models import RequestRecord, Stats
from bot.providers.base import Workflow
from bot.slack.blocks import md, note, plural, sandbox_blocks, when
from bot.slack.calls.views import VOICE, headline, request_actions
from bot.slack.escalations import views as escalation_views
from bot.slack.ids import ActionId
from bot.slack.workflows.views import refused_blocks, workflow_blocks
from bot.text import escape_mrkdwn, outside

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
    alert_webhook_url: str | None = None,
    labels: Mapping[str, str] | None = None,
    refused: Sequence[str] = (),
    escalations: Sequence[Any] = (),
    policy_refusals: Sequence[str] = (),
    campaigns: Sequence[Any] = (),
    escalation_status: Mapping[str, str] | None = None,
    private_channels: Collection[str] = (),
) -> View:
    """The Home tab: latest requests at a glance, the workflows, and the main actions.
    `voice_of` and `provider_of` (the provider's label, for *Check with …*) are by
    request id. `alert_webhook_url` (with its token) is shown to admins only.
    `labels` names each workflow's provider (provider id → label); `refused`
    (WORKFLOWS_FILE's refused workflows) is shown to admins only."""
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
    ]
    blocks += escalation_section(
        escalations,
        policy_refusals,
        can_manage=can_manage,
        status=escalation_status,
        private=private_channels,
    )
    blocks.append(HeaderBlock(text="Latest requests"))
    if not requests:
        blocks.append(md("No requests yet: send one above or with `/robocall` in a channel."))
    for record, stats in requests:
        blocks += request_blocks(
            record,
            stats,
            voice=voice_of.get(record.id, ""),
            provider=(provider_of or {}).get(record.id, "the provider"),
        )
    blocks += campaign_blocks(campaigns)  # (campaign, progress) pairs, newest first
    blocks.append(HeaderBlock(text="Workflows"))
    blocks += workflows_file_blocks(refused, can_manage=can_manage)
    if not workflows:
        blocks.append(md("No workflows yet."))
    for workflow in workflows[:MAX_WORKFLOWS]:
        blocks += workflow_blocks(
            workflow,
            calls_back_here=calls_back_here[workflow.id],
            can_manage=can_manage,
            label=(labels or {}).get(workflow.provider),
        )
    if len(workflows) > MAX_WORKFLOWS:
        blocks.append(
            md(f"…and {len(workflows) - MAX_WORKFLOWS} more: `/robocall workflows` lists all.")
        )
    if can_manage and alert_webhook_url:
        blocks += alert_webhook_blocks(alert_webhook_url)
    return View(type="home", blocks=blocks)


def alert_webhook_blocks(url: str) -> list[Block]:
    """Where Alertmanager and Grafana send alerts, for admins: the URL carries the token
    (ALERT_WEBHOOK_TOKEN), which lets whoever holds it start escalations."""
    shown = escape_mrkdwn(url)
    return [
        HeaderBlock(text="Alert webhooks"),
        md(
            f"Alertmanager (`webhook_configs`) and Grafana (a *Webhook* contact point) send "
            f"alerts to:\n`{shown}?policy=&lt;policy name&gt;`\nor to `{shown}` with the label "
            "`robocall_policy` on the alert. One firing alert group starts one escalation; "
            "its resolved notification stops it."
        ),
        note(
            ":lock: Shown to admins only: keep this URL secret, the token in it lets its "
            "holder start escalations. Set ALERT_WEBHOOK_TOKEN to choose or change it."
        ),
    ]


def workflows_file_blocks(refused: Sequence[str], *, can_manage: bool) -> list[Block]:
    """WORKFLOWS_FILE's refused workflows (name, field, value, why), for admins only:
    the same lines as `/robocall workflows` shows them."""
    return refused_blocks(refused) if can_manage else []


def escalation_section(
    escalations: Sequence[Any],
    policy_refusals: Sequence[str],
    *,
    can_manage: bool,
    status: Mapping[str, str] | None = None,
    private: Collection[str] = (),
) -> list[Block]:
    """Running escalations, newest first (policy, who is being called and since their
    call started, the alert's text unless its channel is private) with Acknowledge and
    Resolve; for admins, what ESCALATION_POLICIES_FILE refused at start."""
    blocks = escalation_views.running_blocks(escalations, status, private)
    if can_manage:
        blocks += escalation_views.refused_blocks(policy_refusals)
    return blocks


def campaign_blocks(campaigns: Sequence[Any]) -> list[Block]:
    """The latest campaigns with their progress, in two blocks (the tab allows 100):
    `(Campaign, Progress)` pairs from bot/core/campaigns.py; none, no section."""
    if not campaigns:
        return []
    from bot.slack.campaigns.views import campaign_line  # campaigns' own words

    return [
        HeaderBlock(text="Campaigns"),
        md("\n".join(campaign_line(c, p) for c, p in campaigns)),
    ]


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
