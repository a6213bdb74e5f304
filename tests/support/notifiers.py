"""A stand-in for bot/notices/notifier.Notifier in dispatcher tests: delivers at once, and
the bot's own presentation of events over it, put where build_app puts the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from bot.config import Settings
from bot.factory import Services, build_app, present
from bot.notices.digest import AdminDigest
from bot.notices.notifier import Delivery, Outbox
from bot.notices.presenter import Presenter
from services.languages import Language
from tests.support.harness import Harness, make_bot
from tests.support.recording import RecordingSession


@dataclass
class ImmediateNotifier:
    """Sends through the (recorded) bot at once; the real one paces through a queue.

    `sent` lists every (chat_id, text) it was given; clearing `gate` holds every send, so a
    test can look at a broadcast mid-way. `post()` sends in a task of its own, as the real
    one returns before sending: `settle()` waits for those.
    """

    bot: Bot
    admin_chat_id: int | None
    sent: list[tuple[int, str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    posted: set[asyncio.Task[Delivery]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.gate.set()

    def post(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        task = asyncio.create_task(self.send(chat_id, text, reply_markup=reply_markup))
        self.posted.add(task)
        task.add_done_callback(self.posted.discard)

    def post_to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> bool:
        if self.admin_chat_id is None:
            return False
        self.post(self.admin_chat_id, text, reply_markup=reply_markup)
        return True

    async def settle(self) -> None:
        """Until every posted message went out."""
        while self.posted:
            await asyncio.gather(*self.posted)

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Delivery:
        await self.gate.wait()
        self.sent.append((chat_id, text))
        try:
            await self.bot.send_message(chat_id, text, reply_markup=reply_markup)
        except TelegramForbiddenError:
            return Delivery.BLOCKED
        except TelegramAPIError:
            return Delivery.FAILED
        return Delivery.DELIVERED

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Delivery:
        try:
            await self.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, reply_markup=reply_markup
            )
        except TelegramAPIError:
            return Delivery.FAILED
        return Delivery.DELIVERED

    async def send_document(
        self,
        chat_id: int,
        document: BufferedInputFile,
        *,
        caption: str,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Delivery:
        try:
            await self.bot.send_document(
                chat_id, document, caption=caption, reply_markup=reply_markup
            )
        except TelegramAPIError:
            return Delivery.FAILED
        return Delivery.DELIVERED

    async def to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Delivery:
        if self.admin_chat_id is None:
            return Delivery.SKIPPED
        return await self.send(self.admin_chat_id, text, reply_markup=reply_markup)


def wire(
    dp: Dispatcher,
    notifier: Outbox,
    services: Services,
    *,
    digest: AdminDigest | None = None,
    admin_ids: Iterable[int] = (),
    language: Language = "en",
) -> Presenter:
    """Replaces the notifier build_app gave the Dispatcher and the presentation of events over
    it (admin notices without a window unless `digest` has one), also for the bulk runner."""
    if digest is None:
        digest = AdminDigest(
            notifier, services.i18n, language=language, interval=0, admin_ids=admin_ids
        )
    notices = present(notifier, digest, services, dp["settings"], language)
    dp["notifier"] = notifier
    dp["notices"] = notices
    dp["bulk_runner"].notices = notices
    dp["scheduler"].notices = notices
    return notices


def install(
    dp: Dispatcher,
    bot: Bot,
    admin_chat_id: int | None,
    services: Services,
    *,
    admin_ids: Iterable[int] = (),
    language: Language = "en",
) -> ImmediateNotifier:
    """An ImmediateNotifier wired in (see `wire`)."""
    notifier = ImmediateNotifier(bot, admin_chat_id)
    wire(dp, notifier, services, admin_ids=admin_ids, language=language)
    return notifier


@asynccontextmanager
async def immediate_app(settings: Settings) -> AsyncIterator[tuple[Harness, ImmediateNotifier]]:
    """The app build_app builds over a recording Bot, an ImmediateNotifier installed for the
    admins the settings name; leaving it ends polling's way, then closes the app."""
    session = RecordingSession()
    bot = make_bot(session)
    async with build_app(settings, bot=bot) as built:
        notifier = install(
            built.dp, bot, settings.admin_chat_id, built.services, admin_ids=settings.admin_ids
        )
        try:
            yield Harness.of(built, session), notifier
        finally:
            notifier.gate.set()
            # What the end of polling does: the feature routers stop their work.
            await built.dp.emit_shutdown(bot=bot)
