"""Turning service results into the user's language. Everything user-typed is escaped."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from aiogram.utils.i18n import gettext as _

from services.devsms import Balance
from services.money import Money

MISSING: Final = "—"


def money(value: Money | None) -> str:
    if value is None:
        return MISSING
    if value.currency == "USD":
        return f"${_number(value.amount, decimals=4)}"
    return _("{amount} so'm").format(amount=_number(value.amount, decimals=2))


def _number(amount: Decimal, decimals: int) -> str:
    if amount == amount.to_integral_value():
        text = f"{int(amount):,}"
    else:
        text = f"{amount:,.{decimals}f}".rstrip("0").rstrip(".")
    # A no-break space keeps "1 250 so'm" on one line in Telegram.
    return text.replace(",", "\u00a0")


def count(value: int | None) -> str:
    return MISSING if value is None else _number(Decimal(value), 0)


def sms_affordable(balance: Money | None, price: Money | None) -> int | None:
    if balance is None or price is None or price.amount <= 0:
        return None
    if balance.currency != price.currency:
        return None
    return max(int(balance.amount // price.amount), 0)


def balance_text(balance: Balance) -> str:
    stats = balance.statistics
    lines = [
        _("💰 <b>Balance: {balance}</b>").format(balance=money(balance.balance)),
        _("Price of one SMS: {price}").format(price=money(balance.sms_price)),
        _("Enough for about {n} SMS").format(
            n=count(sms_affordable(balance.balance, balance.sms_price))
        ),
        "",
        _("Today: {sms} SMS · {spent}").format(
            sms=count(stats.today_sms), spent=money(stats.today_spent)
        ),
        _("This month: {sms} SMS · {spent}").format(
            sms=count(stats.month_sms), spent=money(stats.month_spent)
        ),
        _("Total: {sms} SMS · {spent}").format(
            sms=count(stats.total_sms), spent=money(stats.total_spent)
        ),
    ]
    return "\n".join(lines)
