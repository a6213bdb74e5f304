"""Callback queries: a user presses an inline button, the bot answers it (once)."""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.telegram.inspection import Inspection
from tests.fakes.telegram.polling import Polling
from tests.support.telegram_rules import JsonDict


class Callbacks(Polling, Inspection):
    """Button presses and their one answer."""

    def press_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        language_code: str | None = "en",
        first_name: str = "User",
        chat_id: int | None = None,
        check_button: bool = True,
    ) -> str:
        """Press an inline button of a bot message; returns the callback query id.

        With check_button=False any data can be sent, like a button from an older bot version.
        """
        chat_id = user_id if chat_id is None else chat_id
        current = self._messages.get(chat_id, {}).get(message_id)
        if current is None or current.deleted:
            msg = f"no message {message_id} to press in chat {chat_id}\n{self.dump(chat_id)}"
            raise AssertionError(msg)
        offered = [button.get("callback_data") for button in current.inline_buttons]
        if check_button and callback_data not in offered:
            msg = f"message {message_id} has no button with data {callback_data!r}: {offered}"
            raise AssertionError(msg)
        user = self._remember_user(user_id, first_name, language_code)
        query_id = str(4_000_000_000 + self._next_counter())
        self._callback_queries.offer(query_id)
        self.add_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": copy.deepcopy(current.message),
                    "chat_instance": str(abs(chat_id) * 7 + self.bot_id),
                    "data": callback_data,
                }
            }
        )
        return query_id

    def press_button_with_text(
        self, user_id: int, message_id: int, text_contains: str, **kwargs: Any
    ) -> str:
        """Press the inline button whose label contains ``text_contains``."""
        chat_id = kwargs.get("chat_id") or user_id
        current = self._messages.get(chat_id, {}).get(message_id)
        if current is None:
            msg = f"no message {message_id} in chat {chat_id}\n{self.dump(chat_id)}"
            raise AssertionError(msg)
        data = current.button(text_contains).get("callback_data")
        if not isinstance(data, str):
            msg = f"button {text_contains!r} carries no callback_data"
            raise AssertionError(msg)
        return self.press_button(user_id, message_id, data, **kwargs)

    def callback_answer(self, query_id: str) -> JsonDict | None:
        """The answerCallbackQuery params for the query, or None while unanswered."""
        return self._callback_queries.answers.get(query_id)

    def _answer_callback_query(self, params: JsonDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        answer = {key: value for key, value in params.items() if key != "callback_query_id"}
        self._callback_queries.answer(query_id, answer)
        return True
