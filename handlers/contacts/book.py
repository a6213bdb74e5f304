"""/contacts: the address book's pages, search, and one contact: add, rename, fields, delete."""

from __future__ import annotations

import logging
from contextlib import suppress

from aiogram import html
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import ContactAction, ContactCb
from handlers.config import HandlerSettings
from handlers.contacts.views import (
    ADD_EXAMPLE,
    PAGE_SIZE,
    SEARCH_SHOWN,
    book_view,
    contact_delete_view,
    contact_view,
    input_error_text,
    pages,
    search_view,
    shared_phone_error_text,
    shown,
)
from handlers.plural import ngettext
from handlers.render import count
from handlers.states import ContactForm
from handlers.utils import edit_or_keep
from services.contacts import (
    SEARCH_MAX,
    ContactInputError,
    clean_name,
    merge_fields,
    parse_fields,
    parse_typed,
)
from services.phones import InvalidPhone, normalize_phone
from storage import ContactLimit, ContactRepo, ContactRow

logger = logging.getLogger(__name__)


def limit_text(limit: int) -> str:
    return ngettext(
        "You have {n} contact, the most I keep. Delete it first.",
        "You have {n} contacts, the most I keep. Delete some first.",
        limit,
    ).format(n=count(limit))


async def book_page(
    contacts: ContactRepo, user_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    total = await contacts.count(user_id)
    page = min(max(page, 0), pages(total, PAGE_SIZE) - 1)
    rows = await contacts.page(user_id, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    return book_view(rows, total, await contacts.count_groups(user_id), page)


async def show_book(message: Message, state: FSMContext, contacts: ContactRepo) -> None:
    assert message.from_user is not None
    await state.clear()
    text, keyboard = await book_page(contacts, message.from_user.id, 0)
    await message.answer(text, reply_markup=keyboard)


async def list_button(
    query: CallbackQuery, callback_data: ContactCb, message: Message, contacts: ContactRepo
) -> None:
    text, keyboard = await book_page(contacts, query.from_user.id, callback_data.page)
    await edit_or_keep(message, text, keyboard)


async def existing(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    contact_id: int,
    message: Message,
    contacts: ContactRepo,
) -> ContactRow | None:
    """The tapped contact; if it is gone (deleted meanwhile, a forged id) the tap is told and
    the address book shown instead."""
    row = await contacts.get(query.from_user.id, contact_id)
    if row is None:
        callback_answer.text = _("This contact no longer exists.")
        with suppress(TelegramBadRequest):
            text, keyboard = await book_page(contacts, query.from_user.id, 0)
            await edit_or_keep(message, text, keyboard)
    return row


async def card(contacts: ContactRepo, row: ContactRow) -> tuple[str, InlineKeyboardMarkup]:
    return contact_view(row, await contacts.groups_of(row.user_id, row.id))


async def open_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ContactCb,
    message: Message,
    contacts: ContactRepo,
) -> None:
    row = await existing(query, callback_answer, callback_data.id, message, contacts)
    if row is not None:
        text, keyboard = await card(contacts, row)
        await edit_or_keep(message, text, keyboard)


async def show_card(message: Message, contacts: ContactRepo, row: ContactRow, head: str) -> None:
    text, keyboard = await card(contacts, row)
    await message.answer(head + "\n\n" + text, reply_markup=keyboard)


# --- add ------------------------------------------------------------------------------------


async def add_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    if await contacts.count(query.from_user.id) >= settings.contacts_limit:
        callback_answer.text = limit_text(settings.contacts_limit)
        callback_answer.show_alert = True
        return
    await state.set_state(ContactForm.add)
    await state.set_data({})
    await message.answer(
        _(
            "Send the contact as «name, phone», e.g. «{example}», or share a Telegram contact "
            "(📎 → Contact)."
        ).format(example=ADD_EXAMPLE)
        + "\n"
        + _("/cancel stops.")
    )


async def add_typed(
    message: Message, state: FSMContext, contacts: ContactRepo, settings: HandlerSettings
) -> None:
    assert message.text is not None
    try:
        name, phone = parse_typed(message.text)
    except ContactInputError as exc:
        await message.answer(input_error_text(exc) + "\n" + _("/cancel stops."))
        return
    await save_new(message, state, contacts, settings, name, phone.digits)


async def add_shared(
    message: Message, state: FSMContext, contacts: ContactRepo, settings: HandlerSettings
) -> None:
    shared = message.contact
    assert shared is not None
    try:
        phone = normalize_phone(shared.phone_number)
        name = clean_name(f"{shared.first_name} {shared.last_name or ''}")
    except InvalidPhone as exc:
        await message.answer(shared_phone_error_text(exc.reason))
        return
    except ContactInputError as exc:
        await message.answer(input_error_text(exc) + "\n" + _("/cancel stops."))
        return
    await save_new(message, state, contacts, settings, name, phone.digits)


async def save_new(
    message: Message,
    state: FSMContext,
    contacts: ContactRepo,
    settings: HandlerSettings,
    name: str,
    phone: str,
) -> None:
    assert message.from_user is not None
    try:
        row, created = await contacts.add(
            message.from_user.id, name, phone, {}, limit=settings.contacts_limit
        )
    except ContactLimit:
        await state.clear()
        await message.answer(limit_text(settings.contacts_limit))
        return
    await state.clear()
    head = (
        _("✅ Contact saved.")
        if created
        else _("✅ You had this number already: its name is updated.")
    )
    await show_card(message, contacts, row, head)


async def add_not_understood(message: Message) -> None:
    await message.answer(
        _("Send «name, phone» as a text, e.g. «{example}», or share a contact.").format(
            example=ADD_EXAMPLE
        )
        + "\n"
        + _("/cancel stops.")
    )


# --- search ---------------------------------------------------------------------------------


async def search_button(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    await state.set_state(ContactForm.search)
    await state.set_data({})
    await message.answer(
        ngettext(
            "Send part of a name or of a number (up to {n} character).",
            "Send part of a name or of a number (up to {n} characters).",
            SEARCH_MAX,
        ).format(n=SEARCH_MAX)
        + "\n"
        + _("/cancel stops.")
    )


async def search_received(message: Message, contacts: ContactRepo) -> None:
    assert message.text is not None and message.from_user is not None
    text = " ".join(message.text.split())
    if len(text) > SEARCH_MAX:
        await message.answer(
            ngettext(
                "That is too long: at most {n} character.",
                "That is too long: at most {n} characters.",
                SEARCH_MAX,
            ).format(n=SEARCH_MAX)
            + "\n"
            + _("/cancel stops.")
        )
        return
    digits = "".join(ch for ch in text if ch.isdecimal() and ch.isascii())
    # A number is searched for from three digits on; fewer match almost everyone.
    rows = await contacts.search(
        message.from_user.id, text, digits if len(digits) >= 3 else "", SEARCH_SHOWN
    )
    found, keyboard = search_view(rows, text)
    # The state stays: the next text is another search, until /cancel or a button.
    await message.answer(found, reply_markup=keyboard)


# --- one contact ----------------------------------------------------------------------------


async def change_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ContactCb,
    message: Message,
    state: FSMContext,
    contacts: ContactRepo,
) -> None:
    """Rename or Fields: asks for the new name or the fields."""
    row = await existing(query, callback_answer, callback_data.id, message, contacts)
    if row is None:
        return
    rename = callback_data.action is ContactAction.RENAME
    await state.set_state(ContactForm.rename if rename else ContactForm.fields)
    await state.set_data({"contact": row.id})
    if rename:
        ask = _("Send the new name for «{name}».")
    else:
        ask = _(
            "Send the fields of «{name}», one per line as «name: value», e.g. «city: Tashkent». "
            "An empty value removes a field. They fill the placeholders of a group send."
        )
    await message.answer(
        ask.format(name=html.quote(shown(row.name))) + "\n" + _("/cancel keeps the current one.")
    )


async def editing(message: Message, state: FSMContext, contacts: ContactRepo) -> ContactRow | None:
    """The contact a rename or a fields change is for; None (and said) when it is gone."""
    assert message.from_user is not None
    contact_id = (await state.get_data()).get("contact")
    row = None
    if isinstance(contact_id, int):
        row = await contacts.get(message.from_user.id, contact_id)
    if row is None:
        await state.clear()
        await message.answer(_("This contact no longer exists."))
    return row


async def rename_received(message: Message, state: FSMContext, contacts: ContactRepo) -> None:
    assert message.text is not None
    row = await editing(message, state, contacts)
    if row is None:
        return
    try:
        name = clean_name(message.text)
    except ContactInputError as exc:
        await message.answer(input_error_text(exc) + "\n" + _("/cancel keeps the current one."))
        return
    await contacts.rename(row.user_id, row.id, name)
    await state.clear()
    updated = await contacts.get(row.user_id, row.id)
    if updated is not None:
        await show_card(message, contacts, updated, _("✅ Contact saved."))


async def fields_received(message: Message, state: FSMContext, contacts: ContactRepo) -> None:
    assert message.text is not None
    row = await editing(message, state, contacts)
    if row is None:
        return
    try:
        fields = merge_fields(row.fields, parse_fields(message.text))
    except ContactInputError as exc:
        await message.answer(input_error_text(exc) + "\n" + _("/cancel keeps the current one."))
        return
    await contacts.set_fields(row.user_id, row.id, fields)
    await state.clear()
    updated = await contacts.get(row.user_id, row.id)
    if updated is not None:
        await show_card(message, contacts, updated, _("✅ Contact saved."))


async def delete_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ContactCb,
    message: Message,
    contacts: ContactRepo,
) -> None:
    row = await existing(query, callback_answer, callback_data.id, message, contacts)
    if row is not None:
        await edit_or_keep(message, *contact_delete_view(row))


async def drop_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ContactCb,
    message: Message,
    contacts: ContactRepo,
) -> None:
    row = await existing(query, callback_answer, callback_data.id, message, contacts)
    if row is None:
        return
    await contacts.delete(row.user_id, row.id)
    callback_answer.text = _("Contact deleted.")
    text, keyboard = await book_page(contacts, row.user_id, 0)
    await edit_or_keep(message, text, keyboard)


async def not_text(message: Message) -> None:
    await message.answer(_("Send it as a text message, or /cancel."))
