"""Hostile uploads built on the spot: zip bombs, archives of many entries, a parse that hangs."""

from __future__ import annotations

import functools
import io
import sys
import time
import zipfile

from openpyxl import Workbook

from services.bulk_plan import PackedSource, read_upload

SHEET = "xl/worksheets/sheet1.xml"
_ROW = "<row>" + '<c t="inlineStr"><is><t>998901234567</t></is></c>' * 50 + "</row>"


def small_xlsx() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["phone", "name"])
    sheet.append(["998901234567", "Ali"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@functools.cache
def xlsx_bomb(inflated: int) -> bytes:
    """A real workbook whose first sheet is `inflated` bytes of repeated cells: 300 MB of them
    compress to about 1 MB."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(small_xlsx())) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb,
    ):
        for info in source.infolist():
            if info.filename != SHEET:
                bomb.writestr(info.filename, source.read(info.filename))
        with bomb.open(SHEET, "w", force_zip64=True) as sheet:
            sheet.write(
                b'<worksheet xmlns="http://schemas.openxmlformats.org/'
                b'spreadsheetml/2006/main"><sheetData>'
            )
            chunk = (_ROW * 1000).encode()
            written = 0
            while written < inflated:
                sheet.write(chunk)
                written += len(chunk)
            sheet.write(b"</sheetData></worksheet>")
    return buffer.getvalue()


@functools.cache
def xlsx_of_many_entries(entries: int) -> bytes:
    """A real workbook plus `entries` empty files."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(small_xlsx())) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive,
    ):
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info.filename))
        for n in range(entries):
            archive.writestr(f"xl/media/{n}", b"")
    return buffer.getvalue()


def parse_forever(*_args: object) -> None:
    """Stands for a parse that never ends; run in the upload worker by name."""
    while True:
        time.sleep(0.05)


def read_when_released(pipe: bytes, file_name: str, key: str, max_rows: int) -> PackedSource:
    """Stands for a parse that runs until the test lets it end: the "file" it gets is the path
    of a named pipe, and it reads the real file from that pipe, which blocks until the test
    writes it."""
    with open(pipe.decode(), "rb") as released:
        data = released.read()
    return read_upload(data, file_name, key, max_rows)


def allocate_forever(*_args: object) -> None:
    """Stands for a parse whose memory grows without end."""
    held = []
    while True:
        held.append(bytearray(16 * 1024 * 1024))


def parse_slowly(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def loaded_packages(*_args: object) -> set[str]:
    """The top-level packages imported in the process that runs this."""
    return {name.partition(".")[0] for name in sys.modules}
