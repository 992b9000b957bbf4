"""No token, name or typed text reaches the logs, with DEBUG on and every library's logger turned up."""

from __future__ import annotations

import io
import logging
import re
from datetime import date

from core.logs import PAYLOAD_LOGGERS, configure_logging
from models.entities import Role
from models.people import create_invite
from models.units import unit_by_code
from tests.harness import TOKEN, run_weekly, send_document
from tests.invite_steps import invite_code

SECRETARY, COMMITTEE = 1001, 2002
NAMES = ("Hoàng Văn Páo", "Nông Thị Lan", "Lò Thị Hoa", "Giàng A Páo", "Tày", "Mông")



def leaks(secrets: list[str] | set[str], logs: str) -> list[str]:
    """Return the secrets found in the logs as whole values: a typed year "1998" is not the digits
    of a duration such as 0.1998 s or of a longer number."""
    return [s for s in secrets if re.search(rf"(?<!\d)(?<!\d[.,]){re.escape(s)}(?!\d)(?![.,]\d)", logs)]

def _turn_everything_up() -> tuple[io.StringIO, dict[str, int], list[logging.Handler], int]:
    """Configure logging as `run` does, at DEBUG, and also set every library's logger to DEBUG."""
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in (*PAYLOAD_LOGGERS, "sqlalchemy.engine")}
    handlers, level = list(root.handlers), root.level
    configure_logging(logging.DEBUG)
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    return buffer, saved, handlers, level


def _restore(saved: dict[str, int], handlers: list[logging.Handler], level: int) -> None:
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in saved.items():
        logging.getLogger(name).setLevel(old)


async def test_every_flow_at_debug_logs_no_token_name_or_typed_text(harness) -> None:
    bot = harness
    buffer, saved, handlers, level = _turn_everything_up()
    typed: list[str] = []

    async def say(user: int, text: str) -> list[dict]:
        typed.append(text)
        return await bot.say(user, text)

    try:
        await bot.stop()
        await bot.start()  # start-up logs too
        codes = []
        for user, name, unit, role in ((SECRETARY, NAMES[0], "NL", Role.SECRETARY),
                                       (COMMITTEE, NAMES[1], "PN", Role.COMMITTEE)):
            bot.api.add_user(user, name)
            async with bot.sessions.begin() as session:
                codes.append(await create_invite(session, await unit_by_code(session, unit), role, bot.clock.now(), 14))
            assert "Chào mừng" in (await say(user, f"/start {codes[-1]}"))[-1]["text"]
        await say(SECRETARY, "/start WRONGWRONGWRONGWRONG12")  # a wrong code
        assert "Đã ghi nhận" in (await say(SECRETARY, "/checkin"))[0]["text"]  # the weekly check-in
        # /report, guided.
        await say(SECRETARY, "/report")
        await say(SECRETARY, NAMES[2])
        await say(SECRETARY, "1998")
        await bot.tap(SECRETARY, "Nữ")
        await bot.tap(SECRETARY, NAMES[4])
        await say(SECRETARY, "15/05/2026")
        await say(SECRETARY, "125-QĐ/ĐU")
        await bot.tap(SECRETARY, "Có")
        assert "Đã lưu" in (await bot.tap(SECRETARY, "✅"))[-1]["text"]
        # /report on one line.
        line = f"/report {NAMES[3]}, 1995, nam, 10/05/2026, {NAMES[5]}, 126-QĐ/ĐU"
        typed.append(line)
        assert "Đã lưu" in (await bot.report_one_line(SECRETARY, line))[-1]["text"]
        # /progress, /export (XLSX and CSV), /undo, the reminder and the digest.
        assert "2/90" in (await say(COMMITTEE, "/progress"))[-1]["text"]
        await say(COMMITTEE, "/export")
        await say(COMMITTEE, "/export csv")
        await say(SECRETARY, "/undo")
        assert "Đã rút lại" in (await bot.tap(SECRETARY, "✅ Rút lại"))[-1]["text"]
        await run_weekly(bot.application, "reminder")
        await run_weekly(bot.application, "digest", date(2026, 7, 6))
        await bot.stop()
        await bot.start()
    finally:
        _restore(saved, handlers, level)
    logs = buffer.getvalue()
    assert "DEBUG" in logs or "INFO" in logs  # the capture works: something was logged
    secrets = [TOKEN, TOKEN.split(":")[1], *codes, *NAMES, "Lo Thi Hoa", "125-QĐ/ĐU", "126-QĐ/ĐU",
               *[t for t in typed if not t.startswith("/") or " " in t]]
    # Matched whole (not inside a longer number): a typed "1998" must not be found in a timestamp's digits.
    leaked = leaks(secrets, logs)
    assert leaked == [], f"in the logs: {leaked}"


