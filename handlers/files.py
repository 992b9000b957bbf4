"""Files through the chat (admins): a CSV or XLSX import file → preview → ✅ import / ❌ cancel; /template.

An admin sends a document; its header says which of the command line's three formats it is
(models.importing.recognise). The bot plans the import within the admin's subtrees without
writing (models.importing.plan_import) and replies with the preview: rows read, what would be
created, changed and left as is, and every bad row with its line (the first SHOWN_PROBLEMS in the
message, all of them in a CSV document when there are more). A file with bad rows imports nothing
(as on the command line): it gets no ✅, only the list to fix and send again.

Between the preview and ✅ the upload is kept in the sender's persistent user_data (PENDING: its
number, file_id, size, SHA-256 and the previewed counts — never the file's contents), so ✅ works
after a restart: it downloads the file again by file_id, checks it is the same bytes, plans again
inside the import's transaction and imports only if the plan still has the counts the admin saw
(otherwise the new preview is shown to confirm again). The audit entry of the import carries the
upload's number (subject "import", subject_id), and ✅ first looks for it in the same transaction:
a second ✅, a redelivered one, or one after a crash between the commit and the user_data flush
imports nothing again. Buttons: `files:ok:<upload>` / `files:no:<upload>`; a press by someone
else, after ❌ or after a newer upload, finds no such pending upload and is refused politely.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from core.i18n import Translator
from handlers.common import answer, cached_person, current_person, esc, reply, today, translator
from handlers.context import BotContext, Feature
from models.entities import AuditChannel, Person, Role
from models.importing import (
    EXAMPLES,
    FORMATS,
    ImportPlan,
    ImportProblems,
    Problem,
    csv_header,
    is_xlsx,
    plan_import,
    recognise,
    record_import,
    template_workbook,
    upload_imported,
    xlsx_to_csv,
)
from models.people import Scope
from models.updates import mark_processed

MAX_BYTES = 5 * 1024 * 1024  # a department's file: far more rows than a district has
EXTENSIONS = ("csv", "xlsx")
SHOWN_PROBLEMS = 20  # bad rows listed in the message; all of them go in a CSV document beyond that
DETAIL_CHARS = 60  # of a bad value quoted in a problem line
PENDING = "files_pending"  # user_data key of the upload waiting for ✅
CONFIRM, CANCEL = r"^files:ok:\d{1,15}$", r"^files:no:\d{1,15}$"
TEMPLATE_FILES = {"units": "mau-don-vi.xlsx", "targets": "mau-ke-hoach-chi-tieu.xlsx", "admissions": "mau-da-ket-nap.xlsx"}


def is_admin(scope: Scope) -> bool:
    """Tell whether the person administers a subtree (files and templates are theirs)."""
    return Role.ADMIN in scope.roles


def _within(person: Person) -> list[str]:
    return [unit.path for unit in Scope(person).units(Role.ADMIN)]


def _extension(name: str | None) -> str:
    return name.rsplit(".", 1)[1].lower() if name and "." in name else ""


async def _download(context: BotContext, file_id: str) -> bytes | None:
    """Return the file's bytes (getFile, then the download), or None when it is too big or unavailable."""
    try:
        file = await context.bot.get_file(file_id)
        if file.file_size is not None and file.file_size > MAX_BYTES:
            return None
        data = bytes(await file.download_as_bytearray())
    except TelegramError:
        return None
    return data if len(data) <= MAX_BYTES else None


def _as_csv(data: bytes, name: str) -> bytes:
    """Return the import file as CSV bytes (an XLSX's data sheet read as CSV); raise ImportProblems."""
    if is_xlsx(data):
        return xlsx_to_csv(data, recognise)
    if _extension(name) == "xlsx":
        raise ImportProblems([(1, "bad_xlsx", "")])
    return data


def _problem_text(tr: Translator, key: str, detail: str) -> str:
    shown = detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS - 1] + "…"
    try:
        return tr(f"cli.problem.{key}", detail=shown)
    except KeyError:
        return f"{key} {shown}".strip()


def _preview_text(tr: Translator, name: str, plan: ImportPlan) -> str:
    """Return the preview: what was read, what ✅ would do, every bad row (the first SHOWN_PROBLEMS)."""
    lines = [tr("files.preview_head", name=esc(name), kind=tr(f"files.kind.{plan.kind}"), total=tr.number(plan.total)),
             tr("files.counts", created=tr.number(plan.created), changed=tr.number(plan.changed),
                unchanged=tr.number(plan.unchanged))]
    if not plan.problems:
        lines.append(tr("files.confirm"))
        return "\n".join(lines)
    bad = len({line for line, _, _ in plan.problems})
    lines.append(tr("files.bad_head", count=tr.number(bad)))
    for line, key, detail in plan.problems[:SHOWN_PROBLEMS]:
        lines.append(tr("files.bad_line", line=line, problem=esc(_problem_text(tr, key, detail))))
    if len(plan.problems) > SHOWN_PROBLEMS:
        lines.append(tr("files.bad_more", count=tr.number(len(plan.problems) - SHOWN_PROBLEMS)))
    lines.append(tr("files.fix_and_resend"))
    return "\n".join(lines)


