"""«🕒 Send later» under a send's preview and a bulk dry run: a quick choice or a typed time in
the user's zone, then the send is stored (services.scheduler starts it when it is due).

A single SMS is stored as it was previewed (number, text, sender); a bulk send as a job in
state 'ready' with its rows, which stays so until its time. Nothing is sent here.
"""

from __future__ import annotations

import datetime as dt
import secrets
from contextlib import suppress
from typing import Final

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.abroad import asked_abroad, rates_for
from handlers.bulk.dialog import lost_source, stale
from handlers.bulk.dry_run import nothing_to_send_text
from handlers.bulk.lists import Lists
from handlers.callbacks import BulkAction, BulkCb, ScheduleCb, SendCb
from handlers.clock import quiet_for, quiet_until, user_zone, utc_now
from handlers.config import HandlerSettings
from handlers.plural import ngettext
from handlers.schedule.render import (
    ask_when_text,
    item_keyboard,
    scheduled_text,
    when_keyboard,
    when_problem_text,
)
from handlers.send_preview import live_draft
from handlers.states import BulkForm, ScheduleForm
from services.bulk_plan import SourceCache, make_plan
from services.schedule_time import (
    InvalidWhen,
    Quick,
    parse_when,
    quick_choices,
    quick_time,
    release_at,
    zone_of,
)
from services.scheduler import stamp
from services.upload_worker import UploadWorker
from services.user_input import effective_sender
from storage import ContactRepo, OutboxRepo, ScheduleRepo, StopListRepo
from storage.users import UserRow

# Scheduled sends one user may have waiting at a time.
SCHEDULED_MAX: Final = 20
KIND_SMS: Final = "sms"
KIND_BULK: Final = "bulk"


async def room_left(
    callback_answer: CallbackAnswer, schedule: ScheduleRepo, user_row: UserRow
) -> bool:
    if await schedule.count_open(user_row.id) < SCHEDULED_MAX:
        return True
    callback_answer.show_alert = True
    callback_answer.text = ngettext(
        "{n} send is already scheduled; cancel one in /scheduled first.",
        "{n} sends are already scheduled; cancel one in /scheduled first.",
        SCHEDULED_MAX,
    ).format(n=SCHEDULED_MAX)
    return False


async def later_from_preview(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: SendCb,
    message: Message,
    state: FSMContext,
    schedule: ScheduleRepo,
    user_row: UserRow,
) -> None:
    if await live_draft(callback_answer, callback_data, message, state) is None:
        return
    if await room_left(callback_answer, schedule, user_row):
        await ask_when(message, state, user_row, KIND_SMS)


