"""/send, after the text: the preview with parts and cost, its buttons, and the one POST the
explicit confirmation makes (services.sending.SmsSender). The router is in handlers/send.py."""

from __future__ import annotations

import logging
import secrets
from contextlib import suppress
from typing import Any, Final

from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import SendCb
from handlers.config import HandlerSettings
from handlers.keyboards import (
    main_menu,
    phone_keyboard,
    preview_keyboard,
    sent_keyboard,
    unstop_keyboard,
)
from handlers.send_stop import refused_for_stop_list
from handlers.send_texts import ask_phone_text, preview_text, result_text
from handlers.states import SendForm
from services.accounts import Accounts
from services.devsms import Balance, DevsmsGatewayError, DevsmsUnavailable
from services.phones import foreign_region, normalize_phone
from services.pricing import PartPrice, abroad_rates, part_price
from services.sending import Outcome, SmsSender
from services.sms_parts import cheaper_spelling
from services.user_input import effective_sender
from storage import OutboxRepo, StopListRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)

# What of a draft comes back when the send provably did not happen.
DRAFT_KEYS: Final = ("phone", "text", "tpl_name")


# --- preview -------------------------------------------------------------------------------


async def show_preview(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
    *,
    edit: bool = False,
) -> None:
    """Renders the draft kept in FSM data, as a new message or by editing `message`."""
    data = await state.get_data()
    phone = normalize_phone(data["phone"])
    text: str = data["text"]
    # Every way to a preview passes here: the quick form, a template, "Change number".
    if await refused_for_stop_list(message, state, stoplist, user_row.id, phone.digits):
        return
    sender = effective_sender(user_row, settings.default_sender)
    try:
        balance = await accounts.recent_balance(user_row.id)
    except (DevsmsUnavailable, DevsmsGatewayError):
        # The draft matters more than the price: right after "could not reach devsms" the
        # balance usually cannot be read either, and an error here would drop the draft.
        balance = accounts.last_balance(user_row.id) or Balance(balance=None, sms_price=None)
    draft = secrets.randbelow(1_000_000_000)
    price = await price_for(outbox, user_row.id, phone.digits, balance)
    body, can_send, cheaper = preview_text(phone, text, sender, balance, price)
    markup = preview_keyboard(draft, cheaper=cheaper, can_send=can_send)
    await state.set_state(SendForm.preview)
    await state.update_data(draft=draft, sender=sender)
    if edit:
        await message.edit_text(body, reply_markup=markup)
    else:
        await message.answer(body, reply_markup=markup)


async def price_for(outbox: OutboxRepo, user_id: int, digits: str, balance: Balance) -> PartPrice:
    """The price of a part to `digits` (services.pricing.part_price); abroad, from the cost of
    the user's last SMS to that country (one query), if any."""
    region = foreign_region(digits)
    stored = await outbox.country_costs(user_id, [region]) if region else {}
    return part_price(digits, balance, abroad_rates(stored))


# --- buttons under the preview ------------------------------------------------------------


async def live_draft(
    callback_answer: CallbackAnswer, callback_data: SendCb, message: Message, state: FSMContext
) -> dict[str, Any] | None:
    """The draft the tapped preview shows, or None (and the tap is told so) for an older
    preview, a second tap after sending, or a button from before a restart."""
    data = await state.get_data()
    current = await state.get_state() == SendForm.preview.state
    if current and data.get("draft") == callback_data.draft:
        return data
    callback_answer.text = _("This preview is no longer active.")
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    return None


async def send_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: SendCb,
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    sms_sender: SmsSender,
    user_row: UserRow,
) -> None:
    data = await live_draft(callback_answer, callback_data, message, state)
    if data is not None:
        await confirm_send(
            query,
            callback_answer,
            message,
            state,
            accounts,
            stoplist,
            outbox,
            settings,
            sms_sender,
            user_row,
            data,
        )


