"""Admin commands (/admin, /users, /broadcast, /allow, /deny, /pending) and leaving foreign groups.

This router sits in front of the private-chat-only routers: admins work in a private chat
and in the admin group (ADMIN_CHAT_ID). Anyone else asking for an admin command gets the
unknown-command answer, so the commands do not advertise themselves.
"""

from __future__ import annotations

import logging
from typing import Final

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import IS_MEMBER, ChatMemberUpdatedFilter, Command, StateFilter
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.access import AccessCb, AdminPlace, IsAdmin, PendingCb
from handlers.admin.broadcast import (
    BroadcastAction,
    BroadcastCb,
    BroadcastForm,
    Broadcasts,
    broadcast_cancel,
    broadcast_not_text,
    broadcast_progress_text,
    broadcast_start,
    broadcast_text,
    tally_text,
)
from handlers.admin.decisions import access_button, access_command, list_pending, pending_button
from handlers.admin.summary import (
    UsersCb,
    list_users,
    period_starts,
    summary,
    total_cost,
    turn_users_page,
)
from handlers.config import HandlerSettings
from handlers.filters import Accessible
from handlers.utils import AnswerCallbacks

__all__ = [
    "ADMIN_COMMANDS",
    "broadcast_progress_text",
    "create_router",
    "period_starts",
    "tally_text",
    "total_cost",
]

logger = logging.getLogger(__name__)

ADMIN_COMMANDS: Final = ("admin", "users", "broadcast", "allow", "deny", "pending")


# --- Everyone else, and foreign groups ----------------------------------------------------


async def not_for_you(message: Message) -> None:
    # Exactly the unknown-command answer: admin commands do not reveal that they exist.
    await message.answer(_("I do not know this command. /help lists what I can do."))


async def button_not_for_you(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    callback_answer.text = _("Only administrators can use this button.")
    callback_answer.show_alert = True


async def bot_added(event: ChatMemberUpdated, bot: Bot, settings: HandlerSettings) -> None:
    if event.chat.id == settings.admin_chat_id:
        return
    logger.info("added to %s %s: leaving", event.chat.type, event.chat.id)
    try:
        await bot.leave_chat(event.chat.id)
    except TelegramAPIError as exc:
        logger.warning("could not leave chat %s: %s", event.chat.id, exc)


def create_router() -> Router:
    """Goes before the private-chat routers: it also serves the admin group."""
    router = Router(name="admin")
    router.message.filter(AdminPlace())
    router.callback_query.filter(AdminPlace())
    # Every button is answered once, after its handler; a handler sets the text, if any.
    router.callback_query.middleware(AnswerCallbacks())
    broadcasts = Broadcasts()
    router.startup.register(broadcasts.resume)
    router.shutdown.register(broadcasts.close)

    router.message.register(summary, Command("admin"), IsAdmin())
    router.message.register(list_users, Command("users"), IsAdmin())
    router.message.register(broadcast_start, Command("broadcast"), IsAdmin())
    router.message.register(access_command, Command("allow", "deny"), IsAdmin())
    router.message.register(list_pending, Command("pending"), IsAdmin())
    router.message.register(
        broadcast_cancel, Command("cancel"), StateFilter(BroadcastForm), IsAdmin()
    )
    router.message.register(
        broadcast_text, BroadcastForm.text, F.text, ~F.text.startswith("/"), IsAdmin()
    )
    router.message.register(broadcast_not_text, BroadcastForm.text, ~F.text, IsAdmin())
    router.message.register(not_for_you, Command(*ADMIN_COMMANDS))

    router.callback_query.register(turn_users_page, UsersCb.filter(), Accessible(), IsAdmin())
    router.callback_query.register(
        broadcasts.on_send,
        BroadcastCb.filter(F.action == BroadcastAction.SEND),
        Accessible(),
        IsAdmin(),
    )
    router.callback_query.register(
        broadcasts.on_cancel,
        BroadcastCb.filter(F.action == BroadcastAction.CANCEL),
        Accessible(),
        IsAdmin(),
    )
    router.callback_query.register(access_button, AccessCb.filter(), Accessible(), IsAdmin())
    router.callback_query.register(pending_button, PendingCb.filter(), Accessible(), IsAdmin())
    for admin_buttons in (UsersCb, BroadcastCb, AccessCb, PendingCb):
        router.callback_query.register(button_not_for_you, admin_buttons.filter())

    router.my_chat_member.register(
        bot_added, F.chat.type != ChatType.PRIVATE, ChatMemberUpdatedFilter(IS_MEMBER)
    )
    return router
