"""Keyboards; every label goes through gettext in the user's language."""

from __future__ import annotations

from typing import Final

from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder, ReplyKeyboardBuilder

from handlers.callbacks import BalanceCb, LanguageCb, LogoutCb


def N_(msgid: str) -> str:
    """Marks a string for extraction; it is translated where it is shown."""
    return msgid


# Menu labels are msgids: handlers match them in every language (see filters.MenuButton).
BTN_SEND: Final = N_("📤 Send SMS")
BTN_BALANCE: Final = N_("💰 Balance")
BTN_HISTORY: Final = N_("📜 History")
BTN_STATUS: Final = N_("🔎 Status")
BTN_SETTINGS: Final = N_("⚙️ Settings")

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
