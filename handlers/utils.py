"""Small Telegram helpers the feature routers share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswerMiddleware


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


class AnswerCallbacks(CallbackAnswerMiddleware):
    """aiogram's CallbackAnswerMiddleware (a handler takes `callback_answer` and sets its text
    or show_alert; `disable()` when it answers itself), except when the handler raises: the
    stock one answers in a `finally`, and handlers/errors.py answers the tap again when it
    tells the user what went wrong. Here the errors router gives that tap its one answer."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        answer = self.construct_callback_answer(properties=get_flag(data, "callback_answer"))
        data["callback_answer"] = answer
        if not answer.disabled and answer.answered:
            await self.answer(event, answer)
        result = await handler(event, data)
        if not answer.disabled and not answer.answered:
            await self.answer(event, answer)
        return result
