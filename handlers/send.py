"""/send: phone → text → preview with parts and cost → explicit confirmation → one POST."""

from __future__ import annotations

import logging
import secrets
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from aiogram import F, Router, html
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import SendCb
from handlers.config import HandlerSettings
from handlers.filters import Accessible, AnyMenuButton, MenuButton
from handlers.keyboards import (
    BTN_CANCEL,
    BTN_SEND,
    main_menu,
    phone_keyboard,
    preview_keyboard,
    sent_keyboard,
)
from handlers.render import MISSING, money, not_enough_text, too_many_parts_text
from handlers.states import SendForm
from handlers.utils import ContextMiddleware
from services.accounts import Accounts
from services.devsms import Balance, DevsmsGatewayError, DevsmsUnavailable
from services.phones import InvalidPhone, PhoneError, PhoneNumber, normalize_phone
from services.phones import extract_phone_and_text as split_quick_form
from services.pricing import cost_of
from services.sending import Outcome, SendOutcome, SmsSender
from services.sms_parts import (
    TooManyParts,
    cheaper_spelling,
    check_parts,
    count_sms,
    describe_char,
)
from services.user_input import effective_sender
from storage import UserRepo

logger = logging.getLogger(__name__)

EXAMPLE_PHONE = "+998 90 123 45 67"
# Room for the quoted SMS inside Telegram's 4096 characters, with the rest of the preview.
PREVIEW_TEXT_LIMIT = 3000
RESULT_TEXT_LIMIT = 200


def quote_cut(text: str, limit: int) -> str:
    """Escaped text of at most `limit` characters; cut on the raw text so no entity breaks."""
    quoted = html.quote(text)
    if len(quoted) <= limit:
        return quoted
    low, high = 0, len(text)
    while low < high:  # the longest raw prefix whose escaped form (plus "…") fits
        middle = (low + high + 1) // 2
        if len(html.quote(text[:middle])) + 1 <= limit:
            low = middle
        else:
            high = middle - 1
    return html.quote(text[:low]) + "…"


@dataclass(frozen=True, slots=True)
class SendContext:
    accounts: Accounts
    users: UserRepo
    settings: HandlerSettings
    sender: SmsSender
    state: FSMContext
    user_id: int


def send_context(data: dict[str, Any]) -> SendContext:
    return SendContext(
        accounts=data["accounts"],
        users=data["users"],
        settings=data["settings"],
        sender=data["sms_sender"],
        state=data["state"],
        user_id=data["event_from_user"].id,
    )


# --- steps ---------------------------------------------------------------------------------


async def start_send(
    message: Message, ctx: SendContext, command: CommandObject | None = None
) -> None:
    await ctx.state.clear()
    replied = message.reply_to_message
    if replied is not None and replied.contact is not None:
        # "/send" as a reply to a shared contact: its number is the recipient.
        await take_phone(message, ctx, replied.contact.phone_number)
        return
    args = (command.args or "").strip() if command else ""
    if args:
        quick = split_quick_form(args)
        if quick is not None:
            phone, text = quick
            await ctx.state.update_data(phone=phone.digits)
            await take_text(message, ctx, text)
            return
        await take_phone(message, ctx, args)
        return
    await ctx.state.set_state(SendForm.phone)
    await message.answer(ask_phone_text(), reply_markup=phone_keyboard())


def ask_phone_text() -> str:
    return (
        _(
            "Whom to send to? Type the phone number, e.g. {example}, or attach a contact "
            "(📎 → Contact)."
        ).format(example=EXAMPLE_PHONE)
        + "\n"
        + _("/cancel stops sending.")
    )


async def phone_as_text(message: Message, ctx: SendContext) -> None:
    assert message.text is not None
    await take_phone(message, ctx, message.text)


async def phone_as_contact(message: Message, ctx: SendContext) -> None:
    assert message.contact is not None
    await take_phone(message, ctx, message.contact.phone_number)


async def take_phone(message: Message, ctx: SendContext, raw: str) -> None:
    try:
        phone = normalize_phone(raw)
    except InvalidPhone as exc:
        await ctx.state.set_state(SendForm.phone)
        await message.answer(
            phone_error_text(exc.reason)
            + "\n"
            + _("Example: {example}").format(example=EXAMPLE_PHONE),
            reply_markup=phone_keyboard(),
        )
        return
    await ctx.state.update_data(phone=phone.digits)
    if (await ctx.state.get_data()).get("text"):
        # "Change number" from a preview keeps the text.
        await show_preview(message, ctx)
        return
    await ctx.state.set_state(SendForm.text)
    await message.answer(
        _("Recipient: {phone}. Now send the text of the SMS.").format(phone=phone.international)
        + "\n"
        + _("/cancel stops sending."),
        reply_markup=main_menu(),
    )


