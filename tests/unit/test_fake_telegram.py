"""The fake Telegram server, driven by a real aiogram Bot over loopback HTTP.

The e2e suite trusts this fake to reject what Telegram rejects and to accept what aiogram
sends, so each test goes through aiogram's own request encoding and response parsing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)

from tests.fakes.fake_telegram import FakeTelegram

# The numeric part stays short: long digit runs look like phone numbers to the log filters.
TOKEN: Final = "123456:" + "A" * 35
USER: Final = 1001


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=f"btn {d}", callback_data=d)] for d in data]
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(TOKEN)
    await server.start()
    yield server
    await server.stop()


def make_bot(url: str, token: str = TOKEN) -> Bot:
    return Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    client = make_bot(fake.url)
    yield client
    await client.session.close()


async def test_get_me_answers_for_the_token_and_rejects_others(
    fake: FakeTelegram, bot: Bot
) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "test_bot", True)

    stranger = make_bot(fake.url, "654321:" + "B" * 35)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()
    assert [call.status for call in fake.calls_of("getMe")] == [200, 401]


async def test_sent_message_is_visible_as_the_user_sees_it(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(
        USER, "<b>Balance</b>: 5 &lt; 10", reply_markup=keyboard("top_up", "history")
    )

    assert sent.text == "Balance: 5 < 10"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    shown = await fake.wait_for_message(USER, containing="Balance")
    assert shown.message_id == sent.message_id
    assert shown.text == "Balance: 5 < 10"
    assert shown.raw_text == "<b>Balance</b>: 5 &lt; 10"
    assert shown.button_texts == ["btn top_up", "btn history"]
    assert fake.last_bot_message(USER) == shown
    assert fake.calls_of("sendMessage")[0].params["chat_id"] == USER


async def test_edit_with_identical_content_is_not_modified(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(USER, "<i>Menu</i>", reply_markup=keyboard("a"))

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "<i>Menu</i>", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("a")
        )
    # Same text, different tags producing the same entities: still not modified.
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "<em>Menu</em>", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("a")
        )

    await bot.edit_message_text(
        "<i>Menu 2</i>", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("a")
    )
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("a")
        )
    # An edit without reply_markup takes the keyboard away, as Telegram does.
    await bot.edit_message_text("Done", chat_id=USER, message_id=sent.message_id)

    shown = fake.last_bot_message(USER)
    assert shown is not None
    assert (shown.text, shown.edits, shown.reply_markup) == ("Done", 2, None)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)


async def test_text_limit_is_4096_characters_after_html_parsing(bot: Bot) -> None:
    # Tags cost nothing and &lt; is one character, so both of these fit exactly.
    await bot.send_message(USER, "<b>" + "a" * 4096 + "</b>")
    await bot.send_message(USER, "&lt;" * 4096)

    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "a" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, "<b> </b>")


@pytest.mark.parametrize(
    "text",
    ["<foo>x</foo>", "<b>unclosed", "<b>x</i>", "1 < 2", "<br>", "<span>x</span>"],
)
async def test_html_outside_telegrams_subset_cannot_be_parsed(bot: Bot, text: str) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, text)


async def test_html_allowed_tags_and_numeric_entities_are_accepted(bot: Bot) -> None:
    sent = await bot.send_message(
        USER,
        '<a href="https://devsms.uz">site</a> <code>x</code> <s>y</s> '
        '<tg-spoiler>z</tg-spoiler> <span class="tg-spoiler">w</span> '
        '<pre><code class="language-py">1</code></pre> <blockquote>q</blockquote> &quot; &#1071;',
    )

    assert sent.text == 'site x y z w 1 q " Я'
    assert sent.entities is not None
    kinds = [entity.type for entity in sent.entities]
    assert kinds == [
        "text_link",
        "code",
        "strikethrough",
        "spoiler",
        "spoiler",
        "pre",
        "blockquote",
    ]
    assert sent.entities[5].language == "py"


async def test_callback_data_is_limited_to_64_bytes_not_characters(
    fake: FakeTelegram, bot: Bot
) -> None:
    await bot.send_message(USER, "ok", reply_markup=keyboard("я" * 32))

    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "33 letters", reply_markup=keyboard("я" * 32 + "a"))
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "65 bytes", reply_markup=keyboard("a" * 65))
    assert [message.text for message in fake.chat_messages(USER)] == ["ok"]


async def test_reply_keyboard_is_accepted_and_contact_arrives(
    fake: FakeTelegram, bot: Bot
) -> None:
    markup = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="Share phone", request_contact=True)]],
        resize_keyboard=True,
    )
    sent = await bot.send_message(USER, "Send your number", reply_markup=markup)

    assert sent.reply_markup is None  # a Message only ever carries inline keyboards
    shown_keyboard = fake.reply_keyboard(USER)
    assert shown_keyboard is not None
    assert shown_keyboard["keyboard"][0][0]["request_contact"] is True

    fake.send_contact(USER, "+998901234567", contact_user_id=USER)
    updates = await bot.get_updates(timeout=0)
    assert updates[0].message is not None and updates[0].message.contact is not None
    assert updates[0].message.contact.phone_number == "+998901234567"
    assert updates[0].message.contact.user_id == USER


async def test_long_poll_wakes_on_injected_update_and_honours_offset(
    fake: FakeTelegram, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for(lambda: fake.calls_of("getUpdates"))
    fake.send_text(USER, "/start", language_code="uz")

    # A 30-second poll that returns within 2 seconds was woken by the update.
    updates = await asyncio.wait_for(poll, 2)
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None and message.text == "/start"
    assert message.from_user is not None and message.from_user.language_code == "uz"

    # Unconfirmed updates come again; an offset past them confirms them.
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    fake.send_text(USER, "second")
    fake.send_text(USER, "third")
    batch = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0, limit=1)
    assert [u.message.text for u in batch if u.message] == ["second"]
    rest = await bot.get_updates(offset=batch[0].update_id + 1, timeout=0)
    assert [u.message.text for u in rest if u.message] == ["third"]
    assert await bot.get_updates(offset=rest[-1].update_id + 1, timeout=0) == []


async def test_a_newer_poll_ends_the_older_one_with_conflict(fake: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for(lambda: fake.calls_of("getUpdates"))

    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(first, 2)


async def test_polling_dispatcher_handles_commands_and_buttons(
    fake: FakeTelegram, bot: Bot
) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Hello, <b>user</b>", reply_markup=keyboard("go"))

    @router.callback_query(F.data == "go")
    async def go(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text("Gone")
        await query.answer("done")

    dp = Dispatcher()
    dp.include_router(router)
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        fake.send_text(USER, "/start")
        menu = await fake.wait_for_message(USER, containing="Hello, user")
        query_id = fake.press_button_with_text(USER, menu.message_id, "btn go")

        edited = await fake.wait_for(
            lambda: (m := fake.message(USER, menu.message_id)) and m.text == "Gone" and m
        )
        assert edited.edits == 1
        answer = await fake.wait_for(lambda: fake.callback_answer(query_id))
        assert answer["text"] == "done"
    finally:
        await dp.stop_polling()
        await polling


async def test_callback_query_can_be_answered_only_once(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(USER, "Pick", reply_markup=keyboard("x"))
    query_id = fake.press_button(USER, sent.message_id, "x")
    updates = await bot.get_updates(timeout=0)
    query = updates[-1].callback_query
    assert query is not None and query.id == query_id and query.data == "x"
    assert isinstance(query.message, Message) and query.message.text == "Pick"

    assert await bot.answer_callback_query(query_id, text="ok")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query("no-such-query")


async def test_rate_limit_fault_surfaces_retry_after(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next(1, description="Too Many Requests: retry after 3", retry_after=3)

    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER, "first try")
    assert caught.value.retry_after == 3
    await bot.send_message(USER, "second try")

    assert [call.status for call in fake.calls_of("sendMessage")] == [429, 200]
    assert [message.text for message in fake.chat_messages(USER)] == ["second try"]


async def test_faults_scoped_to_a_method_spare_the_others(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next(1, method="editMessageText", error_code=500, description="Internal Error")
    fake.fail_next(1, method="sendChatAction", drop_connection=True)

    sent = await bot.send_message(USER, "still works")
    with pytest.raises(TelegramNetworkError):
        await bot.send_chat_action(USER, "typing")
    with pytest.raises(Exception, match="Internal Error"):
        await bot.edit_message_text("edited", chat_id=USER, message_id=sent.message_id)
    await bot.edit_message_text("edited", chat_id=USER, message_id=sent.message_id)

    shown = fake.last_bot_message(USER)
    assert shown is not None and shown.text == "edited"


async def test_blocked_user_and_migrated_group(fake: FakeTelegram, bot: Bot) -> None:
    fake.block_user(USER)
    fake.migrate_chat(-555, -1001234)

    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "anyone there?")
    with pytest.raises(TelegramMigrateToChat) as caught:
        await bot.send_message(-555, "group news")
    assert caught.value.migrate_to_chat_id == -1001234
    await bot.send_message(-1001234, "group news")
    assert fake.chat_messages(USER) == []


async def test_document_upload_and_download_round_trip(fake: FakeTelegram, bot: Bot) -> None:
    export = b"id;phone\n1;+998901234567\n"
    sent = await bot.send_document(
        USER, BufferedInputFile(export, filename="export.csv"), caption="<b>Export</b>"
    )

    shown = fake.last_bot_message(USER)
    assert shown is not None and shown.document is not None
    assert (shown.document.file_name, shown.document.content) == ("export.csv", export)
    assert shown.text == "Export"
    assert sent.document is not None and sent.document.file_name == "export.csv"
    downloaded = await bot.download(sent.document.file_id)
    assert downloaded is not None and downloaded.read() == export

    fake.send_document(USER, "numbers.txt", b"+998901234567\n", caption="mine")
    updates = await bot.get_updates(timeout=0)
    document = updates[-1].message.document if updates[-1].message else None
    assert document is not None and document.mime_type == "text/plain"
    incoming = await bot.download(document.file_id)
    assert incoming is not None and incoming.read() == b"+998901234567\n"


async def test_deleted_messages_are_flagged(fake: FakeTelegram, bot: Bot) -> None:
    user_message = fake.send_text(USER, "my secret token")
    first = await bot.send_message(USER, "first")
    await bot.send_message(USER, "second")

    assert await bot.delete_message(USER, user_message)
    assert await bot.delete_message(USER, first.message_id + 1)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, first.message_id + 1)

    everything = fake.chat_messages(USER, include_user=True)
    assert [(m.text, m.from_bot, m.deleted) for m in everything] == [
        ("my secret token", False, True),
        ("first", True, False),
        ("second", True, True),
    ]
    last = fake.last_bot_message(USER)
    assert last is not None and last.text == "first"


async def test_commands_are_kept_per_scope_and_language(fake: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="start", description="Boshlash")], language_code="uz"
    )
    admin_scope = BotCommandScopeChat(chat_id=USER)
    await bot.set_my_commands(
        [BotCommand(command="stats", description="Stats")], scope=admin_scope
    )

    assert [c.description for c in await bot.get_my_commands()] == ["Start"]
    assert [c.description for c in await bot.get_my_commands(language_code="uz")] == ["Boshlash"]
    assert [c.command for c in await bot.get_my_commands(scope=admin_scope)] == ["stats"]
    await bot.delete_my_commands(language_code="uz")
    assert await bot.get_my_commands(language_code="uz") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])


async def test_raw_http_unknown_method_json_body_and_control_endpoints(
    fake: FakeTelegram,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.url}/bot{TOKEN}/fooBar") as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        # Method names are case-insensitive; JSON bodies and query strings work too.
        async with http.get(f"{fake.url}/bot{TOKEN}/getme") as response:
            assert (await response.json())["result"]["username"] == "test_bot"
        body = {"chat_id": USER, "text": "via json", "reply_markup": {"inline_keyboard": []}}
        async with http.post(f"{fake.url}/bot{TOKEN}/sendMessage", json=body) as response:
            assert (await response.json())["result"]["text"] == "via json"
        query = {"chat_id": str(USER), "text": "via query"}
        async with http.get(f"{fake.url}/bot{TOKEN}/sendMessage", params=query) as response:
            assert (await response.json())["ok"] is True

        message = {"user_id": USER, "text": "hi from control"}
        async with http.post(f"{fake.url}/_control/message", json=message) as response:
            assert (await response.json())["ok"] is True
        async with http.get(f"{fake.url}/_control/calls?method=sendMessage") as response:
            sent_texts = [c["params"]["text"] for c in (await response.json())["result"]]
        assert sent_texts == ["via json", "via query"]
    assert fake.pending_updates[0]["message"]["text"] == "hi from control"


async def test_wait_for_timeout_explains_what_happened(fake: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(USER, "Welcome")

    with pytest.raises(AssertionError, match=r"(?s)containing 'Goodbye'.*sendMessage.*Welcome"):
        await fake.wait_for_message(USER, containing="Goodbye", timeout=0.2)
