"""A Bot API session that records every call and answers like Telegram would (no network).

It remembers the messages it "sent", so editing with identical content raises the same
"message is not modified" error as Telegram, and inline buttons can be tapped later.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    GetMe,
    SendChatAction,
    SendDocument,
    SendMessage,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.types import Chat, File, InlineKeyboardMarkup, Message, User

FILE_PREFIX = "documents/file_"
BOT_USER = User(id=123456, is_bot=True, first_name="SMS bot", username="test_bot")


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    text: str
    reply_markup: Any = None
    deleted: bool = False
    edits: int = 0

    def buttons(self) -> list[tuple[str, str | None]]:
        """(label, callback_data) of every inline button, in order."""
        if not isinstance(self.reply_markup, InlineKeyboardMarkup):
            return []
        return [
            (b.text, b.callback_data) for row in self.reply_markup.inline_keyboard for b in row
        ]

    def reply_buttons(self) -> list[str]:
        keyboard = getattr(self.reply_markup, "keyboard", None) or []
        return [b.text for row in keyboard for b in row]


@dataclass
class RecordingSession(BaseSession):
    calls: list[TelegramMethod[Any]] = field(default_factory=list)
    messages: dict[tuple[int, int], SentMessage] = field(default_factory=dict)
    deleted_user_messages: set[tuple[int, int]] = field(default_factory=set)
    blocked_chats: set[int] = field(default_factory=set)
    # Files users "uploaded" (file_id → bytes), served by GetFile + stream_content.
    files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(10_000)

    async def close(self) -> None:
        return None

    def upload(self, file_id: str, content: bytes) -> None:
        """Makes `content` downloadable under `file_id`, as Telegram keeps a user's upload."""
        self.files[file_id] = content

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 (BaseSession API)
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        # bot.download_file asks for <server>/file/bot<token>/<file_path>; file_path is
        # FILE_PREFIX + file_id (see GetFile below).
        file_id = url.rpartition(FILE_PREFIX)[2]
        content = self.files[file_id]
        for start in range(0, len(content), chunk_size):
            yield content[start : start + chunk_size]

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 (BaseSession API)
    ) -> Any:
        self.calls.append(method)
        chat_id = getattr(method, "chat_id", None)
        if chat_id in self.blocked_chats:
            raise TelegramForbiddenError(method, "Forbidden: bot was blocked by the user")
        if isinstance(method, SendMessage | SendDocument):
            text = method.text if isinstance(method, SendMessage) else (method.caption or "")
            if isinstance(method, SendMessage) and len(text) > 4096:
                raise TelegramBadRequest(method, "Bad Request: message is too long")
            sent = SentMessage(int(method.chat_id), next(self._ids), text, method.reply_markup)
            self.messages[(sent.chat_id, sent.message_id)] = sent
            return self._as_message(sent)
        if isinstance(method, EditMessageText | EditMessageReplyMarkup):
            key = (int(method.chat_id or 0), int(method.message_id or 0))
            old = self.messages.get(key)
            if old is None:
                raise TelegramBadRequest(method, "Bad Request: message to edit not found")
            text = method.text if isinstance(method, EditMessageText) else old.text
            if text == old.text and _dump(method.reply_markup) == _dump(old.reply_markup):
                raise TelegramBadRequest(
                    method,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            old.text, old.reply_markup, old.edits = text, method.reply_markup, old.edits + 1
            return self._as_message(old)
        if isinstance(method, DeleteMessage):
            key = (int(method.chat_id), method.message_id)
            if key in self.messages:
                self.messages[key].deleted = True
            else:
                self.deleted_user_messages.add(key)
            return True
        if isinstance(method, AnswerCallbackQuery | SendChatAction | SetMyCommands):
            return True
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, GetFile):
            content = self.files.get(method.file_id)
            if content is None:
                raise TelegramBadRequest(method, "Bad Request: invalid file_id")
            return File(
                file_id=method.file_id,
                file_unique_id=f"u-{method.file_id}",
                file_size=len(content),
                file_path=FILE_PREFIX + method.file_id,
            )
        return True

    def _as_message(self, sent: SentMessage) -> Message:
        return Message(
            message_id=sent.message_id,
            date=dt.datetime.now(dt.UTC),
            chat=Chat(id=sent.chat_id, type="private"),
            from_user=BOT_USER,
            text=sent.text,
            reply_markup=sent.reply_markup
            if isinstance(sent.reply_markup, InlineKeyboardMarkup)
            else None,
        )

    # What tests read.
    def of(self, kind: type[TelegramMethod[Any]]) -> list[Any]:
        return [call for call in self.calls if isinstance(call, kind)]

    def chat(self, chat_id: int) -> list[SentMessage]:
        return [m for (chat, _), m in sorted(self.messages.items()) if chat == chat_id]


def _dump(markup: Any) -> Any:
    return markup.model_dump(exclude_none=True) if markup is not None else None
