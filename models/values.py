"""Validation and normalisation of the values an admission is made of.

Shared by the chat conversation and the CSV importers so that both accept the same things.
Each parser raises ValueError with a short machine-readable reason (a catalog key suffix).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date

from models.entities import Sex

MIN_AGE = 18
MAX_AGE = 90
MAX_NAME_LENGTH = 120
MAX_DECISION_LENGTH = 60
MAJORITY_ETHNICITY = "Kinh"
COMMON_ETHNICITIES = ("Kinh", "Tày", "Nùng", "Dao", "Mông", "Thái", "Mường", "Khmer")
# A selection of the 54 recognised ethnic groups, enough to restore diacritics typed without them.
KNOWN_ETHNICITIES = COMMON_ETHNICITIES + (
    "Hoa", "Sán Chay", "Sán Dìu", "Giáy", "Lô Lô", "Hà Nhì", "Phù Lá", "La Chí", "Pà Thẻn",
    "Lự", "Ê Đê", "Ba Na", "Gia Rai", "Xơ Đăng", "Cơ Ho", "Chăm", "Hrê", "Ra Glai", "Mnông",
    "Xtiêng", "Bru-Vân Kiều", "Thổ", "Khơ Mú", "Cơ Tu", "Tà Ôi", "Mạ", "Giẻ Triêng", "Co",
    "Chơ Ro", "Xinh Mun", "Kháng", "Lào", "La Ha", "Cống", "Bố Y", "Si La", "Pu Péo", "Brâu",
    "Ơ Đu", "Rơ Măm", "Chứt", "Lô Lô", "Mảng", "Cờ Lao", "La Hủ", "Ngái",
)

_SEX_WORDS = {
    "nam": Sex.MALE, "male": Sex.MALE, "m": Sex.MALE, "trai": Sex.MALE,
    "nu": Sex.FEMALE, "nữ": Sex.FEMALE, "female": Sex.FEMALE, "f": Sex.FEMALE, "gai": Sex.FEMALE,
}
_NAME_RE = re.compile(r"^[^\W\d_]+(?:[ '\-.][^\W\d_]+)*$")
# Control, format (zero-width spaces and joiners, bidi marks, soft hyphen), private-use, surrogate
# and unassigned characters: never part of a name, a village or a code.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})
# Letters and symbols that show as blank space: a name made only of them looks empty.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Line breaks and tabs inside a cell are whitespace (a spreadsheet's Alt+Enter): tidied to one space.
_WHITESPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c")
_DECISION_RE = re.compile(r"^[\w][\w\-/. ]*$")


class _FoldTable(dict[int, str]):
    """str.translate table of fold(): đ → d, combining marks (category Mn) removed, learnt per character."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        value = "" if unicodedata.category(ch) == "Mn" else ch
        self[code] = value
        return value


_FOLD_TABLE = _FoldTable({ord("đ"): "d", ord("Đ"): "D"})


def fold(text: str) -> str:
    """Lower-case `text` and strip Vietnamese diacritics ("Lò Thị Hoa" -> "lo thi hoa")."""
    if text.isascii():
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFD", text).translate(_FOLD_TABLE).lower().split())


def forbidden_character(text: str) -> str | None:
    """Return the first control, format, private-use, surrogate or unassigned character, or None.

    Tabs and line breaks are not reported: they are whitespace, tidied to a space."""
    if text.isascii() and text.isprintable():
        return None  # the common case, without looking at every character
    for ch in text:
        if ch not in _WHITESPACE_CONTROLS and unicodedata.category(ch) in FORBIDDEN_CATEGORIES:
            return ch
    return None


