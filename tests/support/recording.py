"""A Bot API session that records every call and answers like Telegram would (no network).

It remembers the messages it "sent" and the users' messages it delivered, checks every call
with Telegram's rules (HTML, lengths, keyboards, one answer per callback query, not-modified,
edits and deletes of missing messages) and answers a refusal with Telegram's error text, and
lets inline buttons be tapped later.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageMedia,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    GetMe,
    SendChatAction,
    SendDocument,
    SendMessage,
    SendPhoto,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.types import (
    BufferedInputFile,
    Chat,
    Document,
    File,
    FSInputFile,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    PhotoSize,
    User,
)

from tests.support import telegram_rules as rules
from tests.support.telegram_rules import JsonDict

FILE_PREFIX = "documents/file_"
BOT_USER = User(id=123456, is_bot=True, first_name="SMS bot", username="test_bot")


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    # As the bot sent it (HTML source; the caption for a document).
    text: str
    reply_markup: Any = None
    deleted: bool = False
    edits: int = 0
    # What the user sees, as Telegram parsed it: the "not modified" rule compares these.
    visible: str = ""
    entities: list[JsonDict] = field(default_factory=list)
    is_document: bool = False
    # The PNG/JPEG bytes of a photo (a photo is a media message: is_document is True too).
    photo: bytes | None = None
    # A document's name and bytes as uploaded (read at once: the bot may delete its file).
    file_name: str | None = None
    file: bytes | None = None

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

    def content(self) -> JsonDict:
        return {"text": self.visible, "entities": self.entities, "doc": self.is_document}


@dataclass
class RecordingSession(BaseSession):
    """Records every call and checks it with the same rules as the e2e fake Bot API
    (tests/support/telegram_rules.py); a refusal raises the TelegramBadRequest aiogram would
    raise, with Telegram's description. The harness tells it which user messages and callback
    queries exist (`incoming`, `callbacks`), as Telegram knows them."""

    calls: list[TelegramMethod[Any]] = field(default_factory=list)
    messages: dict[tuple[int, int], SentMessage] = field(default_factory=dict)
    # Users' messages Telegram delivered in updates: key → deleted.
    incoming: dict[tuple[int, int], bool] = field(default_factory=dict)
    deleted_user_messages: set[tuple[int, int]] = field(default_factory=set)
    callbacks: rules.CallbackQueries = field(default_factory=rules.CallbackQueries)
    # Calls Telegram refused, with the description, for tests that look at them.
    refused: list[tuple[TelegramMethod[Any], str]] = field(default_factory=list)
    blocked_chats: set[int] = field(default_factory=set)
    # Files users "uploaded" (file_id → bytes), served by GetFile + stream_content.
    files: dict[str, bytes] = field(default_factory=dict)
    # The key of each message sent or edited, in order: what one update changed is the tail
    # (Harness.feed), without comparing every message the bot ever sent.
    changed: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(10_000)

    async def close(self) -> None:
        return None

    def upload(self, file_id: str, content: bytes) -> None:
        """Makes `content` downloadable under `file_id`, as Telegram keeps a user's upload."""
        self.files[file_id] = content

    def receive(self, message: Message) -> None:
        """A user's message delivered in an update: the bot may now delete it (not edit it)."""
        self.incoming.setdefault((message.chat.id, message.message_id), False)

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
        try:
            return self._answer(bot, method)
        except rules.TelegramRefusal as refusal:
            self.refused.append((method, refusal.description))
            raise TelegramBadRequest(method, refusal.description) from None

    def _answer(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, SendMessage):
            visible, entities = rules.check_message_text(method.text, _parse_mode(bot, method))
            return self._send(bot, method, method.text, visible, entities, is_document=False)
        if isinstance(method, SendDocument):
            caption = method.caption or ""
            visible, entities = rules.check_caption(caption, _parse_mode(bot, method))
            answer = self._send(bot, method, caption, visible, entities, is_document=True)
            sent = self.messages[(answer.chat.id, answer.message_id)]
            sent.file_name, sent.file = _upload(method.document)
            return answer
        if isinstance(method, SendPhoto):
            caption = method.caption or ""
            visible, entities = rules.check_caption(caption, _parse_mode(bot, method))
            photo = _photo_bytes(method.photo)
            sent = self._send(bot, method, caption, visible, entities, is_document=True)
            self.messages[(sent.chat.id, sent.message_id)].photo = photo
            return self._as_message(self.messages[(sent.chat.id, sent.message_id)])
        if isinstance(method, EditMessageMedia):
            return self._edit_media(bot, method)
        if isinstance(method, EditMessageText | EditMessageReplyMarkup):
            return self._edit(bot, method)
        if isinstance(method, DeleteMessage):
            key = (int(method.chat_id), method.message_id)
            sent = self.messages.get(key)
            if sent is not None:
                rules.check_deletable(not sent.deleted)
                sent.deleted = True
            else:
                rules.check_deletable(self.incoming.get(key) is False)
                self.incoming[key] = True
                self.deleted_user_messages.add(key)
            return True
        if isinstance(method, AnswerCallbackQuery):
            params = method.model_dump(exclude_none=True, exclude={"callback_query_id"})
            self.callbacks.answer(method.callback_query_id, params)
            return True
        if isinstance(method, SendChatAction | SetMyCommands):
            return True
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, GetFile):
            content = self.files.get(method.file_id)
            if content is None:
                raise rules.bad_request("invalid file_id")
            return File(
                file_id=method.file_id,
                file_unique_id=f"u-{method.file_id}",
                file_size=len(content),
                file_path=FILE_PREFIX + method.file_id,
            )
        return True

    def _send(
        self,
        bot: Bot,
        method: SendMessage | SendDocument | SendPhoto,
        text: str,
        visible: str,
        entities: list[JsonDict],
        *,
        is_document: bool,
    ) -> Message:
        rules.check_reply_markup(_dump(method.reply_markup))
        sent = SentMessage(
            int(method.chat_id),
            next(self._ids),
            text,
            method.reply_markup,
            visible=visible,
            entities=entities,
            is_document=is_document,
        )
        self.messages[(sent.chat_id, sent.message_id)] = sent
        self.changed.append((sent.chat_id, sent.message_id))
        return self._as_message(sent)

    def _edit(self, bot: Bot, method: EditMessageText | EditMessageReplyMarkup) -> Message:
        key = (int(method.chat_id or 0), int(method.message_id or 0))
        old = self.messages.get(key)
        rules.check_editable(
            (old is not None and not old.deleted) or self.incoming.get(key) is False,
            old is not None,
        )
        assert old is not None
        markup = rules.inline_only(rules.check_reply_markup(_dump(method.reply_markup)))
        if markup is None and method.reply_markup is not None:
            raise rules.bad_request("inline keyboard expected")
        text, visible, entities = old.text, old.visible, old.entities
        if isinstance(method, EditMessageText):
            if old.is_document:
                raise rules.bad_request("there is no text in the message to edit")
            text = method.text or ""
            visible, entities = rules.check_message_text(method.text, _parse_mode(bot, method))
        new = {"text": visible, "entities": entities, "doc": old.is_document}
        rules.check_modified(old.content(), new, _dump(old.reply_markup), markup)
        old.text, old.visible, old.entities = text, visible, entities
        # Omitting reply_markup in an edit removes the inline keyboard, as on Telegram.
        old.reply_markup, old.edits = method.reply_markup, old.edits + 1
        self.changed.append(key)
        return self._as_message(old)

    def _edit_media(self, bot: Bot, method: EditMessageMedia) -> Message:
        key = (int(method.chat_id or 0), int(method.message_id or 0))
        old = self.messages.get(key)
        rules.check_editable(old is not None and not old.deleted, old is not None)
        assert old is not None
        if old.photo is None:
            raise rules.bad_request("there is no media in the message to edit")
        media = method.media
        if not isinstance(media, InputMediaPhoto):
            raise rules.bad_request("can't parse InputMedia: photo expected")
        rules.check_reply_markup(_dump(method.reply_markup))
        caption = media.caption or ""
        visible, entities = rules.check_caption(caption, _parse_mode(bot, media))
        # A new upload is new content: Telegram takes the edit even with the same caption.
        old.photo = _photo_bytes(media.media)
        old.text, old.visible, old.entities = caption, visible, entities
        old.reply_markup, old.edits = method.reply_markup, old.edits + 1
        self.changed.append(key)
        return self._as_message(old)

    def _as_message(self, sent: SentMessage) -> Message:
        # A document carries its text as a caption: editMessageText on it is refused.
        content: dict[str, Any] = {"text": sent.text}
        if sent.is_document:
            file_id = f"bot-doc-{sent.message_id}"
            document = Document(file_id=file_id, file_unique_id=file_id)
            content = {"document": document, "caption": sent.text or None}
        if sent.photo is not None:
            file_id = f"bot-photo-{sent.message_id}-{sent.edits}"
            size = PhotoSize(file_id=file_id, file_unique_id=file_id, width=1000, height=600)
            content = {"photo": [size], "caption": sent.text or None}
        return Message(
            message_id=sent.message_id,
            date=dt.datetime.now(dt.UTC),
            chat=Chat(id=sent.chat_id, type="private"),
            from_user=BOT_USER,
            **content,
            reply_markup=sent.reply_markup
            if isinstance(sent.reply_markup, InlineKeyboardMarkup)
            else None,
        )

    # What tests read.
    def of(self, kind: type[TelegramMethod[Any]]) -> list[Any]:
        return [call for call in self.calls if isinstance(call, kind)]

    def chat(self, chat_id: int) -> list[SentMessage]:
        return [m for (chat, _), m in sorted(self.messages.items()) if chat == chat_id]


def _upload(document: Any) -> tuple[str | None, bytes | None]:
    if isinstance(document, BufferedInputFile):
        return document.filename, document.data
    if isinstance(document, FSInputFile):
        return document.filename, Path(document.path).read_bytes()
    return None, None


def _photo_bytes(photo: Any) -> bytes:
    """The uploaded image; Telegram refuses what is not one."""
    if not isinstance(photo, BufferedInputFile):
        raise rules.bad_request("wrong file identifier/HTTP URL specified")
    if not photo.data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        raise rules.bad_request("IMAGE_PROCESS_FAILED")
    return photo.data


def _parse_mode(bot: Bot, method: Any) -> str | None:
    value = getattr(method, "parse_mode", None)
    if isinstance(value, Default):
        resolved = bot.default[value.name]
        return resolved if isinstance(resolved, str) else None
    return value if isinstance(value, str) else None


def _dump(markup: Any) -> JsonDict | None:
    """reply_markup as the JSON Telegram receives."""
    if markup is None:
        return None
    dumped: JsonDict = markup.model_dump(mode="json", exclude_none=True)
    return dumped
