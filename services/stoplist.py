"""Numbers typed or pasted for the stop list: one or several, each with an optional note.

Pure logic, no I/O, no user-facing text. A line holds numbers separated by commas, semicolons
or spaces; text after a number is its note ("+998 90 123 45 67 asked to stop"). Files go
through the bulk reader instead (services/bulk_plan.py), whose phone column is the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from services.phones import InvalidPhone, PhoneError, PhoneNumber, normalize_phone
from services.spreadsheet import Recipient

# A note is a reminder for the user, not a document: longer ones are cut.
NOTE_MAX: Final = 200
# Header names of a column whose cells become the notes of an imported file (compared in
# lower case): English, Uzbek (Latin and Cyrillic) and Russian.
NOTE_COLUMNS: Final[frozenset[str]] = frozenset(
    {
        "note", "notes", "reason", "comment", "comments",
        "izoh", "sabab", "izohlar", "изоҳ", "сабаб",
        "примечание", "причина", "комментарий", "заметка",
    }
)  # fmt: skip
_PIECES: Final = re.compile(r"[,;]")
# The most words one number may be spelled in: "8 ( 90 ) 123 45 67".
NUMBER_WORDS: Final = 8


@dataclass
class Typed:
    """What a message held: numbers (digits → note, first note wins) and what was not one."""

    numbers: dict[str, str | None] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)
    """digits → the international form, for replies."""
    invalid: list[tuple[str, PhoneError]] = field(default_factory=list)

    def take(self, phone: PhoneNumber, note: str | None) -> None:
        if note is not None:
            note = clean_note(note)
        if self.numbers.get(phone.digits) is None:
            self.numbers[phone.digits] = note
        self.shown[phone.digits] = phone.international

    def add_to_note(self, phone: PhoneNumber, more: str) -> None:
        note = self.numbers.get(phone.digits)
        self.numbers[phone.digits] = clean_note(f"{note}, {more}" if note else more)


def clean_note(text: str) -> str | None:
    note = " ".join(text.split())[:NOTE_MAX]
    return note or None


def parse_typed(text: str) -> Typed:
    """Every number in `text`, with its note. Linear in the text: each word starts at most
    one number, tried with up to NUMBER_WORDS words."""
    typed = Typed()
    for line in text.splitlines():
        last: PhoneNumber | None = None
        for piece in _PIECES.split(line):
            piece = piece.strip()
            if not piece:
                continue
            found = _take_piece(typed, piece)
            if found is None and last is not None and not _numeric(piece):
                # "901234567 asked, by phone": the note went on past a comma.
                typed.invalid.pop()
                typed.add_to_note(last, piece)
                continue
            last = found
    return typed


def _take_piece(typed: Typed, piece: str) -> PhoneNumber | None:
    """Takes the numbers of one piece; returns the last, or None (the piece is invalid)."""
    words = piece.split()
    start = 0
    last: PhoneNumber | None = None
    while start < len(words):
        found = _number_at(words, start)
        if found is None:
            break
        if last is not None:
            typed.take(last, None)  # "901234567 901234568": numbers one after another
        last, start = found
    if last is None:
        typed.invalid.append((piece, _reason(piece)))
        return None
    rest = " ".join(words[start:])
    if rest and _numeric(rest):
        # "901234567 12345": a mistyped number, not a note.
        typed.invalid.append((rest, _reason(rest)))
        rest = ""
    typed.take(last, rest or None)
    return last


def _number_at(words: list[str], start: int) -> tuple[PhoneNumber, int] | None:
    """The number spelled by the words from `start`, and where it ends: the longest valid run,
    an Uzbek reading first (as in phones.extract_phone_and_text: "905123456 100" is a number
    and a note, not one Turkish number)."""
    uzbek: tuple[PhoneNumber, int] | None = None
    foreign: tuple[PhoneNumber, int] | None = None
    for end in range(start + 1, min(start + NUMBER_WORDS, len(words)) + 1):
        try:
            phone = normalize_phone(" ".join(words[start:end]))
        except InvalidPhone:
            continue
        if phone.is_uzbek:
            uzbek = (phone, end)
        else:
            foreign = (phone, end)
    return uzbek or foreign


def _numeric(text: str) -> bool:
    """Spelled like a number (digits and separators), valid or not."""
    return _reason(text) is not PhoneError.NOT_A_NUMBER


def _reason(text: str) -> PhoneError:
    try:
        normalize_phone(text)
    except InvalidPhone as exc:
        return exc.reason
    return PhoneError.NOT_A_NUMBER


def note_column(columns: list[str]) -> str | None:
    """The column of an imported file whose cells are the notes, if it has one."""
    return next((name for name in columns if name.strip().casefold() in NOTE_COLUMNS), None)


def imported(recipients: list[Recipient], column: str | None) -> dict[str, str | None]:
    """digits → note of an imported file's valid rows (already normalised and deduplicated)."""
    return {
        r.phone: clean_note(r.fields.get(column, "")) if column is not None else None
        for r in recipients
    }
