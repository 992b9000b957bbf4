"""Message catalogs: both languages complete, placeholders consistent, every key used exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

from core.i18n import LOCALES_DIR, Texts, format_number, format_percent

ROOT = Path(__file__).resolve().parent.parent


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_key_exists_in_vietnamese_and_english() -> None:
    texts = Texts.load()
    vi, en = texts.catalogs["vi"], texts.catalogs["en"]
    assert set(vi) == set(en), f"only vi: {sorted(set(vi) - set(en))}; only en: {sorted(set(en) - set(vi))}"
    assert (LOCALES_DIR / "vi").is_dir() and len(vi) > 50


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
