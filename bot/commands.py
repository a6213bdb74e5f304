"""The command menu, registered in every language at start-up."""

from __future__ import annotations

import asyncio

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats
from aiogram.utils.i18n import I18n

from services.i18n import N_
from services.languages import LANGUAGES

COMMANDS = (
    ("send", N_("Send an SMS")),
    ("balance", N_("Balance and spending")),
    ("history", N_("Sent SMS")),
    ("stats", N_("Charts of SMS and spending")),
    ("export", N_("SMS of a period as a file")),
    ("status", N_("Status of one SMS")),
    ("bulk", N_("Send to a list from a file")),
    ("jobs", N_("Bulk sending jobs")),
    ("scheduled", N_("Scheduled sends")),
    ("templates", N_("Saved SMS texts")),
    ("stoplist", N_("Numbers that never get an SMS")),
    ("otp", N_("Send a one-time verification code")),
    ("contacts", N_("Contacts and groups")),
    ("settings", N_("Settings")),
    ("language", N_("Language")),
    ("token", N_("Connect another token")),
    ("logout", N_("Delete my token and data")),
    ("help", N_("What the bot can do")),
    ("cancel", N_("Leave the current dialog")),
)


def commands_for(i18n: I18n, language: str) -> list[BotCommand]:
    return [
        BotCommand(command=name, description=i18n.gettext(text, locale=language))
        for name, text in COMMANDS
    ]


async def set_commands(bot: Bot, i18n: I18n, default_language: str) -> None:
    """The menu in every language, before the first update: the requests go out together
    (each list is its own, under its own language code), so a Telegram 0.1-0.3 s away costs
    the start-up one round trip here instead of four."""
    scope = BotCommandScopeAllPrivateChats()
    outcomes = await asyncio.gather(
        *(
            bot.set_my_commands(commands_for(i18n, language), scope=scope, language_code=language)
            for language in LANGUAGES
        ),
        # Users whose Telegram language is none of ours see the default language.
        bot.set_my_commands(commands_for(i18n, default_language), scope=scope),
        # Each call ends before a failure stops the start-up: none is left running (and
        # retrying) while the app closes the session under it.
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
