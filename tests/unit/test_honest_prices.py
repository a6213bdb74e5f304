"""Numbers abroad are priced by what the gateway charged, never at the local sms_price
(services/pricing.py), and the bulk plan counts them apart (services/bulk_plan.py)."""

from __future__ import annotations

from decimal import Decimal

from services.bulk_plan import Source, build_plan, plan_with_cheaper
from services.devsms import Balance
from services.money import Money
from services.phones import UZ_DIGITS, foreign_region
from services.pricing import abroad_rates, list_cost, part_price
from services.spreadsheet import Recipient, Recipients
from storage import Database, OutboxKind, OutboxRepo, UserRepo
from tests.support.bulk_env import TOKEN, USER, Env

ACCOUNT = Balance(balance=Money(Decimal(1000), "UZS"), sms_price=Money(Decimal(50), "UZS"))


def uzs(amount: int | str) -> Money:
    return Money(Decimal(amount), "UZS")


def test_uzbek_numbers_cost_the_local_price() -> None:
    price = part_price("998901234567", ACCOUNT, {"RU": uzs(300)})
    assert (price.price, price.abroad, price.known_after_sending) == (uzs(50), False, False)


def test_abroad_is_the_last_charged_rate_or_unknown() -> None:
    known = part_price("79161234567", ACCOUNT, {"RU": uzs(300)})
    assert (known.price, known.abroad, known.region) == (uzs(300), True, "RU")
    unknown = part_price("12025550123", ACCOUNT, {"RU": uzs(300)})
    assert unknown.known_after_sending and unknown.region == "US"
    assert foreign_region("998901234567") is None


def test_rates_come_from_stored_cost_over_parts() -> None:
    rates = abroad_rates({"RU": ("600", 2), "US": ("$0.02", 4), "KZ": ("junk", 1), "GB": ("5", 0)})
    assert rates == {"RU": uzs(300), "US": Money(Decimal("0.005"), "USD")}


def test_a_list_cost_prices_known_countries_and_counts_the_rest() -> None:
    priced = list_cost(
        3, {"RU": (2, 2), "US": (1, 3), "": (1, 1)}, ACCOUNT, {"RU": uzs(300), "US": uzs(1)}
    )
    # 3 × 50 + 2 × 300 + 3 × 1; the number without a region is unpriced.
    assert priced.cost.total == uzs(753)
    assert priced.cost.after == uzs(247)
    assert (priced.unpriced_rows, priced.unpriced_parts) == (1, 1)
    dollars = list_cost(1, {"US": (1, 1)}, ACCOUNT, {"US": Money(Decimal("0.01"), "USD")})
    assert dollars.cost.total == uzs(50) and dollars.unpriced_rows == 1  # never mixed
    no_price = list_cost(2, {"RU": (1, 1)}, Balance(None, None), {"RU": uzs(300)})
    assert no_price.cost.total is None  # not a total that leaves the local parts out


def source_of(phones: list[str]) -> Source:
    valid = [Recipient(i + 1, phone, {"phone": phone}) for i, phone in enumerate(phones)]
    return Source("k", None, "text", ["phone"], "phone", len(phones), Recipients(valid))


def test_the_plan_counts_shapes_and_rows_abroad() -> None:
    plan = build_plan(
        source_of(["998901234567", "79161234567", "12025550123"]), "Hi", 10, stopped=()
    )
    assert plan.shapes == {("GSM-7", 1): 3}
    assert plan.abroad == {"RU": (1, 1), "US": (1, 1)}
    assert (plan.abroad_rows, plan.local_parts, plan.parts_total) == (2, 1, 3)


def test_the_cheaper_plan_only_when_it_saves_parts() -> None:
    source = source_of(["998901234567"])
    plan, cheaper = plan_with_cheaper(source, "Oʻzbek " + "a" * 94, 10, stopped=())
    assert plan.parts_total == 2 and cheaper is not None and cheaper.parts_total == 1
    assert plan_with_cheaper(source, "Oʻzbek", 10, stopped=())[1] is None
    assert plan_with_cheaper(source, "Plain", 10, stopped=())[1] is None


async def test_country_costs_is_the_latest_billed_plain_sms_per_country(db: Database) -> None:
    await UserRepo(db).upsert_seen(1, "Ali", None)
    outbox = OutboxRepo(db)
    for cost, parts, kind in (("300", 1, OutboxKind.SMS), ("800", 2, OutboxKind.SMS)):
        row = await outbox.create_pending(1, "79161234567", "x", None, kind=kind, country="RU")
        await outbox.mark_sent(row, 1, None, "waiting", parts, cost)
    otp = await outbox.create_pending(1, "79161234567", "OTP", None, kind=OutboxKind.OTP)
    await outbox.mark_sent(otp, 2, None, "waiting", 1, "999")
    failed = await outbox.create_pending(1, "12025550123", "x", None, country="US")
    await outbox.mark_failed(failed, "no")

    assert await outbox.country_costs(1, ["RU", "US", "KZ"]) == {"RU": ("800", 2)}
    assert await outbox.country_costs(2, ["RU"]) == {}
    assert await outbox.country_costs(1, []) == {}


async def test_resume_checks_the_balance_against_the_parts_priced_in_uzbekistan(
    env: Env,
) -> None:
    rows = [(2, "998901000000", "Hi", 1), (3, "79161234567", "Hi", 3), (4, "12025550123", "Hi", 3)]
    job_id = await env.bulk.create_job(
        USER, template="Hi", sender=None, file_name=None, file_format="csv", rows=rows
    )
    assert await env.bulk.parts_left(job_id) == 7
    assert await env.bulk.parts_left(job_id, phone_prefix=UZ_DIGITS) == 1
    assert await env.bulk.set_job_state(job_id, "paused", allowed_from=("ready",))
    # Enough for the Uzbek row at 50 so'm, not for seven parts at the local price.
    env.fake.accounts[TOKEN].balance = Decimal(100)
    runner = env.runner(concurrency=1)
    assert await runner.resume(job_id)
    await runner.stop()
