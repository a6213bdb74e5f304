"""Contacts in and out as files: an import (CSV/XLSX or pasted lines, read by the bulk
reader in the upload worker, saved in one transaction) and an export (CSV or XLSX)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from aiogram import Bot, html
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.dry_run import unreadable_text
from handlers.callbacks import ContactCb, GroupCb
from handlers.config import HandlerSettings
from handlers.contacts.groups import existing_group
from handlers.contacts.views import import_summary, nothing_usable_text, shown
from handlers.plural import ngettext
from handlers.render import count
from handlers.states import ContactForm
from handlers.uploads import download_document
from services.bulk_plan import NoPhoneColumn
from services.contacts import (
    PASTED_CONTACTS,
    ContactsFile,
    Member,
    export_file,
    merge_imported,
    read_contacts,
)
from services.spreadsheet import ResultFormat, SpreadsheetError
from services.upload_worker import UploadWorker
from storage import ContactLimit, ContactRepo, NewContact

logger = logging.getLogger(__name__)


async def import_button(
    query: CallbackQuery, message: Message, state: FSMContext, settings: HandlerSettings
) -> None:
    await ask_file(message, state, settings, None)


async def group_import_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    state: FSMContext,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    group = await existing_group(
        query, callback_answer, callback_data, message, contacts, settings
    )
    if group is not None:
        await ask_file(message, state, settings, (group.id, group.name))


async def ask_file(
    message: Message,
    state: FSMContext,
    settings: HandlerSettings,
    group: tuple[int, str] | None,
) -> None:
    await state.set_state(ContactForm.import_file)
    await state.set_data({} if group is None else {"group": group[0]})
    lines = [
        ngettext(
            "Send a CSV or Excel (.xlsx) file with a column of phone numbers, up to {limit} "
            "row, or paste «name, phone» lines as a message. A «name» column names the "
            "contacts; other columns become their fields.",
            "Send a CSV or Excel (.xlsx) file with a column of phone numbers, up to {limit} "
            "rows, or paste «name, phone» lines as a message. A «name» column names the "
            "contacts; other columns become their fields.",
            settings.contacts_limit,
        ).format(limit=count(settings.contacts_limit))
    ]
    if group is not None:
        lines.append(
            _("They will be put into the group «{name}» too.").format(
                name=html.quote(shown(group[1]))
            )
        )
    lines.append(_("/cancel stops."))
    await message.answer("\n".join(lines))


async def file_received(
    message: Message,
    bot: Bot,
    state: FSMContext,
    uploads: UploadWorker,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    upload = await download_document(message, bot)
    if upload is None:
        return
    content, name = upload
    limit = settings.contacts_limit
    await take_file(
        message, state, contacts, settings, uploads.run(read_contacts, content, name, limit)
    )


async def lines_pasted(
    message: Message, state: FSMContext, contacts: ContactRepo, settings: HandlerSettings
) -> None:
    assert message.text is not None
    # "Ali, 90..." on one line and "Vali; 90..." on the next: one delimiter for the reader.
    text = message.text.replace(";", ",").replace("\t", ",")
    # One message (at most 4096 characters): small enough for a thread, no process needed.
    reading = asyncio.to_thread(
        read_contacts, text.encode(), PASTED_CONTACTS, settings.contacts_limit
    )
    await take_file(message, state, contacts, settings, reading)


async def take_file(
    message: Message,
    state: FSMContext,
    contacts: ContactRepo,
    settings: HandlerSettings,
    reading: Awaitable[ContactsFile],
) -> None:
    assert message.from_user is not None
    try:
        read = await reading
    except (SpreadsheetError, NoPhoneColumn) as exc:
        await message.answer(unreadable_text(exc))
        return
    if not read.rows:
        await message.answer(nothing_usable_text(read))
        return
    group_id = (await state.get_data()).get("group")
    user_id = message.from_user.id
    group = await contacts.get_group(user_id, group_id) if isinstance(group_id, int) else None
    rows = [NewContact(r.phone, r.name, r.fallback_name, r.fields) for r in read.rows]
    try:
        done = await contacts.import_rows(
            user_id,
            rows,
            limit=settings.contacts_limit,
            group_id=None if group is None else group.id,
            merge=merge_imported,
        )
    except ContactLimit as exc:
        await message.answer(over_limit_text(exc) + "\n" + _("/cancel stops."))
        return
    await state.clear()
    if group is not None:
        group = await contacts.get_group(user_id, group.id)
    logger.info("user %s imported %s contacts (%s new)", user_id, len(rows), done.added)
    await message.answer(import_summary(read, done, group))


def over_limit_text(exc: ContactLimit) -> str:
    total = exc.have + exc.adding
    return ngettext(
        "This would bring your address book to {total} contact, over the limit of "
        "{limit}. Nothing was imported: leave enough new numbers out of the file (at "
        "least {excess}), or delete some contacts, then send it again.",
        "This would bring your address book to {total} contacts, over the limit of "
        "{limit}. Nothing was imported: leave enough new numbers out of the file (at "
        "least {excess}), or delete some contacts, then send it again.",
        total,
    ).format(total=count(total), limit=count(exc.limit), excess=count(total - exc.limit))


async def export_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ContactCb,
    message: Message,
    contacts: ContactRepo,
) -> None:
    user_id = query.from_user.id
    rows = await contacts.everyone(user_id)
    if not rows:
        callback_answer.text = _("You have no contacts to export yet.")
        callback_answer.show_alert = True
        return
    groups = await contacts.group_names(user_id)
    fmt: ResultFormat = "xlsx" if callback_data.page == 1 else "csv"
    people = [(Member(r.name, r.phone, r.fields), groups.get(r.id, [])) for r in rows]
    data = await asyncio.to_thread(export_file, people, fmt)
    await message.answer_document(
        BufferedInputFile(data, filename=f"contacts.{fmt}"),
        caption=_("Your contacts: {n}.").format(n=count(len(rows))),
    )
