"""What the /report conversation shows and reads: its states, questions, the confirmation card, the one-line form.

handlers/report.py holds the conversation itself (its state table and callbacks); this module
builds the texts and buttons of each step and parses the one-line form into a draft.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import ConversationHandler

from core.i18n import Translator
from core.text import esc
from models.admissions import AdmissionDraft, likely_duplicates
from models.db import Database
from models.entities import Sex
from models.people import Scope
from models.units import unit_by_id
from models.values import (
    COMMON_ETHNICITIES,
    capitalise_name,
    check_age_at_decision,
    clean_name,
    decision_doubt,
    is_one_word,
    parse_birth_year,
    parse_date,
    parse_decision_no,
    parse_ethnicity,
    parse_sex,
)

# The numbers are persisted (a restart resumes the step): new states go at the end.
(CELL, NAME, BIRTH_YEAR, SEX, ETHNICITY, ETHNICITY_OTHER, DATE, DECISION, YOUTH, CONFIRM, EDIT,
 NAME_CHECK, DECISION_CHECK) = range(13)
END = ConversationHandler.END
DRAFT = "report"
MAX_TEXT = 200  # anything longer is not an answer to any step
DRAFT_LIFETIME = timedelta(days=2)  # an unfinished report (names, birth years) is then forgotten
ETHNICITY_BUTTONS = COMMON_ETHNICITIES[:6]
# Order of the questions, which state asks for which field, and where the draft keeps the answer.
FIELDS = ("name", "birth_year", "sex", "ethnicity", "date", "decision", "youth")
STATE_OF = {"name": NAME, "birth_year": BIRTH_YEAR, "sex": SEX, "ethnicity": ETHNICITY, "date": DATE,
            "decision": DECISION, "youth": YOUTH}
KEY_OF = {"cell": "cell_name", "name": "full_name", "birth_year": "birth_year", "sex": "sex", "ethnicity": "ethnicity",
          "date": "admitted_on", "decision": "decision_no", "youth": "youth_union"}
EXAMPLE = {"name": "name", "birth_year": "birth_year", "date": "date", "ethnicity": "ethnicity",
           "decision": "decision"}
# The one-line form: `name, birth year, sex, date[, ethnicity[, decision]]`, by commas or semicolons.
ONE_LINE_FIELDS = ("name", "birth_year", "sex", "date", "ethnicity", "decision")
ONE_LINE_REQUIRED = 4
YOUTH_BUTTON = r"^report:youth:(yes|no)$"


def keyboard(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows])


def _youth_buttons(tr: Translator) -> list[tuple[str, str]]:
    return [(tr("common.yes"), "report:youth:yes"), (tr("common.no"), "report:youth:no")]


def question(tr: Translator, state: int, draft: dict[str, Any]) -> tuple[str, InlineKeyboardMarkup | None]:
    """Return the prompt and buttons that ask for the answer of `state` (the card excepted)."""
    if state == CELL:
        return tr("report.ask_cell"), keyboard([[(name, f"report:cell:{unit_id}")] for unit_id, name in draft["cells"]])
    if state == NAME:
        return tr("report.ask_name", cell=esc(draft.get("cell_name", ""))), None
    if state == NAME_CHECK:
        name = esc(draft["pending_name"])
        return tr("report.ask_name_one_word", name=name), keyboard(
            [[(tr("report.button_keep", value=name), "report:name:keep"),
              (tr("report.button_retype"), "report:name:retype")]])
    if state == BIRTH_YEAR:
        return tr("report.ask_birth_year", name=esc(draft.get("full_name", ""))), None
    if state == SEX:
        return tr("report.ask_sex"), keyboard(
            [[(tr("report.button_male"), "report:sex:male"), (tr("report.button_female"), "report:sex:female")]]
        )
    if state == ETHNICITY:
        names = [(name, f"report:eth:{i}") for i, name in enumerate(ETHNICITY_BUTTONS)]
        rows = [names[i : i + 3] for i in range(0, len(names), 3)]
        return tr("report.ask_ethnicity"), keyboard(rows + [[(tr("report.button_other"), "report:eth:other")]])
    if state == ETHNICITY_OTHER:
        return tr("report.ask_ethnicity_other"), None
    if state == DATE:
        return tr("report.ask_date"), keyboard([[(tr("report.button_today"), "report:date:today")]])
    if state == DECISION:
        return tr("report.ask_decision"), keyboard([[(tr("report.button_skip"), "report:skip")]])
    if state == DECISION_CHECK:
        value = draft["pending_decision"]
        return tr(f"report.ask_decision_{decision_doubt(value)}", value=esc(value)), keyboard(
            [[(tr("report.button_keep", value=esc(value)), "report:decision:keep"),
              (tr("report.button_retype"), "report:decision:retype")]])
    if state == YOUTH:
        return tr("report.ask_youth"), keyboard([_youth_buttons(tr)])
    if state == EDIT:
        labels = [(tr(f"report.field_{field}"), f"report:field:{field}") for field in FIELDS]
        rows = [labels[i : i + 2] for i in range(0, len(labels), 2)]
        return tr("report.ask_edit"), keyboard(rows + [[(tr("report.button_back"), "report:back")]])
    raise ValueError(state)


def shown(tr: Translator, field: str, draft: dict[str, Any]) -> str:
    """Return the answer to `field` as the card shows it (escaped), or "(chưa có)"."""
    value = draft.get(KEY_OF[field])
    if value is None or value == "":
        return tr("report.none")
    if field == "sex":
        return tr(f"report.sex_{value}")
    if field == "date":
        return tr.date(date.fromisoformat(value))
    if field == "youth":
        return tr("common.yes" if value else "common.no")
    return esc(value)


def answered(tr: Translator, field: str, draft: dict[str, Any]) -> str:
    """Return what an answered question turns into, e.g. "Giới tính: Nữ ✓"."""
    return tr("report.answered", label=tr(f"report.field_{field}"), value=shown(tr, field, draft))


async def card(db: Database, tr: Translator, draft: dict[str, Any], scope: Scope | None
               ) -> tuple[str, InlineKeyboardMarkup]:
    """Return the confirmation card: a duplicate warning when one is likely, the Youth Union question
    while it is unanswered (✅ only after it)."""
    lines = "\n".join(tr("report.card_line", label=tr(f"report.field_{field}"), value=shown(tr, field, draft))
                      for field in ("cell", *FIELDS))
    youth_unknown = draft.get("youth_union") is None
    text = tr("report.card", lines=lines, footer=tr("report.card_footer_youth" if youth_unknown else "report.card_footer"))
    warning = await duplicate_warning(db, tr, draft, scope)
    if warning:
        text += "\n\n" + warning
    first = _youth_buttons(tr) if youth_unknown else [(tr("report.button_save"), f"report:save:{draft['ref']}")]
    markup = keyboard(
        [first, [(tr("report.button_edit"), "report:edit"), (tr("report.button_cancel"), f"report:cancel:{draft['ref']}")]]
    )
    return text, markup


async def duplicate_warning(db: Database, tr: Translator, draft: dict[str, Any], scope: Scope | None) -> str | None:
    """Warn of a counted admission with the same name and birth year: where and when only when it lies
    in the reporter's own units; elsewhere, only that it exists and whom to ask (no unit, no date)."""
    async with db.reading() as session:
        twins = await likely_duplicates(session, draft["full_name"], int(draft["birth_year"]))
        for twin in twins:
            unit = await unit_by_id(session, twin.unit_id)
            if unit is not None and scope is not None and scope.may_view(unit):
                return tr("report.duplicate_warning", name=esc(twin.full_name), birth_year=twin.birth_year,
                          date=tr.date(twin.admitted_on), unit=esc(unit.name))
    return tr("report.duplicate_elsewhere") if twins else None


