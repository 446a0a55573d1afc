"""What `/robocall optout` answers: ephemeral messages, numbers always masked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.consent import OPT_OUT_DIGIT
from bot.input import phones
from bot.slack.blocks import Message, md, message, note, plural, sandbox_blocks, when
from bot.text import outside

USAGE = (
    "`/robocall optout add <number…>` puts numbers on the opt-out list (anyone may: it only "
    "stops calls); `/robocall optout remove <number…>` takes them off (admins only); "
    "`/robocall optout list` shows the list. Numbers are E.164, e.g. `+2348076960623`."
)
# `remove` by someone only the admin group can vouch for: the ack, then the result.
CHECKING = ":hourglass_flowing_sand: Checking that you may take numbers off the opt-out list…"
COULD_NOT_CHECK = (
    "Could not read the admin group from Slack just now, so nothing was changed; "
    "try again in a minute."
)
SHOWN = 50  # entries listed in one message; the count says how many there are


def usage_message(sandbox: bool, problem: str | None = None) -> Message:
    text = f":warning: {problem}\n{USAGE}" if problem else USAGE
    return message(problem or "Opt-out list", [*sandbox_blocks(sandbox), md(text)])


def bad_numbers_message(problems: Sequence[str], sandbox: bool) -> Message:
    """Numbers that could not be read: each named; nothing was changed."""
    lines = "\n".join(f"• {outside(p, 300)}" for p in problems[:15])
    more = f"\n• …and {len(problems) - 15} more" if len(problems) > 15 else ""
    text = f":warning: Nothing was changed; these are not numbers:\n{lines}{more}"
    return message("Nothing was changed.", [*sandbox_blocks(sandbox), md(text)])


def _masked(numbers: Sequence[str]) -> str:
    return ", ".join(f"`{phones.mask(n)}`" for n in numbers[:20]) + (
        f" and {len(numbers) - 20} more" if len(numbers) > 20 else ""
    )


def added_message(added: Sequence[str], already: Sequence[str], sandbox: bool) -> Message:
    parts = []
    if added:
        parts.append(
            f":no_bell: {plural(len(added), 'number')} put on the opt-out list: "
            f"{_masked(added)}. They are not called again (checked before every dial, "
            "also in requests already accepted)."
        )
    if already:
        parts.append(f"Already on the list: {_masked(already)}.")
    text = "\n".join(parts)
    return message(text, [*sandbox_blocks(sandbox), md(text)])


def removed_message(removed: Sequence[str], absent: Sequence[str], sandbox: bool) -> Message:
    parts = []
    if removed:
        parts.append(
            f":bell: {plural(len(removed), 'number')} taken off the opt-out list: "
            f"{_masked(removed)}. They may be called again."
        )
    if absent:
        parts.append(f"Not on the list (nothing to remove): {_masked(absent)}.")
    text = "\n".join(parts)
    return message(text, [*sandbox_blocks(sandbox), md(text)])


def not_admin_message(sandbox: bool) -> Message:
    text = (
        ":lock: Only admins (ADMIN_USER_IDS) may take numbers off the opt-out list, since "
        "that lets them be called again. Nothing was changed; ask an admin."
    )
    return message("Only admins may remove numbers.", [*sandbox_blocks(sandbox), md(text)])


def _how(entry: Mapping[str, Any]) -> str:
    if entry.get("source") == "keypad":
        return f"pressed {OPT_OUT_DIGIT} on a call"
    by = str(entry.get("added_by") or "")
    return f"added by <@{outside(by, 30)}>" if by.startswith(("U", "W")) else "added"


def list_message(entries: Sequence[Mapping[str, Any]], total: int, sandbox: bool) -> Message:
    """The list, newest first, masked."""
    if not total:
        text = "The opt-out list is empty: nobody has asked not to be called."
        return message(text, [*sandbox_blocks(sandbox), md(text)])
    lines = [
        f"• `{phones.mask(e['phone'])}` · {when(e['added_at'])} · {_how(e)}"
        for e in entries[:SHOWN]
    ]
    head = f"*Opt-out list* — {plural(total, 'number')}, never called:"
    blocks = [*sandbox_blocks(sandbox), md(head + "\n" + "\n".join(lines))]
    if total > SHOWN:
        blocks.append(note(f"The newest {SHOWN} are shown; numbers are masked."))
    return message(f"Opt-out list: {plural(total, 'number')}", blocks)
