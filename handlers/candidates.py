"""/candidates, /candidate and /admissions: the cell's pipeline before the decision, and the dates after it.

- `/candidates` lists a secretary's cell by stage (a button per candidate, one to add); a committee
  member or admin sees the stage counts of their units, and `/candidates CODE` one cell of their
  subtree, read only.
- Adding is a guided conversation (name, birth year, sex, ethnicity, Youth Union, mentor, stage,
  its date, then a card with ✅), or one line: `/candidate NAME, YEAR, SEX[, STAGE]` (candidates.toml).
  The answers are parsed by models.values and handlers.report_card (the /report rules).
- A candidate's card shows the stage history, the mentor and what comes next, with buttons to
  advance (the date is asked), to leave with a reason, and to come back (working away). After
  the last stage the next step is the decision: its button opens the /report card pre-filled from
  the candidate (handlers.report: `report:cand:<id>`), and ✅ there saves the admission and links it.
  Reaching the candidate list (`cam_tinh`, "with mentor") without a mentor asks for one («Skip»
  leaves none); the card's 👤 button assigns or changes the mentor.
- `/admissions` lists the cell's members awaiting their ceremony or recognition (a committee member or
  admin: `/admissions CODE`, a cell of their subtree); a card records the ceremony, recognition or
  removal day (models.membership.set_after_decision).
Every stateless button re-checks the presser's scope (models.candidates.candidate_in_scope): a
forged one is refused politely and changes nothing. See candidates.mmd for the conversation.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from core.i18n import Translator
from core.text import esc
from handlers.common import DraftConversation, answer, cached_person, current_person, reply, today, translator
from handlers.context import BotContext, Feature
from handlers.report_card import ETHNICITY_BUTTONS, keyboard
from models.candidates import (
    CandidateDraft,
    CandidateError,
    add_candidate,
    advance,
    candidate_in_scope,
    candidates_of,
    come_back,
    leave,
    next_stage,
    parse_stage,
    set_mentor,
    stage_counts,
)
from models.entities import STAGES, Admission, Candidate, ExitReason, Person, Role, Sex, Stage, Unit, UnitKind
from models.membership import AFTER_DECISION, DateRefused, awaiting_after_decision, set_after_decision
from models.people import Scope
from models.units import unit_by_code, unit_by_id
from models.values import capitalise_name, clean_name, parse_birth_year, parse_date, parse_ethnicity, parse_sex, parse_yes_no

# Persisted state numbers: new states go at the end.
NAME, BIRTH_YEAR, SEX, ETHNICITY, YOUTH, MENTOR, STAGE, STAGE_DATE, CONFIRM, WHEN, NEW_MENTOR = range(11)
END = ConversationHandler.END
DRAFT = "candidate"
MAX_TEXT = 200
DRAFT_LIFETIME = timedelta(days=2)
HISTORY_SINCE = timedelta(days=3 * 366)  # /admissions lists members decided in the last three years
ID = r"\d{1,18}"


def _draft(context: BotContext) -> dict[str, Any]:
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]


def _text(update: Update) -> str:
    message = update.effective_message
    return ((message.text or "") if message is not None else "")[:MAX_TEXT]


def stage_name(tr: Translator, stage: Stage | str) -> str:
    """Return the Vietnamese (or English) name of a stage."""
    return tr(f"candidates.stage.{Stage(stage).value}")


# The decision: the /report card pre-filled from a candidate (handlers.report calls this) -------------

DECISION_PREFIX = "report:cand:"  # the card's decision button, an entry point of the /report conversation


async def prefill_report(update: Update, context: BotContext, draft: dict[str, Any]) -> bool:
    """Fill a new /report draft from the pressed candidate (their cell, name, birth year, sex, ethnicity,
    Youth Union) and remember the candidate, so that ✅ links the admission; False (said why) if refused."""
    person = await cached_person(context, update)
    tr = translator(context, update, person)
    async with context.services.db.reading() as session:
        candidate = await candidate_in_scope(session, _id(update), person, write=True) if person else None
    if candidate is None or candidate.admission_id is not None or candidate.exit_reason is not None \
            or next_stage(candidate.stage) is not None:
        key = "already_admitted" if candidate is not None and candidate.admission_id else "not_allowed"
        await reply(update, context, tr(f"candidates.error.{key}"))
        return False
    draft.update(unit_id=candidate.unit_id, cell_name=candidate.unit.name, full_name=candidate.full_name,
                 birth_year=candidate.birth_year, sex=candidate.sex.value, candidate_id=candidate.id)
    if candidate.ethnicity:
        draft["ethnicity"] = candidate.ethnicity
    if candidate.youth_union is not None:
        draft["youth_union"] = candidate.youth_union
    return True


# Listing ------------------------------------------------------------------------------------


def _cell_list(tr: Translator, cell: Unit, people: list[Candidate], writable: bool) -> tuple[str, Any]:
    lines = [tr("candidates.list_header", cell=esc(cell.name))]
    active = [c for c in people if c.exit_reason is None]
    if not active:
        lines.append(tr("candidates.list_empty"))
    for stage in STAGES:
        here = [c for c in active if c.stage == stage]
        if here:
            lines.append("")
            lines.append(tr("candidates.list_stage", stage=stage_name(tr, stage), count=tr.number(len(here))))
            lines.extend(tr("candidates.list_line", name=esc(c.full_name), year=c.birth_year) for c in here)
    away = [c for c in people if c.exit_reason == ExitReason.WORKING_AWAY]
    if away:
        lines.append("")
        lines.append(tr("candidates.list_away", count=tr.number(len(away))))
        lines.extend(tr("candidates.list_line", name=esc(c.full_name), year=c.birth_year) for c in away)
    rows = [[(f"{c.full_name} · {stage_name(tr, c.stage)}"[:60], f"cand:show:{c.id}")] for c in active + away]
    if writable:
        rows.append([(tr("candidates.button_add"), f"cand:add:{cell.id}")])
    return "\n".join(lines), keyboard(rows) if rows else None


async def list_candidates(update: Update, context: BotContext) -> None:
    """List the secretary's cell by stage, or the stage counts (or one cell) of a committee member's units."""
    person = await cached_person(context, update)
    tr = translator(context, update, person)
    if person is None:
        return
    scope = Scope(person)
    words = _text(update).split(maxsplit=1)
    async with context.services.db.reading() as session:
        if len(words) > 1:
            unit = await unit_by_code(session, words[1].strip())
            if unit is None or not scope.may_view(unit):
                await reply(update, context, tr("candidates.unknown_unit"))
                return
            cells = [unit]
        else:
            cells = scope.reporting_cells()
        if cells and all(c.kind == UnitKind.CELL for c in cells):
            for cell in cells:
                people = await candidates_of(session, cell, include_departed=True)
                text, markup = _cell_list(tr, cell, people, scope.may_report_for(cell))
                await reply(update, context, text, markup)
            return
        units = cells or scope.units(Role.COMMITTEE, Role.ADMIN)
        if not units:
            await reply(update, context, tr("candidates.nothing_to_show"))
            return
        for unit in units:
            counts = await stage_counts(session, unit)
            lines = [tr("candidates.counts_header", unit=esc(unit.name))]
            lines.extend(tr("candidates.counts_line", stage=stage_name(tr, s), count=tr.number(n))
                         for s, n in counts.items())
            lines.append(tr("candidates.counts_hint"))
            await reply(update, context, "\n".join(lines))


# The card -----------------------------------------------------------------------------------


def card_text(tr: Translator, candidate: Candidate) -> str:
    """Return a candidate's card: stage history with dates, mentor, where they stand and what comes next."""
    lines = [tr("candidates.card_header", name=esc(candidate.full_name), year=candidate.birth_year,
                sex=tr(f"report.sex_{candidate.sex.value}"), cell=esc(candidate.unit.name))]
    if candidate.ethnicity:
        lines.append(tr("candidates.card_ethnicity", ethnicity=esc(candidate.ethnicity)))
    if candidate.youth_union is not None:
        lines.append(tr("candidates.card_youth", answer=tr("common.yes" if candidate.youth_union else "common.no")))
    lines.append(tr("candidates.card_mentor", mentor=esc(candidate.mentor_name) if candidate.mentor_name
                    else tr("candidates.none")))
    lines.append("")
    lines.append(tr("candidates.card_history"))
    lines.extend(tr("candidates.card_history_line", stage=stage_name(tr, h.stage), date=tr.date(h.reached_on))
                 for h in candidate.history)
    lines.append("")
    if candidate.admission_id is not None:
        lines.append(tr("candidates.card_admitted"))
    elif candidate.exit_reason is not None:
        lines.append(tr("candidates.card_left", reason=tr(f"candidates.reason.{candidate.exit_reason.value}"),
                        date=tr.date(candidate.exited_on) if candidate.exited_on else ""))
    else:
        following = next_stage(candidate.stage)
        lines.append(tr("candidates.card_next", stage=stage_name(tr, following)) if following
                     else tr("candidates.card_next_decision"))
    return "\n".join(lines)


