"""Admin commands (/admin, /users, /broadcast, /allow, /deny, /pending) and leaving foreign groups.

This router sits in front of the private-chat-only routers: admins work in a private chat
and in the admin group (ADMIN_CHAT_ID). Anyone else asking for an admin command gets the
unknown-command answer, so the commands do not advertise themselves.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from typing import Final

from aiogram import Bot, F, Router, html
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import (
    IS_MEMBER,
    ChatMemberUpdatedFilter,
    Command,
    CommandObject,
    StateFilter,
)
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    ChatMemberUpdated,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.access import (
    AccessCb,
    AdminPlace,
    IsAdmin,
    PendingCb,
    pending_buttons,
    user_label,
)
from handlers.callbacks import Id, Page
from handlers.config import HandlerSettings
from handlers.filters import Accessible
from handlers.utils import edit_or_keep
from services.access import AccessPolicy
from services.broadcast import Deliver, run_broadcast
from services.bulk import PAUSE_ACCESS, BulkRunner
from services.events import AccessDecided, Notices, Person, Tally
from services.money import Money
from services.pricing import sum_costs
from services.user_input import InvalidUserId, parse_user_id
from storage import OutboxRepo
from storage.users import Access, UserListEntry, UserRepo

logger = logging.getLogger(__name__)

ADMIN_COMMANDS: Final = ("admin", "users", "broadcast", "allow", "deny", "pending")
PAGE_SIZE: Final = 20
# Names are cut so that a page of 20 lines stays far below Telegram's 4096 characters.
NAME_LIMIT: Final = 32
# Access requests /pending shows, each with its buttons.
PENDING_SHOWN: Final = 10


class BroadcastForm(StatesGroup):
    text = State()
    confirm = State()


class UsersCb(CallbackData, prefix="usr"):
    page: Page


class BroadcastCb(CallbackData, prefix="bc"):
    """`draft` ties the tap to one preview: an older preview cannot send a newer text."""

    action: str  # "send" or "cancel"
    draft: Id


# --- /admin -------------------------------------------------------------------------------


def period_starts(now: datetime) -> tuple[str, str]:
    """Start of today and of this month (UTC), in the format of the `*_at` columns."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    return today.isoformat(timespec="seconds"), month.isoformat(timespec="seconds")


def total_cost(costs: list[str]) -> str:
    """The verbatim costs summed per currency (services.pricing.sum_costs), "0 so'm" if none."""
    totals = sum_costs(costs)
    return " + ".join(total.format() for total in totals) if totals else Money.zero().format()


async def summary(
    message: Message, users: UserRepo, outbox: OutboxRepo, settings: HandlerSettings
) -> None:
    counts = await users.counts()
    today, month = period_starts(datetime.now(UTC))
    lines = [
        _("<b>📊 Bot summary</b>"),
        _("Users: {total}, of them blocked the bot: {blocked}").format(
            total=counts.total, blocked=counts.blocked
        ),
        _("Valid devsms tokens: {n}").format(n=counts.valid_tokens),
    ]
    if settings.access.allowlist:
        lines.append(
            _("Access: allowed {allowed}, waiting {waiting}, denied {denied}").format(
                allowed=counts.allowed, waiting=counts.waiting, denied=counts.denied
            )
        )
    lines.append("")
    lines.append(_("SMS sent through the bot (days in UTC):"))
    for label, since in ((_("today"), today), (_("this month"), month)):
        sent, parts = await outbox.totals(since)
        cost = total_cost(await outbox.costs_since(since))
        lines.append(
            _("{period}: {sent} SMS, {parts} parts, cost {cost}").format(
                period=label, sent=sent, parts=parts, cost=cost
            )
        )
    await message.answer("\n".join(lines))


# --- /users -------------------------------------------------------------------------------


def user_line(entry: UserListEntry, show_access: bool) -> str:
    name = entry.first_name or "—"
    if len(name) > NAME_LIMIT:
        name = name[: NAME_LIMIT - 1] + "…"
    parts = [f"<code>{entry.id}</code> {html.quote(name)}"]
    if entry.username:
        parts[0] += f" @{html.quote(entry.username)}"
    parts.append(entry.language or "—")
    if entry.token_state == "valid":
        parts.append(_("token valid"))
    elif entry.token_state is not None:
        parts.append(_("token invalid"))
    else:
        parts.append(_("no token"))
    parts.append(_("active") if entry.is_active else _("blocked the bot"))
    if show_access:
        parts.append(
            {
                Access.ALLOWED: _("allowed"),
                Access.DENIED: _("denied"),
                Access.PENDING: _("not approved"),
            }[entry.access]
        )
    return " · ".join(parts)


def users_keyboard(page: int, has_next: bool) -> InlineKeyboardMarkup | None:
    builder = InlineKeyboardBuilder()
    if page > 0:
        builder.button(text="◀", callback_data=UsersCb(page=page - 1))
    if has_next:
        builder.button(text="▶", callback_data=UsersCb(page=page + 1))
    return builder.as_markup() if page > 0 or has_next else None


