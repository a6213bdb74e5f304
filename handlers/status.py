"""/status <sms_id | request_id> and the SMS buttons (history details, sent messages):
the whole SMS with its delivery status and a Refresh button that edits in place."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiogram import F, Router, html
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    CallbackQuery,
    InaccessibleMessage,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import SmsCb, fits_id
from handlers.filters import Accessible, MenuButton
from handlers.keyboards import BTN_STATUS
from handlers.sms_render import clip, one_line, sms_details, status_label
from handlers.utils import AnswerCallbacks, action_if_slow, edit_or_keep
from services.accounts import Accounts
from services.devsms import DevsmsNotFound, SmsRecord
from services.history_pages import HistoryCursor
from services.money import parse_money
from services.reconcile import reconcile_unknown
from storage import OutboxRepo
from storage.outbox import OutboxRow, OutboxState

logger = logging.getLogger(__name__)

# devsms ids are positive integers; 18 digits keep them inside SQLite's and the gateway's int64.
_SMS_ID: Final = re.compile(r"[0-9]{1,18}")
_EXAMPLE_SMS_ID: Final = "1234"
_EXAMPLE_REQUEST_ID: Final = "0f8fad5b-d9cb-469f-a165-70867728950e"
# How much of the gateway's history an unsettled send is looked for in.
RECONCILE_DEPTH: Final = 50


@dataclass(frozen=True, slots=True)
class SmsRef:
    """What the user asked about: exactly one of the two is set."""

    sms_id: int | None = None
    request_id: str | None = None


def parse_sms_ref(text: str) -> SmsRef | None:
    """A positive integer is an sms_id, a UUID a request_id; anything else None."""
    text = text.strip()
    if _SMS_ID.fullmatch(text):
        sms_id = int(text)
        return SmsRef(sms_id=sms_id) if sms_id > 0 else None
    if len(text) > 64:  # no spelling of a UUID is longer (urn:uuid:{...})
        return None
    try:
        return SmsRef(request_id=str(uuid.UUID(text)))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SmsView:
    """Messages to send, the last being the card, and the card's keyboard."""

    messages: list[str]
    keyboard: InlineKeyboardMarkup | None

    @property
    def card(self) -> str:
        return self.messages[-1]


def usage_text() -> str:
    return _(
        "Send /status with the SMS id or the request id, for example:\n"
        "{example_id}\n{example_uuid}\n"
        "Or open /history and tap the number of an SMS."
    ).format(
        example_id=f"<code>/status {_EXAMPLE_SMS_ID}</code>",
        example_uuid=f"<code>/status {_EXAMPLE_REQUEST_ID}</code>",
    )


def not_found_text(ref: str) -> str:
    return _("SMS {id} was not found for your account.").format(
        id=f"<code>{html.quote(clip(one_line(ref), 64))}</code>"
    )


def _refresh_keyboard(sms_id: int | None, outbox_id: int | None) -> InlineKeyboardMarkup | None:
    if sms_id is not None and fits_id(sms_id):
        data = SmsCb(sms_id=sms_id, refresh=True)
    elif outbox_id is not None:
        data = SmsCb(outbox_id=outbox_id, refresh=True)
    else:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🔄 Refresh"), callback_data=data)
    return builder.as_markup()


def record_view(record: SmsRecord, outbox_id: int | None = None) -> SmsView:
    return SmsView(
        messages=sms_details(record),
        keyboard=_refresh_keyboard(record.sms_id, outbox_id),
    )


async def lookup(accounts: Accounts, outbox: OutboxRepo, user_id: int, ref: SmsRef) -> SmsRecord:
    """The SMS from the gateway; settles an unknown outbox row it proves sent.

    Raises DevsmsNotFound (and the other gateway errors) as the client does."""
    record = await accounts.status(user_id, sms_id=ref.sms_id, request_id=ref.request_id)
    await reconcile_unknown(outbox, user_id, [record])
    return record


