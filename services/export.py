"""/export: a period typed or picked in the user's zone, and its SMS written as CSV or XLSX.

Pure and synchronous: the handler feeds rows in batches through ``asyncio.to_thread``, so the
writing never runs on the event loop, and the files grow on disk (CSV row by row, XLSX through
openpyxl's write-only mode), never as one string in memory. A file that would pass `max_bytes`
(Telegram takes documents up to 50 MB from bots) is closed and the next rows go to a new,
numbered part. No user-facing text here: the handler passes the translated headers.
Text cells are neutralised as in the bulk result files (services.spreadsheet.neutralise).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from services.spreadsheet import csv_cell, xlsx_cell

ExportFormat = Literal["csv", "xlsx"]

MAX_RANGE_DAYS: Final = 366
TELEGRAM_FILE_LIMIT: Final = 50 * 1024 * 1024
# Room left under the limit for what the estimate of an XLSX part does not see (the zip's
# directory, styles, the summary sheet); CSV parts are measured exactly.
_XLSX_MARGIN: Final = 64 * 1024
# About what a cell adds beside its text in the sheet's XML (openpyxl writes text inline:
# <c r="A1" t="inlineStr"><is><t>..</t></is></c>). The estimate counts the XML before
# compression, and zip makes the file several times smaller, so a part stays under the limit.
_XLSX_CELL_OVERHEAD: Final = 40
_PHONE_COLUMN: Final = 1

# "2026-11-01", "01.11.2026" or "1/11/2026"; two of them, split by spaces, a dash or "..".
_DATE: Final = r"(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{4})"
_RANGE: Final = re.compile(rf"{_DATE}(?:\s*(?:\.\.|[-–—]|\s)\s*{_DATE})?")


class RangeProblem(StrEnum):
    MALFORMED = "malformed"
    BACKWARDS = "backwards"
    TOO_LONG = "too_long"
    FUTURE = "future"


class InvalidRange(ValueError):
    def __init__(self, problem: RangeProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in the user's zone, `first` and `last` included."""

    first: dt.date
    last: dt.date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) in UTC: the first day's midnight to the midnight after the last day,
        as the user's clock shows them."""
        start = dt.datetime.combine(self.first, dt.time(), tzinfo=zone)
        end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), tzinfo=zone)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)

    def stem(self) -> str:
        """The files' name without extension: sms-2026-11-01_2026-11-30."""
        return f"sms-{self.first.isoformat()}_{self.last.isoformat()}"


def this_month(today: dt.date) -> Period:
    return Period(today.replace(day=1), today)


def last_month(today: dt.date) -> Period:
    last = today.replace(day=1) - dt.timedelta(days=1)
    return Period(last.replace(day=1), last)


def parse_range(text: str, today: dt.date) -> Period:
    """A typed period: "2026-11-01 2026-11-30" (also with a dash or "..", or as 01.11.2026);
    one date alone is that day. A period ending after `today` ends today.

    Raises InvalidRange: MALFORMED (not two dates, or no such day), BACKWARDS (the end before
    the start), FUTURE (starts after today), TOO_LONG (more than MAX_RANGE_DAYS days).
    """
    # Bounded before the regular expression sees it: a period is never a long text.
    match = _RANGE.fullmatch(text.strip()[:64])
    if match is None:
        raise InvalidRange(RangeProblem.MALFORMED)
    first = _date(match.group(1))
    last = _date(match.group(2)) if match.group(2) else first
    if last < first:
        raise InvalidRange(RangeProblem.BACKWARDS)
    if first > today:
        raise InvalidRange(RangeProblem.FUTURE)
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidRange(RangeProblem.TOO_LONG)
    return Period(first, min(last, today))


def _date(text: str) -> dt.date:
    try:
        if "-" in text:
            year, month, day = (int(p) for p in text.split("-"))
        else:
            day, month, year = (int(p) for p in re.split(r"[./]", text))
        return dt.date(year, month, day)
    except ValueError:
        raise InvalidRange(RangeProblem.MALFORMED) from None


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One SMS of the account as the export shows it."""

    sent_at: dt.datetime | None
    """Aware; shown in the user's zone."""
    phone: str | None
    text: str | None
    parts: int | None
    cost: Decimal | None
    status: str | None
    from_bot: bool
    job: str | None = None
    template: str | None = None


@dataclass(frozen=True, slots=True)
class ExportTexts:
    """The translated words of the files: column names and the "sent from" values."""

    columns: tuple[str, ...]
    """Time, phone, text, parts, cost, status, sent from, job, template (in that order)."""
    from_bot: str
    elsewhere: str


