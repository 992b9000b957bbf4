"""What the /report conversation shows and reads: its states, questions, the confirmation card, the one-line form.

handlers/report.py holds the conversation itself (its state table and callbacks); this module
builds the texts and buttons of each step and parses the one-line form into a draft.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import ConversationHandler

from core.i18n import Translator
from core.text import esc
from models.admissions import AdmissionDraft, likely_duplicates
from models.db import Database
from models.entities import Sex, Unit
from models.units import unit_by_id
from models.values import (
    COMMON_ETHNICITIES,
    check_age_at_decision,
    clean_name,
    parse_birth_year,
    parse_date,
    parse_decision_no,
    parse_ethnicity,
    parse_sex,
)

CELL, NAME, BIRTH_YEAR, SEX, ETHNICITY, ETHNICITY_OTHER, DATE, DECISION, YOUTH, CONFIRM, EDIT = range(11)
END = ConversationHandler.END
DRAFT = "report"
MAX_TEXT = 200  # anything longer is not an answer to any step
DRAFT_LIFETIME = timedelta(days=2)  # an unfinished report (names, birth years) is then forgotten
ETHNICITY_BUTTONS = COMMON_ETHNICITIES[:6]
# Order of the questions, and which state asks for which field.
FIELDS = ("name", "birth_year", "sex", "ethnicity", "date", "decision", "youth")
STATE_OF = {"name": NAME, "birth_year": BIRTH_YEAR, "sex": SEX, "ethnicity": ETHNICITY, "date": DATE,
            "decision": DECISION, "youth": YOUTH}
FIELD_OF = {state: field for field, state in STATE_OF.items()}
FIELD_OF[ETHNICITY_OTHER] = "ethnicity"
EXAMPLE = {"name": "name", "birth_year": "birth_year", "date": "date", "ethnicity": "ethnicity",
           "decision": "decision"}


def keyboard(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows])


def question(tr: Translator, state: int, draft: dict[str, Any]) -> tuple[str, InlineKeyboardMarkup | None]:
    """Return the prompt and buttons that ask for the answer of `state`."""
    if state == NAME:
        return tr("report.ask_name", cell=esc(draft.get("cell_name", ""))), None
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
    if state == YOUTH:
        return tr("report.ask_youth"), keyboard(
            [[(tr("common.yes"), "report:youth:yes"), (tr("common.no"), "report:youth:no")]]
        )
    if state == EDIT:
        labels = [(tr(f"report.field_{field}"), f"report:field:{field}") for field in FIELDS]
        rows = [labels[i : i + 2] for i in range(0, len(labels), 2)]
        return tr("report.ask_edit"), keyboard(rows + [[(tr("report.button_back"), "report:back")]])
    raise ValueError(state)


async def card(db: Database, tr: Translator, draft: dict[str, Any]) -> tuple[str, InlineKeyboardMarkup]:
    """Return the confirmation card with a duplicate warning when one is likely."""
    def value(v: object) -> str:
        return tr("report.none") if v in (None, "") else esc(v)

    sex = draft.get("sex")
    youth = draft.get("youth_union")
    rows = [
        ("cell", value(draft.get("cell_name"))),
        ("name", value(draft.get("full_name"))),
        ("birth_year", value(draft.get("birth_year"))),
        ("sex", tr(f"report.sex_{sex}") if sex else tr("report.none")),
        ("ethnicity", value(draft.get("ethnicity"))),
        ("date", tr.date(date.fromisoformat(draft["admitted_on"])) if draft.get("admitted_on") else tr("report.none")),
        ("decision", value(draft.get("decision_no"))),
        ("youth", tr("report.none") if youth is None else tr("common.yes" if youth else "common.no")),
    ]
    lines = "\n".join(tr("report.card_line", label=tr(f"report.field_{k}"), value=v) for k, v in rows)
    text = tr("report.card", lines=lines)
    async with db.reading() as session:
        for twin in (await likely_duplicates(session, draft["full_name"], int(draft["birth_year"])))[:1]:
            unit = await unit_by_id(session, twin.unit_id)
            text += "\n\n" + tr(
                "report.duplicate_warning", name=esc(twin.full_name), birth_year=twin.birth_year,
                date=tr.date(twin.admitted_on), unit=esc(unit.name if unit else ""),
            )
    markup = keyboard(
        [[(tr("report.button_save"), f"report:save:{draft['ref']}")],
         [(tr("report.button_edit"), "report:edit"), (tr("report.button_cancel"), f"report:cancel:{draft['ref']}")]]
    )
    return text, markup


def cell_choice(tr: Translator, cells: list[Unit]) -> tuple[str, InlineKeyboardMarkup]:
    return tr("report.ask_cell"), keyboard([[(cell.name, f"report:cell:{cell.id}")] for cell in cells])


def parse_one_line(tr: Translator, line: str, on: date, draft: dict[str, Any]) -> str | None:
    """Fill `draft` from `name, birth year, sex, date[, ethnicity[, decision]]`; return a problem text or None."""
    parts = [p.strip() for p in line.split(",")]
    if not 4 <= len(parts) <= 6:
        return tr("report.invalid.empty", example=esc(tr("report.example.one_line")))
    steps = [
        ("name", lambda v: draft.__setitem__("full_name", clean_name(v))),
        ("birth_year", lambda v: draft.__setitem__("birth_year", parse_birth_year(v, on))),
        ("sex", lambda v: draft.__setitem__("sex", parse_sex(v).value)),
        ("date", lambda v: draft.__setitem__("admitted_on", parse_date(v, on).isoformat())),
        ("ethnicity", lambda v: draft.__setitem__("ethnicity", parse_ethnicity(v))),
        ("decision", lambda v: draft.__setitem__("decision_no", parse_decision_no(v))),
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
