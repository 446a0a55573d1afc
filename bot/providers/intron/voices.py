"""Intron's premium TTS voices (seed 000), kept as data in `premium_voices.json`.

A voice's key is `accent/gender` (`igbo/female`): the `tts_voice_accent` and
`tts_voice_gender` values `POST /call` takes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from bot.providers.base import Voice


@cache
def premium_voices() -> tuple[Voice, ...]:
    """Every premium voice, in the catalogue's order (grouped by language)."""
    text = resources.files(__package__).joinpath("premium_voices.json").read_text("utf-8")
    return tuple(
        Voice(key=f"{v['accent']}/{v['gender']}", language=v["language"], gender=v["gender"])
        for v in json.loads(text)["voices"]
    )


def accent_and_gender(key: str) -> tuple[str, str]:
    """`igbo/female` → ("igbo", "female")."""
    accent, _, gender = key.partition("/")
    return accent, gender


def is_premium(accent: str, gender: str) -> bool:
    return f"{accent.strip().lower()}/{gender.strip().lower()}" in {v.key for v in premium_voices()}
