"""/otp: phone → template type → company name → code (typed or generated) → confirm with the
gateway's warning → one universal_otp POST (services.sending.SmsSender.send_otp).

The code never enters FSM data (a database row an abandoned dialog leaves behind): between
the code step and Send it is held in `otp_codes` (a services.otp.CodeStore: this process's
memory, or Redis with a TTL and encrypted when replicas share the dialogs), and Send takes it
out before the request (the outbox keeps it after sending anyway); no handler logs it.
Handlers take `state`, `accounts`, `outbox`, `sms_sender`, `otp_codes` and `user_row` by
parameter name."""

from __future__ import annotations

import logging
import secrets
from contextlib import suppress
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import OtpAction, OtpCb
from handlers.filters import Accessible, AnyMenuButton, MenuButton
from handlers.keyboards import (
    BTN_OTP,
    main_menu,
    otp_code_keyboard,
    otp_confirm_keyboard,
    otp_template_keyboard,
    phone_keyboard,
    sent_keyboard,
    unstop_keyboard,
)
from handlers.otp_texts import (
    ask_code_text,
    ask_company_text,
    ask_phone_text,
    ask_template_text,
    cancel_hint,
    code_error_text,
    code_lost_text,
    confirm_text,
    name_error_text,
    not_sent_text,
    outcome_text,
)
from handlers.send_preview import price_for, tell_outcome
from handlers.send_stop import refused_for_stop_list
from handlers.send_texts import EXAMPLE_PHONE, phone_error_text
from handlers.states import OtpForm
from handlers.stoplist_texts import refused_text
from handlers.utils import AnswerCallbacks
from services.accounts import Accounts
from services.devsms import Balance, DevsmsGatewayError, DevsmsUnavailable
from services.otp import (
    TEMPLATE_TYPES,
    CodeStore,
    InvalidCode,
    InvalidName,
    OtpRequest,
    clean_code,
    clean_service_name,
    generate_code,
)
from services.phones import InvalidPhone, normalize_phone
from services.sending import Outcome, SmsSender
from storage import OutboxRepo, StopListRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)


# --- typed steps ---------------------------------------------------------------------------


async def start_otp(
    message: Message, state: FSMContext, otp_codes: CodeStore, user_row: UserRow
) -> None:
    await otp_codes.drop(user_row.id)  # an earlier dialog's code
    await state.clear()
    await state.set_state(OtpForm.phone)
    await state.update_data(draft=secrets.randbelow(1_000_000_000))
    await message.answer(ask_phone_text(), reply_markup=phone_keyboard())


async def phone_as_text(
    message: Message, state: FSMContext, stoplist: StopListRepo, user_row: UserRow
) -> None:
    assert message.text is not None
    await take_phone(message, state, stoplist, user_row, message.text)


async def phone_as_contact(
    message: Message, state: FSMContext, stoplist: StopListRepo, user_row: UserRow
) -> None:
    assert message.contact is not None
    await take_phone(message, state, stoplist, user_row, message.contact.phone_number)


async def take_phone(
    message: Message, state: FSMContext, stoplist: StopListRepo, user_row: UserRow, raw: str
) -> None:
    try:
        phone = normalize_phone(raw)
    except InvalidPhone as exc:
        await message.answer(
            phone_error_text(exc.reason)
            + "\n"
            + _("Example: {example}").format(example=EXAMPLE_PHONE)
            + "\n"
            + cancel_hint(),
            reply_markup=phone_keyboard(),
        )
        return
    if await refused_for_stop_list(
        message, state, stoplist, user_row.id, phone.digits, ask_again=OtpForm.phone
    ):
        return
    await state.update_data(phone=phone.digits)
    await state.set_state(OtpForm.template)
    draft: int = (await state.get_data())["draft"]
    # The reply keyboard (my number, cancel) goes away; the buttons below ask the next step.
    await message.answer(
        _("Recipient: {phone}.").format(phone=phone.international), reply_markup=main_menu()
    )
    await message.answer(ask_template_text(phone), reply_markup=otp_template_keyboard(draft))


