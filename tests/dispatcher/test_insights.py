"""The insights in the current screens: /balance's days-left forecast, /history's filters for
every status and its search by phone number, and the /settings entries of the failure watch
and the digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from storage.traffic import NewRecord
from tests.conftest import GOOD_TOKEN
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


def spent(n: int, cost: int, *, phone: str = "998901234567", status: str = "DELIVERED",
          days_ago: float = 1) -> NewRecord:  # fmt: skip
    at = datetime.now(UTC) - timedelta(days=days_ago)
    return NewRecord(n, f"r{n}", phone, "otp", "4546", 1, Decimal(cost), "UZS", status, at)


# --- /balance ----------------------------------------------------------------------------------


async def test_balance_without_spending_says_there_is_no_forecast(app: Harness) -> None:
    await connect(app)
    [balance] = await app.send("/balance")
    assert "📅 Nothing spent lately: no forecast of the days left." in balance.text


async def test_balance_forecast_from_the_accounts_last_week(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    # 7 × 200 so'm in the last seven days, SMS sent outside the bot included: 200 a day;
    # 10 000 so'm last 50 days.
    await app.services.traffic.merge(1, [spent(n, 200, days_ago=n % 6 + 0.5) for n in range(7)])
    [balance] = await app.send("/balance")
    assert "📅 Lasts about 50 days at the pace of the last 7 days" in balance.text
    devsms.accounts[GOOD_TOKEN].balance -= 5000
    [edited] = await app.tap(balance, "Refresh")
    assert "📅 Lasts about 25 days at the pace of the last 7 days" in edited.text


async def test_balance_forecast_falls_back_to_the_gateways_own_count(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    account = devsms.accounts[GOOD_TOKEN]
    account.today_spent = Decimal(2500)
    [balance] = await app.send("/balance")
    assert "📅 Lasts about 4 days at the current pace" in balance.text


async def test_balance_forecast_in_russian_uses_plural_forms(app: Harness) -> None:
    await connect(app, lang="ru")
    await app.services.traffic.merge(1, [spent(n, 1000, days_ago=1) for n in range(7)])
    [balance] = await app.send("/balance", lang="ru")
    assert "📅 Хватит примерно на 10 дней" in balance.text
