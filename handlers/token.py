"""Connecting, replacing and forgetting the devsms token."""

from __future__ import annotations

import logging
from typing import Final

from aiogram import F, Router, html
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from aiogram.utils.i18n import gettext as _

from handlers.access import announce_token
from handlers.balance import forecast
from handlers.callbacks import LogoutCb, TokenCb
from handlers.common import ask_token_text
from handlers.keyboards import balance_keyboard, logout_keyboard, main_menu
from handlers.render import balance_text
from handlers.states import TokenForm
from handlers.utils import action_if_slow, edit_or_keep
from services.accounts import Accounts
from services.devsms import DevsmsBadRequest, DevsmsError, DevsmsUnauthorized
from services.events import Notices
from services.traffic import FirstLooks
from storage import TrafficRepo, UserRepo
from storage.fsm import ForgetsUsers

logger = logging.getLogger(__name__)

TOKEN_MIN, TOKEN_MAX = 8, 512
TOKEN_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.|:=+/~"
)


async def replace_token(message: Message, state: FSMContext, accounts: Accounts) -> None:
    assert message.from_user is not None
    await state.set_state(TokenForm.token)
    if await accounts.has_token(message.from_user.id):
        text = _("Send the new token. The current one stays in use until the new one is checked.")
        await message.answer(text + "\n" + _("/cancel keeps the current token."))
    else:
        await message.answer(ask_token_text())


async def token_received(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    notices: Notices,
    traffic: TrafficRepo,
    first_looks: FirstLooks,
) -> None:
    assert message.from_user is not None and message.text is not None
    token = message.text.strip()
    # First of all: the token must not stay in the chat history.
    try:
        await message.delete()
    except TelegramBadRequest:
        logger.warning("could not delete the token message of user %s", message.from_user.id)
        await message.answer(_("I could not delete your message: please delete it yourself."))

    if not (TOKEN_MIN <= len(token) <= TOKEN_MAX) or not set(token) <= TOKEN_CHARS:
        await message.answer(
            _("That does not look like a devsms token. Copy it again from devsms.uz and send it.")
            + "\n"
            + _("/cancel leaves this dialog.")
        )
        return

    assert message.bot is not None
    same_account = await accounts.is_stored(message.from_user.id, token)
    try:
        async with action_if_slow(message.bot, message.chat.id):
            balance = await accounts.connect(message.from_user.id, token)
    except (DevsmsUnauthorized, DevsmsBadRequest):
        await message.answer(
            _("❌ devsms.uz did not accept this token. Check it and send it again.")
            + "\n"
            + _("/cancel leaves this dialog.")
        )
        return
    except DevsmsError:
        await message.answer(
            _(
                "⚠️ devsms.uz is not answering right now, so the token could not be checked "
                "and nothing was stored. Send it again in a minute."
            )
            + "\n"
            + _("/cancel leaves this dialog.")
        )
        return
    await state.clear()
    if not same_account:
        # The record of the account's traffic belongs to the token before, maybe another
        # account. The same token again keeps it: history older than the backfill would be
        # lost for good.
        await traffic.forget(message.from_user.id)
        # Read before the next round, so /stats shows the account within a minute; only a
        # note for the sync's own task, never awaited here.
        first_looks.ask(message.from_user.id)
    await message.answer(_("✅ Token connected and stored encrypted."), reply_markup=main_menu())
    days = await forecast(traffic, accounts, message.from_user.id, balance)
    await message.answer(balance_text(balance, days), reply_markup=balance_keyboard())
    await announce_token(notices, message.from_user)


async def token_not_text(message: Message) -> None:
    await message.answer(
        _("Please send the token as a text message.") + "\n" + _("/cancel leaves this dialog.")
    )


async def connect_again(query: CallbackQuery, state: FSMContext) -> None:
    """The button under "devsms no longer accepts your token"."""
    await query.answer()
    await state.set_state(TokenForm.token)
    if isinstance(query.message, Message):
        await query.message.answer(ask_token_text())


async def logout(message: Message) -> None:
    await message.answer(
        _(
            "This deletes your devsms token and everything I keep for you "
            "(settings and the record of SMS sent here). Continue?"
        ),
        reply_markup=logout_keyboard(),
    )


async def logout_answer(
    query: CallbackQuery, callback_data: LogoutCb, state: FSMContext, users: UserRepo
) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    # edit_or_keep: a double tap edits in the same text, which Telegram refuses as unchanged.
    if not callback_data.confirm:
        await edit_or_keep(query.message, _("Nothing was deleted."))
        return
    await state.clear()
    await users.delete_everything(query.from_user.id)
    if isinstance(state.storage, ForgetsUsers):  # dialogs kept in Redis (replicas)
        await state.storage.forget_user(state.key.bot_id, query.from_user.id)
    logger.info("user %s deleted their data", query.from_user.id)
    await edit_or_keep(query.message, _("🗑 Your token and all your data are deleted."))
    await query.message.answer(
        _("Send /start whenever you want to connect again, {name}.").format(
            name=html.quote(query.from_user.first_name)
        ),
        reply_markup=ReplyKeyboardRemove(),
    )


def create_router() -> Router:
    router = Router(name="token")
    router.message.register(replace_token, Command("token"))
    router.message.register(token_received, TokenForm.token, F.text, ~F.text.startswith("/"))
    router.message.register(token_not_text, TokenForm.token, ~F.text)
    router.message.register(logout, Command("logout"))
    router.callback_query.register(logout_answer, LogoutCb.filter())
    router.callback_query.register(connect_again, TokenCb.filter())
    return router
