"""/balance and its Refresh button."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import BalanceCb
from handlers.filters import Accessible, MenuButton
from handlers.keyboards import BTN_BALANCE, balance_keyboard
from handlers.render import balance_text
from handlers.utils import edit_or_keep
from services.accounts import Accounts


async def show_balance(message: Message, accounts: Accounts) -> None:
    assert message.from_user is not None
    await message.bot.send_chat_action(message.chat.id, "typing")  # type: ignore[union-attr]
    balance = await accounts.balance(message.from_user.id)
    await message.answer(balance_text(balance), reply_markup=balance_keyboard())


async def refresh_balance(query: CallbackQuery, message: Message, accounts: Accounts) -> None:
    balance = await accounts.balance(query.from_user.id)
    changed = await edit_or_keep(message, balance_text(balance), balance_keyboard())
    await query.answer(_("Updated.") if changed else _("Already up to date."))


def create_router() -> Router:
    router = Router(name="balance")
    router.message.register(show_balance, Command("balance"))
    router.message.register(show_balance, MenuButton(BTN_BALANCE))
    router.callback_query.register(refresh_balance, BalanceCb.filter(), Accessible())
    return router
