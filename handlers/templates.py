"""/templates: named SMS texts per user. `{column}` placeholders are filled in /bulk; a template
without them can start /send with its text filled in."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Final

from aiogram import F, Router, html
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import ID_MAX, TemplateAction, TemplateCb
from handlers.config import HandlerSettings
from handlers.filters import Accessible, AnyMenuButton
from handlers.keyboards import (
    phone_keyboard,
    template_delete_keyboard,
    template_keyboard,
    templates_keyboard,
)
from handlers.render import too_many_parts_text
from handlers.send_texts import ask_phone_text, quote_cut
from handlers.sms_render import clip, one_line
from handlers.states import SendForm, TemplateForm
from handlers.utils import AnswerCallbacks, edit_or_keep
from services.sms_parts import TooManyParts, check_parts, count_sms
from services.templating import (
    TEMPLATE_NAME_MAX,
    TemplateError,
    placeholders,
    valid_template_name,
)
from storage import TemplateRepo, TemplateRow
from storage.users import UserRow

logger = logging.getLogger(__name__)

# One message lists them all as buttons; Telegram allows 100 buttons under a message.
MAX_TEMPLATES: Final = 50
BODY_SHOWN: Final = 3000
# Room for the placeholder list beside BODY_SHOWN within Telegram's 4096 characters: a body of
# "{&&&...}" is one placeholder whose name escapes to five times its length.
PLACEHOLDERS_SHOWN: Final = 500
EXAMPLE_PLACEHOLDER: Final = "{name}"
# A tap on a message Telegram no longer shows the bot (InaccessibleMessage, e.g. older than
# 48 h) can edit nothing: such taps fall through to the "no longer active" answer.
ACCESSIBLE: Final = Accessible()


# --- texts shared with /bulk ----------------------------------------------------------------


def template_error_text(exc: TemplateError) -> str:
    problems = {
        "unclosed": _("an opening brace without a closing one"),
        "unopened": _("a closing brace without an opening one"),
        "empty": _("empty braces"),
    }
    return _(
        "The text has {problem} at character {position}. Placeholders look like {example}; "
        "to write a brace itself, double it: {braces}."
    ).format(
        problem=problems.get(exc.problem, exc.problem),
        position=exc.position + 1,
        example=EXAMPLE_PLACEHOLDER,
        braces="{{ }}",
    )


def body_problem(body: str, max_parts: int) -> str | None:
    """Why `body` cannot be a template, or None."""
    if not body:
        return _("The text cannot be empty. Send the text.")
    try:
        placeholders(body)
    except TemplateError as exc:
        return template_error_text(exc)
    try:
        check_parts(body, max_parts)
    except TooManyParts as exc:
        return too_many_parts_text(exc)
    return None


def shown_name(name: str) -> str:
    """A template or placeholder name as shown (raw, escape it after): one line, clipped.

    Typed names are capped at TEMPLATE_NAME_MAX already; a row saved otherwise (an older
    version, a restored database) must still leave every reply and button within limits.
    """
    return clip(one_line(name), TEMPLATE_NAME_MAX)


def placeholder_list(names: list[str]) -> str:
    """HTML: "{a}, {b}, …", clipped names, at most PLACEHOLDERS_SHOWN characters in all."""
    shown: list[str] = []
    used = 0
    for name in names:
        item = html.quote("{" + shown_name(name) + "}")
        used += len(item) + 2
        if used > PLACEHOLDERS_SHOWN:
            shown.append("…")
            break
        shown.append(item)
    return ", ".join(shown)


def template_buttons(rows: list[TemplateRow]) -> list[tuple[int, str]]:
    """(id, name as shown) for the keyboards: the id goes into callback data, never the name."""
    return [(row.id, shown_name(row.name)) for row in rows]


# --- views ----------------------------------------------------------------------------------


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


def template_view(row: TemplateRow) -> tuple[str, InlineKeyboardMarkup]:
    names = placeholders(row.body)
    lines = [
        _("📄 <b>{name}</b>").format(name=html.quote(shown_name(row.name))),
        f"<blockquote>{quote_cut(row.body, BODY_SHOWN)}</blockquote>",
    ]
    if names:
        lines.append(_("Placeholders: {names}").format(names=placeholder_list(names)))
        lines.append(_("Use it in /bulk: pick it after sending the spreadsheet."))
    else:
        count = count_sms(row.body)
        lines.append(
            _("{encoding} · {characters} characters · {parts} part(s)").format(
                encoding=count.encoding, characters=count.characters, parts=count.parts
            )
        )
    return "\n".join(lines), template_keyboard(row.id, can_send=not names)


# --- handlers -------------------------------------------------------------------------------


async def show_templates(message: Message, state: FSMContext, templates: TemplateRepo) -> None:
    assert message.from_user is not None
    await state.clear()
    text, keyboard = await list_view(templates, message.from_user.id)
    await message.answer(text, reply_markup=keyboard)


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
        callback_answer.disable()
        await query.answer(
            _("You have {n} templates, the most I keep. Delete one first.").format(
                n=MAX_TEMPLATES
            ),
            show_alert=True,
        )
        return
    await state.set_state(TemplateForm.name)
    await message.answer(ask_name_text())


async def existing(
    query: CallbackQuery,
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
        callback_answer.disable()
        await query.answer(_("This template no longer exists."))
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
    row = await existing(query, callback_answer, callback_data, message, templates, user_row.id)
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
    row = await existing(query, callback_answer, callback_data, message, templates, user_row.id)
    if row is not None:
        await use_in_send(query, callback_answer, message, state, row, settings.sms_max_parts)


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
    row = await existing(query, callback_answer, callback_data, message, templates, user_row.id)
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
    row = await existing(query, callback_answer, callback_data, message, templates, user_row.id)
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
    row = await existing(query, callback_answer, callback_data, message, templates, user_row.id)
    if row is None:
        return
    await templates.delete(user_row.id, row.id)
    callback_answer.disable()
    await query.answer(_("Template deleted."))
    await edit_or_keep(message, *await list_view(templates, user_row.id))


async def use_in_send(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    row: TemplateRow,
    max_parts: int,
) -> None:
    if placeholders(row.body):
        callback_answer.disable()
        await query.answer(
            _("This template has placeholders: use it in /bulk with a spreadsheet."),
            show_alert=True,
        )
        return
    try:
        # Saved under a higher limit (or before there was one): /send would take it unchecked.
        check_parts(row.body, max_parts)
    except TooManyParts as exc:
        callback_answer.disable()
        await query.answer(too_many_parts_text(exc), show_alert=True)
        return
    # The send dialog shows the preview right after the number when FSM data has a text.
    await state.clear()
    await state.set_state(SendForm.phone)
    await state.update_data(text=row.body)
    await message.answer(ask_phone_text(), reply_markup=phone_keyboard())


def ask_name_text() -> str:
    return (
        _(
            "Send a name for the new template: up to {n} letters or digits; spaces, _ and - "
            "are allowed."
        ).format(n=TEMPLATE_NAME_MAX)
        + "\n"
        + _("/cancel stops.")
    )


def name_problem(name: str, taken: list[TemplateRow], own_id: int | None = None) -> str | None:
    if not valid_template_name(name):
        return _(
            "A name is up to {n} letters or digits; spaces, _ and - are allowed. Try another."
        ).format(n=TEMPLATE_NAME_MAX)
    if any(row.name.casefold() == name.casefold() and row.id != own_id for row in taken):
        return _("You already have a template named «{name}». Choose another name.").format(
            name=html.quote(name)
        )
    return None


async def name_received(message: Message, state: FSMContext, templates: TemplateRepo) -> None:
    assert message.text is not None and message.from_user is not None
    name = message.text.strip()
    problem = name_problem(name, await templates.list(message.from_user.id))
    if problem is not None:
        await message.answer(problem + "\n" + _("/cancel stops."))
        return
    await state.set_state(TemplateForm.body)
    await state.update_data(name=name)
    await message.answer(
        _(
            "Now send the text of «{name}». Placeholders such as {example} are filled from "
            "the spreadsheet columns in /bulk."
        ).format(name=html.quote(name), example=EXAMPLE_PLACEHOLDER)
        + "\n"
        + _("/cancel stops.")
    )


async def body_received(
    message: Message, state: FSMContext, templates: TemplateRepo, settings: HandlerSettings
) -> None:
    assert message.text is not None and message.from_user is not None
    body = message.text.strip()
    problem = body_problem(body, settings.sms_max_parts)
    if problem is not None:
        await message.answer(problem + "\n" + _("/cancel stops."))
        return
    name = (await state.get_data()).get("name")
    if not isinstance(name, str):
        await state.clear()
        await message.answer(_("Let's start again: /templates"))
        return
    row = await templates.save(message.from_user.id, name, body)
    await state.clear()
    text, keyboard = template_view(row)
    await message.answer(_("✅ Template saved.") + "\n\n" + text, reply_markup=keyboard)


async def rename_received(message: Message, state: FSMContext, templates: TemplateRepo) -> None:
    assert message.text is not None and message.from_user is not None
    user_id = message.from_user.id
    row = await templates.get(user_id, int((await state.get_data()).get("tpl", 0)))
    if row is None:
        await state.clear()
        await message.answer(_("This template no longer exists."))
        return
    name = message.text.strip()
    problem = name_problem(name, await templates.list(user_id), own_id=row.id)
    if problem is None and not await templates.rename(user_id, row.id, name):
        problem = _("You already have a template named «{name}». Choose another name.").format(
            name=html.quote(name)
        )
    if problem is not None:
        await message.answer(problem + "\n" + _("/cancel keeps the current one."))
        return
    await state.clear()
    await show_saved(message, templates, user_id, row.id)


async def edit_received(
    message: Message, state: FSMContext, templates: TemplateRepo, settings: HandlerSettings
) -> None:
    assert message.text is not None and message.from_user is not None
    user_id = message.from_user.id
    template_id = int((await state.get_data()).get("tpl", 0))
    body = message.text.strip()
    problem = body_problem(body, settings.sms_max_parts)
    if problem is not None:
        await message.answer(problem + "\n" + _("/cancel keeps the current one."))
        return
    await state.clear()
    if not await templates.update_body(user_id, template_id, body):
        await message.answer(_("This template no longer exists."))
        return
    await show_saved(message, templates, user_id, template_id)


async def show_saved(
    message: Message, templates: TemplateRepo, user_id: int, template_id: int
) -> None:
    row = await templates.get(user_id, template_id)
    if row is None:
        await message.answer(_("This template no longer exists."))
        return
    text, keyboard = template_view(row)
    await message.answer(_("✅ Template saved.") + "\n\n" + text, reply_markup=keyboard)


async def not_text(message: Message) -> None:
    await message.answer(_("Send it as a text message, or /cancel."))


def create_router() -> Router:
    router = Router(name="templates")
    # Buttons that need no text are answered after their handler; those that show one
    # answer themselves and disable the middleware's answer.
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(show_templates, Command("templates"))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(name_received, TemplateForm.name, *free_text)
    router.message.register(body_received, TemplateForm.body, *free_text)
    router.message.register(rename_received, TemplateForm.rename, *free_text)
    router.message.register(edit_received, TemplateForm.edit, *free_text)
    router.message.register(not_text, StateFilter(TemplateForm), ~F.text)
    buttons = (
        (TemplateAction.LIST, list_button),
        (TemplateAction.NEW, new_button),
        (TemplateAction.OPEN, open_button),
        (TemplateAction.SEND, send_button),
        (TemplateAction.RENAME, change_button),
        (TemplateAction.EDIT, change_button),
        (TemplateAction.DELETE, delete_button),
        (TemplateAction.DROP, drop_button),
    )
    tpl_fits = (F.tpl >= 0) & (F.tpl <= ID_MAX)
    for action, button in buttons:
        router.callback_query.register(
            button, TemplateCb.filter((F.action == action) & tpl_fits), ACCESSIBLE, Accessible()
        )
    return router