def parse_one_line(tr: Translator, line: str, on: date, draft: dict[str, Any]) -> str | None:
    """Fill `draft` from `name, birth year, sex, date[, ethnicity[, decision]]` (commas or semicolons);
    return a problem text (naming the field) or None. A one-word name or a doubtful decision number
    is left pending, to be asked about."""
    parts = [p.strip() for p in re.split(r"[,;]", line)]
    while len(parts) > ONE_LINE_REQUIRED and not parts[-1]:
        parts.pop()  # a trailing separator, or an optional field left empty
    example = esc(tr("report.example.one_line"))
    if len(parts) > len(ONE_LINE_FIELDS):
        return tr("report.one_line_extra_fields", example=example)
    for field, value in zip(ONE_LINE_FIELDS[:ONE_LINE_REQUIRED], parts + [""] * ONE_LINE_REQUIRED):
        if not value:
            return tr("report.one_line_missing", field=tr(f"report.field_{field}"), example=example)
    draft["ethnicity"] = draft["decision_no"] = None
    steps = [
        ("name", lambda v: set_name(draft, v)),
        ("birth_year", lambda v: draft.__setitem__("birth_year", parse_birth_year(v, on))),
        ("sex", lambda v: draft.__setitem__("sex", parse_sex(v).value)),
        ("date", lambda v: draft.__setitem__("admitted_on", parse_date(v, on).isoformat())),
        ("ethnicity", lambda v: draft.__setitem__("ethnicity", parse_ethnicity(v) if v else None)),
        ("decision", lambda v: set_decision(draft, v) if v else None),
    ]
    for (field, apply), value in zip(steps, parts):
        try:
            apply(value)
            if field == "date":
                check_age_at_decision(draft["birth_year"], date.fromisoformat(draft["admitted_on"]))
        except ValueError as error:
            example = tr(f"report.example.{EXAMPLE[field]}") if field in EXAMPLE else ""
            problem = tr(f"report.invalid.{error.args[0]}", example=esc(example))
            return tr("report.one_line_problem", field=tr(f"report.field_{field}"), problem=problem)
    return None


