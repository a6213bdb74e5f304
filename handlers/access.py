"""Who may use the bot: ACCESS_MODE=allowlist, admins, and where admin commands are heard.

In allowlist mode a router of its own sits first among the private-chat routers and takes
every message and button of a user nobody approved, so no feature router ever sees them.
"""

from __future__ import annotations

import logging
from typing import Final

from aiogram import Router, html
from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
    User,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import Id
from handlers.config import HandlerSettings
from services.events import AccessRequested, Notices, Person, TokenConnected
from storage.users import Access, UserRepo

logger = logging.getLogger(__name__)


class AccessCb(CallbackData, prefix="acc"):
    """Approve / Deny under the admins' notice of a new user."""

    user_id: Id
    allow: bool


class PendingCb(CallbackData, prefix="pnd"):
    """Approve / Deny of one user under a list of requests (a digest, /pending): the tap
    takes only that user's buttons away, the others stay."""

    user_id: Id
    allow: bool


# Button labels carry a name so the admin sees whom a button is for; a long one is cut.
BUTTON_NAME_LIMIT: Final = 16


def is_admin(user: User | None, settings: HandlerSettings) -> bool:
    return user is not None and user.id in settings.access.admin_ids


class IsAdmin(Filter):
    async def __call__(
        self, event: TelegramObject, settings: HandlerSettings, event_from_user: User | None = None
    ) -> bool:
        return is_admin(event_from_user, settings)


class AdminPlace(Filter):
    """A private chat or the admin group: anywhere else admin commands get no answer at all."""

    async def __call__(
        self, event: TelegramObject, settings: HandlerSettings, event_chat: Chat | None = None
    ) -> bool:
        if event_chat is None:
            return False
        return event_chat.type == ChatType.PRIVATE or event_chat.id == settings.admin_chat_id


class NotAllowed(Filter):
    """True for a user who may not use the bot: only ever in allowlist mode, never an admin."""

    async def __call__(
        self,
        event: TelegramObject,
        settings: HandlerSettings,
        users: UserRepo,
        event_from_user: User | None = None,
    ) -> bool:
        if event_from_user is None:
            return False
        user_id = event_from_user.id
        # Open mode and admins need no look-up: they are admitted whatever their row says.
        if settings.access.admits(user_id, None):
            return False
        return not settings.access.admits(user_id, await users.get_access(user_id))


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


def pending_buttons(user_id: int, first_name: str | None) -> tuple[InlineKeyboardButton, ...]:
    """One user's ✅ / ⛔ in a list of requests."""
    name = first_name or str(user_id)
    if len(name) > BUTTON_NAME_LIMIT:
        name = name[: BUTTON_NAME_LIMIT - 1] + "…"
    return (
        InlineKeyboardButton(
            text=f"✅ {name}", callback_data=PendingCb(user_id=user_id, allow=True).pack()
        ),
        InlineKeyboardButton(
            text=f"⛔ {name}", callback_data=PendingCb(user_id=user_id, allow=False).pack()
        ),
    )


async def refuse_message(
    message: Message,
    event_from_user: User,
    users: UserRepo,
    notices: Notices,
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
    await notices.emit(AccessRequested(person(event_from_user)))


async def refuse_button(query: CallbackQuery) -> None:
    await query.answer(_("This bot is private."), show_alert=True)


async def announce_token(notices: Notices, user: User) -> None:
    """Tells the admin group that a user connected a devsms token (after a connect)."""
    await notices.emit(TokenConnected(person(user)))


def person(user: User) -> Person:
    """Who an admin notice is about (admins read it in the default language)."""
    return Person(user.id, None, user.first_name, user.username)


def create_router() -> Router:
    """Goes first among the private-chat routers."""
    router = Router(name="access")
    router.message.register(refuse_message, NotAllowed())
    router.callback_query.register(refuse_button, NotAllowed())
    return router
