"""Scheduled sends end to end: `python -m bot` against fake Telegram and devsms.

Times are set through the dialog ("In 1 hour"); the hour passing is then stood for by moving
the stored due time (the bot is running, or stopped for a restart), with SCHEDULE_POLL short
and SCHEDULE_GRACE ten minutes."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import pytest_asyncio

from tests.e2e.conftest import report_logs_of
from tests.e2e.harness import (
    BOT_TOKEN,
    BotLauncher,
    BotProcess,
    ChatUser,
    connect_token,
    repeated_sends,
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms, SentSms
from tests.fakes.fake_telegram import ChatMessage, FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SEND: Final = "/send_sms.php"
PHONE: Final = "998901234567"
GRACE: Final = dt.timedelta(minutes=10)
TIMEOUT: Final = 15.0


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess

    async def user(self, user_id: int) -> ChatUser:
        """A connected user with a devsms account of their own."""
        token = f"devsms-schedule-token-{user_id}"
        self.devsms.add_account(token, balance=10_000, sms_price=50)
        user = ChatUser(self.telegram, user_id=user_id, language_code="en")
        await connect_token(user, token)
        return user


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("schedule")), telegram, devsms)
    env = {
        "DEFAULT_LANGUAGE": "en",
        "SCHEDULE_POLL": "0.2",
        "SCHEDULE_GRACE": str(int(GRACE.total_seconds())),
    }
    try:
        bot = await launcher.started(extra_env=env)
        yield World(telegram, devsms, bot)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
        assert repeated_sends(devsms) == {}  # no SMS ever went out twice
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


def move_due(bot: BotProcess, item_id: int, moment: dt.datetime) -> None:
    """Stands for time passing: the item becomes due at `moment`."""
    stamp = moment.astimezone(dt.UTC).isoformat(timespec="seconds")
    with contextlib.closing(sqlite3.connect(bot.database_path, timeout=5)) as conn:
        conn.execute("UPDATE scheduled SET due_at = ? WHERE id = ?", (stamp, item_id))
        conn.commit()


async def schedule_in_an_hour(world: World, user: ChatUser, text: str) -> int:
    """/send, «🕒 Send later», «In 1 hour»: the stored item's id."""
    preview = await user.ask(f"/send {PHONE} {text}", "Check before sending")
    user.tap(preview, "Send later")
    ask = await user.reply_after(preview.message_id, "When should it go out?")
    user.tap(ask, "In 1 hour")
    done = await user.reply_after(ask.message_id, "Scheduled for")
    assert "(Asia/Tashkent)" in (done.text or "")
    [(item_id,)] = world.bot.query(
        "SELECT id FROM scheduled WHERE user_id = ? ORDER BY id DESC LIMIT 1", user.user_id
    )
    return int(item_id)


def sent_with(devsms: FakeDevsms, text: str) -> list[SentSms]:
    return [sms for sms in devsms.sent if sms.message == text]


async def notice(user: ChatUser, containing: str) -> ChatMessage:
    return await user.telegram.wait_for_message(
        user.chat_id, containing=containing, timeout=TIMEOUT
    )


async def test_a_scheduled_sms_goes_out_once_at_its_time(world: World) -> None:
    menu = {
        language: {
            c["command"]: c["description"]
            for c in world.telegram.commands({"type": "all_private_chats"}, language)
        }.get("scheduled")
        for language in ("uz", "ru", "en")
    }
    assert menu == {
        "uz": "Rejalashtirilgan yuborishlar",
        "ru": "Запланированные отправки",
        "en": "Scheduled sends",
    }
    user = await world.user(2001)
    item = await schedule_in_an_hour(world, user, "At its time")
    [listing] = [await user.ask("/scheduled", f"#{item}")]
    assert "SMS to +998 90 123 45 67" in (listing.text or "")
    assert sent_with(world.devsms, "At its time") == []

    due = time.time() + 2.0
    move_due(world.bot, item, dt.datetime.fromtimestamp(due, dt.UTC))
    # Watched closely: an SMS that went out early would be seen before its time.
    first_seen = await world.telegram.wait_for(
        lambda: time.time() if sent_with(world.devsms, "At its time") else None, TIMEOUT
    )
    assert first_seen >= int(due)  # stored to the second
    result = await notice(user, "⏰ Scheduled for")
    assert "Sent." in (result.text or "")
    # The next scheduled send of this user goes out too, and the first one is still once.
    second = await schedule_in_an_hour(world, user, "Second one")
    move_due(world.bot, second, dt.datetime.now(dt.UTC))
    await world.telegram.wait_for(lambda: sent_with(world.devsms, "Second one"), TIMEOUT)
    assert len(sent_with(world.devsms, "At its time")) == 1
    [(state,)] = world.bot.query("SELECT state FROM scheduled WHERE id = ?", item)
    assert state == "started"


async def test_after_a_restart_a_little_late_goes_out_much_later_asks(world: World) -> None:
    soon, late = await world.user(2002), await world.user(2003)
    soon_item = await schedule_in_an_hour(world, soon, "A bit late")
    late_item = await schedule_in_an_hour(world, late, "Far too late")
    await world.bot.stop()
    now = dt.datetime.now(dt.UTC)
    # While the bot was down, both became due: one 3 minutes ago, one 30.
    move_due(world.bot, soon_item, now - dt.timedelta(minutes=3))
    move_due(world.bot, late_item, now - dt.timedelta(minutes=30))
    await world.bot.start()

    await world.telegram.wait_for(lambda: sent_with(world.devsms, "A bit late"), TIMEOUT)
    assert "Sent." in ((await notice(soon, "⏰ Scheduled for")).text or "")
    asked = await notice(late, "did not go out")
    assert "It could not go out at its time" in (asked.text or "")
    assert asked.button_texts == ["▶️ Send now", "✖️ Cancel", "🕒 All scheduled"]
    assert sent_with(world.devsms, "Far too late") == []

    late.tap(asked, "Send now")
    await world.telegram.wait_for(lambda: sent_with(world.devsms, "Far too late"), TIMEOUT)
    assert "Sent." in ((await notice(late, "⏰ Scheduled for")).text or "")
    assert len(sent_with(world.devsms, "A bit late")) == 1
    assert len(sent_with(world.devsms, "Far too late")) == 1