async def later_from_review(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: BulkCb,
    message: Message,
    bot: Bot,
    state: FSMContext,
    schedule: ScheduleRepo,
    stoplist: StopListRepo,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    contacts: ContactRepo,
    outbox: OutboxRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    data = await state.get_data()
    current = await state.get_state() == BulkForm.review.state
    if not current or data.get("review") != callback_data.draft:
        await stale(callback_answer, message)
        return
    if not await room_left(callback_answer, schedule, user_row):
        return
    if callback_data.action is BulkAction.LATER:
        # Rows abroad are asked about as Start asks (handlers/bulk/abroad.py); the question's
        # own «Send later» (LATER_INTL) comes back here without it.
        lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
        source = await lists.load(data)
        if source is None:
            await lost_source(message, state, lists, data)
            return
        plan = await make_plan(
            source,
            data["template"],
            settings.sms_max_parts,
            stoplist=stoplist,
            user_id=user_row.id,
        )
        rates = await rates_for(outbox, user_row.id, plan)
        if await asked_abroad(message, plan, rates, callback_data.draft, later=True):
            return
    await ask_when(message, state, user_row, KIND_BULK)


async def ask_when(message: Message, state: FSMContext, user_row: UserRow, kind: str) -> None:
    """The draft stays in FSM data; the question replaces the preview's buttons."""
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    pick = secrets.randbelow(1_000_000_000)
    await state.set_state(ScheduleForm.when)
    await state.update_data(later=kind, pick=pick)
    now, zone = utc_now(), user_zone(user_row)
    choices = quick_choices(now, zone_of(zone))
    await message.answer(
        ask_when_text(zone, now), reply_markup=when_keyboard(pick, choices, now, zone)
    )


async def quick_picked(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ScheduleCb,
    message: Message,
    bot: Bot,
    state: FSMContext,
    schedule: ScheduleRepo,
    stoplist: StopListRepo,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    contacts: ContactRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    data = await state.get_data()
    current = await state.get_state() == ScheduleForm.when.state
    if not current or data.get("pick") != callback_data.draft:
        await stale(callback_answer, message)
        return
    try:
        choice = Quick(callback_data.choice)
    except ValueError:
        await stale(callback_answer, message)
        return
    moment = quick_time(choice, utc_now(), zone_of(user_row.timezone))
    if moment is None:
        callback_answer.text = _("This time has already passed; pick another.")
        callback_answer.show_alert = True
        return
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    await schedule_at(message, state, schedule, stoplist, lists, settings, user_row, moment)


async def when_typed(
    message: Message,
    bot: Bot,
    state: FSMContext,
    schedule: ScheduleRepo,
    stoplist: StopListRepo,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    contacts: ContactRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    assert message.text is not None
    try:
        moment = parse_when(message.text, utc_now(), zone_of(user_row.timezone))
    except InvalidWhen as exc:
        await message.answer(when_problem_text(exc.problem))
        return
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    await schedule_at(message, state, schedule, stoplist, lists, settings, user_row, moment)


async def when_not_text(message: Message) -> None:
    await message.answer(
        _("Send the date and time as a message, or pick one of the buttons.")
        + "\n"
        + _("/cancel stops; nothing is scheduled.")
    )


async def abort_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ScheduleCb,
    message: Message,
    state: FSMContext,
    bulk_sources: SourceCache,
    user_row: UserRow,
) -> None:
    data = await state.get_data()
    current = await state.get_state() == ScheduleForm.when.state
    if not current or data.get("pick") != callback_data.draft:
        await stale(callback_answer, message)
        return
    await state.clear()
    bulk_sources.drop(user_row.id)
    await message.edit_text(_("Cancelled. Nothing was scheduled."))


async def at_quiet_end(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: BulkCb,
    message: Message,
    bot: Bot,
    state: FSMContext,
    schedule: ScheduleRepo,
    stoplist: StopListRepo,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    contacts: ContactRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    """ "Start at 09:00" asked at a Start inside quiet hours: scheduled for their end."""
    data = await state.get_data()
    current = await state.get_state() == BulkForm.review.state
    if not current or data.get("review") != callback_data.draft:
        await stale(callback_answer, message)
        return
    end = quiet_until(user_row, settings, utc_now())
    if end is None:
        # Quiet hours ended while the question waited: Start goes ahead normally now.
        callback_answer.text = _("Quiet hours are over: tap Start.")
        callback_answer.show_alert = True
        return
    if not await room_left(callback_answer, schedule, user_row):
        return
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    await state.update_data(later=KIND_BULK)
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    await schedule_at(message, state, schedule, stoplist, lists, settings, user_row, end)


async def schedule_at(
    message: Message,
    state: FSMContext,
    schedule: ScheduleRepo,
    stoplist: StopListRepo,
    lists: Lists,
    settings: HandlerSettings,
    user_row: UserRow,
    moment: dt.datetime,
) -> None:
    """Stores the draft in FSM data to go out at `moment`, and says when it will."""
    data = await state.get_data()
    if data.get("later") == KIND_SMS:
        item_id = await schedule.add_sms(
            user_row.id,
            data["phone"],
            data["text"],
            data.get("sender") or effective_sender(user_row, settings.default_sender),
            stamp(moment),
            template=data.get("tpl_name"),
        )
    else:
        source = await lists.load(data)
        if source is None:
            await lost_source(message, state, lists, data)
            return
        template: str = data["template"]
        plan = await make_plan(
            source, template, settings.sms_max_parts, stoplist=stoplist, user_id=user_row.id
        )
        if not plan.rows:
            await message.answer(nothing_to_send_text())
            return
        item_id, _job_id = await schedule.add_job(
            user_row.id,
            stamp(moment),
            template=template,
            sender=effective_sender(user_row, settings.default_sender),
            file_name=source.file_name,
            file_format=source.file_format,
            rows=plan.rows,
            stopped=plan.stopped,
        )
        lists.sources.drop(user_row.id)
    await state.clear()
    item = await schedule.get(item_id)
    assert item is not None
    zone, quiet = user_zone(user_row), quiet_for(user_row, settings)
    starts = release_at(moment, quiet, zone_of(zone))
    await message.answer(
        scheduled_text(item, zone, quiet, starts), reply_markup=item_keyboard(item_id)
    )
