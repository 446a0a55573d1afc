"""Block Kit pieces every feature uses, built with `slack_sdk.models` so that Slack's
limits (text lengths, option counts, block counts) are checked.

The mrkdwn given to `message`, `md`, `note` and `done_modal` is the app's own: every
string in it that someone else wrote was put there through `bot.text.outside` (or
`outside_error`). As a second net, these strip invisible format characters (direction
overrides) from whatever they are given."""

from __future__ import annotations

from collections.abc import Sequence

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
    return f"{count} {word}{'' if count == 1 else 's'}"