def _problems_csv(tr: Translator, problems: list[Problem]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([tr("files.csv_line"), tr("files.csv_problem")])
    for line, key, detail in problems:
        writer.writerow([line, _problem_text(tr, key, detail)])
    return out.getvalue().encode("utf-8-sig")  # with BOM: Excel opens it as UTF-8


def _buttons(tr: Translator, upload: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(tr("files.button_import"), callback_data=f"files:ok:{upload}"),
        InlineKeyboardButton(tr("files.button_cancel"), callback_data=f"files:no:{upload}"),
    ]])


async def _send_preview(update: Update, context: BotContext, tr: Translator, name: str, plan: ImportPlan,
                        upload: int | None) -> None:
    """Send the preview (with ✅ / ❌ when `upload` is given) and the full list of bad rows when long."""
    markup = _buttons(tr, upload) if upload is not None and not plan.problems else None
    await reply(update, context, _preview_text(tr, name, plan), markup)
    if len(plan.problems) > SHOWN_PROBLEMS:
        chat = update.effective_chat
        assert chat is not None
        await context.bot.send_document(chat.id, document=_problems_csv(tr, plan.problems),
                                        filename=f"loi-{plan.kind}.csv", caption=tr("files.bad_list_caption"))


async def _plan(context: BotContext, person: Person, data: bytes, name: str,
                session: AsyncSession) -> ImportPlan | str:
    """Return the plan of the file within the person's subtrees, or the catalog key of why there is none."""
    services = context.services
    try:
        text = _as_csv(data, name)
    except ImportProblems as exc:
        return "files.too_big" if exc.problems[0][1] == "too_many_rows" else "files.unreadable"
    kind = recognise(csv_header(text))
    if kind is None:
        return "files.unknown_header"
    try:
        return await plan_import(session, kind, text, today=today(context), now=services.clock.now(),
                                 term_start=services.config.bot.term_start, within=_within(person), keep_rows=True)
    except ImportProblems as exc:  # the header or the encoding: the file as a whole
        return ImportPlan(kind, 0, 0, 0, 0, exc.problems)


async def document(update: Update, context: BotContext) -> None:
    """Preview an import file an admin sent, with ✅ / ❌; say what to send instead of anything else."""
    message = update.message
    assert message is not None and message.document is not None
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    sent = message.document
    if not is_admin(Scope(person)):
        await reply(update, context, tr("files.not_admin"))
        return
    assert context.user_data is not None
    context.user_data.pop(PENDING, None)  # the newest file is the one ✅ may import
    name = sent.file_name or ""
    if _extension(name) not in EXTENSIONS:
        await reply(update, context, tr("files.wrong_format"))
        return
    if sent.file_size is not None and sent.file_size > MAX_BYTES:
        await reply(update, context, tr("files.too_big"))
        return
    data = await _download(context, sent.file_id)
    if data is None:
        await reply(update, context, tr("files.too_big_or_gone"))
        return
    async with context.services.db.reading() as session:
        plan = await _plan(context, person, data, name, session)
    if isinstance(plan, str):
        await reply(update, context, tr(plan, headers=_headers()))
        return
    upload = None
    if not plan.problems:
        upload = secrets.randbelow(10**15)
        context.user_data[PENDING] = {"upload": upload, "file_id": sent.file_id, "name": name[:64],
                                      "sha256": hashlib.sha256(data).hexdigest(), "counts": list(plan.counts)}
    await _send_preview(update, context, tr, name, plan, upload)


def _headers() -> str:
    return "\n".join(f"• <code>{','.join(required + optional)}</code>" for required, optional in FORMATS.values())


async def _show(query: CallbackQuery, text: str) -> None:
    """Put the outcome in place of the preview (its buttons go); a message gone or unchanged is left."""
    try:
        await query.edit_message_text(text)
    except BadRequest:
        pass


def _pending(context: BotContext, upload: int) -> dict[str, Any] | None:
    stored = (context.user_data or {}).get(PENDING)
    return stored if isinstance(stored, dict) and stored.get("upload") == upload else None


async def _refuse_stale(query: CallbackQuery, context: BotContext, tr: Translator, person: Person, upload: int) -> None:
    """Answer a ✅ / ❌ with no pending upload behind it: done already (the sender's own), or not valid."""
    async with context.services.db.reading() as session:
        entry = await upload_imported(session, upload)
    if entry is not None and entry.person_id == person.id:
        await answer(query, tr("files.already_imported", **_counts(tr, entry.new_value)), alert=True)
    else:
        await answer(query, tr("files.stale"), alert=True)


