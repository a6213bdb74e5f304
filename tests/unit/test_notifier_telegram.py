"""The notifier against the fake Telegram server, through a real aiogram Bot and real time.

The unit tests prove the pacing on virtual time; these prove that aiogram's real exceptions
(429 with retry_after, 403, group migration) reach the notifier as it expects, and that the
user rows in SQLite are updated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from bot.notices.notifier import Delivery, Notifier
from storage import Database, UserRepo
from tests.fakes.fake_telegram import FakeTelegram
from tests.support.harness import BOT_TOKEN

USERS: Final = tuple(range(1001, 1011))
ADMIN_GROUP: Final = -4001
ADMIN_SUPERGROUP: Final = -1004001


@pytest.fixture
async def users(tmp_path: Path) -> AsyncIterator[UserRepo]:
    db = await Database.open(tmp_path / "bot.sqlite3")
    repo = UserRepo(db)
    for user_id in USERS:
        await repo.upsert_seen(user_id, "User", None)
    yield repo
    await db.close()


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    # No RetryRequestMiddleware here: every 429 reaches the notifier.
    client = Bot(
        BOT_TOKEN,
        session=AiohttpSession(api=TelegramAPIServer.from_base(telegram.url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    yield client
    await client.session.close()


@pytest.fixture
async def notifier(bot: Bot, users: UserRepo) -> AsyncIterator[Notifier]:
    started = Notifier(bot, users, admin_chat_id=ADMIN_GROUP)
    await started.start()
    yield started
    await started.stop(drain=0)


def delivered(telegram: FakeTelegram, chat_id: int) -> list[str]:
    """Texts of the sendMessage calls to the chat that Telegram accepted."""
    return [
        str(call.params["text"])
        for call in telegram.calls_of("sendMessage")
        if call.params.get("chat_id") == chat_id and call.status == 200
    ]


async def test_a_burst_of_429s_still_delivers_every_message_exactly_once(
    telegram: FakeTelegram, notifier: Notifier
) -> None:
    telegram.fail_next(4, method="sendMessage", error_code=429, retry_after=1)

    results = await asyncio.gather(
        *(
            notifier.send(user_id, f"<b>alert {n}</b> for {user_id}")
            for n in range(2)
            for user_id in USERS
        )
    )

    assert results == [Delivery.DELIVERED] * 2 * len(USERS)
    calls = telegram.calls_of("sendMessage")
    assert sum(call.status == 429 for call in calls) == 4
    # Each refused chat was tried again no sooner than Telegram's retry_after said.
    for n, refused in enumerate(calls):
        if refused.status == 429:
            chat_id = refused.params["chat_id"]
            again = next(c for c in calls[n + 1 :] if c.params.get("chat_id") == chat_id)
            assert again.at - refused.at >= 1.0, (refused, again)
    for user_id in USERS:
        expected = [f"<b>alert {n}</b> for {user_id}" for n in range(2)]
        assert delivered(telegram, user_id) == expected
        assert [m.text for m in telegram.chat_messages(user_id)] == [
            f"alert {n} for {user_id}" for n in range(2)
        ]


async def test_a_user_who_blocked_the_bot_is_marked_inactive(
    telegram: FakeTelegram, notifier: Notifier, users: UserRepo
) -> None:
    blocker, other = USERS[0], USERS[1]
    telegram.block_user(blocker)

    assert await notifier.send(blocker, "your SMS was delivered") == Delivery.BLOCKED
    row = await users.get(blocker)
    assert row is not None and row.is_active is False

    calls_before = len(telegram.calls_of("sendMessage"))
    assert await notifier.send(blocker, "another one") == Delivery.SKIPPED
    assert len(telegram.calls_of("sendMessage")) == calls_before
    assert await notifier.send(other, "still fine") == Delivery.DELIVERED
    other_row = await users.get(other)
    assert other_row is not None and other_row.is_active is True


async def test_admin_notices_follow_the_group_to_its_supergroup(
    telegram: FakeTelegram, notifier: Notifier
) -> None:
    telegram.migrate_chat(ADMIN_GROUP, ADMIN_SUPERGROUP)

    assert await notifier.to_admins("gateway is down") == Delivery.DELIVERED

    assert notifier.admin_chat_id == ADMIN_SUPERGROUP
    assert [m.text for m in telegram.chat_messages(ADMIN_SUPERGROUP)] == ["gateway is down"]


async def test_edits_and_documents_go_out_through_the_same_outbox(
    telegram: FakeTelegram, notifier: Notifier, bot: Bot
) -> None:
    user = USERS[0]
    progress = await bot.send_message(user, "📦 job #1: 0%")
    button = InlineKeyboardButton(text="⏸ Pause", callback_data="job:pause:1")
    markup = InlineKeyboardMarkup(inline_keyboard=[[button]])

    edited = await notifier.edit(
        user, progress.message_id, "📦 <b>job #1</b>: 50%", reply_markup=markup
    )
    # A report without news: Telegram says "message is not modified", which is no failure and
    # is not retried.
    again = await notifier.edit(
        user, progress.message_id, "📦 <b>job #1</b>: 50%", reply_markup=markup
    )
    document = BufferedInputFile(b"row,phone\n2,998901234567\n", filename="numbers-result-1.csv")
    summary = await notifier.send_document(user, document, caption="✅ <b>Job #1 finished.</b>")

    assert (edited, again, summary) == (Delivery.DELIVERED,) * 3
    assert len(telegram.calls_of("editMessageText")) == 2
    [message, result] = telegram.chat_messages(user)
    assert (message.message_id, message.text, message.edits) == (
        progress.message_id,
        "📦 job #1: 50%",
        1,
    )
    assert message.button_texts == ["⏸ Pause"]
    assert result.text == "✅ Job #1 finished."
    assert result.document is not None and result.document.content.startswith(b"row,phone")


async def test_a_message_posted_before_a_5xx_or_a_lost_answer_is_not_posted_again(
    telegram: FakeTelegram, notifier: Notifier
) -> None:
    user_id, other = USERS[0], USERS[1]
    telegram.fail_next(
        1, method="sendMessage", error_code=502, description="Bad Gateway", processed=True
    )
    # Telegram posted it and then failed to say so: a repeat would show it twice.
    assert await notifier.send(user_id, "your SMS was delivered") == Delivery.FAILED
    assert [m.text for m in telegram.chat_messages(user_id)] == ["your SMS was delivered"]

    telegram.fail_next(1, method="sendMessage", drop_connection=True, processed=True)
    assert await notifier.send(other, "balance is low") == Delivery.FAILED
    assert [m.text for m in telegram.chat_messages(other)] == ["balance is low"]
