"""/templates: the command and the typed steps (name and text of a new template, a new name,
a new text)."""

from __future__ import annotations

from aiogram import html
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from handlers.config import HandlerSettings
from handlers.states import TemplateForm
from handlers.templates.buttons import list_view
from handlers.templates.render import (
    EXAMPLE_PLACEHOLDER,
    body_problem,
    name_problem,
    template_view,
)
from storage import TemplateRepo


async def show_templates(message: Message, state: FSMContext, templates: TemplateRepo) -> None:
    assert message.from_user is not None
    await state.clear()
    text, keyboard = await list_view(templates, message.from_user.id)
    await message.answer(text, reply_markup=keyboard)


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
