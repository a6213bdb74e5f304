"""A stand-in for services.notifier.Notifier in dispatcher tests: delivers at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup

from services.notifier import Delivery


@dataclass
class ImmediateNotifier:
    """Sends through the (recorded) bot at once; the real one paces through a queue.

    `sent` lists every (chat_id, text) it was given; clearing `gate` holds every send, so a
    test can look at a broadcast mid-way.
    """

    bot: Bot
    admin_chat_id: int | None
    sent: list[tuple[int, str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Delivery:
        await self.gate.wait()
        self.sent.append((chat_id, text))
        try:
            await self.bot.send_message(chat_id, text, reply_markup=reply_markup)
        except TelegramForbiddenError:
            return Delivery.BLOCKED
        except TelegramAPIError:
            return Delivery.FAILED
        return Delivery.DELIVERED

    async def to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Delivery:
        if self.admin_chat_id is None:
            return Delivery.SKIPPED
        return await self.send(self.admin_chat_id, text, reply_markup=reply_markup)
