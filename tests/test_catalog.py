"""Message catalogs: both languages complete, placeholders consistent, every key used exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

from core.i18n import LOCALES_DIR, Texts, format_number, format_percent
from models.values import KNOWN_ETHNICITIES

ROOT = Path(__file__).resolve().parent.parent


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


PLURAL_FORMS = ("_zero", "_one", "_two", "_few", "_many")  # CLDR categories besides _other


def _plural_extras(catalog: dict[str, str]) -> dict[str, str]:
    """Return the keys of plural categories other than `_other` (a language may have none), by their `_other` key."""
    return {key: key.rsplit("_", 1)[0] + "_other" for key in catalog if key.endswith(PLURAL_FORMS)}


def test_every_key_exists_in_vietnamese_and_english() -> None:
    texts = Texts.load()
    vi, en = texts.catalogs["vi"], texts.catalogs["en"]
    common_vi = set(vi) - set(_plural_extras(vi))
    common_en = set(en) - set(_plural_extras(en))
    assert common_vi == common_en, f"only vi: {sorted(common_vi - common_en)}; only en: {sorted(common_en - common_vi)}"
    assert (LOCALES_DIR / "vi").is_dir() and len(vi) > 50


def test_plural_forms_stand_beside_an_other_form_with_the_same_placeholders() -> None:
    texts = Texts.load()
    for lang, catalog in texts.catalogs.items():
        for key, other in _plural_extras(catalog).items():
            assert other in catalog, f"{lang}: {key} without {other}"
            assert _fields(catalog[key]) == _fields(catalog[other]), f"{lang}: {key}"
    assert not _plural_extras(texts.catalogs["vi"])  # Vietnamese words do not change with the count


def test_english_counts_agree_and_vietnamese_has_one_form() -> None:
    texts = Texts.load()
    en, vi = texts.for_language("en"), texts.for_language("vi")
    one = en.plural("progress.needed_per_month", 1, remaining="3", months="1", per_month="3")
    many = en.plural("progress.needed_per_month", 2, remaining="3", months="2", per_month="2")
    assert "1 month left" in one and "1 months" not in one and "2 months left" in many
    assert en.plural("weekly.digest_more", 1, count="1") == "… and 1 more cell"
    assert en.plural("weekly.digest_more", 0, count="0") == "… and 0 more cells"
    assert "for 1 day," in en.plural("weekly.away_set", 1, days="1", until="1/7/2026")
    assert vi.plural("progress.needed_per_month", 1, remaining="3", months="1", per_month="3") == (
        vi.plural("progress.needed_per_month", 5, remaining="3", months="1", per_month="3"))
    assert "1 tháng còn lại" in vi.plural("progress.needed_per_month", 1, remaining="3", months="1", per_month="3")


def test_english_sentences_do_not_start_lowercase() -> None:
    """A text that begins with a placeholder filled by a word (not a number or a name) must not make
    an English sentence start lowercase: the forecast once read "year-end forecast …"."""
    texts = Texts.load()
    en = texts.for_language("en")
    for end in ("progress.end_year", "progress.end_term"):
        line = en("progress.forecast", end=en(end), forecast="40", percent="44.4%")
        assert line[0].isupper(), line
    # Texts sent in chats are sentences; these few are pieces put inside one (and the command line's
    # help and problem texts follow argparse's lowercase style after "line 3:").
    pieces = {"chart.no_target", "progress.end_year", "progress.end_term", "weekly.source_stored",
              "weekly.source_file", "sandbox.clock_seed", "sandbox.clock_real"}
    for key, template in texts.catalogs["en"].items():
        if key.startswith("cli.") or key in pieces:
            continue
        first = template.lstrip("•🔴🔕📊🔔✅⚠️\ufe0f ")
        assert not first[:1].islower(), key


def test_placeholders_match_between_languages() -> None:
    texts = Texts.load()
    for key, template in texts.catalogs["vi"].items():
        assert _fields(template) == _fields(texts.catalogs["en"][key]), key


def test_keys_used_in_code_exist() -> None:
    """Every literal catalog key in handlers/ and bot/ is defined (dynamic keys are checked by prefix)."""
    texts = Texts.load()
    known = set(texts.catalogs["vi"])
    features = {key.split(".")[0] for key in known}
    pattern = re.compile(r"""["']((?:%s)\.[a-z_][a-z0-9_.]*)["']""" % "|".join(sorted(features)))
    missing = []
    for path in list((ROOT / "handlers").glob("*.py")) + list((ROOT / "bot").glob("*.py")):
        if path.name == "config.py":  # its dotted names are TOML keys ("sandbox.port"), not catalog keys
            continue
        for key in pattern.findall(path.read_text(encoding="utf-8")):
            if key.endswith((".", "_")) or key in known:
                continue
            if not any(k.startswith(key + ".") or k.startswith(key + "_") for k in known):
                missing.append(f"{path.name}: {key}")
    assert missing == []


def test_handlers_hold_no_user_facing_vietnamese() -> None:
    vietnamese = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.IGNORECASE)
    offenders = []
    for path in (ROOT / "handlers").glob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "# catalog:" in line:  # marked: words the user types, not text shown
                continue
            code = line.split("#", 1)[0]
            if vietnamese.search(code) and '"""' not in line:
                offenders.append(f"{path.name}:{number}")
    assert offenders == []


