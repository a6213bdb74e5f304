"""What sending costs, whether the balance covers it, and what the stored costs add up to.

One place for the money rules every path shares: the single send's preview, the bulk dry run,
the check before Start and before Resume, the job's totals and the admin summary. A copy of a
price rule that drifts would let one path send what another refuses, so each path calls these.

Pure logic, no I/O. The gateway bills per part (devsms-api.md, "SMS parts and cost"): the cost
shown before a send is a preview, ``parts × sms_price`` with the price of the last balance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.money import USD, UZS, Money, parse_money

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
    price = balance.sms_price
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
