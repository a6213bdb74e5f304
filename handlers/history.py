"""/history: the gateway's list of SMS (also those sent outside the bot), ten per page, with
status filters and a details button per entry. Paging and filters edit the same message."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from aiogram import F, Router, html
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import HistoryCb, HistorySearchCb, SmsCb, fits_id
from handlers.filters import Accessible, AnyMenuButton, MenuButton
from handlers.keyboards import BTN_HISTORY
from handlers.plural import ngettext
from handlers.send_texts import EXAMPLE_PHONE, phone_error_text
from handlers.sms_render import sms_list
from handlers.states import HistoryForm
from handlers.utils import AnswerCallbacks, action_if_slow, edit_or_keep
from services.accounts import Accounts
from services.devsms import HistoryPage, SmsRecord
from services.history_pages import HistoryCursor
from services.i18n import N_
from services.money import Money
from services.phones import InvalidPhone, PhoneNumber, normalize_phone
from services.reconcile import reconcile_unknown
from services.schedule_time import zone_of
from storage import OutboxRepo, TrafficRepo, TrafficRow
from storage.users import UserRow

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 10
_DETAIL_BUTTONS_PER_ROW: Final = 5


class HistoryFilter(StrEnum):
    """Codes in HistoryCb.flt: one letter, the callback data stays short."""

    ALL = "a"
    DELIVERED = "d"
    WAITING = "w"
    ACCEPTED = "c"
    REJECTED = "r"
    UNDELIVERABLE = "u"
    SENT = "s"
    """Waiting, as newer gateways call it ("sent"): no button of its own, see WAITING."""


# The gateway's `status` query per filter (devsms-api.md, "History"), spelled as its docs do.
GATEWAY_STATUS: Final[dict[HistoryFilter, str | None]] = {
    HistoryFilter.ALL: None,
    HistoryFilter.DELIVERED: "DELIVERED",
    HistoryFilter.WAITING: "waiting",
    HistoryFilter.ACCEPTED: "ACCEPTED",
    HistoryFilter.REJECTED: "REJECTED",
    HistoryFilter.UNDELIVERABLE: "UNDELIVERABLE",
    HistoryFilter.SENT: "sent",
}
# The filter a button stands for (SENT is shown as the Waiting button).
_SHOWN_AS: Final = {HistoryFilter.SENT: HistoryFilter.WAITING}
_LABELS: Final = {
    HistoryFilter.ALL: N_("All"),
    HistoryFilter.DELIVERED: N_("Delivered"),
    HistoryFilter.WAITING: N_("Waiting"),
    HistoryFilter.ACCEPTED: N_("Accepted"),
    HistoryFilter.REJECTED: N_("Rejected"),
    HistoryFilter.UNDELIVERABLE: N_("Undeliverable"),
}
_EMPTY: Final = {
    HistoryFilter.ALL: N_("No SMS yet. Send one with /send."),
    HistoryFilter.DELIVERED: N_("No delivered SMS yet."),
    HistoryFilter.WAITING: N_("No SMS is waiting for delivery."),
    HistoryFilter.SENT: N_("No SMS is waiting for delivery."),
    HistoryFilter.ACCEPTED: N_("No SMS is with the operator now."),
    HistoryFilter.REJECTED: N_("No rejected SMS."),
    HistoryFilter.UNDELIVERABLE: N_("No undeliverable SMS."),
}
_FILTERS_PER_ROW: Final = 3
SEARCH_LIMIT: Final = 20
ACTIVE_MARK: Final = "• "


async def load_page(
    accounts: Accounts, outbox: OutboxRepo, user_id: int, flt: HistoryFilter, page: int
) -> tuple[HistoryPage, list[int]]:
    """One page from the gateway (one entry extra, to know whether there is a next page when
    it sends no total), and the outbox rows this page proved sent."""
    history = await _read(accounts, user_id, flt, page)
    # Sends that timed out show up here first: settle them while we have the records.
    resolved = await reconcile_unknown(outbox, user_id, history.items)
    return history, resolved


async def waiting_page(
    accounts: Accounts, outbox: OutboxRepo, user_id: int, page: int
) -> tuple[HistoryFilter, HistoryPage, list[int]]:
    """The Waiting filter's first page: a newer gateway calls the same state "sent", so when
    it has nothing "waiting" the page asks for "sent" (and pages on with that)."""
    history, resolved = await load_page(accounts, outbox, user_id, HistoryFilter.WAITING, page)
    if history.items or page > 0:
        return HistoryFilter.WAITING, history, resolved
    history, resolved = await load_page(accounts, outbox, user_id, HistoryFilter.SENT, page)
    return HistoryFilter.SENT, history, resolved


async def _read(accounts: Accounts, user_id: int, flt: HistoryFilter, page: int) -> HistoryPage:
    cursor = HistoryCursor(
        accounts, user_id, limit=PAGE_SIZE + 1, status=GATEWAY_STATUS[flt], offset=page * PAGE_SIZE
    )
    return await cursor.read()


def history_view(
    history: HistoryPage, flt: HistoryFilter, page: int, resolved: int = 0
) -> tuple[str, InlineKeyboardMarkup]:
    items = history.items[:PAGE_SIZE]
    has_next = (
        (page + 1) * PAGE_SIZE < history.total
        if history.total is not None
        else len(history.items) > PAGE_SIZE
    )
    shown = _SHOWN_AS.get(flt, flt)
    title = _("📜 <b>SMS history</b> · {filter}").format(filter=_(_LABELS[shown]))
    header = [title]
    if resolved:
        header.append(
            ngettext(
                "✅ {n} SMS whose sending was unclear turned up here: it did go out.",
                "✅ {n} SMS whose sending was unclear turned up here: they did go out.",
                resolved,
            ).format(n=resolved)
        )
    if not items:
        return "\n".join([*header, "", _(_EMPTY[flt])]), _keyboard(flt, page, [], False)
    if history.total is not None:
        pages = max(-(-history.total // PAGE_SIZE), page + 1)
        header.append(
            ngettext(
                "Page {page} of {pages} · {total} SMS",
                "Page {page} of {pages} · {total} SMS",
                history.total,
            ).format(page=page + 1, pages=pages, total=history.total)
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
    shown = _SHOWN_AS.get(flt, flt)
    buttons = [
        InlineKeyboardButton(
            text=(ACTIVE_MARK if code is shown else "") + _(label),
            callback_data=HistoryCb(page=0, flt=code).pack(),
        )
        for code, label in _LABELS.items()
    ]
    for start in range(0, len(buttons), _FILTERS_PER_ROW):
        builder.row(*buttons[start : start + _FILTERS_PER_ROW])
    builder.row(
        InlineKeyboardButton(
            text=_("🔎 Search by phone number"), callback_data=HistorySearchCb().pack()
        )
    )
    return builder.as_markup()


def record_of(row: TrafficRow, zone: ZoneInfo) -> SmsRecord:
    """A stored SMS as the history lines show it: the time on the user's clock (`zone`, as
    /settings has it), as /export and the digest show it."""
    cost = None if row.cost is None or row.currency is None else Money(row.cost, row.currency)
    return SmsRecord(
        sms_id=row.sms_id,
        request_id=row.request_id,
        phone=row.phone,
        message=row.message,
        sender=row.sender,
        status=row.status,
        parts_count=row.parts,
        cost=cost,
        created_at=row.created_at.astimezone(zone),
    )


async def search_view(traffic: TrafficRepo, user: UserRow, phone: PhoneNumber) -> str:
    """The newest SMS to `phone` in the account's record (also those sent outside the bot)."""
    user_id = user.id
    spellings = (phone.digits, "+" + phone.digits)
    rows = await traffic.by_phone(user_id, spellings, SEARCH_LIMIT)
    header = _("🔎 <b>SMS to {phone}</b>").format(phone=phone.international)
    if not rows:
        return "\n".join(
            [
                header,
                "",
                _("No SMS to this number in the record yet. SMS from the last minutes may "
                  "still be on their way into it."),
            ]
        )  # fmt: skip
    note = ngettext(
        "The newest {n} SMS of the account's record, also those sent outside the bot:",
        "The newest {n} SMS of the account's record, also those sent outside the bot:",
        len(rows),
    ).format(n=len(rows))
    zone = zone_of(user.timezone)
    return sms_list([record_of(row, zone) for row in rows], f"{header}\n{note}")


