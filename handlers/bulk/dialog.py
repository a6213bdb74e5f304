"""/bulk: one text to many numbers from a CSV/XLSX file or a pasted list.

file or list → text (typed or a saved template) → dry-run report → Start → a background job
(services.bulk.BulkRunner) with one progress message (handlers.bulk.jobs).

The parsed list stays in memory between the steps (`SourceCache`); FSM data keeps only what
finds it again (the Telegram file id, or the pasted text), so after a restart the file is
downloaded and read once more. A list dropped from memory to stay within BULK_CACHE_MB is
asked for again instead. Files are parsed in the upload worker (services.upload_worker).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from contextlib import suppress
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.abroad import rates_for
from handlers.bulk.dry_run import (
    INVALID_SHOWN,
    list_read_text,
    no_valid_number_text,
    review_text,
    skipped_file,
    unknown_placeholders_text,
    unreadable_text,
)
from handlers.bulk.lists import Lists
from handlers.callbacks import BulkCb
from handlers.config import HandlerSettings
from handlers.keyboards import (
    bulk_review_keyboard,
    bulk_start_keyboard,
    bulk_templates_keyboard,
)
from handlers.plural import ngettext
from handlers.render import count
from handlers.states import BulkForm
from handlers.templates.render import EXAMPLE_PLACEHOLDER, template_buttons, template_error_text
from handlers.uploads import download_document
from services.accounts import Accounts
from services.bulk_plan import (
    PASTED,
    NoPhoneColumn,
    Source,
    SourceCache,
    make_plans,
)
from services.spreadsheet import SpreadsheetError
from services.templating import TemplateError, check_template
from services.upload_worker import UploadWorker
from storage import ContactRepo, OutboxRepo, StopListRepo, TemplateRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)


# --- step 1: the list ----------------------------------------------------------------------------


async def start_bulk(
    message: Message,
    state: FSMContext,
    bulk_sources: SourceCache,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    await state.clear()
    bulk_sources.drop(user_row.id)
    await state.set_state(BulkForm.source)
    await message.answer(
        _("📦 <b>Bulk sending</b>")
        + "\n"
        + ngettext(
            "Send a CSV or Excel (.xlsx) file with a column of phone numbers, up to {limit} "
            "row, or paste the numbers as a message, one per line.",
            "Send a CSV or Excel (.xlsx) file with a column of phone numbers, up to {limit} "
            "rows, or paste the numbers as a message, one per line.",
            settings.bulk_max_rows,
        ).format(limit=count(settings.bulk_max_rows))
        + "\n"
        + _(
            "Other columns can fill the text: {example} is replaced with the «name» column."
        ).format(example=EXAMPLE_PLACEHOLDER)
        + "\n"
        + _("/cancel stops."),
        reply_markup=bulk_start_keyboard(),
    )


async def document_received(
    message: Message,
    bot: Bot,
    state: FSMContext,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    templates: TemplateRepo,
    contacts: ContactRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    upload = await download_document(message, bot)
    if upload is None:
        return
    content, name = upload
    assert message.document is not None
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    found_by = {"file_id": message.document.file_id}
    await take_source(message, state, lists, templates, settings, content, name, found_by)


async def list_pasted(
    message: Message,
    bot: Bot,
    state: FSMContext,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    templates: TemplateRepo,
    contacts: ContactRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    # "901234567, 901234568; ..." on one line is a list too: one number per line for the reader.
    text = message.text.replace(",", "\n").replace(";", "\n")
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    found_by = {"pasted": text}
    await take_source(message, state, lists, templates, settings, text.encode(), PASTED, found_by)


async def take_source(
    message: Message,
    state: FSMContext,
    lists: Lists,
    templates: TemplateRepo,
    settings: HandlerSettings,
    data: bytes,
    file_name: str,
    found_by: dict[str, str],
) -> None:
    key = hashlib.sha256(data).hexdigest()
    try:
        source = await lists.parse(data, file_name, key)
    except (SpreadsheetError, NoPhoneColumn) as exc:
        await message.answer(unreadable_text(exc))
        return
    if not source.recipients.valid:
        await message.answer(no_valid_number_text(source, settings.sms_max_parts))
        return
    await offer_text(message, state, lists, templates, source, found_by)


async def offer_text(
    message: Message,
    state: FSMContext,
    lists: Lists,
    templates: TemplateRepo,
    source: Source,
    found_by: dict[str, str],
) -> None:
    """The list is read: keep it and ask for the text. A file, a pasted list and a contact
    group (handlers.contacts) all go on from here the same way."""
    lists.sources.put(lists.user_id, source)
    draft = secrets.randbelow(1_000_000_000)
    await state.set_state(BulkForm.text)
    found_by = {"key": source.key, "name": source.file_name or PASTED, **found_by}
    await state.set_data({"src": found_by, "draft": draft})
    saved = await templates.list(lists.user_id)
    keyboard = bulk_templates_keyboard(draft, template_buttons(saved)) if saved else None
    await message.answer(
        list_read_text(source, offer_templates=bool(saved)), reply_markup=keyboard
    )


async def source_not_understood(message: Message) -> None:
    await message.answer(
        _("Send a CSV or .xlsx file, or paste the phone numbers as a message.")
        + "\n"
        + _("/cancel stops.")
    )


# --- step 2: the text ---------------------------------------------------------------------------


async def text_not_understood(message: Message) -> None:
    await message.answer(
        _("Send the text of the SMS as a message, or a new file.") + "\n" + _("/cancel stops.")
    )


async def text_received(
    message: Message,
    bot: Bot,
    state: FSMContext,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    contacts: ContactRepo,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    await take_template(message, state, lists, accounts, stoplist, outbox, settings, message.text)


async def template_picked(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: BulkCb,
    message: Message,
    bot: Bot,
    state: FSMContext,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    templates: TemplateRepo,
    contacts: ContactRepo,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    data = await state.get_data()
    step = await state.get_state()
    if (
        step not in (BulkForm.text.state, BulkForm.review.state)
        or data.get("draft") != callback_data.draft
    ):
        await stale(callback_answer, message)
        return
    row = await templates.get(user_row.id, callback_data.tpl)
    if row is None:
        callback_answer.text = _("This template no longer exists.")
        return
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    await take_template(message, state, lists, accounts, stoplist, outbox, settings, row.body)


async def take_template(
    message: Message,
    state: FSMContext,
    lists: Lists,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    template: str,
) -> None:
    template = template.strip()
    if not template:
        await message.answer(_("The SMS text cannot be empty. Send the text."))
        return
    data = await state.get_data()
    source = await lists.load(data)
    if source is None:
        await lost_source(message, state, lists, data)
        return
    try:
        unknown = check_template(template, source.columns)
    except TemplateError as exc:
        await message.answer(template_error_text(exc) + "\n" + _("Send the corrected text."))
        return
    if unknown:
        await message.answer(unknown_placeholders_text(unknown, source.columns))
        return
    max_parts = settings.sms_max_parts
    plan, cheaper = await make_plans(
        source, template, max_parts, stoplist=stoplist, user_id=lists.user_id
    )
    balance = await accounts.recent_balance(lists.user_id)
    rates = await rates_for(outbox, lists.user_id, plan)
    review = secrets.randbelow(1_000_000_000)
    await state.set_state(BulkForm.review)
    await state.update_data(template=template, review=review)
    if len(plan.skipped) > INVALID_SHOWN:
        # The whole list as a file, before the report: the report's buttons stay last.
        await message.answer_document(
            BufferedInputFile(
                await asyncio.to_thread(
                    skipped_file, plan.skipped, source.result_format, max_parts
                ),
                filename=f"skipped.{source.result_format}",
            ),
            caption=ngettext(
                "The {n} row that will be skipped.",
                "All {n} rows that will be skipped.",
                len(plan.skipped),
            ).format(n=count(len(plan.skipped))),
        )
    text, can_start = review_text(source, template, plan, balance, max_parts, rates, cheaper)
    keyboard = bulk_review_keyboard(review, can_start=can_start, cheaper=cheaper is not None)
    await message.answer(text, reply_markup=keyboard)


# --- shared with step 3 (handlers/bulk/start.py) and other dialogs -----------------------------


async def live_review(
    callback_answer: CallbackAnswer, callback_data: BulkCb, message: Message, state: FSMContext
) -> dict[str, Any] | None:
    """The draft the tapped report shows, or None (and the tap is told so) for an older
    report, a second tap, or a button from before a restart."""
    data = await state.get_data()
    current = await state.get_state() == BulkForm.review.state
    if current and data.get("review") == callback_data.draft:
        return data
    await stale(callback_answer, message)
    return None


async def lost_source(
    message: Message, state: FSMContext, lists: Lists, data: dict[str, Any]
) -> None:
    if isinstance(data.get("src"), dict) and "group" in data["src"]:
        # A group is read again from the database whenever needed (Lists.load): it is gone.
        lists.sources.drop(lists.user_id)
        await state.clear()
        await message.answer(
            _(
                "The group changed or was deleted after the report. Open it again in "
                "/contacts and send to it from there."
            )
        )
        return
    if lists.evicted(data):
        # Dropped to keep memory within BULK_CACHE_MB while many lists were being prepared.
        lists.sources.drop(lists.user_id)
        await state.set_state(BulkForm.source)
        await state.set_data({})
        await message.answer(
            _(
                "Many lists were being prepared at once, and yours was set aside to save "
                "memory. Please send the file or the list again."
            )
            + "\n"
            + _("/cancel stops.")
        )
        return
    await state.clear()
    await message.answer(_("I no longer have the list. Start again with /bulk."))


async def stale(callback_answer: CallbackAnswer, message: Message) -> None:
    callback_answer.text = _("This button is no longer active.")
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
