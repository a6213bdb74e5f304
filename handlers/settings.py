"""/settings: sender name, low-balance alerts, delivery results, language."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from aiogram import F, Router, html
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import SettingsAction, SettingsCb
from handlers.clock import quiet_for, quiet_label, user_zone
from handlers.common import LANGUAGE_PROMPT
from handlers.config import HandlerSettings
from handlers.filters import Accessible, AnyMenuButton, MenuButton
from handlers.keyboards import BTN_SETTINGS, language_keyboard, settings_keyboard
from handlers.plural import ngettext
from handlers.render import count, money
from handlers.states import SettingsForm
from handlers.utils import AnswerCallbacks, edit_or_keep
from services.money import Money
from services.user_input import (
    InvalidSender,
    InvalidThreshold,
    SenderProblem,
    effective_sender,
    own_sender,
    parse_sender,
    parse_threshold,
)
from storage import AlertRepo, UserRepo
from storage.alerts import DeliveryNotify

NEXT_NOTIFY: Final[dict[str, DeliveryNotify]] = {
    "failures": "all",
    "all": "off",
    "off": "failures",
}


async def render(
    user_id: int, users: UserRepo, alerts: AlertRepo, settings: HandlerSettings
) -> tuple[str, InlineKeyboardMarkup]:
    user = await users.get(user_id)
    prefs = await alerts.get(user_id)
    own = own_sender(user)
    sender = html.quote(effective_sender(user, settings.default_sender))
    lines = [_("⚙️ <b>Settings</b>"), ""]
    lines.append(
        _("Sender: {sender}").format(sender=sender)
        if own
        else _("Sender: {sender} (default)").format(sender=sender)
    )
    if not prefs.balance_alerts:
        lines.append(_("Low-balance alert: off"))
    elif prefs.threshold_unit == "sms" and prefs.threshold_value is not None:
        lines.append(
            ngettext(
                "Low-balance alert: when fewer than {n} SMS is left",
                "Low-balance alert: when fewer than {n} SMS are left",
                int(prefs.threshold_value),
            ).format(n=count(int(prefs.threshold_value)))
        )
    else:
        amount = Decimal(prefs.threshold_value or settings.low_balance_threshold)
        lines.append(
            _("Low-balance alert: below {amount}").format(amount=money(Money(amount, "UZS")))
        )
    mode = {
        "all": _("every result"),
        "failures": _("failures only"),
        "off": _("off"),
    }[prefs.delivery_notify]
    lines.append(_("Delivery results: {mode}").format(mode=mode))
    if user is not None:
        lines.append(_("Time zone: {zone}").format(zone=user_zone(user)))
        lines.append(
            _("Quiet hours: {quiet}").format(quiet=quiet_label(quiet_for(user, settings)))
        )
    keyboard = settings_keyboard(own is not None, alerts_on=prefs.balance_alerts)
    return "\n".join(lines), keyboard


async def show_settings(
    message: Message, users: UserRepo, alerts: AlertRepo, settings: HandlerSettings
) -> None:
    assert message.from_user is not None
    text, keyboard = await render(message.from_user.id, users, alerts, settings)
    await message.answer(text, reply_markup=keyboard)


async def sender_button(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    await state.set_state(SettingsForm.sender)
    await message.answer(
        _(
            "Send the sender name: a number (3–15 digits) or a Latin name of up to 11 "
            "characters. It must be approved for your account at devsms.uz."
        )
        + "\n"
        + _("/cancel keeps the current one.")
    )


async def threshold_button(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    await state.set_state(SettingsForm.threshold)
    await message.answer(
        _(
            "When should I warn you? Send an amount in so'm (e.g. 20000) "
            "or a number of SMS (e.g. 100 sms)."
        )
        + "\n"
        + _("/cancel keeps the current one.")
    )


async def language_button(query: CallbackQuery, message: Message) -> None:
    await message.answer(LANGUAGE_PROMPT, reply_markup=language_keyboard())


async def reset_sender_button(
    query: CallbackQuery,
    message: Message,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    await users.set_sender(query.from_user.id, None)
    await refresh(message, query.from_user.id, users, alerts, settings)


async def alerts_button(
    query: CallbackQuery,
    message: Message,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    prefs = await alerts.get(query.from_user.id)
    await alerts.set_balance_alerts(query.from_user.id, not prefs.balance_alerts)
    await refresh(message, query.from_user.id, users, alerts, settings)


async def notify_button(
    query: CallbackQuery,
    message: Message,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    prefs = await alerts.get(query.from_user.id)
    await alerts.set_delivery_notify(query.from_user.id, NEXT_NOTIFY[prefs.delivery_notify])
    await refresh(message, query.from_user.id, users, alerts, settings)


async def refresh(
    message: Message, user_id: int, users: UserRepo, alerts: AlertRepo, settings: HandlerSettings
) -> None:
    """The settings message shows what the tap changed."""
    text, keyboard = await render(user_id, users, alerts, settings)
    await edit_or_keep(message, text, keyboard)


def sender_problem_text(problem: SenderProblem) -> str:
    shape = _(
        "A sender is 3–15 digits or a Latin name of up to 11 characters, e.g. 4546 or MyShop."
    )
    if problem is SenderProblem.NOT_LATIN:
        return _("Use only Latin letters (A–Z) and the digits 0–9.") + "\n" + shape
    return shape


async def sender_received(
    message: Message,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    assert message.text is not None and message.from_user is not None
    try:
        sender = parse_sender(message.text)
    except InvalidSender as exc:
        await message.answer(
            sender_problem_text(exc.problem) + "\n" + _("/cancel keeps the current one.")
        )
        return
    await users.set_sender(message.from_user.id, sender)
    await state.clear()
    await message.answer(
        _("Saved: SMS will go out from {sender}.").format(sender=html.quote(sender))
    )
    await show_settings(message, users, alerts, settings)


async def threshold_received(
    message: Message,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    assert message.text is not None and message.from_user is not None
    try:
        threshold = parse_threshold(message.text)
    except InvalidThreshold:
        await message.answer(
            _("Send a whole number: an amount in so'm like 20000, or SMS like 100 sms.")
            + "\n"
            + _("/cancel keeps the current one.")
        )
        return
    await alerts.set_threshold(message.from_user.id, threshold.unit, str(threshold.value))
    await alerts.set_balance_alerts(message.from_user.id, True)
    await state.clear()
    await message.answer(_("Saved."))
    await show_settings(message, users, alerts, settings)


async def not_text(message: Message) -> None:
    await message.answer(
        _("Please send it as a text message.") + "\n" + _("/cancel keeps the current one.")
    )


def create_router() -> Router:
    router = Router(name="settings")
    # Every button is answered once (without a text), after its handler.
    router.callback_query.middleware(AnswerCallbacks())
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(show_settings, Command("settings"))
    router.message.register(show_settings, MenuButton(BTN_SETTINGS))
    router.message.register(sender_received, SettingsForm.sender, *free_text)
    router.message.register(threshold_received, SettingsForm.threshold, *free_text)
    router.message.register(not_text, SettingsForm.sender, ~F.text)
    router.message.register(not_text, SettingsForm.threshold, ~F.text)
    for action, button in (
        (SettingsAction.SENDER, sender_button),
        (SettingsAction.RESET, reset_sender_button),
        (SettingsAction.THRESHOLD, threshold_button),
        (SettingsAction.ALERTS, alerts_button),
        (SettingsAction.NOTIFY, notify_button),
        (SettingsAction.LANG, language_button),
    ):
        router.callback_query.register(button, SettingsCb.filter(F.action == action), Accessible())
    return router
