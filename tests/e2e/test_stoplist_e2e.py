"""The stop list end to end: `python -m bot` refuses a single send to a stopped number and
sends a bulk file to the other numbers only; the fake gateway never sees the stopped one.

One bot process serves the module (each test is a user with a devsms account of its own).
"""

from __future__ import annotations

import csv
import io
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
    unanswered_messages,
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import ChatMessage, FakeTelegram, UploadedFile

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

STOPPED: Final = "998901234567"
OTHERS: Final = ("998901234568", "998912345678")
JOB_TIMEOUT: Final = 20.0


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess

    def user(self, user_id: int) -> ChatUser:
        self.devsms.add_account(token_of(user_id), balance=10_000, sms_price=50)
        return ChatUser(self.telegram, user_id=user_id, language_code="en")

    def phones_sent(self, user_id: int) -> list[str]:
        return [s.phone for s in self.devsms.sent if s.token == token_of(user_id)]


def token_of(user_id: int) -> str:
    return f"devsms-stoplist-token-{user_id}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("stoplist")), telegram, devsms)
    try:
        env = {"DEFAULT_LANGUAGE": "en", "BULK_RATE": "100", "STOPLIST_LIMIT": "50"}
        bot = await launcher.started(extra_env=env)
        yield World(telegram, devsms, bot)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


async def connected_user(world: World, user_id: int) -> ChatUser:
    user = world.user(user_id)
    await user.ask("/start", "API token")
    connected = await user.reply_after(user.send(token_of(user_id)), "Token connected")
    await user.reply_after(connected.message_id, "Balance:")
    return user


async def stop_number(user: ChatUser, typed: str) -> ChatMessage:
    listing = await user.ask("/stoplist", "Stop list")
    user.tap(listing, "Add")
    await user.reply_after(listing.message_id, "Send the numbers to add")
    return await user.ask(typed, "added to the stop list")


def text_of(message: ChatMessage) -> str:
    return message.text or ""


async def test_a_single_send_to_a_stopped_number_is_refused(world: World) -> None:
    user = await connected_user(world, 3101)
    added = await stop_number(user, "+998 90 123 45 67 asked to stop")
    assert "✅ 1 number added to the stop list." in text_of(added)
    refused = await user.ask("/send 901234567 Big sale today", "is on your stop list")
    assert "Note: asked to stop" in text_of(refused)
    assert refused.button_texts == ["🗑 Remove from stop list"]
    # Another number in the same dialog still gets its preview and goes out.
    preview = await user.ask("901234568", "Check before sending")
    user.tap(preview, "✅ Send")
    await user.wait_edited(preview, "Sent.")
    assert world.phones_sent(user.user_id) == ["998901234568"]
    kept = world.bot.query("SELECT phone, note FROM stoplist WHERE user_id = ?", user.user_id)
    assert kept == [(STOPPED, "asked to stop")]
    assert unanswered_messages(user.telegram, user.chat_id) == []


async def test_a_bulk_file_goes_to_the_others_only_and_says_one_was_left_out(
    world: World,
) -> None:
    user = await connected_user(world, 3201)
    await stop_number(user, "901234567")
    await user.ask("/bulk", "Bulk sending")
    content = b"phone;name\n901234567;Ali\n901234568;Vali\n912345678;Guli\n"
    sent = user.telegram.send_document(user.user_id, "people.csv", content, language_code="en")
    await user.reply_after(sent, "Now send the text")
    review = await user.ask("Salom {name}", "Check before sending")
    assert "✅ To send: 2" in text_of(review)
    assert "⛔ 1 number on your stop list was left out." in text_of(review)
    user.tap(review, "Start")
    await user.reply_after(review.message_id, "Bulk job #")
    summary = await user.reply_after(review.message_id, "finished.", timeout=JOB_TIMEOUT)
    assert "Sent: 2 · failed: 0" in text_of(summary)
    assert "⛔ 1 number on your stop list was left out." in text_of(summary)
    assert sorted(world.phones_sent(user.user_id)) == sorted(OTHERS)
    assert STOPPED not in {s.phone for s in world.devsms.sent}
    [upload] = [
        call.params["document"]
        for call in user.telegram.calls_of("sendDocument")
        if call.params.get("chat_id") in (user.chat_id, str(user.chat_id))
        and isinstance(call.params.get("document"), UploadedFile)
        and "-result-" in call.params["document"].file_name
    ]
    rows = list(csv.reader(io.StringIO(upload.content.decode("utf-8-sig"))))[1:]
    assert [(r[1], r[3]) for r in rows] == [
        (STOPPED, "stop_list"),
        (OTHERS[0], "sent"),
        (OTHERS[1], "sent"),
    ]
    assert unanswered_messages(user.telegram, user.chat_id) == []