async def outbox_view(
    accounts: Accounts, outbox: OutboxRepo, user_id: int, row: OutboxRow
) -> SmsView:
    """A send the bot recorded: the gateway's record when it has one, else what we know."""
    if row.state is OutboxState.UNKNOWN:
        history = await HistoryCursor(accounts, user_id, limit=RECONCILE_DEPTH).read()
        await reconcile_unknown(outbox, user_id, history.items)
        row = await outbox.get(row.id, user_id=user_id) or row
        match = next(
            (r for r in history.items if row.sms_id is not None and r.sms_id == row.sms_id), None
        )
        if match is not None:
            return record_view(match, row.id)
    if row.sms_id is not None or row.request_id is not None:
        ref = SmsRef(row.sms_id, None if row.sms_id is not None else row.request_id)
        return record_view(await lookup(accounts, outbox, user_id, ref), row.id)
    record = SmsRecord(
        phone=row.phone,
        message=row.message,
        sender=row.sender,
        status=row.status,
        parts_count=row.parts_count,
        cost=parse_money(row.total_cost),
        created_at=_stored_time(row.created_at),
    )
    status = _outbox_status(row)
    open_row = row.state in (OutboxState.PENDING, OutboxState.UNKNOWN)
    return SmsView(
        messages=sms_details(record, status=status),
        keyboard=_refresh_keyboard(None, row.id if open_row else None),
    )


def _outbox_status(row: OutboxRow) -> str:
    if row.state is OutboxState.UNKNOWN:
        return _("⏳ not confirmed: devsms.uz does not show this SMS yet")
    if row.state is OutboxState.PENDING:
        return _("⏳ being sent")
    if row.state is OutboxState.FAILED:
        return _("❌ not sent: devsms.uz refused it")
    if row.state is OutboxState.NOT_SENT:
        # Concluded from the history (no trace a day later), as the tracker's notice says.
        return _("❔ probably not sent: devsms.uz shows no trace of it")
    return status_label(row.status)


def _stored_time(value: str) -> datetime | str:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


async def _send_view(message: InaccessibleMessage | Message, view: SmsView) -> None:
    for text in view.messages[:-1]:
        await message.answer(text)
    await message.answer(view.messages[-1], reply_markup=view.keyboard)


async def status_command(
    message: Message, command: CommandObject, accounts: Accounts, outbox: OutboxRepo
) -> None:
    assert message.from_user is not None
    if not command.args or not command.args.strip():
        await message.answer(usage_text())
        return
    ref = parse_sms_ref(command.args)
    if ref is None:
        await message.answer(
            _("«{text}» is neither an SMS id nor a request id.").format(
                text=html.quote(clip(one_line(command.args), 40))
            )
            + "\n\n"
            + usage_text()
        )
        return
    assert message.bot is not None
    try:
        async with action_if_slow(message.bot, message.chat.id):
            record = await lookup(accounts, outbox, message.from_user.id, ref)
    except DevsmsNotFound:
        await message.answer(not_found_text(str(ref.sms_id or ref.request_id)))
        return
    await _send_view(message, record_view(record))


async def status_menu(message: Message) -> None:
    await message.answer(usage_text())


async def sms_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: SmsCb,
    message: InaccessibleMessage | Message,
    accounts: Accounts,
    outbox: OutboxRepo,
) -> None:
    user_id = query.from_user.id
    try:
        if callback_data.sms_id > 0:
            record = await lookup(accounts, outbox, user_id, SmsRef(sms_id=callback_data.sms_id))
            view = record_view(record)
        else:
            # Callback data can be forged: the row must be this user's.
            row = await outbox.get(callback_data.outbox_id, user_id=user_id)
            if row is None:
                callback_answer.text = _("This button is no longer active.")
                return
            view = await outbox_view(accounts, outbox, user_id, row)
    except DevsmsNotFound:
        callback_answer.text = _("This SMS was not found for your account.")
        callback_answer.show_alert = True
        return
    if callback_data.refresh and isinstance(message, Message):
        changed = await edit_or_keep(message, view.card, view.keyboard)
        callback_answer.text = _("Updated.") if changed else _("Already up to date.")
        return
    await _send_view(message, view)


def create_router() -> Router:
    router = Router(name="status")
    # Every button is answered once, after its handler; a handler sets the text, if any.
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(status_command, Command("status"))
    router.message.register(status_menu, MenuButton(BTN_STATUS))
    # Ids of 0 (or below) come only from a forged button: the fallback answers those.
    router.callback_query.register(
        sms_button,
        SmsCb.filter((F.sms_id > 0) | (F.outbox_id > 0)),
        Accessible(),
    )
    return router
