"""The command filters' early rejection (handlers.reject_other_commands_early) decides every
message the way aiogram's own Command filter does: it only answers "no" sooner."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.filters import Command
from aiogram.types import Message

from handlers import _names_first, build_router
from tests.support.filter_checks import bot_that_knows_itself, private_message

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
    return private_message(text=text, caption=caption)


@pytest.fixture
async def bot() -> Bot:
    return bot_that_knows_itself()


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