def card_buttons(tr: Translator, candidate: Candidate, writable: bool) -> Any:
    """Return the card's buttons for someone who may change the candidate (none otherwise)."""
    if not writable or candidate.admission_id is not None:
        return None
    if candidate.exit_reason == ExitReason.WORKING_AWAY:
        return keyboard([[(tr("candidates.button_return"), f"cand:ret:{candidate.id}")]])
    if candidate.exit_reason is not None:
        return None
    following = next_stage(candidate.stage)
    first = (tr("candidates.button_advance", stage=stage_name(tr, following)), f"cand:adv:{candidate.id}") \
        if following else (tr("candidates.button_decision"), f"report:cand:{candidate.id}")
    return keyboard([[first], [(tr("candidates.button_mentor"), f"cand:mentor:{candidate.id}")],
                     [(tr("candidates.button_exit"), f"cand:exit:{candidate.id}")]])


async def _refuse(update: Update, context: BotContext) -> None:
    """Answer a button the presser may not use (or that names nothing): politely, nothing changes."""
    assert update.callback_query is not None
    await answer(update.callback_query, translator(context, update)("common.not_allowed"), alert=True)


def _id(update: Update, position: int = 2) -> int:
    assert update.callback_query is not None and update.callback_query.data is not None
    return int(update.callback_query.data.split(":")[position])


