"""Recorded messages uploaded in the workflow modal, kept as files for a provider to fetch.

Each file lives under `audio/` next to the database (`DATABASE_PATH`'s folder, the
one place the web process and the worker both have), named by an unguessable token
and its type (`<43 url-safe characters>.mp3`): the name is the only key, so the
address `PUBLIC_URL/audio/<name>` works for whoever has it (the provider) and for
nobody who guesses. Only mp3 and wav are kept, told by their content, not their name
(`kind_of`). Nothing here logs a name.

Files are written whole or not at all (a temporary file, then a rename), and never
removed: a workflow saved with one may be edited, but requests already placed may
still be fetching the old recording.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Literal

AudioKind = Literal["mp3", "wav"]
CONTENT_TYPES: dict[str, str] = {"mp3": "audio/mpeg", "wav": "audio/wav"}
# What `save` names a file: 32 random bytes, url-safe base64 (43 characters), its type.
NAME = re.compile(r"^[A-Za-z0-9_-]{43}\.(mp3|wav)$")
FOLDER = "audio"

# MPEG audio frame header (the first 4 bytes of every frame): 11 sync bits, then a
# version (01 is reserved), a layer (00 is reserved), a bitrate index (1111 is bad) and a
# sample rate (11 is reserved).
_ID3_HEADER = 10
_FRAME_SEARCH = 4096  # after an ID3 tag, padding may come before the first frame


def _is_frame(head: bytes, at: int = 0) -> bool:
    if len(head) < at + 4:
        return False
    b0, b1, b2 = head[at], head[at + 1], head[at + 2]
    if b0 != 0xFF or b1 & 0xE0 != 0xE0:
        return False
    version, layer = (b1 >> 3) & 0b11, (b1 >> 1) & 0b11
    bitrate, rate = b2 >> 4, (b2 >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and rate != 0b11


def _is_mp3(content: bytes) -> bool:
    if content.startswith(b"ID3") and len(content) >= _ID3_HEADER:
        version, size_bytes = content[3], content[6:10]
        if version not in (2, 3, 4) or any(b & 0x80 for b in size_bytes):
            return False  # an ID3v2 tag's size is "syncsafe": 7 bits a byte
        size = 0
        for b in size_bytes:
            size = (size << 7) | b
        start = _ID3_HEADER + size + (10 if content[5] & 0x10 else 0)  # with its footer
        window = content[start : start + _FRAME_SEARCH]
        return any(_is_frame(window, i) for i in range(max(0, len(window) - 3)))
    return _is_frame(content)


def kind_of(content: bytes) -> AudioKind | None:
    """What a file's content is, of the kinds we keep: an MPEG audio stream (with or
    without an ID3v2 tag) is mp3, a RIFF file of form WAVE is wav; anything else None."""
    if len(content) >= 12 and content[:4] == b"RIFF" and content[8:12] == b"WAVE":
        return "wav"
    if _is_mp3(content):
        return "mp3"
    return None


# Other contents people may upload by mistake, named in the refusal.
_OTHER_KINDS = (
    (b"OggS", "Ogg"),
    (b"fLaC", "FLAC"),
    (b"%PDF", "a PDF"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1aE\xdf\xa3", "WebM or Matroska"),
    (b"#!AMR", "AMR audio"),
)


def describe(content: bytes) -> str:
    """What a refused file's content looks like, in words for the refusal."""
    if not content:
        return "empty"
    for magic, words in _OTHER_KINDS:
        if content.startswith(magic):
            return words
    if content[4:8] == b"ftyp":
        return "MP4 or M4A"
    if content[:4] == b"RIFF":
        return f"a RIFF file of form {content[8:12].decode('latin-1')!r}, not WAVE"
    head = content[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    try:
        content[:512].decode("utf-8")
    except UnicodeDecodeError:
        return "not a kind we know"
    return "text"


class AudioStore:
    """The uploaded recordings of one app, in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def beside(cls, database_path: str) -> AudioStore:
        """The store next to the database file (`DATABASE_PATH`)."""
        return cls(Path(database_path).expanduser().resolve().parent / FOLDER)

    def save(self, content: bytes, kind: AudioKind) -> str:
        """Keep `content` (already checked to be `kind`) under a new unguessable name,
        which is returned: the last part of its address."""
        if kind not in CONTENT_TYPES:
            raise ValueError(f"not a kind of audio we keep: {kind}")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{secrets.token_urlsafe(32)}.{kind}"
        partial = self.folder / f".{name}.part"
        with open(partial, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.folder / name)
        return name

    def find(self, name: str) -> tuple[Path, str] | None:
        """The file a name stands for and its Content-Type, or None: for a name that is
        not one `save` makes (so no path can leave the folder), or that is not kept."""
        if not NAME.fullmatch(name):
            return None
        path = self.folder / name
        if not path.is_file():
            return None
        return path, CONTENT_TYPES[name.rsplit(".", 1)[1]]