def phone_error_text(reason: PhoneError) -> str:
    if reason is PhoneError.TOO_SHORT:
        return _("This number is too short.")
    if reason is PhoneError.TOO_LONG:
        return _("This number is too long.")
    if reason is PhoneError.INVALID:
        return _("There is no such phone number.")
    return _("That is not a phone number.")


async def phone_not_understood(message: Message) -> None:
    await message.answer(
        _("Send the phone number as text, or attach a contact.")
        + "\n"
        + _("/cancel stops sending.")
    )


async def text_received(message: Message, ctx: SendContext) -> None:
    assert message.text is not None
    await take_text(message, ctx, message.text)


async def take_text(message: Message, ctx: SendContext, text: str) -> None:
    text = text.strip()
    if not text:
        await ctx.state.set_state(SendForm.text)
        await message.answer(_("The SMS text cannot be empty. Send the text."))
        return
    try:
        check_parts(text, ctx.settings.sms_max_parts)
    except TooManyParts as exc:
        await ctx.state.set_state(SendForm.text)
        await message.answer(too_many_parts_text(exc))
        return
    await ctx.state.update_data(text=text)
    await show_preview(message, ctx)


async def text_not_understood(message: Message) -> None:
    await message.answer(
        _("Only text can go by SMS: send the text as a message.")
        + "\n"
        + _("/cancel stops sending.")
    )


async def preview_waiting(message: Message) -> None:
    await message.answer(_("Use the buttons under the preview, or /cancel."))


async def cancel_button(message: Message, ctx: SendContext) -> None:
    await ctx.state.clear()
    await message.answer(_("Cancelled. Nothing was sent."), reply_markup=main_menu())


# --- preview -------------------------------------------------------------------------------


async def show_preview(message: Message, ctx: SendContext, *, edit: bool = False) -> None:
    """Renders the draft kept in FSM data, as a new message or by editing `message`."""
    data = await ctx.state.get_data()
    phone = normalize_phone(data["phone"])
    text: str = data["text"]
    user = await ctx.users.get(ctx.user_id)
    sender = effective_sender(user, ctx.settings.default_sender)
    try:
        balance = await ctx.accounts.recent_balance(ctx.user_id)
    except (DevsmsUnavailable, DevsmsGatewayError):
        # The draft matters more than the price: right after "could not reach devsms" the
        # balance usually cannot be read either, and an error here would drop the draft.
        balance = ctx.accounts.last_balance(ctx.user_id) or Balance(balance=None, sms_price=None)
    draft = secrets.randbelow(1_000_000_000)
    body, can_send, cheaper = preview_text(phone, text, sender, balance)
    markup = preview_keyboard(draft, cheaper=cheaper, can_send=can_send)
    await ctx.state.set_state(SendForm.preview)
    await ctx.state.update_data(draft=draft, sender=sender)
    if edit:
        await message.edit_text(body, reply_markup=markup)
    else:
        await message.answer(body, reply_markup=markup)


def preview_text(
    phone: PhoneNumber, text: str, sender: str, balance: Balance
) -> tuple[str, bool, bool]:
    """The preview, whether sending is possible, and whether a cheaper spelling is offered."""
    count = count_sms(text)
    lines = [_("📤 <b>Check before sending</b>"), ""]
    lines.append(_("To: {phone}").format(phone=phone.international))
    if not phone.is_uzbek:
        lines.append(_("🌍 This number is outside Uzbekistan: international rates apply."))
    lines.append(_("From: {sender}").format(sender=html.quote(sender)))
    lines.append(_("Text:"))
    lines.append(f"<blockquote>{quote_cut(text, PREVIEW_TEXT_LIMIT)}</blockquote>")
    lines.append(
        _("{encoding} · {characters} characters · {parts} part(s)").format(
            encoding=count.encoding, characters=count.characters, parts=count.parts
        )
    )
    cost = cost_of(count.parts, balance)
    lines.append(
        _("Cost: {parts} × {price} = {total}").format(
            parts=count.parts, price=money(balance.sms_price), total=money(cost.total)
        )
    )
    lines.append(_("Balance after sending: {balance}").format(balance=money(cost.after)))
    can_send = cost.enough
    if cost.missing is not None:
        lines.append(not_enough_text(cost.missing))
    cheaper = False
    if count.non_gsm:
        names = ", ".join(html.quote(describe_char(ch)) for ch in count.non_gsm[:8])
        lines.append("")
        lines.append(
            _(
                "ℹ️ These characters switch the SMS to UCS-2 (70 characters per part): {chars}"
            ).format(chars=names)
        )
        alternative = cheaper_spelling(text)
        if alternative is not None and count_sms(alternative).parts < count.parts:
            cheaper = True
            lines.append(
                _(
                    "With plain apostrophes and quotes it would take {parts} part(s) "
                    "instead of {was}."
                ).format(parts=count_sms(alternative).parts, was=count.parts)
            )
    return "\n".join(lines), can_send, cheaper


# --- buttons under the preview ------------------------------------------------------------


