"""A stand-in for bot/notices/notifier.Notifier in dispatcher tests: delivers at once, and
the bot's own presentation of events wired over it as start-up wires it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from bot.factory import Services
from bot.notices.digest import AdminDigest
from bot.notices.jobs import JobReports
from bot.notices.notifier import Delivery, Outbox
from bot.notices.presenter import Presenter


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
    language: str = "en",
) -> Presenter:
    """What start-up puts into the Dispatcher: the notifier and the presentation of events over
    it (admin notices without a window unless `digest` has one), also for the bulk runner."""
    if digest is None:
        digest = AdminDigest(
            notifier, services.i18n, language=language, interval=0, admin_ids=admin_ids
        )
    notices = Presenter(
        notifier,
        digest,
        services.i18n,
        services.users,
        default_language=language,
        jobs=JobReports(notifier, services.bulk, dp["settings"]),
    )
    dp["notifier"] = notifier
    dp["notices"] = notices
    dp["bulk_runner"].notices = notices
    return notices


def install(
    dp: Dispatcher,
    bot: Bot,
    admin_chat_id: int | None,
    services: Services,
    *,
    admin_ids: Iterable[int] = (),
    language: str = "en",
) -> ImmediateNotifier:
    """An ImmediateNotifier wired in (see `wire`)."""
    notifier = ImmediateNotifier(bot, admin_chat_id)
    wire(dp, notifier, services, admin_ids=admin_ids, language=language)
    return notifier
