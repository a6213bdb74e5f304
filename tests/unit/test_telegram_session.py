"""The Bot API session sends JSON bodies (bot/telegram_session.py): Telegram must receive the
same fields aiogram's form would carry, uploads still go as forms, and a failed connection
still reads as one that never reached Telegram (bot/telegram_retry.py relies on it)."""

from __future__ import annotations

import hashlib
import inspect
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatAction, ParseMode
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import (
    AnswerCallbackQuery,
    BanChatMember,
    EditMessageText,
    SendChatAction,
    SendDocument,
    SendMessage,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MessageEntity,
    ReplyKeyboardMarkup,
)

from bot.factory import create_bot
from bot.telegram_retry import never_reached_telegram
from bot.telegram_session import JsonSession
from tests.conftest import make_settings
from tests.fakes.fake_telegram import FakeTelegram
from tests.support.harness import BOT_TOKEN

CHAT: Final = 1001
KEYBOARD: Final = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="🔄 Refresh", callback_data="bal:refresh")]]
)
METHODS: Final[list[TelegramMethod[Any]]] = [
    SendMessage(chat_id=CHAT, text="<b>Balance</b>: 1 000 so'm", reply_markup=KEYBOARD),
    SendMessage(
        chat_id=CHAT,
        text="plain",
        parse_mode=None,
        disable_notification=False,
        entities=[MessageEntity(type="bold", offset=0, length=5)],
        reply_markup=ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="💰 Balance")]], resize_keyboard=True
        ),
    ),
    SendMessage(chat_id=CHAT, text=""),
    EditMessageText(chat_id=CHAT, message_id=7, text="edited", reply_markup=KEYBOARD),
    AnswerCallbackQuery(callback_query_id="q1", text="Updated.", show_alert=False),
    SendChatAction(chat_id=CHAT, action=ChatAction.TYPING),
    SetMyCommands(commands=[BotCommand(command="balance", description="Balance")]),
    SendDocument(chat_id=CHAT, document="file-id-kept-by-telegram", caption="report.xlsx"),
    BanChatMember(chat_id=CHAT, user_id=5, until_date=timedelta(days=1)),
]


def session_bot(api: str = "http://127.0.0.1:9") -> Bot:
    return Bot(
        BOT_TOKEN,
        session=JsonSession(api=TelegramAPIServer.from_base(api)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.__api_method__)
async def test_the_json_body_carries_exactly_the_fields_of_aiograms_form(
    method: TelegramMethod[Any],
) -> None:
    bot = session_bot()
    session = bot.session
    assert isinstance(session, JsonSession)
    body = session.build_json_body(bot, method)
    assert body is not None
    sent = session.json_loads(body)
    # What build_form_data puts in the form: each value prepared, the empty ones left out.
    form = {
        key: prepared
        for key, value in method.model_dump(warnings=False).items()
        if (prepared := session.prepare_value(value, bot=bot, files={}))
    }
    assert set(sent) == set(form)
    for key, value in sent.items():
        assert (value if isinstance(value, str) else session.json_dumps(value)) == form[key]
    await session.close()


async def test_an_upload_is_still_sent_as_a_form() -> None:
    bot = session_bot()
    upload = SendDocument(chat_id=CHAT, document=BufferedInputFile(b"a,b\n", filename="r.csv"))
    assert isinstance(bot.session, JsonSession)
    assert bot.session.build_json_body(bot, upload) is None
    await bot.session.close()


async def test_messages_keyboards_and_files_reach_telegram(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    bot = create_bot(
        make_settings(tmp_path, "http://127.0.0.1:9/api", telegram_api_url=telegram.url)
    )
    try:
        await bot.send_message(CHAT, "<b>Balance</b>: 1 000 so'm", reply_markup=KEYBOARD)
        await bot.send_document(CHAT, BufferedInputFile(b"a,b\n", filename="r.csv"))
    finally:
        await bot.session.close()

    text, document = telegram.chat_messages(CHAT)
    assert text.text == "Balance: 1 000 so'm"
    assert text.reply_markup == KEYBOARD.model_dump(exclude_none=True)
    assert document.document is not None
    assert telegram.calls_of("sendMessage")[0].params["parse_mode"] == "HTML"


async def test_a_refused_connection_reads_as_never_reaching_telegram() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bot = session_bot(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TelegramNetworkError) as caught:
            await bot.send_message(CHAT, "hello")
    finally:
        await bot.session.close()
    assert never_reached_telegram(caught.value)


# aiogram's AiohttpSession.make_request as JsonSession.make_request copies it (aiogram 3.31.0).
AIOGRAM_MAKE_REQUEST_SHA256: Final = (
    "970c355d86996eb88187794ceaec00fa86544344169a2a2a276fe3749f5f5636"
)


def test_the_session_copies_the_request_of_the_pinned_aiogram() -> None:
    source = inspect.getsource(AiohttpSession.make_request)
    assert hashlib.sha256(source.encode()).hexdigest() == AIOGRAM_MAKE_REQUEST_SHA256, (
        "aiogram's AiohttpSession.make_request changed: bring JsonSession.make_request "
        "(bot/telegram_session.py) in line with it, then update this hash"
    )
