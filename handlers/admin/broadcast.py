"""/broadcast: a text from an admin to every user who may use the bot, sent in the background."""

from __future__ import annotations

import asyncio
import logging
import secrets
from enum import StrEnum
from typing import Any

from aiogram.enums import ChatType
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import Id
from handlers.config import HandlerSettings
from handlers.plural import ngettext
from handlers.utils import edit_or_keep
from services.broadcast import Deliver, run_leased
from services.events import Notices, Tally
from services.rounds import Rounds
from storage.broadcasts import BroadcastRepo, BroadcastRow
from storage.leases import LeaseRepo
from storage.users import UserRepo

logger = logging.getLogger(__name__)


class BroadcastForm(StatesGroup):
    text = State()
    confirm = State()


class BroadcastAction(StrEnum):
    SEND = "send"
    CANCEL = "cancel"


class BroadcastCb(CallbackData, prefix="bc"):
    """`draft` ties the tap to one preview: an older preview cannot send a newer text."""

    action: BroadcastAction
    draft: Id


async def recipients(users: UserRepo, settings: HandlerSettings) -> list[int]:
    """Active users with a valid token; in allowlist mode only the approved ones (and admins)."""
    targets = await users.broadcast_targets()
    return [user_id for user_id, access in targets if settings.access.admits(user_id, access)]


def broadcast_keyboard(draft: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("📣 Send"), callback_data=BroadcastCb(action=BroadcastAction.SEND, draft=draft)
    )
    builder.button(
        text=_("✖️ Cancel"), callback_data=BroadcastCb(action=BroadcastAction.CANCEL, draft=draft)
    )
    builder.adjust(2)
    return builder.as_markup()


def tally_text(tally: Tally) -> str:
    return _("Delivered: {delivered}, blocked the bot: {blocked}, failed: {failed}").format(
        delivered=tally.delivered, blocked=tally.blocked, failed=tally.failed
    )


def broadcast_progress_text(tally: Tally, total: int) -> str:
    """The report message while a broadcast runs (bot/notices edits it as the tally grows)."""
    return (
        _("📣 Broadcast in progress: {done} of {total}").format(done=tally.done, total=total)
        + "\n"
        + tally_text(tally)
    )


async def broadcast_start(message: Message, state: FSMContext) -> None:
    await state.set_state(BroadcastForm.text)
    # In a group with privacy mode on, the bot sees replies to itself but not plain messages.
    force_reply = ForceReply(selective=True) if message.chat.type != ChatType.PRIVATE else None
    await message.answer(
        _("Send the text of the broadcast. It goes out exactly as you write it, formatting too.")
        + "\n"
        + _("/cancel stops here."),
        reply_markup=force_reply,
    )


async def broadcast_text(
    message: Message, state: FSMContext, users: UserRepo, settings: HandlerSettings
) -> None:
    count = len(await recipients(users, settings))
    if count == 0:
        await state.clear()
        await message.answer(_("Nobody would get it: no active user has a valid token."))
        return
    draft = secrets.randbelow(2**31)
    text = message.html_text
    await state.set_state(BroadcastForm.confirm)
    await state.update_data(broadcast_text=text, broadcast_draft=draft)
    # The exact message users will get, then the question under it.
    await message.answer(text)
    await message.answer(
        ngettext(
            "☝️ This will go to {n} user. Send it?",
            "☝️ This will go to {n} users. Send it?",
            count,
        ).format(n=count),
        reply_markup=broadcast_keyboard(draft),
    )


async def broadcast_not_text(message: Message) -> None:
    await message.answer(
        _("Send the broadcast as a text message.") + "\n" + _("/cancel stops here.")
    )


async def broadcast_cancel(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Broadcast cancelled."))


class Broadcasts:
    """Runs broadcasts in the background, so the admin's update returns at once.

    The tasks are kept here: the event loop holds only weak references to tasks.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._started: set[int] = set()

    async def _live_draft(
        self, callback_answer: CallbackAnswer, callback_data: BroadcastCb, state: FSMContext
    ) -> dict[str, Any] | None:
        """The draft the tapped preview shows (and the dialog ends), or None for an older
        preview or a second tap; the tap is then told so."""
        data = await state.get_data()
        current = await state.get_state() == BroadcastForm.confirm.state
        draft = callback_data.draft
        if not current or data.get("broadcast_draft") != draft or draft in self._started:
            callback_answer.text = _("This button is no longer active.")
            return None
        await state.clear()
        return data

    async def on_cancel(
        self,
        query: CallbackQuery,
        callback_answer: CallbackAnswer,
        callback_data: BroadcastCb,
        message: Message,
        state: FSMContext,
    ) -> None:
        if await self._live_draft(callback_answer, callback_data, state) is not None:
            await edit_or_keep(message, _("Broadcast cancelled."))

    async def on_send(
        self,
        query: CallbackQuery,
        callback_answer: CallbackAnswer,
        callback_data: BroadcastCb,
        message: Message,
        state: FSMContext,
        users: UserRepo,
        notifier: Deliver,
        notices: Notices,
        i18n: I18n,
        settings: HandlerSettings,
        broadcast_log: BroadcastRepo,
        leases: LeaseRepo | None = None,
    ) -> None:
        data = await self._live_draft(callback_answer, callback_data, state)
        if data is None:
            return
        # Marked before the first await that could let a second tap in.
        self._started.add(callback_data.draft)
        text = str(data["broadcast_text"])
        targets = await recipients(users, settings)
        report = (message.chat.id, message.message_id)
        language = i18n.current_locale
        broadcast_id = await broadcast_log.create(
            query.from_user.id, text, targets, report=report, language=language
        )
        callback_answer.text = _("Broadcast started.")
        await edit_or_keep(message, broadcast_progress_text(Tally(), len(targets)))
        logger.info(
            "user %s started broadcast %s to %s users",
            query.from_user.id,
            broadcast_id,
            len(targets),
        )
        row = BroadcastRow(broadcast_id, query.from_user.id, text, *report, language, "running")
        self._start(Rounds(leases), notifier, notices, broadcast_log, row)

    async def resume(
        self,
        broadcast_log: BroadcastRepo | None = None,
        notifier: Deliver | None = None,
        notices: Notices | None = None,
        leases: LeaseRepo | None = None,
    ) -> None:
        """At start-up: the broadcasts a stopped process left running go on with the targets
        still waiting; those it had claimed may have got the message and are not sent again.

        Polling and the webhook runner start the routers with the dispatcher's workflow data;
        a start without it (`dp.emit_startup(bot=bot)` in tests) leaves them for the next."""
        if broadcast_log is None or notifier is None or notices is None:
            logger.warning("started without the dispatcher's data: broadcasts not resumed")
            return
        for row in await broadcast_log.unfinished():
            # Another replica may be sending it: the lease decides (services/broadcast.py).
            self._start(Rounds(leases), notifier, notices, broadcast_log, row, resume=True)

    def _start(
        self,
        rounds: Rounds,
        notifier: Deliver,
        notices: Notices,
        log: BroadcastRepo,
        row: BroadcastRow,
        *,
        resume: bool = False,
    ) -> None:
        task = asyncio.create_task(run_leased(rounds, notifier, notices, log, row, resume=resume))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancels running broadcasts (dispatcher shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
