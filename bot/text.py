"""Small text helpers for messages people read: shorten, quote, escape, clean.

Every string that did not come from this app's own templates (workflow names and
keypad labels, what people type, a provider's messages, statuses and ids, keys
pressed, errors from other services) reaches Slack through `outside` (mrkdwn),
`outside_plain` (plain_text) or `outside_error` (a provider's or a service's error
message). So nothing someone else wrote can ping a channel (`<!channel>`), mention
someone (`<@U…>`, `<!subteam^…>`), disguise a link (`<http://…|Reset password>`) or
turn itself around (U+202E) in Slack.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable


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


# Every way of breaking a line (\r\n, \r, \v, \f, the file/group/record separators,
# NEL, U+2028 and U+2029), and the spaces around it.
_LINE_BREAK = r"[ \t]*(?:\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029])[ \t]*"
_EACH_BREAK = re.compile(_LINE_BREAK)
_BREAKS = re.compile(f"(?:{_LINE_BREAK})+")
# Other control characters (C0 and C1, DEL; tabs excepted), which render as nothing or as
# boxes, and lone surrogates, which cannot even be encoded to be sent.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]")


def _cleaned(text: str | None, multiline: bool) -> str:
    """Without invisible format characters and control characters; on one line unless
    `multiline` (then every line break is a plain newline); trimmed."""
    text = _CONTROL.sub("", without_invisibles(text or "")).replace("\t", " ")
    text = _EACH_BREAK.sub("\n", text) if multiline else _BREAKS.sub(" ", text)
    return text.strip()


def outside_plain(text: str | None, limit: int, *, multiline: bool = False) -> str:
    """Text someone else wrote, for a plain_text object (an option, a field error):
    cleaned as `outside` cleans it and clipped to `limit` characters; plain_text
    needs no escaping."""
    return clip(_cleaned(text, multiline), limit)


def outside(text: str | None, limit: int, *, multiline: bool = False) -> str:
    """Text someone else wrote, for mrkdwn (a section, a context, a message's `text`):
    without direction overrides and other invisible format characters or control
    characters, on one line unless `multiline`, at most `limit` characters as the
    reader sees them, and with `&`, `<` and `>` escaped, so that it shows as written
    and never becomes a mention, a channel ping or a link. `None` is ''."""
    return escape_mrkdwn(outside_plain(text, limit, multiline=multiline))


def outside_error(text: str | None, limit: int, secrets: Iterable[str] = ()) -> str:
    """An error message from a provider or another service, for mrkdwn: as `outside`,
    and with every phone number in it masked (E.164, or any run of 7 or more digits)
    and the configured `secrets` (an API key the provider echoes) removed, with the
    redaction the logs use (`bot.logsafety.redact_shown`)."""
    from bot import logsafety  # here: bot.logsafety imports bot.input.phones, which imports us

    return outside(logsafety.redact_shown(_cleaned(text, multiline=False), secrets), limit)
