"""Who may use the bot: ACCESS_MODE=allowlist, admins, and where admin commands are heard.

In allowlist mode a router of its own sits first among the private-chat routers and takes
every message and button of a user nobody approved, so no feature router ever sees them.
"""

from __future__ import annotations

import logging

from aiogram import Router, html
from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message, TelegramObject, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.config import Settings
from handlers.callbacks import Id
from services.notifier import Delivery, Notifier
from storage.users import Access, UserRepo

logger = logging.getLogger(__name__)


class AccessCb(CallbackData, prefix="acc"):
    """Approve / Deny under the admins' notice of a new user."""

    user_id: Id
    allow: bool


def is_admin(user: User | None, settings: Settings) -> bool:
    return user is not None and user.id in settings.admin_ids


class IsAdmin(Filter):
    async def __call__(
        self, event: TelegramObject, settings: Settings, event_from_user: User | None = None
    ) -> bool:
        return is_admin(event_from_user, settings)


class AdminPlace(Filter):
    """A private chat or the admin group: anywhere else admin commands get no answer at all."""

    async def __call__(
        self, event: TelegramObject, settings: Settings, event_chat: Chat | None = None
    ) -> bool:
        if event_chat is None:
            return False
        return event_chat.type == ChatType.PRIVATE or event_chat.id == settings.admin_chat_id


class NotAllowed(Filter):
    """True for a user who may not use the bot: only ever in allowlist mode, never an admin."""

    async def __call__(
        self,
        event: TelegramObject,
        settings: Settings,
        users: UserRepo,
        event_from_user: User | None = None,
    ) -> bool:
        if settings.access_mode == "open" or event_from_user is None:
            return False
        if is_admin(event_from_user, settings):
            return False
        return await users.get_access(event_from_user.id) != Access.ALLOWED


def user_label(user_id: int, first_name: str | None, username: str | None) -> str:
    """'Name (@username, id 42)', escaped for HTML."""
    name = html.quote(first_name or "—")
    handle = f"@{html.quote(username)}, " if username else ""
    return f"{name} ({handle}id <code>{user_id}</code>)"


def access_keyboard(user_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Approve"), callback_data=AccessCb(user_id=user_id, allow=True))
    builder.button(text=_("⛔ Deny"), callback_data=AccessCb(user_id=user_id, allow=False))
    builder.adjust(2)
    return builder.as_markup()


async def tell_admins(
    notifier: Notifier,
    settings: Settings,
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> None:
    """To the admin group; without one (the notifier skips), to each admin's private chat."""
    if await notifier.to_admins(text, reply_markup=reply_markup) != Delivery.SKIPPED:
        return
    for admin_id in settings.admin_ids:
        await notifier.send(admin_id, text, reply_markup=reply_markup)


async def refuse_message(
    message: Message,
    event_from_user: User,
    users: UserRepo,
    notifier: Notifier,
    i18n: I18n,
    settings: Settings,
) -> None:
    if await users.get_access(event_from_user.id) == Access.DENIED:
        await message.answer(_("This bot is private, and the administrators did not allow you."))
        return
    await message.answer(
        _("This bot is private; your request was sent to the administrators.")
        + "\n"
        + _("I will write to you when they decide.")
    )
    if not await users.mark_access_asked(event_from_user.id):
        return
    logger.info("user %s asked for access", event_from_user.id)
    # Admins read notices in the bot's default language, not in the asking user's.
    with i18n.use_locale(i18n.default_locale):
        text = _("🙋 A new user asks for access: {user}").format(
            user=user_label(
                event_from_user.id, event_from_user.first_name, event_from_user.username
            )
        )
        keyboard = access_keyboard(event_from_user.id)
    await tell_admins(notifier, settings, text, keyboard)


async def refuse_button(query: CallbackQuery) -> None:
    await query.answer(_("This bot is private."), show_alert=True)


async def announce_token(notifier: Notifier | None, i18n: I18n, user: User) -> None:
    """Tells the admin group that a user connected a devsms token (after a connect)."""
    if notifier is None:
        return
    with i18n.use_locale(i18n.default_locale):
        text = _("🔑 {user} connected a devsms token.").format(
            user=user_label(user.id, user.first_name, user.username)
        )
    await notifier.to_admins(text)


def create_router() -> Router:
    """Goes first among the private-chat routers."""
    router = Router(name="access")
    router.message.register(refuse_message, NotAllowed())
    router.callback_query.register(refuse_button, NotAllowed())
    return router
