"""The rules behind low-balance alerts and delivery tracking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.alert_rules import (
    days_left,
    is_below,
    next_check_delay,
    sms_left,
    threshold_money,
    worth_telling,
)
from services.devsms import Statistics
from services.money import USD, UZS, Money, grouped, spoken
from storage import AlertPrefs, AlertRepo, Database, UserRepo

DEFAULT = Decimal(10_000)


def som(amount: int | str) -> Money:
    return Money(Decimal(amount), UZS)


def usd(amount: str) -> Money:
    return Money(Decimal(amount), USD)


def untranslated(msgid: str) -> str:
    return msgid


# --- threshold -------------------------------------------------------------------------------


def test_no_preference_means_the_configured_default_in_som() -> None:
    assert threshold_money(AlertPrefs(), DEFAULT, som(50)) == som(10_000)


def test_som_threshold_set_by_the_user() -> None:
    prefs = AlertPrefs(threshold_unit="som", threshold_value="2500")
    assert threshold_money(prefs, DEFAULT, som(50)) == som(2_500)


def test_sms_threshold_is_converted_with_the_current_price() -> None:
    prefs = AlertPrefs(threshold_unit="sms", threshold_value="100")
    assert threshold_money(prefs, DEFAULT, som(50)) == som(5_000)
    # Same preference, the price went up: the threshold follows it.
    assert threshold_money(prefs, DEFAULT, som(80)) == som(8_000)


def test_sms_threshold_works_on_a_dollar_account() -> None:
    prefs = AlertPrefs(threshold_unit="sms", threshold_value="200")
    assert threshold_money(prefs, DEFAULT, usd("0.005")) == usd("1.000")


def test_sms_threshold_without_a_price_cannot_be_computed() -> None:
    prefs = AlertPrefs(threshold_unit="sms", threshold_value="100")
    assert threshold_money(prefs, DEFAULT, None) is None
    assert threshold_money(prefs, DEFAULT, som(0)) is None


def test_som_threshold_on_a_dollar_account_cannot_be_compared() -> None:
    assert threshold_money(AlertPrefs(), DEFAULT, usd("0.005")) is None
    prefs = AlertPrefs(threshold_unit="som", threshold_value="5000")
    assert threshold_money(prefs, DEFAULT, usd("0.005")) is None


def test_unreadable_stored_threshold_falls_back_to_the_default() -> None:
    assert threshold_money(AlertPrefs(threshold_value="lots"), DEFAULT, som(50)) == som(10_000)
    prefs = AlertPrefs(threshold_unit="sms", threshold_value="2.5")
    assert threshold_money(prefs, DEFAULT, som(50)) is None


def test_below_is_strict_and_refuses_to_compare_currencies() -> None:
    assert is_below(som(9_999), som(10_000))
    assert not is_below(som(10_000), som(10_000))
    assert not is_below(som(20_000), som(10_000))
    assert not is_below(usd("0.01"), som(10_000))
    assert not is_below(None, som(10_000))
    assert not is_below(som(1), None)


# --- how long it lasts ------------------------------------------------------------------------


def test_sms_left_rounds_down() -> None:
    assert sms_left(som(1_020), som(50)) == 20
    assert sms_left(usd("0.012"), usd("0.005")) == 2
    assert sms_left(som(-100), som(50)) == 0
    assert sms_left(som(1_000), None) is None
    assert sms_left(som(1_000), usd("0.005")) is None


def test_days_left_uses_todays_spending_first() -> None:
    stats = Statistics(today_spent=som(1_000), month_spent=som(3_000))
    assert days_left(som(10_500), stats, date(2024, 5, 15)) == 10


def test_days_left_falls_back_to_the_monthly_average() -> None:
    # 3 000 so'm over 15 days: 200 a day.
    stats = Statistics(today_spent=som(0), month_spent=som(3_000))
    assert days_left(som(1_000), stats, date(2024, 5, 15)) == 5


def test_days_left_is_zero_when_it_runs_out_today() -> None:
    assert days_left(som(300), Statistics(today_spent=som(500)), date(2024, 5, 1)) == 0


def test_days_left_unknown_without_spending() -> None:
    assert days_left(som(1_000), Statistics(), date(2024, 5, 15)) is None
    stats = Statistics(today_spent=som(0), month_spent=som(0))
    assert days_left(som(1_000), stats, date(2024, 5, 15)) is None
    # Spending in another currency than the balance says nothing.
    assert days_left(usd("1"), Statistics(today_spent=som(500)), date(2024, 5, 15)) is None


def test_money_and_counts_read_well() -> None:
    assert spoken(som(1_250), untranslated) == "1\u00a0250 so'm"
    assert spoken(usd("0.005"), untranslated) == "$0.005"
    assert spoken(None, untranslated) == "—"
    assert grouped(Decimal(12_500)) == "12\u00a0500"


# --- delivery tracking schedule ----------------------------------------------------------------


def test_schedule_grows_then_goes_hourly() -> None:
    delays = [next_check_delay(n, timedelta(minutes=1)) for n in range(8)]
    assert delays == [
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


def test_schedule_gives_up_after_a_day() -> None:
    assert next_check_delay(20, timedelta(hours=23, minutes=59)) == timedelta(hours=1)
    assert next_check_delay(20, timedelta(hours=24)) is None
    assert next_check_delay(0, timedelta(days=3)) is None


@pytest.mark.parametrize(
    ("mode", "status", "told"),
    [
        ("all", "DELIVERED", True),
        ("all", "REJECTED", True),
        ("failures", "DELIVERED", False),
        ("failures", "delivered", False),
        ("failures", "REJECTED", True),
        ("failures", "EXPIRED", True),
        ("off", "REJECTED", False),
        ("off", "DELIVERED", False),
    ],
)
def test_who_hears_about_a_delivery_result(mode: str, status: str, told: bool) -> None:
    assert worth_telling(mode, status) is told  # type: ignore[arg-type]


# --- hysteresis, with the real repository ------------------------------------------------------


@pytest.fixture
async def alerts(db: Database) -> AsyncIterator[AlertRepo]:
    await UserRepo(db).upsert_seen(7, "Ali", None)
    yield AlertRepo(db)


async def test_alert_fires_once_per_fall_below_the_threshold(alerts: AlertRepo) -> None:
    threshold = threshold_money(await alerts.get(7), DEFAULT, som(50))
    balances = [20_000, 9_000, 8_000, 15_000, 5_000, 4_000]
    alerts_fired = []
    for amount in balances:
        balance = som(amount)
        crossed = await alerts.record_check(
            7, balance.format(), below=is_below(balance, threshold)
        )
        if crossed:
            alerts_fired.append(amount)
            await alerts.alert_told(7)
    assert alerts_fired == [9_000, 5_000]
