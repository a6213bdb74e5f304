"""Turning service results into the user's language. Everything user-typed is escaped."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from aiogram.utils.i18n import gettext as _

from handlers.plural import ngettext
from services.devsms import Balance
from services.money import Money, grouped, spoken
from services.sms_parts import TooManyParts

MISSING: Final = "—"


def money(value: Money | None) -> str:
    return spoken(value, _, MISSING)


def costs_text(totals: list[Money]) -> str:
    """Costs per currency (services.pricing.sum_costs): "150 so'm + $0.01", or "—"."""
    return " + ".join(money(total) for total in totals) or MISSING


def not_enough_text(missing: Money) -> str:
    return _("⚠️ Not enough balance: {missing} more is needed. Top up at devsms.uz.").format(
        missing=money(missing)
    )


def too_many_parts_text(exc: TooManyParts) -> str:
    return ngettext(
        "This text needs {parts} SMS part; at most {limit} are allowed. Send a shorter text.",
        "This text needs {parts} SMS parts; at most {limit} are allowed. Send a shorter text.",
        exc.parts,
    ).format(parts=exc.parts, limit=exc.limit)


def count(value: int | None) -> str:
    return MISSING if value is None else grouped(Decimal(value))


def duration_text(seconds: float, *, round_up: bool = False) -> str:
    """'45 s', '12 min', '3 h 5 min'. `round_up` for time still to come (never "0 s"); time
    gone by is rounded down."""
    if round_up:
        whole = max(int(seconds + 0.999), 1)
        minutes = (whole + 59) // 60
    else:
        whole = max(int(seconds), 0)
        minutes = whole // 60
    if whole < 60:
        return _("{n} s").format(n=whole)
    if minutes < 60:
        return _("{n} min").format(n=minutes)
    return _("{h} h {m} min").format(h=minutes // 60, m=minutes % 60)


def sms_affordable(balance: Money | None, price: Money | None) -> int | None:
    if balance is None or price is None or price.amount <= 0:
        return None
    if balance.currency != price.currency:
        return None
    return max(int(balance.amount // price.amount), 0)


def forecast_text(days_left: int | None, *, window: int | None) -> str:
    """How long the balance lasts: at the pace of the last `window` days of the account's
    traffic, or (window None) at the pace the gateway's statistics show (today, else this
    month)."""
    if days_left is None:
        return _("📅 Nothing spent lately: no forecast of the days left.")
    if window is None:
        return ngettext(
            "📅 Lasts about {n} day at the current pace",
            "📅 Lasts about {n} days at the current pace",
            days_left,
        ).format(n=count(days_left))
    return ngettext(
        "📅 Lasts about {n} day at the pace of the last {days} days",
        "📅 Lasts about {n} days at the pace of the last {days} days",
        days_left,
    ).format(n=count(days_left), days=window)


def balance_text(balance: Balance, forecast: str | None = None) -> str:
    stats = balance.statistics
    affordable = sms_affordable(balance.balance, balance.sms_price)
    lines = [
        _("💰 <b>Balance: {balance}</b>").format(balance=money(balance.balance)),
        _("Price of one SMS: {price}").format(price=money(balance.sms_price)),
        ngettext("Enough for about {n} SMS", "Enough for about {n} SMS", affordable).format(
            n=count(affordable)
        ),
    ]
    if forecast is not None:
        lines.append(forecast)
    lines += [
        "",
        ngettext(
            "Today: {sms} SMS · {spent}",
            "Today: {sms} SMS · {spent}",
            stats.today_sms,
        ).format(sms=count(stats.today_sms), spent=money(stats.today_spent)),
        ngettext(
            "This month: {sms} SMS · {spent}",
            "This month: {sms} SMS · {spent}",
            stats.month_sms,
        ).format(sms=count(stats.month_sms), spent=money(stats.month_spent)),
        ngettext(
            "Total: {sms} SMS · {spent}",
            "Total: {sms} SMS · {spent}",
            stats.total_sms,
        ).format(sms=count(stats.total_sms), spent=money(stats.total_spent)),
    ]
    return "\n".join(lines)
