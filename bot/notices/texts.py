"""The texts and buttons of the notices the bot sends on its own; pure functions, no I/O.

Each renders in the locale the caller set (`I18n.use_locale`): the recipient's for a user's
notice, the default language for the admins'. Buttons carry the real CallbackData classes, so
the handlers that answer them are the ones listening.
"""

from __future__ import annotations

from typing import Final

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.notices.digest import AdminNotice, NoticeKind
from handlers.access import access_keyboard, pending_buttons, user_label
from handlers.admin import broadcast_progress_text, tally_text
from handlers.callbacks import BalanceCb, SmsCb, TokenCb, fits_id
from handlers.keyboards import BTN_BALANCE, open_job_keyboard, sent_keyboard
from handlers.plural import ngettext
from handlers.render import count, duration_text, money
from handlers.schedule import render as schedule_render
from handlers.send_texts import result_text
from handlers.sms_render import phone_label, status_parts
from services.events import (
    AccessDecided,
    AccessRequested,
    BroadcastFinished,
    BroadcastProgress,
    BulkDeliveryResults,
    DeliveryResult,
    GatewayDown,
    GatewayUp,
    LowBalance,
    Person,
    ScheduledJobStarted,
    ScheduledMissed,
    ScheduledNotStarted,
    ScheduledSmsDone,
    TokenConnected,
    TokenRejected,
    UnknownSendMissing,
)
from services.i18n import N_
from services.phones import normalize_phone
from services.sending import Outcome

Message = tuple[str, InlineKeyboardMarkup | None]
"""HTML text and its buttons."""

_BULK_RESULTS: Final = N_(
    "📬 <b>Bulk job #{id}: delivery results</b>\n"
    "Delivered: {delivered}\nNot delivered: {failed}\nStill waiting: {waiting}"
)


def person_label(person: Person) -> str:
    return user_label(person.user_id, person.first_name, person.username)


# --- to the user ---------------------------------------------------------------------------


def low_balance(event: LowBalance) -> Message:
    text = "\n".join(
        [
            _("⚠️ <b>Low balance: {balance}</b>").format(balance=money(event.balance)),
            *_balance_details(event),
            "",
            _("Top up your devsms account to keep sending SMS."),
        ]
    )
    builder = InlineKeyboardBuilder()
    builder.button(text=_(BTN_BALANCE), callback_data=BalanceCb())
    return text, builder.as_markup()


def token_rejected(event: TokenRejected) -> Message:
    text = _(
        "🔑 devsms no longer accepts your token, so balance alerts and delivery "
        "reports have stopped. Connect a new token to continue."
    )
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🔑 Connect a new token"), callback_data=TokenCb())
    return text, builder.as_markup()


def delivery_result(event: DeliveryResult) -> Message:
    symbol, label = status_parts(event.status)
    text = _("{symbol} SMS to {phone}: {status}").format(
        symbol=symbol, phone=phone_label(event.phone), status=label
    )
    if event.sms_id is None:
        return text, None
    text += "\n" + _("SMS id: {sms_id}").format(sms_id=event.sms_id)
    if not fits_id(event.sms_id):
        return text, None  # no button can carry it; the id is in the text
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Details"), callback_data=SmsCb(sms_id=event.sms_id))
    return text, builder.as_markup()


def unknown_send_missing(event: UnknownSendMissing) -> Message:
    text = _(
        "❔ Your SMS to {phone}, whose sending was unclear: a day later, devsms shows "
        "no trace of it, so it was probably not sent. Check /history or ask the "
        "recipient before sending it again."
    ).format(phone=phone_label(event.phone))
    return text, None


def bulk_delivery_results(event: BulkDeliveryResults) -> Message:
    text = _(_BULK_RESULTS).format(
        id=event.job_id,
        delivered=count(event.delivered),
        failed=count(event.failed),
        waiting=count(event.waiting),
    )
    return text, None


def access_decided(event: AccessDecided) -> Message:
    if event.allowed:
        return _("✅ An administrator gave you access. Send /start to begin."), None
    return _("Sorry, the administrators did not allow you to use this bot."), None


def broadcast_progress(event: BroadcastProgress) -> str:
    return broadcast_progress_text(event.tally, event.total)