def describe_character(ch: str) -> str:
    """Return "U+200B ZERO WIDTH SPACE" (the code point and, when known, its name)."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}".strip()


def is_visible(text: str) -> bool:
    """Tell whether `text` shows anything: not only whitespace, format characters or blank-looking letters."""
    return any(not ch.isspace() and ch not in BLANK_LOOKING and unicodedata.category(ch) not in FORBIDDEN_CATEGORIES
               for ch in text)


def clean_name(text: str) -> str:
    """Return the full name as typed (spaces tidied, NFC), or raise ValueError."""
    name = " ".join(unicodedata.normalize("NFC", text or "").split())
    letters = name.replace(" ", "")
    if letters.isalpha() and BLANK_LOOKING.isdisjoint(letters):
        # The common case, decided without the checks below (letters are visible and match
        # _NAME_RE when only single spaces separate them).
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError("too_long")
        if len(letters) < 2:
            raise ValueError("letters_only")
        return name
    if not name or not is_visible(name):
        raise ValueError("empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError("too_long")
    if not name.replace(" ", "").isalpha() and any(ch.isdigit() for ch in name):
        raise ValueError("digits")
    if not _NAME_RE.match(name) or len(name.replace(" ", "")) < 2:
        raise ValueError("letters_only")
    return name


def _capitalised_word(word: str) -> str:
    """Return one word of a name with a capital first letter (also after - and ', as in H'Hen, Bru-Vân).

    A word typed all in small or all in capital letters is written the usual way ("lò", "LÒ" -> "Lò");
    one already in mixed case ("McDonald") is kept, only its first letter made capital."""
    if word.islower() or word.isupper():
        word = word.lower()
        return re.sub(r"(^|[\-'])(\w)", lambda m: m.group(1) + m.group(2).upper(), word)
    return word[:1].upper() + word[1:]


def capitalise_name(name: str) -> str:
    """Return a cleaned full name with each word capitalised the Vietnamese way ("lò thị hoa" -> "Lò Thị Hoa")."""
    return " ".join(_capitalised_word(word) for word in name.split(" "))


def is_one_word(name: str) -> bool:
    """Tell whether a full name is a single word ("Hoa"): usually only a given name, worth asking about."""
    return len(name.split()) == 1


def decision_doubt(decision_no: str) -> str | None:
    """Return why a decision number looks wrong ("date": it reads as a date; "no_digit"), or None.

    Decision numbers look like "125-QĐ/ĐU": a number, then the kind and the issuing body."""
    try:
        parse_date(decision_no)
    except ValueError as error:
        if error.args[0] == "impossible_date":  # shaped like a date all the same ("31/02/2026")
            return "date"
    else:
        return "date"
    if not any(ch.isdigit() for ch in decision_no):
        return "no_digit"
    return None


def name_key(full_name: str) -> str:
    """Return the key two spellings of one name share (for the duplicate warning)."""
    return fold(full_name)


def parse_birth_year(text: str, today: date) -> int:
    """Parse a four-digit birth year that makes the person 18–90 years old this year."""
    value = (text or "").strip()
    if not re.fullmatch(r"\d{4}", value):
        raise ValueError("not_year")
    year = int(value)
    if year > today.year - MIN_AGE:
        raise ValueError("too_young")
    if year < today.year - MAX_AGE:
        raise ValueError("too_old")
    return year


def check_age_at_decision(birth_year: int, admitted_on: date) -> None:
    """Raise ValueError unless the person was at least 18 in the year of the admission decision."""
    if admitted_on.year - birth_year < MIN_AGE:
        raise ValueError("too_young_at_decision")


def parse_sex(text: str) -> Sex:
    """Parse nam / nữ (also nu, male, female)."""
    key = " ".join((text or "").strip().lower().split())
    if key in _SEX_WORDS:
        return _SEX_WORDS[key]
    folded = fold(key)
    if folded in _SEX_WORDS:
        return _SEX_WORDS[folded]
    raise ValueError("not_sex")


def parse_date(text: str, today: date | None = None) -> date:
    """Parse dd/mm/yyyy (also d/m/yyyy, d/m/yy as 20yy, dd-mm-yyyy, dd.mm.yyyy) or yyyy-mm-dd; not in the future."""
    value = (text or "").strip()
    parsed: date | None = None
    match = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})", value)
    try:
        if match:
            year = int(match.group(3)) + (2000 if len(match.group(3)) == 2 else 0)  # 1/12/26 is 2026
            parsed = date(year, int(match.group(2)), int(match.group(1)))
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError("impossible_date") from None
    if parsed is None:
        raise ValueError("not_date")
    if today is not None and parsed > today:
        raise ValueError("future_date")
    if parsed.year < 1930:
        raise ValueError("impossible_date")
    return parsed


@functools.lru_cache(maxsize=4096)
def parse_ethnicity(text: str) -> str:
    """Return an ethnicity name, restoring diacritics when the folded spelling is a known group."""
    value = " ".join((text or "").split())
    if not value or len(value) > 60 or any(ch.isdigit() for ch in value):
        raise ValueError("not_ethnicity")
    if not _NAME_RE.match(value):
        raise ValueError("not_ethnicity")
    known = _KNOWN_BY_FOLD.get(fold(value))
    return known if known is not None else value[:1].upper() + value[1:]


_KNOWN_BY_FOLD = {fold(known): known for known in reversed(KNOWN_ETHNICITIES)}  # the first spelling wins


@functools.lru_cache(maxsize=4096)
def is_minority(ethnicity: str | None) -> bool:
    """Tell whether an ethnicity counts as an ethnic minority (anything but Kinh)."""
    return ethnicity is not None and fold(ethnicity) != _MAJORITY_FOLDED


_MAJORITY_FOLDED = fold(MAJORITY_ETHNICITY)


def parse_decision_no(text: str) -> str:
    """Return a decision number such as "125-QĐ/ĐU"."""
    value = " ".join((text or "").split())
    if not value or len(value) > MAX_DECISION_LENGTH or not _DECISION_RE.match(value):
        raise ValueError("not_decision")
    return value


def parse_yes_no(text: str) -> bool:
    """Parse có/không (also co, khong, yes, no)."""
    folded = fold(text or "")
    if folded in ("co", "yes", "y", "c", "phai", "1"):
        return True
    if folded in ("khong", "no", "n", "k", "ko", "0"):
        return False
    raise ValueError("not_yes_no")
