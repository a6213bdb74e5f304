"""Small Telegram helpers the feature routers share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message, TelegramObject


async def edit_or_keep(
    message: Message, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> bool:
    """Edits the message; False when Telegram says nothing changed (a second tap on Refresh)."""
    try:
        await message.edit_text(text, reply_markup=reply_markup)
    except TelegramBadRequest as exc:
        if "message is not modified" in exc.message:
            return False
        raise
    return True


class ContextMiddleware(BaseMiddleware):
    """Puts `build(data)` into the handler data as `ctx`: a dialog's steps then take one typed
    argument instead of the same six workflow objects each."""

    def __init__(self, build: Callable[[dict[str, Any]], object]) -> None:
        self._build = build

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        data["ctx"] = self._build(data)
        return await handler(event, data)