def broadcast_finished(event: BroadcastFinished) -> str:
    if event.stopped:
        head = _("📣 Broadcast stopped by an error after {done} of {total}").format(
            done=event.tally.done, total=event.total
        )
    else:
        head = _("📣 Broadcast finished. Recipients: {total}").format(total=event.total)
    return head + "\n" + tally_text(event.tally)


# --- to the admins -------------------------------------------------------------------------


def low_balance_note(event: LowBalance) -> AdminNotice:
    label = person_label(event.person)
    summary = _("⚠️ Low balance of {user}: {balance}").format(
        user=label, balance=money(event.balance)
    )
    text = "\n".join([summary, *_balance_details(event)])
    return AdminNotice(NoticeKind.LOW_BALANCE, text=text, line=f"{label}: {money(event.balance)}")


def token_rejected_note(event: TokenRejected) -> AdminNotice:
    label = person_label(event.person)
    text = _("🔑 devsms rejected the token of {user}.").format(user=label)
    return AdminNotice(NoticeKind.TOKEN_REJECTED, text=text, line=label)


def access_requested_note(event: AccessRequested) -> AdminNotice:
    person = event.person
    label = person_label(person)
    return AdminNotice(
        NoticeKind.ACCESS_REQUEST,
        text=_("🙋 A new user asks for access: {user}").format(user=label),
        line=label,
        reply_markup=access_keyboard(person.user_id),
        buttons=pending_buttons(person.user_id, person.first_name),
    )


def token_connected_note(event: TokenConnected) -> AdminNotice:
    label = person_label(event.person)
    text = _("🔑 {user} connected a devsms token.").format(user=label)
    return AdminNotice(NoticeKind.TOKEN_CONNECTED, text=text, line=label)


def gateway_down(event: GatewayDown) -> str:
    return ngettext(
        "🚨 The devsms gateway is not answering: {n} request in a row failed. Balance "
        "checks and delivery tracking continue and will catch up.",
        "🚨 The devsms gateway is not answering: {n} requests in a row failed. Balance "
        "checks and delivery tracking continue and will catch up.",
        event.failures,
    ).format(n=event.failures)


def gateway_up(event: GatewayUp) -> str:
    return _("✅ The devsms gateway answers again. It was down for about {duration}.").format(
        duration=duration_text(event.down_for)
    )


def _balance_details(event: LowBalance) -> list[str]:
    lines: list[str] = []
    if event.sms_left is not None:
        lines.append(
            ngettext(
                "Enough for about {n} SMS",
                "Enough for about {n} SMS",
                event.sms_left,
            ).format(n=count(event.sms_left))
        )
    if event.days_left == 0:
        lines.append(_("At the current pace it runs out today."))
    elif event.days_left is not None:
        lines.append(
            ngettext(
                "At the current pace it lasts about {days} more day.",
                "At the current pace it lasts about {days} more days.",
                event.days_left,
            ).format(days=event.days_left)
        )
    lines.append(_("Alert threshold: {threshold}").format(threshold=money(event.threshold)))
    return lines


# --- scheduled sends -----------------------------------------------------------------------


def scheduled_sms_done(event: ScheduledSmsDone) -> Message:
    item, outcome = event.item, event.outcome
    assert item.phone is not None and item.message is not None
    if outcome.outcome is Outcome.NOT_SENT:
        # The request never left: said plainly, not as the gateway's refusal.
        result = _("⚠️ Could not reach devsms.uz: the SMS was <b>not</b> sent.")
    else:
        result = result_text(normalize_phone(item.phone), item.message, outcome)
    text = schedule_render.sms_done_header(item, event.zone) + "\n" + result
    markup = None
    if outcome.outcome in (Outcome.SENT, Outcome.UNKNOWN):
        markup = sent_keyboard(
            outcome.result.sms_id if outcome.result else None, outcome.outbox_id
        )
    return text, markup


def scheduled_job_started(event: ScheduledJobStarted) -> Message:
    assert event.item.job_id is not None
    return (
        schedule_render.job_started_text(event.item, event.zone),
        open_job_keyboard(event.item.job_id),
    )


def scheduled_not_started(event: ScheduledNotStarted) -> Message:
    text = schedule_render.not_started_text(event.item, event.zone, event.reason, event.missing)
    return text, None


def scheduled_missed(event: ScheduledMissed) -> Message:
    text = schedule_render.missed_text(event.item, event.zone, event.reason, event.other_job)
    return text, schedule_render.item_keyboard(event.item.id)
