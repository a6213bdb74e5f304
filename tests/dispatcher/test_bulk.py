"""/bulk and /jobs as a user walks them: file or list → text → dry run → job → result file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import GetFile, SendDocument
from aiogram.types import BufferedInputFile
from openpyxl import Workbook, load_workbook

from bot.config import Settings
from services.bulk import BulkRunner
from services.events import JobFinished
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN, make_settings
from tests.fakes.fake_devsms import ERR_BALANCE, FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.notifiers import install
from tests.support.recording import SentMessage

SEND = "/send_sms.php"
MAX_ROWS = 50
PEOPLE_CSV = (
    b"name,phone,city\n"
    b"Ali,+998 90 123 45 67,Tashkent\n"
    b"Vali,901234568,Samarkand\n"
    b"Bad,12345,X\n"
    b"Ali again,998901234567,Tashkent\n"
    b"Nobody,,Y\n"
    b"Gulnora,+998 (91) 234-56-78,Bukhara\n"
)


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    return make_settings(tmp_path, devsms.url, bulk_rate=200, bulk_max_rows=MAX_ROWS)


@pytest.fixture
async def bulk_app(app: Harness) -> AsyncIterator[Harness]:
    """The app with a notifier that delivers at once under the runner's notices."""
    runner: BulkRunner = app.dp["bulk_runner"]
    install(app.dp, app.bot, None, app.services)
    yield app
    await runner.stop()


async def connect(
    app: Harness, user_id: int = 1, lang: str = "en", token: str = GOOD_TOKEN
) -> None:
    await app.send("/start", user_id, lang)
    await app.send(token, user_id, lang)


async def review_for(
    app: Harness, file_name: str, content: bytes, text: str, user_id: int = 1, lang: str = "en"
) -> SentMessage:
    await app.send("/bulk", user_id, lang)
    await app.send_document(file_name, content, user_id, lang)
    return (await app.send(text, user_id, lang))[-1]


async def start(app: Harness, review: SentMessage, user_id: int = 1) -> SentMessage:
    sent = await app.tap(review, "Start", user_id)
    return next(m for m in sent if "Bulk job #" in m.text)


async def start_numbers(app: Harness, n: int, text: str) -> SentMessage:
    """Starts a job over `n` pasted numbers; the job's progress message."""
    await app.send("/bulk")
    await app.send("".join(f"90123{i:04d}\n" for i in range(n)))
    return await start(app, (await app.send(text))[-1])


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Polls what the user would see (messages, files) until it is there, or fails."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@dataclass(frozen=True)
class Doc:
    filename: str
    data: bytes


def documents(app: Harness) -> list[Doc]:
    """Files the bot sent, in order."""
    files = [call.document for call in app.session.of(SendDocument)]
    assert all(isinstance(f, BufferedInputFile) for f in files)
    return [Doc(f.filename or "", f.data) for f in files]


def result_files(app: Harness) -> list[Doc]:
    return [f for f in documents(app) if "-result-" in f.filename]


def csv_of(file: Doc) -> list[list[str]]:
    return list(csv.reader(io.StringIO(file.data.decode("utf-8-sig"))))


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


def progress(app: Harness, job_id: int) -> SentMessage:
    return next(m for m in reversed(app.session.chat(1)) if f"Bulk job #{job_id}" in m.text)


