"""`/robocall` and its subcommands: the first word picks the feature that answers."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.calls import handlers as calls
from bot.slack.calls.views import help_message
from bot.slack.campaigns import handlers as campaigns
from bot.slack.context import SlackContext
from bot.slack.escalations import handlers as escalation_policies
from bot.slack.escalations import running as escalations_running
from bot.slack.interaction import Interaction, listener
from bot.slack.optout import handlers as optout
from bot.slack.workflows import handlers as workflows
from bot.text import outside


def register(app: AsyncApp, ctx: SlackContext) -> None:
    app.command("/robocall")(listener(ctx, handle_robocall_command))


async def handle_robocall_command(ctx: SlackContext, slack: Interaction) -> None:
    text = _unescape(slack.body.get("text") or "").strip()
    word, _, rest = text.partition(" ")
    word = word.lower()
    if word == "":
        await calls.handle_open_send_modal(ctx, slack)
    elif word == "help":
        await calls.handle_help_command(ctx, slack)
    elif word == "voices":
        await calls.handle_voices_command(ctx, slack)
    elif word == "status":
        await calls.handle_status_command(ctx, slack, rest)
    elif word == "cancel":
        await calls.handle_cancel_command(ctx, slack, rest)
    elif word == "call":
        await calls.handle_call_command(ctx, slack, rest)
    elif word == "workflows":
        await workflows.handle_workflows_command(ctx, slack)
    elif word == "campaign":
        await campaigns.handle_campaign_command(ctx, slack)
    elif word == "escalations":
        await escalation_policies.handle_escalations_command(ctx, slack)
    elif word == "optout":
        await optout.handle_optout_command(ctx, slack, rest)
    elif word == "escalate":
        await escalations_running.handle_escalate_command(ctx, slack, rest)
    else:
        usage = help_message(ctx.sandbox)
        typed = outside(word, 60)
        notice = {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f":warning: `/robocall {typed}` is not a command. Here is what is:",
            },
        }
        await slack.ack(
            text=f"Unknown command '{typed}'. " + usage.text,
            blocks=[notice, *usage.blocks],
        )


def _unescape(text: str) -> str:
    """Slack escapes these three in command text; nothing else."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
