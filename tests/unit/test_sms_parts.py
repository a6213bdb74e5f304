from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sms_parts import (
    LOOKALIKES,
    SmsCount,
    TooManyParts,
    cheaper_spelling,
    check_parts,
    count_sms,
    describe_char,
)

# --- an independent reference: encode to real septets / UTF-16 code units, then cut ---------

ESC: Final = "\x1b"
# The GSM 03.38 default alphabet in code-point order (0x00..0x7F), ESC at 0x1B.
REF_GSM_TABLE: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
REF_GSM_EXTENSION: Final = "\f^{}\\[~]|€"
assert len(REF_GSM_TABLE) == 128

T = TypeVar("T")


def _reference_septets(text: str) -> list[str] | None:
    septets: list[str] = []
    for ch in text:
        if ch in REF_GSM_EXTENSION:
            septets += [ESC, ch]
        elif ch in REF_GSM_TABLE and ch != ESC:
            septets.append(ch)
        else:
            return None
    return septets


def _reference_cut(units: list[T], size: int, opens_pair: Callable[[T], bool]) -> list[int]:
    """Sizes of the parts when cutting every `size` units, one earlier if a pair would split."""
    sizes: list[int] = []
    start = 0
    while start < len(units):
        end = min(start + size, len(units))
        if end < len(units) and opens_pair(units[end - 1]):
            end -= 1
        sizes.append(end - start)
        start = end
    return sizes


def reference_count(text: str) -> tuple[str, int, int]:
    """(encoding, units, parts) computed the way a modem would split the PDU."""
    septets = _reference_septets(text)
    if septets is not None:
        if len(septets) <= 160:
            return "GSM-7", len(septets), (1 if septets else 0)
        sizes = _reference_cut(septets, 153, lambda s: s == ESC)
        return "GSM-7", len(septets), len(sizes)
    raw = text.encode("utf-16-be")
    code_units = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if len(code_units) <= 70:
        return "UCS-2", len(code_units), 1
    sizes = _reference_cut(code_units, 67, lambda u: 0xD800 <= u <= 0xDBFF)
    return "UCS-2", len(code_units), len(sizes)


def parts(text: str) -> int:
    return count_sms(text).parts


# --- GSM-7 ----------------------------------------------------------------------------------


def test_empty_text_is_zero_parts() -> None:
    assert count_sms("") == SmsCount(
        encoding="GSM-7",
        characters=0,
        units=0,
        parts=0,
        non_gsm=(),
    )


@pytest.mark.parametrize(
    ("length", "expected_parts"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3)],
)
def test_gsm_part_boundaries(length: int, expected_parts: int) -> None:
    count = count_sms("a" * length)
    assert (count.encoding, count.units, count.parts) == ("GSM-7", length, expected_parts)


def test_every_gsm_character_stays_gsm() -> None:
    text = REF_GSM_TABLE.replace(ESC, "") + REF_GSM_EXTENSION
    count = count_sms(text)
    assert count.encoding == "GSM-7"
    assert count.units == 127 + 2 * len(REF_GSM_EXTENSION)
    assert count.non_gsm == ()


def test_extension_characters_take_two_septets() -> None:
    assert count_sms("€" * 80).units == 160
    assert parts("€" * 80) == 1
    assert parts("a" + "€" * 80) == 2
    assert count_sms("{[|]}").characters == 5
    assert count_sms("{[|]}").units == 10


def test_extension_character_at_part_boundary_moves_to_next_part() -> None:
    # 306 septets would fit two parts, but the euro's escape pair would straddle septet 153.
    straddling = "a" * 152 + "€" + "a" * 152
    assert count_sms(straddling).units == 306
    assert parts(straddling) == 3
    # The same septets with the euro elsewhere fit in two parts.
    assert parts("€" + "a" * 304) == 2


# --- UCS-2 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected_parts"),
    [(70, 1), (71, 2), (134, 2), (135, 3)],
)
def test_ucs2_part_boundaries(length: int, expected_parts: int) -> None:
    count = count_sms("ж" * length)
    assert (count.encoding, count.units, count.parts) == ("UCS-2", length, expected_parts)


def test_emoji_counts_two_units() -> None:
    count = count_sms("😀" * 35)
    assert (count.characters, count.units, count.parts) == (35, 70, 1)
    assert parts("😀" * 35 + "ж") == 2


def test_surrogate_pair_at_part_boundary_moves_to_next_part() -> None:
    straddling = "ж" * 66 + "😀" + "ж" * 66
    assert count_sms(straddling).units == 134
    assert parts(straddling) == 3
    assert parts("😀" + "ж" * 132) == 2


def test_one_character_outside_gsm_switches_the_whole_text() -> None:
    count = count_sms("Salom, dunyo! " * 5 + "ж")
    assert count.encoding == "UCS-2"
    assert count.non_gsm == ("ж",)


# --- Uzbek apostrophes and the cheaper spelling ---------------------------------------------