async def preview_button(
    query: CallbackQuery, callback_data: SendCb, message: Message, ctx: SendContext
) -> None:
    data = await ctx.state.get_data()
    current = await ctx.state.get_state() == SendForm.preview.state
    if not current or data.get("draft") != callback_data.draft:
        # An older preview, a second tap after sending, or a button from before a restart.
        await query.answer(_("This preview is no longer active."))
        with suppress(TelegramBadRequest):
            await message.edit_reply_markup(reply_markup=None)
        return
    action = callback_data.action
    if action == "send":
        await confirm_send(query, message, ctx, data)
    elif action == "cheap":
        cheaper = cheaper_spelling(data["text"])
        if cheaper is not None:
            await ctx.state.update_data(text=cheaper)
        await query.answer(_("Apostrophes and quotes replaced with plain ones."))
        await show_preview(message, ctx, edit=True)
    elif action == "text":
        await query.answer()
        await message.edit_reply_markup(reply_markup=None)
        await ctx.state.set_state(SendForm.text)
        await message.answer(
            _("Send the new text of the SMS.") + "\n" + _("/cancel stops sending."),
            reply_markup=main_menu(),
        )
    elif action == "phone":
        await query.answer()
        await message.edit_reply_markup(reply_markup=None)
        await ctx.state.set_state(SendForm.phone)
        await message.answer(ask_phone_text(), reply_markup=phone_keyboard())
    else:
        await ctx.state.clear()
        await query.answer()
        await message.edit_text(_("Cancelled. Nothing was sent."))


async def confirm_send(
    query: CallbackQuery, message: Message, ctx: SendContext, data: dict[str, Any]
) -> None:
    # The draft leaves the FSM before the request: a second tap (handled after this one,
    # see SimpleEventIsolation) finds nothing to send.
    await ctx.state.clear()
    # Both only tidy up the preview. An expired query ("query is too old": the tap waited in
    # a queue) or a network error must not stop the send the user confirmed.
    with suppress(TelegramAPIError):
        await query.answer(_("Sending…"))
    with suppress(TelegramAPIError):
        await message.edit_reply_markup(reply_markup=None)
    phone = normalize_phone(data["phone"])
    outcome = await ctx.sender.send(ctx.user_id, phone.digits, data["text"], data.get("sender"))
    if outcome.outcome is Outcome.NOT_SENT:
        # Certainly not sent, so offering the same draft again is safe.
        await ctx.state.set_data({k: v for k, v in data.items() if k in ("phone", "text")})
        await tell_outcome(
            message,
            _("⚠️ Could not reach devsms.uz: the SMS was <b>not</b> sent.")
            + "\n"
            + _("Here is the draft again; try in a minute."),
            None,
        )
        await show_preview(message, ctx)
        return
    ctx.accounts.forget_balance(ctx.user_id)  # it changed, or may have
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


def result_text(phone: PhoneNumber, text: str, outcome: SendOutcome) -> str:
    summary = _("To {phone}: {text}").format(
        phone=phone.international, text=quote_cut(text, RESULT_TEXT_LIMIT)
    )
    if outcome.outcome is Outcome.SENT and outcome.result is not None:
        result = outcome.result
        lines = [
            _("✅ <b>Sent.</b>"),
            summary,
            _("SMS id: {sms_id} · status: {status}").format(
                sms_id=result.sms_id or MISSING, status=html.quote(result.status or MISSING)
            ),
            _("Parts: {parts} · cost: {cost}").format(
                parts=result.parts_count or MISSING, cost=money(result.total_cost)
            ),
            _("Balance: {balance}").format(balance=money(result.balance)),
        ]
        return "\n".join(lines)
    if outcome.outcome is Outcome.UNKNOWN:
        return "\n".join(
            [
                _("⚠️ <b>devsms.uz did not answer in time.</b>"),
                summary,
                _(
                    "The SMS may or may not have gone out. It will not be sent again "
                    "automatically: check /history in a minute before sending it again."
                ),
            ]
        )
    if outcome.outcome is Outcome.TOKEN_REJECTED:
        return _(
            "devsms.uz no longer accepts your token, so the SMS was not sent. "
            "Send /token to connect a new one."
        )
    if outcome.outcome is Outcome.NO_TOKEN:
        return "\n".join(
            [
                _(
                    "No devsms token is connected any more (it was removed or cannot be "
                    "read), so the SMS was <b>not</b> sent."
                ),
                summary,
                _("Connect one with /token, then send it again."),
            ]
        )
    refused = _("❌ devsms.uz refused this SMS. Nothing was sent or charged.")
    if outcome.gateway_text:
        refused += "\n" + _("Its answer: «{text}»").format(text=html.quote(outcome.gateway_text))
    return refused + "\n" + summary


def create_router() -> Router:
    router = Router(name="send")
    router.message.middleware(ContextMiddleware(send_context))
    router.callback_query.middleware(ContextMiddleware(send_context))
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
    router.callback_query.register(preview_button, SendCb.filter(), Accessible())
    return router
