"""Message catalogs (TOML files per language and feature) and Vietnamese-style number formatting.

`core/locales/<lang>/<feature>.toml` holds the texts of one feature; a key is `<feature>.<name>`
(nested tables add more dots). Every language must define every key (tests/test_catalog.py).

A text that depends on a count is looked up with `plural(key, count)`: the key gets the suffix of
the count's CLDR plural category in that language (`_one`, `_other`, …; Babel knows the rules),
and `<key>_other` is used when a language has no text for that category. Vietnamese words do not
change with the count, so it defines `<key>_other` only; English defines `<key>_one` and `<key>_other`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.numbers import get_decimal_symbol, get_group_symbol

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("vi", "en")


def _flatten(prefix: str, table: Mapping[str, Any], out: dict[str, str]) -> None:
    for key, value in table.items():
        full = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            _flatten(full, value, out)
        else:
            out[full] = str(value)


def load_catalog(folder: Path) -> dict[str, str]:
    """Read every `<feature>.toml` in `folder` into one flat dict of keys to texts."""
    catalog: dict[str, str] = {}
    for path in sorted(folder.glob("*.toml")):
        _flatten(path.stem, tomllib.loads(path.read_text(encoding="utf-8")), catalog)
    return catalog


def language_of(code: str | None, default: str = "vi") -> str:
    """Map a Telegram language_code ("en-GB", "vi") to a catalog language."""
    base = (code or "").split("-")[0].lower()
    return base if base in LANGUAGES else default


class Texts:
    """All catalogs, looked up by key and language, formatted with str.format."""

    def __init__(self, catalogs: dict[str, dict[str, str]], default: str = "vi"):
        self.catalogs = catalogs
        self.default = default

    @classmethod
    def load(cls, default: str = "vi", folder: Path = LOCALES_DIR) -> Texts:
        """Load the catalogs of every language under `folder`."""
        return cls({lang: load_catalog(folder / lang) for lang in LANGUAGES}, default)

    def get(self, key: str, lang: str | None = None, /, **values: Any) -> str:
        """Return the text for `key` in `lang` (default language when missing), filled with `values`."""
        catalog = self.catalogs.get(lang or self.default) or self.catalogs[self.default]
        template = catalog.get(key)
        if template is None:
            template = self.catalogs[self.default].get(key)
        if template is None:
            raise KeyError(f"message catalog has no key {key!r}")
        return template.format(**values) if values else template

    def __call__(self, key: str, lang: str | None = None, /, **values: Any) -> str:
        return self.get(key, lang, **values)

    def plural(self, key: str, count: int, lang: str | None = None, /, **values: Any) -> str:
        """Return the text of `key` for `count` in `lang`: `<key>_<plural category>`, else `<key>_other`."""
        lang = lang if lang in self.catalogs else self.default
        form = plural_form(count, lang)
        if f"{key}_{form}" in self.catalogs[lang]:
            return self.get(f"{key}_{form}", lang, **values)
        return self.get(f"{key}_other", lang, **values)

    def for_language(self, lang: str | None) -> Translator:
        """Return a translator bound to one language."""
        return Translator(self, lang if lang in self.catalogs else self.default)


class Translator:
    """Texts bound to one language, with that language's number and date formats."""

    def __init__(self, texts: Texts, lang: str):
        self.texts = texts
        self.lang = lang

    def __call__(self, key: str, /, **values: Any) -> str:
        return self.texts.get(key, self.lang, **values)

    def plural(self, key: str, count: int, /, **values: Any) -> str:
        """Return the text of `key` that fits `count` ("1 month" / "2 months"; one form in Vietnamese)."""
        return self.texts.plural(key, count, self.lang, **values)

    def number(self, value: int | float | Decimal) -> str:
        """Format a count: 2.817 in Vietnamese, 2,817 in English."""
        return format_number(value, self.lang)

    def percent(self, value: Decimal | float | None) -> str:
        """Format a percentage: 53,8\u00a0% in Vietnamese, 53.8% in English; "—" without a value."""
        return format_percent(value, self.lang)

    def date(self, value: date) -> str:
        """Format a date as dd/mm/yyyy."""
        return value.strftime("%d/%m/%Y")


@lru_cache(maxsize=None)
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


def plural_form(count: int, lang: str) -> str:
    """Return the CLDR plural category of `count` in `lang` ("one" or "other" in English; Babel's CLDR
    data names a "one" for Vietnamese too, but its words do not change: its catalog has `_other` only)."""
    return _locale(lang).plural_form(abs(count))


@lru_cache(maxsize=None)
def _symbols(lang: str) -> tuple[str, str]:
    """Return the language's (grouping, decimal) symbols, from Babel's CLDR data."""
    return get_group_symbol(lang), get_decimal_symbol(lang)


def format_number(value: int | float | Decimal, lang: str = "vi") -> str:
    """Format a whole number with the language's grouping (2.817 / 2,817)."""
    whole = int(Decimal(str(value)).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))
    return f"{whole:,}".replace(",", _symbols(lang)[0])


def format_percent(value: Decimal | float | None, lang: str = "vi") -> str:
    """Format a percentage with one decimal: 53,8\u00a0% (a no-break space, so "%" never wraps onto a
    line of its own on a phone) / 53.8%."""
    if value is None:
        return "—"
    group, decimal = _symbols(lang)
    rounded = Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    number = f"{rounded:,.1f}".replace(",", "\0").replace(".", decimal).replace("\0", group)
    return f"{number}\u00a0%" if lang == "vi" else f"{number}%"