async def test_csv_dry_run_then_each_valid_row_gets_exactly_one_sms(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    [ask] = await app.send("/bulk")
    assert "Send a CSV or Excel (.xlsx) file" in ask.text
    assert "up to 50 rows" in ask.text
    [ask_text] = await app.send_document("people.csv", PEOPLE_CSV)
    assert "people.csv: rows: 6, numbers in column «phone»: 3." in ask_text.text
    assert "Columns: «name», «phone», «city»" in ask_text.text
    [review] = await app.send("Hello {name} from {city} & co!")

    assert "Rows read: 6" in review.text
    assert "✅ To send: 3" in review.text
    assert "❌ Skipped: 2" in review.text
    assert "row 4: «12345» — number too short" in review.text
    assert "row 6: «» — no number" in review.text
    assert "♻️ Duplicates removed: 1" in review.text
    assert "Hello Ali from Tashkent &amp; co!" in review.text  # examples, escaped
    assert "Hello Vali from Samarkand &amp; co!" in review.text
    assert "Hello Gulnora from Bukhara &amp; co!" in review.text
    assert "SMS parts in total: 3 · cost: 150 so'm" in review.text
    assert "after sending: 9\u00a0850 so'm" in review.text
    assert labels(review) == ["🚀 Start", "🕒 Send later", "✖️ Cancel"]
    assert devsms.sent == []  # a dry run sends nothing

    job = await start(app, review)
    async with asyncio.timeout(5):
        sent = await devsms.wait_sent(3)
    assert sorted((s.phone, s.message, s.sender) for s in sent) == [
        ("998901234567", "Hello Ali from Tashkent & co!", "4546"),
        ("998901234568", "Hello Vali from Samarkand & co!", "4546"),
        ("998912345678", "Hello Gulnora from Bukhara & co!", "4546"),
    ]
    await until(lambda: len(result_files(app)) == 1)
    [summary] = [m for m in app.session.chat(1) if "finished." in m.text]
    assert "Sent: 3 · failed: 0 · unclear: 0" in summary.text
    assert "Cost: 150 so'm" in summary.text
    [result] = result_files(app)
    assert result.filename.startswith("people-result-") and result.filename.endswith(".csv")
    header, *rows = csv_of(result)
    assert header == ["row", "phone", "sms_id", "state", "status", "error"]
    by_phone = {s.phone: s.sms_id for s in sent}
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("2", "998901234567", str(by_phone["998901234567"]), "sent"),
        ("3", "998901234568", str(by_phone["998901234568"]), "sent"),
        ("7", "998912345678", str(by_phone["998912345678"]), "sent"),
    ]
    final = app.session.messages[(1, job.message_id)]
    assert "✅ Finished." in final.text
    assert "Sent: 3 · failed: 0 · left: 0" in final.text
    assert labels(final) == ["📎 Result file"]
    assert len(devsms.requests_to(SEND)) == 3