def set_name(draft: dict[str, Any], text: str) -> None:
    """Take a typed full name, capitalised; a one-word name is kept pending until confirmed."""
    name = capitalise_name(clean_name(text[: MAX_TEXT + 1]))
    if is_one_word(name):
        draft["pending_name"] = name
    else:
        draft["full_name"] = name
        draft.pop("pending_name", None)


def set_decision(draft: dict[str, Any], text: str) -> None:
    """Take a typed decision number; one that reads as a date or has no digit is kept pending until confirmed."""
    value = parse_decision_no(text[:MAX_TEXT])
    if decision_doubt(value):
        draft["pending_decision"] = value
    else:
        draft["decision_no"] = value
        draft.pop("pending_decision", None)


def checked_age(draft: dict[str, Any], birth_year: int | None = None, admitted_on: date | None = None) -> None:
    """Raise ValueError when the answers so far make the person under 18 at the decision."""
    year = birth_year if birth_year is not None else draft.get("birth_year")
    on = admitted_on or (date.fromisoformat(draft["admitted_on"]) if draft.get("admitted_on") else None)
    if year is not None and on is not None:
        check_age_at_decision(int(year), on)


def draft_value(draft: dict[str, Any]) -> AdmissionDraft:
    return AdmissionDraft(
        unit_id=int(draft["unit_id"]),
        full_name=draft["full_name"],
        birth_year=int(draft["birth_year"]),
        sex=Sex(draft["sex"]),
        admitted_on=date.fromisoformat(draft["admitted_on"]),
        ethnicity=draft.get("ethnicity"),
        decision_no=draft.get("decision_no"),
        youth_union=draft.get("youth_union"),
    )