async def not_text(message: Message) -> None:
    await message.answer(_("Send it as a text message, please.") + "\n" + cancel_hint())


async def use_buttons(message: Message) -> None:
    await message.answer(_("Use the buttons under the last message, or /cancel."))


async def company_received(message: Message, state: FSMContext) -> None:
    assert message.text is not None
    try:
        name = clean_service_name(message.text)
    except InvalidName as exc:
        await message.answer(name_error_text(exc.problem))
        return
    await state.update_data(name=name)
    await state.set_state(OtpForm.code)
    draft: int = (await state.get_data())["draft"]
    await message.answer(ask_code_text(), reply_markup=otp_code_keyboard(draft))


async def code_received(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    outbox: OutboxRepo,
    otp_codes: CodeStore,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    try:
        code = clean_code(message.text)
    except InvalidCode as exc:
        await message.answer(code_error_text(exc.problem))
        return
    await keep_and_confirm(message, state, accounts, outbox, otp_codes, user_row, code)


async def keep_and_confirm(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    outbox: OutboxRepo,
    otp_codes: CodeStore,
    user_row: UserRow,
    code: str,
) -> None:
    """The code goes to memory, tied to this dialog; FSM data never holds it."""
    draft: int = (await state.get_data())["draft"]
    await otp_codes.put(user_row.id, draft, code)
    await show_confirm(message, state, accounts, outbox, user_row, code)


async def show_confirm(
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    outbox: OutboxRepo,
    user_row: UserRow,
    code: str,
) -> None:
    data = await state.get_data()
    phone = normalize_phone(data["phone"])
    try:
        balance = await accounts.recent_balance(user_row.id)
    except (DevsmsUnavailable, DevsmsGatewayError):
        # As in /send: the draft matters more than the price shown beside it.
        balance = accounts.last_balance(user_row.id) or Balance(balance=None, sms_price=None)
    price = await price_for(outbox, user_row.id, phone.digits, balance)
    await state.set_state(OtpForm.confirm)
    await message.answer(
        confirm_text(phone, request_of(data, code), price, balance),
        reply_markup=otp_confirm_keyboard(data["draft"]),
    )


def request_of(data: dict[str, Any], code: str) -> OtpRequest:
    return OtpRequest(template_type=data["tt"], service_name=data["name"], code=code)


# --- buttons -------------------------------------------------------------------------------


async def live(
    callback_answer: CallbackAnswer,
    callback_data: OtpCb,
    message: Message,
    state: FSMContext,
    *steps: State,
) -> dict[str, Any] | None:
    """The dialog's data when the tap belongs to it and to one of `steps`; else the tap is
    told the button is no longer active (an older dialog, a second tap, a restart)."""
    data = await state.get_data()
    current = await state.get_state()
    if any(current == step.state for step in steps) and data.get("draft") == callback_data.draft:
        return data
    callback_answer.text = _("This button is no longer active.")
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    return None


async def template_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: OtpCb,
    message: Message,
    state: FSMContext,
) -> None:
    if await live(callback_answer, callback_data, message, state, OtpForm.template) is None:
        return
    if callback_data.tt not in TEMPLATE_TYPES:
        callback_answer.text = _("This button is no longer active.")
        return
    await state.update_data(tt=callback_data.tt)
    await state.set_state(OtpForm.company)
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    await message.answer(ask_company_text(callback_data.tt))


async def generate_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: OtpCb,
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    outbox: OutboxRepo,
    otp_codes: CodeStore,
    user_row: UserRow,
) -> None:
    if await live(callback_answer, callback_data, message, state, OtpForm.code) is None:
        return
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    code = generate_code()
    await keep_and_confirm(message, state, accounts, outbox, otp_codes, user_row, code)


