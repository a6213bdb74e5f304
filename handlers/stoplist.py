"""/stoplist: numbers that must never get an SMS from this user's account.

The list itself lives in storage.StopListRepo; the send paths read it where every send passes
(services.sending.SmsSender, services.bulk.BulkRunner, services.bulk_plan.make_plan). Here:
the list in pages, adding numbers (typed, pasted or a CSV/XLSX file read by the bulk reader in
the upload worker), removing them (a button each, or typed), and an export as a file.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Final

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.dry_run import (
    unreadable_text,
)
from handlers.callbacks import ID_MAX, StopAction, StopCb
from handlers.config import HandlerSettings
from handlers.filters import Accessible, AnyMenuButton
from handlers.keyboards import stoplist_keyboard
from handlers.plural import ngettext
from handlers.send_preview import show_preview
from handlers.states import SendForm, StopListForm
from handlers.stoplist_texts import (
    PAGE_SIZE,
    added_text,
    ask_add_text,
    ask_import_text,
    ask_remove_text,
    file_too_long_text,
    full_text,
    invalid_numbers_text,
    list_text,
    no_numbers_text,
    not_understood_text,
    removed_text,
    shown_phone,
    unstopped_text,
)
from handlers.uploads import download_document
from handlers.utils import AnswerCallbacks, edit_or_keep
from services.accounts import Accounts
from services.bulk_plan import NoPhoneColumn, read_upload
from services.spreadsheet import SpreadsheetError, TooManyRows, write_result
from services.stoplist import imported, note_column, parse_typed
from services.upload_worker import UploadWorker
from storage import OutboxRepo, StopListFull, StopListRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)

EXPORT_HEADER: Final = ("phone", "note", "added_at")
# The phone column of the export is the bot's own digits; notes are user text (neutralised).
EXPORT_OWN_COLUMNS: Final = (0,)


# --- the list --------------------------------------------------------------------------------


async def render_list(
    stoplist: StopListRepo, user_id: int, page: int, limit: int
) -> tuple[str, InlineKeyboardMarkup]:
    """A page of the list; a forged or stale page number is clamped to the pages there are."""
    total = await stoplist.count(user_id)
    page = min(max(page, 0), max((total - 1) // PAGE_SIZE, 0))
    entries = await stoplist.page(user_id, PAGE_SIZE, page * PAGE_SIZE)
    buttons = [(entry.id, shown_phone(entry.phone)) for entry in entries]
    more = (page + 1) * PAGE_SIZE < total
    return list_text(entries, page, total, limit), stoplist_keyboard(buttons, page, more=more)


async def show_stoplist(
    message: Message,
    state: FSMContext,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    await state.clear()
    text, keyboard = await render_list(stoplist, user_row.id, 0, settings.stoplist_limit)
    await message.answer(text, reply_markup=keyboard)


async def open_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    """From /settings: the list as a new message."""
    await show_stoplist(message, state, stoplist, settings, user_row)


async def page_button(
    query: CallbackQuery,
    callback_data: StopCb,
    message: Message,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    text, keyboard = await render_list(
        stoplist, user_row.id, callback_data.page, settings.stoplist_limit
    )
    await edit_or_keep(message, text, keyboard)


async def drop_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: StopCb,
    message: Message,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    """❌ beside a number: removes it and shows the same page again."""
    removed = await stoplist.remove_entry(user_row.id, callback_data.entry)
    if removed is None:
        callback_answer.text = _("This number is no longer on your stop list.")
    else:
        callback_answer.text = unstopped_text(removed)
    text, keyboard = await render_list(
        stoplist, user_row.id, callback_data.page, settings.stoplist_limit
    )
    await edit_or_keep(message, text, keyboard)


async def unstop_button(
    query: CallbackQuery,
    callback_data: StopCb,
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    """ "Remove from stop list" under a refused send. When that send's draft still waits for a
    number, its preview follows (sending still needs the user's tap on Send)."""
    removed = await stoplist.remove_entry(user_row.id, callback_data.entry)
    if removed is None:
        await edit_or_keep(message, _("This number is no longer on your stop list."))
        return
    logger.info("user %s removed a number from the stop list", user_row.id)
    await edit_or_keep(message, unstopped_text(removed))
    data = await state.get_data()
    waiting = await state.get_state() == SendForm.phone.state
    if waiting and data.get("phone") == removed.phone and data.get("text"):
        await show_preview(message, state, accounts, stoplist, outbox, settings, user_row)


async def add_button(
    query: CallbackQuery, message: Message, state: FSMContext, settings: HandlerSettings
) -> None:
    await state.set_state(StopListForm.add)
    await message.answer(ask_add_text(settings.stoplist_limit))


async def import_button(
    query: CallbackQuery, message: Message, state: FSMContext, settings: HandlerSettings
) -> None:
    """The same step as Add (a file or typed numbers), asked for a file."""
    await state.set_state(StopListForm.add)
    await message.answer(ask_import_text(settings.stoplist_limit))


async def remove_button(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    await state.set_state(StopListForm.remove)
    await message.answer(ask_remove_text())


async def export_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    stoplist: StopListRepo,
    user_row: UserRow,
) -> None:
    entries = await stoplist.all(user_row.id)
    if not entries:
        callback_answer.text = _("Your stop list is empty.")
        callback_answer.show_alert = True
        return
    rows = [(entry.phone, entry.note or "", entry.added_at) for entry in entries]
    data = await asyncio.to_thread(
        write_result, "csv", EXPORT_HEADER, rows, own_columns=EXPORT_OWN_COLUMNS
    )
    await message.answer_document(
        BufferedInputFile(data, filename="stoplist.csv"),
        caption=ngettext(
            "Your stop list: {n} number.", "Your stop list: {n} numbers.", len(entries)
        ).format(n=len(entries)),
    )


# --- adding and removing ---------------------------------------------------------------------


async def numbers_typed(
    message: Message,
    state: FSMContext,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    typed = parse_typed(message.text)
    if typed.invalid:
        await message.answer(invalid_numbers_text(typed.invalid))
        return
    await add_numbers(message, state, stoplist, settings, user_row, typed.numbers)


async def add_numbers(
    message: Message,
    state: FSMContext,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
    numbers: dict[str, str | None],
    skipped_rows: int = 0,
) -> None:
    """All or nothing: past the limit nothing is added and the dialog waits for fewer."""
    if not numbers:
        await message.answer(no_numbers_text())
        return
    try:
        result = await stoplist.add(
            user_row.id, list(numbers.items()), limit=settings.stoplist_limit
        )
    except StopListFull as exc:
        await message.answer(full_text(exc) + "\n" + _("/cancel stops."))
        return
    await state.clear()
    logger.info("user %s added %s numbers to the stop list", user_row.id, result.added)
    text, keyboard = await render_list(stoplist, user_row.id, 0, settings.stoplist_limit)
    await message.answer(added_text(result, skipped_rows) + "\n\n" + text, reply_markup=keyboard)


async def file_received(
    message: Message,
    bot: Bot,
    state: FSMContext,
    stoplist: StopListRepo,
    uploads: UploadWorker,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    """A CSV/XLSX file: its phone column, read like a /bulk list in the upload worker (limits
    on memory and time); a column named note/reason gives the notes."""
    upload = await download_document(message, bot)
    if upload is None:
        return
    content, name = upload
    key = hashlib.sha256(content).hexdigest()
    try:
        packed = await uploads.run(read_upload, content, name, key, settings.stoplist_limit)
        source = await asyncio.to_thread(packed.unpack)
    except TooManyRows:
        await message.answer(file_too_long_text(settings.stoplist_limit))
        return
    except (SpreadsheetError, NoPhoneColumn) as exc:
        await message.answer(unreadable_text(exc))
        return
    numbers = imported(source.recipients.valid, note_column(source.columns))
    skipped = len(source.recipients.invalid)
    await add_numbers(message, state, stoplist, settings, user_row, numbers, skipped)


async def numbers_to_remove(
    message: Message,
    state: FSMContext,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    typed = parse_typed(message.text)
    if typed.invalid:
        await message.answer(invalid_numbers_text(typed.invalid))
        return
    if not typed.numbers:
        await message.answer(no_numbers_text())
        return
    removed = await stoplist.remove(user_row.id, list(typed.numbers))
    await state.clear()
    missing = [typed.shown[phone] for phone in typed.numbers if phone not in removed]
    shown = [typed.shown[phone] for phone in typed.numbers if phone in removed]
    text, keyboard = await render_list(stoplist, user_row.id, 0, settings.stoplist_limit)
    await message.answer(removed_text(shown, missing) + "\n\n" + text, reply_markup=keyboard)


async def not_understood(message: Message) -> None:
    await message.answer(not_understood_text())


async def remove_not_understood(message: Message) -> None:
    await message.answer(ask_remove_text())


def create_router() -> Router:
    router = Router(name="stoplist")
    # Every button is answered once, after its handler (a text or an alert when it set one).
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(show_stoplist, Command("stoplist"))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(numbers_typed, StopListForm.add, *free_text)
    router.message.register(file_received, StopListForm.add, F.document)
    router.message.register(numbers_to_remove, StopListForm.remove, *free_text)
    router.message.register(not_understood, StopListForm.add, ~F.text)
    router.message.register(remove_not_understood, StopListForm.remove, ~F.text)
    entry_fits = (F.entry >= 0) & (F.entry <= ID_MAX)
    buttons = (
        (StopCb.filter(F.action == StopAction.OPEN), open_button),
        (StopCb.filter(F.action == StopAction.PAGE), page_button),
        (StopCb.filter((F.action == StopAction.DROP) & entry_fits), drop_button),
        (StopCb.filter((F.action == StopAction.UNSTOP) & entry_fits), unstop_button),
        (StopCb.filter(F.action == StopAction.ADD), add_button),
        (StopCb.filter(F.action == StopAction.IMPORT), import_button),
        (StopCb.filter(F.action == StopAction.REMOVE), remove_button),
        (StopCb.filter(F.action == StopAction.EXPORT), export_button),
    )
    for flt, button in buttons:
        router.callback_query.register(button, flt, Accessible())
    return router
