"""`/robocall optout add <number…>|remove <number…>|list`: the opt-out list from Slack.

Anyone may add (it only stops calls); only admins (ADMIN_USER_IDS and the members of
ADMIN_USERGROUP_ID, or everyone when neither is set, as for workflows) may remove, since
that lets a number be called again. When only the admin group can tell, the command is
answered at once ("checking…") and the group is read from Slack after that answer, the
result following through the command's response_url.
Numbers are shown masked. The rules themselves are in `bot/core/consent.py`.
"""

from __future__ import annotations

import logging
import re

from bot.input import phones
from bot.input.phones import NumberType, PhoneNumberError
from bot.slack.blocks import Message
from bot.slack.context import SlackContext
from bot.slack.interaction import Interaction
from bot.slack.optout import views
from bot.text import outside, quoted

log = logging.getLogger(__name__)

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
            added, already = _add(ctx, parsed, slack.user)
            message = views.added_message(added, already, sandbox)
        elif (may := _may_remove_now(ctx, slack.user)) is None:
            # Whether they may is the admin group's to say (usergroups.users.list): asked
            # after the ack, so the answer never waits for Slack; the result follows.
            await slack.ack(text=views.CHECKING)
            await _remove_after_ack(ctx, slack, parsed)
            return
        elif not may:
            message = views.not_admin_message(sandbox)
        else:
            message = _remove(ctx, parsed, slack.user)
    else:
        message = views.usage_message(
            sandbox, f"`optout {outside(word, 20)}` is not an opt-out command."
        )
    await slack.ack(text=message.text, blocks=message.blocks)


def _add(ctx: SlackContext, numbers: list[str], user: str) -> tuple[list[str], list[str]]:
    """Put the numbers on the list, with an audit row for each, in one transaction: a
    number is never on the list without the row saying who put it there."""
    with ctx.store.write():
        added = ctx.store.consent.add(numbers, by=user, source="slack")
        for phone in added:
            ctx.store.audit.record(user, "optout.added", phones.mask(phone), {"source": "slack"})
    return added, [n for n in numbers if n not in added]


def _remove(ctx: SlackContext, numbers: list[str], user: str) -> Message:
    """Take the numbers off the list, with an audit row for each, in one transaction."""
    with ctx.store.write():
        removed = ctx.store.consent.remove(numbers)
        for phone in removed:
            ctx.store.audit.record(user, "optout.removed", phones.mask(phone), {})
    absent = [n for n in numbers if n not in removed]
    return views.removed_message(removed, absent, ctx.sandbox)


def _may_remove_now(ctx: SlackContext, user: str) -> bool | None:
    """Whether this user may take numbers off the list, when the settings alone say so
    (no admins set: everyone; one of ADMIN_USER_IDS: yes; no admin group: no); None when
    only the admin group's members (read from Slack) can tell."""
    admins, group = ctx.settings.admin_user_ids, ctx.settings.admin_usergroup_id
    if (not admins and not group) or user in admins:
        return True
    return None if group else False


async def _remove_after_ack(ctx: SlackContext, slack: Interaction, numbers: list[str]) -> None:
    """After the ack: ask Slack whether the user is in the admin group, then remove (or
    refuse), and say so through the command's response_url."""
    try:
        may = await ctx.can_manage(slack.user)
    except Exception:
        log.exception("could not read the admin group for /robocall optout remove")
        message = views.usage_message(ctx.sandbox, views.COULD_NOT_CHECK)
    else:
        message = _remove(ctx, numbers, slack.user) if may else views.not_admin_message(ctx.sandbox)
    if slack.respond is not None and slack.body.get("response_url"):
        await slack.respond(
            text=message.text,
            blocks=message.blocks,
            response_type="ephemeral",
            replace_original=True,
        )


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
