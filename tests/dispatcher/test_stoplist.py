"""/stoplist as a user walks it, and every send path leaving stopped numbers out."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiogram.methods import SendDocument
from aiogram.types import BufferedInputFile

from bot.commands import commands_for
from bot.config import Settings
from services.bulk import BulkRunner
from services.scheduler import Scheduler, parse_stamp
from tests.conftest import GOOD_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.notifiers import install
from tests.support.recording import SentMessage

LIMIT = 12
ALI = "998901234567"
VALI = "998901234568"
GULI = "998912345678"


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    return make_settings(tmp_path, devsms.url, stoplist_limit=LIMIT, bulk_rate=200)


@pytest.fixture
async def bulk_app(app: Harness) -> AsyncIterator[Harness]:
    """The app with a notifier that delivers at once under the runner's notices."""
    runner: BulkRunner = app.dp["bulk_runner"]
    install(app.dp, app.bot, None, app.services)
    yield app
    await runner.stop()


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


async def stopped(app: Harness, user_id: int = 1) -> dict[str, str | None]:
    return {e.phone: e.note for e in await app.services.stoplist.all(user_id)}


async def add(app: Harness, text: str, user_id: int = 1) -> SentMessage:
    [listing] = await app.send("/stoplist", user_id)
    await app.tap(listing, "Add", user_id)
    return (await app.send(text, user_id))[-1]


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


def files(app: Harness) -> list[BufferedInputFile]:
    found = [call.document for call in app.session.of(SendDocument)]
    assert all(isinstance(f, BufferedInputFile) for f in found)
    return [f for f in found if isinstance(f, BufferedInputFile)]


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# --- the list ----------------------------------------------------------------------------------


async def test_empty_list_add_typed_numbers_with_notes(app: Harness) -> None:
    await connect(app)
    [empty] = await app.send("/stoplist")
    assert "Your stop list is empty" in empty.text
    assert labels(empty) == ["➕ Add", "📥 Import a file"]
    [ask] = await app.tap(empty, "Add")
    assert "Send the numbers to add" in ask.text
    assert f"at most {LIMIT} numbers" in ask.text
    [done] = await app.send("+998 90 123 45 67 asked to stop <b>\n901234568, 91 234 56 78")
    assert "✅ 3 numbers added to the stop list." in done.text
    assert "Numbers on the stop list: 3" in done.text
    assert "+998 90 123 45 67 · " in done.text
    assert "<i>asked to stop &lt;b&gt;</i>" in done.text  # the note, escaped
    assert labels(done)[:3] == [
        "❌ +998 91 234 56 78",
        "❌ +998 90 123 45 68",
        "❌ +998 90 123 45 67",
    ]
    assert labels(done)[3:] == ["➕ Add", "📥 Import a file", "➖ Remove", "📤 Export"]
    assert await stopped(app) == {ALI: "asked to stop <b>", VALI: None, GULI: None}
    assert await app.state_of() is None


async def test_one_number_added_again_and_a_note_replaced(app: Harness) -> None:
    await connect(app)
    await add(app, "901234567")
    done = await add(app, "901234567 unsubscribed, 901234568")
    assert "✅ 1 number added to the stop list." in done.text
    assert "1 was on it already." in done.text
    assert await stopped(app) == {ALI: "unsubscribed", VALI: None}


async def test_not_a_number_changes_nothing_and_waits_for_a_fix(app: Harness) -> None:
    await connect(app)
    [bad] = [await add(app, "901234567\nhello there\n12345")]
    assert "These are not phone numbers, so nothing was changed:" in bad.text
    assert "«hello there» — That is not a phone number." in bad.text
    assert "«12345» — This number is too short." in bad.text
    assert await stopped(app) == {}
    [nothing] = await app.send(", ;")
    assert "I found no phone number there." in nothing.text
    [sticker] = await app.send_sticker()
    assert "Send the numbers as a text message, or a CSV or .xlsx file." in sticker.text
    [done] = await app.send("901234567")
    assert "✅ 1 number added" in done.text


