"""/send: phone → text → preview with parts and cost → explicit confirmation → one POST.

Handlers take what they use by parameter name from the dispatcher's data: `state`,
`accounts`, `outbox` (the price of a country abroad), `settings`, `sms_sender`, and `user_row`
(the sender's row, loaded once per update by the user middleware)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import SendAction, SendCb
from handlers.config import HandlerSettings
from handlers.filters import Accessible, AnyMenuButton, MenuButton
from handlers.keyboards import (
    BTN_CANCEL,
    BTN_SEND,
    main_menu,
    phone_keyboard,
)
from handlers.render import too_many_parts_text
from handlers.send_preview import (
    cancel_preview_button,
    change_phone_button,
    change_text_button,
    cheaper_button,
    send_button,
    show_preview,
)
from handlers.send_stop import refused_for_stop_list
from handlers.send_texts import (
    EXAMPLE_PHONE,
    ask_phone_text,
    phone_error_text,
)
from handlers.states import SendForm
from handlers.utils import AnswerCallbacks
from services.accounts import Accounts
from services.phones import InvalidPhone, normalize_phone
from services.phones import extract_phone_and_text as split_quick_form
from services.sms_parts import TooManyParts, check_parts
from storage import OutboxRepo, StopListRepo
from storage.users import UserRow

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
    # A typed text (also "Change text" after a template) was not made from a template.
    await state.update_data(text=text, tpl_name=None)
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
