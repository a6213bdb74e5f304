"""/jobs and a job's buttons (open, pause, resume, cancel, result file).

The job itself runs in services.bulk.BulkRunner; its progress message is edited by the job's
reports (bot/notices/jobs.py), which read a job's facts and files through the helpers here.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Final

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.render import (
    JobFacts,
    jobs_text,
    progress_text,
    result_file,
    short_of_balance_text,
)
from handlers.callbacks import JobCb
from handlers.clock import quiet_until, utc_now
from handlers.config import HandlerSettings
from handlers.keyboards import job_keyboard, jobs_keyboard
from handlers.utils import edit_or_keep
from services.bulk import PAUSE_REFUSED, BulkRunner, ShortOfBalance
from services.scheduler import stamp
from storage import BulkRepo, JobCounts, JobRow, ScheduleRepo
from storage.users import UserRow

JOBS_LISTED: Final = 10


async def job_facts(bulk: BulkRepo, job: JobRow, counts: JobCounts | None = None) -> JobFacts:
    """Reads what the job's texts show (handlers.bulk.render.progress_text)."""
    if counts is None:
        counts = await bulk.counts(job.id)
    refusal = await bulk.last_failure(job.id) if job.pause_reason == PAUSE_REFUSED else None
    return JobFacts(job, counts, await bulk.costs(job.id), refusal)


async def load_result_file(bulk: BulkRepo, job: JobRow) -> BufferedInputFile:
    return await asyncio.to_thread(result_file, job, await bulk.all_rows(job.id))


async def post_progress(
    message: Message, bulk: BulkRepo, settings: HandlerSettings, job: JobRow, state: str
) -> None:
    """A new progress message for the job, with the buttons of `state`; the job's reports
    edit this one from now on."""
    facts = await job_facts(bulk, job)
    shown = await message.answer(
        progress_text(facts, settings.bulk_rate), reply_markup=job_keyboard(job.id, state)
    )
    await bulk.set_progress_message(job.id, shown.chat.id, shown.message_id)


async def owned_job(
    callback_answer: CallbackAnswer, callback_data: JobCb, bulk: BulkRepo, user_row: UserRow
) -> JobRow | None:
    """The tapped job if it is the user's (callback data can be forged); else the tap is told."""
    job = await bulk.get_job(callback_data.job_id, user_id=user_row.id)
    if job is None:
        callback_answer.text = _("This job was not found.")
        callback_answer.show_alert = True
    return job


async def open_job(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: JobCb,
    message: Message,
    bulk: BulkRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    job = await owned_job(callback_answer, callback_data, bulk, user_row)
    if job is None:
        return
    if job.state == "ready":
        # Prepared by "Send later": it has no progress before its time.
        callback_answer.text = _("Job #{id} waits for its scheduled time; see /scheduled.").format(
            id=job.id
        )
        callback_answer.show_alert = True
        return
    await post_progress(message, bulk, settings, job, job.state)


async def job_file(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: JobCb,
    message: Message,
    bulk: BulkRepo,
    user_row: UserRow,
) -> None:
    job = await owned_job(callback_answer, callback_data, bulk, user_row)
    if job is not None:
        # Answered before a big job's file is built, which can take a while.
        callback_answer.disable()
        await query.answer()
        await message.answer_document(
            await load_result_file(bulk, job),
            caption=_("Bulk job #{id}: the result of every row.").format(id=job.id),
        )


async def pause_job(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: JobCb,
    message: Message,
    bulk: BulkRepo,
    bulk_runner: BulkRunner,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    job = await owned_job(callback_answer, callback_data, bulk, user_row)
    if job is None:
        return
    changed = await bulk_runner.pause(job.id)
    callback_answer.text = _("Paused.") if changed else _("This job is not running.")
    await refresh_progress(message, bulk, settings, job.id)


async def resume_job(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: JobCb,
    message: Message,
    bulk: BulkRepo,
    bulk_runner: BulkRunner,
    schedule: ScheduleRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    job = await owned_job(callback_answer, callback_data, bulk, user_row)
    if job is None:
        return
    quiet_end = quiet_until(user_row, settings, utc_now())
    if quiet_end is not None:
        # Resumed inside quiet hours on purpose: the job runs on until they end.
        await schedule.set_job_quiet_until(job.id, stamp(quiet_end))
    try:
        changed = await bulk_runner.resume(job.id)
    except ShortOfBalance as exc:
        await message.answer(short_of_balance_text(job.id, exc.cost))
        return
    callback_answer.text = _("Resuming…") if changed else _("This job cannot be resumed now.")
    await refresh_progress(message, bulk, settings, job.id)


async def cancel_job(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: JobCb,
    message: Message,
    bulk: BulkRepo,
    bulk_runner: BulkRunner,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    job = await owned_job(callback_answer, callback_data, bulk, user_row)
    if job is None:
        return
    changed = await bulk_runner.cancel(job.id)
    callback_answer.text = _("Job cancelled.") if changed else _("This job is already over.")
    await refresh_progress(message, bulk, settings, job.id)


async def refresh_progress(
    message: Message, bulk: BulkRepo, settings: HandlerSettings, job_id: int
) -> None:
    """The message with the button shows the job as the tap left it."""
    fresh = await bulk.get_job(job_id)
    assert fresh is not None
    text = progress_text(await job_facts(bulk, fresh), settings.bulk_rate)
    with suppress(TelegramBadRequest):
        await edit_or_keep(message, text, job_keyboard(job_id, fresh.state))


async def list_jobs(
    message: Message, bulk: BulkRepo, schedule: ScheduleRepo, user_row: UserRow
) -> None:
    jobs = await bulk.jobs_of(user_row.id, limit=JOBS_LISTED)
    if not jobs:
        await message.answer(_("No bulk jobs yet. Start one with /bulk."))
        return
    listed = [(job, await bulk.counts(job.id)) for job in jobs]
    scheduled = {job.id for job in jobs if job.state == "ready" and await waits(schedule, job)}
    await message.answer(
        jobs_text(listed, scheduled), reply_markup=jobs_keyboard([job.id for job in jobs])
    )


async def waits(schedule: ScheduleRepo, job: JobRow) -> bool:
    """Whether the job was prepared by «Send later» and waits for its time."""
    item = await schedule.for_job(job.id)
    return item is not None and item.state in ("waiting", "missed")