async def test_pasted_list_of_numbers(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    await connect(app)
    await app.send("/bulk")
    [ask_text] = await app.send("901234567\n+998 90 765 43 21, 12\n901234567")
    assert "Pasted list: rows: 4, numbers in column «A»: 2." in ask_text.text
    [review] = await app.send("Meeting at 10")
    assert "✅ To send: 2" in review.text
    assert "row 3: «12» — number too short" in review.text
    assert "♻️ Duplicates removed: 1" in review.text
    assert "Examples:" not in review.text  # the same text for everyone
    await start(app, review)
    async with asyncio.timeout(5):
        sent = await devsms.wait_sent(2)
    assert sorted(s.phone for s in sent) == ["998901234567", "998907654321"]
    await until(lambda: len(result_files(app)) == 1)
    [result] = result_files(app)
    assert result.filename.startswith("numbers-result-") and result.filename.endswith(".csv")


async def test_xlsx_file_in_xlsx_result_out(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    await connect(app)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Ism", "Telefon", "Summa"])
    sheet.append(["Aziz", 998901112233, 120000])
    sheet.append(["Dilnoza", "+998 93 444 55 66", 5000])
    buffer = io.BytesIO()
    book.save(buffer)
    review = await review_for(
        app, "debtors.xlsx", buffer.getvalue(), "{Ism}, your debt is {Summa} so'm"
    )
    assert "✅ To send: 2" in review.text
    assert "Aziz, your debt is 120000 so'm" in review.text
    await start(app, review)
    async with asyncio.timeout(5):
        sent = await devsms.wait_sent(2)
    assert sorted((s.phone, s.message) for s in sent) == [
        ("998901112233", "Aziz, your debt is 120000 so'm"),
        ("998934445566", "Dilnoza, your debt is 5000 so'm"),
    ]
    await until(lambda: len(result_files(app)) == 1)
    [result] = result_files(app)
    assert result.filename.endswith(".xlsx")
    rows = list(load_workbook(io.BytesIO(result.data)).active.iter_rows(values_only=True))
    assert rows[0] == ("row", "phone", "sms_id", "state", "status", "error")
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        (2, "998901112233", "sent"),
        (3, "998934445566", "sent"),
    ]


async def test_unknown_placeholder_is_named_and_the_text_can_be_fixed(bulk_app: Harness) -> None:
    app = bulk_app
    await connect(app)
    await app.send("/bulk")
    await app.send_document("people.csv", PEOPLE_CSV)
    [refused] = await app.send("Hi {nmae} from {city}")
    assert "These placeholders match no column: {nmae}." in refused.text
    assert "Columns in the file: «name», «phone», «city»." in refused.text
    [broken] = await app.send("Hi {name")
    assert "an opening brace without a closing one at character 4" in broken.text
    [review] = await app.send("Hi {name}")
    assert "✅ To send: 3" in review.text
    [again] = await app.send("Bye {name}")  # a new text replaces the report
    assert "Bye Ali" in again.text
    await app.tap(review, "Start")
    assert app.answers()[-1].text == "This button is no longer active."
    assert await app.services.bulk.jobs_of(1) == []


async def test_too_many_rows_and_missing_phone_column_are_refused(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    await app.send("/bulk")
    big = "phone\n" + "".join(f"9012{n:05d}\n" for n in range(MAX_ROWS + 3))
    [refused] = await app.send_document("big.csv", big.encode())
    assert "more than 50 rows (at least 53)" in refused.text
    [no_phone] = await app.send_document("list.csv", b"name,city\nAli,Tashkent\nVali,Bukhara\n")
    assert "could not find a column with phone numbers" in no_phone.text
    assert "«name», «city»" in no_phone.text
    [old] = await app.send_document("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"0" * 64)
    assert "I cannot read .xls files. Save it as .xlsx or .csv" in old.text
    gets = len(app.session.of(GetFile))
    [too_big] = await app.send_document("huge.csv", b"phone\n", file_size=25 * 1024 * 1024)
    assert "This file is 25.0 MB; Telegram lets bots download files of at most 20 MB" in (
        too_big.text
    )
    assert len(app.session.of(GetFile)) == gets  # refused before downloading
    assert devsms.sent == []


async def test_long_texts_and_many_bad_rows_go_to_the_skipped_file(bulk_app: Harness) -> None:
    app = bulk_app
    await connect(app)
    long_note = "x" * 1700  # 12 parts: more than SMS_MAX_PARTS (10)
    lines = ["phone,note", "901234567,short", f"901234568,{long_note}"]
    lines += [f"12{n},short" for n in range(6)]
    await app.send("/bulk")
    await app.send_document("notes.csv", ("\n".join(lines) + "\n").encode())
    sent = await app.send("{note}")
    skipped_doc, review = sent
    assert "All 7 rows that will be skipped." in skipped_doc.text
    assert "✅ To send: 1" in review.text
    assert "❌ Skipped: 7" in review.text
    assert "row 3: «998901234568» — the text needs 12 SMS parts, more than 10" in review.text
    assert "…and 2 more (see the file)." in review.text
    [skipped] = [f for f in documents(app) if f.filename == "skipped.csv"]
    header, *rows = csv_of(skipped)
    assert header == ["row", "value", "reason"]
    assert len(rows) == 7
    assert rows[-1] == ["9", "125", "number too short"]


async def test_not_enough_balance_offers_no_start(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    await connect(app, token=OTHER_TOKEN)  # 500 so'm, 50 so'm an SMS
    numbers = "".join(f"90123{n:04d}\n" for n in range(11))
    await app.send("/bulk")
    await app.send(numbers)
    [review] = await app.send("Sale!")
    assert "cost: 550 so'm" in review.text
    assert "Not enough balance: 50 so'm more is needed" in review.text
    assert labels(review) == ["✖️ Cancel"]
    [cancelled] = await app.tap(review, "Cancel")
    assert "Cancelled. Nothing was sent." in cancelled.text
    assert devsms.sent == []


async def test_balance_is_checked_again_on_start(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    await connect(app)
    review = await review_for(app, "people.csv", PEOPLE_CSV, "Hi {name}")
    assert labels(review) == ["🚀 Start", "🕒 Send later", "✖️ Cancel"]
    devsms.accounts[GOOD_TOKEN].balance = Decimal(100)  # spent elsewhere meanwhile
    [refused] = await app.tap(review, "Start")
    assert "Not enough balance: 50 so'm more is needed" in refused.text
    assert await app.services.bulk.jobs_of(1) == []
    devsms.accounts[GOOD_TOKEN].balance = Decimal(1000)  # topped up: the same Start works
    await start(app, review)
    await until(lambda: len(result_files(app)) == 1)
    assert len(devsms.sent) == 3


async def test_double_start_makes_one_job(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    await connect(app)
    review = await review_for(app, "people.csv", PEOPLE_CSV, "Hi {name}")
    data = button_data(review, "Start")
    await asyncio.gather(app.tap_data(review, data), app.tap_data(review, data))
    await app.tap_data(review, data)
    await until(lambda: len(result_files(app)) == 1)
    assert len(await app.services.bulk.jobs_of(1)) == 1
    assert len(devsms.requests_to(SEND)) == 3
    assert "This button is no longer active." in [a.text for a in app.answers()]


async def test_pause_resume_and_cancel(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    runner: BulkRunner = app.dp["bulk_runner"]
    await connect(app)
    devsms.latency = 0.05
    numbers = "".join(f"90123{n:04d}\n" for n in range(20))
    await app.send("/bulk")
    await app.send(numbers)
    review = (await app.send("Hello"))[-1]
    job = await start(app, review)
    assert labels(job) == ["⏸ Pause", "✖️ Cancel"]
    job_id = int(job.text.split("#")[1].split("<")[0])
    await devsms.wait_sent(1)

    await app.tap(job, "Pause")
    assert "Paused." in [a.text for a in app.answers()]
    await until(lambda: not runner.is_running(job_id))
    paused = app.session.messages[(1, job.message_id)]
    assert "⏸ Paused. Tap Resume to go on." in paused.text
    assert labels(paused) == ["▶️ Resume", "✖️ Cancel"]
    sent_while_paused = len(devsms.sent)
    assert sent_while_paused < 20
    counts = await app.services.bulk.counts(job_id)
    assert (counts.sent, counts.left) == (sent_while_paused, 20 - sent_while_paused)

    await app.tap(paused, "Resume")
    assert "Resuming…" in [a.text for a in app.answers()]
    await devsms.wait_sent(sent_while_paused + 1)
    await app.tap(app.session.messages[(1, job.message_id)], "Cancel")
    assert "Job cancelled." in [a.text for a in app.answers()]
    await until(lambda: not runner.is_running(job_id))
    cancelled = app.session.messages[(1, job.message_id)]
    assert "✖️ Cancelled" in cancelled.text
    assert labels(cancelled) == ["📎 Result file"]
    assert len(devsms.sent) < 20
    counts = await app.services.bulk.counts(job_id)
    assert counts.sent == len(devsms.sent)
    assert len(devsms.requests_to(SEND)) == len(devsms.sent)  # nothing sent twice

    await app.tap(cancelled, "Result file")
    [result] = result_files(app)
    states = [row[3] for row in csv_of(result)[1:]]
    assert states.count("sent") == len(devsms.sent)
    assert states.count("pending") == 20 - len(devsms.sent)


async def test_runner_pause_for_balance_is_explained_and_resumable(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    review = await review_for(app, "people.csv", PEOPLE_CSV, "Hi {name}")
    error = json.dumps({"success": False, "error": ERR_BALANCE})
    devsms.fail_next(status=400, body=error, path=SEND)
    job = await start(app, review)
    await until(lambda: any("balance ran out" in m.text for m in app.session.chat(1)[-1:]))
    notice = app.last()
    assert "Bulk job #" in notice.text and "Top up at devsms.uz, then tap Resume" in notice.text
    paused = app.session.messages[(1, job.message_id)]
    assert "⏸ Paused: the balance ran out." in paused.text
    await app.tap(paused, "Resume")
    await until(lambda: len(result_files(app)) == 1)
    assert len(devsms.sent) == 3  # each row once, the refused one included


async def test_one_running_job_per_user(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    runner: BulkRunner = app.dp["bulk_runner"]
    await connect(app)
    devsms.latency = 0.05
    first = await start_numbers(app, 30, "One")
    await app.tap(first, "Pause")
    assert app.answers()[-1].text == "Paused."
    second_review = await review_for(app, "people.csv", PEOPLE_CSV, "Two")
    [refused] = (await app.tap(second_review, "Start"))[-1:]
    assert "is still in progress" in refused.text
    assert labels(refused) == ["📦 Open job #1"]
    [opened] = await app.tap(refused, "Open job #1")
    assert "Bulk job #1" in opened.text and labels(opened) == ["▶️ Resume", "✖️ Cancel"]
    await until(lambda: not runner.is_running(1))
    assert len(await app.services.bulk.jobs_of(1)) == 1


async def test_someone_elses_job_cannot_be_touched(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    await connect(app, user_id=1)
    await connect(app, user_id=2)
    devsms.latency = 0.05
    await app.send("/bulk")
    await app.send("".join(f"90123{n:04d}\n" for n in range(10)))
    job = await start(app, (await app.send("Mine"))[-1])
    await app.tap_data(job, button_data(job, "Pause"), user_id=2)
    assert app.answers()[-1].text == "This job was not found."
    assert app.answers()[-1].show_alert
    row = await app.services.bulk.get_job(1)
    assert row is not None and row.state in ("running", "done")
    await until(lambda: len(result_files(app)) == 1)
    assert len(devsms.sent) == 10


async def test_jobs_lists_newest_first_and_opens_one(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    [empty] = await app.send("/jobs")
    assert "No bulk jobs yet" in empty.text
    await start(app, await review_for(app, "people.csv", PEOPLE_CSV, "Hi {name}"))
    await until(lambda: len(result_files(app)) == 1)
    await app.send("/bulk")
    await app.send("901234567")
    await start(app, (await app.send("Second"))[-1])
    await until(lambda: len(result_files(app)) == 2)

    [listing] = await app.send("/jobs")
    assert listing.text.index("#2 · Pasted list") < listing.text.index("#1 · people.csv")
    assert "#1 · people.csv · ✅ finished · sent 3 of 3, failed 0" in listing.text
    assert labels(listing) == ["#2", "#1"]
    [opened] = await app.tap(listing, "#1")
    assert "Bulk job #1" in opened.text and "✅ Finished." in opened.text
    await app.tap(opened, "Result file")
    assert len(result_files(app)) == 3
    assert csv_of(result_files(app)[-1])[1][:2] == ["2", "998901234567"]


async def test_rows_of_unclear_fate_are_neither_failed_nor_certainly_not_sent(
    bulk_app: Harness,
) -> None:
    app = bulk_app
    await connect(app)
    await app.services.users.set_language(1, "en")
    bulk = app.services.bulk
    rows = [(n + 2, f"99890123{n:04d}", "Hi", 1) for n in range(4)]
    job_id = await bulk.create_job(
        1, template="Hi", sender=None, file_name="x.csv", file_format="csv", rows=rows
    )
    await bulk.set_job_state(job_id, "running", allowed_from=("ready",))
    for row_no, state in [(2, "sent"), (3, "failed"), (4, "unknown"), (5, "unknown")]:
        await bulk.claim(job_id, row_no)
        await bulk.finish_row(job_id, row_no, state, sms_id=1 if state == "sent" else None)
    await bulk.set_job_state(job_id, "done", allowed_from=("running",))
    # A day later, the history showed no trace of row 5.
    assert await bulk.mark_not_sent(job_id, 5)

    [listing] = await app.send("/jobs")
    assert (
        "#1 · x.csv · ✅ finished · sent 1 of 4, failed 1, unclear 1, probably not sent 1"
        in listing.text
    )
    [opened] = await app.tap(listing, "#1")
    assert "Sent: 1 · failed: 1 · left: 0" in opened.text
    assert "Unclear: 1 (" in opened.text
    assert "Probably not sent: 1 (no trace at devsms.uz a day later)" in opened.text

    job = await bulk.get_job(job_id)
    assert job is not None
    await app.dp["notices"].emit(JobFinished(job, await bulk.counts(job_id)))
    [summary] = [call.caption or "" for call in app.session.of(SendDocument)]
    assert "Sent: 1 · failed: 1 · unclear: 1" in summary
    assert "Probably not sent: 1" in summary
    _header, *result = csv_of(result_files(app)[-1])
    assert [r[3] for r in result] == ["sent", "failed", "unknown", "probably_not_sent"]


async def test_jobs_started_before_a_restart_are_resumed(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    # Outside an update only the chosen language is known (else DEFAULT_LANGUAGE).
    await app.services.users.set_language(1, "en")
    bulk = app.services.bulk
    rows = [(n + 1, f"99890123{n:04d}", "Left over", 1) for n in range(4)]
    job_id = await bulk.create_job(
        1, template="Left over", sender=None, file_name=None, file_format="text", rows=rows
    )
    await bulk.set_job_state(job_id, "running", allowed_from=("ready",))
    await app.dp.emit_startup(bot=app.bot)
    try:
        async with asyncio.timeout(5):
            await devsms.wait_sent(4)
        await until(lambda: len(result_files(app)) == 1)
    finally:
        await app.dp.emit_shutdown(bot=app.bot)
    assert "Bulk job #1 finished" in app.session.chat(1)[-1].text


async def test_russian_dialog(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    await connect(app, lang="ru")
    [ask] = await app.send("/bulk", lang="ru")
    assert "Отправьте файл CSV или Excel (.xlsx)" in ask.text
    await app.send_document("people.csv", PEOPLE_CSV, lang="ru")
    [review] = await app.send("Привет, {name}!", lang="ru")
    assert "Проверьте перед отправкой" in review.text
    assert "✅ К отправке: 3" in review.text
    assert "строка 4: «12345» — номер слишком короткий" in review.text
    job = await start_ru(app, review)
    await until(lambda: len(result_files(app)) == 1)
    assert "Готово." in app.session.messages[(1, job.message_id)].text
    assert any("Рассылка #1 завершена." in m.text for m in app.session.chat(1))


async def test_a_runner_pause_is_told_in_uzbek_to_an_uzbek_owner(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app, lang="uz")
    await app.send("/bulk", lang="uz")
    await app.send_document("people.csv", PEOPLE_CSV, lang="uz")
    [review] = await app.send("Salom, {name}!", lang="uz")
    error = json.dumps({"success": False, "error": ERR_BALANCE})
    devsms.fail_next(status=400, body=error, path=SEND)
    sent = await app.tap(review, "🚀 Boshlash", lang="uz")
    job = next(m for m in sent if "ommaviy yuborish" in m.text)
    job_id = job_id_of_uz(job)
    reason = "⏸ Pauza: balans tugadi."
    await until(lambda: reason in app.last().text)

    # The runner's pause, outside any update: a message of its own and the progress message,
    # in the owner's language, with buttons the job handler answers.
    notice = app.last()
    assert notice.text.startswith(f"#{job_id}-ommaviy yuborish: {reason}")
    assert labels(notice) == [f"📦 #{job_id}-ommaviy yuborishni ochish"]
    assert button_data(notice, f"📦 #{job_id}-ommaviy yuborishni ochish") == f"job:open:{job_id}"
    progress = app.session.messages[(1, job.message_id)]
    assert reason in progress.text and "▶️ Davom etish" in labels(progress)


def job_id_of_uz(message: SentMessage) -> int:
    return int(message.text.split("#")[1].split("-")[0])


async def start_ru(app: Harness, review: SentMessage) -> SentMessage:
    sent = await app.tap(review, "Начать", lang="ru")
    return next(m for m in sent if "Рассылка #" in m.text)


def job_id_of(message: SentMessage) -> int:
    return int(message.text.split("#")[1].split("<")[0])


async def test_a_new_token_pauses_the_job_and_resume_checks_the_new_balance(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    runner: BulkRunner = app.dp["bulk_runner"]
    await connect(app)
    devsms.latency = 0.05
    job = await start_numbers(app, 20, "Hello")
    job_id = job_id_of(job)
    await devsms.wait_sent(2)

    await app.send("/token")
    await app.send(OTHER_TOKEN)  # 500 so'm: ten SMS
    await until(lambda: not runner.is_running(job_id))
    paused = app.session.messages[(1, job.message_id)]
    assert "⏸ Paused: you connected another devsms token." in paused.text
    assert any(
        f"Bulk job #{job_id}: ⏸ Paused: you connected another devsms token" in m.text
        for m in app.session.chat(1)
    )
    old = [r for r in devsms.requests_to(SEND) if r.token == GOOD_TOKEN]
    counts = await app.services.bulk.counts(job_id)
    assert counts.pending > 10  # more than the new balance covers

    await app.tap(paused, "Resume")
    refusal = app.last()
    assert f"Not enough balance for the rest of job #{job_id}" in refusal.text
    assert "Top up at devsms.uz, then tap Resume." in refusal.text
    assert not runner.is_running(job_id)
    assert not [r for r in devsms.requests_to(SEND) if r.token == OTHER_TOKEN]

    devsms.accounts[OTHER_TOKEN].balance = Decimal(10_000)
    await app.tap(paused, "Resume")
    assert "Resuming…" in [a.text for a in app.answers()]
    await until(lambda: len(result_files(app)) == 1)
    # The old token sent nothing after the change; every row went out once.
    assert [r for r in devsms.requests_to(SEND) if r.token == GOOD_TOKEN] == old
    assert len(devsms.sent) == len({s.phone for s in devsms.sent}) == 20


async def test_a_refusal_on_every_row_pauses_with_the_gateways_words(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    refusal = json.dumps({"success": False, "error": "Yuboruvchi nomi tasdiqlanmagan"})
    devsms.fail_next(1000, status=403, body=refusal, path=SEND)
    job = await start_numbers(app, 30, "Hello")
    await until(lambda: "refused" in app.last().text)
    notice = app.last()
    assert "devsms.uz refused the last SMS one after another" in notice.text
    assert "«Yuboruvchi nomi tasdiqlanmagan»" in notice.text
    paused = app.session.messages[(1, job.message_id)]
    assert "«Yuboruvchi nomi tasdiqlanmagan»" in paused.text
    assert labels(paused) == ["▶️ Resume", "✖️ Cancel"]
    refused = len(devsms.requests_to(SEND))
    assert refused < 10  # not the whole list

    devsms.clear_faults()  # the sender name got approved
    await app.tap(paused, "Resume")
    await until(lambda: len(result_files(app)) == 1)
    assert len(devsms.sent) == 30 - refused  # only the rows still pending
    states = [(row[3], row[5]) for row in csv_of(result_files(app)[0])[1:]]
    assert states.count(("failed", "Yuboruvchi nomi tasdiqlanmagan")) == refused


async def test_a_broken_database_pauses_the_job_and_tells_the_owner(
    bulk_app: Harness, devsms: FakeDevsms, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = bulk_app
    bulk = app.services.bulk
    await connect(app)
    finish_row = bulk.finish_row
    failures = iter([True])

    async def fails_once(job_id: int, row_no: int, state: str, **kwargs: Any) -> None:
        if state == "sent" and next(failures, False):
            raise sqlite3.OperationalError("database is locked")
        await finish_row(job_id, row_no, state, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk, "finish_row", fails_once)
    job = await start(app, await review_for(app, "people.csv", PEOPLE_CSV, "Hi {name}"))
    await until(lambda: "went wrong" in app.last().text)
    assert "SMS whose fate is unclear are not sent again" in app.last().text
    paused = app.session.messages[(1, job.message_id)]
    assert "Unclear: 1" in paused.text
    await app.tap(paused, "Resume")
    await until(lambda: len(result_files(app)) == 1)
    assert len(devsms.requests_to(SEND)) == 3  # the unclear row was not sent again


async def test_logout_stops_the_job_and_its_token(bulk_app: Harness, devsms: FakeDevsms) -> None:
    app = bulk_app
    runner: BulkRunner = app.dp["bulk_runner"]
    await connect(app)
    devsms.latency = 0.05
    job = await start_numbers(app, 30, "Hello")
    await devsms.wait_sent(2)
    [ask] = await app.send("/logout")
    await app.tap(ask, "Yes, delete everything")
    sent_at_logout = len(devsms.requests_to(SEND))
    await until(lambda: not runner.is_running(job_id_of(job)))
    # Rows claimed before the erase may still leave (never recalled, at most one per worker);
    # no row is claimed after it: the job and the token are gone.
    assert len(devsms.requests_to(SEND)) <= sent_at_logout + runner.concurrency
    assert len(devsms.requests_to(SEND)) < 30
    assert await app.services.bulk.jobs_of(1) == []  # erased with everything else


@pytest.mark.parametrize(
    ("stored", "shown", "used"),
    [
        ("MyShop", "Sender: MyShop", "MyShop"),
        # Saved before the rules got stricter: every path falls back to the default.
        ("٤٥٤٦", "Sender: 4546 (default)", "4546"),
    ],
)
async def test_settings_send_and_bulk_use_one_sender(
    bulk_app: Harness, devsms: FakeDevsms, stored: str, shown: str, used: str
) -> None:
    app = bulk_app
    await connect(app)
    await app.services.users.set_sender(1, stored)
    [settings_view] = await app.send("/settings")
    assert shown in settings_view.text
    await app.send("/send")
    await app.send("901234567")
    [preview] = await app.send("Hello")
    assert f"From: {used}" in preview.text
    await app.tap(preview, "Send")
    await start_numbers(app, 2, "Hi")
    async with asyncio.timeout(5):
        sent = await devsms.wait_sent(3)
    assert [s.sender for s in sent] == [used] * 3
