"""A bulk send before it starts: the parsed list and the rendered plan with its cost.

Pure and blocking: the dialog runs read_upload in the upload worker (a file) and unpacks its
result in a thread, parse_source in a thread (a pasted list), and build_plan through
asyncio.to_thread. make_plan is the one way to a plan for a user: it reads the user's stop list
first, so every bulk path (a file, a pasted list, a contact group) leaves those numbers out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from array import array
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol

from services.phones import PhoneError, foreign_region, is_foreign
from services.sms_parts import SmsCount, TooManyParts, cheaper_spelling, check_parts
from services.spreadsheet import (
    NEVER_IN_CELL,
    InvalidRow,
    Recipient,
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
STOPPED: Final = "stop_list"


class StopList(Protocol):
    """storage.StopListRepo, as the plan needs it: this module runs in the upload worker too,
    which must not import the storage layer (aiosqlite) to parse a file."""

    async def stopped_among(self, user_id: int, phones: Iterable[str]) -> set[str]: ...


# --- the parsed list ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    key: str
    file_name: str | None  # None for a pasted list
    file_format: str  # "csv" | "xlsx" | "text" | "group" (services.contacts.group_source)
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


def read_upload(data: bytes, file_name: str, key: str, max_rows: int) -> PackedSource:
    """parse_source for the upload worker: its Source in the form that is cheap to send back."""
    return PackedSource.pack(parse_source(data, file_name, key, max_rows))


@dataclass(frozen=True, slots=True)
class PackedSource:
    """A Source as the upload worker sends it back: a few bytes objects and arrays.

    The bot unpickles what the worker sends in one C call that holds the GIL, thread or not.
    A Source of 50,000 rows × 64 columns is 3.2 million strings and 50,000 dicts: a second or
    more in that call, during which every chat, timer and bulk job stands still. Here each
    row is one UTF-8 text (phone and cells joined by NEVER_IN_CELL, which the reader removes
    from every cell), all rows one bytes object with an array of where each ends: unpickling
    copies a few buffers (about 2 ms for that list). unpack, run in a thread, rebuilds the
    Source in Python code, during which the event loop gets the GIL every few milliseconds.
    """

    source: Source
    """The Source without its recipients (their duplicates count kept)."""
    valid_rows: array[int]
    valid: bytes
    """Per valid recipient: its phone, then its fields' values in column order."""
    valid_ends: array[int]
    invalid_rows: array[int]
    invalid: bytes
    """Per invalid row: its value, then the PhoneError value."""
    invalid_ends: array[int]

    @classmethod
    def pack(cls, source: Source) -> PackedSource:
        recipients = source.recipients
        valid, valid_ends = _pack_rows([r.phone, *r.fields.values()] for r in recipients.valid)
        invalid, invalid_ends = _pack_rows([r.value, r.reason.value] for r in recipients.invalid)
        return cls(
            source=dataclasses.replace(
                source, recipients=Recipients(duplicates=recipients.duplicates)
            ),
            valid_rows=array("q", (r.row_no for r in recipients.valid)),
            valid=valid,
            valid_ends=valid_ends,
            invalid_rows=array("q", (r.row_no for r in recipients.invalid)),
            invalid=invalid,
            invalid_ends=invalid_ends,
        )

    def unpack(self) -> Source:
        """Blocking (about a second for the largest list): run it through asyncio.to_thread."""
        columns = self.source.columns
        valid = [
            Recipient(row_no, phone, dict(zip(columns, cells, strict=True)))
            for row_no, (phone, *cells) in zip(
                self.valid_rows, _unpack_rows(self.valid, self.valid_ends), strict=True
            )
        ]
        invalid = [
            InvalidRow(row_no, value, PhoneError(reason))
            for row_no, (value, reason) in zip(
                self.invalid_rows, _unpack_rows(self.invalid, self.invalid_ends), strict=True
            )
        ]
        recipients = Recipients(valid, invalid, self.source.recipients.duplicates)
        return dataclasses.replace(self.source, recipients=recipients)


def _pack_rows(rows: Iterable[list[str]]) -> tuple[bytes, array[int]]:
    ends: array[int] = array("q")
    packed = bytearray()
    for row in rows:
        packed += NEVER_IN_CELL.join(row).encode()
        ends.append(len(packed))
    return bytes(packed), ends


def _unpack_rows(packed: bytes, ends: array[int]) -> Iterator[list[str]]:
    start = 0
    for end in ends:
        yield packed[start:end].decode().split(NEVER_IN_CELL)
        start = end


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


class SharedLists(Protocol):
    """Lists kept where every replica reads them (services.shared_stores.RedisLists)."""

    async def save(self, user_id: int, packed: PackedSource) -> None: ...

    async def load(self, user_id: int, key: str) -> PackedSource | None: ...