async def cheaper_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: SendCb,
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    data = await live_draft(callback_answer, callback_data, message, state)
    if data is None:
        return
    cheaper = cheaper_spelling(data["text"])
    if cheaper is not None:
        await state.update_data(text=cheaper)
    callback_answer.text = _("Apostrophes and quotes replaced with plain ones.")
    await show_preview(message, state, accounts, stoplist, outbox, settings, user_row, edit=True)


async def change_text_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: SendCb,
    message: Message,
    state: FSMContext,
) -> None:
    if await live_draft(callback_answer, callback_data, message, state) is None:
        return
    await message.edit_reply_markup(reply_markup=None)
    await state.set_state(SendForm.text)
    await message.answer(
        _("Send the new text of the SMS.") + "\n" + _("/cancel stops sending."),
        reply_markup=main_menu(),
    )


async def change_phone_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: SendCb,
    message: Message,
    state: FSMContext,
) -> None:
    if await live_draft(callback_answer, callback_data, message, state) is None:
        return
    await message.edit_reply_markup(reply_markup=None)
    await state.set_state(SendForm.phone)
    await message.answer(ask_phone_text(), reply_markup=phone_keyboard())


async def cancel_preview_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: SendCb,
    message: Message,
    state: FSMContext,
) -> None:
    if await live_draft(callback_answer, callback_data, message, state) is None:
        return
    await state.clear()
    await message.edit_text(_("Cancelled. Nothing was sent."))


async def confirm_send(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    sms_sender: SmsSender,
    user_row: UserRow,
    data: dict[str, Any],
) -> None:
    # The draft leaves the FSM before the request: a second tap (handled after this one,
    # see SimpleEventIsolation) finds nothing to send.
    await state.clear()
    # Both only tidy up the preview. An expired query ("query is too old": the tap waited in
    # a queue) or a network error must not stop the send the user confirmed. "Sending…" is
    # answered here, before the request, not by the middleware after it.
    callback_answer.disable()
    with suppress(TelegramAPIError):
        await query.answer(_("Sending…"))
    with suppress(TelegramAPIError):
        await message.edit_reply_markup(reply_markup=None)
    phone = normalize_phone(data["phone"])
    outcome = await sms_sender.send(
        user_row.id, phone.digits, data["text"], data.get("sender"), template=data.get("tpl_name")
    )
    if outcome.outcome is Outcome.NOT_SENT:
        # Certainly not sent, so offering the same draft again is safe.
        await state.set_data({k: v for k, v in data.items() if k in DRAFT_KEYS})
        await tell_outcome(
            message,
            _("⚠️ Could not reach devsms.uz: the SMS was <b>not</b> sent.")
            + "\n"
            + _("Here is the draft again; try in a minute."),
            None,
        )
        await show_preview(message, state, accounts, stoplist, outbox, settings, user_row)
        return
    if outcome.outcome is Outcome.STOPPED and outcome.stopped is not None:
        # Put on the stop list after the preview: nothing left, the draft comes back.
        await state.set_state(SendForm.phone)
        await state.set_data({k: v for k, v in data.items() if k in DRAFT_KEYS})
        markup = unstop_keyboard(outcome.stopped.id)
        await tell_outcome(message, result_text(phone, data["text"], outcome), markup)
        return
    await accounts.forget_balance(user_row.id)  # it changed, or may have
    await tell_outcome(
        message,
        result_text(phone, data["text"], outcome),
        sent_keyboard(outcome.result.sms_id if outcome.result else None, outcome.outbox_id)
        if outcome.outcome in (Outcome.SENT, Outcome.UNKNOWN)
        else None,
    )


async def tell_outcome(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """The outcome replaces the preview, or comes as a new message when the preview cannot
    be edited (deleted, too old, a network error): after a send the user must learn what
    happened, never "something went wrong, try again"."""
    try:
        await message.edit_text(text, reply_markup=markup)
        return
    except TelegramAPIError as exc:
        logger.warning("send result: preview not edited (%s), sending it anew", exc)
    try:
        await message.answer(text, reply_markup=markup)
    except TelegramAPIError:
        logger.exception("send result could not be shown in chat %s", message.chat.id)
