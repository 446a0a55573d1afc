"""`/robocall optout add <number…>|remove <number…>|list`: the opt-out list from Slack.

Anyone may add (it only stops calls); only admins (ADMIN_USER_IDS, or everyone when
none is set, as for workflows) may remove, since that lets a number be called again.
Numbers are shown masked. The rules themselves are in `bot/core/consent.py`.
"""

from __future__ import annotations

import re

from bot.input import phones
from bot.input.phones import NumberType, PhoneNumberError
from bot.slack.context import SlackContext
from bot.slack.interaction import Interaction
from bot.slack.optout import views
from bot.text import outside, quoted

# Numbers may be separated by spaces, commas or new lines; spaces inside one number are
# not supported here (write it without them, or in E.164).
_SPLIT = re.compile(r"[\s,;]+")


async def handle_optout_command(ctx: SlackContext, slack: Interaction, rest: str) -> None:
    """Route `/robocall optout …`; every answer is ephemeral."""
    word, _, numbers = rest.strip().partition(" ")
    word = word.lower()
    sandbox = ctx.sandbox
    if word in ("", "list"):
        store = ctx.store.consent
        message = views.list_message(store.all(limit=views.SHOWN), store.count(), sandbox)
    elif word in ("add", "remove"):
        parsed, problems = _numbers(ctx, numbers)
        if problems:
            message = views.bad_numbers_message(problems, sandbox)
        elif not parsed:
            message = views.usage_message(sandbox, f"Which numbers? Give them after `{word}`.")
        elif word == "add":
            added = ctx.store.consent.add(parsed, by=slack.user, source="slack")
            already = [n for n in parsed if n not in added]
            with ctx.store.write():
                for phone in added:
                    ctx.store.audit.record(
                        slack.user, "optout.added", phones.mask(phone), {"source": "slack"}
                    )
            message = views.added_message(added, already, sandbox)
        elif not await ctx.can_manage(slack.user):
            message = views.not_admin_message(sandbox)
        else:
            removed = ctx.store.consent.remove(parsed)
            absent = [n for n in parsed if n not in removed]
            with ctx.store.write():
                for phone in removed:
                    ctx.store.audit.record(slack.user, "optout.removed", phones.mask(phone), {})
            message = views.removed_message(removed, absent, sandbox)
    else:
        message = views.usage_message(
            sandbox, f"`optout {outside(word, 20)}` is not an opt-out command."
        )
    await slack.ack(text=message.text, blocks=message.blocks)


def _numbers(ctx: SlackContext, text: str) -> tuple[list[str], list[str]]:
    """The numbers typed, in E.164, and a problem for each that is not one (naming it)."""
    found: list[str] = []
    problems: list[str] = []
    region = ctx.settings.default_phone_region
    for index, raw in enumerate(t for t in _SPLIT.split(text.strip()) if t):
        try:
            found.append(phones.to_e164(raw, region, allowed=set(NumberType)))
        except PhoneNumberError as exc:
            problems.append(f"number {index + 1} ({quoted(raw, 30)}): {exc}")
    return list(dict.fromkeys(found)), problems
