"""/export: a period (this month, last month, typed dates) and a format, then the files.

The rows stream from the traffic record in batches; each batch is written to a temporary file
in a thread (services.export.ExportWriter), so neither the event loop nor memory carries the
whole export. Files past Telegram's limit go out as numbered parts. The export runs as a
background task of the export desk (services/export_desk.py): the handler takes a slot and
returns, so the user's chat is not held while the files are read, written and uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, FSInputFile, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import ExportCb
from handlers.config import HandlerSettings
from handlers.reports.render import (
    ask_range_text,
    choose_format_text,
    empty_period_text,
    export_busy_text,
    export_caption,
    export_done_text,
    export_failed_text,
    export_start_keyboard,
    export_start_text,
    export_texts,
    first_look_text,
    format_keyboard,
    preparing_text,
    range_problem_text,
    sheet_names,
    summary_rows,
)
from handlers.reports.zone import today_in, zone_name
from handlers.states import ExportForm
from handlers.utils import edit_or_keep
from services.export import (
    MAX_RANGE_DAYS,
    ExportRow,
    ExportWriter,
    InvalidRange,
    Period,
    cells,
    last_month,
    parse_range,
    this_month,
)
from services.export_desk import ExportDesk, Taken
from storage import BulkRepo
from storage.traffic import Origin, TrafficRepo, TrafficRow
from storage.users import UserRow

logger = logging.getLogger(__name__)

BATCH: Final = 500
# Seconds one part may take to upload: 50 MB over a slow link outlasts aiogram's default 60 s.
UPLOAD_TIMEOUT: Final = 600
# Before any devsms traffic: no export button's period starts earlier.
EARLIEST: Final = dt.date(2000, 1, 1)


def export_row(row: TrafficRow, job: str | None = None) -> ExportRow:
    return ExportRow(
        sent_at=row.created_at,
        phone=row.phone,
        text=row.message,
        parts=row.parts,
        cost=row.cost,
        status=row.status,
        from_bot=row.origin is not Origin.ELSEWHERE,
        job=job,
        template=row.template,
    )


async def job_label(bulk: BulkRepo, job_id: int, user_id: int) -> str:
    """ "#12 clients.xlsx": the bulk job a row of the export came from."""
    job = await bulk.get_job(job_id, user_id=user_id)
    if job is None or not job.file_name:
        return f"#{job_id}"
    return f"#{job_id} {job.file_name}"


async def start_export(
    message: Message, state: FSMContext, user_row: UserRow, traffic: TrafficRepo
) -> None:
    if await state.get_state() == ExportForm.range:
        await state.clear()
    if await traffic.never_synced(user_row.id):
        await message.answer(first_look_text())  # nothing read yet: an export would be empty
        return
    await message.answer(
        export_start_text(zone_name(user_row)), reply_markup=export_start_keyboard()
    )


async def this_month_chosen(
    query: CallbackQuery, message: Message, state: FSMContext, user_row: UserRow
) -> None:
    today = today_in(ZoneInfo(zone_name(user_row)))
    await _choose_format(message, state, this_month(today))


async def last_month_chosen(
    query: CallbackQuery, message: Message, state: FSMContext, user_row: UserRow
) -> None:
    today = today_in(ZoneInfo(zone_name(user_row)))
    await _choose_format(message, state, last_month(today))


async def _choose_format(message: Message, state: FSMContext, period: Period) -> None:
    # A month tapped on the menu while the bot waits for typed dates: no dates are awaited.
    if await state.get_state() == ExportForm.range:
        await state.clear()
    await edit_or_keep(message, choose_format_text(period), format_keyboard(period))


async def type_chosen(
    query: CallbackQuery, message: Message, state: FSMContext, user_row: UserRow
) -> None:
    await state.set_state(ExportForm.range)
    today = today_in(ZoneInfo(zone_name(user_row)))
    await edit_or_keep(message, ask_range_text(today))


async def range_typed(message: Message, state: FSMContext, user_row: UserRow) -> None:
    assert message.text is not None
    today = today_in(ZoneInfo(zone_name(user_row)))
    try:
        period = parse_range(message.text, today)
    except InvalidRange as exc:
        await message.answer(range_problem_text(exc.problem, today))
        return
    await state.clear()
    await message.answer(choose_format_text(period), reply_markup=format_keyboard(period))


async def range_not_text(message: Message) -> None:
    await message.answer(
        _("Please send the dates as a text message.") + "\n" + _("/cancel to stop.")
    )


async def cancel_export(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    if await state.get_state() == ExportForm.range:
        await state.clear()
    await edit_or_keep(message, _("Export cancelled."))


def _period(callback_data: ExportCb, today: dt.date) -> Period | None:
    """The period a format button carries; None for a forged one. A button never ends after
    today (a day of slack for a zone changed since), nor starts before EARLIEST: a forged
    "day 1 of year 1" made Period.bounds overflow."""
    try:
        period = Period(
            dt.date.fromordinal(callback_data.first), dt.date.fromordinal(callback_data.last)
        )
    except ValueError:
        return None
    if not 1 <= period.days <= MAX_RANGE_DAYS or not callback_data.fmt:
        return None
    if period.first < EARLIEST or period.last > today + dt.timedelta(days=1):
        return None
    return period


async def format_chosen(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ExportCb,
    message: Message,
    user_row: UserRow,
    traffic: TrafficRepo,
    exports: ExportDesk,
    settings: HandlerSettings,
    bulk: BulkRepo,
) -> None:
    period = _period(callback_data, today_in(ZoneInfo(zone_name(user_row))))
    if period is None:
        callback_answer.text = _("This button is no longer active.")
        return
    taken = await exports.take_slot(user_row.id)
    if taken is not Taken.YES:
        callback_answer.text = export_busy_text(own=taken is Taken.OWN)
        callback_answer.show_alert = True
        return

    async def export() -> None:
        try:
            await _export(message, callback_data, period, user_row, traffic, settings, bulk)
        except Exception:
            logger.exception("export of user %s failed", user_row.id)
            with contextlib.suppress(TelegramAPIError):
                await edit_or_keep(message, export_failed_text())

    # The export runs on without the handler: reading, writing and uploading take minutes
    # for a big period, and the user's chat (SimpleEventIsolation) must not wait for them.
    exports.start(user_row.id, export)


async def _export(
    message: Message,
    callback_data: ExportCb,
    period: Period,
    user_row: UserRow,
    traffic: TrafficRepo,
    settings: HandlerSettings,
    bulk: BulkRepo,
) -> None:
    zone_label = zone_name(user_row)
    zone = ZoneInfo(zone_label)
    since, until = period.bounds(zone)
    totals = await traffic.period_totals(user_row.id, since, until)
    if not totals.sms:
        first = await traffic.never_synced(user_row.id)  # a new token since the menu
        await edit_or_keep(message, first_look_text() if first else empty_period_text(period))
        return
    await edit_or_keep(message, preparing_text(period))
    texts = export_texts()
    summary = summary_rows(period, zone_label, totals)
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="devsms-export-"))
    try:
        writer = ExportWriter(
            "xlsx" if callback_data.fmt == "xlsx" else "csv",
            folder,
            period.stem(),
            texts.columns,
            max_bytes=settings.export_part_bytes,
            summary=summary,
            sheet_names=sheet_names(),
        )
        batch: list[list[object]] = []
        jobs: dict[int, str] = {}
        async for row in traffic.iter_rows(user_row.id, since, until, batch=BATCH):
            job = None
            if row.job_id is not None:
                if row.job_id not in jobs:
                    jobs[row.job_id] = await job_label(bulk, row.job_id, user_row.id)
                job = jobs[row.job_id]
            batch.append(cells(export_row(row, job), zone, texts))
            if len(batch) >= BATCH:
                await asyncio.to_thread(writer.add, batch)
                batch = []
        if batch:
            await asyncio.to_thread(writer.add, batch)
        paths = await asyncio.to_thread(writer.close)
        for number, path in enumerate(paths, start=1):
            await message.answer_document(
                FSInputFile(path),
                caption=export_caption(period, writer.rows, number, len(paths)),
                request_timeout=UPLOAD_TIMEOUT,
            )
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    await edit_or_keep(message, export_done_text(period, writer.rows, len(paths)))