async def users_page(
    page: int, users: UserRepo, settings: HandlerSettings
) -> tuple[str, InlineKeyboardMarkup | None]:
    total = (await users.counts()).total
    if total == 0:
        return _("Nobody has written to the bot yet."), None
    # An old button may point past the end after users deleted themselves.
    page = max(0, min(page, (total - 1) // PAGE_SIZE))
    entries = await users.list_page(page * PAGE_SIZE, PAGE_SIZE)
    first = page * PAGE_SIZE + 1
    header = _("<b>Users</b> {first}–{last} of {total}").format(
        first=first, last=first + len(entries) - 1, total=total
    )
    show_access = settings.access.allowlist
    lines = [user_line(entry, show_access) for entry in entries]
    has_next = first - 1 + len(entries) < total
    return "\n".join([header, "", *lines]), users_keyboard(page, has_next)


async def list_users(message: Message, users: UserRepo, settings: HandlerSettings) -> None:
    text, keyboard = await users_page(0, users, settings)
    await message.answer(text, reply_markup=keyboard)


async def turn_users_page(
    query: CallbackQuery,
    callback_data: UsersCb,
    message: Message,
    users: UserRepo,
    settings: HandlerSettings,
) -> None:
    text, keyboard = await users_page(callback_data.page, users, settings)
    await edit_or_keep(message, text, keyboard)
    await query.answer()


# --- /allow, /deny, /pending and the Approve / Deny buttons -------------------------------


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
    await query.answer()
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
        await query.answer(_("✅ User {id} may use the bot.").format(id=user_id))
    else:
        await decide(user_id, Access.DENIED, users, notices, bulk_runner, access_policy)
        await query.answer(_("⛔ User {id} may not use the bot.").format(id=user_id))
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


# --- /broadcast ---------------------------------------------------------------------------


async def recipients(users: UserRepo, settings: HandlerSettings) -> list[int]:
    """Active users with a valid token; in allowlist mode only the approved ones (and admins)."""
    targets = await users.broadcast_targets()
    return [user_id for user_id, access in targets if settings.access.admits(user_id, access)]


def broadcast_keyboard(draft: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("📣 Send"), callback_data=BroadcastCb(action="send", draft=draft))
    builder.button(text=_("✖️ Cancel"), callback_data=BroadcastCb(action="cancel", draft=draft))
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
        _("☝️ This will go to {n} users. Send it?").format(n=count),
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
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: set[int] = set()

    async def on_button(
        self,
        query: CallbackQuery,
        callback_data: BroadcastCb,
        message: Message,
        state: FSMContext,
        users: UserRepo,
        notifier: Deliver,
        notices: Notices,
        i18n: I18n,
        settings: HandlerSettings,
    ) -> None:
        data = await state.get_data()
        current = await state.get_state() == BroadcastForm.confirm.state
        draft = callback_data.draft
        if not current or data.get("broadcast_draft") != draft or draft in self._started:
            await query.answer(_("This button is no longer active."))
            return
        await state.clear()
        if callback_data.action != "send":
            await query.answer()
            await edit_or_keep(message, _("Broadcast cancelled."))
            return
        # Marked before the first await that could let a second tap in.
        self._started.add(draft)
        text = str(data["broadcast_text"])
        targets = await recipients(users, settings)
        await query.answer(_("Broadcast started."))
        await edit_or_keep(message, broadcast_progress_text(Tally(), len(targets)))
        logger.info("user %s started a broadcast to %s users", query.from_user.id, len(targets))
        task = asyncio.create_task(
            run_broadcast(
                notifier,
                notices,
                text,
                targets,
                report=(message.chat.id, message.message_id),
                language=i18n.current_locale,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancels running broadcasts (dispatcher shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --- Everyone else, and foreign groups ----------------------------------------------------


async def not_for_you(message: Message) -> None:
    # Exactly the unknown-command answer: admin commands do not reveal that they exist.
    await message.answer(_("I do not know this command. /help lists what I can do."))


async def button_not_for_you(query: CallbackQuery) -> None:
    await query.answer(_("Only administrators can use this button."), show_alert=True)


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
    broadcasts = Broadcasts()
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
        broadcasts.on_button, BroadcastCb.filter(), Accessible(), IsAdmin()
    )
    router.callback_query.register(access_button, AccessCb.filter(), Accessible(), IsAdmin())
    router.callback_query.register(pending_button, PendingCb.filter(), Accessible(), IsAdmin())
    for admin_buttons in (UsersCb, BroadcastCb, AccessCb, PendingCb):
        router.callback_query.register(button_not_for_you, admin_buttons.filter())

    router.my_chat_member.register(
        bot_added, F.chat.type != ChatType.PRIVATE, ChatMemberUpdatedFilter(IS_MEMBER)
    )
    return router
