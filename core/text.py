"""Text helpers every layer shares: Telegram-HTML escaping and fitting long texts into messages.

Cutting only between lines keeps the HTML whole: no tag or entity spans a line in our texts.
"""

from __future__ import annotations

import html

MESSAGE_LIMIT = 4096  # characters Telegram takes in one message (after entity parsing)
SAFE_LIMIT = 4000  # what our texts aim at: room for markup the count may include


def esc(text: object) -> str:
    """Escape a value for Telegram HTML."""
    return html.escape(str(text), quote=False)


def shorten(text: str, limit: int, note: str) -> str:
    """Return `text`, or as many of its first whole lines as fit in `limit` with `note` after them."""
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = len(note)
    for line in text.split("\n"):
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([*kept, note])


def split_message(text: str, limit: int = SAFE_LIMIT) -> list[str]:
    """Split `text` into messages of at most `limit` characters, between lines (a line longer than
    `limit` on its own is cut between words, else hard)."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        for piece in _fit_line(line, limit):
            candidate = piece if not current else current + "\n" + piece
            if len(candidate) <= limit:
                current = candidate
            else:
                if current.strip():
                    parts.append(current)
                current = piece
    if current.strip():
        parts.append(current)
    return parts or [text[:limit]]


def _fit_line(line: str, limit: int) -> list[str]:
    """Return `line` as pieces of at most `limit` characters, cut after a list's ", " where possible,
    else at a space (a list of names keeps every name whole)."""
    pieces: list[str] = []
    while len(line) > limit:
        cut = line.rfind(", ", 0, limit - 1)
        cut = cut + 1 if cut > 0 else line.rfind(" ", 0, limit)
        cut = cut if cut > 0 else limit
        pieces.append(line[:cut])
        line = line[cut:].lstrip(" ")
    pieces.append(line)
    return pieces
