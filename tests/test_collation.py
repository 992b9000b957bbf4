"""Vietnamese alphabetical order (CLDR's Vietnamese collation through ICU), not code-point order."""

from __future__ import annotations

import unicodedata
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.collation import sort_vietnamese, vietnamese_key

ALPHABET = "a ă â b c d đ e ê g h i k l m n o ô ơ p q r s t u ư v x y".split()


def ordered(*words: str) -> bool:
    keys = [vietnamese_key(word) for word in words]
    return all(a < b for a, b in zip(keys, keys[1:]))


def test_code_point_order_is_wrong_and_ours_is_right() -> None:
    assert sorted(["Khuổi", "Khâu"]) == ["Khuổi", "Khâu"]  # what Python does: "u" < "â"
    assert sort_vietnamese(["Khuổi", "Khâu"]) == ["Khâu", "Khuổi"]


def test_the_whole_alphabet_in_order() -> None:
    shuffled = ALPHABET[::-1][3:] + ALPHABET[::-1][:3]
    assert sort_vietnamese(shuffled) == ALPHABET
    assert sort_vietnamese([letter.upper() for letter in shuffled]) == [letter.upper() for letter in ALPHABET]


def test_d_with_stroke_is_a_letter_between_d_and_e() -> None:
    assert ordered("D", "Đ", "E")
    assert ordered("Dung", "Đa", "Đông", "Em")  # not a "d" with an accent: "Đa" after "Dung"
    assert ordered("dz", "đa")


def test_letters_with_marks_are_letters_of_their_own() -> None:
    assert ordered("o", "ô", "ơ", "p")
    assert ordered("an", "ăm", "âc", "ba")  # the letter decides before the rest of the word
    assert ordered("ut", "ưa")
    assert ordered("ez", "êa")


def test_tones_in_cldr_order_after_the_bare_letter() -> None:
    """CLDR vi: ngang < huyền < hỏi < ngã < sắc < nặng, on every vowel."""
    assert ordered("a", "à", "ả", "ã", "á", "ạ")
    assert ordered("ô", "ồ", "ổ", "ỗ", "ố", "ộ")
    assert ordered("ơ", "ờ", "ở", "ỡ", "ớ", "ợ")
    assert ordered("ư", "ừ", "ử", "ữ", "ứ", "ự")
    assert ordered("ạ", "ă")  # every tone of a before the next letter


def test_tones_only_break_ties_between_the_same_letters() -> None:
    assert ordered("má", "mai")  # a letter more outweighs a tone
    assert ordered("bạc", "bai")  # ...and so does a later letter
    assert ordered("ma", "mà", "mả", "mã", "má", "mạ", "mác")


def test_case_only_breaks_ties() -> None:
    assert ordered("an", "An", "ăn", "Ăn", "ân", "Ân", "bác")
    assert sort_vietnamese(["bác", "Ân", "ăn", "An"]) == ["An", "ăn", "Ân", "bác"]
    assert vietnamese_key("an") != vietnamese_key("An")  # a stable order, not equal keys


def test_decomposed_text_sorts_as_precomposed() -> None:
    name = "Khuổi Ún"
    assert vietnamese_key(unicodedata.normalize("NFD", name)) == vietnamese_key(unicodedata.normalize("NFC", name))


def test_numbers_in_names_sort_as_numbers() -> None:
    assert sort_vietnamese(["Tổ dân phố 10", "Tổ dân phố 2", "Tổ dân phố 1"]) == [
        "Tổ dân phố 1", "Tổ dân phố 2", "Tổ dân phố 10"]


def test_cell_names_in_dictionary_order() -> None:
    cells = [
        "Chi bộ thôn Nà Coóc", "Chi bộ thôn Khuổi Ún", "Chi bộ thôn Đông Chợ", "Chi bộ thôn Cốc Lót",
        "Chi bộ thôn Khâu Slôm", "Chi bộ thôn Bản Chang", "Chi bộ thôn Ơn Cảnh", "Chi bộ thôn Ổn Lợi",
        "Chi bộ thôn Nà Cà", "Chi bộ thôn Dủn Hạ", "Chi bộ thôn Ẻn", "Chi bộ thôn Ưng Lợi",
        "Chi bộ thôn Uẩn Thượng", "Chi bộ thôn Cốc Lại", "Chi bộ thôn Yên Thịnh", "Chi bộ thôn Nà Cằm",
    ]
    assert sort_vietnamese(cells) == [
        "Chi bộ thôn Bản Chang",
        "Chi bộ thôn Cốc Lại",
        "Chi bộ thôn Cốc Lót",
        "Chi bộ thôn Dủn Hạ",
        "Chi bộ thôn Đông Chợ",
        "Chi bộ thôn Ẻn",
        "Chi bộ thôn Khâu Slôm",
        "Chi bộ thôn Khuổi Ún",
        "Chi bộ thôn Nà Cà",
        "Chi bộ thôn Nà Cằm",
        "Chi bộ thôn Nà Coóc",
        "Chi bộ thôn Ổn Lợi",
        "Chi bộ thôn Ơn Cảnh",
        "Chi bộ thôn Uẩn Thượng",
        "Chi bộ thôn Ưng Lợi",
        "Chi bộ thôn Yên Thịnh",
    ]


def test_sort_by_a_key_and_in_reverse() -> None:
    units = [(3, "Chi bộ thôn Khuổi Ún"), (1, "Chi bộ thôn Khâu Slôm"), (2, "Chi bộ thôn Đông Chợ")]
    assert [code for code, _ in sort_vietnamese(units, key=lambda unit: unit[1])] == [2, 1, 3]
    assert [code for code, _ in sort_vietnamese(units, key=lambda unit: unit[1], reverse=True)] == [3, 1, 2]


def test_keys_from_many_threads_agree() -> None:
    """Charts and exports run in worker threads; the shared collator only reads."""
    names = [f"Chi bộ thôn {word} {n}" for n in range(50) for word in ("Khâu", "Khuổi", "Đông", "Ơn")]
    expected = [vietnamese_key(name) for name in names]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(vietnamese_key, names * 4)) == expected * 4


@pytest.mark.parametrize("text", ["", " ", "123", "Chi bộ $x$", "👍"])
def test_any_text_has_a_key(text: str) -> None:
    assert isinstance(vietnamese_key(text), bytes)


def test_the_export_lists_admissions_of_one_day_and_unit_in_vietnamese_order() -> None:
    from datetime import date
    from types import SimpleNamespace

    from reports.exports import admission_rows

    names = ["Lý Văn Khuổi", "Lý Văn Khâu", "Đặng Thị Ơn", "Dương Văn An", "Đặng Thị Ôn"]
    rows = [SimpleNamespace(unit_code="NL", unit_name="Chi bộ thôn Nà Lạn", full_name=name, birth_year=1998,
                            sex="female", ethnicity="Tày", minority=True, youth_union=None, decision_no=None,
                            admitted_on=date(2026, 5, 15)) for name in names]
    ordered = [row[2] for row in admission_rows(rows, {}, "Có", "Không")]
    assert ordered == ["Dương Văn An", "Đặng Thị Ôn", "Đặng Thị Ơn", "Lý Văn Khâu", "Lý Văn Khuổi"]