async def test_the_newer_flows_at_debug_log_no_token_code_name_reason_or_typed_text(harness) -> None:
    """/invite, /people with a revoke, /reports with a correction, /lock and /unlock, /candidate, a file import."""
    bot = harness
    admin, secretary, committee, invited = 3002, 1001, 2001, 1101
    names = ("Quản trị Bế Văn Đàn", "Hoàng Thị Mỷ", "Triệu Văn Sình", "Ma Văn Khánh", "Đinh Thị Xuân",
             "Đinh Thị Xuyến", "Lò Văn Tâm", "Vàng Thị Dính", "Sầm Văn Phủ")
    reasons = ("Sai dấu tên theo lý lịch gốc", "Mở lại để bổ sung hồ sơ Phủ")
    typed: list[str] = []
    buffer, saved, handlers, level = _turn_everything_up()

    async def say(user: int, text: str) -> list[dict]:
        typed.append(text)
        return await bot.say(user, text)

    try:
        await bot.register(admin, "BT", Role.ADMIN, first_name=names[0])
        await bot.register(secretary, "NL", Role.SECRETARY, first_name=names[1])
        await bot.register(committee, "BT", Role.COMMITTEE, first_name=names[2])
        # /invite made in the chat, redeemed by a newcomer; then /people and a revoke (🚫, ✅).
        code = invite_code(await say(admin, "/invite KP secretary"))
        bot.api.add_user(invited, names[3])
        assert "Chi bộ thôn Khuổi Pết" in (await say(invited, f"/start {code}"))[0]["text"]
        listed = (await say(admin, "/people"))[0]
        [label] = [b["text"] for row in listed["reply_markup"]["inline_keyboard"] for b in row
                   if b["text"].endswith(names[3])]
        await bot.tap(admin, label)
        await bot.tap(admin, "🚫")
        assert "Đã thu hồi" in (await bot.tap(admin, "✅"))[0]["text"]
        # /reports with a correction of the name: ✏️, the field, a typed value and reason, ✅.
        line = f"/report {names[4]}, 1998, nữ, 15/05/2026, Tày"
        typed.append(line)
        assert "Đã lưu" in (await bot.report_one_line(secretary, line))[-1]["text"]
        await say(committee, "/reports")
        await bot.tap(committee, f"15/05/2026 · {names[4]}")
        await bot.tap(committee, "✏️")
        await bot.tap(committee, "Họ và tên")
        await say(committee, names[5])
        assert "xác nhận" in (await say(committee, reasons[0]))[-1]["text"].lower()
        assert "Đã sửa" in (await bot.tap(committee, "✅"))[0]["text"]
        # /lock dd/mm/yyyy with ✅, then /unlock with a typed reason and ✅.
        await say(admin, "/lock 30/06/2026")
        assert "30/06/2026" in (await bot.tap(admin, "✅"))[-1]["text"]
        assert "lý do" in (await say(admin, "/unlock"))[-1]["text"]
        await say(admin, reasons[1])
        assert "Đã mở sổ" in (await bot.tap(admin, "✅"))[-1]["text"]
        # /candidate on one line, ✅.
        assert "Kiểm tra lại" in (await say(secretary, f"/candidate {names[6]}, 2001, nam, cảm tình"))[0]["text"]
        await bot.tap(secretary, "✅")
        # A file: the preview, then ✅.
        rows = f"unit_code,full_name,birth_year,gender,admitted_on\nNL,{names[7]},1999,nữ,15/05/2026\n"
        typed.append(rows)
        assert "Đọc được 1 dòng" in (await send_document(bot, admin, "ket-nap-phu.csv", rows.encode()))[-1]["text"]
        assert any("Đã nạp" in r.get("text", "") for r in await bot.tap(admin, "✅"))
    finally:
        _restore(saved, handlers, level)
    logs = buffer.getvalue()
    assert "DEBUG" in logs or "INFO" in logs
    secrets = [TOKEN, TOKEN.split(":")[1], code, *names, *reasons, "ket-nap-phu.csv",
               *[t for t in typed if not t.startswith("/") or " " in t]]
    leaked = leaks(secrets, logs)
    assert leaked == [], f"in the logs: {leaked}"