async def show_card(update: Update, context: BotContext) -> None:
    """Show a candidate's card (to someone whose scope holds the candidate's cell)."""
    person = await cached_person(context, update)
    async with context.services.db.reading() as session:
        candidate = await candidate_in_scope(session, _id(update), person) if person else None
        if candidate is None:
            await _refuse(update, context)
            return
        tr = translator(context, update, person)
        writable = Scope(person).may_report_for(candidate.unit)
        await reply(update, context, card_text(tr, candidate), card_buttons(tr, candidate, writable))
    await answer(update.callback_query)  # type: ignore[arg-type]


async def offer_exit(update: Update, context: BotContext) -> None:
    """Offer the reasons a candidate may leave the pipeline for."""
    person = await cached_person(context, update)
    async with context.services.db.reading() as session:
        candidate = await candidate_in_scope(session, _id(update), person, write=True) if person else None
    if candidate is None:
        await _refuse(update, context)
        return
    tr = translator(context, update, person)
    rows = [[(tr(f"candidates.reason.{r.value}"), f"cand:exitr:{candidate.id}:{r.value}")] for r in ExitReason]
    await reply(update, context, tr("candidates.ask_reason", name=esc(candidate.full_name)), keyboard(rows))
    await answer(update.callback_query)  # type: ignore[arg-type]


async def _change(update: Update, context: BotContext, work) -> None:  # type: ignore[no-untyped-def]
    """Apply `work(session, candidate, person, now, today)` to the pressed candidate, then show the card."""
    query = update.callback_query
    assert query is not None
    tr = translator(context, update, await cached_person(context, update))
    try:
        async with context.services.db.writing() as session:
            person = await current_person(session, update)
            candidate = await candidate_in_scope(session, _id(update), person, write=True) if person else None
            if candidate is None:
                await _refuse(update, context)
                return
            await work(session, candidate, person, context.services.clock.now(), today(context))
            text, markup = card_text(tr, candidate), card_buttons(tr, candidate, True)
    except CandidateError as error:
        await answer(query, tr(f"candidates.error.{error.args[0]}"), alert=True)
        return
    await reply(update, context, text, markup)
    await answer(query)


async def take_exit(update: Update, context: BotContext) -> None:
    """Take the candidate out of the pipeline today, for the chosen reason."""
    assert update.callback_query is not None and update.callback_query.data is not None
    reason = ExitReason(update.callback_query.data.rsplit(":", 1)[1])
    await _change(update, context, lambda s, c, p, now, day: leave(s, c, reason, day, p, now, day))


async def take_return(update: Update, context: BotContext) -> None:
    """Bring back a candidate who went working away."""
    await _change(update, context, lambda s, c, p, now, day: come_back(s, c, p, now))


# Adding (guided or one line) ------------------------------------------------------------------


def _question(tr: Translator, state: int, draft: dict[str, Any]) -> tuple[str, Any]:
    if state == NAME:
        return tr("candidates.ask_name", cell=esc(draft.get("cell_name", ""))), None
    if state == BIRTH_YEAR:
        return tr("candidates.ask_birth_year", name=esc(draft["full_name"])), None
    if state == SEX:
        return tr("report.ask_sex"), keyboard([[(tr("report.button_male"), "cand:sex:male"),
                                                (tr("report.button_female"), "cand:sex:female")]])
    if state == ETHNICITY:
        names = [(name, f"cand:eth:{i}") for i, name in enumerate(ETHNICITY_BUTTONS)]
        return tr("candidates.ask_ethnicity"), keyboard([names[i:i + 3] for i in range(0, len(names), 3)]
                                                        + [[(tr("report.button_skip"), "cand:skip")]])
    if state == YOUTH:
        return tr("candidates.ask_youth"), keyboard([[(tr("common.yes"), "cand:youth:yes"),
                                                      (tr("common.no"), "cand:youth:no")]])
    if state == MENTOR:
        return tr("candidates.ask_mentor"), keyboard([[(tr("report.button_skip"), "cand:skip")]])
    if state == NEW_MENTOR:
        return tr("candidates.ask_new_mentor", name=esc(draft["full_name"])), \
            keyboard([[(tr("report.button_skip"), "cand:skip")]])
    if state == STAGE:
        rows = [[(stage_name(tr, s), f"cand:stage:{s.value}")] for s in STAGES]
        return tr("candidates.ask_stage"), keyboard(rows)
    if state in (STAGE_DATE, WHEN):
        return tr(f"candidates.ask_when_{draft.get('action', 'stage')}", stage=stage_name(tr, draft["stage"])
                  if draft.get("stage") else "", name=esc(draft.get("full_name", ""))), \
            keyboard([[(tr("report.button_today"), "cand:today")]])
    lines = [tr("candidates.confirm_header"),
             tr("report.card_line", label=tr("report.field_cell"), value=esc(draft["cell_name"])),
             tr("report.card_line", label=tr("report.field_name"), value=esc(draft["full_name"])),
             tr("report.card_line", label=tr("report.field_birth_year"), value=draft["birth_year"]),
             tr("report.card_line", label=tr("report.field_sex"), value=tr(f"report.sex_{draft['sex']}")),
             tr("report.card_line", label=tr("report.field_ethnicity"),
                value=esc(draft.get("ethnicity") or tr("candidates.none"))),
             tr("report.card_line", label=tr("report.field_youth"),
                value=tr("common.yes") if draft.get("youth_union") else tr("common.no")
                if draft.get("youth_union") is not None else tr("candidates.none")),
             tr("report.card_line", label=tr("candidates.field_mentor"),
                value=esc(draft.get("mentor_name") or tr("candidates.none"))),
             tr("report.card_line", label=tr("candidates.field_stage"),
                value=f"{stage_name(tr, draft['stage'])} ({tr.date(date.fromisoformat(draft['reached_on']))})")]
    return "\n".join(lines), keyboard([[(tr("candidates.button_save"), f"cand:save:{draft['ref']}"),
                                        (tr("report.button_cancel"), "cand:cancel")]])


