"""Read the voice someone typed (`voice=igbo/female`) against a provider's voices."""

from __future__ import annotations

from collections.abc import Sequence

from bot.providers.base import Voice
from bot.text import quoted


class UnknownVoiceError(ValueError):
    """A voice the provider does not offer; the message lists what would be right."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        super().__init__(f"voice {quoted(value)} {reason}")


def parse_voice(text: str, voices: Sequence[Voice]) -> Voice:
    """The voice named `text` (any case), or UnknownVoiceError saying what is offered."""
    wanted = text.strip().lower()
    for voice in voices:
        if voice.key.lower() == wanted:
            return voice
    keys = ", ".join(v.key for v in voices)
    paired = any("/" in v.key for v in voices)
    family, slash, rest = wanted.partition("/")
    if paired and (not slash or not family or not rest):
        raise UnknownVoiceError(text, "is not of the form accent/gender, e.g. igbo/female")
    siblings = [v for v in voices if v.key.lower().partition("/")[0] == family]
    if slash and siblings:
        offered = ", ".join(v.key.partition("/")[2] for v in siblings)
        raise UnknownVoiceError(text, f"is not offered; {family} comes as: {offered}")
    raise UnknownVoiceError(text, f"is not a premium voice; choose one of: {keys}")
