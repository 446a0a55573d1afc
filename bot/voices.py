"""The premium TTS voice catalogue (data in bot/data/premium_voices.json, from seed 000)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bot.text import quoted


@dataclass(frozen=True)
class Voice:
    """One premium voice: Intron's `tts_voice_accent` and `tts_voice_gender` values."""

    accent: str
    language: str
    gender: str

    @property
    def key(self) -> str:
        """`igbo/female`: how users name a voice in commands."""
        return f"{self.accent}/{self.gender}"

    @property
    def label(self) -> str:
        return f"{self.language} ({self.gender})"


class UnknownVoiceError(ValueError):
    """A voice that is not in the catalogue; the message lists what would be right."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        super().__init__(f"voice {quoted(value)} {reason}")


@cache
def premium_voices() -> tuple[Voice, ...]:
    """Every premium voice, in the catalogue's order (grouped by language)."""
    text = resources.files("bot").joinpath("data/premium_voices.json").read_text("utf-8")
    return tuple(Voice(**entry) for entry in json.loads(text)["voices"])


def find_voice(accent: str, gender: str) -> Voice | None:
    """The voice with this accent and gender (case-insensitive), or None."""
    wanted = (accent.strip().lower(), gender.strip().lower())
    return next((v for v in premium_voices() if (v.accent, v.gender) == wanted), None)


def parse_voice(text: str) -> Voice:
    """Read `accent/gender` (e.g. `igbo/female`) into a Voice, or raise UnknownVoiceError."""
    accent, sep, gender = text.strip().partition("/")
    if not sep or not accent or not gender:
        raise UnknownVoiceError(text, "is not of the form accent/gender, e.g. igbo/female")
    voice = find_voice(accent, gender)
    if voice is not None:
        return voice
    genders = [v.gender for v in premium_voices() if v.accent == accent.strip().lower()]
    if genders:
        raise UnknownVoiceError(text, f"is not offered; {accent} comes as: {', '.join(genders)}")
    raise UnknownVoiceError(text, f"is not a premium voice; choose one of: {voice_keys()}")


def voice_keys() -> str:
    """All voices as `accent/gender`, comma-separated, for error messages."""
    return ", ".join(v.key for v in premium_voices())
