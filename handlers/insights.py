"""The insights part of /settings (failure watch, delivery-rate warning, digest) and the
"Show them" button under a failure-watch notice."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import (
    FailuresCb,
    InsightsAction,
    InsightsCb,
    SettingsAction,
    SettingsCb,
)
from handlers.filters import Accessible, AnyMenuButton
from handlers.history import record_of
from handlers.sms_render import sms_list
from handlers.states import InsightsForm
from handlers.utils import AnswerCallbacks, edit_or_keep
from services.insights import user_zone_name
from services.schedule_time import zone_of
from services.user_input import InvalidPercent, parse_percent
from storage import InsightRepo, TrafficRepo, UserRepo
from storage.insights import DigestMode, InsightPrefs
from storage.users import UserRow

NEXT_DIGEST: Final[dict[DigestMode, DigestMode]] = {
    "off": "daily",
    "daily": "weekly",
    "weekly": "off",
}
SHOWN_FAILURES: Final = 30
_HOURS_PER_ROW: Final = 6


def hour_text(hour: int) -> str:
    return f"{hour:02d}:00"


def insights_text(prefs: InsightPrefs, zone: str) -> str:
    watch = _("on") if prefs.failure_watch else _("off")
    rate = (
        _("below {percent}%").format(percent=prefs.rate_threshold)
        if prefs.rate_threshold is not None
        else _("off")
    )
    digest = {
        "off": _("off"),
        "daily": _("daily at {hour}").format(hour=hour_text(prefs.digest_hour)),
        "weekly": _("weekly, on Mondays at {hour}").format(hour=hour_text(prefs.digest_hour)),
    }[prefs.digest]
    return "\n".join(
        [
            _("📈 <b>Failure watch and digest</b>"),
            "",
            _("Failure watch (SMS sent outside the bot that fail): {state}").format(state=watch),
            _("Delivery-rate warning: {rate}").format(rate=rate),
            _("Digest: {digest}").format(digest=digest),
            _("Times are in your time zone: {zone}").format(zone=zone),
        ]
    )


def insights_keyboard(prefs: InsightPrefs) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("🔕 Stop the failure watch") if prefs.failure_watch else _("👁 Watch failures"),
        callback_data=InsightsCb(action=InsightsAction.WATCH),
    )
    builder.button(
        text=_("📉 Delivery-rate warning"), callback_data=InsightsCb(action=InsightsAction.RATE)
    )
    builder.button(
        text={
            "off": _("📰 Digest: turn on daily"),
            "daily": _("📰 Digest: make it weekly"),
            "weekly": _("📰 Digest: turn off"),
        }[prefs.digest],
        callback_data=InsightsCb(action=InsightsAction.DIGEST),
    )
    if prefs.digest != "off":
        builder.button(
            text=_("🕘 Digest hour"), callback_data=InsightsCb(action=InsightsAction.HOURS)
        )
    builder.adjust(1)
    return builder.as_markup()


async def view(
    user_id: int, users: UserRepo, insights: InsightRepo
) -> tuple[str, InlineKeyboardMarkup]:
    prefs = await insights.get(user_id)
    user = await users.get(user_id)
    return insights_text(prefs, user_zone_name(user)), insights_keyboard(prefs)


async def open_insights(
    query: CallbackQuery, message: Message, users: UserRepo, insights: InsightRepo
) -> None:
    text, keyboard = await view(query.from_user.id, users, insights)
    await message.answer(text, reply_markup=keyboard)


async def refresh(message: Message, user_id: int, users: UserRepo, insights: InsightRepo) -> None:
    text, keyboard = await view(user_id, users, insights)
    await edit_or_keep(message, text, keyboard)


async def watch_button(
    query: CallbackQuery, message: Message, users: UserRepo, insights: InsightRepo
) -> None:
    prefs = await insights.get(query.from_user.id)
    await insights.set_failure_watch(query.from_user.id, not prefs.failure_watch)
    await refresh(message, query.from_user.id, users, insights)


async def digest_button(
    query: CallbackQuery, message: Message, users: UserRepo, insights: InsightRepo
) -> None:
    prefs = await insights.get(query.from_user.id)
    await insights.set_digest(query.from_user.id, NEXT_DIGEST[prefs.digest])
    await refresh(message, query.from_user.id, users, insights)


async def hours_button(query: CallbackQuery, message: Message) -> None:
    builder = InlineKeyboardBuilder()
    for hour in range(24):
        builder.button(
            text=hour_text(hour), callback_data=InsightsCb(action=InsightsAction.HOUR, hour=hour)
        )
    builder.adjust(_HOURS_PER_ROW)
    builder.row(
        InlineKeyboardButton(
            text=_("↩️ Back"), callback_data=InsightsCb(action=InsightsAction.BACK).pack()
        )
    )
    await edit_or_keep(
        message, _("🕘 At what hour should the digest come (your time zone)?"), builder.as_markup()
    )


async def hour_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: InsightsCb,
    message: Message,
    users: UserRepo,
    insights: InsightRepo,
) -> None:
    await insights.set_digest_hour(query.from_user.id, callback_data.hour)
    callback_answer.text = _("Saved.")
    await refresh(message, query.from_user.id, users, insights)


async def back_button(
    query: CallbackQuery, message: Message, users: UserRepo, insights: InsightRepo
) -> None:
    await refresh(message, query.from_user.id, users, insights)


async def rate_button(query: CallbackQuery, message: Message, state: FSMContext) -> None:
    await state.set_state(InsightsForm.rate)
    await message.answer(
        _(
            "Below what delivery rate of the last hour should I warn you? Send a percentage "
            "from 1 to 100, e.g. 90; 0 turns the warning off."
        )
        + "\n"
        + _("/cancel keeps the current one.")
    )


async def rate_received(
    message: Message, state: FSMContext, users: UserRepo, insights: InsightRepo
) -> None:
    assert message.text is not None and message.from_user is not None
    try:
        percent = parse_percent(message.text)
    except InvalidPercent:
        await message.answer(
            _("Send a whole number from 0 to 100, e.g. 90.")
            + "\n"
            + _("/cancel keeps the current one.")
        )
        return
    await insights.set_rate_threshold(message.from_user.id, percent or None)
    await state.clear()
    await message.answer(
        _("Saved: a warning when fewer than {percent}% are delivered.").format(percent=percent)
        if percent
        else _("Saved: no delivery-rate warning.")
    )
    text_, keyboard = await view(message.from_user.id, users, insights)
    await message.answer(text_, reply_markup=keyboard)


async def rate_not_text(message: Message) -> None:
    await message.answer(
        _("Please send it as a text message.") + "\n" + _("/cancel keeps the current one.")
    )


async def show_failures(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: FailuresCb,
    message: Message,
    traffic: TrafficRepo,
    user_row: UserRow,
) -> None:
    rows = await traffic.failures_of(query.from_user.id, callback_data.batch, SHOWN_FAILURES)
    if not rows:
        callback_answer.text = _("These SMS are no longer in the record.")
        return
    header = _("❌ <b>The SMS that failed</b>")
    zone = zone_of(user_row.timezone)
    await message.answer(sms_list([record_of(row, zone) for row in rows], header))


def create_router() -> Router:
    router = Router(name="insights")
    router.callback_query.middleware(AnswerCallbacks())
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(rate_received, InsightsForm.rate, *free_text)
    router.message.register(rate_not_text, InsightsForm.rate, ~F.text)
    router.callback_query.register(
        open_insights, SettingsCb.filter(F.action == SettingsAction.INSIGHTS), Accessible()
    )
    for action, button in (
        (InsightsAction.WATCH, watch_button),
        (InsightsAction.RATE, rate_button),
        (InsightsAction.DIGEST, digest_button),
        (InsightsAction.HOURS, hours_button),
        (InsightsAction.HOUR, hour_button),
        (InsightsAction.BACK, back_button),
    ):
        router.callback_query.register(button, InsightsCb.filter(F.action == action), Accessible())
    router.callback_query.register(show_failures, FailuresCb.filter(), Accessible())
    return router
