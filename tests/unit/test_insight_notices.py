"""The texts of the insights notices in the recipient's language."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from aiogram.utils.i18n import I18n

from bot.notices.insights import change_text, delivery_rate_low, traffic_digest
from services.events import DeliveryRateLow, Person, TrafficDigest
from services.money import Money
from storage import Totals

PERSON = Person(1, "en", "Ali", None)


def digest(weekly: bool = False) -> TrafficDigest:
    now = Totals(120, 130, 100, 10, 10, {"UZS": Decimal(6000), "USD": Decimal("0.5")})
    before = Totals(100, 100, 90, 5, 5, {"UZS": Decimal(5000)})
    return TrafficDigest(
        PERSON, weekly, date(2026, 11, 30), date(2026, 12, 6) if weekly else date(2026, 11, 30),
        now, before, Money(Decimal(60000), "UZS"), 10, 2,
    )  # fmt: skip


def render(i18n: I18n, language: str, event: object) -> str:
    with i18n.context(), i18n.use_locale(language):
        if isinstance(event, TrafficDigest):
            return traffic_digest(event)[0]
        assert isinstance(event, DeliveryRateLow)
        return delivery_rate_low(event)[0]


def test_changes_against_the_period_before(i18n: I18n) -> None:
    with i18n.context(), i18n.use_locale("en"):
        assert change_text(120, 100) == "+20%"
        assert change_text(80, 100) == "\u221220%"
        assert change_text(0, 0) == "±0%"
        assert change_text(5, 0) == "new"


def test_daily_digest_in_english(i18n: I18n) -> None:
    text = render(i18n, "en", digest())
    assert "📊 <b>Daily digest · 30.11.2026</b>" in text
    assert "SMS: 120 (+20% against the day before)" in text
    assert "Spent: 6\u00a0000 so'm + $0.50 (+20% against the day before)" in text
    assert "Delivery rate: 91% (delivered 100, failed 10, waiting 10)" in text
    assert "Balance: 60\u00a0000 so'm" in text
    assert "At this pace it lasts about 10 more days." in text
    assert "Bulk jobs run: 2" in text


def test_weekly_digest_in_russian_and_uzbek(i18n: I18n) -> None:
    ru = render(i18n, "ru", digest(weekly=True))
    assert "Сводка за неделю · 30.11.2026–06.12.2026" in ru
    assert "к прошлой неделе" in ru and "хватит примерно ещё на 10 дней" in ru
    uz = render(i18n, "uz", digest(weekly=True))
    assert "Haftalik hisobot" in uz and "oldingi haftaga nisbatan" in uz


def test_rate_warning(i18n: I18n) -> None:
    text = render(i18n, "en", DeliveryRateLow(PERSON, 72, 90, 18, 7))
    assert "Delivery rate of the last hour: 72%</b> (your threshold: 90%)" in text
    assert "Delivered: 18 · failed: 7" in text
    assert "Порог — в /settings." in render(i18n, "ru", DeliveryRateLow(PERSON, 72, 90, 18, 7))
