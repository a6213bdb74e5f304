"""/allow, /deny, /pending and the Approve / Deny buttons: the admins' access decisions."""

from __future__ import annotations

import logging
from typing import Final

from aiogram import html
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import (
    CommandObject,
)
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.access import (
    AccessCb,
    PendingCb,
    pending_buttons,
    user_label,
)
from handlers.config import HandlerSettings
from handlers.plural import ngettext
from handlers.utils import edit_or_keep
from services.access import AccessPolicy
from services.bulk import PAUSE_ACCESS, BulkRunner
from services.events import AccessDecided, Notices, Person
from services.user_input import InvalidUserId, parse_user_id
from storage.users import Access, UserRepo

logger = logging.getLogger(__name__)

# Access requests /pending shows, each with its buttons.
PENDING_SHOWN: Final = 10


async def decide(
    user_id: int,
    access: Access,
    users: UserRepo,
    notices: Notices,
    bulk_runner: BulkRunner,
    access_policy: AccessPolicy,
) -> list[int]:
    """Stores the decision and tells the user, unless nothing changed for them. Returns the
    bulk jobs it paused.

    A user no longer admitted stops sending at once: their running bulk jobs are paused (not
    cancelled, so that an admin who allows them again leaves them free to resume). Balance
    alerts and delivery reports ask the same policy and stop too."""
    before = await users.get_access(user_id)
    await users.set_access(user_id, access)
    logger.info("access of user %s: %s -> %s", user_id, before, access)
    paused: list[int] = []
    if not access_policy.admits(user_id, access):
        paused = await bulk_runner.pause_jobs_of(user_id, PAUSE_ACCESS)
    # Telegram does not let a bot write first to someone who never wrote to it.
    if before is None or before == access:
        return paused
    row = await users.get(user_id)
    person = Person.of(row) if row else Person(user_id, None, None, None)
    await notices.emit(AccessDecided(person, access == Access.ALLOWED))
    return paused


async def access_command(
    message: Message,
    command: CommandObject,
    users: UserRepo,
    notices: Notices,
    settings: HandlerSettings,
    bulk_runner: BulkRunner,
    access_policy: AccessPolicy,
) -> None:
    try:
        user_id = parse_user_id(command.args or "")
    except InvalidUserId:
        await message.answer(
            _("Add the user's id: /{command} 123456789").format(command=command.command)
        )
        return
    allow = command.command == "allow"
    access = Access.ALLOWED if allow else Access.DENIED
    paused = await decide(user_id, access, users, notices, bulk_runner, access_policy)
    if allow:
        text = _("✅ User {id} may use the bot.").format(id=user_id)
    else:
        text = _("⛔ User {id} may not use the bot.").format(id=user_id)
    if paused:
        text += "\n" + _("Their bulk sending was paused: {jobs}.").format(
            jobs=", ".join(f"#{job_id}" for job_id in paused)
        )
    if not settings.access.allowlist:
        text += "\n" + _("ACCESS_MODE is open, so this only takes effect in allowlist mode.")
    await message.answer(text)


async def access_button(
    query: CallbackQuery,
    callback_data: AccessCb,
    message: Message,
    users: UserRepo,
    notices: Notices,
    bulk_runner: BulkRunner,
    access_policy: AccessPolicy,
) -> None:
    user_id = callback_data.user_id
    access = Access.ALLOWED if callback_data.allow else Access.DENIED
    await decide(user_id, access, users, notices, bulk_runner, access_policy)
    admin = html.quote(query.from_user.first_name)
    if callback_data.allow:
        verdict = _("✅ Allowed by {admin}").format(admin=admin)
    else:
        verdict = _("⛔ Denied by {admin}").format(admin=admin)
    row = await users.get(user_id)
    who = user_label(user_id, row.first_name if row else None, row.username if row else None)
    # Rendered afresh rather than from message.html_text: the notice is ours to rebuild.
    text = _("🙋 A new user asks for access: {user}").format(user=who) + "\n\n" + verdict
    await edit_or_keep(message, text)


async def list_pending(message: Message, users: UserRepo, settings: HandlerSettings) -> None:
    """The requests nobody decided on yet, oldest first, each with its buttons."""
    waiting = (await users.counts()).waiting
    if waiting == 0:
        await message.answer(_("No access requests are waiting."))
        return
    entries = await users.waiting(PENDING_SHOWN)
    lines = [
        ngettext(
            "🙋 {n} access request is waiting:", "🙋 {n} access requests are waiting:", waiting
        ).format(n=waiting),
        *(f"• {user_label(e.id, e.first_name, e.username)}" for e in entries),
    ]
    if waiting > len(entries):
        more = waiting - len(entries)
        lines.append(ngettext("… and {n} more", "… and {n} more", more).format(n=more))
        lines.append(_("Decide on these first, or use /allow ID and /deny ID."))
    if not settings.access.allowlist:
        lines.append(_("ACCESS_MODE is open, so this only takes effect in allowlist mode."))
    rows = [list(pending_buttons(e.id, e.first_name)) for e in entries]
    await message.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


async def pending_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: PendingCb,
    message: Message,
    users: UserRepo,
    notices: Notices,
    bulk_runner: BulkRunner,
    access_policy: AccessPolicy,
) -> None:
    """A ✅ / ⛔ under a list of requests: decides for one user and takes away only that
    user's buttons, so the rest of the list can still be acted on."""
    user_id = callback_data.user_id
    if callback_data.allow:
        await decide(user_id, Access.ALLOWED, users, notices, bulk_runner, access_policy)
        callback_answer.text = _("✅ User {id} may use the bot.").format(id=user_id)
    else:
        await decide(user_id, Access.DENIED, users, notices, bulk_runner, access_policy)
        callback_answer.text = _("⛔ User {id} may not use the bot.").format(id=user_id)
    markup = message.reply_markup
    if markup is None:
        return
    rows = [
        row
        for row in markup.inline_keyboard
        if not any(_pending_user(button.callback_data) == user_id for button in row)
    ]
    if rows == markup.inline_keyboard:
        return  # a second tap: that user's buttons are gone already
    try:
        await message.edit_reply_markup(
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
        )
    except TelegramBadRequest as exc:
        # Two admins tapping at once: one edit finds the buttons changed already.
        logger.debug("pending list not edited: %s", exc.message)


def _pending_user(data: str | None) -> int | None:
    try:
        return PendingCb.unpack(data).user_id if data else None
    except (TypeError, ValueError):
        return None