def cells(row: ExportRow, zone: ZoneInfo, texts: ExportTexts) -> list[object]:
    """The row's cells in the order of ExportTexts.columns; time as the user's wall clock."""
    local = (
        row.sent_at.astimezone(zone).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
        if row.sent_at is not None
        else None
    )
    return [
        local,
        row.phone,
        row.text,
        row.parts,
        _number(row.cost),
        row.status,
        texts.from_bot if row.from_bot else texts.elsewhere,
        row.job,
        row.template,
    ]


def _number(value: Decimal | None) -> int | float | None:
    """Costs as numbers a spreadsheet can add up."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


class ExportWriter:
    """Rows in, files out: CSV (UTF-8 with BOM) or XLSX, each at most `max_bytes`.

    add() and close() do blocking file work: call them in a thread. With more than one part,
    the files are named <stem>-part1, -part2, ...; XLSX parts each get the summary sheet.
    """

    def __init__(
        self,
        fmt: ExportFormat,
        folder: Path,
        stem: str,
        header: Sequence[str],
        *,
        max_bytes: int = TELEGRAM_FILE_LIMIT,
        summary: Sequence[tuple[str, object]] = (),
        sheet_names: tuple[str, str] = ("SMS", "Summary"),
    ) -> None:
        if fmt not in ("csv", "xlsx"):
            raise ValueError(f"unknown export format {fmt!r}")
        self._fmt: ExportFormat = fmt
        self._folder = folder
        self._stem = stem
        self._header = list(header)
        self._max = max_bytes
        self._summary = list(summary)
        self._sheet_names = sheet_names
        self._parts: list[Path] = []
        self._rows = 0
        self._written = 0
        self._part_rows = 0
        self._csv: io.BufferedWriter | None = None
        self._book: Any = None
        self._sheet: Any = None

    @property
    def rows(self) -> int:
        return self._rows

    def add(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            if self._fmt == "csv":
                self._add_csv(row)
            else:
                self._add_xlsx(row)
            self._rows += 1

    def close(self) -> list[Path]:
        """Finishes the last part; the files in order. An export without rows is one file
        with the header only."""
        if not self._parts:
            self._open()
        self._finish()
        if len(self._parts) == 1:
            only = self._parts[0]
            named = only.with_name(f"{self._stem}.{self._fmt}")
            only.rename(named)
            self._parts = [named]
        return list(self._parts)

    # --- CSV: each row's bytes are known before it is written ---------------------------

    def _add_csv(self, row: Sequence[object]) -> None:
        data = _csv_line([csv_cell(v, own=i == _PHONE_COLUMN) for i, v in enumerate(row)])
        if self._csv is None or (self._part_rows and self._written + len(data) > self._max):
            self._finish()
            self._open()
        assert self._csv is not None
        self._csv.write(data)
        self._written += len(data)
        self._part_rows += 1

    # --- XLSX: the compressed size is known only when saved; a bound on it is kept -------

    def _add_xlsx(self, row: Sequence[object]) -> None:
        estimate = (
            sum(len(str(v).encode()) + _XLSX_CELL_OVERHEAD for v in row if v is not None)
            + _XLSX_CELL_OVERHEAD
        )
        limit = max(self._max - _XLSX_MARGIN, 1)
        if self._book is None or (self._part_rows and self._written + estimate > limit):
            self._finish()
            self._open()
        self._sheet.append([xlsx_cell(self._sheet, v, own=i == _PHONE_COLUMN) for i, v in
                            enumerate(row)])  # fmt: skip
        self._written += estimate
        self._part_rows += 1

    def _open(self) -> None:
        path = self._folder / f"{self._stem}-part{len(self._parts) + 1}.{self._fmt}"
        self._parts.append(path)
        self._part_rows = 0
        if self._fmt == "csv":
            self._csv = path.open("wb")
            # Excel only takes a CSV as UTF-8 when it starts with a BOM.
            header = "\ufeff".encode() + _csv_line([csv_cell(v) for v in self._header])
            self._csv.write(header)
            self._written = len(header)
            return
        from openpyxl import Workbook  # not at start-up: see services.spreadsheet

        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(self._sheet_names[0])
        self._sheet.append([xlsx_cell(self._sheet, v) for v in self._header])
        self._written = sum(len(v.encode()) + _XLSX_CELL_OVERHEAD for v in self._header)

    def _finish(self) -> None:
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._book is not None:
            summary = self._book.create_sheet(self._sheet_names[1])
            for label, value in self._summary:
                summary.append([xlsx_cell(summary, label), xlsx_cell(summary, value)])
            self._book.save(self._parts[-1])
            self._book = self._sheet = None


def _csv_line(values: list[str]) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode()


class ExportSlots:
    """How many exports are written at once: one more is refused, never queued (a queued
    export would hold its user's chat, and its files, behind the others')."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._users: set[int] = set()

    def take(self, user_id: int) -> bool:
        if len(self._users) >= self._limit or user_id in self._users:
            return False
        self._users.add(user_id)
        return True

    def release(self, user_id: int) -> None:
        self._users.discard(user_id)