async def ask_phone(message: Message, state: FSMContext) -> None:
    await state.set_state(HistoryForm.phone)
    await message.answer(
        _("Send the phone number to look for, e.g. {example}.").format(example=EXAMPLE_PHONE)
        + "\n"
        + _("/cancel to stop.")
    )


async def search_button(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    await ask_phone(message, state)


async def phone_received(
    message: Message, state: FSMContext, traffic: TrafficRepo, user_row: UserRow
) -> None:
    assert message.text is not None and message.from_user is not None
    try:
        phone = normalize_phone(message.text)
    except InvalidPhone as exc:
        await message.answer(phone_error_text(exc.reason) + "\n" + _("/cancel to stop."))
        return
    await state.clear()
    await message.answer(await search_view(traffic, user_row, phone))


async def phone_not_text(message: Message) -> None:
    await message.answer(
        _("Please send the number as a text message.") + "\n" + _("/cancel to stop.")
    )


async def history_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    accounts: Accounts,
    outbox: OutboxRepo,
    traffic: TrafficRepo,
    user_row: UserRow,
) -> None:
    """/history, or /history +998901234567: that number's SMS."""
    assert message.from_user is not None
    if not command.args:
        await show_history(message, accounts, outbox)
        return
    try:
        phone = normalize_phone(command.args)
    except InvalidPhone as exc:
        await message.answer(
            phone_error_text(exc.reason)
            + "\n"
            + _("/history alone shows every SMS; /history {example} those to one number.").format(
                example=html.quote(EXAMPLE_PHONE)
            )
        )
        return
    await message.answer(await search_view(traffic, user_row, phone))


async def show_history(message: Message, accounts: Accounts, outbox: OutboxRepo) -> None:
    assert message.from_user is not None and message.bot is not None
    async with action_if_slow(message.bot, message.chat.id):
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
    if flt is HistoryFilter.WAITING:
        flt, history, resolved = await waiting_page(accounts, outbox, query.from_user.id, page)
    else:
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
    router.message.register(history_command, Command("history"))
    router.message.register(show_history, MenuButton(BTN_HISTORY))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(phone_received, HistoryForm.phone, *free_text)
    router.message.register(phone_not_text, HistoryForm.phone, ~F.text)
    router.callback_query.register(search_button, HistorySearchCb.filter(), Accessible())
    # A forged or outdated filter code falls through to the fallback's "no longer active".
    router.callback_query.register(
        turn_page,
        HistoryCb.filter(F.flt.in_(set(HistoryFilter))),
        Accessible(),
    )
    return router