async def _ask(update: Update, context: BotContext, state: int, before: str = "") -> int:
    """Ask for `state` in a new message (the earlier question's buttons stop counting) and return it."""
    tr = translator(context, update)
    text, markup = _question(tr, state, _draft(context))
    message = await reply(update, context, f"{before}\n\n{text}" if before else text, markup)
    _draft(context)["live"] = message.message_id
    return state


def _live(update: Update, context: BotContext) -> bool:
    """Tell whether a pressed button belongs to the question asked last (older ones change nothing)."""
    query = update.callback_query
    if query is None:
        return True
    draft = context.user_data.get(DRAFT) or {}  # type: ignore[union-attr]
    return query.message is not None and draft.get("live") == query.message.message_id


async def _stale(update: Update, context: BotContext) -> None:
    """Answer a button of an older question: nothing changes."""
    assert update.callback_query is not None
    await answer(update.callback_query, translator(context, update)("report.stale_question"), alert=True)


async def _bad(update: Update, context: BotContext, key: str, example: str = "") -> None:
    tr = translator(context, update)
    await reply(update, context, tr(key, example=esc(tr(example)) if example else ""))


def _one_line(tr: Translator, line: str, day: date, draft: dict[str, Any]) -> str | None:
    """Fill the draft from `name, birth year, sex[, stage]`; return what is wrong, or None."""
    parts = [p.strip() for p in re.split(r"[,;]", line)]
    while len(parts) > 3 and not parts[-1]:
        parts.pop()
    if len(parts) < 3 or len(parts) > 4 or not all(parts):
        return tr("candidates.one_line_usage")
    try:
        draft["full_name"] = capitalise_name(clean_name(parts[0]))
        draft["birth_year"] = parse_birth_year(parts[1], day)
        draft["sex"] = parse_sex(parts[2]).value
        draft["stage"] = (parse_stage(parts[3]) if len(parts) == 4 else Stage.NGUON).value
    except ValueError as error:
        key = error.args[0]
        return tr(f"candidates.error.{key}") if key == "not_stage" else \
            tr(f"report.invalid.{key}", example="") + "\n" + tr("candidates.one_line_usage")
    draft["reached_on"] = day.isoformat()
    return None


async def start_add(update: Update, context: BotContext) -> int:
    """Start adding a candidate to the secretary's cell: guided, or from one line."""
    query = update.callback_query
    person = await cached_person(context, update)
    tr = translator(context, update, person)
    scope = Scope(person) if person else None
    async with context.services.db.reading() as session:
        if query is not None:
            cell = await unit_by_id(session, _id(update))
            cells = [cell] if cell is not None and scope is not None and scope.may_report_for(cell) else []
            if not cells:
                await _refuse(update, context)
                return END
            await answer(query)
        else:
            cells = [c for c in (scope.reporting_cells() if scope else []) if c.kind == UnitKind.CELL]
    if not cells:
        await reply(update, context, tr("candidates.not_secretary"))
        return END
    if len(cells) > 1:
        await reply(update, context, tr("candidates.choose_cell_first"))
        return END
    context.user_data[DRAFT] = draft = {  # type: ignore[index]
        "ref": uuid.uuid4().hex, "started": context.services.clock.now().isoformat(),
        "unit_id": cells[0].id, "cell_name": cells[0].name}
    words = _text(update).split(maxsplit=1) if query is None else []
    if len(words) > 1:
        problem = _one_line(tr, words[1], today(context), draft)
        if problem:
            context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
            await reply(update, context, problem)
            return END
        return await _ask(update, context, CONFIRM)
    return await _ask(update, context, NAME)


