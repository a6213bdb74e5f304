"""/settings → time zone and quiet hours: buttons for the common choices, or typed."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import SettingsAction, SettingsCb, ZoneCb
from handlers.clock import quiet_label
from handlers.config import HandlerSettings
from handlers.schedule.render import zone_keyboard
from handlers.settings import render
from handlers.states import SettingsForm
from services.schedule_time import (
    OFF,
    ZONE_CHOICES,
    InvalidQuiet,
    InvalidZone,
    parse_quiet,
    parse_zone,
    quiet_text,
)
from storage import AlertRepo, UserRepo


async def show_after_change(
    message: Message,
    user_id: int,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
    saved: str,
) -> None:
    await message.answer(saved)
    text, keyboard = await render(user_id, users, alerts, settings)
    await message.answer(text, reply_markup=keyboard)


async def zone_button(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    await state.set_state(SettingsForm.zone)
    await message.answer(
        _(
            "Pick your time zone, or send its name, e.g. Asia/Tashkent or Europe/Berlin. "
            "Scheduled times and quiet hours follow it."
        )
        + "\n"
        + _("/cancel keeps the current one."),
        reply_markup=zone_keyboard(),
    )


async def zone_picked(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ZoneCb,
    message: Message,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    if callback_data.index >= len(ZONE_CHOICES):
        callback_answer.text = _("This button is no longer active.")
        return
    zone = ZONE_CHOICES[callback_data.index]
    await save_zone(message, query.from_user.id, zone, state, users, alerts, settings)


async def zone_typed(
    message: Message,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    assert message.text is not None and message.from_user is not None
    try:
        zone = parse_zone(message.text)
    except InvalidZone:
        await message.answer(
            _(
                "I do not know this time zone. Send a name like Asia/Tashkent or "
                "Europe/Moscow (region/city, in Latin letters), or pick a button."
            )
            + "\n"
            + _("/cancel keeps the current one.")
        )
        return
    await save_zone(message, message.from_user.id, zone, state, users, alerts, settings)


async def save_zone(
    message: Message,
    user_id: int,
    zone: str,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    await users.set_timezone(user_id, zone)
    if await state.get_state() == SettingsForm.zone.state:
        await state.clear()
    saved = _("Saved: time zone {zone}.").format(zone=zone)
    await show_after_change(message, user_id, users, alerts, settings, saved)


def quiet_keyboard(settings: HandlerSettings) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("🔔 No quiet hours"), callback_data=SettingsCb(action=SettingsAction.QUIET_OFF)
    )
    builder.button(
        text=_("↩️ Default ({quiet})").format(quiet=quiet_label(settings.quiet_default)),
        callback_data=SettingsCb(action=SettingsAction.QUIET_DEFAULT),
    )
    builder.adjust(1)
    return builder.as_markup()


async def quiet_button(
    query: CallbackQuery, message: Message, state: FSMContext, settings: HandlerSettings
) -> None:
    await state.set_state(SettingsForm.quiet)
    await message.answer(
        _(
            "During quiet hours bulk and scheduled sends wait, and a running bulk job pauses "
            "until they end. Single SMS you send yourself are not held back."
        )
        + "\n"
        + _("Send them as 21:00-09:00 (in your time zone), or off.")
        + "\n"
        + _("/cancel keeps the current one."),
        reply_markup=quiet_keyboard(settings),
    )


async def quiet_typed(
    message: Message,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    assert message.text is not None and message.from_user is not None
    try:
        quiet = parse_quiet(message.text)
    except InvalidQuiet:
        await message.answer(
            _(
                "Send the start and the end as hours and minutes, e.g. 21:00-09:00 or 22-8, "
                "two different times; or off."
            )
            + "\n"
            + _("/cancel keeps the current one.")
        )
        return
    stored = quiet_text(quiet)
    await save_quiet(message, message.from_user.id, stored, state, users, alerts, settings)


async def quiet_preset(
    query: CallbackQuery,
    callback_data: SettingsCb,
    message: Message,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    stored = OFF if callback_data.action == SettingsAction.QUIET_OFF else None
    await save_quiet(message, query.from_user.id, stored, state, users, alerts, settings)


async def save_quiet(
    message: Message,
    user_id: int,
    stored: str | None,
    state: FSMContext,
    users: UserRepo,
    alerts: AlertRepo,
    settings: HandlerSettings,
) -> None:
    await users.set_quiet(user_id, stored)
    if await state.get_state() == SettingsForm.quiet.state:
        await state.clear()
    quiet = settings.quiet_default if stored is None else parse_quiet(stored)
    saved = _("Saved: quiet hours {quiet}.").format(quiet=quiet_label(quiet))
    await show_after_change(message, user_id, users, alerts, settings, saved)


async def not_text(message: Message) -> None:
    await message.answer(
        _("Please send it as a text message.") + "\n" + _("/cancel keeps the current one.")
    )
