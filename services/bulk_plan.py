"""A bulk send before it starts: the parsed list and the rendered plan with its cost.

Pure and blocking: the dialog runs parse_source in the upload worker (a file) or a thread
(a pasted list), and build_plan through asyncio.to_thread.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from services.sms_parts import TooManyParts, check_parts
from services.spreadsheet import (
    Recipients,
    ResultFormat,
    find_phone_column,
    prepare_recipients,
    read_table,
)
from services.templating import make_renderer

PASTED: Final = "numbers.txt"
# Users whose list was evicted are remembered (a user id and a hash each) to say so.
EVICTIONS_REMEMBERED: Final = 10_000
# What a Recipient with its fields dict costs beyond the strings in it (measured on CPython
# 3.11: the slotted object, the dict with a few keys, the list slot).
_RECIPIENT_OVERHEAD: Final = 400
_INVALID_OVERHEAD: Final = 120
EMPTY_TEXT: Final = "empty_text"
LONG_TEXT: Final = "long_text"


# --- the parsed list ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    key: str
    file_name: str | None  # None for a pasted list
    file_format: str  # "csv" | "xlsx" | "text"
    columns: list[str]
    phone_column: str
    rows_read: int
    recipients: Recipients
    approx_bytes: int = 0
    """Memory the parsed list holds, roughly: what the cache of parsed lists counts."""

    @property
    def result_format(self) -> ResultFormat:
        return "xlsx" if self.file_format == "xlsx" else "csv"


class NoPhoneColumn(Exception):
    def __init__(self, columns: list[str]) -> None:
        super().__init__("no phone column")
        self.columns = columns

    def __reduce__(self) -> tuple[type[NoPhoneColumn], tuple[list[str]]]:
        # Raised in the upload worker and unpickled in the bot.
        return type(self), (self.columns,)


def parse_source(data: bytes, file_name: str, key: str, max_rows: int) -> Source:
    """Blocking (CPU-bound): a file goes through the UploadWorker, a pasted list (a message,
    at most 4096 characters) through asyncio.to_thread."""
    table = read_table(data, file_name, max_rows=max_rows)
    column = find_phone_column(table)
    if column is None:
        raise NoPhoneColumn(table.columns)
    recipients = prepare_recipients(table, column)
    return Source(
        key=key,
        file_name=None if file_name == PASTED else file_name,
        file_format=table.format,
        columns=table.columns,
        phone_column=table.columns[column],
        rows_read=len(table.rows),
        recipients=recipients,
        approx_bytes=approx_size(recipients),
    )


def approx_size(recipients: Recipients) -> int:
    """Bytes a parsed list holds, within some tens of percent: linear in its cells."""
    size = 0
    for recipient in recipients.valid:
        # Column names are the same string objects in every row: only the values count.
        size += _RECIPIENT_OVERHEAD + sys.getsizeof(recipient.phone)
        size += sum(map(sys.getsizeof, recipient.fields.values()))
    for row in recipients.invalid:
        size += _INVALID_OVERHEAD + sys.getsizeof(row.value)
    return size


class SourceCache:
    """Parsed lists between the steps of the dialog, one per user, within a byte budget.

    Counting lists is not enough: eight lists of 50,000 rows with wide rows hold gigabytes.
    Past the budget the least recently used lists go; their owners are told to send the file
    again (see evicted) rather than have it read again behind their back, which would bring
    the memory back under the same pressure.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._used = 0
        self._items: OrderedDict[int, Source] = OrderedDict()
        self._evicted: OrderedDict[int, str] = OrderedDict()

    def get(self, user_id: int, key: str) -> Source | None:
        source = self._items.get(user_id)
        if source is None or source.key != key:
            return None
        self._items.move_to_end(user_id)
        return source

    def put(self, user_id: int, source: Source) -> None:
        self.drop(user_id)
        self._items[user_id] = source
        self._used += source.approx_bytes
        # The list just put stays even alone over the budget: its owner is using it now.
        while self._used > self._budget and len(self._items) > 1:
            old_user, old = self._items.popitem(last=False)
            self._used -= old.approx_bytes
            self._evicted[old_user] = old.key
            if len(self._evicted) > EVICTIONS_REMEMBERED:
                self._evicted.popitem(last=False)

    def drop(self, user_id: int) -> None:
        old = self._items.pop(user_id, None)
        if old is not None:
            self._used -= old.approx_bytes
        self._evicted.pop(user_id, None)

    def evicted(self, user_id: int, key: str) -> bool:
        """The user's list was dropped to stay within the budget."""
        return self._evicted.get(user_id) == key

    @property
    def used(self) -> int:
        return self._used


# --- the dry run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skipped:
    row_no: int
    value: str
    reason: str  # a PhoneError value, EMPTY_TEXT or LONG_TEXT
    parts: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    rows: list[tuple[int, str, str, int]]  # row_no, phone, message, parts: BulkRepo.create_job
    skipped: list[Skipped]
    duplicates: int
    parts_total: int


def build_plan(source: Source, template: str, max_parts: int) -> Plan:
    """Renders every row; a row whose text is empty or too long is skipped, with the reason.
    Blocking for big lists: run it through asyncio.to_thread."""
    render_row = make_renderer(template, source.columns)
    rows: list[tuple[int, str, str, int]] = []
    skipped = [Skipped(r.row_no, r.value, r.reason.value) for r in source.recipients.invalid]
    parts_total = 0
    counted: dict[str, int | TooManyParts] = {}  # rows often render the same text
    for recipient in source.recipients.valid:
        text = render_row(recipient.fields).strip()
        if not text:
            skipped.append(Skipped(recipient.row_no, recipient.phone, EMPTY_TEXT))
            continue
        parts = counted.get(text)
        if parts is None:
            try:
                parts = check_parts(text, max_parts).parts
            except TooManyParts as exc:
                parts = exc
            counted[text] = parts
        if isinstance(parts, TooManyParts):
            skipped.append(Skipped(recipient.row_no, recipient.phone, LONG_TEXT, parts.parts))
            continue
        rows.append((recipient.row_no, recipient.phone, text, parts))
        parts_total += parts
    skipped.sort(key=lambda s: s.row_no)
    return Plan(rows, skipped, source.recipients.duplicates, parts_total)
