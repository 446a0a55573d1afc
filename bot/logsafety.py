"""Keep secrets and phone numbers out of logs, whatever a log line happens to contain.

Every log record is rewritten when it is made (a record factory, so it holds for
every logger and handler, uvicorn's own included): Slack tokens, configured
secrets and E.164 numbers are replaced, in the message and in any traceback.
Code should not log such things in the first place; this is the net under it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from pydantic import BaseModel, SecretStr

from bot.input import phones

SLACK_TOKEN = re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]+")
# Also URL-encoded. No upper bound: a capped match would stop inside a longer run of
# digits and leave its tail, a number's last digits, in the clear. Masking too much
# is safe.
PHONE = re.compile(r"(?:\+|%2B)(\d[\d ]{6,}\d)", re.IGNORECASE)
# An uploaded recording's address (`PUBLIC_URL/audio/<unguessable name>`): whoever has
# the name can fetch the file, so it is as secret as a token (bot/store/audio.py).
AUDIO_PATH = re.compile(r"(/audio/)[A-Za-z0-9_-]{20,}")
# The alert webhook's path (`/alerts/<ALERT_WEBHOOK_TOKEN>`): a generated token is no
# configured secret the filter knows, and whoever has it can start escalations.
ALERT_PATH = re.compile(r"(/alerts/)[A-Za-z0-9_-]{6,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with secrets and Slack tokens replaced and phone numbers masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = SLACK_TOKEN.sub("[slack-token]", text)
    text = AUDIO_PATH.sub(r"\1[redacted]", text)
    text = ALERT_PATH.sub(r"\1[redacted]", text)
    return PHONE.sub(lambda m: phones.mask("+" + m.group(1).replace(" ", "")), text)


# For text shown to people: any run of 7 or more digits, maybe after a +, maybe grouped by
# single spaces, dots or dashes, is taken for a phone number (a date is not).
BARE_NUMBER = re.compile(r"(?<![\w•+])\+?(?!\d{4}-\d\d-\d\d\b)\d(?:[ .-]?\d){6,}(?!\w)")


def redact_shown(text: str, secrets: Iterable[str] = ()) -> str:
    """`redact`, for text shown to people rather than logged (a provider's error message
    in Slack): numbers written without their `+` or with dashes are masked too, and
    `secrets` are removed as the log filter removes them (those of 6 characters or more)."""
    text = redact(text, [s for s in secrets if s and len(s) >= 6])
    return BARE_NUMBER.sub(lambda m: phones.mask(m.group()), text)


def secrets_in(settings: BaseModel) -> list[str]:
    """The value of every secret setting (each `SecretStr` field) that is set."""
    values = (getattr(settings, name) for name in type(settings).model_fields)
    secrets = (v.get_secret_value() for v in values if isinstance(v, SecretStr))
    return [s for s in secrets if s]


class RedactingFilter(logging.Filter):
    """Rewrites records so that what `redact` removes never reaches a handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = redact(self._formatter.formatException(record.exc_info), self.secrets)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


_original_factory: Callable[..., logging.LogRecord] | None = None


def install(secrets: Iterable[str] = ()) -> RedactingFilter:
    """Redact every log record made from now on, by any logger of this process."""
    global _original_factory
    flt = RedactingFilter(secrets)
    if _original_factory is None:
        _original_factory = logging.getLogRecordFactory()
    make = _original_factory

    def redacted_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        flt.filter(record)
        return record

    logging.setLogRecordFactory(redacted_record)
    return flt
