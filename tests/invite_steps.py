"""Steps the invites and people tests share: a forged button press, reading an invite, decoding its QR."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import func, select

from models.entities import AuditEntry, Invite

CODE_LINE = re.compile(r"^<code>([A-Za-z0-9_-]{22})</code>$", re.M)


async def forge(bot, user_id: int, data: str) -> tuple[dict, list[dict]]:  # type: ignore[no-untyped-def]
    """Press a button with made-up `data` on the bot's newest message to the user; return the callback
    answer and what the bot sent or edited."""
    message = bot.api.last_message(user_id)
    assert message is not None, "the bot must have written to this chat first"
    mark = bot.api.mark()
    update = bot.api.push_callback(user_id, message["message_id"], data)
    await bot.settle(update)
    return bot.api.callback_answers.get(update["callback_query"]["id"], {}), bot.replies(user_id, mark)


def invite_code(replies: list[dict]) -> str:
    """Return the code of the invite message among `replies` (the code alone on its own line)."""
    for reply in replies:
        found = CODE_LINE.search(reply.get("text") or "")
        if found:
            return found.group(1)
    raise AssertionError(f"no invite code in {[r.get('text') for r in replies]}")


def decode_qr(png: bytes, folder: Path) -> str | None:
    """Return the text of the QR code in a PNG (zbarimg, Debian's zbar-tools), or None when zbarimg is missing."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        return None
    path = folder / "qr.png"
    path.write_bytes(png)
    out = subprocess.run([zbarimg, "--raw", "-q", str(path)], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


async def counts(bot) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Return how many invites and audit entries are stored."""
    async with bot.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(Invite)),
                await session.scalar(select(func.count()).select_from(AuditEntry)))
