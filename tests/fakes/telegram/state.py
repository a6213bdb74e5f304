"""What the fake Telegram knows (users, chats, messages, files, queued updates) and the
helpers every part of it uses; the parts are mixins over this class."""

from __future__ import annotations

import asyncio
import copy
import json
import mimetypes
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any, Final

from aiohttp import web

from tests.fakes.telegram.model import (
    BOT_FIRST_NAME,
    BOT_USERNAME,
    Call,
    ChatMessage,
    StoredFile,
    WebhookPost,
    _Fault,
)
from tests.support.telegram_rules import CallbackQueries, JsonDict, bad_request


class TelegramState:
    """The state of an in-memory Telegram Bot API for one bot token."""

    def __init__(self, token: str) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (sep and bot_id.isdigit() and secret):
            msg = f"not a bot token: {token!r}"
            raise ValueError(msg)
        self.token: Final = token
        self.bot_id: Final = int(bot_id)
        self.username: Final = BOT_USERNAME
        self.url = ""
        self.calls: list[Call] = []
        self.left_chats: set[int] = set()

        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._updates: list[JsonDict] = []
        self._next_update_id = 1
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        # Public base URL → the local address it reaches (webhook.py).
        self._webhook_routes: dict[str, str] = {}
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._webhook_connections = 40
        self.webhook_posts: list[WebhookPost] = []
        # Replaced on every signal, so a waiter that grabbed the old one is woken exactly once.
        self._update_signal = asyncio.Event()
        self._change_signal = asyncio.Event()

        self._users: dict[int, JsonDict] = {}
        self._chats: dict[int, JsonDict] = {}
        self._messages: dict[int, dict[int, ChatMessage]] = {}
        self._last_message_id: dict[int, int] = {}
        self._reply_keyboards: dict[int, JsonDict | None] = {}
        self._files: dict[str, StoredFile] = {}
        self._callback_queries = CallbackQueries()
        self._commands: dict[tuple[str, str], list[JsonDict]] = {}
        self._faults: list[_Fault] = []
        # Seconds every request but getUpdates waits before its answer (Telegram far away).
        self._round_trip = 0.0
        self._blocked: set[int] = set()
        self._migrated: dict[int, int] = {}
        self._counter = 0
        # Bot API method name (lower case) → (its canonical name, handler); FakeTelegram fills it.
        self._methods: dict[str, tuple[str, Callable[[JsonDict], Any]]] = {}

    def _signal_update(self) -> None:
        self._update_signal.set()
        self._update_signal = asyncio.Event()
        self._signal_change()

    def _signal_change(self) -> None:
        self._change_signal.set()
        self._change_signal = asyncio.Event()

    def _next_counter(self) -> int:
        self._counter += 1
        return self._counter

    def _bot_user(self) -> JsonDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        }

    def _remember_user(self, user_id: int, first_name: str, language_code: str | None) -> JsonDict:
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        self._users[user_id] = user
        return user

    def _ensure_chat(self, chat_id: int, chat_type: str | None = None, **extra: Any) -> JsonDict:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_type is None:
                chat_type = "private" if chat_id > 0 else "group"
                if str(chat_id).startswith("-100"):
                    chat_type = "supergroup"
            chat = {"id": chat_id, "type": chat_type}
            if chat_type == "private":
                chat["first_name"] = extra.get("first_name", "User")
            else:
                chat["title"] = extra.get("title", f"Chat {chat_id}")
            self._chats[chat_id] = chat
        return dict(chat)

    def _chat_id(self, params: JsonDict) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        if not isinstance(chat_id, int):
            raise bad_request("chat not found")
        return chat_id

    def _new_message_id(self, chat_id: int) -> int:
        # Message ids count per chat, shared by the user's and the bot's messages.
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _reply_target(self, chat_id: int, message_id: int) -> JsonDict:
        target = self._messages.get(chat_id, {}).get(message_id)
        if target is None or target.deleted:
            raise bad_request("message to be replied not found")
        replied = copy.deepcopy(target.message)
        replied.pop("reply_to_message", None)
        return replied

    def _store_file(
        self, file_name: str | None, content: bytes, mime_type: str | None
    ) -> StoredFile:
        number = self._next_counter()
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        suffix = PurePosixPath(file_name).suffix if file_name else ""
        stored = StoredFile(
            file_id=f"BQACAgIAAx{number:06d}",
            file_unique_id=f"AgAD{number:06d}",
            file_name=file_name,
            mime_type=mime_type,
            content=content,
            file_path=f"documents/file_{number}{suffix}",
        )
        self._files[stored.file_id] = stored
        return stored

    def _existing(self, chat_id: int, message_id: Any) -> ChatMessage | None:
        if not isinstance(message_id, int):
            return None
        current = self._messages.get(chat_id, {}).get(message_id)
        return None if current is None or current.deleted else current

    def _put(self, message: ChatMessage) -> ChatMessage:
        self._messages.setdefault(message.chat_id, {})[message.message_id] = message
        return message

    @staticmethod
    def _scope_key(scope: Any) -> str:
        return json.dumps(scope or {"type": "default"}, sort_keys=True)

    def _accept(self, params: JsonDict) -> bool:
        return True
