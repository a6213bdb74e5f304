"""Keyboards; every label goes through gettext in the user's language."""

from __future__ import annotations

from typing import Final

from aiogram.types import InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder, ReplyKeyboardBuilder

from handlers.callbacks import BalanceCb, LanguageCb, LogoutCb, SendCb, SettingsCb, SmsCb


def N_(msgid: str) -> str:
    """Marks a string for extraction; it is translated where it is shown."""
    return msgid


# Menu labels are msgids: handlers match them in every language (see filters.MenuButton).
BTN_SEND: Final = N_("📤 Send SMS")
BTN_BALANCE: Final = N_("💰 Balance")
BTN_HISTORY: Final = N_("📜 History")
BTN_STATUS: Final = N_("🔎 Status")
BTN_SETTINGS: Final = N_("⚙️ Settings")

BTN_CANCEL: Final = N_("✖️ Cancel")
BTN_MY_NUMBER: Final = N_("📱 My own number")
MENU_BUTTONS: Final = (BTN_SEND, BTN_BALANCE, BTN_HISTORY, BTN_STATUS, BTN_SETTINGS, BTN_CANCEL)

LANGUAGE_NAMES: Final = {"uz": "🇺🇿 O'zbekcha", "ru": "🇷🇺 Русский", "en": "🇬🇧 English"}


def main_menu() -> ReplyKeyboardMarkup:
    builder = ReplyKeyboardBuilder()
    builder.button(text=_(BTN_SEND))
    builder.button(text=_(BTN_BALANCE))
    builder.button(text=_(BTN_HISTORY))
    builder.button(text=_(BTN_STATUS))
    builder.button(text=_(BTN_SETTINGS))
    builder.adjust(1, 2, 2)
    return builder.as_markup(resize_keyboard=True, is_persistent=True)


def balance_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🔄 Refresh"), callback_data=BalanceCb())
    return builder.as_markup()


def language_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        builder.button(text=name, callback_data=LanguageCb(code=code))
    builder.adjust(3)
    return builder.as_markup()


def logout_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Yes, delete everything"), callback_data=LogoutCb(confirm=True))
    builder.button(text=_("No, keep it"), callback_data=LogoutCb(confirm=False))
    builder.adjust(1)
    return builder.as_markup()


def phone_keyboard() -> ReplyKeyboardMarkup:
    builder = ReplyKeyboardBuilder()
    builder.add(KeyboardButton(text=_(BTN_MY_NUMBER), request_contact=True))
    builder.button(text=_(BTN_CANCEL))
    builder.adjust(1)
    return builder.as_markup(resize_keyboard=True, one_time_keyboard=True)


def preview_keyboard(draft: int, *, cheaper: bool, can_send: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if can_send:
        builder.button(text=_("✅ Send"), callback_data=SendCb(action="send", draft=draft))
    if cheaper:
        builder.button(
            text=_("🪶 Cheaper spelling"), callback_data=SendCb(action="cheap", draft=draft)
        )
    builder.button(text=_("✏️ Change text"), callback_data=SendCb(action="text", draft=draft))
    builder.button(text=_("📞 Change number"), callback_data=SendCb(action="phone", draft=draft))
    builder.button(text=_("✖️ Cancel"), callback_data=SendCb(action="cancel", draft=draft))
    builder.adjust(1)
    return builder.as_markup()


def sent_keyboard(sms_id: int | None, outbox_id: int) -> InlineKeyboardMarkup:
    """Under a send result: refresh by the gateway's id, or look the outbox row up when the
    gateway's answer was lost (the status handler reconciles it through the history)."""
    builder = InlineKeyboardBuilder()
    if sms_id is not None:
        builder.button(
            text=_("🔄 Refresh status"), callback_data=SmsCb(sms_id=sms_id, refresh=True)
        )
    else:
        builder.button(text=_("🔎 Check status"), callback_data=SmsCb(outbox_id=outbox_id))
    return builder.as_markup()


def settings_keyboard(has_own_sender: bool, *, alerts_on: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✏️ Change sender"), callback_data=SettingsCb(action="sender"))
    if has_own_sender:
        builder.button(text=_("↩️ Default sender"), callback_data=SettingsCb(action="reset"))
    builder.button(text=_("🔔 Alert threshold"), callback_data=SettingsCb(action="threshold"))
    builder.button(
        text=_("🔕 Turn alerts off") if alerts_on else _("🔔 Turn alerts on"),
        callback_data=SettingsCb(action="alerts"),
    )
    builder.button(text=_("📬 Delivery results"), callback_data=SettingsCb(action="notify"))
    builder.button(text=_("🌐 Language"), callback_data=SettingsCb(action="lang"))
    builder.adjust(1)
    return builder.as_markup()
