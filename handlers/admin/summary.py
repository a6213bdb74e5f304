"""/admin (the summary) and /users (the paged list of users)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import Page
from handlers.config import HandlerSettings
from handlers.utils import edit_or_keep
from services.money import Money
from services.pricing import sum_costs
from storage import BulkRepo, OutboxRepo
from storage.users import Access, UserListEntry, UserRepo

PAGE_SIZE: Final = 20
# Names are cut so that a page of 20 lines stays far below Telegram's 4096 characters.
NAME_LIMIT: Final = 32
# The days of the summary are Uzbek days, as devsms counts its own "today".
SUMMARY_ZONE: Final = ZoneInfo("Asia/Tashkent")


class UsersCb(CallbackData, prefix="usr"):
    page: Page


# --- /admin -------------------------------------------------------------------------------


def period_starts(now: datetime, zone: tzinfo = SUMMARY_ZONE) -> tuple[str, str]:
    """Start of today and of this month in `zone`, as UTC in the format of the `*_at`
    columns."""
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    return _stamp(today), _stamp(month)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def total_cost(costs: list[str]) -> str:
    """The verbatim costs summed per currency (services.pricing.sum_costs), "0 so'm" if none."""
    totals = sum_costs(costs)
    return " + ".join(total.format() for total in totals) if totals else Money.zero().format()


async def summary(
    message: Message,
    users: UserRepo,
    outbox: OutboxRepo,
    bulk: BulkRepo,
    settings: HandlerSettings,
) -> None:
    counts = await users.counts()
    today, month = period_starts(datetime.now(UTC))
    lines = [
        _("<b>📊 Bot summary</b>"),
        _("Users: {total}, of them blocked the bot: {blocked}").format(
            total=counts.total, blocked=counts.blocked
        ),
        _("Valid devsms tokens: {n}").format(n=counts.valid_tokens),
    ]
    if settings.access.allowlist:
        lines.append(
            _("Access: allowed {allowed}, waiting {waiting}, denied {denied}").format(
                allowed=counts.allowed, waiting=counts.waiting, denied=counts.denied
            )
        )
    lines.append("")
    lines.append(_("SMS sent through the bot, bulk jobs included (days in Tashkent time):"))
    for label, since in ((_("today"), today), (_("this month"), month)):
        single, single_parts = await outbox.totals(since)
        rows, row_parts = await bulk.totals(since)
        sent, parts = single + rows, single_parts + row_parts
        cost = total_cost(await outbox.costs_since(since) + await bulk.costs_since(since))
        lines.append(
            _("{period}: SMS {sent}, parts {parts}, cost {cost}").format(
                period=label, sent=sent, parts=parts, cost=cost
            )
        )
    await message.answer("\n".join(lines))


# --- /users -------------------------------------------------------------------------------


def user_line(entry: UserListEntry, show_access: bool) -> str:
    name = entry.first_name or "—"
    if len(name) > NAME_LIMIT:
        name = name[: NAME_LIMIT - 1] + "…"
    parts = [f"<code>{entry.id}</code> {html.quote(name)}"]
    if entry.username:
        parts[0] += f" @{html.quote(entry.username)}"
    parts.append(entry.language or "—")
    if entry.token_state == "valid":
        parts.append(_("token valid"))
    elif entry.token_state is not None:
        parts.append(_("token invalid"))
    else:
        parts.append(_("no token"))
    parts.append(_("active") if entry.is_active else _("blocked the bot"))
    if show_access:
        parts.append(
            {
                Access.ALLOWED: _("allowed"),
                Access.DENIED: _("denied"),
                Access.PENDING: _("not approved"),
            }[entry.access]
        )
    return " · ".join(parts)


def users_keyboard(page: int, has_next: bool) -> InlineKeyboardMarkup | None:
    builder = InlineKeyboardBuilder()
    if page > 0:
        builder.button(text="◀", callback_data=UsersCb(page=page - 1))
    if has_next:
        builder.button(text="▶", callback_data=UsersCb(page=page + 1))
    return builder.as_markup() if page > 0 or has_next else None


async def users_page(
    page: int, users: UserRepo, settings: HandlerSettings
) -> tuple[str, InlineKeyboardMarkup | None]:
    total = (await users.counts()).total
    if total == 0:
        return _("Nobody has written to the bot yet."), None
    # An old button may point past the end after users deleted themselves.
    page = max(0, min(page, (total - 1) // PAGE_SIZE))
    entries = await users.list_page(page * PAGE_SIZE, PAGE_SIZE)
    first = page * PAGE_SIZE + 1
    header = _("<b>Users</b> {first}–{last} of {total}").format(
        first=first, last=first + len(entries) - 1, total=total
    )
    show_access = settings.access.allowlist
    lines = [user_line(entry, show_access) for entry in entries]
    has_next = first - 1 + len(entries) < total
    return "\n".join([header, "", *lines]), users_keyboard(page, has_next)


async def list_users(message: Message, users: UserRepo, settings: HandlerSettings) -> None:
    text, keyboard = await users_page(0, users, settings)
    await message.answer(text, reply_markup=keyboard)


async def turn_users_page(
    query: CallbackQuery,
    callback_data: UsersCb,
    message: Message,
    users: UserRepo,
    settings: HandlerSettings,
) -> None:
    text, keyboard = await users_page(callback_data.page, users, settings)
    await edit_or_keep(message, text, keyboard)
