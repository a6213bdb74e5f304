"""The texts of the insights notices (failure watch, delivery-rate warning, digest); pure
functions in the locale the caller set, like bot/notices/texts.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.notices.texts import Message
from handlers.callbacks import FailuresCb
from handlers.plural import ngettext
from handlers.render import MISSING, count, money
from handlers.sms_render import status_label
from services.events import DeliveryRateLow, FailuresSeen, TrafficDigest
from services.money import CURRENCIES, UZS, Money
from storage import Totals

_DAY: Final = "%d.%m.%Y"


def failures_seen(event: FailuresSeen) -> Message:
    head = ngettext(
        "⚠️ <b>{n} SMS sent outside the bot failed in the last hour</b>",
        "⚠️ <b>{n} SMS sent outside the bot failed in the last hour</b>",
        event.total,
    ).format(n=count(event.total))
    operators = " · ".join(
        f"{name or _('other numbers')}: {count(n)}" for name, n in event.operators
    )
    statuses = " · ".join(f"{status_label(status)}: {count(n)}" for status, n in event.statuses)
    text = "\n".join(
        [
            head,
            _("By operator: {list}").format(list=operators),
            _("By status: {list}").format(list=statuses),
        ]
    )
    builder = InlineKeyboardBuilder()
    builder.button(text=_("👀 Show them"), callback_data=FailuresCb(batch=event.batch))
    return text, builder.as_markup()


def delivery_rate_low(event: DeliveryRateLow) -> Message:
    text = "\n".join(
        [
            _("📉 <b>Delivery rate of the last hour: {rate}%</b> (your threshold: {threshold}%)")
            .format(rate=event.rate, threshold=event.threshold),
            _("Delivered: {delivered} · failed: {failed}").format(
                delivered=count(event.delivered), failed=count(event.failed)
            ),
            _("The threshold is in /settings."),
        ]
    )  # fmt: skip
    return text, None


def change_text(now: Decimal | int, before: Decimal | int) -> str:
    """ "+12%", "−5%", "±0%" against the period before; "new" when there was nothing."""
    if before == 0:
        return _("±0%") if now == 0 else _("new")
    percent = round((Decimal(now) - Decimal(before)) * 100 / Decimal(before))
    if percent == 0:
        return _("±0%")
    return f"+{percent}%" if percent > 0 else f"\u2212{-percent}%"


def spent_text(totals: Totals) -> str:
    # So'm first, as the gateway mostly bills in them.
    ordered = sorted(totals.cost_by_currency.items(), key=lambda item: (item[0] != UZS, item[0]))
    costs = [Money(amount, currency) for currency, amount in ordered if currency in CURRENCIES]
    return " + ".join(money(cost) for cost in costs) or money(Money.zero())


def _main_cost(totals: Totals, currency: str) -> Decimal:
    return totals.cost_by_currency.get(currency, Decimal(0))


def traffic_digest(event: TrafficDigest) -> Message:
    now, before = event.current, event.previous
    if event.weekly:
        head = _("📊 <b>Weekly digest · {first}–{last}</b>").format(
            first=event.first_day.strftime(_DAY), last=event.last_day.strftime(_DAY)
        )
        against = _("against the week before")
    else:
        head = _("📊 <b>Daily digest · {day}</b>").format(day=event.first_day.strftime(_DAY))
        against = _("against the day before")
    currency = event.balance.currency if event.balance is not None else "UZS"
    lines = [
        head,
        "",
        _("SMS: {n} ({change} {against})").format(
            n=count(now.sms), change=change_text(now.sms, before.sms), against=against
        ),
        _("Spent: {cost} ({change} {against})").format(
            cost=spent_text(now),
            change=change_text(_main_cost(now, currency), _main_cost(before, currency)),
            against=against,
        ),
    ]
    rate = now.delivery_rate
    lines.append(
        _("Delivery rate: {rate} (delivered {delivered}, failed {failed}, waiting {waiting})")
        .format(
            rate=MISSING if rate is None else f"{round(rate * 100)}%",
            delivered=count(now.delivered),
            failed=count(now.failed),
            waiting=count(now.waiting),
        )
    )  # fmt: skip
    if event.balance is not None:
        lines.append(_("Balance: {balance}").format(balance=money(event.balance)))
        if event.days_left is not None:
            lines.append(
                ngettext(
                    "At this pace it lasts about {n} more day.",
                    "At this pace it lasts about {n} more days.",
                    event.days_left,
                ).format(n=count(event.days_left))
            )
    lines.append(_("Bulk jobs run: {n}").format(n=count(event.jobs)))
    return "\n".join(lines), None
