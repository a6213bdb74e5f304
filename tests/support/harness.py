"""Dispatcher-level harness: the app's own Dispatcher fed with Updates, Telegram recorded."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.methods import AnswerCallbackQuery
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    Document,
    Message,
    Sticker,
    Update,
    User,
)

from bot.factory import App, Services, Shared
from tests.support.recording import BOT_USER, RecordingSession, SentMessage

BOT_TOKEN = f"{BOT_USER.id}:" + "T" * 35


@dataclass
class Harness:
    dp: Dispatcher
    bot: Bot
    session: RecordingSession
    services: Services
    shared: Shared
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def of(cls, app: App, session: RecordingSession) -> Harness:
        """The harness over an app `build_app` built around a Bot on `session`."""
        return cls(
            dp=app.dp, bot=app.bot, session=session, services=app.services, shared=app.shared
        )

    def user(self, user_id: int, lang: str | None) -> User:
        return User(id=user_id, is_bot=False, first_name=f"User<{user_id}>", language_code=lang)

    async def feed(self, **update: Any) -> list[SentMessage]:
        """Feeds one update; returns the messages the bot sent or edited while handling it."""
        start = len(self.session.changed)
        event = Update(update_id=next(self._ids), **update)
        # What Telegram knows once it delivers the update: the user's message exists (the bot
        # may delete it), the callback query awaits its one answer.
        for message in (event.message, event.edited_message):
            if message is not None:
                self.session.receive(message)
        if event.callback_query is not None:
            self.session.callbacks.offer(event.callback_query.id)
        await self.dp.feed_update(self.bot, event)
        # Sent or edited meanwhile (an edit always counts one more), and not deleted from the
        # record by the test; in the order they were first sent (ids grow with each send).
        messages = self.session.messages
        changed = sorted(set(self.session.changed[start:]), key=lambda key: key[1])
        return [messages[key] for key in changed if key in messages]

    def message(self, user_id: int = 1, lang: str | None = "en", **fields: Any) -> Message:
        return Message(
            message_id=next(self._ids),
            date=dt.datetime.now(dt.UTC),
            chat=Chat(id=user_id, type="private"),
            from_user=self.user(user_id, lang),
            **fields,
        )

    async def send(
        self, text: str, user_id: int = 1, lang: str | None = "en"
    ) -> list[SentMessage]:
        return await self.feed(message=self.message(user_id, lang, text=text))

    async def send_contact(
        self, phone: str, user_id: int = 1, lang: str | None = "en"
    ) -> list[SentMessage]:
        contact = Contact(phone_number=phone, first_name="Friend")
        return await self.feed(message=self.message(user_id, lang, contact=contact))

    async def send_document(
        self,
        file_name: str,
        content: bytes,
        user_id: int = 1,
        lang: str | None = "en",
        *,
        file_size: int | None = None,
        mime_type: str | None = None,
    ) -> list[SentMessage]:
        """A user uploads a file; the bot can download it (`file_size` may claim more bytes
        than `content` holds, to try the size limit without building a huge file)."""
        file_id = f"doc{next(self._ids)}"
        self.session.upload(file_id, content)
        document = Document(
            file_id=file_id,
            file_unique_id=f"u-{file_id}",
            file_name=file_name,
            mime_type=mime_type,
            file_size=len(content) if file_size is None else file_size,
        )
        return await self.feed(message=self.message(user_id, lang, document=document))

    async def send_sticker(self, user_id: int = 1, lang: str | None = "en") -> list[SentMessage]:
        return await self.feed(message=self.message(user_id, lang, sticker=a_sticker()))

    async def tap(
        self,
        sent: SentMessage,
        label: str,
        user_id: int = 1,
        lang: str | None = "en",
        query_id: str | None = None,
    ) -> list[SentMessage]:
        """Taps the inline button whose label contains `label` on a message the bot sent."""
        return await self.tap_data(sent, button_data(sent, label), user_id, lang, query_id)

    async def tap_data(
        self,
        sent: SentMessage,
        data: str,
        user_id: int = 1,
        lang: str | None = "en",
        query_id: str | None = None,
    ) -> list[SentMessage]:
        query = CallbackQuery(
            id=query_id or f"q{next(self._ids)}",
            from_user=self.user(user_id, lang),
            chat_instance="ci",
            data=data,
            message=self.session._as_message(sent),
        )
        return await self.feed(callback_query=query)

    async def state_of(self, user_id: int = 1) -> str | None:
        """The FSM state of the user's private chat with the bot."""
        context = self.dp.fsm.get_context(self.bot, chat_id=user_id, user_id=user_id)
        return await context.get_state()

    def answers(self) -> list[AnswerCallbackQuery]:
        return self.session.of(AnswerCallbackQuery)

    def last(self, chat_id: int = 1) -> SentMessage:
        return self.session.chat(chat_id)[-1]


def button_data(sent: SentMessage, label: str) -> str:
    """The callback data of a button as it is now: keep it to tap the button after it is gone
    (a user with an old copy of the message, or a double tap)."""
    data = next((d for text, d in sent.buttons() if label in text), None)
    assert data is not None, f"no button {label!r} in {sent.buttons()}"
    return data


def make_bot(session: RecordingSession) -> Bot:
    return Bot(BOT_TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))


def a_sticker() -> Sticker:
    return Sticker(
        file_id="s",
        file_unique_id="s",
        type="regular",
        width=1,
        height=1,
        is_animated=False,
        is_video=False,
    )
