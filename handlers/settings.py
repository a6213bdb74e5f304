"""/settings: the default sender name and the language."""

from __future__ import annotations

import re
from typing import Final

from aiogram import F, Router, html
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.callbacks import SettingsCb
from handlers.common import LANGUAGE_PROMPT
from handlers.filters import AnyMenuButton, MenuButton
from handlers.keyboards import BTN_SETTINGS, language_keyboard, settings_keyboard
from handlers.states import SettingsForm
from handlers.utils import edit_or_keep
from storage import UserRepo

# A numeric short code, or an alphanumeric sender id (at most 11 characters in SMS).
SENDER_RE: Final = re.compile(r"^(?:\d{3,15}|[A-Za-z0-9][A-Za-z0-9 ._-]{1,10})$")


async def settings_text(user_id: int, users: UserRepo, settings: Settings) -> tuple[str, bool]:
    user = await users.get(user_id)
    own = user.sender if user else None
    sender = html.quote(own or settings.default_sender)
    line = (
        _("Sender: {sender}").format(sender=sender)
        if own
        else _("Sender: {sender} (default)").format(sender=sender)
    )
    return "\n".join([_("⚙️ <b>Settings</b>"), "", line]), own is not None


async def show_settings(message: Message, users: UserRepo, settings: Settings) -> None:
    assert message.from_user is not None
    text, own = await settings_text(message.from_user.id, users, settings)
    await message.answer(text, reply_markup=settings_keyboard(own))


async def settings_button(
    query: CallbackQuery,
    callback_data: SettingsCb,
    message: Message,
    state: FSMContext,
    users: UserRepo,
    settings: Settings,
) -> None:
    await query.answer()
    if callback_data.action == "sender":
        await state.set_state(SettingsForm.sender)
        await message.answer(
            _(
                "Send the sender name: a number (3–15 digits) or a Latin name of up to 11 "
                "characters. It must be approved for your account at devsms.uz."
            )
            + "\n"
            + _("/cancel keeps the current one.")
        )
    elif callback_data.action == "reset":
        await users.set_sender(query.from_user.id, None)
        text, own = await settings_text(query.from_user.id, users, settings)
        await edit_or_keep(message, text, settings_keyboard(own))
    elif callback_data.action == "lang":
        await message.answer(LANGUAGE_PROMPT, reply_markup=language_keyboard())


async def sender_received(
    message: Message, state: FSMContext, users: UserRepo, settings: Settings
) -> None:
    assert message.text is not None and message.from_user is not None
    sender = message.text.strip()
    if not SENDER_RE.match(sender):
        await message.answer(
            _(
                "A sender is 3–15 digits or a Latin name of up to 11 characters, "
                "e.g. 4546 or MyShop."
            )
            + "\n"
            + _("/cancel keeps the current one.")
        )
        return
    await users.set_sender(message.from_user.id, sender)
    await state.clear()
    await message.answer(
        _("Saved: SMS will go out from {sender}.").format(sender=html.quote(sender))
    )
    await show_settings(message, users, settings)


async def sender_not_text(message: Message) -> None:
    await message.answer(
        _("Send the sender name as text.") + "\n" + _("/cancel keeps the current one.")
    )


def create_router() -> Router:
    router = Router(name="settings")
    router.message.register(show_settings, Command("settings"))
    router.message.register(show_settings, MenuButton(BTN_SETTINGS))
    router.message.register(
        sender_received, SettingsForm.sender, F.text, ~F.text.startswith("/"), ~AnyMenuButton()
    )
    router.message.register(sender_not_text, SettingsForm.sender, ~F.text)
    router.callback_query.register(settings_button, SettingsCb.filter(), F.message.as_("message"))
    return router
