"""A bulk send before it starts: the parsed list and the rendered plan with its cost.

Pure and blocking: the dialog runs parse_source and build_plan through asyncio.to_thread.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from services.devsms import Balance
from services.money import Money
from services.sms_parts import count_sms
from services.spreadsheet import (
    Recipients,
    ResultFormat,
    find_phone_column,
    prepare_recipients,
    read_table,
)
from services.templating import make_renderer

PASTED: Final = "numbers.txt"
CACHED_SOURCES: Final = 8
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

    @property
    def result_format(self) -> ResultFormat:
        return "xlsx" if self.file_format == "xlsx" else "csv"


class NoPhoneColumn(Exception):
    def __init__(self, columns: list[str]) -> None:
        super().__init__("no phone column")
        self.columns = columns


def parse_source(data: bytes, file_name: str, key: str, max_rows: int) -> Source:
    """Blocking (CPU-bound): run it through asyncio.to_thread."""
    table = read_table(data, file_name, max_rows=max_rows)
    column = find_phone_column(table)
    if column is None:
        raise NoPhoneColumn(table.columns)
    return Source(
        key=key,
        file_name=None if file_name == PASTED else file_name,
        file_format=table.format,
        columns=table.columns,
        phone_column=table.columns[column],
        rows_read=len(table.rows),
        recipients=prepare_recipients(table, column),
    )


class SourceCache:
    """The last few parsed lists, one per user."""

    def __init__(self, size: int = CACHED_SOURCES) -> None:
        self._size = size
        self._items: OrderedDict[int, Source] = OrderedDict()

    def get(self, user_id: int, key: str) -> Source | None:
        source = self._items.get(user_id)
        if source is None or source.key != key:
            return None
        self._items.move_to_end(user_id)
        return source

    def put(self, user_id: int, source: Source) -> None:
        self._items[user_id] = source
        self._items.move_to_end(user_id)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def drop(self, user_id: int) -> None:
        self._items.pop(user_id, None)


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
    counted: dict[str, int] = {}  # rows often render the same text
    for recipient in source.recipients.valid:
        text = render_row(recipient.fields).strip()
        if not text:
            skipped.append(Skipped(recipient.row_no, recipient.phone, EMPTY_TEXT))
            continue
        parts = counted.get(text)
        if parts is None:
            parts = counted[text] = count_sms(text).parts
        if parts > max_parts:
            skipped.append(Skipped(recipient.row_no, recipient.phone, LONG_TEXT, parts))
            continue
        rows.append((recipient.row_no, recipient.phone, text, parts))
        parts_total += parts
    skipped.sort(key=lambda s: s.row_no)
    return Plan(rows, skipped, source.recipients.duplicates, parts_total)


@dataclass(frozen=True, slots=True)
class Cost:
    total: Money | None
    missing: Money | None  # how much the balance lacks; None when it suffices or is unknown
    after: Money | None


def cost_of(parts: int, balance: Balance) -> Cost:
    price = balance.sms_price
    total = price * parts if price is not None else None
    if total is None or balance.balance is None or total.currency != balance.balance.currency:
        return Cost(total, None, None)
    after = balance.balance - total
    return Cost(total, -after if after.amount < 0 else None, after)
