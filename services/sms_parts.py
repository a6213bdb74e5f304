"""Local preview of how many SMS parts a text takes, and a cheaper spelling of it.

The gateway bills per part and its ``parts_count`` in the send answer is the billed truth; this
is only a preview. GSM-7: 160 septets in one part, 153 per part when split; UCS-2: 70 / 67 UTF-16
code units. Pure logic, no I/O.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

logger = logging.getLogger(__name__)

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (3GPP TS 23.038, 6.2.1), row by row. ESC (0x1B) is left out on
# purpose: it is not a character a user can type, only the prefix of the extension table.
GSM_BASIC: Final[frozenset[str]] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + code, so it takes two septets.
GSM_EXTENSION: Final[frozenset[str]] = frozenset("\f^{}\\[~]|€")

GSM_SINGLE_PART: Final = 160
# Multipart messages lose 7 septets per part to the concatenation header (UDH).
GSM_PER_PART: Final = 153
UCS2_SINGLE_PART: Final = 70
UCS2_PER_PART: Final = 67

_BMP_LIMIT: Final = 0xFFFF

_APOSTROPHE_LOOKALIKES: Final = "\u02bb\u02bc\u2018\u2019\u0060\u00b4\u2032"
_QUOTE_LOOKALIKES: Final = "\u201c\u201d\u201e\u00ab\u00bb"

# Punctuation that people (and phone keyboards) type instead of a GSM-7 character. Uzbek Latin
# oʻ/gʻ is the usual culprit: one U+02BB turns a whole text into UCS-2. Only punctuation and
# spacing are here, never letters: Cyrillic stays Cyrillic.
LOOKALIKES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **dict.fromkeys(_APOSTROPHE_LOOKALIKES, "'"),
        **dict.fromkeys(_QUOTE_LOOKALIKES, '"'),
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
)
_LOOKALIKE_TABLE: Final = str.maketrans(dict(LOOKALIKES))

# Categories whose characters are invisible or render oddly on their own; naming them by code
# point is the only way the user can find them in their text.
_SHOWN_BY_CODE_POINT: Final[frozenset[str]] = frozenset(
    {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"}
)


@dataclass(frozen=True)
class SmsCount:
    encoding: Encoding
    characters: int
    """Code points in the text."""
    units: int
    """Septets for GSM-7, UTF-16 code units for UCS-2."""
    parts: int
    non_gsm: tuple[str, ...]
    """Distinct characters that forced UCS-2, in order of first appearance."""


def is_gsm_char(ch: str) -> bool:
    return ch in GSM_BASIC or ch in GSM_EXTENSION


def _gsm_width(ch: str) -> int:
    return 2 if ch in GSM_EXTENSION else 1


def _ucs2_width(ch: str) -> int:
    # Outside the BMP a character is a UTF-16 surrogate pair.
    return 2 if ord(ch) > _BMP_LIMIT else 1


def _pack(widths: Iterable[int], capacity: int) -> int:
    """Greedily pack indivisible units into parts; return how many parts it takes.

    A width-2 item (escape pair, surrogate pair) that does not fit moves whole to the next
    part, leaving a hole, so the count can exceed ceil(units / capacity).
    """
    parts = 0
    used = capacity  # forces a new part for the first item
    for width in widths:
        if used + width > capacity:
            parts += 1
            used = 0
        used += width
    return parts


def _distinct(chars: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(chars))


class TooManyParts(ValueError):
    """A text needs more SMS parts than the bot allows (Settings.sms_max_parts)."""

    def __init__(self, parts: int, limit: int) -> None:
        super().__init__(f"{parts} parts, at most {limit}")
        self.parts = parts
        self.limit = limit


def check_parts(text: str, max_parts: int) -> SmsCount:
    """The text's count, or TooManyParts. The one limit of a single send, a template and each
    row of a bulk job: a text one path refuses must not go out through another."""
    count = count_sms(text)
    if count.parts > max_parts:
        raise TooManyParts(count.parts, max_parts)
    return count


def count_sms(text: str) -> SmsCount:
    non_gsm = _distinct(ch for ch in text if not is_gsm_char(ch))
    encoding: Encoding
    if non_gsm:
        encoding = "UCS-2"
        widths = [_ucs2_width(ch) for ch in text]
        single, per_part = UCS2_SINGLE_PART, UCS2_PER_PART
    else:
        encoding = "GSM-7"
        widths = [_gsm_width(ch) for ch in text]
        single, per_part = GSM_SINGLE_PART, GSM_PER_PART

    units = sum(widths)
    # A text that fits one part uses all of it; a longer one loses room to the UDH in each.
    parts = _pack(widths, single if units <= single else per_part)
    return SmsCount(
        encoding=encoding, characters=len(text), units=units, parts=parts, non_gsm=non_gsm
    )


def cheaper_spelling(text: str) -> str | None:
    """The text with look-alike punctuation made plain, or None when there is none.

    Never applied silently: gateways moderate approved texts letter by letter, so the caller
    offers this to the user with its new count. The rewrite is not always cheaper (a Cyrillic
    text stays UCS-2, and "…" -> "..." grows it); compare the counts before offering.
    """
    rewritten = text.translate(_LOOKALIKE_TABLE)
    return rewritten if rewritten != text else None


def describe_char(ch: str) -> str:
    """Name a character for the user: "ʻ (U+02BB)", or "U+00A0 (NO-BREAK SPACE)" if unseeable."""
    code = f"U+{ord(ch):04X}"
    if ord(ch) > _BMP_LIMIT or unicodedata.category(ch) in _SHOWN_BY_CODE_POINT:
        name = unicodedata.name(ch, "")
        return f"{code} ({name})" if name else code
    return f"{ch} ({code})"