UZBEK_LATIN: Final = (
    "Hurmatli mijoz! Sizning buyurtmangiz qabul qilindi va ertaga yetkazib beriladi. "
    "Tolov miqdori 150 000 som. Savollar bolsa, operatorimizga qongiroq qiling: "
    "+998 71 200 00 00. Bizni tanlaganingiz uchun rahmat! Kuningiz xayrli otsin. "
)


def test_one_okina_doubles_the_parts_and_cheaper_spelling_fixes_it() -> None:
    plain = UZBEK_LATIN
    assert (count_sms(plain).encoding, parts(plain)) == ("GSM-7", 2)

    with_okina = plain.replace("Tolov", "Toʻlov", 1)
    count = count_sms(with_okina)
    assert (count.encoding, count.parts) == ("UCS-2", 4)
    assert count.non_gsm == ("ʻ",)

    cheaper = cheaper_spelling(with_okina)
    assert cheaper == plain.replace("Tolov", "To'lov", 1)
    assert (count_sms(cheaper).encoding, parts(cheaper)) == ("GSM-7", 2)


def test_every_lookalike_is_rewritten_to_gsm() -> None:
    text = "".join(LOOKALIKES)
    cheaper = cheaper_spelling(text)
    assert cheaper is not None
    assert count_sms(cheaper).encoding == "GSM-7"
    assert cheaper_spelling("Qoʻqon — “Oʻzbekiston”…") == "Qo'qon - \"O'zbekiston\"..."


def test_cyrillic_stays_ucs2_after_cheaper_spelling() -> None:
    text = "Ҳурматли мижоз, тўлов қабул қилинди’…"
    cheaper = cheaper_spelling(text)
    assert cheaper == "Ҳурматли мижоз, тўлов қабул қилинди'..."
    assert count_sms(cheaper).encoding == "UCS-2"
    assert cheaper_spelling("Ҳурматли мижоз") is None


def test_cheaper_spelling_is_none_when_nothing_changes() -> None:
    assert cheaper_spelling("To'lov qabul qilindi") is None
    assert cheaper_spelling("") is None


def test_non_gsm_names_offending_characters_in_order() -> None:
    count = count_sms("Toʻlov 😀 qabul ʻ qilindi\u00a0ж😀")
    assert count.non_gsm == ("ʻ", "😀", "\u00a0", "ж")
    assert [describe_char(ch) for ch in count.non_gsm] == [
        "ʻ (U+02BB)",
        "U+1F600 (GRINNING FACE)",
        "U+00A0 (NO-BREAK SPACE)",
        "ж (U+0436)",
    ]


def test_describe_char_shows_invisible_characters_by_code_point() -> None:
    assert describe_char("\x07") == "U+0007"
    assert describe_char("\u200b") == "U+200B (ZERO WIDTH SPACE)"
    assert describe_char("’") == "’ (U+2019)"


# --- property: the counter agrees with the reference ----------------------------------------

GSM_SAMPLE: Final = "aZ09 .,!?@£$_ÄÖÑÜ§¿àèé\n'\"-"
EXTENSION: Final = REF_GSM_EXTENSION
CYRILLIC: Final = "абвжқўҳЎҚ"
EMOJI: Final = "😀👍🎉🇺"

gsm_text = st.text(alphabet=st.sampled_from(GSM_SAMPLE + EXTENSION), max_size=480)
mixed_text = st.text(
    alphabet=st.sampled_from(GSM_SAMPLE + EXTENSION + CYRILLIC + "".join(LOOKALIKES) + EMOJI),
    max_size=220,
)
# Mostly UCS-2 with the odd emoji, so surrogate pairs land on part boundaries often.
emoji_heavy = st.text(alphabet=st.sampled_from("ж" * 5 + EMOJI), min_size=60, max_size=220)


@settings(max_examples=300, deadline=None)
@given(st.one_of(gsm_text, mixed_text, emoji_heavy))
def test_counter_matches_reference(text: str) -> None:
    count = count_sms(text)
    assert (count.encoding, count.units, count.parts) == reference_count(text)
    assert count.characters == len(text)
    assert set(count.non_gsm) == {ch for ch in text if _reference_septets(ch) is None}


@settings(max_examples=300, deadline=None)
@given(mixed_text)
def test_cheaper_spelling_only_touches_lookalikes(text: str) -> None:
    cheaper = cheaper_spelling(text)
    if not any(ch in LOOKALIKES for ch in text):
        assert cheaper is None
        return
    assert cheaper is not None
    assert not any(ch in LOOKALIKES for ch in cheaper)
    # Everything but punctuation and spaces (letters above all) survives, in order.
    plain_punctuation = set("".join(LOOKALIKES.values()))
    kept = [ch for ch in text if ch not in LOOKALIKES and ch not in plain_punctuation]
    assert [ch for ch in cheaper if ch not in plain_punctuation] == kept


def test_the_parts_limit_allows_exactly_the_limit() -> None:
    assert check_parts("x" * 153 * 3, 3).parts == 3
    with pytest.raises(TooManyParts) as refused:
        check_parts("x" * (153 * 3 + 1), 3)
    assert (refused.value.parts, refused.value.limit) == (4, 3)
