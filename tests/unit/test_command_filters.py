"""The command filters' early rejection (handlers.reject_other_commands_early) decides every
message the way aiogram's own Command filter does: it only answers "no" sooner."""

from __future__ import annotations

import datetime as dt

import pytest
from aiogram import Bot
from aiogram.filters import Command
from aiogram.types import Chat, Message, User

from handlers import _names_first, build_router

ME = User(id=42, is_bot=True, first_name="SMS", username="devsms_bot")
TEXTS = (
    "/balance",
    "/balance extra words",
    "/balance@devsms_bot",
    "/balance@DevSMS_Bot now",
    "/balance@other_bot",
    "/Balance",
    "/balances",
    "/bal",
    "/history",
    "/allow 123",
    "/deny",
    "!balance",
    "balance",
    "/",
    "/ balance",
    "   /balance  ",
    "\n/balance",
    "",
    "   ",
    "hello /balance",
)


def message(text: str | None = None, caption: str | None = None) -> Message:
    return Message(
        message_id=1,
        date=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        chat=Chat(id=7, type="private"),
        from_user=User(id=7, is_bot=False, first_name="U"),
        text=text,
        caption=caption,
    )


@pytest.fixture
async def bot() -> Bot:
    bot = Bot(token="42:TEST")
    bot._me = ME  # what getMe would answer: mentions of this bot count as its own
    return bot


@pytest.mark.parametrize(
    "command",
    [Command("balance"), Command("allow", "deny"), Command("balance", prefix="/!")],
    ids=["one", "two", "prefixes"],
)
async def test_same_answer_as_aiogram(command: Command, bot: Bot) -> None:
    fast = _names_first(command)
    for text in TEXTS:
        for msg in (message(text=text or None), message(caption=text or None)):
            assert await fast(msg, bot) == await command(msg, bot), repr(text)


def test_every_plain_command_of_the_bot_gets_the_early_rejection() -> None:
    top = build_router()
    left = [
        flt.callback
        for router in top.chain_tail
        for handler in router.message.handlers
        for flt in handler.filters or ()
        if type(flt.callback) is Command
    ]
    assert left == []
