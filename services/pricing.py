"""What sending costs, whether the balance covers it, and what the stored costs add up to.

One place for the money rules every path shares: the single send's preview, the bulk dry run,
the check before Start and before Resume, the job's totals and the admin summary. A copy of a
price rule that drifts would let one path send what another refuses, so each path calls these.

Pure logic, no I/O. The gateway bills per part (devsms-api.md, "SMS parts and cost"): the cost
shown before a send is a preview, ``parts × sms_price`` with the price of the last balance.

Honest prices: ``sms_price`` is the price in Uzbekistan. A number abroad is billed by the
gateway at its country's rate, which no answer tells before sending, so such a send is priced
by what the gateway charged for the user's last SMS to that country (the outbox keeps cost and
parts), or shown as "known after sending" — never at the local price.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from services.money import USD, UZS, Money, parse_money
from services.phones import foreign_region, is_foreign

if TYPE_CHECKING:
    # Only a type: the bulk dry run runs in a thread and should not need the gateway client.
    from services.devsms import Balance

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of some SMS parts against a balance."""

    total: Money | None
    """parts × price; None when the price is unknown."""
    after: Money | None
    """The balance after paying; None when the balance or the price is unknown, or when they
    are in different currencies (nothing converts so'm to dollars)."""

    @property
    def missing(self) -> Money | None:
        """How much the balance lacks; None when it suffices or cannot be told. A balance that
        equals the cost suffices: it goes down to zero."""
        if self.after is None or self.after.amount >= 0:
            return None
        return -self.after

    @property
    def enough(self) -> bool:
        """Whether sending may go ahead. An unknown price or balance does not stop it: the
        gateway itself refuses a send the balance does not cover."""
        return self.missing is None


def cost_of(parts: int, balance: Balance) -> Cost:
    """Parts in Uzbekistan, at the balance answer's ``sms_price``."""
    return cost_at(parts, balance.sms_price, balance)


def cost_at(parts: int, price: Money | None, balance: Balance) -> Cost:
    """Parts at a given price per part (see :func:`part_price`) against the balance."""
    total = price * parts if price is not None else None
    if total is None or balance.balance is None or total.currency != balance.balance.currency:
        return Cost(total, None)
    return Cost(total, balance.balance - total)


def stored_cost(cost: Money | None) -> str | None:
    """A cost as the database keeps it, the way the gateway writes it: "50", "$0.005"."""
    if cost is None:
        return None
    amount = format(cost.amount.normalize(), "f") if cost.amount != 0 else "0"
    return f"${amount}" if cost.currency == USD else amount


def sum_costs(stored: Iterable[str | None]) -> list[Money]:
    """Stored costs added up per currency, so'm first: so'm and dollars are never added
    together, and neither is dropped. A value that is not money is logged and left out;
    an empty list means nothing was spent (or nothing is known)."""
    sums: dict[str, Money] = {}
    for raw in stored:
        if raw is None:
            continue
        cost = parse_money(raw)
        if cost is None:
            logger.warning("stored cost %r is not money; left out of the total", raw)
            continue
        sums[cost.currency] = sums.get(cost.currency, Money.zero(cost.currency)) + cost
    return [sums[currency] for currency in sorted(sums, key=lambda c: (c != UZS, c))]


@dataclass(frozen=True, slots=True)
class PartPrice:
    """What one SMS part to a number costs, as far as it can be told before sending."""

    price: Money | None
    """Per part; None when unknown (no balance read yet, or abroad with no earlier SMS)."""
    abroad: bool
    """The number is outside Uzbekistan: the gateway bills it by country."""
    region: str | None = None
    """The ISO region abroad (phonenumbers), when the number names one."""

    @property
    def known_after_sending(self) -> bool:
        """Abroad, and no earlier SMS to that country tells the rate."""
        return self.abroad and self.price is None


def part_price(digits: str, balance: Balance, abroad: Mapping[str, Money]) -> PartPrice:
    """The one rule: in Uzbekistan ``sms_price``; abroad the rate the gateway charged last
    time for that country (``abroad``, from :func:`abroad_rates`), else unknown."""
    if not is_foreign(digits):
        return PartPrice(balance.sms_price, abroad=False)
    region = foreign_region(digits)
    return PartPrice(abroad.get(region) if region else None, abroad=True, region=region)


def abroad_rates(stored: Mapping[str, tuple[str, int]]) -> dict[str, Money]:
    """Per region: the price of one part, from the stored (total_cost, parts) of the last SMS
    there (storage OutboxRepo.country_costs). A cost that is not money is left out."""
    rates: dict[str, Money] = {}
    for region, (raw, parts) in stored.items():
        cost = parse_money(raw)
        if cost is None or parts <= 0:
            continue
        rates[region] = Money(cost.amount / Decimal(parts), cost.currency)
    return rates


@dataclass(frozen=True, slots=True)
class ListCost:
    """What a list of SMS costs before sending, abroad rows priced by :func:`part_price`."""

    cost: Cost
    """Of the parts whose price is known: in Uzbekistan, and abroad where a rate is known."""
    unpriced_rows: int
    """Rows abroad whose price is known only after sending (not in ``cost``)."""
    unpriced_parts: int


def list_cost(
    local_parts: int,
    abroad: Mapping[str, tuple[int, int]],
    balance: Balance,
    rates: Mapping[str, Money],
) -> ListCost:
    """``local_parts`` at ``sms_price``; ``abroad`` maps a region ("" when the number names
    none) to (rows, parts), each priced at its rate from :func:`abroad_rates` when there is
    one in the price's currency, else left out and counted as unpriced."""
    price = balance.sms_price
    # No price for the local parts: no total at all, rather than one that leaves them out.
    total: Money | None = price * local_parts if price is not None else None
    unpriced_rows = unpriced_parts = 0
    for region, (rows, parts) in abroad.items():
        rate = rates.get(region) if region else None
        currency = price or total
        if rate is None or (currency is not None and rate.currency != currency.currency):
            unpriced_rows += rows
            unpriced_parts += parts
        elif total is not None or (price is None and local_parts == 0):
            total = rate * parts if total is None else total + rate * parts
    return ListCost(cost_at(1, total, balance), unpriced_rows, unpriced_parts)