async def take_name(update: Update, context: BotContext) -> int | None:
    """Take the candidate's full name, each word capitalised."""
    try:
        _draft(context)["full_name"] = capitalise_name(clean_name(_text(update)))
    except ValueError as error:
        await _bad(update, context, f"report.invalid.{error.args[0]}", "report.example.name")
        return None
    return await _ask(update, context, BIRTH_YEAR)


async def take_birth_year(update: Update, context: BotContext) -> int | None:
    """Take a four-digit birth year (18 to 90 years old this year, as /report)."""
    try:
        _draft(context)["birth_year"] = parse_birth_year(_text(update), today(context))
    except ValueError as error:
        await _bad(update, context, f"report.invalid.{error.args[0]}", "report.example.birth_year")
        return None
    return await _ask(update, context, SEX)


async def take_sex(update: Update, context: BotContext) -> int | None:
    """Take the sex from its button or typed."""
    query = update.callback_query
    if query is not None:
        if not _live(update, context):
            await _stale(update, context)
            return None
        await answer(query)
        _draft(context)["sex"] = Sex(query.data.rsplit(":", 1)[1]).value  # type: ignore[union-attr]
    else:
        try:
            _draft(context)["sex"] = parse_sex(_text(update)).value
        except ValueError:
            await _bad(update, context, "report.invalid.not_sex")
            return None
    return await _ask(update, context, ETHNICITY)


async def take_ethnicity(update: Update, context: BotContext) -> int | None:
    """Take the ethnicity from a button, typed, or skipped."""
    query = update.callback_query
    if query is not None:
        if not _live(update, context):
            await _stale(update, context)
            return None
        await answer(query)
        choice = query.data.rsplit(":", 1)[1]  # type: ignore[union-attr]
        _draft(context)["ethnicity"] = None if choice == "skip" else ETHNICITY_BUTTONS[int(choice)]
    else:
        try:
            _draft(context)["ethnicity"] = parse_ethnicity(_text(update))
        except ValueError as error:
            await _bad(update, context, f"report.invalid.{error.args[0]}", "report.example.ethnicity")
            return None
    return await _ask(update, context, YOUTH)


async def take_youth(update: Update, context: BotContext) -> int | None:
    """Take Youth Union membership from its button or typed."""
    query = update.callback_query
    if query is not None:
        if not _live(update, context):
            await _stale(update, context)
            return None
        await answer(query)
        _draft(context)["youth_union"] = query.data.endswith(":yes")  # type: ignore[union-attr]
    else:
        try:
            _draft(context)["youth_union"] = parse_yes_no(_text(update))
        except ValueError:
            await _bad(update, context, "report.invalid.not_yes_no")
            return None
    return await _ask(update, context, MENTOR)


async def take_mentor(update: Update, context: BotContext) -> int | None:
    """Take the assigned mentor's name (a member, free text), or skip it."""
    query = update.callback_query
    if query is not None:
        if not _live(update, context):
            await _stale(update, context)
            return None
        await answer(query)
        _draft(context)["mentor_name"] = None
    else:
        try:
            _draft(context)["mentor_name"] = capitalise_name(clean_name(_text(update)))
        except ValueError as error:
            await _bad(update, context, f"report.invalid.{error.args[0]}", "report.example.name")
            return None
    return await _ask(update, context, STAGE)


async def take_stage(update: Update, context: BotContext) -> int | None:
    """Take the stage reached, from its button or typed."""
    query = update.callback_query
    try:
        if query is not None:
            if not _live(update, context):
                await _stale(update, context)
                return None
            await answer(query)
            stage = Stage(query.data.rsplit(":", 1)[1])  # type: ignore[union-attr]
        else:
            stage = parse_stage(_text(update))
    except ValueError:
        await _bad(update, context, "candidates.error.not_stage")
        return None
    _draft(context)["stage"] = stage.value
    return await _ask(update, context, STAGE_DATE)


def _day_of(update: Update, context: BotContext) -> date:
    """Return today (the button) or the typed date (not in the future); ValueError names what is wrong."""
    if update.callback_query is not None:
        return today(context)
    return parse_date(_text(update), today(context))


async def take_stage_date(update: Update, context: BotContext) -> int | None:
    """Take the day the stage was reached, then show the card."""
    if not _live(update, context):
        await _stale(update, context)
        return None
    try:
        day = _day_of(update, context)
    except ValueError as error:
        await _bad(update, context, f"candidates.error.{error.args[0]}", "report.example.date")
        return None
    if update.callback_query is not None:
        await answer(update.callback_query)
    _draft(context)["reached_on"] = day.isoformat()
    return await _ask(update, context, CONFIRM)


