"""/send: phone → text → preview with parts and cost → explicit confirmation → one POST.

Handlers take what they use by parameter name from the dispatcher's data: `state`,
`accounts`, `outbox` (the price of a country abroad), `settings`, `sms_sender`, and `user_row`
(the sender's row, loaded once per update by the user middleware)."""

from __future__ import annotations

import logging
import secrets
from contextlib import suppress
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import SendAction, SendCb
from handlers.config import HandlerSettings
from handlers.filters import Accessible, AnyMenuButton, MenuButton
from handlers.keyboards import (
    BTN_CANCEL,
    BTN_SEND,
    main_menu,
    phone_keyboard,
    preview_keyboard,
    sent_keyboard,
    unstop_keyboard,
)
from handlers.render import too_many_parts_text
from handlers.send_stop import refused_for_stop_list
from handlers.send_texts import (
    EXAMPLE_PHONE,
    ask_phone_text,
    phone_error_text,
    preview_text,
    result_text,
)
from handlers.states import SendForm
from handlers.utils import AnswerCallbacks
from services.accounts import Accounts
from services.devsms import Balance, DevsmsGatewayError, DevsmsUnavailable
from services.phones import InvalidPhone, foreign_region, normalize_phone
from services.phones import extract_phone_and_text as split_quick_form
from services.pricing import PartPrice, abroad_rates, part_price
from services.sending import Outcome, SmsSender
from services.sms_parts import TooManyParts, cheaper_spelling, check_parts
from services.user_input import effective_sender
from storage import OutboxRepo, StopListRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)


# --- steps ---------------------------------------------------------------------------------


async def start_send(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
    command: CommandObject | None = None,
) -> None:
    await state.clear()
    replied = message.reply_to_message
    if replied is not None and replied.contact is not None:
        # "/send" as a reply to a shared contact: its number is the recipient.
        raw = replied.contact.phone_number
        await take_phone(message, state, accounts, stoplist, outbox, settings, user_row, raw)
        return
    args = (command.args or "").strip() if command else ""
    if args:
        quick = split_quick_form(args)
        if quick is not None:
            phone, text = quick
            await state.update_data(phone=phone.digits)
            await take_text(message, state, accounts, stoplist, outbox, settings, user_row, text)
            return
        await take_phone(message, state, accounts, stoplist, outbox, settings, user_row, args)
        return
    await state.set_state(SendForm.phone)
    await message.answer(ask_phone_text(), reply_markup=phone_keyboard())


async def phone_as_text(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    await take_phone(message, state, accounts, stoplist, outbox, settings, user_row, message.text)


async def phone_as_contact(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.contact is not None
    raw = message.contact.phone_number
    await take_phone(message, state, accounts, stoplist, outbox, settings, user_row, raw)


async def take_phone(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
    raw: str,
) -> None:
    try:
        phone = normalize_phone(raw)
    except InvalidPhone as exc:
        await state.set_state(SendForm.phone)
        await message.answer(
            phone_error_text(exc.reason)
            + "\n"
            + _("Example: {example}").format(example=EXAMPLE_PHONE),
            reply_markup=phone_keyboard(),
        )
        return
    await state.update_data(phone=phone.digits)
    if await refused_for_stop_list(message, state, stoplist, user_row.id, phone.digits):
        return
    if (await state.get_data()).get("text"):
        # "Change number" from a preview keeps the text.
        await show_preview(message, state, accounts, stoplist, outbox, settings, user_row)
        return
    await state.set_state(SendForm.text)
    await message.answer(
        _("Recipient: {phone}. Now send the text of the SMS.").format(phone=phone.international)
        + "\n"
        + _("/cancel stops sending."),
        reply_markup=main_menu(),
    )


async def phone_not_understood(message: Message) -> None:
    await message.answer(
        _("Send the phone number as text, or attach a contact.")
        + "\n"
        + _("/cancel stops sending.")
    )


async def text_received(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    await take_text(message, state, accounts, stoplist, outbox, settings, user_row, message.text)


async def take_text(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    stoplist: StopListRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
    text: str,
) -> None:
    text = text.strip()
    if not text:
        await state.set_state(SendForm.text)
        await message.answer(_("The SMS text cannot be empty. Send the text."))
        return
    try:
        check_parts(text, settings.sms_max_parts)
    except TooManyParts as exc:
        await state.set_state(SendForm.text)
        await message.answer(too_many_parts_text(exc))
        return
    await state.update_data(text=text)
    await show_preview(message, state, accounts, stoplist, outbox, settings, user_row)


async def text_not_understood(message: Message) -> None:
    await message.answer(
        _("Only text can go by SMS: send the text as a message.")
        + "\n"
        + _("/cancel stops sending.")
    )


async def preview_waiting(message: Message) -> None:
    await message.answer(_("Use the buttons under the preview, or /cancel."))


async def cancel_button(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Cancelled. Nothing was sent."), reply_markup=main_menu())


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
    outcome = await sms_sender.send(user_row.id, phone.digits, data["text"], data.get("sender"))
    if outcome.outcome is Outcome.NOT_SENT:
        # Certainly not sent, so offering the same draft again is safe.
        await state.set_data({k: v for k, v in data.items() if k in ("phone", "text")})
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
        await state.set_data({k: v for k, v in data.items() if k in ("phone", "text")})
        markup = unstop_keyboard(outcome.stopped.id)
        await tell_outcome(message, result_text(phone, data["text"], outcome), markup)
        return
    accounts.forget_balance(user_row.id)  # it changed, or may have
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


def create_router() -> Router:
    router = Router(name="send")
    # Every button is answered once, after its handler (confirm_send answers before the send).
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(start_send, Command("send"))
    router.message.register(start_send, MenuButton(BTN_SEND))
    router.message.register(cancel_button, MenuButton(BTN_CANCEL))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(phone_as_text, SendForm.phone, *free_text)
    router.message.register(phone_as_contact, SendForm.phone, F.contact)
    router.message.register(phone_not_understood, SendForm.phone, ~F.text)
    router.message.register(text_received, SendForm.text, *free_text)
    router.message.register(text_not_understood, SendForm.text, ~F.text)
    router.message.register(preview_waiting, SendForm.preview, *free_text)
    for action, button in (
        (SendAction.SEND, send_button),
        (SendAction.CHEAP, cheaper_button),
        (SendAction.TEXT, change_text_button),
        (SendAction.PHONE, change_phone_button),
        (SendAction.CANCEL, cancel_preview_button),
    ):
        router.callback_query.register(button, SendCb.filter(F.action == action), Accessible())
    return router
