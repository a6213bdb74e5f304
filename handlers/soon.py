"""Menu entries whose feature has not landed yet: a clear answer instead of silence."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from handlers.filters import MenuButton
from handlers.keyboards import BTN_HISTORY, BTN_SEND, BTN_SETTINGS, BTN_STATUS


async def coming_soon(message: Message) -> None:
    await message.answer(_("This part is coming soon. /balance works already."))


def create_router() -> Router:
    router = Router(name="soon")
    router.message.register(coming_soon, Command("send", "history", "status", "settings"))
    router.message.register(coming_soon, MenuButton(BTN_SEND))
    router.message.register(coming_soon, MenuButton(BTN_HISTORY))
    router.message.register(coming_soon, MenuButton(BTN_STATUS))
    router.message.register(coming_soon, MenuButton(BTN_SETTINGS))
    return router
