"""/export's pure parts: periods in the user's zone, rows, injection, splitting into parts."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from services.export import (
    ExportRow,
    ExportTexts,
    ExportWriter,
    InvalidRange,
    Period,
    RangeProblem,
    cells,
    last_month,
    parse_range,
    this_month,
)

TASHKENT = ZoneInfo("Asia/Tashkent")
TODAY = dt.date(2026, 12, 15)
TEXTS = ExportTexts(
    columns=("Time", "Phone", "Text", "Parts", "Cost", "Status", "Sent from", "Job", "Template"),
    from_bot="bot",
    elsewhere="elsewhere",
)


def row(i: int = 0, **fields: object) -> ExportRow:
    values: dict[str, object] = {
        "sent_at": dt.datetime(2026, 11, 30, 20, 30, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
        "phone": "998901234567",
        "text": f"Code {i}",
        "parts": 1,
        "cost": Decimal(50),
        "status": "DELIVERED",
        "from_bot": False,
    }
    values.update(fields)
    return ExportRow(**values)  # type: ignore[arg-type]


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize(
    ("typed", "first", "last"),
    [
        ("2026-11-01 2026-11-30", dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
        ("2026-11-01 - 2026-11-30", dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
        ("2026-11-01..2026-11-30", dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
        ("01.11.2026 30.11.2026", dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
        ("  2026-11-05  ", dt.date(2026, 11, 5), dt.date(2026, 11, 5)),
        # Ends after today: ends today.
        ("2026-12-01 2026-12-31", dt.date(2026, 12, 1), TODAY),
        ("2025-12-15 2026-12-15", dt.date(2025, 12, 15), TODAY),
    ],
)
def test_typed_periods(typed: str, first: dt.date, last: dt.date) -> None:
    assert parse_range(typed, TODAY) == Period(first, last)


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("november", RangeProblem.MALFORMED),
        ("2026-11-01 2026-11-31", RangeProblem.MALFORMED),
        ("2026-13-01 2026-12-01", RangeProblem.MALFORMED),
        ("2026-11-01 2026-11-30 2026-12-01", RangeProblem.MALFORMED),
        ("2026-11-01" * 1000, RangeProblem.MALFORMED),
        ("", RangeProblem.MALFORMED),
        ("2026-11-30 2026-11-01", RangeProblem.BACKWARDS),
        ("2025-11-01 2026-11-30", RangeProblem.TOO_LONG),
        ("2026-12-16 2026-12-20", RangeProblem.FUTURE),
    ],
)
def test_bad_periods_say_what_is_wrong(typed: str, problem: RangeProblem) -> None:
    with pytest.raises(InvalidRange) as caught:
        parse_range(typed, TODAY)
    assert caught.value.problem is problem


def test_this_and_last_month() -> None:
    assert this_month(TODAY) == Period(dt.date(2026, 12, 1), TODAY)
    assert last_month(TODAY) == Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert last_month(dt.date(2026, 1, 3)) == Period(dt.date(2025, 12, 1), dt.date(2025, 12, 31))


def test_period_bounds_are_the_users_midnights() -> None:
    start, end = Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30)).bounds(TASHKENT)
    assert start == dt.datetime(2026, 10, 31, 19, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 11, 30, 19, 0, tzinfo=dt.UTC)


def test_cells_show_the_time_on_the_users_clock() -> None:
    # 20:30 UTC on 30 Nov is 01:30 on 1 Dec in Tashkent (UTC+5) and 23:30 in Moscow.
    assert cells(row(), TASHKENT, TEXTS)[0] == "2026-12-01 01:30:00"
    assert cells(row(), ZoneInfo("Europe/Moscow"), TEXTS)[0] == "2026-11-30 23:30:00"
    full = cells(row(from_bot=True, job="#7 list.xlsx", template="Promo"), TASHKENT, TEXTS)
    assert full[1:] == ["998901234567", "Code 0", 1, 50, "DELIVERED", "bot", "#7 list.xlsx",
                        "Promo"]  # fmt: skip
    assert cells(row(cost=Decimal("0.005"), sent_at=None), TASHKENT, TEXTS)[4] == 0.005
    assert cells(row(cost=None, sent_at=None), TASHKENT, TEXTS)[0] is None


HOSTILE = ['=HYPERLINK("http://x")', "+1+2", "-3", "@SUM(A1)", "\t=1"]


def test_csv_neutralises_formulas_and_keeps_numbers(tmp_path: Path) -> None:
    writer = ExportWriter("csv", tmp_path, "sms", TEXTS.columns)
    rows = [row(i, text=text, phone=text if i == 0 else "+998901234567") for i, text in
            enumerate(HOSTILE)]  # fmt: skip
    writer.add(cells(r, TASHKENT, TEXTS) for r in rows)
    [path] = writer.close()
    assert path.name == "sms.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    header, *data = read_csv(path)
    assert header == list(TEXTS.columns)
    assert [r[2] for r in data] == ["'" + t for t in HOSTILE]
    # A phone from the gateway is the bot's own column only when it is digits.
    assert data[0][1] == "'" + HOSTILE[0] and data[1][1] == "+998901234567"
    assert data[0][4] == "50"


def test_xlsx_has_text_cells_only_and_a_summary_sheet(tmp_path: Path) -> None:
    summary = [("Period", "2026-11-01 – 2026-11-30"), ("SMS", 5), ("Spent", 250)]
    writer = ExportWriter(
        "xlsx", tmp_path, "sms", TEXTS.columns, summary=summary, sheet_names=("SMS", "Итого")
    )
    writer.add(cells(row(i, text=t), TASHKENT, TEXTS) for i, t in enumerate(HOSTILE))
    [path] = writer.close()
    book = load_workbook(path)
    assert book.sheetnames == ["SMS", "Итого"]
    sheet = book["SMS"]
    texts = [sheet.cell(row=r, column=3) for r in range(2, 7)]
    assert [c.value for c in texts] == ["'" + t for t in HOSTILE]
    assert all(c.data_type == "s" for c in texts)
    assert sheet.cell(row=2, column=5).value == 50
    assert [[c.value for c in r] for r in book["Итого"].iter_rows()] == [list(s) for s in summary]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_large_export_splits_into_numbered_parts_under_the_limit(
    tmp_path: Path, fmt: str
) -> None:
    limit = 80_000 if fmt == "xlsx" else 20_000
    writer = ExportWriter(fmt, tmp_path, "sms", TEXTS.columns, max_bytes=limit)  # type: ignore[arg-type]
    total = 3_000
    for start in range(0, total, 500):
        writer.add(cells(row(i, text="x" * 40 + str(i)), TASHKENT, TEXTS)
                   for i in range(start, start + 500))  # fmt: skip
    parts = writer.close()
    assert len(parts) > 2
    assert [p.name for p in parts] == [f"sms-part{n}.{fmt}" for n in range(1, len(parts) + 1)]
    assert all(p.stat().st_size <= limit for p in parts)
    texts: list[str] = []
    for part in parts:
        if fmt == "csv":
            header, *data = read_csv(part)
            texts += [r[2] for r in data]
        else:
            sheet = load_workbook(part, read_only=True)["SMS"]
            header, *values = [[c for c in r] for r in sheet.iter_rows(values_only=True)]
            texts += [str(r[2]) for r in values]
        assert header[0] == "Time"
    assert texts == ["x" * 40 + str(i) for i in range(total)]


def test_an_empty_export_is_a_header(tmp_path: Path) -> None:
    [path] = ExportWriter("csv", tmp_path, "sms", TEXTS.columns).close()
    assert read_csv(path) == [list(TEXTS.columns)]
