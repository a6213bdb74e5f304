"""/scheduled: what waits to go out, with ▶️ Send now and ✖️ Cancel per item (the same
buttons come under the scheduler's notice of a send that waits for its owner)."""

from __future__ import annotations

from contextlib import suppress
from typing import Final

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import ScheduleCb
from handlers.clock import user_zone, utc_now
from handlers.schedule.render import FROM_LIST, list_keyboard, list_text
from handlers.utils import edit_or_keep
from services.scheduler import Scheduler, stamp
from storage import BulkRepo, ScheduledRow, ScheduleRepo
from storage.users import UserRow

LISTED: Final = 20


async def show_scheduled(message: Message, schedule: ScheduleRepo, user_row: UserRow) -> None:
    items = await schedule.open_of(user_row.id, LISTED)
    await message.answer(list_text(items, user_zone(user_row)), reply_markup=list_keyboard(items))


async def list_button(
    query: CallbackQuery, message: Message, schedule: ScheduleRepo, user_row: UserRow
) -> None:
    await show_scheduled(message, schedule, user_row)


def gone(callback_answer: CallbackAnswer) -> None:
    callback_answer.text = _("This scheduled send is no longer waiting.")
    callback_answer.show_alert = True


async def owned_item(
    callback_answer: CallbackAnswer,
    callback_data: ScheduleCb,
    schedule: ScheduleRepo,
    user_row: UserRow,
) -> ScheduledRow | None:
    """The tapped item if it is the user's and still open; else the tap is told."""
    item = await schedule.get(callback_data.item, user_id=user_row.id)
    if item is None or item.state not in ("waiting", "missed"):
        gone(callback_answer)
        return None
    return item


async def send_now_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ScheduleCb,
    message: Message,
    schedule: ScheduleRepo,
    scheduler: Scheduler,
    user_row: UserRow,
) -> None:
    item = await owned_item(callback_answer, callback_data, schedule, user_row)
    if item is None:
        return
    if not await schedule.send_now(item.id, user_row.id, stamp(utc_now())):
        gone(callback_answer)
        return
    # The scheduler starts it (balance check included) and reports; this tap waits for none.
    scheduler.wake()
    callback_answer.text = _("Sending now…")
    await refresh(message, callback_data, schedule, user_row)


async def cancel_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ScheduleCb,
    message: Message,
    schedule: ScheduleRepo,
    bulk: BulkRepo,
    user_row: UserRow,
) -> None:
    item = await owned_item(callback_answer, callback_data, schedule, user_row)
    if item is None:
        return
    if not await schedule.cancel(item.id, user_row.id):
        gone(callback_answer)
        return
    if item.job_id is not None:
        # The prepared job goes too (only while it is still 'ready': a job that started is
        # not this item's any more).
        await bulk.set_job_state(item.job_id, "cancelled", allowed_from=("ready",))
    callback_answer.text = _("Cancelled. Nothing was sent.")
    await refresh(message, callback_data, schedule, user_row)


async def refresh(
    message: Message, callback_data: ScheduleCb, schedule: ScheduleRepo, user_row: UserRow
) -> None:
    """The list shows what is left; under a notice or a confirmation the buttons go."""
    if callback_data.draft == FROM_LIST:
        items = await schedule.open_of(user_row.id, LISTED)
        with suppress(TelegramBadRequest):
            text = list_text(items, user_zone(user_row))
            await edit_or_keep(message, text, list_keyboard(items))
        return
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
