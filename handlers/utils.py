"""Small Telegram helpers the feature routers share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiogram import Bot
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswerMiddleware

logger = logging.getLogger(__name__)

# A gateway call usually answers in tens of ms: "typing…" for that long is a Bot API call per
# command the user never sees. Past this, the wait is long enough to show.
SLOW_AFTER: Final = 0.5
# Telegram shows an action for about 5 s, or until the bot's next message.
ACTION_EVERY: Final = 4.5
_actions: set[asyncio.Task[None]] = set()  # sends in flight, kept from the garbage collector


def action_if_slow(bot: Bot, chat_id: int, action: str = "typing") -> _ActionShower:
    """`async with` it: shows `action` in the chat only while the block takes longer than
    SLOW_AFTER seconds.

    aiogram's ChatActionSender(initial_sleep=...) does the same with a task, a lock and two
    events per use, and its exit waits for an action still in flight; here a quick block
    costs one timer. The action is sent beside the handler, which never waits for it.
    """
    return _ActionShower(bot, chat_id, action)


class _ActionShower:
    """action_if_slow's timer. A class, not a closure that schedules itself: such a closure
    refers to itself, so each use left a dozen objects (the function, its cells, the timer,
    its context) that only the garbage collector frees: all the cyclic garbage of a /balance,
    and a young collection of 5 ms every ~500 answers (scripts/bench.py's paced pass).
    The cancelled timer drops its callback, and with it the only cycle. Its own context
    manager, not contextlib's over a generator: 20,000 instructions less per use (callgrind)."""

    __slots__ = ("_action", "_bot", "_chat_id", "_loop", "_timer")

    def __init__(self, bot: Bot, chat_id: int, action: str) -> None:
        self._bot, self._chat_id, self._action = bot, chat_id, action
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> None:
        self._timer = self._loop.call_later(SLOW_AFTER, self._show)

    async def __aexit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _show(self) -> None:
        task = self._loop.create_task(_send_action(self._bot, self._chat_id, self._action))
        _actions.add(task)
        task.add_done_callback(_actions.discard)
        self._timer = self._loop.call_later(ACTION_EVERY, self._show)


async def _send_action(bot: Bot, chat_id: int, action: str) -> None:
    try:
        await bot.send_chat_action(chat_id, action)
    except TelegramAPIError as exc:  # only a hint: the answer that follows is what counts
        logger.debug("sendChatAction failed: %s", type(exc).__name__)


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
