"""Prices abroad in the bulk dialog: the rates of the list's countries, and the checks Start
makes before a job is created (the balance against services.pricing.list_cost, and the
question about rows abroad, which the gateway bills at their countries' rates)."""

from __future__ import annotations

from aiogram.types import Message

from handlers.bulk.dry_run import nothing_to_send_text
from handlers.bulk.prices import abroad_confirm_text
from handlers.keyboards import bulk_abroad_keyboard
from handlers.render import not_enough_text
from services.accounts import Accounts
from services.bulk_plan import Plan
from services.money import Money
from services.pricing import abroad_rates, list_cost
from storage import OutboxRepo


async def rates_for(outbox: OutboxRepo, user_id: int, plan: Plan) -> dict[str, Money]:
    """Prices abroad for the plan's countries, from the user's last SMS to each (one query)."""
    regions = [region for region in plan.abroad if region]
    return abroad_rates(await outbox.country_costs(user_id, regions)) if regions else {}


async def start_refused(
    message: Message,
    accounts: Accounts,
    outbox: OutboxRepo,
    user_id: int,
    plan: Plan,
    ask_abroad: int | None,
) -> bool:
    """Whether Start must wait, having said why: the balance does not cover the list,
    nothing is left to send, or rows abroad are to be confirmed (asked here, with buttons
    for the dry run `ask_abroad`; None once they were)."""
    # The report may be minutes old. A gateway error here leaves the draft in place.
    await accounts.forget_balance(user_id)
    balance = await accounts.recent_balance(user_id)
    rates = await rates_for(outbox, user_id, plan)
    cost = list_cost(plan.local_parts, plan.abroad, balance, rates).cost
    if cost.missing is not None or not plan.rows:
        refusal = (
            not_enough_text(cost.missing) if cost.missing is not None else nothing_to_send_text()
        )
        await message.answer(refusal)
        return True
    if ask_abroad is not None:
        return await asked_abroad(message, plan, rates, ask_abroad)
    return False


async def asked_abroad(
    message: Message, plan: Plan, rates: dict[str, Money], draft: int, *, later: bool = False
) -> bool:
    """Rows abroad are billed at their countries' rates: Start, and Send later alike, ask
    about them once more (with buttons for the dry run `draft`). False when there are none."""
    if not plan.abroad:
        return False
    await message.answer(
        abroad_confirm_text(plan, rates, later=later),
        reply_markup=bulk_abroad_keyboard(draft, later=later),
    )
    return True
