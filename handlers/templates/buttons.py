"""/templates: the list and the buttons under a template (open, use in /send, rename, edit,
delete). Taps are answered by AnswerCallbacks (see create_router)."""

from __future__ import annotations

from contextlib import suppress

from aiogram import html
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import TemplateAction, TemplateCb
from handlers.config import HandlerSettings
from handlers.keyboards import phone_keyboard, template_delete_keyboard, templates_keyboard
from handlers.plural import ngettext
from handlers.render import too_many_parts_text
from handlers.send_texts import ask_phone_text
from handlers.states import SendForm, TemplateForm
from handlers.templates.render import (
    EXAMPLE_PLACEHOLDER,
    MAX_TEMPLATES,
    ask_name_text,
    shown_name,
    template_buttons,
    template_view,
)
from handlers.utils import edit_or_keep
from services.sms_parts import TooManyParts, check_parts
from services.templating import placeholders
from storage import TemplateRepo, TemplateRow
from storage.users import UserRow


async def list_view(templates: TemplateRepo, user_id: int) -> tuple[str, InlineKeyboardMarkup]:
    rows = await templates.list(user_id)
    if rows:
        text = (
            _("📄 <b>Your templates</b> ({n})").format(n=len(rows))
            + "\n"
            + _("Tap one to see, change or use it.")
        )
    else:
        text = _(
            "📄 You have no templates yet. A template is a saved SMS text; placeholders such as "
            "{example} are filled from spreadsheet columns in /bulk."
        ).format(example=EXAMPLE_PLACEHOLDER)
    keyboard = templates_keyboard(template_buttons(rows), can_add=len(rows) < MAX_TEMPLATES)
    return text, keyboard


async def list_button(
    query: CallbackQuery, message: Message, templates: TemplateRepo, user_row: UserRow
) -> None:
    await edit_or_keep(message, *await list_view(templates, user_row.id))


async def new_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    templates: TemplateRepo,
    user_row: UserRow,
) -> None:
    if len(await templates.list(user_row.id)) >= MAX_TEMPLATES:
        callback_answer.text = ngettext(
            "You have {n} template, the most I keep. Delete it first.",
            "You have {n} templates, the most I keep. Delete one first.",
            MAX_TEMPLATES,
        ).format(n=MAX_TEMPLATES)
        callback_answer.show_alert = True
        return
    await state.set_state(TemplateForm.name)
    await message.answer(ask_name_text())


async def existing(
    callback_answer: CallbackAnswer,
    callback_data: TemplateCb,
    message: Message,
    templates: TemplateRepo,
    user_id: int,
) -> TemplateRow | None:
    """The tapped template; if it is gone (deleted meanwhile, a button from before /logout,
    a forged id) the tap is told and the list shown instead."""
    row = await templates.get(user_id, callback_data.tpl)
    if row is None:
        callback_answer.text = _("This template no longer exists.")
        with suppress(TelegramBadRequest):
            await edit_or_keep(message, *await list_view(templates, user_id))
    return row


async def open_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: TemplateCb,
    message: Message,
    templates: TemplateRepo,
    user_row: UserRow,
) -> None:
    row = await existing(callback_answer, callback_data, message, templates, user_row.id)
    if row is not None:
        await edit_or_keep(message, *template_view(row))


async def send_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: TemplateCb,
    message: Message,
    state: FSMContext,
    templates: TemplateRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    row = await existing(callback_answer, callback_data, message, templates, user_row.id)
    if row is not None:
        await use_in_send(callback_answer, message, state, row, settings.sms_max_parts)


async def change_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: TemplateCb,
    message: Message,
    state: FSMContext,
    templates: TemplateRepo,
    user_row: UserRow,
) -> None:
    """Rename or Edit text: asks for the new name or text."""
    row = await existing(callback_answer, callback_data, message, templates, user_row.id)
    if row is None:
        return
    rename = callback_data.action is TemplateAction.RENAME
    await state.set_state(TemplateForm.rename if rename else TemplateForm.edit)
    await state.update_data(tpl=row.id)
    ask = _("Send the new name for «{name}».") if rename else _("Send the new text for «{name}».")
    await message.answer(
        ask.format(name=html.quote(shown_name(row.name)))
        + "\n"
        + _("/cancel keeps the current one.")
    )


async def delete_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: TemplateCb,
    message: Message,
    templates: TemplateRepo,
    user_row: UserRow,
) -> None:
    row = await existing(callback_answer, callback_data, message, templates, user_row.id)
    if row is None:
        return
    await edit_or_keep(
        message,
        _("Delete the template «{name}»?").format(name=html.quote(shown_name(row.name))),
        template_delete_keyboard(row.id),
    )


async def drop_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: TemplateCb,
    message: Message,
    templates: TemplateRepo,
    user_row: UserRow,
) -> None:
    row = await existing(callback_answer, callback_data, message, templates, user_row.id)
    if row is None:
        return
    await templates.delete(user_row.id, row.id)
    callback_answer.text = _("Template deleted.")
    await edit_or_keep(message, *await list_view(templates, user_row.id))


async def use_in_send(
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    row: TemplateRow,
    max_parts: int,
) -> None:
    if placeholders(row.body):
        callback_answer.text = _(
            "This template has placeholders: use it in /bulk with a spreadsheet."
        )
        callback_answer.show_alert = True
        return
    try:
        # Saved under a higher limit (or before there was one): /send would take it unchecked.
        check_parts(row.body, max_parts)
    except TooManyParts as exc:
        callback_answer.text = too_many_parts_text(exc)
        callback_answer.show_alert = True
        return
    # The send dialog shows the preview right after the number when FSM data has a text.
    await state.clear()
    await state.set_state(SendForm.phone)
    # The template's name goes with the send into the outbox (/export's template column).
    await state.update_data(text=row.body, tpl_name=row.name)
    await message.answer(ask_phone_text(), reply_markup=phone_keyboard())