def test_vietnamese_number_formats() -> None:
    assert format_number(2817) == "2.817"
    assert format_number(1000000) == "1.000.000"
    assert format_percent(53.8) == "53,8\u00a0%"
    assert format_percent(53.8, "en") == "53.8%"


# English flows hold no Vietnamese ---------------------------------------------------------------

# Letters only Vietnamese uses here: ă â đ ê ô ơ ư and any vowel with a Vietnamese tone mark.
VIETNAMESE_MARKS = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323", "\u0302", "\u0306", "\u031b"}


def vietnamese_letters(text: str) -> list[str]:
    """Return the Vietnamese-only letters of `text` (ă â đ ê ô ơ ư, toned vowels), in order."""
    import unicodedata

    found = []
    for char in text:
        decomposed = unicodedata.normalize("NFD", char)
        if char.lower() == "đ" or (decomposed[0].lower() in "aeiouy" and VIETNAMESE_MARKS & set(decomposed[1:])):
            found.append(char)
    return found


def test_vietnamese_letters_are_found_and_plain_english_passes() -> None:
    assert vietnamese_letters("Đã gửi") == ["Đ", "ã", "ử"]
    assert vietnamese_letters("ơ ư ă â ê ô ỳ") == ["ơ", "ư", "ă", "â", "ê", "ô", "ỳ"]
    assert vietnamese_letters("Sent 3 messages — 53.8% · 29/06–05/07/2026 ✅ «x»") == []


# Data in the catalogs' examples and on buttons, the same in any language: a person's name, the
# names of ethnic groups, and the shape of a decision number (its letters are the document's own
# abbreviations: quyết định, đảng ủy), which is typed as it is printed.
EXAMPLE_DATA = ("Lò Thị Hoa", "125-QĐ/ĐU", "12-QĐ/ĐU", "1-QĐ", "QĐ", *KNOWN_ETHNICITIES)


async def data_names(bot) -> list[str]:  # type: ignore[no-untyped-def]
    """Return the data that may hold Vietnamese in any language: unit, village and person names."""
    from sqlalchemy import select

    from models.entities import Person, Unit, Village

    async with bot.sessions() as session:
        names = list(await session.scalars(select(Unit.name)))
        names += list(await session.scalars(select(Village.name)))
        names += list(await session.scalars(select(Person.display_name)))
    return sorted(set(names), key=len, reverse=True)  # longest first: "Chi bộ thôn Nà Lạn" before "Nà Lạn"


def shown_texts(bot, chat_ids: set[int]) -> list[str]:  # type: ignore[no-untyped-def]
    """Return everything the bot showed these chats: texts, captions, button labels, menus, alerts."""
    out = []
    for call in bot.api.calls:
        params = call.params
        if call.chat_id in chat_ids:
            out += [params.get("text") or "", params.get("caption") or ""]
            for row in (params.get("reply_markup") or {}).get("inline_keyboard", []):
                out += [button.get("text", "") for button in row]
    for chat_id in chat_ids:
        out += [c["description"] for c in bot.api.get_commands("", {"type": "chat", "chat_id": chat_id})]
    out += [c["description"] for c in bot.api.get_commands("en", {"type": "all_private_chats"})]
    return [text for text in out if text]


