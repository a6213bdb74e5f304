"""What filter tests share: a private chat's message and a Bot that knows its own name."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiogram import Bot
from aiogram.types import Chat, Message, User

ME = User(id=42, is_bot=True, first_name="SMS", username="devsms_bot")


def private_message(**fields: Any) -> Message:
    """A user's message in the bot's private chat, with `fields` (text, caption, photo, ...)."""
    return Message(
        message_id=1,
        date=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        chat=Chat(id=7, type="private"),
        from_user=User(id=7, is_bot=False, first_name="U"),
        **fields,
    )


def bot_that_knows_itself() -> Bot:
    bot = Bot(token="42:TEST")
    bot._me = ME  # what getMe would answer: mentions of this bot count as its own
    return bot
