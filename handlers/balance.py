"""/balance and its Refresh button."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import BalanceCb
from handlers.filters import Accessible, MenuButton
from handlers.keyboards import BTN_BALANCE, balance_keyboard
from handlers.render import balance_text, forecast_text
from handlers.utils import action_if_slow, edit_or_keep
from services.accounts import Accounts
from services.alert_rules import days_left
from services.devsms import Balance
from services.watcher import gateway_today
from storage import TrafficRepo
from storage.traffic import BalanceSnapshot

# The forecast's pace: the account's average spending per day over this many days.
FORECAST_DAYS: Final = 7


async def forecast(
    traffic: TrafficRepo, accounts: Accounts, user_id: int, balance: Balance
) -> str | None:
    """The days-left line: at the pace of the account's last FORECAST_DAYS days (the whole
    traffic, also SMS sent outside the bot), else at this month's pace from the gateway's
    statistics (before the traffic record has anything)."""
    amount = balance.balance
    if amount is None:
        return None
    now = datetime.now(UTC)
    snapshot = BalanceSnapshot(now, amount.amount, amount.currency)
    found = await traffic.balance_forecast(user_id, now, days=FORECAST_DAYS, balance=snapshot)
    if found is not None and found.days_left is not None:
        return forecast_text(found.days_left, window=FORECAST_DAYS)
    today = gateway_today(accounts.devsms.timezone)
    return forecast_text(days_left(amount, balance.statistics, today), window=None)


async def show_balance(message: Message, accounts: Accounts, traffic: TrafficRepo) -> None:
    assert message.from_user is not None and message.bot is not None
    user_id = message.from_user.id
    async with action_if_slow(message.bot, message.chat.id):
        balance = await accounts.balance(user_id)
        text = balance_text(balance, await forecast(traffic, accounts, user_id, balance))
    await message.answer(text, reply_markup=balance_keyboard())


async def refresh_balance(
    query: CallbackQuery, message: Message, accounts: Accounts, traffic: TrafficRepo
) -> None:
    balance = await accounts.balance(query.from_user.id)
    text = balance_text(balance, await forecast(traffic, accounts, query.from_user.id, balance))
    changed = await edit_or_keep(message, text, balance_keyboard())
    await query.answer(_("Updated.") if changed else _("Already up to date."))


def create_router() -> Router:
    router = Router(name="balance")
    router.message.register(show_balance, Command("balance"))
    router.message.register(show_balance, MenuButton(BTN_BALANCE))
    router.callback_query.register(refresh_balance, BalanceCb.filter(), Accessible())
    return router