async def test_past_the_limit_nothing_is_added(app: Harness) -> None:
    await connect(app)
    await add(app, "\n".join(f"9012345{i:02d}" for i in range(10)))
    [listing] = await app.send("/stoplist")
    await app.tap(listing, "Add")
    [full] = await app.send("\n".join(f"9112345{i:02d}" for i in range(3)))
    assert (
        f"The stop list holds at most {LIMIT} numbers. It has 10, and these would add 3 more, "
        "so nothing was added." in full.text
    )
    assert len(await stopped(app)) == 10
    [fits] = await app.send("911234500, 911234501, 901234500")  # one is there already
    assert "✅ 2 numbers added" in fits.text
    assert len(await stopped(app)) == LIMIT


async def test_pages_and_removing_with_the_buttons(app: Harness) -> None:
    await connect(app)
    await add(app, "\n".join(f"9012345{i:02d}" for i in range(LIMIT)))
    [listing] = await app.send("/stoplist")
    assert "Page 1 of 2" in listing.text
    assert "1. +998 90 123 45 11" in listing.text  # newest first
    [second] = await app.tap(listing, "▶️")
    assert "Page 2 of 2" in second.text
    assert "11. +998 90 123 45 01" in second.text
    assert labels(second)[:3] == ["❌ +998 90 123 45 01", "❌ +998 90 123 45 00", "◀️"]
    drop = button_data(second, "+998 90 123 45 01")
    [after] = await app.tap(second, "+998 90 123 45 01")
    assert "✅ +998 90 123 45 01 was removed from your stop list." in app.answers()[-1].text
    assert "+998 90 123 45 01" not in after.text
    assert "901234501" not in "".join(await stopped(app))
    # The same button again (a double tap, an old copy): told, nothing else removed.
    await app.tap_data(after, drop)
    assert app.answers()[-1].text == "This number is no longer on your stop list."
    assert len(await stopped(app)) == LIMIT - 1
    # A forged page far past the end shows the last page.
    [first] = await app.tap(after, "◀️")
    assert "Page 1 of 2" in first.text
    forged = button_data(first, "▶️").replace(":1", ":999")
    [last] = await app.tap_data(first, forged)
    assert "Page 2 of 2" in last.text


async def test_another_users_entry_cannot_be_removed(app: Harness) -> None:
    await connect(app, 1)
    await connect(app, 2)
    done = await add(app, "901234567", user_id=1)
    drop = button_data(done, "+998 90 123 45 67")
    [listing] = await app.send("/stoplist", 2)
    await app.tap_data(listing, drop, user_id=2)
    assert app.answers()[-1].text == "This number is no longer on your stop list."
    assert await stopped(app, 1) == {ALI: None}


async def test_remove_typed_numbers(app: Harness) -> None:
    await connect(app)
    done = await add(app, "901234567, 901234568")
    [ask] = await app.tap(done, "Remove")
    assert "Send the numbers to remove" in ask.text
    [bad] = await app.send("nonsense")
    assert "These are not phone numbers" in bad.text
    [nothing] = await app.send(";")
    assert "I found no phone number there." in nothing.text
    [file] = await app.send_document("x.csv", b"phone\n901234567\n")
    assert "Send the numbers to remove" in file.text
    assert len(await stopped(app)) == 2
    [removed] = await app.send("+998 90 123 45 67\n912345678")
    assert "🗑 1 number removed from the stop list." in removed.text
    assert "Not on the stop list: +998 91 234 56 78" in removed.text
    assert await stopped(app) == {VALI: None}
    assert await app.state_of() is None


async def test_cancel_leaves_the_list_as_it_was(app: Harness) -> None:
    await connect(app)
    [listing] = await app.send("/stoplist")
    await app.tap(listing, "Add")
    [cancelled] = await app.send("/cancel")
    assert "Cancelled." in cancelled.text
    await app.send("901234567")  # no longer a stop-list answer
    assert await stopped(app) == {}


