"""/balance and its Refresh button."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

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
from storage.traffic import BalanceSnapshot, Forecast

# The forecast's pace: the account's average spending per day over this many days.
FORECAST_DAYS: Final = 7


async def forecast(
    traffic: TrafficRepo, accounts: Accounts, user_id: int, balance: Balance
) -> str | None:
    """The days-left line for a balance just asked for (see forecast_line)."""
    now = datetime.now(UTC)
    spent = await traffic.spending(user_id, now - timedelta(days=FORECAST_DAYS), now)
    return forecast_line(accounts, balance, spent, now)


def forecast_line(
    accounts: Accounts, balance: Balance, spent: dict[str, Decimal], now: datetime
) -> str | None:
    """The days-left line: at the pace of the account's last FORECAST_DAYS days (`spent`, by
    currency, from the whole traffic, also SMS sent outside the bot), else at this month's
    pace from the gateway's statistics (before the traffic record has anything)."""
    amount = balance.balance
    if amount is None:
        return None
    snapshot = BalanceSnapshot(now, amount.amount, amount.currency)
    found = Forecast.at_pace(snapshot, spent.get(amount.currency, Decimal(0)), FORECAST_DAYS)
    if found.days_left is not None:
        return forecast_text(found.days_left, window=FORECAST_DAYS)
    today = gateway_today(accounts.devsms.timezone)
    return forecast_text(days_left(amount, balance.statistics, today), window=None)


async def balance_answer(accounts: Accounts, traffic: TrafficRepo, user_id: int) -> str:
    """/balance's text: the balance from the gateway, with its days-left line.

    The traffic record is read while the gateway answers: read after the answer, its hop to
    the database's thread and back put two more thread wake-ups on the user's path (1 ms at
    p90, 7-19 ms at p99 of a lone /balance on a busy machine; scripts/bench.py section 1's
    paced pass, timed per update).
    """
    now = datetime.now(UTC)
    reading = traffic.spending(user_id, now - timedelta(days=FORECAST_DAYS), now)
    spending = asyncio.ensure_future(reading)
    try:
        balance = await accounts.balance(user_id)
    except BaseException:
        _drop(spending)
        raise
    return balance_text(balance, forecast_line(accounts, balance, await spending, now))


def _drop(read: asyncio.Future[Any]) -> None:
    """A read nobody needs any more (the gateway call failed): cancelled, or its failure
    retrieved, so that asyncio logs no "exception was never retrieved" for it."""
    if read.done():
        if not read.cancelled():
            read.exception()
    else:
        read.cancel()


async def show_balance(message: Message, accounts: Accounts, traffic: TrafficRepo) -> None:
    assert message.from_user is not None and message.bot is not None
    async with action_if_slow(message.bot, message.chat.id):
        text = await balance_answer(accounts, traffic, message.from_user.id)
    await message.answer(text, reply_markup=balance_keyboard())


async def refresh_balance(
    query: CallbackQuery, message: Message, accounts: Accounts, traffic: TrafficRepo
) -> None:
    text = await balance_answer(accounts, traffic, query.from_user.id)
    changed = await edit_or_keep(message, text, balance_keyboard())
    await query.answer(_("Updated.") if changed else _("Already up to date."))


def create_router() -> Router:
    router = Router(name="balance")
    router.message.register(show_balance, Command("balance"))
    router.message.register(show_balance, MenuButton(BTN_BALANCE))
    router.callback_query.register(refresh_balance, BalanceCb.filter(), Accessible())
    return router
