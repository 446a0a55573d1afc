"""The outcome chart of a campaign, as a PNG: one horizontal bar per outcome (answered,
no answer, busy, failed…) and per key pressed, with its count and share.

Drawn with Pillow: a bar chart needs rectangles and text only, and Pillow does that
without numpy or a plotting stack (a few MB instead of tens, and little memory in the
worker that draws it)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import ImageFont

WIDTH = 900
ROW = 44
TOP = 70
LEFT = 230
RIGHT = 150
COLOURS = {
    "answered": (46, 160, 67),
    "no answer": (219, 171, 9),
    "busy": (232, 120, 30),
    "failed": (207, 34, 46),
    "voicemail": (130, 80, 223),
}
KEY_COLOUR = (9, 105, 218)
OTHER = (110, 119, 129)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # an older Pillow without scalable default fonts
        return ImageFont.load_default()


def outcome_chart(title: str, bars: Sequence[tuple[str, int]], total: int) -> bytes:
    """A PNG of `bars` (label, count), each with its count and share of `total`."""
    # Imported here: only the worker drawing a campaign's end needs Pillow, and loading it
    # at start would cost every process (the web's included) its memory.
    from PIL import Image, ImageDraw

    height = TOP + ROW * max(1, len(bars)) + 30
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 20), title[:90], fill=(31, 35, 40), font=_font(22))
    label_font, value_font = _font(17), _font(16)
    widest = max((n for _, n in bars), default=0) or 1
    span = WIDTH - LEFT - RIGHT
    for i, (label, count) in enumerate(bars):
        y = TOP + i * ROW
        colour = COLOURS.get(label, KEY_COLOUR if label.startswith("pressed") else OTHER)
        draw.text((20, y + 10), label[:28], fill=(31, 35, 40), font=label_font)
        length = round(span * count / widest)
        draw.rectangle((LEFT, y + 6, LEFT + max(2, length), y + ROW - 8), fill=colour)
        share = f"{100 * count / total:.0f}%" if total else ""
        draw.text(
            (LEFT + max(2, length) + 10, y + 11),
            f"{count:,}  {share}",
            fill=(31, 35, 40),
            font=value_font,
        )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
