"""Reading the bot's work: recorded calls, chats as they are now, waiting with a deadline,
and a dump for failure messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import cast

from tests.fakes.telegram.model import Call, ChatMessage, T
from tests.fakes.telegram.state import TelegramState
from tests.support.telegram_rules import JsonDict


class Inspection(TelegramState):
    """What a test reads back: calls, chats, and waiting for either."""

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def chat_messages(self, chat_id: int, *, include_user: bool = False) -> list[ChatMessage]:
        """Every bot message in the chat, oldest first, as it is now (deleted ones flagged).

        include_user=True adds the user's messages, deleted ones flagged too.
        """
        return [
            message
            for message in self._messages.get(chat_id, {}).values()
            if include_user or message.from_bot
        ]

    def last_bot_message(
        self, chat_id: int, *, include_deleted: bool = False
    ) -> ChatMessage | None:
        """The newest bot message still visible in the chat (or at all, with include_deleted)."""
        for message in reversed(self.chat_messages(chat_id)):
            if include_deleted or not message.deleted:
                return message
        return None

    def message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        return self._messages.get(chat_id, {}).get(message_id)

    def reply_keyboard(self, chat_id: int) -> JsonDict | None:
        """The reply keyboard the bot last showed in the chat (None once removed)."""
        return self._reply_keyboards.get(chat_id)

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        return list(self._commands.get((self._scope_key(scope), language_code), []))

    # A timeout argument rather than asyncio.timeout(): the deadline goes into the failure dump.
    async def wait_for(
        self,
        predicate: Callable[[], T | bool | None],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> T:
        """Poll ``predicate`` until it returns something truthy, and return that.

        Re-checks on every request the bot makes and at least every 50 ms (the predicate may
        look at other state); raises AssertionError with a dump of calls and chats on timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            signal = self._change_signal
            result = predicate()
            if result:
                return cast(T, result)
            remaining = deadline - loop.time()
            if remaining <= 0:
                msg = f"condition not met within {timeout} s\n{self.dump()}"
                raise AssertionError(msg)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(remaining, 0.05))

    async def wait_for_message(
        self,
        chat_id: int,
        *,
        containing: str | None = None,
        after_message_id: int = 0,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> ChatMessage:
        """The first bot message after ``after_message_id`` whose text contains ``containing``.

        Matches the current text (after edits) and also messages deleted since, so a
        short-lived "please wait" message cannot be missed.
        """

        def find() -> ChatMessage | None:
            for message in self.chat_messages(chat_id):
                if message.message_id <= after_message_id:
                    continue
                if containing is None or containing in (message.text or ""):
                    return message
            return None

        try:
            return await self.wait_for(find, timeout)
        except AssertionError as exc:
            msg = (
                f"no bot message in chat {chat_id} after #{after_message_id} "
                f"containing {containing!r}; {exc}"
            )
            raise AssertionError(msg) from None

    def dump(self, chat_id: int | None = None, *, last_calls: int = 30) -> str:
        """A readable summary of recent calls and chat contents, for failure messages."""
        lines = [f"pending updates: {len(self._updates)}", f"last {last_calls} calls:"]
        lines += [f"  {call}" for call in self.calls[-last_calls:]] or ["  (none)"]
        chat_ids = [chat_id] if chat_id is not None else list(self._messages)
        for shown_chat in chat_ids:
            lines.append(f"chat {shown_chat}:")
            lines += [
                f"  {message}" for message in self._messages.get(shown_chat, {}).values()
            ] or ["  (empty)"]
        return "\n".join(lines)
