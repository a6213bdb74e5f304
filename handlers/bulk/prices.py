"""The price part of the bulk dry run: parts per row, rows abroad, the cheaper spelling.

Pure functions of the plan and the prices the caller read (services.pricing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiogram.utils.i18n import gettext as _

from handlers.plural import ngettext
from handlers.render import count, money, not_enough_text
from handlers.sms_render import parts_label
from services.bulk_plan import Plan
from services.devsms import Balance
from services.money import Money
from services.pricing import ListCost, cost_of, list_cost

# Countries named one by one in the dry run; the rest are summed up.
COUNTRIES_SHOWN: Final = 5
SHAPES_SHOWN: Final = 6


def shapes_text(plan: Plan) -> str:
    """ "GSM-7: 120 rows × 1 part, UCS-2: 3 rows × 2 parts", the most common first."""
    shapes = sorted(plan.shapes.items(), key=lambda item: (-item[1], item[0]))
    shown = [
        ngettext(
            "{encoding}: {n} row × {size}",
            "{encoding}: {n} rows × {size}",
            rows,
        ).format(encoding=encoding, n=count(rows), size=parts_label(parts))
        for (encoding, parts), rows in shapes[:SHAPES_SHOWN]
    ]
    if len(shapes) > SHAPES_SHOWN:
        shown.append("…")
    return ", ".join(shown)


def country_name(region: str) -> str:
    """The region's calling code and ISO code, "+7 RU": no country names to translate."""
    if not region:
        return _("other")
    import phonenumbers  # loaded by the plan's numbers already

    return f"+{phonenumbers.country_code_for_region(region)} {region}"


def abroad_lines(plan: Plan, rates: Mapping[str, Money]) -> list[str]:
    """The rows to numbers outside Uzbekistan, listed apart from the rest."""
    if not plan.abroad:
        return []
    lines = [
        _("🌍 Rows abroad: {n}. devsms.uz bills them at each country's rate:").format(
            n=count(plan.abroad_rows)
        )
    ]
    ordered = sorted(plan.abroad.items(), key=lambda item: (-item[1][0], item[0]))
    for region, (rows, parts) in ordered[:COUNTRIES_SHOWN]:
        rate = rates.get(region) if region else None
        price = (
            _("{price} per part, as last time").format(price=money(rate))
            if rate is not None
            else _("price known after sending")
        )
        lines.append(
            "  "
            + _("{country}: rows {rows}, parts {parts}, {price}").format(
                country=country_name(region), rows=count(rows), parts=count(parts), price=price
            )
        )
    if len(ordered) > COUNTRIES_SHOWN:
        rest = sum(rows for _region, (rows, _parts) in ordered[COUNTRIES_SHOWN:])
        lines.append("  " + _("…other countries, rows: {n}").format(n=count(rest)))
    return lines


def cost_lines(plan: Plan, balance: Balance, rates: Mapping[str, Money]) -> tuple[list[str], bool]:
    """The parts, the cost (abroad rows as services.pricing.list_cost prices them) and the
    balance after; whether the balance covers what is known."""
    priced: ListCost = list_cost(plan.local_parts, plan.abroad, balance, rates)
    cost = priced.cost
    lines = [
        _("SMS parts in total: {parts} · cost: {total}").format(
            parts=count(plan.parts_total), total=money(cost.total)
        )
    ]
    if plan.shapes:
        lines.append(_("Parts per row: {shapes}").format(shapes=shapes_text(plan)))
    if priced.unpriced_rows:
        lines.append(
            _("Not in the cost, priced only after sending: rows abroad {n}").format(
                n=count(priced.unpriced_rows)
            )
        )
    lines.append(
        _("Balance: {balance} · after sending: {after}").format(
            balance=money(balance.balance), after=money(cost.after)
        )
    )
    if cost.missing is not None:
        lines.append(not_enough_text(cost.missing))
    return lines, cost.enough


def cheaper_line(plan: Plan, cheaper: Plan | None, balance: Balance) -> str | None:
    """The offer of the cheaper spelling, with what it saves."""
    if cheaper is None:
        return None
    saved = cost_of(max(plan.local_parts - cheaper.local_parts, 0), balance).total
    return _(
        "🪶 SMS parts with plain apostrophes and quotes: {parts} instead of {was}, {saved} less."
    ).format(parts=count(cheaper.parts_total), was=count(plan.parts_total), saved=money(saved))


def abroad_confirm_text(plan: Plan, rates: Mapping[str, Money], *, later: bool = False) -> str:
    """The question Start (or Send later) asks when the list has rows abroad."""
    priced = list_cost(plan.local_parts, plan.abroad, Balance(None, None), rates)
    text = _(
        "🌍 Rows abroad: {n}. devsms.uz bills them at each country's rate, not at your price "
        "in Uzbekistan."
    ).format(n=count(plan.abroad_rows))
    if priced.unpriced_rows:
        text += "\n" + _("Of these, priced only after sending: {n}").format(
            n=count(priced.unpriced_rows)
        )
    return text + "\n" + (_("Schedule it anyway?") if later else _("Start anyway?"))
