"""One price rule (services/pricing.py) for every path that shows or checks a cost."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from aiogram.utils.i18n import I18n

from bot.i18n import DOMAIN, LOCALES_DIR
from handlers.admin import total_cost
from handlers.bulk import cost_so_far, review_text
from handlers.send_texts import preview_text
from services.bulk_plan import Plan, Source
from services.devsms import Balance
from services.money import Money, parse_money
from services.phones import normalize_phone
from services.pricing import cost_of, stored_cost, sum_costs
from services.spreadsheet import Recipients
from storage import BulkRepo, Database, UserRepo

PHONE = "998901234567"


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = I18n(path=LOCALES_DIR, default_locale="en", domain=DOMAIN)
    with i18n.context(), i18n.use_locale("en"):
        yield


def uzs(amount: int | str) -> Money:
    return Money(Decimal(amount), "UZS")


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def balance(amount: Money | None, price: Money | None = None) -> Balance:
    return Balance(balance=amount, sms_price=price if price is not None else uzs(50))


@pytest.mark.parametrize(
    ("amount", "parts", "after", "missing"),
    [
        (uzs(1000), 3, uzs(850), None),
        (uzs(150), 3, uzs(0), None),  # the balance equals the cost: it suffices
        (uzs(149), 3, uzs(-1), uzs(1)),
        (uzs(0), 1, uzs(-50), uzs(50)),
    ],
)
def test_cost_balance_after_and_missing(
    amount: Money, parts: int, after: Money, missing: Money | None
) -> None:
    cost = cost_of(parts, balance(amount))
    assert cost.total == uzs(50) * parts
    assert cost.after == after
    assert cost.missing == missing
    assert cost.enough is (missing is None)


def test_dollar_prices_count_fractions_of_a_cent() -> None:
    cost = cost_of(3, balance(usd("0.015"), usd("0.005")))
    assert (cost.total, cost.after, cost.missing) == (usd("0.015"), usd("0"), None)
    short = cost_of(4, balance(usd("0.015"), usd("0.005")))
    assert short.missing == usd("0.005")


@pytest.mark.parametrize(
    "account",
    [
        Balance(balance=None, sms_price=uzs(50)),
        Balance(balance=uzs(10), sms_price=None),
        Balance(balance=uzs(10), sms_price=usd("0.005")),  # nothing converts between them
    ],
)
def test_an_unknown_or_foreign_amount_does_not_stop_a_send(account: Balance) -> None:
    cost = cost_of(2, account)
    assert cost.after is None and cost.missing is None and cost.enough


@pytest.mark.parametrize(("amount", "allowed"), [(49, False), (50, True), (51, True)])
def test_single_send_preview_and_bulk_dry_run_agree_at_the_boundary(
    amount: int, allowed: bool
) -> None:
    """One SMS of one part at 50 so'm: the two previews allow or refuse it together."""
    account = balance(uzs(amount))
    text, can_send, _cheaper = preview_text(normalize_phone(PHONE), "Hi", "4546", account)
    source = Source("k", None, "text", ["phone"], "phone", 1, Recipients())
    plan = Plan([(1, PHONE, "Hi", 1)], [], 0, 1)
    review, can_start = review_text(source, "Hi", plan, account, max_parts=10)
    assert can_send is can_start is allowed
    refusal = "Not enough balance: 1 so'm more is needed"
    assert (refusal in text) is (refusal in review) is (not allowed)
    assert f"Balance after sending: {max(amount - 50, -1)} so'm" in text


def test_stored_costs_read_back_as_they_were() -> None:
    assert stored_cost(parse_money(50)) == "50"
    assert stored_cost(parse_money("$0.005")) == "$0.005"
    assert stored_cost(parse_money("1250.50")) == "1250.5"
    assert stored_cost(None) is None
    for value in (50, "$0.005", "1250.50", 0):
        money = parse_money(value)
        assert parse_money(stored_cost(money)) == money


def test_costs_add_up_per_currency_so_m_first() -> None:
    # "1 200 so'm" is how single sends stored their cost before stored_cost existed.
    stored = ["$0.005", "50", "1 200 so'm", "$0.010", None, "n/a"]
    assert sum_costs(stored) == [uzs(1250), usd("0.015")]
    assert sum_costs([]) == []


async def test_job_totals_and_the_admin_summary_agree_on_mixed_currencies(db: Database) -> None:
    """A job whose rows cost dollars and so'm: the job used to show only the first currency
    it met, the admin summary both."""
    await UserRepo(db).upsert_seen(1, "Ali", None)
    bulk = BulkRepo(db)
    rows = [(1, PHONE, "Hi", 1), (2, "998901234568", "Hi", 1), (3, "998901234569", "Hi", 1)]
    job_id = await bulk.create_job(
        1, template="Hi", sender="4546", file_name=None, file_format="text", rows=rows
    )
    assert await bulk.set_job_state(job_id, "running", allowed_from=("ready",))
    for row_no, cost in ((1, "$0.005"), (2, "50"), (3, "$0.005")):
        assert await bulk.claim(job_id, row_no)
        await bulk.finish_row(job_id, row_no, "sent", sms_id=row_no, cost=cost)
    assert cost_so_far(await bulk.costs(job_id)) == "50 so'm + $0.01"
    assert total_cost(await bulk.costs(job_id)) == "50 so'm + $0.01"
