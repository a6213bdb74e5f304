"""Start inside quiet hours: the dry run asks "Start anyway / Start at 09:00" instead."""

from __future__ import annotations

import datetime as dt

from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import BulkAction, BulkCb
from handlers.clock import hour_text, quiet_label, when_text
from services.schedule_time import QuietHours


def quiet_question_text(quiet: QuietHours | None, end: dt.datetime, zone: str) -> str:
    return "\n".join(
        [
            _("🌙 It is now within your quiet hours ({quiet}).").format(quiet=quiet_label(quiet)),
            _("Start the job anyway, or have it start at {time}?").format(
                time=when_text(end, zone)
            ),
        ]
    )


def quiet_question_keyboard(draft: int, end: dt.datetime, zone: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("🚀 Start anyway"), callback_data=BulkCb(action=BulkAction.FORCE, draft=draft)
    )
    builder.button(
        text=_("🌅 Start at {time}").format(time=hour_text(end, zone)),
        callback_data=BulkCb(action=BulkAction.AT_END, draft=draft),
    )
    builder.button(text=_("✖️ Cancel"), callback_data=BulkCb(action=BulkAction.CANCEL, draft=draft))
    builder.adjust(1)
    return builder.as_markup()


async def ask_quiet_start(
    message: Message, quiet: QuietHours | None, end: dt.datetime, zone: str, draft: int
) -> None:
    """Start inside quiet hours asks first; the dry run stays as it is."""
    await message.answer(
        quiet_question_text(quiet, end, zone),
        reply_markup=quiet_question_keyboard(draft, end, zone),
    )
