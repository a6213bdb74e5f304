"""'typing…' is shown only when an answer takes a while (handlers/utils.action_if_slow)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from handlers import utils
from handlers.utils import action_if_slow

CHAT = 1001


class ActionBot:
    """Records sendChatAction calls (all action_if_slow uses of a Bot)."""

    def __init__(self) -> None:
        self.actions: list[tuple[int, str]] = []
        self.sent = asyncio.Event()

    async def send_chat_action(self, chat_id: int, action: str, **_: Any) -> bool:
        self.actions.append((chat_id, action))
        self.sent.set()
        return True


@pytest.fixture(autouse=True)
def quick_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(utils, "SLOW_AFTER", 0.05)


async def test_a_quick_answer_sends_no_chat_action() -> None:
    bot = ActionBot()
    async with action_if_slow(bot, CHAT):  # type: ignore[arg-type]
        pass  # the gateway answered at once
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(bot.sent.wait(), timeout=20 * utils.SLOW_AFTER)
    assert bot.actions == []


async def test_a_slow_answer_shows_typing_while_the_user_waits() -> None:
    bot = ActionBot()
    async with action_if_slow(bot, CHAT):  # type: ignore[arg-type]
        await asyncio.wait_for(bot.sent.wait(), timeout=10)  # the gateway is slow
    assert bot.actions == [(CHAT, "typing")]


async def test_quick_answers_leave_nothing_for_the_garbage_collector() -> None:
    # Every /balance passes here: what only the collector frees makes its pauses.
    bot = ActionBot()
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            async with action_if_slow(bot, CHAT):  # type: ignore[arg-type]
                pass
        assert gc.collect() == 0
    finally:
        gc.enable()
