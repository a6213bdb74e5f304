"""Last router: whatever no feature took. Leads users without a token to connect one."""

from __future__ import annotations

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.common import ask_token_text
from handlers.states import TokenForm
from services.accounts import Accounts


async def anything_else(message: Message, state: FSMContext, accounts: Accounts) -> None:
    assert message.from_user is not None
    if not await accounts.has_token(message.from_user.id):
        await state.set_state(TokenForm.token)
        await message.answer(_("First connect your devsms token.") + "\n" + ask_token_text())
        return
    if message.text and message.text.startswith("/"):
        await message.answer(_("I do not know this command. /help lists what I can do."))
    else:
        await message.answer(_("Use the menu below, or /help to see what I can do."))


async def stale_button(query: CallbackQuery, accounts: Accounts) -> None:
    # Buttons outlive restarts and logouts; an old one must answer, never crash.
    if not await accounts.has_token(query.from_user.id):
        await query.answer(_("First connect your devsms token: /start"), show_alert=True)
        return
    await query.answer(_("This button is no longer active."))


def create_router() -> Router:
    router = Router(name="fallback")
    router.message.register(anything_else)
    router.callback_query.register(stale_button)
    return router
