"""Scheduled sends and quiet hours.

- `later`: «🕒 Send later» under a preview or a bulk dry run, and "Start at 09:00" asked at a
  Start inside quiet hours: the time, then the stored send;
- `listing`: /scheduled, ▶️ Send now and ✖️ Cancel per item;
- `prefs`: the time zone and the quiet hours in /settings;
- `render`: the texts and buttons, also of the scheduler's notices (bot/notices/).

services.scheduler.Scheduler starts what is due; bot/factory.py runs it.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command

from handlers.callbacks import (
    ID_MAX,
    BulkCb,
    ScheduleAction,
    ScheduleCb,
    SendAction,
    SendCb,
    SettingsCb,
    ZoneCb,
)
from handlers.filters import Accessible, AnyMenuButton
from handlers.schedule import later, listing, prefs
from handlers.states import ScheduleForm, SettingsForm


def create_router() -> Router:
    router = Router(name="schedule")
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(listing.show_scheduled, Command("scheduled"))
    router.message.register(later.when_typed, ScheduleForm.when, *free_text)
    router.message.register(later.when_not_text, ScheduleForm.when, ~F.text)
    router.message.register(prefs.zone_typed, SettingsForm.zone, *free_text)
    router.message.register(prefs.quiet_typed, SettingsForm.quiet, *free_text)
    router.message.register(prefs.not_text, SettingsForm.zone, ~F.text)
    router.message.register(prefs.not_text, SettingsForm.quiet, ~F.text)
    on_message = Accessible()
    callbacks = router.callback_query
    callbacks.register(
        later.later_from_preview, SendCb.filter(F.action == SendAction.LATER), on_message
    )
    callbacks.register(later.later_from_review, BulkCb.filter(F.action == "later"), on_message)
    callbacks.register(later.at_quiet_end, BulkCb.filter(F.action == "atend"), on_message)
    callbacks.register(
        later.quick_picked, ScheduleCb.filter(F.action == ScheduleAction.PICK), on_message
    )
    callbacks.register(
        later.abort_button, ScheduleCb.filter(F.action == ScheduleAction.ABORT), on_message
    )
    callbacks.register(
        listing.list_button, ScheduleCb.filter(F.action == ScheduleAction.LIST), on_message
    )
    item_fits = (F.item > 0) & (F.item <= ID_MAX)
    callbacks.register(
        listing.send_now_button,
        ScheduleCb.filter((F.action == ScheduleAction.NOW) & item_fits),
        on_message,
    )
    callbacks.register(
        listing.cancel_button,
        ScheduleCb.filter((F.action == ScheduleAction.CANCEL) & item_fits),
        on_message,
    )
    callbacks.register(prefs.zone_button, SettingsCb.filter(F.action == "zone"), on_message)
    callbacks.register(prefs.quiet_button, SettingsCb.filter(F.action == "quiet"), on_message)
    callbacks.register(
        prefs.quiet_preset,
        SettingsCb.filter(F.action.in_({"quiet_off", "quiet_std"})),
        on_message,
    )
    callbacks.register(prefs.zone_picked, ZoneCb.filter(), on_message)
    return router
