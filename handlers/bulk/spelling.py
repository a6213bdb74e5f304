"""The dry run's "cheaper spelling": the template with plain apostrophes and quotes, and a new
dry run of it (services.sms_parts.cheaper_spelling, as the single send's preview offers)."""

from __future__ import annotations

from contextlib import suppress

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.dialog import live_review, stale, take_template
from handlers.bulk.lists import Lists
from handlers.callbacks import BulkCb
from handlers.config import HandlerSettings
from services.accounts import Accounts
from services.bulk_plan import SourceCache
from services.sms_parts import cheaper_spelling
from services.upload_worker import UploadWorker
from storage import ContactRepo, OutboxRepo, StopListRepo
from storage.users import UserRow


async def cheaper_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: BulkCb,
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
    """The template with plain apostrophes and quotes, and a new dry run of it."""
    data = await live_review(callback_answer, callback_data, message, state)
    if data is None:
        return
    cheaper = cheaper_spelling(data["template"])
    if cheaper is None:
        await stale(callback_answer, message)
        return
    callback_answer.text = _("Apostrophes and quotes replaced with plain ones.")
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    await take_template(message, state, lists, accounts, stoplist, outbox, settings, cheaper)
