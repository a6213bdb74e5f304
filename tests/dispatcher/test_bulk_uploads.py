"""Hostile uploads to /bulk: bombs, runaway parses, formula cells, huge headers, memory."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
from aiogram.methods import GetFile
from openpyxl import Workbook, load_workbook

import handlers.bulk.lists
from bot.config import Settings
from services.bulk_plan import SourceCache
from services.spreadsheet import MAX_COLUMN_NAME, MAX_COLUMNS
from tests.conftest import make_settings
from tests.dispatcher import test_bulk
from tests.dispatcher.test_bulk import (
    PEOPLE_CSV,
    connect,
    csv_of,
    documents,
    result_files,
    review_for,
    start,
    until,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness
from tests.support.uploads import (
    parse_forever,
    read_when_released,
    xlsx_bomb,
    xlsx_of_many_entries,
)

# The app with the runner's hooks attached, built here with this module's settings.
bulk_app = test_bulk.bulk_app
MESSAGE_LIMIT = 4096
TIME_LIMIT = 3.0


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    return make_settings(
        tmp_path, devsms.url, bulk_rate=200, bulk_max_rows=50, upload_time_limit=TIME_LIMIT
    )


def xlsx(rows: list[list[str]]) -> bytes:
    """Every cell a text cell, "=..." included, as Excel keeps what was typed after an '."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row_no, row in enumerate(rows, start=1):
        for column, value in enumerate(row, start=1):
            sheet.cell(row_no, column, value).data_type = "s"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- bombs and runaway parses ------------------------------------------------------------------


REFUSALS = {
    "en": "This file unpacks to far more data than a list of numbers needs, so I did not read it.",
    "ru": "Этот файл распаковывается в гораздо больше данных, чем нужно для списка номеров",
    "uz": "Bu fayl ochilganda raqamlar roʻyxatiga kerak boʻlganidan ancha koʻp maʼlumotga",
}


async def test_a_zip_bomb_is_refused_with_a_clear_message(bulk_app: Harness) -> None:
    app = bulk_app
    bomb = xlsx_bomb(300 * 1024 * 1024)
    assert len(bomb) < 2 * 1024 * 1024
    for user_id, (lang, refusal) in enumerate(REFUSALS.items(), start=1):
        await connect(app, user_id, lang)
        await app.send("/bulk", user_id, lang)
        [refused] = await app.send_document("debtors.xlsx", bomb, user_id, lang)
        assert refusal in refused.text
        assert await app.state_of(user_id) == "BulkForm:source"  # another file is welcome
    [refused] = await app.send_document("list.xlsx", xlsx_of_many_entries(100_000))
    assert REFUSALS["en"] in refused.text
    [asked] = await app.send_document("people.csv", PEOPLE_CSV)
    assert "people.csv: rows: 6, numbers in column «phone»: 3." in asked.text


