"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests.

The real bot talks to it over HTTP exactly as it talks to api.telegram.org
(``TelegramAPIServer.from_base(fake.url)``); pytest drives it in-process: inject updates
(``send_text``, ``press_button``, ...), then read what the bot did (``calls``,
``chat_messages``) and wait for it with a deadline (``wait_for``, ``wait_for_message``).

It reproduces the Bot API details a bot gets wrong in production: the 4096-character limit
counted after HTML parsing, Telegram's strict HTML subset, 64-byte callback data,
"message is not modified", one answer per callback query, getUpdates offsets, and injected
faults (429 with retry_after, blocked users, chat migrations, dropped connections).

Standalone: ``python -m tests.fakes.fake_telegram --port 8081 --token 123456:ABC...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from tests.fakes.telegram.chats import Chats
from tests.fakes.telegram.http import HttpServer
from tests.fakes.telegram.model import ApiError, Call, ChatMessage, StoredFile, UploadedFile
from tests.support.telegram_rules import JsonDict

# The names tests, the e2e harness and the bench import from here.
__all__ = [
    "ApiError",
    "Call",
    "ChatMessage",
    "FakeTelegram",
    "JsonDict",
    "StoredFile",
    "UploadedFile",
]


class FakeTelegram(HttpServer, Chats):
    """An in-memory Telegram Bot API for one bot token, served on 127.0.0.1.

    Use from the event loop that runs the tests; nothing here is thread-safe. The parts live
    in tests/fakes/telegram/: updates and polling, what users do, callback queries, the bot's
    messages, files, chats, faults, inspection and the HTTP server.
    """

    def __init__(self, token: str) -> None:
        super().__init__(token)
        handlers: dict[str, Callable[[JsonDict], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "editMessageMedia": self._edit_message_media,
            "getFile": self._get_file,
            "leaveChat": self._leave_chat,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "sendChatAction": self._send_chat_action,
        }
        # Settings a bot may push at startup; accepted and only recorded in calls.
        for name in (
            "setMyDescription",
            "setMyShortDescription",
            "setMyName",
            "setChatMenuButton",
            "setMyDefaultAdministratorRights",
            "close",
            "logOut",
        ):
            handlers[name] = self._accept
        # Bot API method names are case-insensitive.
        self._methods = {name.lower(): (name, handler) for name, handler in handlers.items()}


async def _serve(host: str, port: int, token: str) -> None:
    fake = FakeTelegram(token)
    url = await fake.start(host, port)
    print(f"fake Telegram Bot API on {url} (Ctrl+C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123456:" + "A" * 35)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.token))


if __name__ == "__main__":
    main()
