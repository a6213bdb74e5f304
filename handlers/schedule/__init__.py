"""Scheduled sends and quiet hours.

- `later`: «🕒 Send later» under a preview or a bulk dry run, and "Start at 09:00" asked at a
  Start inside quiet hours: the time, then the stored send;
- `listing`: /scheduled, ▶️ Send now and ✖️ Cancel per item;
- `prefs`: the time zone and the quiet hours in /settings;
- `render`: the texts and buttons, also of the scheduler's notices (bot/notices/).

services.scheduler.Scheduler starts what is due; bot/factory.py runs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackQueryFilter

from handlers.callbacks import (
    ID_MAX,
    BulkAction,
    BulkCb,
    ScheduleAction,
    ScheduleCb,
    SendAction,
    SendCb,
    SettingsAction,
    SettingsCb,
    ZoneCb,
)
from handlers.filters import Accessible, AnyMenuButton
from handlers.schedule import later, listing, prefs
from handlers.states import ScheduleForm, SettingsForm
from handlers.utils import AnswerCallbacks


def create_router() -> Router:
    router = Router(name="schedule")
    # Every button is answered once, after its handler; a handler sets the text, if any.
    router.callback_query.middleware(AnswerCallbacks())
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(listing.show_scheduled, Command("scheduled"))
    router.message.register(later.when_typed, ScheduleForm.when, *free_text)
    router.message.register(later.when_not_text, ScheduleForm.when, ~F.text)
    router.message.register(prefs.zone_typed, SettingsForm.zone, *free_text)
    router.message.register(prefs.quiet_typed, SettingsForm.quiet, *free_text)
    router.message.register(prefs.not_text, SettingsForm.zone, ~F.text)
    router.message.register(prefs.not_text, SettingsForm.quiet, ~F.text)
    item_fits = (F.item > 0) & (F.item <= ID_MAX)
    buttons: tuple[tuple[Callable[..., Awaitable[None]], CallbackQueryFilter], ...] = (
        (later.later_from_preview, SendCb.filter(F.action == SendAction.LATER)),
        (
            # Send later; and Send later under the question about rows abroad.
            later.later_from_review,
            BulkCb.filter(F.action.in_({BulkAction.LATER, BulkAction.LATER_INTL})),
        ),
        (later.at_quiet_end, BulkCb.filter(F.action == BulkAction.AT_END)),
        (later.quick_picked, ScheduleCb.filter(F.action == ScheduleAction.PICK)),
        (later.abort_button, ScheduleCb.filter(F.action == ScheduleAction.ABORT)),
        (listing.list_button, ScheduleCb.filter(F.action == ScheduleAction.LIST)),
        (listing.send_now_button, ScheduleCb.filter((F.action == ScheduleAction.NOW) & item_fits)),
        (
            listing.cancel_button,
            ScheduleCb.filter((F.action == ScheduleAction.CANCEL) & item_fits),
        ),
        (prefs.zone_button, SettingsCb.filter(F.action == SettingsAction.ZONE)),
        (prefs.quiet_button, SettingsCb.filter(F.action == SettingsAction.QUIET)),
        (
            prefs.quiet_preset,
            SettingsCb.filter(
                F.action.in_({SettingsAction.QUIET_OFF, SettingsAction.QUIET_DEFAULT})
            ),
        ),
        (prefs.zone_picked, ZoneCb.filter()),
    )
    for handler, wanted in buttons:
        router.callback_query.register(handler, wanted, Accessible())
    return router