async def cancel_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: OtpCb,
    message: Message,
    state: FSMContext,
    otp_codes: CodeStore,
    user_row: UserRow,
) -> None:
    steps = (OtpForm.template, OtpForm.code, OtpForm.confirm)
    if await live(callback_answer, callback_data, message, state, *steps) is None:
        return
    await otp_codes.drop(user_row.id)
    await state.clear()
    await message.edit_text(_("Cancelled. Nothing was sent."))


async def send_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: OtpCb,
    message: Message,
    state: FSMContext,
    accounts: Accounts,
    outbox: OutboxRepo,
    sms_sender: SmsSender,
    otp_codes: CodeStore,
    user_row: UserRow,
) -> None:
    data = await live(callback_answer, callback_data, message, state, OtpForm.confirm)
    if data is None:
        return
    code = await otp_codes.get(user_row.id, data["draft"])
    if code is None:
        # Not kept any more (a restart, or the confirm waited over an hour): asked anew.
        await state.set_state(OtpForm.code)
        with suppress(TelegramBadRequest):
            await message.edit_reply_markup(reply_markup=None)
        await message.answer(code_lost_text(), reply_markup=otp_code_keyboard(data["draft"]))
        return
    # The draft and its code go before the request: a second tap finds nothing to send.
    await otp_codes.drop(user_row.id)
    await state.clear()
    # "Sending…" is answered here, before the request, not by the middleware after it; an
    # expired query must not stop the send the user confirmed.
    callback_answer.disable()
    with suppress(TelegramAPIError):
        await query.answer(_("Sending…"))
    with suppress(TelegramAPIError):
        await message.edit_reply_markup(reply_markup=None)
    phone, otp = normalize_phone(data["phone"]), request_of(data, code)
    outcome = await sms_sender.send_otp(user_row.id, phone.digits, otp)
    if outcome.outcome is Outcome.STOPPED and outcome.stopped is not None:
        # Put on the stop list after the phone step: nothing was recorded or sent. The
        # dialog asks for another number (its draft kept, the code dropped).
        await state.set_data(data)
        await state.set_state(OtpForm.phone)
        await tell_outcome(
            message, refused_text(outcome.stopped), unstop_keyboard(outcome.stopped.id)
        )
        return
    if outcome.outcome is Outcome.NOT_SENT:
        # Certainly not sent: offering the same code again is safe.
        await state.set_data(data)
        await tell_outcome(message, not_sent_text(), None)
        await keep_and_confirm(message, state, accounts, outbox, otp_codes, user_row, code)
        return
    # It changed, or may have: a refused company name is charged too.
    await accounts.forget_balance(user_row.id)
    markup = None
    if outcome.outcome in (Outcome.SENT, Outcome.UNKNOWN):
        markup = sent_keyboard(
            outcome.result.sms_id if outcome.result else None, outcome.outbox_id
        )
    await tell_outcome(message, outcome_text(phone, otp, outcome), markup)


def create_router() -> Router:
    router = Router(name="otp")
    # Every button is answered once, after its handler (send_button answers before the send).
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(start_otp, Command("otp"))
    router.message.register(start_otp, MenuButton(BTN_OTP))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(phone_as_text, OtpForm.phone, *free_text)
    router.message.register(phone_as_contact, OtpForm.phone, F.contact)
    router.message.register(company_received, OtpForm.company, *free_text)
    router.message.register(code_received, OtpForm.code, *free_text)
    router.message.register(use_buttons, OtpForm.template, *free_text)
    router.message.register(use_buttons, OtpForm.confirm, *free_text)
    for step in (OtpForm.phone, OtpForm.company, OtpForm.code):
        router.message.register(not_text, step, ~F.text)
    for action, button in (
        (OtpAction.TYPE, template_button),
        (OtpAction.GENERATE, generate_button),
        (OtpAction.SEND, send_button),
        (OtpAction.CANCEL, cancel_button),
    ):
        router.callback_query.register(button, OtpCb.filter(F.action == action), Accessible())
    return router
