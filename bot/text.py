"""Small text helpers for messages people read: shorten, quote, escape, clean."""

from __future__ import annotations

import unicodedata


def clip(text: str, limit: int) -> str:
    """`text`, shortened to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(value: str, limit: int = 40) -> str:
    """`value` in quotes for an error message, shortened: people paste very long things."""
    return f"'{clip(value, limit)}'"


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped so user text shows as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def without_invisibles(text: str) -> str:
    """`text` without format characters (direction marks, zero-width spaces, BOMs):
    invisible to the reader, they would otherwise hide inside a number or a name."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