async def test_export_as_a_file(app: Harness) -> None:
    await connect(app)
    [empty] = await app.send("/stoplist")
    await app.tap_data(empty, button_data(empty, "Add").replace("add", "export"))
    assert app.answers()[-1].text == "Your stop list is empty."
    done = await add(app, "901234567 =cmd|' /C calc'!A0\n901234568")
    await app.tap(done, "Export")
    [file] = files(app)
    assert file.filename == "stoplist.csv"
    header, *rows = csv_rows(file.data)
    assert header == ["phone", "note", "added_at"]
    assert [row[:2] for row in rows] == [[ALI, "'=cmd|' /C calc'!A0"], [VALI, ""]]
    [caption] = [m for m in app.session.chat(1) if "Your stop list: 2 numbers." in m.text]
    assert caption


# --- importing a file --------------------------------------------------------------------------


async def test_import_csv_with_notes_and_bad_rows(app: Harness) -> None:
    await connect(app)
    [listing] = await app.send("/stoplist")
    [ask] = await app.tap(listing, "Import a file")
    assert "a column named «note» or «reason» becomes the notes" in ask.text
    content = (
        b"name,phone,reason\nAli,+998 90 123 45 67,complained\nBad,12345,x\n"
        b"Vali,901234568,\nAli again,998901234567,twice\n"
    )
    [done] = await app.send_document("optout.csv", content)
    assert "✅ 2 numbers added to the stop list." in done.text
    assert "1 row of the file has no valid number and was skipped." in done.text
    assert await stopped(app) == {ALI: "complained", VALI: None}


async def test_import_refusals_change_nothing(app: Harness) -> None:
    await connect(app)
    [listing] = await app.send("/stoplist")
    await app.tap(listing, "Import a file")
    [empty] = await app.send_document("empty.csv", b"phone\n")
    assert "There are no rows with data in it." in empty.text
    [no_column] = await app.send_document("x.csv", b"name,city\nAli,Tashkent\nVali,Bukhara\n")
    assert "I could not find a column with phone numbers" in no_column.text
    [invalid] = await app.send_document("bad.csv", b"phone\n12345\nabc\n")
    assert "I found no phone number there." in invalid.text
    [big] = await app.send_document("huge.csv", b"phone\n", file_size=25 * 1024 * 1024)
    assert "at most 20 MB" in big.text
    rows = "\n".join(f"9012345{i:02d}" for i in range(LIMIT + 1))
    [too_many] = await app.send_document("many.csv", f"phone\n{rows}\n".encode())
    assert f"more rows than the stop list can hold ({LIMIT} numbers)" in too_many.text
    assert await stopped(app) == {}
    assert await app.state_of() == "StopListForm:add"


# --- reachable from the menu, /help and /settings --------------------------------------------


async def test_command_menu_help_and_settings_lead_here(app: Harness) -> None:
    for lang, text in (
        ("en", "Numbers that never get an SMS"),
        ("ru", "Номера, которым не шлём SMS"),
        ("uz", "SMS yuborilmaydigan raqamlar"),
    ):
        menu = {c.command: c.description for c in commands_for(app.services.i18n, lang)}
        assert menu["stoplist"] == text
    await connect(app)
    [help_text] = await app.send("/help")
    assert "/stoplist — numbers that never get an SMS from you" in help_text.text
    [settings] = await app.send("/settings")
    [listing] = await app.tap(settings, "Stop list")
    assert "Your stop list is empty" in listing.text


async def test_russian_plurals(app: Harness) -> None:
    await connect(app, lang="ru")
    [listing] = await app.send("/stoplist", lang="ru")
    await app.tap(listing, "Добавить", lang="ru")
    [done] = await app.send("901234567, 901234568", lang="ru")
    assert "✅ В стоп-лист добавлено 2 номера." in done.text
    await app.tap(done, "Добавить", lang="ru")
    numbers = ", ".join(f"9112345{i:02d}" for i in range(5))
    [more] = await app.send(numbers, lang="ru")
    assert "✅ В стоп-лист добавлено 5 номеров." in more.text