async def save(update: Update, context: BotContext) -> int | None:
    """Save the candidate in one transaction and show their card."""
    query = update.callback_query
    assert query is not None and query.data is not None
    draft = context.user_data.get(DRAFT) or {}  # type: ignore[union-attr]
    if query.data.rsplit(":", 1)[1] != draft.get("ref") or not _live(update, context):
        await _stale(update, context)
        return None
    tr = translator(context, update)
    value = CandidateDraft(draft["full_name"], int(draft["birth_year"]), Sex(draft["sex"]), Stage(draft["stage"]),
                           date.fromisoformat(draft["reached_on"]), draft.get("ethnicity"), draft.get("youth_union"),
                           draft.get("mentor_name"))
    try:
        async with context.services.db.writing() as session:
            person = await current_person(session, update)
            cell = await unit_by_id(session, int(draft["unit_id"]))
            if person is None or cell is None:
                raise CandidateError("not_allowed")
            tr = translator(context, update, person)
            candidate = await add_candidate(session, cell, value, person, context.services.clock.now(), today(context),
                                            ref=draft["ref"])
            candidate = await candidate_in_scope(session, candidate.id, person, write=True)
            assert candidate is not None
            text, markup = card_text(tr, candidate), card_buttons(tr, candidate, True)
    except CandidateError as error:
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await query.edit_message_text(tr(f"candidates.error.{error.args[0]}"))
        await answer(query)
        return END
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await query.edit_message_text(tr("candidates.saved", name=esc(value.full_name)))
    await reply(update, context, text, markup)
    await answer(query)
    return END


# Advancing and the dates after the decision: one date question ---------------------------------


async def start_advance(update: Update, context: BotContext) -> int:
    """Ask the day the candidate reached the next stage."""
    person = await cached_person(context, update)
    async with context.services.db.reading() as session:
        candidate = await candidate_in_scope(session, _id(update), person, write=True) if person else None
    following = next_stage(candidate.stage) if candidate is not None else None
    if candidate is None or following is None or candidate.exit_reason is not None or candidate.admission_id:
        await _refuse(update, context)
        return END
    await answer(update.callback_query)  # type: ignore[arg-type]
    context.user_data[DRAFT] = {  # type: ignore[index]
        "ref": uuid.uuid4().hex, "started": context.services.clock.now().isoformat(), "action": "stage",
        "id": candidate.id, "stage": following.value, "full_name": candidate.full_name}
    return await _ask(update, context, WHEN)