async def test_a_runaway_parse_does_not_hold_up_other_users_and_is_stopped(
    bulk_app: Harness, devsms: FakeDevsms, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = bulk_app
    await connect(app, user_id=1)
    await connect(app, user_id=2)
    await app.send("/bulk", 1)
    # The worker runs whatever function the handler hands it, by name, in the child process.
    monkeypatch.setattr(handlers.bulk.lists, "read_upload", parse_forever)
    upload = asyncio.create_task(app.send_document("slow.xlsx", b"PK\x03\x04...", 1))
    await until(lambda: app.services.uploads.busy)

    [balance] = await asyncio.wait_for(app.send("/balance", 2), TIME_LIMIT / 2)
    assert "Balance: 10\u00a0000 so'm" in balance.text
    assert not upload.done()  # answered while user 1's file was being parsed

    [refused] = [m for m in await asyncio.wait_for(upload, TIME_LIMIT * 3) if m.chat_id == 1]
    assert "Reading this file took too long, so I stopped." in refused.text
    monkeypatch.undo()
    [asked] = await app.send_document("people.csv", PEOPLE_CSV, 1)
    assert "people.csv: rows: 6, numbers in column «phone»: 3." in asked.text


BUSY = {
    "en": "Another file is being read right now; send yours again in a minute.",
    "ru": "Сейчас читается другой файл; отправьте свой ещё раз через минуту.",
    "uz": "Hozir boshqa fayl oʻqilmoqda; faylingizni bir daqiqadan soʻng qayta yuboring.",
}


async def test_an_upload_while_another_users_file_is_read_is_answered_at_once(
    bulk_app: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = bulk_app
    others = dict(enumerate(BUSY, start=2))  # user id -> language
    for user_id, lang in [(1, "en"), *others.items()]:
        await connect(app, user_id, lang)
        await app.send("/bulk", user_id, lang)
    # User 1's parse runs until the test writes the file into this pipe.
    pipe = tmp_path / "release"
    os.mkfifo(pipe)
    monkeypatch.setattr(handlers.bulk.lists, "read_upload", read_when_released)
    held = asyncio.create_task(app.send_document("people.csv", str(pipe).encode(), 1))
    await until(lambda: app.services.uploads.busy)

    # The bound only turns a wait behind user 1 into a failure instead of a hang.
    for user_id, lang in others.items():
        [busy] = await asyncio.wait_for(
            app.send_document("people.csv", PEOPLE_CSV, user_id, lang), TIME_LIMIT / 2
        )
        assert BUSY[lang] in busy.text
        assert await app.state_of(user_id) == "BulkForm:source"  # nothing changed
    [balance] = await asyncio.wait_for(app.send("/balance", 2), TIME_LIMIT / 2)
    assert "Balance: 10\u00a0000 so'm" in balance.text
    assert not held.done()

    await asyncio.to_thread(pipe.write_bytes, PEOPLE_CSV)
    [asked] = [m for m in await held if m.chat_id == 1]
    assert "people.csv: rows: 6, numbers in column «phone»: 3." in asked.text
    monkeypatch.undo()
    [asked] = await app.send_document("people.csv", PEOPLE_CSV, 2)
    assert "people.csv: rows: 6, numbers in column «phone»: 3." in asked.text


async def test_a_list_read_again_while_another_file_is_read_keeps_the_dialog(
    bulk_app: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = bulk_app
    for user_id in (1, 2):
        await connect(app, user_id)
        await app.send("/bulk", user_id)
    await app.send_document("people.csv", PEOPLE_CSV, 1)
    app.dp["bulk_sources"] = SourceCache(budget=10**9)  # as after a restart: read it again
    pipe = tmp_path / "release"
    os.mkfifo(pipe)
    monkeypatch.setattr(handlers.bulk.lists, "read_upload", read_when_released)
    held = asyncio.create_task(app.send_document("people.csv", str(pipe).encode(), 2))
    await until(lambda: app.services.uploads.busy)

    [busy] = await asyncio.wait_for(app.send("Hi {name}", 1), TIME_LIMIT / 2)
    assert BUSY["en"] in busy.text
    assert await app.state_of(1) == "BulkForm:text"  # the list is still asked for

    await asyncio.to_thread(pipe.write_bytes, PEOPLE_CSV)
    await held
    monkeypatch.undo()
    [review] = await app.send("Hi {name}", 1)
    assert "✅ To send: 3" in review.text


# --- formula injection -------------------------------------------------------------------------

HOSTILE = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "@SUM(1)"]


async def test_skipped_rows_file_neutralises_formulas_in_csv(bulk_app: Harness) -> None:
    app = bulk_app
    await connect(app)
    rows = ["phone,name", "998901234567,Ali"]
    rows += [f'"{cell.replace(chr(34), chr(34) * 2)}",x' for cell in HOSTILE * 2]
    await review_for(app, "people.csv", ("\n".join(rows) + "\n").encode(), "Hi {name}")
    [skipped] = [f for f in documents(app) if f.filename == "skipped.csv"]
    values = [row[1] for row in csv_of(skipped)[1:]]
    assert values == ["'" + cell for cell in HOSTILE * 2]


async def test_result_and_skipped_xlsx_hold_no_formula(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    book = [["phone", "name"], ["998901234567", "Ali"], ["998901234568", "Vali"]]
    book += [[cell, "x"] for cell in HOSTILE * 2]
    review = await review_for(app, "people.xlsx", xlsx(book), "Hi {name}")
    await start(app, review)
    await until(lambda: len(result_files(app)) == 1)
    [skipped] = [f for f in documents(app) if f.filename == "skipped.xlsx"]
    [result] = result_files(app)
    skipped_sheet = load_workbook(io.BytesIO(skipped.data)).active
    assert skipped_sheet is not None
    cells = [cell for row in skipped_sheet.iter_rows() for cell in row]
    assert all(cell.data_type != "f" for cell in cells)
    assert [row[1] for row in skipped_sheet.iter_rows(min_row=2, values_only=True)] == [
        "'" + cell for cell in HOSTILE * 2
    ]
    result_sheet = load_workbook(io.BytesIO(result.data)).active
    assert result_sheet is not None
    assert all(cell.data_type != "f" for row in result_sheet.iter_rows() for cell in row)
    phones = [row[1] for row in result_sheet.iter_rows(min_row=2, values_only=True)]
    assert phones == ["998901234567", "998901234568"]  # the bot's own column is untouched


# --- the parsed lists in memory ----------------------------------------------------------------


async def test_a_list_dropped_to_save_memory_is_asked_for_again(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    # Room for about one list of this size: the second user's list pushes the first one out.
    app.dp["bulk_sources"] = SourceCache(budget=4_000)
    for user_id in (1, 2):
        await connect(app, user_id=user_id)
        await app.send("/bulk", user_id)
        await app.send_document("people.csv", PEOPLE_CSV, user_id)
    gets = len(app.session.of(GetFile))

    [asked] = await app.send("Hi {name}", 1)
    assert "yours was set aside to save memory. Please send the file or the list again." in (
        asked.text
    )
    assert len(app.session.of(GetFile)) == gets  # not read again behind the user's back
    [asked] = await app.send_document("people.csv", PEOPLE_CSV, 1)
    assert "numbers in column «phone»: 3" in asked.text
    [review] = await app.send("Hi {name}", 1)
    assert "✅ To send: 3" in review.text
    [asked] = await app.send("Hi {name}", 2)  # the budget holds one: now the second one went
    assert "yours was set aside to save memory" in asked.text


# --- long column names -------------------------------------------------------------------------


async def test_a_five_thousand_character_header_is_clipped_in_every_reply(
    bulk_app: Harness,
) -> None:
    app = bulk_app
    await connect(app)
    long_name = "Customer name " + "x" * 5000
    await app.send("/bulk")
    [asked] = await app.send_document("people.csv", f"phone,{long_name}\n901234567,Ali\n".encode())
    assert len(asked.text) < MESSAGE_LIMIT
    clipped = long_name[:MAX_COLUMN_NAME]
    assert f"«{clipped}»" in asked.text
    [review] = await app.send("Hi {" + clipped + "}")
    assert "Hi Ali" in review.text
    [refused] = await app.send("Hi {" + long_name[:4000] + "}")
    assert "These placeholders match no column" in refused.text
    assert len(refused.text) < MESSAGE_LIMIT
    [no_phone] = await app.send_document("x.csv", f"{long_name}\nAli\nVali\n".encode())
    assert "could not find a column with phone numbers" in no_phone.text
    assert len(no_phone.text) < MESSAGE_LIMIT


async def test_many_long_columns_and_placeholders_stay_within_a_message(
    bulk_app: Harness,
) -> None:
    app = bulk_app
    await connect(app)
    names = [f"{n} " + "&" * 300 for n in range(MAX_COLUMNS)]  # "&" grows fivefold in HTML
    header = ",".join(["phone", *names[1:]])
    await app.send("/bulk")
    [asked] = await app.send_document("wide.csv", f"{header}\n901234567\n".encode())
    assert len(asked.text) < MESSAGE_LIMIT
    assert "«phone»" in asked.text and "…" in asked.text
    [refused] = await app.send("".join(f"{{&<{n}>}}" for n in range(500)))
    assert "These placeholders match no column" in refused.text
    assert len(refused.text) < MESSAGE_LIMIT
    [no_phone] = await app.send_document("x.csv", f"{','.join(names)}\nAli\nVali\n".encode())
    assert len(no_phone.text) < MESSAGE_LIMIT
