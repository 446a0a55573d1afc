"""Intron's voicebot workflow API: client, models, errors, validation, endpoint paths."""

from bot.intron.client import IntronClient
from bot.intron.errors import (
    AuthenticationError,
    IntronConnectionError,
    IntronError,
    IntronValidationError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
)

__all__ = [
    "AuthenticationError",
    "IntronClient",
    "IntronConnectionError",
    "IntronError",
    "IntronValidationError",
    "NotFoundError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "ServerError",
]