class SourceCache:
    """Parsed lists between the steps of the dialog, one per user, within a byte budget.

    Counting lists is not enough: eight lists of 50,000 rows with wide rows hold gigabytes.
    Past the budget the least recently used lists go; their owners are told to send the file
    again (see evicted) rather than have it read again behind their back, which would bring
    the memory back under the same pressure.

    With replicas, `shared` holds each list too (packed, an hour, within its own budget): the
    next step may come to another replica, which takes it from there (handlers/bulk/lists.py).
    A list is found by its content's hash (FSM data keeps it), so a copy here or there is
    never another list than the dialog's, whichever replica changed the dialog last.
    """

    def __init__(self, budget: int, shared: SharedLists | None = None) -> None:
        self.shared = shared
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
    reason: str  # a PhoneError value, EMPTY_TEXT, LONG_TEXT or STOPPED
    parts: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    rows: list[tuple[int, str, str, int]]  # row_no, phone, message, parts: BulkRepo.create_job
    skipped: list[Skipped]
    duplicates: int
    parts_total: int
    stopped: list[tuple[int, str]] = field(default_factory=list)
    """(row_no, phone) left out for the stop list; they are among `skipped` too."""
    shapes: dict[tuple[str, int], int] = field(default_factory=dict)
    """Rows to send per (encoding, parts): "GSM-7: 120 rows × 1 part"."""
    abroad: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Rows to numbers outside Uzbekistan per ISO region ("" when the number names none):
    (rows, parts). The gateway prices them by country (services/pricing.list_cost)."""

    @property
    def abroad_rows(self) -> int:
        return sum(rows for rows, _parts in self.abroad.values())

    @property
    def local_parts(self) -> int:
        """Parts to numbers in Uzbekistan, priced at sms_price."""
        return self.parts_total - sum(parts for _rows, parts in self.abroad.values())


async def make_plan(
    source: Source, template: str, max_parts: int, *, stoplist: StopList, user_id: int
) -> Plan:
    """The plan of a bulk send for `user_id`, without the numbers on their stop list. Start
    builds it again, so a number stopped after the dry run is left out of the job too."""
    phones = [recipient.phone for recipient in source.recipients.valid]
    stopped = await stoplist.stopped_among(user_id, phones)
    return await asyncio.to_thread(build_plan, source, template, max_parts, stopped=stopped)


async def make_plans(
    source: Source, template: str, max_parts: int, *, stoplist: StopList, user_id: int
) -> tuple[Plan, Plan | None]:
    """make_plan, and the plan with the cheaper spelling when that saves parts
    (plan_with_cheaper)."""
    phones = [recipient.phone for recipient in source.recipients.valid]
    stopped = await stoplist.stopped_among(user_id, phones)
    return await asyncio.to_thread(plan_with_cheaper, source, template, max_parts, stopped=stopped)


def build_plan(source: Source, template: str, max_parts: int, *, stopped: Collection[str]) -> Plan:
    """Renders every row; a row whose number is in `stopped` (the stop list: see make_plan) or
    whose text is empty or too long is skipped, with the reason. Blocking for big lists: run
    it through asyncio.to_thread."""
    render_row = make_renderer(template, source.columns)
    rows: list[tuple[int, str, str, int]] = []
    skipped = [Skipped(r.row_no, r.value, r.reason.value) for r in source.recipients.invalid]
    left_out: list[tuple[int, str]] = []
    parts_total = 0
    counted: dict[str, SmsCount | TooManyParts] = {}  # rows often render the same text
    shapes: Counter[tuple[str, int]] = Counter()
    abroad: dict[str, tuple[int, int]] = {}
    for recipient in source.recipients.valid:
        if recipient.phone in stopped:
            typed = recipient.fields.get(source.phone_column, recipient.phone)  # as in the file
            skipped.append(Skipped(recipient.row_no, typed, STOPPED))
            left_out.append((recipient.row_no, recipient.phone))
            continue
        text = render_row(recipient.fields).strip()
        if not text:
            skipped.append(Skipped(recipient.row_no, recipient.phone, EMPTY_TEXT))
            continue
        shape = counted.get(text)
        if shape is None:
            try:
                shape = check_parts(text, max_parts)
            except TooManyParts as exc:
                shape = exc
            counted[text] = shape
        if isinstance(shape, TooManyParts):
            skipped.append(Skipped(recipient.row_no, recipient.phone, LONG_TEXT, shape.parts))
            continue
        parts = shape.parts
        rows.append((recipient.row_no, recipient.phone, text, parts))
        parts_total += parts
        shapes[shape.encoding, parts] += 1
        if is_foreign(recipient.phone):
            region = foreign_region(recipient.phone) or ""
            had_rows, had_parts = abroad.get(region, (0, 0))
            abroad[region] = (had_rows + 1, had_parts + parts)
    skipped.sort(key=lambda s: s.row_no)
    return Plan(
        rows, skipped, source.recipients.duplicates, parts_total, left_out, dict(shapes), abroad
    )


def plan_with_cheaper(
    source: Source, template: str, max_parts: int, *, stopped: Collection[str]
) -> tuple[Plan, Plan | None]:
    """The plan, and the plan with the template's cheaper spelling (services/sms_parts) when
    that saves parts across the list without leaving out a row more. Blocking, as build_plan."""
    plan = build_plan(source, template, max_parts, stopped=stopped)
    alternative = cheaper_spelling(template)
    if alternative is None:
        return plan, None
    cheaper = build_plan(source, alternative, max_parts, stopped=stopped)
    if cheaper.parts_total >= plan.parts_total or len(cheaper.rows) < len(plan.rows):
        return plan, None
    return plan, cheaper