async def test_english_flows_hold_no_vietnamese_outside_the_data(harness) -> None:
    from datetime import date, datetime

    from models.entities import Role
    from tests.harness import TZ, run_weekly

    bot = harness
    secretary, committee, admin, stranger = 7001, 7002, 7003, 7004
    for user_id in (secretary, committee, admin, stranger, 7005):
        bot.api.add_user(user_id, "Jane", language_code="en")
    bot.clock.set(datetime(2026, 6, 1, 9, 0, tzinfo=TZ))  # long enough ago for silent cells
    await bot.register(secretary, "NL", Role.SECRETARY, "Jane")
    await bot.register(7005, "KP", Role.SECRETARY, "Jane")  # away: named in the digest
    await bot.register(committee, "PN", Role.COMMITTEE, "Jane")
    await bot.register(admin, "PN", Role.ADMIN, "Jane")
    bot.clock.set(datetime(2026, 7, 1, 9, 0, tzinfo=TZ))
    await bot.say(stranger, "hello")
    await bot.say(stranger, "/start")
    await bot.say(7005, "/away 30")
    for user_id in (secretary, committee, admin):
        for command in ("/start", "/help", "/progress", "/checkin", "/away", "/schedule", "/nonsense"):
            await bot.say(user_id, command)
    await bot.say(secretary, "/away 3")
    await bot.say(secretary, "/away 0")
    await bot.say(secretary, "/checkin huy")
    await bot.say(admin, "/schedule reminder someday 16:00")
    # /report step by step, with wrong answers, buttons and typed answers, a doubt and a one-word name
    for answer in ("/report", "jane", "Jane Doe"):  # the typed name while the buttons ask: use the buttons
        await bot.say(secretary, answer)
    await bot.tap(secretary, "Type again")
    for answer in ("Jane Doe", "20x", "1998", "x", "female"):
        await bot.say(secretary, answer)
    await bot.tap(secretary, "Other")
    for answer in ("Sán Chay", "yesterday", "1/6/26", "15/05/2026", "QĐ"):
        await bot.say(secretary, answer)
    await bot.tap(secretary, "Keep")
    await bot.say(secretary, "maybe")
    await bot.tap(secretary, "Yes")
    await bot.tap(secretary, "✏️")
    await bot.tap(secretary, "Year of birth")
    await bot.say(secretary, "1997")
    await bot.say(secretary, "save it")
    await bot.say(secretary, "/cancel")
    await bot.say(secretary, "/cancel")
    # the one-line form: a missing field, too many, a doubt, a duplicate, the Youth Union question on the card
    for line in ("/report Jane Doe, 1998", "/report Jane Doe; 1998; f; 1/6/26; Tày; 1-QĐ; x",
                 "/report Jane Doe, 2015, female, 15/05/2026", "/report jane, 1998, female, 15/05/2026, Tày, 15/05/2026"):
        await bot.say(secretary, line)
    await bot.tap(secretary, "Keep")
    await bot.tap(secretary, "Type again")
    await bot.say(secretary, "12-QĐ/ĐU")
    await bot.tap(secretary, "No")
    await bot.tap(secretary, "✅")
    await bot.say(secretary, "/report Jane, 1998, female, 16/05/2026")  # the same person: a duplicate
    await bot.tap(secretary, "Keep")
    await bot.tap(secretary, "❌")
    await bot.say(secretary, "/report")
    await bot.say(secretary, "/cancel")
    await bot.say(secretary, "/undo")
    await bot.tap(secretary, "❌")
    await bot.say(secretary, "/undo")
    await bot.tap(secretary, "✅")
    await bot.say(secretary, "/undo")
    await bot.say(committee, "/report")
    reminded = await run_weekly(bot.application, "reminder")
    assert reminded.sent == 1  # the secretary's reminder, in English
    await bot.tap(secretary, "✅")
    assert (await run_weekly(bot.application, "digest", date(2026, 7, 6))).sent == 1
    names = [*await data_names(bot), *EXAMPLE_DATA]
    offenders = []
    for text in shown_texts(bot, {secretary, committee, admin, stranger, 7005}):
        stripped = text
        for name in names:
            stripped = stripped.replace(name, "·")
        if vietnamese_letters(stripped):
            offenders.append(f"{''.join(vietnamese_letters(stripped))}: {stripped}")
    assert offenders == [], "\n\n".join(offenders)
