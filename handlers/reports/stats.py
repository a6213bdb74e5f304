"""/stats: a chart of the last 7/30/90 days sent as a photo; its buttons redraw it in place.

The handler only hands the chart desk (services.chart_desk) a job and returns: reading the
numbers, drawing in the chart process and sending the photo happen in that job, so a user
tapping fast never holds their chat, and their last tap is the chart they get.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, CallbackQuery, InputMediaPhoto, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import StatsCb
from handlers.reports.render import (
    DEFAULT_DAYS,
    chart_failed_text,
    chart_labels,
    first_look_text,
    stats_caption,
    stats_keyboard,
)
from handlers.reports.zone import zone_name
from services.accounts import Accounts, NoToken
from services.chart_desk import ChartDesk
from services.charts import ChartSpec, DayPoint, fill_days, summarise
from services.devsms import DevsmsError
from services.money import UZS, Money
from services.spreadsheet import TooLarge, TooSlow
from storage.traffic import DayTotals, TrafficRepo, day_start
from storage.users import UserRow

logger = logging.getLogger(__name__)

CHART_FILE = "stats.png"


async def chart_of(
    traffic: TrafficRepo,
    accounts: Accounts,
    user_id: int,
    zone: str,
    days: int,
    now: dt.datetime | None = None,
) -> tuple[ChartSpec, str]:
    """The chart's data and its caption for the last `days` days (today included)."""
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(ZoneInfo(zone)).date()
    first = today - dt.timedelta(days=days - 1)
    since, until = day_start(first, zone), day_start(today + dt.timedelta(days=1), zone)
    totals = await traffic.daily_totals(user_id, since, until, zone)
    balance = await _balance(traffic, accounts, user_id)
    currency = _currency(totals, balance)
    points = [
        DayPoint(
            t.day,
            t.delivered,
            t.failed,
            t.waiting,
            t.cost_by_currency.get(currency, Money.zero().amount),
        )
        for t in totals
    ]
    filled = fill_days(points, first, today)
    caption = stats_caption(days, summarise(filled), currency, balance)
    return ChartSpec(filled, chart_labels(days, currency)), caption


async def _balance(traffic: TrafficRepo, accounts: Accounts, user_id: int) -> Money | None:
    """The watcher's last snapshot, or the gateway's answer when there is none yet."""
    snapshot = await traffic.latest_balance(user_id)
    if snapshot is not None:
        return Money(snapshot.amount, snapshot.currency)
    try:
        return (await accounts.balance(user_id)).balance
    except (DevsmsError, NoToken):
        # NoToken: the token went (/logout) between the tap and the job; a chart without it.
        return None


def _currency(totals: list[DayTotals], balance: Money | None) -> str:
    """The balance's currency; else the one most was spent in; so'm when nothing says."""
    if balance is not None:
        return balance.currency
    spent: dict[str, Money] = {}
    for day in totals:
        for currency, amount in day.cost_by_currency.items():
            spent[currency] = spent.get(currency, Money.zero(currency)) + Money(amount, currency)
    if not spent:
        return UZS
    return max(spent.values(), key=lambda m: m.amount).currency


async def _draw(desk: ChartDesk, spec: ChartSpec) -> bytes | None:
    # A chart's steps run on the event loop that answers everyone: before each one the job
    # steps aside (sleep(0) puts it behind every callback already due), so an update that
    # arrived in the same tick, a /balance, is handled before the chart's next piece of work.
    await asyncio.sleep(0)
    try:
        png = await desk.draw(spec)
    except (TooSlow, TooLarge):
        logger.warning("a chart could not be drawn within the chart process's limits")
        return None
    await asyncio.sleep(0)
    return png


def _photo(png: bytes) -> BufferedInputFile:
    # In one chunk: aiogram streams an input file chunk by chunk (64 kB each, a copy and a
    # write apiece); a chart is 40–70 kB.
    return BufferedInputFile(png, CHART_FILE, chunk_size=max(len(png), 1))


async def show_stats(
    message: Message,
    bot: Bot,
    user_row: UserRow,
    charts: ChartDesk,
    traffic: TrafficRepo,
    accounts: Accounts,
) -> None:
    if await traffic.never_synced(user_row.id):
        # A token just connected: its history is being read (services.traffic.FirstLooks);
        # an empty chart now would say "you sent nothing".
        await message.answer(first_look_text())
        return
    chat_id = message.chat.id
    await bot.send_chat_action(chat_id, "upload_photo")
    tap = await charts.tap(user_row.id)

    async def job() -> None:
        spec, caption = await chart_of(
            traffic, accounts, user_row.id, zone_name(user_row), DEFAULT_DAYS
        )
        png = await _draw(charts, spec)
        if not await charts.still_newest(user_row.id, tap):
            return  # a later tap, on another replica, shows its own chart
        if png is None:
            await bot.send_message(chat_id, chart_failed_text())
            return
        await bot.send_photo(
            chat_id,
            _photo(png),
            caption=caption,
            reply_markup=stats_keyboard(DEFAULT_DAYS),
        )

    charts.submit(user_row.id, job)


async def switch_days(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: StatsCb,
    message: Message,
    bot: Bot,
    user_row: UserRow,
    charts: ChartDesk,
    traffic: TrafficRepo,
    accounts: Accounts,
) -> None:
    if not message.photo:
        # Not a chart (a forged tap on another message): nothing to redraw.
        callback_answer.text = _("This button is no longer active.")
        return
    if await traffic.never_synced(user_row.id):
        callback_answer.text = first_look_text()  # a chart of the token before a new one
        callback_answer.show_alert = True
        return
    days = callback_data.days
    callback_answer.text = _("Drawing the chart…")
    chat_id, message_id = message.chat.id, message.message_id
    tap = await charts.tap(user_row.id)

    async def job() -> None:
        spec, caption = await chart_of(traffic, accounts, user_row.id, zone_name(user_row), days)
        png = await _draw(charts, spec)
        if not await charts.still_newest(user_row.id, tap):
            return  # a later tap, on another replica, shows its own chart
        if png is None:
            await bot.send_message(chat_id, chart_failed_text())
            return
        media = InputMediaPhoto(media=_photo(png), caption=caption)
        try:
            await bot.edit_message_media(
                media, chat_id=chat_id, message_id=message_id, reply_markup=stats_keyboard(days)
            )
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return
            # The chart's message is gone (deleted, too old to edit): a new one instead.
            logger.info("chart message could not be edited (%s): sent anew", exc.message)
            await bot.send_photo(
                chat_id,
                _photo(png),
                caption=caption,
                reply_markup=stats_keyboard(days),
            )

    charts.submit(user_row.id, job)
