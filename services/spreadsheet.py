"""Recipient lists from CSV, XLSX or pasted text, and result files back out.

openpyxl is imported where a sheet is read or written, not with this module: it imports
numpy when numpy is installed (matplotlib brings it, for the charts), and the bot's start-up
and idle memory should not pay for either.
Synchronous and CPU-bound on purpose: the bot reads uploads in its upload worker (a process
with memory and time limits, services.upload_worker) and writes files through
``asyncio.to_thread``.
No user-facing text: handlers translate ``SpreadsheetError.kind`` and ``PhoneError``.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import logging
import re
import struct
import zipfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar, Final, Literal

from services.phones import InvalidPhone, PhoneError, PhoneNumber, normalize_phone
from services.templating import field_key

logger = logging.getLogger(__name__)

TableFormat = Literal["csv", "xlsx", "text"]
ResultFormat = Literal["csv", "xlsx"]
ErrorKind = Literal[
    "empty", "corrupt", "format", "encoding", "too_many_rows", "too_large", "timeout"
]

MAX_ROWS: Final = 50_000
# Columns past this are dropped. Every recipient keeps a
# dict of its row, so a 16384-column sheet would cost gigabytes; real lists have a handful.
MAX_COLUMNS: Final = 64
# A list past this many cells (data rows × columns) is refused as too large. The bot keeps a
# parsed list as a dict per row: 50,000 rows × 64 columns would be about 250 MB in the bot
# (more than the whole BULK_CACHE_MB of 256) and a quarter of a second of the event loop just
# to free it; a list of numbers with a name and a few fields never comes near this.
MAX_CELLS: Final = 1_000_000
# Header names are clipped to this many characters: a name is shown in replies and typed
# back as a {placeholder}, and a 5,000-character header would overflow a Telegram message.
MAX_COLUMN_NAME: Final = 60

# An XLSX is a zip archive, and a zip can be a bomb: 1 MB that inflates to gigabytes, or
# 100,000 empty entries. Its central directory is checked against these before openpyxl
# opens anything; zipfile never inflates an entry past the size it declares there.
# A real list has about ten entries, a 50,000-row sheet some tens of MB at a ratio near 15.
ARCHIVE_MAX_ENTRIES: Final = 1_000
ARCHIVE_MAX_ENTRY_BYTES: Final = 128 * 1024 * 1024
ARCHIVE_MAX_TOTAL_BYTES: Final = 256 * 1024 * 1024
ARCHIVE_MAX_RATIO: Final = 100
# Small entries may compress far better than that (a run of empty cells) and cost nothing.
_RATIO_FROM_BYTES: Final = 1024 * 1024
_EOCD_MAGIC: Final = b"PK\x05\x06"
# The end-of-central-directory record (22 bytes) plus the longest archive comment.
_EOCD_SEARCH: Final = 22 + 0xFFFF

_CSV_EXTENSIONS: Final[frozenset[str]] = frozenset({".csv", ".tsv"})
_TEXT_EXTENSIONS: Final[frozenset[str]] = frozenset({"", ".txt"})
_XLSX_EXTENSIONS: Final[frozenset[str]] = frozenset({".xlsx", ".xlsm"})
_ZIP_MAGIC: Final = b"PK\x03\x04"
# Legacy .xls (and anything else in an OLE2 container); openpyxl cannot read it.
_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Removed from every cell, header names included, so that it can join the cells of a row into
# one string (services.bulk_plan.PackedSource). A NUL means nothing in a list of numbers.
NEVER_IN_CELL: Final = "\x00"

_DELIMITERS: Final = ",;\t"
# Never occurs in text people type; lets a one-column file go through the csv reader for its
# quote handling without splitting anything.
_NO_DELIMITER: Final = "\x1f"
_SNIFF_LINES: Final = 50
# csv.Sniffer's regular expressions get slow on long samples; 50 ordinary lines fit easily.
_SNIFF_CHARS: Final = 8192

# Invisible characters that ride along with numbers copied from web pages and messengers.
_INVISIBLE: Final = (
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
# A number kept as text the way spreadsheet users force it: '998901234567 or ="998901234567".
_NUMBER_AS_TEXT: Final = re.compile(r"'([+\d][\d\s().\-]*)|=\"([+\d][\d\s().\-]*)\"")
_NUMBER_CHARS: Final[frozenset[str]] = frozenset("0123456789+-()., /\t")
# Excel shows 15 significant digits; a phone number never needs more.
_EXACT_FLOAT_LIMIT: Final = 10**15

# Header names of the phone column, compared after _header_key().
PHONE_HEADERS: Final[frozenset[str]] = frozenset(
    {
        # English
        "phone", "phones", "phone number", "phone no", "phonenumber", "telephone", "tel",
        "mobile", "mobile phone", "mobile number", "mob", "cell", "cell phone", "cellphone",
        "number", "msisdn", "contact", "recipient",
        # Uzbek (Latin and Cyrillic)
        "telefon", "telefon raqami", "telefon raqam", "tel raqam", "tel raqami", "raqam",
        "raqami", "raqamlar", "mobil", "mobil raqam", "mobil telefon", "nomer", "nomeri",
        "telefon nomer", "telefon nomeri", "телефон рақами", "рақам", "рақами",
        # Russian
        "телефон", "номер", "номер телефона", "тел", "моб", "мобильный",
        "мобильный телефон", "сотовый", "сотовый телефон", "контакт",
    }
)  # fmt: skip
_HEADER_PUNCTUATION: Final = str.maketrans(dict.fromkeys("_-.:*#№'\"", " "))
_CONTENT_SAMPLE: Final = 50
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
# What the bot itself writes into its own columns: a normalised phone or an id.
_OWN_VALUE: Final = re.compile(r"\+?[0-9]{1,32}")


class SpreadsheetError(Exception):
    kind: ClassVar[ErrorKind]


class EmptyFile(SpreadsheetError):
    """No data rows: an empty file, blank lines only, or a header alone."""

    kind = "empty"


class CorruptFile(SpreadsheetError):
    kind = "corrupt"


class UnsupportedFormat(SpreadsheetError):
    kind = "format"

    def __init__(self, extension: str) -> None:
        super().__init__(extension)
        self.extension = extension
        """".xls", ".ods", ".pdf", ...: handlers can suggest saving as .xlsx or .csv."""

    def __reduce__(self) -> tuple[type[UnsupportedFormat], tuple[str]]:
        return type(self), (self.extension,)


class UnknownEncoding(SpreadsheetError):
    """Text that is neither UTF-8/UTF-16 nor Windows-1251."""

    kind = "encoding"


class TooManyRows(SpreadsheetError):
    kind = "too_many_rows"

    def __init__(self, limit: int, found_at_least: int) -> None:
        super().__init__(f"more than {limit} rows (at least {found_at_least})")
        self.limit = limit
        self.found_at_least = found_at_least

    def __reduce__(self) -> tuple[type[TooManyRows], tuple[int, int]]:
        # Raised in the parsing process and unpickled in the bot's.
        return type(self), (self.limit, self.found_at_least)


class TooLarge(SpreadsheetError):
    """An archive over the limits above, or a parse that ran out of its memory limit."""

    kind = "too_large"


class TooSlow(SpreadsheetError):
    """A parse that ran past its time limit (and was stopped)."""

    kind = "timeout"


@dataclass(frozen=True, slots=True)
class Table:
    columns: list[str]
    """Header names, or the spreadsheet letters "A", "B", ... when there is no header."""
    rows: list[list[str]]
    """Data rows, each exactly len(columns) clean strings; fully empty rows are left out."""
    row_numbers: list[int]
    """1-based line (CSV) or row (XLSX) number in the file of each of rows, for messages."""
    format: TableFormat
    has_header: bool


@dataclass(frozen=True, slots=True)
class Recipient:
    row_no: int
    phone: str
    """Normalized: country code first, digits only."""
    fields: dict[str, str]
    """Column name -> cell, for the template."""


@dataclass(frozen=True, slots=True)
class InvalidRow:
    row_no: int
    value: str
    reason: PhoneError
    """PhoneError.EMPTY when the phone cell is blank."""


@dataclass(slots=True)
class Recipients:
    valid: list[Recipient] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    duplicates: int = 0
    """Rows dropped because an earlier row has the same normalized number."""


# --- reading ---------------------------------------------------------------------------------


def read_table(data: bytes, file_name: str, *, max_rows: int = MAX_ROWS) -> Table:
    """Parse an uploaded file into a table; raise a SpreadsheetError subclass if it cannot be.

    A file that is really an XLSX under a .csv/.txt name is read as XLSX (renamed files are
    common); a legacy .xls is refused as "format" whatever its name.
    """
    fmt = _detect_format(data, file_name)
    if fmt == "xlsx":
        return _read_xlsx(data, max_rows)
    text = _decode(data)
    if "\x00" in text:
        # A binary file under a text name, or UTF-16 without its BOM.
        raise CorruptFile("NUL in text")
    delimiter = _detect_delimiter(text)
    records = _csv_records(text, delimiter)
    rows, header, leftover = _collect(records, max_rows, fmt != "text")
    if leftover is not None:
        # Rows past the limit cost almost nothing to count here, and the exact figure lets
        # the user see how much to cut.
        found = len(rows) + sum(1 for _ in leftover)
        raise TooManyRows(max_rows, found)
    return _build_table(rows, header, fmt)


def _detect_format(data: bytes, file_name: str) -> TableFormat:
    extension = PurePosixPath(file_name.strip().lower()).suffix
    known = _CSV_EXTENSIONS | _TEXT_EXTENSIONS | _XLSX_EXTENSIONS
    if extension not in known or data.startswith(_OLE2_MAGIC):
        raise UnsupportedFormat(".xls" if data.startswith(_OLE2_MAGIC) else extension)
    if data.startswith(_ZIP_MAGIC):
        return "xlsx"
    if extension in _XLSX_EXTENSIONS:
        if not data.strip():
            raise EmptyFile("empty file")
        raise CorruptFile("not a zip archive")
    return "csv" if extension in _CSV_EXTENSIONS else "text"


def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode Text" export.
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise UnknownEncoding("bad utf-16") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Russian-locale Excel saves CSV in Windows-1251. It decodes almost any byte string, so
    # it is the last resort; only 0x98 is undefined in it.
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError:
        raise UnknownEncoding("neither utf-8 nor cp1251") from None


def _detect_delimiter(text: str) -> str | None:
    # newline="": a file from old Mac software ends its lines with a bare "\r".
    head = itertools.islice(io.StringIO(text, newline=""), _SNIFF_LINES * 2)
    lines = [line for line in head if line.strip()][:_SNIFF_LINES]
    if not lines:
        return None
    counts = {d: sum(1 for line in lines if d in line) for d in _DELIMITERS}
    try:
        sample = "".join(lines)[:_SNIFF_CHARS]
        sniffed: str | None = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    # The Sniffer picks a delimiter from a single odd line too; only trust it when it splits
    # at least half the lines. Only its delimiter is used: its quote-character guess turns
    # "'998..." cells into quoted fields.
    if sniffed in counts and counts[sniffed] * 2 >= len(lines):
        return sniffed
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else None


def _csv_records(text: str, delimiter: str | None) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each record; multi-line quoted fields count once."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or _NO_DELIMITER)
    line = 1
    try:
        for record in reader:
            yield line, [_clean_text(cell) for cell in record]
            line = reader.line_num + 1
    except csv.Error as exc:
        # A field past csv.field_size_limit(): an unclosed quote swallowing the file.
        raise CorruptFile(str(exc)) from None


def _collect(
    records: Iterator[tuple[int, list[str]]], max_rows: int, detect_header: bool
) -> tuple[list[tuple[int, list[str]]], list[str] | None, Iterator[object] | None]:
    """Take non-empty records up to the limit: (rows, header, leftover).

    leftover is the rest of the non-empty records when there are more than max_rows.
    """
    non_empty = ((no, cells) for no, cells in records if any(cells))
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    first = next(non_empty, None)
    if first is None:
        raise EmptyFile("no rows")
    if detect_header and _looks_like_header(first[1]):
        header = first[1]
    else:
        rows.append(first)
    for record in non_empty:
        if len(rows) == max_rows:
            return rows, header, itertools.chain([record], non_empty)
        rows.append(record)
    return rows, header, None


def _build_table(
    records: list[tuple[int, list[str]]],
    header: list[str] | None,
    fmt: TableFormat,
) -> Table:
    if not records:
        raise EmptyFile("header only")
    rows: list[list[str]] = []
    numbers: list[int] = []
    width = 0
    for row_no, cells in records:
        del cells[MAX_COLUMNS:]
        while cells and not cells[-1]:
            cells.pop()
        width = max(width, len(cells))
        rows.append(cells)
        numbers.append(row_no)
    if header is not None:
        del header[MAX_COLUMNS:]
        while header and not header[-1]:
            header.pop()
        width = max(width, len(header))
    if len(rows) * width > MAX_CELLS:
        raise TooLarge(f"{len(rows)} rows × {width} columns")
    for cells in rows:
        if len(cells) < width:
            cells.extend([""] * (width - len(cells)))
    return Table(
        columns=_column_names(header or [], width),
        rows=rows,
        row_numbers=numbers,
        format=fmt,
        has_header=header is not None,
    )


def _column_names(header: Sequence[str], width: int) -> list[str]:
    """Header names made unique (as templates compare them) and usable as placeholders."""
    from openpyxl.utils import get_column_letter

    names: list[str] = []
    taken: set[str] = set()
    for index in range(width):
        letter = get_column_letter(index + 1)
        # Braces cannot be written inside a placeholder; people do head a column "{name}".
        written = header[index] if index < len(header) else ""
        written = written.replace("{", "").replace("}", "")
        written = " ".join(written.split())[:MAX_COLUMN_NAME].strip()
        candidates = [written, f"{written} ({letter})"] if written else []
        candidates += [letter, *(f"{letter} {n}" for n in range(2, width + 3))]
        name = next(c for c in candidates if field_key(c) not in taken)
        taken.add(field_key(name))
        names.append(name)
    return names


def check_archive(data: bytes) -> None:
    """Refuse a zip whose entries are too many, too big or too compressed (a zip bomb).

    Only the central directory is read: the entry count from its end record first, so
    100,000 entries are refused before zipfile builds an object for each.
    """
    end = data.rfind(_EOCD_MAGIC, max(0, len(data) - _EOCD_SEARCH))
    if end < 0 or len(data) < end + 22:
        raise CorruptFile("no end of central directory")
    # 0xFFFF means "see the zip64 record": more entries than any limit here.
    (entries,) = struct.unpack_from("<H", data, end + 10)
    if entries > ARCHIVE_MAX_ENTRIES:
        raise TooLarge(f"{entries} archive entries")
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except Exception as exc:
        # zipfile raises BadZipFile, but also ValueError, OverflowError, struct.error.
        raise CorruptFile(type(exc).__name__) from None
    if len(infos) > ARCHIVE_MAX_ENTRIES:
        raise TooLarge(f"{len(infos)} archive entries")
    total = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    if total > ARCHIVE_MAX_TOTAL_BYTES or (
        total > _RATIO_FROM_BYTES and total > max(packed, 1) * ARCHIVE_MAX_RATIO
    ):
        raise TooLarge(f"{total} bytes unpacked from {packed}")
    for info in infos:
        size = info.file_size
        if size > ARCHIVE_MAX_ENTRY_BYTES or (
            size > _RATIO_FROM_BYTES and size > max(info.compress_size, 1) * ARCHIVE_MAX_RATIO
        ):
            raise TooLarge(f"entry of {size} bytes from {info.compress_size}")


def _read_xlsx(data: bytes, max_rows: int) -> Table:
    check_archive(data)
    try:
        from openpyxl import load_workbook

        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        # openpyxl lets zipfile, XML, KeyError, ValueError and TypeError escape from broken
        # archives; to the user they all mean the same thing.
        logger.info("Unreadable xlsx: %r", exc)
        raise CorruptFile(type(exc).__name__) from None
    try:
        sheets = workbook.worksheets
        if not sheets:
            raise EmptyFile("no worksheets")
        sheet = sheets[0]
        # The declared size is often wrong: too small drops rows, "A1:XFD1048576" pads every
        # row to 16384 cells. Without it rows are as wide as their last cell.
        sheet.reset_dimensions()
        records = (
            (row_no, _xlsx_record(values))
            for row_no, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        )
        rows, header, leftover = _collect(records, max_rows, detect_header=True)
    except SpreadsheetError:
        raise
    except Exception as exc:
        # Sheets are parsed lazily, so a broken sheet XML only shows up while iterating.
        logger.info("Unreadable xlsx sheet: %r", exc)
        raise CorruptFile(type(exc).__name__) from None
    finally:
        workbook.close()
    if leftover is not None:
        # Unlike CSV, counting the rest means parsing it; "more than the limit" is enough.
        raise TooManyRows(max_rows, len(rows) + 1)
    return _build_table(rows, header, "xlsx")


def _xlsx_record(values: Sequence[object]) -> list[str]:
    cells = [_excel_cell(value) for value in values[:MAX_COLUMNS]]
    if len(values) > MAX_COLUMNS and any(v is not None and v != "" for v in values[MAX_COLUMNS:]):
        # Stands for the dropped cells so that _build_table flags the truncation without
        # converting thousands of cells it will throw away.
        cells.append("...")
    return cells


def _excel_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Excel keeps every number as a float: 998901234567 arrives as 998901234567.0 and
        # is displayed as 9.98901E+11; the user meant the digits.
        if value.is_integer() and abs(value) < _EXACT_FLOAT_LIMIT:
            return str(int(value))
        return f"{value:.15g}"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return _clean_text(str(value))


def _clean_text(cell: str) -> str:
    if NEVER_IN_CELL in cell:
        # A CSV with a NUL is refused as corrupt, and XML cannot hold one; this keeps the
        # promise of NEVER_IN_CELL whatever openpyxl lets through.
        cell = cell.replace(NEVER_IN_CELL, "")
    text = cell.strip().strip(_INVISIBLE).strip()
    if text[:1] in ("'", "="):
        match = _NUMBER_AS_TEXT.fullmatch(text)
        if match:
            return (match.group(1) or match.group(2)).strip()
    return text


def _is_phone(cell: str) -> bool:
    try:
        normalize_phone(cell)
    except InvalidPhone:
        return False
    return True


def _looks_like_header(cells: Sequence[str]) -> bool:
    filled = [cell for cell in cells if cell]
    if any(_is_phone(cell) for cell in filled):
        return False
    return any(not set(cell) <= _NUMBER_CHARS for cell in filled)


# --- the phone column ------------------------------------------------------------------------


def _header_key(name: str) -> str:
    return " ".join(name.translate(_HEADER_PUNCTUATION).split()).casefold()


def find_phone_column(table: Table) -> int | None:
    """Index of the phone column: by header name, else where most sample cells are phones.

    A named column whose cells are mostly not phones ("Number" holding order numbers) loses
    to one that is full of phones; it is still returned when no column is, so the user gets
    a list of invalid rows rather than "no phone column".
    """
    named = (
        [i for i, name in enumerate(table.columns) if _header_key(name) in PHONE_HEADERS]
        if table.has_header
        else []
    )
    scores = [_phone_share(table, i) for i in range(len(table.columns))]
    for index in named:
        if scores[index] > 0.5:
            return index
    if scores:
        best = max(range(len(scores)), key=lambda i: scores[i])
        if scores[best] > 0.5:
            return best
    return named[0] if named else None


def _phone_share(table: Table, column: int) -> float:
    sample = list(
        itertools.islice((row[column] for row in table.rows if row[column]), _CONTENT_SAMPLE)
    )
    if not sample:
        return 0.0
    return sum(1 for cell in sample if _is_phone(cell)) / len(sample)


def prepare_recipients(table: Table, phone_column: int) -> Recipients:
    """Normalize the phone column: valid rows in file order without repeats, and the rest."""
    if not 0 <= phone_column < len(table.columns):
        raise IndexError(f"phone column {phone_column} of {len(table.columns)}")
    result = Recipients()
    seen: set[str] = set()
    # The same spelling repeats in real lists (pasted twice, exported with duplicates);
    # normalize_phone is the expensive step, so each spelling is parsed once.
    parsed: dict[str, PhoneNumber | PhoneError] = {}
    columns = table.columns
    for row_no, row in zip(table.row_numbers, table.rows, strict=True):
        raw = row[phone_column]
        outcome = parsed.get(raw)
        if outcome is None:
            try:
                outcome = normalize_phone(raw)
            except InvalidPhone as exc:
                outcome = exc.reason
            parsed[raw] = outcome
        if isinstance(outcome, PhoneError):
            result.invalid.append(InvalidRow(row_no, raw, outcome))
        elif outcome.digits in seen:
            result.duplicates += 1
        else:
            seen.add(outcome.digits)
            result.valid.append(
                Recipient(row_no, outcome.digits, dict(zip(columns, row, strict=True)))
            )
    return result


# --- writing ---------------------------------------------------------------------------------


def write_result(
    fmt: ResultFormat,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    own_columns: Collection[int] = (),
) -> bytes:
    """A result file: CSV (UTF-8 with BOM, comma) or XLSX, header row first.

    Text that a spreadsheet would run as a formula is neutralised in both formats (see
    neutralise). own_columns are those the bot fills itself in its normalised form (a phone
    as digits with an optional "+"): such a value is kept as it is, since digits cannot
    carry a formula and XLSX gets it as a text cell; anything else in them is neutralised.
    """
    own = frozenset(own_columns)
    if fmt == "csv":
        return _write_csv(header, rows, own)
    if fmt == "xlsx":
        return _write_xlsx(header, rows, own)
    raise ValueError(f"unknown result format {fmt!r}")


def neutralise(text: str) -> str:
    """Text as a spreadsheet shows it, never as a formula it runs.

    Excel, LibreOffice and Google Sheets treat a cell starting with = + - @ as a formula
    (and some drop a leading tab or CR first), so a name like =HYPERLINK(...) in a user's
    list would run when the result file is opened. The usual fix is a leading apostrophe
    (https://owasp.org/www-community/attacks/CSV_Injection).
    """
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _text_cell(value: object, own: bool) -> str:
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
    else:
        text = str(value)
    if own and _OWN_VALUE.fullmatch(text):
        return text
    return neutralise(text)


def _csv_value(value: object, own: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)  # a number, never a formula, even with its minus sign
    return _text_cell(value, own)


def _write_csv(
    header: Sequence[str], rows: Iterable[Sequence[object]], own: frozenset[int]
) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([_csv_value(v, False) for v in header])
    writer.writerows([_csv_value(v, i in own) for i, v in enumerate(row)] for row in rows)
    # Excel only takes a CSV as UTF-8 when it starts with a BOM; otherwise Cyrillic turns
    # into mojibake in the Windows code page.
    return buffer.getvalue().encode("utf-8-sig")


def _write_xlsx(
    header: Sequence[str], rows: Iterable[Sequence[object]], own: frozenset[int]
) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append([_xlsx_value(sheet, v, False) for v in header])
    for row in rows:
        sheet.append([_xlsx_value(sheet, v, i in own) for i, v in enumerate(row)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _xlsx_value(sheet: Any, value: object, own: bool) -> object:
    if value is None or isinstance(value, int | float | dt.date | dt.time):
        return value
    # openpyxl stores any string starting with "=" as a formula: every text is typed as a
    # string explicitly, so nothing in the file is a formula.
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", _text_cell(value, own)))
    cell.data_type = "s"
    return cell


def csv_cell(value: object, *, own: bool = False) -> str:
    """One value as write_result puts it into a CSV cell (numbers as numbers, text
    neutralised); for writers that stream rows themselves (services.export)."""
    return _csv_value(value, own)


def xlsx_cell(sheet: Any, value: object, *, own: bool = False) -> object:
    """One value as write_result puts it into a write-only XLSX sheet (text typed as text)."""
    return _xlsx_value(sheet, value, own)