async def start_admission_date(update: Update, context: BotContext) -> int:
    """Ask the day of the ceremony, the recognition or the removal of an admitted member."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, _, admission_id, field = query.data.split(":")
    person = await cached_person(context, update)
    async with context.services.db.reading() as session:
        admission = await _admission_in_scope(session, int(admission_id), person)
    if admission is None or field not in AFTER_DECISION:
        await _refuse(update, context)
        return END
    await answer(query)
    context.user_data[DRAFT] = {  # type: ignore[index]
        "ref": uuid.uuid4().hex, "started": context.services.clock.now().isoformat(), "action": field,
        "id": admission.id, "full_name": admission.full_name}
    return await _ask(update, context, WHEN)


async def take_when(update: Update, context: BotContext) -> int | None:
    """Record the stage reached, or the date after the decision, on the day given."""
    if not _live(update, context):
        await _stale(update, context)
        return None
    draft = _draft(context)
    tr = translator(context, update)
    try:
        day = _day_of(update, context)
    except ValueError as error:
        await _bad(update, context, f"candidates.error.{error.args[0]}", "report.example.date")
        return None
    now, wants_mentor = context.services.clock.now(), False
    try:
        async with context.services.db.writing() as session:
            person = await current_person(session, update)
            tr = translator(context, update, person)
            if draft["action"] == "stage":
                candidate = await candidate_in_scope(session, int(draft["id"]), person, write=True) if person else None
                if candidate is None:
                    raise CandidateError("not_allowed")
                await advance(session, candidate, Stage(draft["stage"]), day, person, now, today(context))
                text, markup = card_text(tr, candidate), card_buttons(tr, candidate, True)
                wants_mentor = candidate.stage == Stage.CAM_TINH and not candidate.mentor_name
            else:
                admission = await _admission_in_scope(session, int(draft["id"]), person)
                if admission is None or person is None:
                    raise DateRefused("not_allowed")
                await set_after_decision(session, admission, draft["action"], day, today(context), person, now)
                text, markup = _admission_card(tr, admission)
    except (CandidateError, DateRefused) as error:
        key = error.args[0]
        if key in ("before_previous", "future_date", "before_decision", "recognition_needs_ceremony"):
            await _bad(update, context, f"candidates.error.{key}")
            return None  # the same question: another date
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await reply(update, context, tr(f"candidates.error.{key}"))
        return END
    if update.callback_query is not None:
        await answer(update.callback_query)
    if draft["action"] == "stage" and wants_mentor:  # the candidate list is "with mentor": ask who
        draft["ref"] = uuid.uuid4().hex
        return await _ask(update, context, NEW_MENTOR, text)
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await reply(update, context, text, markup)
    return END


async def start_mentor(update: Update, context: BotContext) -> int:
    """Ask the name of the member to help the candidate (the card's button: to change the mentor)."""
    person = await cached_person(context, update)
    async with context.services.db.reading() as session:
        candidate = await candidate_in_scope(session, _id(update), person, write=True) if person else None
    if candidate is None or candidate.exit_reason is not None or candidate.admission_id is not None:
        await _refuse(update, context)
        return END
    await answer(update.callback_query)  # type: ignore[arg-type]
    context.user_data[DRAFT] = {  # type: ignore[index]
        "ref": uuid.uuid4().hex, "started": context.services.clock.now().isoformat(), "action": "mentor",
        "id": candidate.id, "full_name": candidate.full_name}
    return await _ask(update, context, NEW_MENTOR)


async def take_new_mentor(update: Update, context: BotContext) -> int | None:
    """Record the mentor's name (the /report name rules), or leave the mentor as it is («Skip»)."""
    if not _live(update, context):
        await _stale(update, context)
        return None
    draft = _draft(context)
    if update.callback_query is not None:
        await answer(update.callback_query)
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await reply(update, context, translator(context, update)("candidates.mentor_unchanged"))
        return END
    try:
        name = capitalise_name(clean_name(_text(update)))
    except ValueError as error:
        await _bad(update, context, f"report.invalid.{error.args[0]}", "report.example.name")
        return None
    try:
        async with context.services.db.writing() as session:
            person = await current_person(session, update)
            tr = translator(context, update, person)
            candidate = await candidate_in_scope(session, int(draft["id"]), person, write=True) if person else None
            if candidate is None:
                raise CandidateError("not_allowed")
            await set_mentor(session, candidate, name, person, context.services.clock.now())
            text, markup = card_text(tr, candidate), card_buttons(tr, candidate, True)
    except CandidateError as error:
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await reply(update, context, translator(context, update)(f"candidates.error.{error.args[0]}"))
        return END
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await reply(update, context, text, markup)
    return END


async def cancel(update: Update, context: BotContext) -> int:
    """Drop the draft; nothing was stored."""
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    tr = translator(context, update)
    if update.callback_query is not None:
        await answer(update.callback_query)
    await reply(update, context, tr("candidates.cancelled"))
    return END


async def use_buttons(update: Update, context: BotContext) -> None:
    """Remind that this step is answered with a button."""
    await reply(update, context, translator(context, update)("report.invalid.use_buttons"))


# /admissions: the dates after the decision ---------------------------------------------------------


async def _admission_in_scope(session, admission_id: int, person: Person | None) -> Admission | None:  # type: ignore[no-untyped-def]
    admission = await session.get(Admission, admission_id)
    if admission is None or person is None or admission.withdrawn_at is not None:
        return None
    unit = await session.get(Unit, admission.unit_id)
    return admission if unit is not None and Scope(person).may_view(unit) else None


def _admission_card(tr: Translator, admission: Admission) -> tuple[str, Any]:
    def day(value: date | None) -> str:
        return tr.date(value) if value else tr("candidates.none")

    text = tr("candidates.admission_card", name=esc(admission.full_name), decided=tr.date(admission.admitted_on),
              ceremony=day(admission.ceremony_on), recognized=day(admission.recognized_on),
              removed=day(admission.removed_on))
    if admission.removed_on is not None or admission.recognized_on is not None:
        return text, None
    rows = [[(tr("candidates.button_ceremony"), f"adm:set:{admission.id}:ceremony_on")]] \
        if admission.ceremony_on is None else [[(tr("candidates.button_recognized"),
                                                 f"adm:set:{admission.id}:recognized_on")]]
    rows.append([(tr("candidates.button_removed"), f"adm:set:{admission.id}:removed_on")])
    return text, keyboard(rows)


async def list_admissions(update: Update, context: BotContext) -> None:
    """List the members awaiting their ceremony or recognition, a button each: the secretary's cells, or
    with `/admissions CODE` one cell of a committee member's or admin's subtree (within scope only)."""
    person = await cached_person(context, update)
    tr = translator(context, update, person)
    if person is None:
        return
    scope = Scope(person)
    words = _text(update).split(maxsplit=1)
    async with context.services.db.reading() as session:
        if len(words) > 1:
            unit = await unit_by_code(session, words[1].strip())
            if unit is None or unit.kind != UnitKind.CELL or not scope.may_view(unit):
                await reply(update, context, tr("candidates.admissions_unknown_cell"))
                return
            cells = [unit]
        else:
            cells = [c for c in scope.reporting_cells() if c.kind == UnitKind.CELL]
        if not cells:
            key = "admissions_ask_code" if scope.units(Role.COMMITTEE, Role.ADMIN) else "not_secretary"
            await reply(update, context, tr(f"candidates.{key}"))
            return
        for cell in cells:
            waiting = await awaiting_after_decision(session, cell, today(context) - HISTORY_SINCE)
            if not waiting:
                await reply(update, context, tr("candidates.admissions_none", cell=esc(cell.name)))
                continue
            rows = [[(f"{a.full_name} · {tr.date(a.admitted_on)}"[:60], f"adm:show:{a.id}")] for a in waiting]
            await reply(update, context, tr("candidates.admissions_header", cell=esc(cell.name)), keyboard(rows))


async def show_admission(update: Update, context: BotContext) -> None:
    """Show an admitted member's dates after the decision, with buttons to record the next."""
    person = await cached_person(context, update)
    async with context.services.db.reading() as session:
        admission = await _admission_in_scope(session, _id(update), person)
    if admission is None:
        await _refuse(update, context)
        return
    text, markup = _admission_card(translator(context, update, person), admission)
    await reply(update, context, text, markup)
    await answer(update.callback_query)  # type: ignore[arg-type]


def build_handlers() -> list[BaseHandler]:
    """Return the adding / dating conversation and the stateless buttons."""
    text = filters.TEXT & ~filters.COMMAND
    conversation = DraftConversation(
        draft=DRAFT, lifetime=DRAFT_LIFETIME,
        entry_points=[
            CommandHandler("candidate", start_add),
            CallbackQueryHandler(start_add, pattern=rf"^cand:add:{ID}$"),
            CallbackQueryHandler(start_advance, pattern=rf"^cand:adv:{ID}$"),
            CallbackQueryHandler(start_mentor, pattern=rf"^cand:mentor:{ID}$"),
            CallbackQueryHandler(start_admission_date, pattern=rf"^adm:set:{ID}:(ceremony_on|recognized_on|removed_on)$"),
        ],
        states={
            NAME: [MessageHandler(text, take_name)],
            BIRTH_YEAR: [MessageHandler(text, take_birth_year)],
            SEX: [CallbackQueryHandler(take_sex, pattern=r"^cand:sex:(male|female)$"), MessageHandler(text, take_sex)],
            ETHNICITY: [CallbackQueryHandler(take_ethnicity, pattern=rf"^cand:eth:[0-{len(ETHNICITY_BUTTONS) - 1}]$"),
                        CallbackQueryHandler(take_ethnicity, pattern=r"^cand:skip$"),
                        MessageHandler(text, take_ethnicity)],
            YOUTH: [CallbackQueryHandler(take_youth, pattern=r"^cand:youth:(yes|no)$"), MessageHandler(text, take_youth)],
            MENTOR: [CallbackQueryHandler(take_mentor, pattern=r"^cand:skip$"), MessageHandler(text, take_mentor)],
            STAGE: [CallbackQueryHandler(take_stage, pattern=r"^cand:stage:[a-z_]{3,8}$"), MessageHandler(text, take_stage)],
            STAGE_DATE: [CallbackQueryHandler(take_stage_date, pattern=r"^cand:today$"),
                         MessageHandler(text, take_stage_date)],
            CONFIRM: [CallbackQueryHandler(save, pattern=r"^cand:save:[0-9a-f]{32}$"), MessageHandler(text, use_buttons)],
            WHEN: [CallbackQueryHandler(take_when, pattern=r"^cand:today$"), MessageHandler(text, take_when)],
            NEW_MENTOR: [CallbackQueryHandler(take_new_mentor, pattern=r"^cand:skip$"), MessageHandler(text, take_new_mentor)],
        },
        fallbacks=[
            CommandHandler("cancel", cancel),
            CallbackQueryHandler(cancel, pattern=r"^cand:cancel$"),
            CallbackQueryHandler(_stale, pattern=r"^cand:(sex|eth|youth|skip|stage|today|save):"),
            CallbackQueryHandler(_stale, pattern=r"^cand:(skip|today)$"),
        ],
        name="candidates",
    )
    return [
        conversation,
        CommandHandler("candidates", list_candidates),
        CommandHandler("admissions", list_admissions),
        CallbackQueryHandler(show_card, pattern=rf"^cand:show:{ID}$"),
        CallbackQueryHandler(offer_exit, pattern=rf"^cand:exit:{ID}$"),
        CallbackQueryHandler(take_exit, pattern=rf"^cand:exitr:{ID}:({'|'.join(r.value for r in ExitReason)})$"),
        CallbackQueryHandler(take_return, pattern=rf"^cand:ret:{ID}$"),
        CallbackQueryHandler(show_admission, pattern=rf"^adm:show:{ID}$"),
        # A conversation button pressed when no conversation waits for it (finished, or forgotten).
        CallbackQueryHandler(_stale, pattern=r"^cand:(sex|eth|youth|skip|stage|today|save|cancel)"),
    ]


FEATURE = Feature(
    handlers=build_handlers,
    commands={"candidates": "candidates.commands.candidates", "candidate": "candidates.commands.candidate",
              "admissions": "candidates.commands.admissions"},
    help=((Role.SECRETARY, "candidates.help_secretary"), (Role.COMMITTEE, "candidates.help_committee"),
          (Role.ADMIN, "candidates.help_committee")),
    who={"candidate": Role.SECRETARY, "admissions": Role.SECRETARY},
)