# --- single sends ------------------------------------------------------------------------------


async def test_send_to_a_stopped_number_is_refused_then_goes_on_once_removed(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await add(app, "901234567 asked to stop")
    await app.send("/send")
    [refused] = await app.send("+998 90 123 45 67")
    assert "⛔ +998 90 123 45 67 is on your stop list (since " in refused.text
    assert "Note: asked to stop" in refused.text
    assert "remove it from the stop list (the button below, or /stoplist)" in refused.text
    assert labels(refused) == ["🗑 Remove from stop list"]
    # A shared contact with that number is refused the same way.
    [again] = await app.send_contact("998901234567")
    assert "is on your stop list" in again.text
    # Another number goes on as usual.
    [ask_text] = await app.send("901234568")
    assert "Now send the text of the SMS" in ask_text.text
    # Removing the first one now changes the list only: the dialog is on another number.
    [removed] = await app.tap(refused, "Remove from stop list")
    assert removed.text == "✅ +998 90 123 45 67 was removed from your stop list."
    assert await app.state_of() == "SendForm:text"
    assert await stopped(app) == {}
    assert devsms.sent == []


async def test_quick_form_refused_and_the_remove_button_brings_the_preview(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await add(app, "901234567")
    [refused] = await app.send("/send 901234567 Hello there")
    assert "is on your stop list" in refused.text
    assert "Check before sending" not in refused.text
    unstop = button_data(refused, "Remove from stop list")
    sent = await app.tap(refused, "Remove from stop list")
    assert "✅ +998 90 123 45 67 was removed from your stop list." in sent[0].text
    [preview] = [m for m in sent if "Check before sending" in m.text]
    assert "Hello there" in preview.text
    assert await stopped(app) == {}
    assert devsms.sent == []  # a preview only: Send is still the user's tap
    # The button again: the number is gone already.
    [again] = await app.tap_data(refused, unstop)
    assert again.message_id == refused.message_id
    assert again.text == "This number is no longer on your stop list."
    await app.tap(preview, "Send")
    assert [s.phone for s in devsms.sent] == [ALI]


async def test_number_stopped_after_the_preview_is_not_sent(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    [preview] = await app.send("/send 901234567 Sale today")
    assert "Check before sending" in preview.text
    # Meanwhile (another chat, an import) the number goes on the stop list.
    await app.services.stoplist.add(1, [(ALI, None)], limit=LIMIT)
    [refused] = await app.tap(preview, "Send")
    assert "⛔ Not sent: +998 90 123 45 67 is on your stop list." in refused.text
    assert "Nothing was sent or charged." in refused.text
    assert labels(refused) == ["🗑 Remove from stop list"]
    assert devsms.sent == []
    assert await app.services.outbox.recent(1, 10) == []  # no record of a send
    assert await app.state_of() == "SendForm:phone"  # the text is kept for another number


async def test_template_send_to_a_stopped_number_is_refused(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await add(app, "901234567")
    [listing] = await app.send("/templates")
    await app.tap(listing, "New template")
    await app.send("Hours")
    [saved] = await app.send("Open 9-18")
    await app.tap(saved, "Send with this text")
    [refused] = await app.send("901234567")
    assert "is on your stop list" in refused.text
    assert devsms.sent == []


# --- bulk --------------------------------------------------------------------------------------


async def test_bulk_dry_run_leaves_stopped_numbers_out_and_the_job_never_sends_them(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    await add(app, "901234567, 912345678")
    await app.send("/bulk")
    await app.send_document(
        "people.csv", b"name,phone\nAli,901234567\nVali,901234568\nGuli,912345678\n"
    )
    [review] = await app.send("Hi {name}")
    assert "✅ To send: 1" in review.text
    assert "⛔ 2 numbers on your stop list were left out." in review.text
    assert "row 2: «901234567» — on your stop list" in review.text
    sent = await app.tap(review, "Start")
    [job] = [m for m in sent if "Bulk job #" in m.text]
    async with asyncio.timeout(5):
        await devsms.wait_sent(1)
    await until(lambda: any("-result-" in (f.filename or "") for f in files(app)))
    assert [s.phone for s in devsms.sent] == [VALI]
    [summary] = [m for m in app.session.chat(1) if "finished." in m.text]
    assert "Sent: 1 · failed: 0" in summary.text
    assert "⛔ 2 numbers on your stop list were left out." in summary.text
    [result] = [f for f in files(app) if "-result-" in (f.filename or "")]
    _header, *rows = csv_rows(result.data)
    assert [(r[0], r[1], r[3], r[5]) for r in rows] == [
        ("2", ALI, "stop_list", "stop list"),
        ("3", VALI, "sent", ""),
        ("4", GULI, "stop_list", "stop list"),
    ]
    final = app.session.messages[(1, job.message_id)]
    assert "⛔ 2 numbers on your stop list were left out." in final.text
    [jobs] = await app.send("/jobs")
    assert "sent 1 of 3, failed 0, on the stop list 2" in jobs.text


async def test_bulk_one_left_out_in_russian_and_a_number_stopped_before_start(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app, lang="ru")
    await app.send("/bulk", lang="ru")
    await app.send("901234567\n901234568\n901234569", lang="ru")
    [review] = await app.send("Привет", lang="ru")
    assert "стоп-лист" not in review.text
    # Stopped between the dry run and Start: Start builds the plan again without it.
    await app.services.stoplist.add(1, [(ALI, None)], limit=LIMIT)
    [review] = await app.send("Привет", lang="ru")
    assert "⛔ 1 номер из вашего стоп-листа пропущен." in review.text
    await app.services.stoplist.add(1, [(VALI, None)], limit=LIMIT)
    await app.tap(review, "Начать", lang="ru")
    async with asyncio.timeout(5):
        await devsms.wait_sent(1)
    await until(lambda: any("-result-" in (f.filename or "") for f in files(app)))
    assert [s.phone for s in devsms.sent] == ["998901234569"]


# --- scheduled sends ---------------------------------------------------------------------------


def scheduler_of(app: Harness) -> Scheduler:
    found: Scheduler = app.dp["scheduler"]
    return found


async def tick_at(app: Harness, moment: dt.datetime) -> None:
    scheduler_of(app).now = lambda: moment
    await scheduler_of(app).tick()


async def test_a_scheduled_sms_to_a_number_stopped_meanwhile_is_not_sent(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    [preview] = await app.send(f"/send {ALI} Later")
    [ask] = [m for m in await app.tap(preview, "Send later") if "When" in m.text]
    await app.tap(ask, "In 1 hour")
    [item] = await app.services.schedule.open_of(1, 10)
    await add(app, "901234567")
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    told = app.last().text
    assert "The number is on your stop list now (see /stoplist). Nothing was sent." in told
    assert devsms.sent == []
    assert await app.services.outbox.recent(1, 10) == []


async def test_a_scheduled_bulk_job_leaves_stopped_numbers_out(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    await add(app, "901234567")
    await app.send("/bulk")
    await app.send("901234567\n901234568\n901234569\n")
    [review] = await app.send("Sale")
    assert "⛔ 1 number on your stop list was left out." in review.text
    [ask] = [m for m in await app.tap(review, "Send later") if "When" in m.text]
    await app.tap(ask, "In 1 hour")
    [item] = await app.services.schedule.open_of(1, 10)
    # Stopped after scheduling: the job's row is caught when its turn comes.
    await app.services.stoplist.add(1, [(VALI, None)], limit=LIMIT)
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    async with asyncio.timeout(5):
        await devsms.wait_sent(1)
    await until(lambda: any("-result-" in (f.filename or "") for f in files(app)))
    assert [s.phone for s in devsms.sent] == ["998901234569"]
    [summary] = [m for m in app.session.chat(1) if "finished." in m.text]
    assert "⛔ 2 numbers on your stop list were left out." in summary.text