def _counts(tr: Translator, value: str | None) -> dict[str, str]:
    counts = json.loads(value or "{}")
    return {key: tr.number(counts.get(key, 0)) for key in ("total", "created", "changed", "unchanged")}


async def confirm(update: Update, context: BotContext) -> None:
    """Import the pending upload ✅ names, once, if the file and what it would do are still as previewed."""
    query = update.callback_query
    assert query is not None and query.data is not None
    services = context.services
    upload = int(query.data.rsplit(":", 1)[1])
    person = await cached_person(context, update)
    assert person is not None
    tr = translator(context, update, person)
    pending = _pending(context, upload)
    if not is_admin(Scope(person)):
        await answer(query, tr("files.not_admin"), alert=True)
        return
    if pending is None:
        await _refuse_stale(query, context, tr, person, upload)
        return
    data = await _download(context, pending["file_id"])
    if data is None or hashlib.sha256(data).hexdigest() != pending["sha256"]:
        context.user_data.pop(PENDING, None)  # type: ignore[union-attr]
        await _show(query, tr("files.gone"))
        await answer(query)
        return
    outcome, plan, entry = "imported", None, None
    async with services.db.writing() as session:
        entry = await upload_imported(session, upload)
        if entry is not None:
            outcome = "already"
        else:
            me = await current_person(session, update)
            assert me is not None
            plan = await _plan(context, me, data, pending["name"], session)
            if isinstance(plan, str) or plan.problems:
                outcome = "now_bad"
            elif list(plan.counts) != pending["counts"]:
                outcome = "changed"
            else:
                now = services.clock.now()
                await plan.apply()
                await record_import(session, plan, at=now, channel=AuditChannel.FILE, person=me, upload_id=upload)
                # Recorded as handled in the import's own transaction: a redelivered ✅ is skipped.
                await mark_processed(session, [update.update_id], now)
    assert context.user_data is not None
    if outcome == "changed":
        assert isinstance(plan, ImportPlan)
        pending["counts"] = list(plan.counts)
        await _show(query, tr("files.changed"))
        await _send_preview(update, context, tr, pending["name"], plan, upload)
    elif outcome == "now_bad":
        context.user_data.pop(PENDING, None)
        await _show(query, tr("files.changed_bad"))
        if isinstance(plan, ImportPlan):
            await _send_preview(update, context, tr, pending["name"], plan, None)
    else:
        context.user_data.pop(PENDING, None)
        if outcome == "already":
            await _show(query, tr("files.already_imported", **_counts(tr, entry.new_value if entry else None)))
        else:
            assert isinstance(plan, ImportPlan)
            total, created, changed, unchanged = (tr.number(n) for n in plan.counts)
            await _show(query, tr("files.imported", kind=tr(f"files.kind.{plan.kind}"), total=total,
                                  created=created, changed=changed, unchanged=unchanged))
    await answer(query)


async def cancel(update: Update, context: BotContext) -> None:
    """Forget the pending upload ❌ names; nothing was changed."""
    query = update.callback_query
    assert query is not None and query.data is not None
    person = await cached_person(context, update)
    assert person is not None
    tr = translator(context, update, person)
    upload = int(query.data.rsplit(":", 1)[1])
    if _pending(context, upload) is None:
        await _refuse_stale(query, context, tr, person, upload)
        return
    context.user_data.pop(PENDING, None)  # type: ignore[union-attr]
    await _show(query, tr("files.cancelled"))
    await answer(query)


async def template(update: Update, context: BotContext) -> None:
    """Send the three empty import templates (XLSX) to an admin."""
    person = await cached_person(context, update)
    assert person is not None
    tr = translator(context, update, person)
    if not is_admin(Scope(person)):
        await reply(update, context, tr("files.not_admin"))
        return
    chat = update.effective_chat
    assert chat is not None
    for kind, (required, optional) in FORMATS.items():
        columns = (*required, *optional)
        notes = [(column, tr(f"files.column.{column}"), EXAMPLES[column]) for column in columns]
        content = template_workbook(kind, columns, notes, tr("files.notes_sheet"),
                                    (tr("files.notes_column"), tr("files.notes_meaning"), tr("files.notes_example")))
        await context.bot.send_document(chat.id, document=content, filename=TEMPLATE_FILES[kind],
                                        caption=tr("files.template_caption", kind=tr(f"files.kind.{kind}"),
                                                   header=esc(",".join(columns))))


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [
        MessageHandler(filters.Document.ALL & filters.ChatType.PRIVATE, document),
        CallbackQueryHandler(confirm, pattern=CONFIRM),
        CallbackQueryHandler(cancel, pattern=CANCEL),
        CommandHandler("template", template),
    ]


FEATURE = Feature(handlers=build_handlers, commands={"template": "files.commands.template"},
                  help=((is_admin, "files.help"),))
