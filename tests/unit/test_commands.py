"""The command menu at start-up (bot.commands.set_commands): one refused language still stops
the start-up, and no other request is left running behind it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram.utils.i18n import I18n

from bot.commands import set_commands


class MenuBot:
    """Answers setMyCommands after a while; refuses one language at once."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.running = 0
        self.set: list[str | None] = []

    async def set_my_commands(
        self, commands: Any, scope: Any, language_code: str | None = None
    ) -> bool:
        if language_code == self.refused:
            raise RuntimeError(f"menu in {language_code} refused")
        self.running += 1
        try:
            await asyncio.sleep(0.05)
        finally:
            self.running -= 1
        self.set.append(language_code)
        return True


async def test_a_refused_menu_stops_the_start_after_the_others_ended(i18n: I18n) -> None:
    bot = MenuBot(refused="ru")

    with pytest.raises(RuntimeError, match="menu in ru refused"):
        await set_commands(bot, i18n, "uz")  # type: ignore[arg-type]

    assert bot.running == 0
    assert sorted(bot.set, key=str) == sorted(["en", "uz", None], key=str)
