"""/start, /help, /cancel and /language: available with or without a token."""

from __future__ import annotations

from aiogram import F, Router, html
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import LanguageCb
from handlers.keyboards import LANGUAGE_NAMES, language_keyboard, main_menu
from handlers.states import TokenForm
from handlers.utils import edit_or_keep
from services.accounts import Accounts
from services.languages import LANGUAGES
from storage import UserRepo

# Shown before the user has chosen: in all three languages at once.
LANGUAGE_PROMPT = "Tilni tanlang · Выберите язык · Choose your language"


def ask_token_text() -> str:
    return _(
        "Send me your devsms.uz API token (devsms.uz → profile → API). "
        "I delete the message with the token from this chat at once and keep it encrypted."
    )


async def start(message: Message, state: FSMContext, accounts: Accounts) -> None:
    assert message.from_user is not None
    name = html.quote(message.from_user.first_name)
    if await accounts.has_token(message.from_user.id):
        await state.clear()
        await message.answer(
            _("Welcome back, {name}! Choose what to do in the menu below.").format(name=name),
            reply_markup=main_menu(),
        )
        return
    await state.set_state(TokenForm.token)
    await message.answer(
        _(
            "Hello, {name}! I send SMS through devsms.uz right from this chat:\n"
            "cost preview before sending, history, delivery status and balance alerts."
        ).format(name=name)
        + "\n\n"
        + ask_token_text(),
        reply_markup=ReplyKeyboardRemove(),
    )


async def help_command(message: Message) -> None:
    await message.answer(
        _(
            "<b>What I can do</b>\n"
            "/send — send an SMS (preview and cost first)\n"
            "/bulk — send to a list of numbers from a CSV/Excel file\n"
            "/jobs — your bulk sending jobs\n"
            "/templates — saved SMS texts\n"
            "/balance — balance, SMS price and spending\n"
            "/history — sent SMS and their status\n"
            "/status — status of one SMS by its id\n"
            "/settings — sender name and other settings\n"
            "/language — Oʻzbekcha, Русский, English\n"
            "/token — connect another devsms token\n"
            "/logout — delete your token and all your data\n"
            "/cancel — leave the current dialog"
        )
        + "\n"
        + _("/scheduled — sends set for later (quiet hours and time zone: /settings)")
        + "\n"
        + _(
            "/stats — charts of SMS and spending by day\n"
            "/export — SMS of a period as a CSV or Excel file"
        )
        + "\n"
        + _("/stoplist — numbers that never get an SMS from you")
        + "\n"
        + _("/otp — send a one-time verification code by SMS")
        + "\n"
        + _("/contacts — your contacts and groups: import, export, send to a group")
    )


async def cancel(message: Message, state: FSMContext, accounts: Accounts) -> None:
    assert message.from_user is not None
    had_state = await state.get_state() is not None
    await state.clear()
    has_token = await accounts.has_token(message.from_user.id)
    text = _("Cancelled.") if had_state else _("There is nothing to cancel.")
    if not has_token:
        text += "\n" + _("Send /start when you are ready to connect your devsms token.")
    await message.answer(text, reply_markup=main_menu() if has_token else ReplyKeyboardRemove())


async def language(message: Message) -> None:
    await message.answer(LANGUAGE_PROMPT, reply_markup=language_keyboard())


async def language_chosen(
    query: CallbackQuery,
    callback_data: LanguageCb,
    users: UserRepo,
    accounts: Accounts,
    i18n: I18n,
) -> None:
    await users.set_language(query.from_user.id, callback_data.code)
    with i18n.use_locale(callback_data.code):
        await query.answer()
        done = _("Language: {name}").format(name=LANGUAGE_NAMES[callback_data.code])
        if isinstance(query.message, Message):
            # A double tap edits in the same text, which Telegram refuses as unchanged.
            await edit_or_keep(query.message, done)
        if await accounts.has_token(query.from_user.id):
            # Reply keyboards cannot be edited: a fresh one in the new language replaces it.
            await query.bot.send_message(  # type: ignore[union-attr]
                query.from_user.id,
                _("The menu is now in this language."),
                reply_markup=main_menu(),
            )


def create_router() -> Router:
    router = Router(name="common")
    router.message.register(start, CommandStart())
    router.message.register(help_command, Command("help"))
    router.message.register(cancel, Command("cancel"))
    router.message.register(language, Command("language"))
    router.callback_query.register(language_chosen, LanguageCb.filter(F.code.in_(LANGUAGES)))
    return router
