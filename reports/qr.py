"""QR codes of invite links (segno: pure Python, no image library needed), as PNG bytes for sendPhoto."""

from __future__ import annotations

import io

import segno

# Big modules and the standard quiet zone: printed on paper or shown on a cheap phone's screen,
# the code still scans from arm's length. Error correction M survives a crease or a smudge.
SCALE, BORDER = 10, 4


def qr_png(text: str) -> bytes:
    """Return a PNG of the QR code of `text` (black on white)."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=SCALE, border=BORDER)
    return buffer.getvalue()
