"""The rules behind balance alerts and delivery tracking: pure functions, no I/O.

Used by services/watcher.py (low-balance alerts) and services/tracker.py (delivery results).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

from services.devsms import Statistics
from services.money import USD, UZS, Money
from storage.alerts import AlertPrefs, DeliveryNotify

logger = logging.getLogger(__name__)

# Delivery tracking: the first look comes 30 s after the send (services/sending.py), then the
# gaps grow, because most SMS settle within minutes and the rest within hours.
TRACK_STEPS: Final[tuple[timedelta, ...]] = (
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=5),
    timedelta(minutes=15),
)
TRACK_EVERY: Final = timedelta(hours=1)
# Eskiz reports EXPIRED after 24 h of an unreachable phone; later nothing changes any more.
TRACK_FOR: Final = timedelta(hours=24)

DELIVERED: Final = "DELIVERED"


def threshold_money(prefs: AlertPrefs, default_som: Decimal, price: Money | None) -> Money | None:
    """The balance below which the user wants an alert; None when it cannot be compared.

    - unit "sms": price × n, in the account's own currency (None without a usable price);
    - unit "som", or no value set: so'm. A dollar account (seen by its price) cannot be
      compared with so'm without an exchange rate, so there is no threshold for it.
    """
    if prefs.threshold_unit == "sms" and prefs.threshold_value is not None:
        count = _whole_number(prefs.threshold_value)
        if count is None or price is None or price.amount <= 0:
            return None
        return price * count
    amount = default_som
    if prefs.threshold_value is not None:
        stored = _decimal(prefs.threshold_value)
        if stored is None:
            logger.warning(
                "unreadable stored threshold %r; using the default", prefs.threshold_value
            )
        else:
            amount = stored
    if price is not None and price.currency == USD:
        return None
    return Money(amount, UZS)


def is_below(balance: Money | None, threshold: Money | None) -> bool:
    """Strictly below; False whenever the two cannot be compared (missing, other currency)."""
    if balance is None or threshold is None or balance.currency != threshold.currency:
        return False
    return balance.amount < threshold.amount


def sms_left(balance: Money | None, price: Money | None) -> int | None:
    """How many one-part SMS the balance still pays for; None when unknown."""
    if balance is None or price is None or price.amount <= 0:
        return None
    if balance.currency != price.currency:
        return None
    return max(int(balance.amount // price.amount), 0)


def days_left(balance: Money, stats: Statistics, today: date) -> int | None:
    """Whole days the balance lasts at the current pace; None when nothing is being spent.

    The pace is today's spending when there is any, else this month's average per day so far.
    """
    daily: Decimal | None = None
    if _positive(stats.today_spent, balance.currency):
        assert stats.today_spent is not None
        daily = stats.today_spent.amount
    elif _positive(stats.month_spent, balance.currency):
        assert stats.month_spent is not None
        daily = stats.month_spent.amount / today.day
    if daily is None:
        return None
    return max(int(balance.amount // daily), 0)


def next_check_delay(checks: int, age: timedelta) -> timedelta | None:
    """How long until the next status check of an SMS already checked `checks` times and sent
    `age` ago: 30 s, 1 min, 2 min, 5 min, 15 min, then hourly; None (stop) after 24 h."""
    if age >= TRACK_FOR:
        return None
    if checks < 0:
        checks = 0
    return TRACK_STEPS[checks] if checks < len(TRACK_STEPS) else TRACK_EVERY


def worth_telling(mode: DeliveryNotify, status: str | None) -> bool:
    """Whether a user with this preference hears about a final delivery status."""
    if mode == "all":
        return True
    if mode == "failures":
        return status is None or status.strip().upper() != DELIVERED
    return False


def _positive(value: Money | None, currency: str) -> bool:
    return value is not None and value.currency == currency and value.amount > 0


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _whole_number(text: str) -> int | None:
    value = _decimal(text)
    if value is None or value != value.to_integral_value():
        return None
    return int(value)
