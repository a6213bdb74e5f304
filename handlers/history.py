"""/history: the gateway's list of SMS (also those sent outside the bot), ten per page, with
status filters and a details button per entry. Paging and filters edit the same message."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Final

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import HistoryCb, SmsCb, fits_id
from handlers.filters import Accessible, MenuButton
from handlers.keyboards import BTN_HISTORY
from handlers.sms_render import sms_list
from handlers.utils import AnswerCallbacks, edit_or_keep
from services.accounts import Accounts
from services.devsms import HistoryPage
from services.history_pages import HistoryCursor
from services.i18n import N_
from services.reconcile import reconcile_unknown
from storage import OutboxRepo

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 10
_DETAIL_BUTTONS_PER_ROW: Final = 5


class HistoryFilter(StrEnum):
    """Codes in HistoryCb.flt: one letter, the callback data stays short."""

    ALL = "a"
    DELIVERED = "d"
    WAITING = "w"
    REJECTED = "r"


# The gateway's `status` query per filter (devsms-api.md, "History"), spelled as its docs do.
GATEWAY_STATUS: Final[dict[HistoryFilter, str | None]] = {
    HistoryFilter.ALL: None,
    HistoryFilter.DELIVERED: "DELIVERED",
    HistoryFilter.WAITING: "waiting",
    HistoryFilter.REJECTED: "REJECTED",
}
_LABELS: Final = {
    HistoryFilter.ALL: N_("All"),
    HistoryFilter.DELIVERED: N_("Delivered"),
    HistoryFilter.WAITING: N_("Waiting"),
    HistoryFilter.REJECTED: N_("Rejected"),
}
_EMPTY: Final = {
    HistoryFilter.ALL: N_("No SMS yet. Send one with /send."),
    HistoryFilter.DELIVERED: N_("No delivered SMS yet."),
    HistoryFilter.WAITING: N_("No SMS is waiting for delivery."),
    HistoryFilter.REJECTED: N_("No rejected SMS."),
}
ACTIVE_MARK: Final = "• "


async def load_page(
    accounts: Accounts, outbox: OutboxRepo, user_id: int, flt: HistoryFilter, page: int
) -> tuple[HistoryPage, list[int]]:
    """One page from the gateway (one entry extra, to know whether there is a next page when
    it sends no total), and the outbox rows this page proved sent."""
    cursor = HistoryCursor(
        accounts, user_id, limit=PAGE_SIZE + 1, status=GATEWAY_STATUS[flt], offset=page * PAGE_SIZE
    )
    history = await cursor.read()
    # Sends that timed out show up here first: settle them while we have the records.
    resolved = await reconcile_unknown(outbox, user_id, history.items)
    return history, resolved


def history_view(
    history: HistoryPage, flt: HistoryFilter, page: int, resolved: int = 0
) -> tuple[str, InlineKeyboardMarkup]:
    items = history.items[:PAGE_SIZE]
    has_next = (
        (page + 1) * PAGE_SIZE < history.total
        if history.total is not None
        else len(history.items) > PAGE_SIZE
    )
    title = _("📜 <b>SMS history</b> · {filter}").format(filter=_(_LABELS[flt]))
    header = [title]
    if resolved:
        header.append(
            _("✅ {n} SMS whose sending was unclear turned up here: they did go out.").format(
                n=resolved
            )
        )
    if not items:
        return "\n".join([*header, "", _(_EMPTY[flt])]), _keyboard(flt, page, [], False)
    if history.total is not None:
        pages = max(-(-history.total // PAGE_SIZE), page + 1)
        header.append(
            _("Page {page} of {pages} · {total} SMS").format(
                page=page + 1, pages=pages, total=history.total
            )
        )
    else:
        header.append(_("Page {page}").format(page=page + 1))
    header.append(_("Tap a number for the whole SMS and its status."))
    first = page * PAGE_SIZE + 1
    text = sms_list(items, "\n".join(header), first_number=first)
    details = [
        (number, record.sms_id)
        for number, record in enumerate(items, start=first)
        if record.sms_id is not None and fits_id(record.sms_id)
    ]
    return text, _keyboard(flt, page, details, has_next)


def _keyboard(
    flt: HistoryFilter, page: int, details: list[tuple[int, int]], has_next: bool
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for number, sms_id in details:
        builder.button(text=str(number), callback_data=SmsCb(sms_id=sms_id))
    builder.adjust(_DETAIL_BUTTONS_PER_ROW)
    if page > 0 or has_next:
        # Both arrows always, so the row does not jump; a dead one answers with a hint.
        builder.row(
            InlineKeyboardButton(text="◀", callback_data=HistoryCb(page=page - 1, flt=flt).pack()),
            InlineKeyboardButton(text="▶", callback_data=HistoryCb(page=page + 1, flt=flt).pack()),
        )
    builder.row(
        *(
            InlineKeyboardButton(
                text=(ACTIVE_MARK if code is flt else "") + _(label),
                callback_data=HistoryCb(page=0, flt=code).pack(),
            )
            for code, label in _LABELS.items()
        )
    )
    return builder.as_markup()


async def show_history(message: Message, accounts: Accounts, outbox: OutboxRepo) -> None:
    assert message.from_user is not None
    await message.bot.send_chat_action(message.chat.id, "typing")  # type: ignore[union-attr]
    history, resolved = await load_page(
        accounts, outbox, message.from_user.id, HistoryFilter.ALL, 0
    )
    text, keyboard = history_view(history, HistoryFilter.ALL, 0, len(resolved))
    await message.answer(text, reply_markup=keyboard)


async def turn_page(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: HistoryCb,
    message: Message,
    accounts: Accounts,
    outbox: OutboxRepo,
) -> None:
    page, flt = callback_data.page, HistoryFilter(callback_data.flt)
    if page < 0:
        callback_answer.text = _("This is the first page.")
        return
    history, resolved = await load_page(accounts, outbox, query.from_user.id, flt, page)
    if page > 0 and not history.items:
        callback_answer.text = _("This is the last page.")
        return
    text, keyboard = history_view(history, flt, page, len(resolved))
    if not await edit_or_keep(message, text, keyboard):
        callback_answer.text = _("Already up to date.")


def create_router() -> Router:
    router = Router(name="history")
    # Every button is answered once, after its handler; a handler sets the text, if any.
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(show_history, Command("history"))
    router.message.register(show_history, MenuButton(BTN_HISTORY))
    # A forged or outdated filter code falls through to the fallback's "no longer active".
    router.callback_query.register(
        turn_page,
        HistoryCb.filter(F.flt.in_(set(HistoryFilter))),
        Accessible(),
    )
    return router
