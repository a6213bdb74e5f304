"""Texts and buttons of scheduled sends and quiet hours; pure functions, no I/O.

Times are shown in the user's zone (services.schedule_time); bot/notices/ renders the
scheduler's events with these too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import ScheduleAction, ScheduleCb, ZoneCb
from handlers.clock import hour_text, quiet_label, when_text
from handlers.render import money
from handlers.send_texts import quote_cut
from handlers.sms_render import phone_label
from services.events import Missed, NotStarted
from services.money import Money
from services.schedule_time import (
    ZONE_CHOICES,
    Quick,
    QuietHours,
    WhenProblem,
    local_text,
    quick_time,
    zone_of,
)
from storage import ScheduledRow

TEXT_SHOWN: Final = 40
# `draft` of the buttons in the /scheduled list: a tap redraws the list.
FROM_LIST: Final = 1
EXAMPLES: Final = "<code>2026-12-24 09:30</code>, <code>24.12 09:30</code>, <code>09:30</code>"


def item_label(item: ScheduledRow) -> str:
    """HTML: what the item sends."""
    if item.kind == "bulk":
        return _("bulk job #{id}").format(id=item.job_id)
    return _("SMS to {phone}: «{text}»").format(
        phone=phone_label(item.phone), text=quote_cut(item.message or "", TEXT_SHOWN)
    )


# --- choosing the time ---------------------------------------------------------------------


def ask_when_text(zone: str, now: dt.datetime) -> str:
    return "\n".join(
        [
            _("🕒 <b>When should it go out?</b>"),
            _("Pick a time below, or send a date and time, e.g. {examples}.").format(
                examples=EXAMPLES
            ),
            _("Your time zone: {zone} (now {now}); change it in /settings.").format(
                zone=zone, now=hour_text(now, zone)
            ),
            _("/cancel stops; nothing is scheduled."),
        ]
    )


def quick_label(choice: Quick, now: dt.datetime, zone: str) -> str:
    moment = quick_time(choice, now, zone_of(zone))
    shown = hour_text(moment, zone) if moment else ""
    labels = {
        Quick.HOUR: _("In 1 hour ({time})"),
        Quick.THREE_HOURS: _("In 3 hours ({time})"),
        Quick.TODAY_18: _("Today at 18:00"),
        Quick.TOMORROW_9: _("Tomorrow at 09:00"),
        Quick.TOMORROW_14: _("Tomorrow at 14:00"),
    }
    return labels[choice].format(time=shown)


def when_keyboard(
    draft: int, choices: Sequence[Quick], now: dt.datetime, zone: str
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for choice in choices:
        builder.button(
            text=quick_label(choice, now, zone),
            callback_data=ScheduleCb(action=ScheduleAction.PICK, draft=draft, choice=choice),
        )
    builder.button(
        text=_("✖️ Cancel"), callback_data=ScheduleCb(action=ScheduleAction.ABORT, draft=draft)
    )
    builder.adjust(1)
    return builder.as_markup()


def when_problem_text(problem: WhenProblem) -> str:
    reason = {
        WhenProblem.FORMAT: _("I could not read this as a date and time."),
        WhenProblem.NO_SUCH_DATE: _("There is no such date or time."),
        WhenProblem.GAP: _("This time does not exist in your time zone (the clocks skip it)."),
        WhenProblem.PAST: _("This time has already passed."),
        WhenProblem.TOO_FAR: _("A send can be scheduled at most 60 days ahead."),
    }[problem]
    return "\n".join(
        [
            reason,
            _("Send a date and time like {examples}, or pick one of the buttons.").format(
                examples=EXAMPLES
            ),
            _("/cancel stops; nothing is scheduled."),
        ]
    )


def scheduled_text(
    item: ScheduledRow, zone: str, quiet: QuietHours | None, starts: dt.datetime
) -> str:
    """The answer once an item is stored; `starts` is when it will go out (after quiet hours
    when it falls inside them)."""
    lines = [
        _("🕒 <b>Scheduled for {when}</b>").format(when=when_text(item.due_at, zone)),
        item_label(item),
    ]
    if starts > dt.datetime.fromisoformat(item.due_at):
        lines.append(
            _("That is inside your quiet hours ({quiet}): it will go out at {time}.").format(
                quiet=quiet_label(quiet), time=when_text(starts, zone)
            )
        )
    lines.append(_("The balance is checked again before it goes out. /scheduled lists it."))
    return "\n".join(lines)


def item_keyboard(item_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("▶️ Send now"), callback_data=ScheduleCb(action=ScheduleAction.NOW, item=item_id)
    )
    builder.button(
        text=_("✖️ Cancel"), callback_data=ScheduleCb(action=ScheduleAction.CANCEL, item=item_id)
    )
    builder.button(
        text=_("🕒 All scheduled"), callback_data=ScheduleCb(action=ScheduleAction.LIST)
    )
    builder.adjust(2, 1)
    return builder.as_markup()


# --- /scheduled ----------------------------------------------------------------------------


def list_text(items: Sequence[ScheduledRow], zone: str) -> str:
    if not items:
        return _(
            "Nothing is scheduled. «🕒 Send later» under a send's preview or a bulk dry run "
            "schedules one."
        )
    lines = [_("🕒 <b>Scheduled sends</b> (time zone {zone})").format(zone=zone), ""]
    for item in items:
        when = local_text(dt.datetime.fromisoformat(item.due_at), zone_of(zone))
        line = f"<b>#{item.id}</b> · {when} · {item_label(item)}"
        if item.state == "missed":
            line += "\n" + _("   ⚠️ waits for your decision")
        lines.append(line)
    lines.append("")
    lines.append(_("Buttons: ▶️ send now, ✖️ cancel, by number."))
    return "\n".join(lines)


def list_keyboard(items: Sequence[ScheduledRow]) -> InlineKeyboardMarkup | None:
    if not items:
        return None
    builder = InlineKeyboardBuilder()
    for item in items:
        builder.button(
            text=f"▶️ #{item.id}",
            callback_data=ScheduleCb(action=ScheduleAction.NOW, item=item.id, draft=FROM_LIST),
        )
        builder.button(
            text=f"✖️ #{item.id}",
            callback_data=ScheduleCb(action=ScheduleAction.CANCEL, item=item.id, draft=FROM_LIST),
        )
    builder.adjust(2)
    return builder.as_markup()


# --- what the scheduler tells ---------------------------------------------------------------


def missed_text(item: ScheduledRow, zone: str, reason: Missed, other_job: int | None) -> str:
    if reason is Missed.BUSY:
        why = _(
            "Bulk job #{job} is still in progress, so this one did not start. Send it now "
            "once that one is over, or cancel it."
        ).format(job=other_job)
    else:
        why = _(
            "It could not go out at its time (the bot was not running, or devsms.uz did not "
            "answer), and it is now too late to send it without asking you. Send it now, or "
            "cancel it."
        )
    return "\n".join(
        [
            _("⏰ <b>A scheduled send for {when} did not go out.</b>").format(
                when=when_text(item.due_at, zone)
            ),
            item_label(item),
            why,
        ]
    )


def not_started_text(
    item: ScheduledRow, zone: str, reason: NotStarted, missing: Money | None
) -> str:
    why = {
        NotStarted.BALANCE: _("The balance does not cover it now"),
        NotStarted.TOKEN: _("devsms.uz does not accept your token (connect one with /token)"),
        NotStarted.ACCESS: _("An administrator withdrew your access to the bot"),
        NotStarted.JOB: _("Its bulk job is no longer waiting to start (see /jobs)"),
        NotStarted.REFUSED: _("It was refused before sending"),
        NotStarted.STOPPED: _("The number is on your stop list now (see /stoplist)"),
    }[reason]
    if reason is NotStarted.BALANCE and missing is not None:
        why += " " + _("({missing} more is needed)").format(missing=money(missing))
    return "\n".join(
        [
            _("⏰ <b>The send scheduled for {when} was not started.</b>").format(
                when=when_text(item.due_at, zone)
            ),
            item_label(item),
            why + ". " + _("Nothing was sent."),
        ]
    )


def job_started_text(item: ScheduledRow, zone: str) -> str:
    return "\n".join(
        [
            _("⏰ <b>Scheduled bulk job #{id} has started</b> (it was set for {when}).").format(
                id=item.job_id, when=when_text(item.due_at, zone)
            ),
            _("Its summary and result file come when it is done; open it to follow it."),
        ]
    )


def sms_done_header(item: ScheduledRow, zone: str) -> str:
    return _("⏰ Scheduled for {when}:").format(when=when_text(item.due_at, zone))


# --- time zone in /settings ---------------------------------------------------------------


def zone_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, name in enumerate(ZONE_CHOICES):
        builder.button(text=name, callback_data=ZoneCb(index=index))
    builder.adjust(2)
    return builder.as_markup()
