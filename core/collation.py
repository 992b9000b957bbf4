"""Vietnamese alphabetical order for names of units, villages and people.

Python sorts by code point, which puts "Khuổi" before "Khâu" and "Đông" after "Yên". Vietnamese order
is a ă â b c d đ e ê g h i k l m n o ô ơ p q r s t u ư v x y, with the tones only breaking ties, in the
order ngang, huyền, hỏi, ngã, sắc, nặng (a < à < ả < ã < á < ạ), and case after that. That is CLDR's
Vietnamese collation, which ICU implements; we take it as it is (pyicu-wheels: PyICU with ICU bundled,
so a plain pip install, no system library) and add one setting: digits compare as numbers, so
"Thôn 2" comes before "Thôn 10". Normalization is on (CLDR's own setting for "vi"), so a name typed
decomposed (o + ̛ + ́) sorts with the precomposed "ớ".

ICU's collators are safe to share between threads for comparisons and sort keys once set up, and
`vietnamese_key` only reads; the collator is built on first use (loading ICU costs ~20 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")


@lru_cache(maxsize=1)
def _collator() -> Any:
    """Return ICU's Vietnamese collator, with numeric ordering of digit runs."""
    import icu  # pyicu-wheels (or PyICU): the same module

    collator = icu.Collator.createInstance(icu.Locale("vi"))
    collator.setAttribute(icu.UCollAttribute.NUMERIC_COLLATION, icu.UCollAttributeValue.ON)
    collator.setAttribute(icu.UCollAttribute.NORMALIZATION_MODE, icu.UCollAttributeValue.ON)
    return collator


def vietnamese_key(text: str) -> bytes:
    """Return a sort key that orders strings as a Vietnamese dictionary does ("Khâu" < "Khuổi" < "Đông"<"Em")."""
    return bytes(_collator().getSortKey(text))


def sort_vietnamese(items: Iterable[T], key: Callable[[T], str] | None = None, *, reverse: bool = False) -> list[T]:
    """Return the items sorted in Vietnamese order, by `key(item)` (the item itself when no key is given)."""
    if key is None:
        return sorted(items, key=lambda item: vietnamese_key(item), reverse=reverse)  # type: ignore[arg-type]
    return sorted(items, key=lambda item: vietnamese_key(key(item)), reverse=reverse)
