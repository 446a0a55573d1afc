"""Intron's direct robo-call API (seed 001): client, models, provider, sandbox."""

from bot.providers.intron_direct.provider import (
    PROVIDER_ID,
    IntronDirectProvider,
    open_intron_direct,
)

__all__ = ["PROVIDER_ID", "IntronDirectProvider", "open_intron_direct"]
