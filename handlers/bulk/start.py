"""/bulk, step 3: the dry-run report's Start and Cancel buttons, and the background job Start
creates (services.bulk.BulkRunner, with its progress message from handlers.bulk.jobs)."""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import suppress

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.abroad import start_refused
from handlers.bulk.dialog import live_review, lost_source
from handlers.bulk.jobs import post_progress
from handlers.bulk.lists import Lists
from handlers.bulk.quiet import ask_quiet_start
from handlers.callbacks import BulkAction, BulkCb
from handlers.clock import quiet_for, quiet_until, user_zone, utc_now
from handlers.config import HandlerSettings
from handlers.keyboards import open_job_keyboard
from services.accounts import Accounts
from services.bulk import BulkRunner
from services.bulk_plan import Plan, Source, SourceCache, make_plan
from services.scheduler import stamp
from services.upload_worker import UploadWorker
from services.user_input import effective_sender
from storage import BulkRepo, ContactRepo, OutboxRepo, ScheduleRepo, StopListRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)


async def cancel_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: BulkCb,
    message: Message,
    state: FSMContext,
    bulk_sources: SourceCache,
    user_row: UserRow,
) -> None:
    if await live_review(callback_answer, callback_data, message, state) is None:
        return
    await state.clear()
    bulk_sources.drop(user_row.id)
    await message.edit_text(_("Cancelled. Nothing was sent."))


async def start_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: BulkCb,
    message: Message,
    bot: Bot,
    state: FSMContext,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    contacts: ContactRepo,
    accounts: Accounts,
    outbox: OutboxRepo,
    bulk: BulkRepo,
    bulk_runner: BulkRunner,
    schedule: ScheduleRepo,
    stoplist: StopListRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    data = await live_review(callback_answer, callback_data, message, state)
    if data is None:
        return
    if await bulk.count_active(user_row.id) >= settings.bulk_jobs_per_user:
        # The draft stays: Start works again once that job is over.
        await refuse_second_job(message, bulk, user_row.id)
        return
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    source = await lists.load(data)
    if source is None:
        await lost_source(message, state, lists, data)
        return
    template: str = data["template"]
    plan = await make_plan(
        source, template, settings.sms_max_parts, stoplist=stoplist, user_id=user_row.id
    )
    # Asked about rows abroad already: under the question's own Start ("intl"), or before
    # the question about quiet hours ("Start anyway").
    answered = callback_data.action in (BulkAction.INTL, BulkAction.FORCE)
    ask_abroad = None if answered else callback_data.draft
    if await start_refused(message, accounts, outbox, user_row.id, plan, ask_abroad):
        return
    quiet_end = quiet_until(user_row, settings, utc_now())
    if quiet_end is not None and callback_data.action != BulkAction.FORCE:
        quiet, zone = quiet_for(user_row, settings), user_zone(user_row)
        await ask_quiet_start(message, quiet, quiet_end, zone, callback_data.draft)
        return
    # The draft leaves the FSM before the job is created: a second tap (handled after this
    # one, see SimpleEventIsolation) finds nothing to start.
    await state.clear()
    bulk_sources.drop(user_row.id)
    callback_answer.text = _("Starting…")
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    # "Start anyway" inside quiet hours: the job runs on until they end.
    override = (schedule, quiet_end) if quiet_end is not None else None
    await start_job(
        message, bulk, bulk_runner, settings, user_row, source, template, plan, override
    )


async def refuse_second_job(message: Message, bulk: BulkRepo, user_id: int) -> None:
    active = [j for j in await bulk.jobs_of(user_id) if j.state in ("running", "paused")]
    if not active:
        return
    await message.answer(
        _(
            "Job #{id} is still in progress. Wait until it finishes, or cancel it, "
            "then tap Start again."
        ).format(id=active[0].id),
        reply_markup=open_job_keyboard(active[0].id),
    )


async def start_job(
    message: Message,
    bulk: BulkRepo,
    bulk_runner: BulkRunner,
    settings: HandlerSettings,
    user_row: UserRow,
    source: Source,
    template: str,
    plan: Plan,
    quiet_override: tuple[ScheduleRepo, dt.datetime] | None = None,
) -> None:
    job_id = await bulk.create_job(
        user_row.id,
        template=template,
        sender=effective_sender(user_row, settings.default_sender),
        file_name=source.file_name,
        file_format=source.file_format,
        rows=plan.rows,
        stopped=plan.stopped,
    )
    job = await bulk.get_job(job_id)
    assert job is not None
    if quiet_override is not None:
        schedule, until = quiet_override
        await schedule.set_job_quiet_until(job_id, stamp(until))
    # The progress message exists before the runner starts: its first report edits it.
    await post_progress(message, bulk, settings, job, "running")
    if not await bulk_runner.begin(job_id):
        logger.warning("bulk job %s was not ready to begin", job_id)
    logger.info("user %s started bulk job %s with %s rows", user_row.id, job_id, len(plan.rows))
