"""Block Kit pieces every feature uses, built with `slack_sdk.models` so that Slack's
limits (text lengths, option counts, block counts) are checked.

The mrkdwn given to `message`, `md`, `note` and `done_modal` is the app's own: every
string in it that someone else wrote was put there through `bot.text.outside` (or
`outside_error`). As a second net, these strip invisible format characters (direction
overrides) from whatever they are given."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel
from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.slack.ids import BlockId, CallbackId
from bot.text import clip, without_invisibles

SANDBOX_NOTE = (
    ":test_tube: *Sandbox*: no provider key is set, so no real calls are placed "
    "(see the README's Getting started)."
)


class Message(BaseModel):
    """A message to send: fallback text plus blocks (as dicts, already validated)."""

    text: str
    blocks: list[dict]


def message(text: str, blocks: Sequence[Block]) -> Message:
    return Message(text=_shown(text), blocks=[b.to_dict() for b in blocks])


def md(text: str, block_id: str | None = None) -> SectionBlock:
    """A section of mrkdwn, clipped to Slack's 3000 characters."""
    return SectionBlock(text=MarkdownTextObject(text=_shown(text)), block_id=block_id)


def note(text: str, block_id: str | None = None) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=_shown(text))], block_id=block_id)


def _shown(text: str) -> str:
    """Slack's 3000 characters, without invisible format characters."""
    return clip(without_invisibles(text), 3000)


def sandbox_blocks(sandbox: bool) -> list[Block]:
    """The notice every message and modal carries while the sandbox is the provider."""
    return [note(SANDBOX_NOTE, BlockId.SANDBOX_NOTICE)] if sandbox else []


def done_modal(title: str, text: str, sandbox: bool = False) -> View:
    """A modal that only says something (an outcome, a refusal, "working on it")."""
    return View(
        type="modal",
        callback_id=CallbackId.WORKFLOW_DONE,
        title=clip(title, 24),
        close="Close",
        blocks=[*sandbox_blocks(sandbox), md(text)],
    )


def number(value: float | None) -> str:
    """`32`, `22.5` or `n/a`."""
    if value is None:
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def plural(count: int, word: str) -> str:
    """`1 recipient`, `2 recipients`, `1,000 recipients`."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def percent(part: int, whole: int) -> str:
    """`80%` (whole numbers: read at a glance), `<1%` for a few among many."""
    if whole <= 0:
        return "n/a"
    share = 100 * part / whole
    return "<1%" if 0 < share < 1 else f"{int(share + 0.5)}%"  # half up, as people round


def when(iso: str | None) -> str:
    """A stored ISO time as Slack shows dates, in the reader's own time zone:
    `<!date^1714557600^{date_short_pretty} {time}|2024-05-01 10:00 UTC>` (the text after
    `|` is for clients that cannot); '' for no time or one that cannot be read."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"
