"""Webhook mode end to end: `python -m bot` with TELEGRAM_MODE=webhook behind a public URL the
fake Telegram routes to the bot's own web server, which it POSTs updates to as Telegram does.

One bot process serves the module; the last test stops it and starts it again in polling mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
import pytest_asyncio

from bot.web.health import PROBE_FRESH
from tests.conftest import GOOD_TOKEN
from tests.e2e.conftest import report_logs_of
from tests.e2e.harness import (
    BOT_TOKEN,
    BotLauncher,
    BotProcess,
    ChatUser,
    connect_token,
    free_port,
    messages_containing,
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PUBLIC: Final = "https://bot.example.test"
SECRET: Final = "e2e-webhook-secret_0123456789"
SEND: Final = "/send_sms.php"
PHONE: Final = "998901234567"
STALE: Final = "This preview is no longer active."


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess
    base: str  # the bot's web server, as the operator's proxy reaches it

    async def get(self, path: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base + path) as response,
        ):
            return response.status, await response.json()

    async def readyz_turns(self, expected: tuple[int, Any]) -> tuple[int, Any]:
        """/readyz's answer once it is `expected`, else the last one after the probe's
        result has had time to go stale (it serves requests for PROBE_FRESH seconds)."""
        deadline = time.monotonic() + PROBE_FRESH + 5
        answer = await self.get("/readyz")
        while answer != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            answer = await self.get("/readyz")
        return answer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    devsms.add_account(GOOD_TOKEN, balance=10_000, sms_price=50)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    telegram.route_webhook(PUBLIC, base)
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("webhook")), telegram, devsms)
    env = {
        "TELEGRAM_MODE": "webhook",
        "PUBLIC_BASE_URL": PUBLIC,
        "WEBHOOK_SECRET": SECRET,
        "WEB_PORT": str(port),
    }
    try:
        bot = await launcher.started(extra_env=env)
        yield World(telegram, devsms, bot, base)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
        assert SECRET not in bot.log_text()
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


def start_update(user_id: int, update_id: int) -> dict[str, Any]:
    """A /start from a new user, as Telegram would post it (never queued in the fake)."""
    user = {"id": user_id, "is_bot": False, "first_name": "Mallory", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Mallory"},
            "from": user,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_start_up_sets_the_webhook_with_the_secret_and_takes_no_polls(world: World) -> None:
    [call] = world.telegram.calls_of("setWebhook")
    assert call.params["url"] == PUBLIC + "/telegram"
    assert call.params["secret_token"] == SECRET
    assert call.params.get("drop_pending_updates") in (None, False)
    assert {"message", "callback_query"} <= set(call.params["allowed_updates"])
    assert world.telegram.calls_of("getUpdates") == []
    assert world.telegram.calls_of("deleteWebhook") == []


async def test_posts_without_the_right_secret_are_refused_and_never_handled(
    world: World,
) -> None:
    update = start_update(7001, 900_001)
    assert (await world.telegram.post_to_webhook(update, secret=None))[0] == 401
    assert (await world.telegram.post_to_webhook(update, secret="wrong-secret"))[0] == 401
    # The same user then writes for real: only that /start is answered.
    user = ChatUser(world.telegram, user_id=7001, first_name="Mallory")
    await user.ask("/start", "API token")
    assert len(messages_containing(world.telegram, 7001, "API token")) == 1
    assert world.bot.query("SELECT count(*) FROM users WHERE id = ?", 7001) == [(1,)]


async def test_an_update_telegram_sends_again_is_handled_once(world: World) -> None:
    update = start_update(7005, 900_005)
    # Telegram resends an update whose answer it did not get: the same update_id again.
    assert (await world.telegram.post_to_webhook(update))[0] == 200
    assert (await world.telegram.post_to_webhook(update))[0] == 200

    def greetings() -> int:
        return len(messages_containing(world.telegram, 7005, "API token"))

    await world.telegram.wait_for(lambda: greetings() == 1)
    # A later message of the same user is handled after anything still queued for them (one
    # update per user at a time, in order): once it is answered, a second /start would be too.
    user = ChatUser(world.telegram, user_id=7005, first_name="Mallory")
    await user.ask("/cancel", "Send /start when you are ready")
    assert greetings() == 1
    assert "update 900005 came again" in world.bot.log_text()


async def test_malformed_bodies_get_400_and_the_bot_goes_on(world: World) -> None:
    for body in (b"{not json", b"[]", b'{"update_id": "seven"}', b"\xff\xfe"):
        status, _ = await world.telegram.post_to_webhook(body)
        assert status == 400, body
    user = ChatUser(world.telegram, user_id=7002)
    await user.ask("/start", "API token")


async def test_a_send_is_acknowledged_before_the_gateway_answers_and_goes_out_once(
    world: World,
) -> None:
    user = ChatUser(world.telegram, user_id=7003)
    await connect_token(user, GOOD_TOKEN)
    preview = await user.ask(f"/send {PHONE} Through the webhook", "Check before sending")
    posted = len(world.telegram.webhook_posts)
    world.devsms.hold(SEND)
    try:
        # Two taps before the bot saw either: one update per user at a time, the second
        # finds the draft gone.
        taps = [user.tap(preview, "✅ Send"), user.tap(preview, "✅ Send")]
        await world.devsms.wait_held(1)
        # The send is in flight, and Telegram already has its 200 for both taps.
        acknowledged = world.telegram.webhook_posts[posted:]
        assert [post.status for post in acknowledged] == [200, 200]
    finally:
        world.devsms.release()
    result = await user.wait_edited(preview, "Sent.")
    answers = [(await user.answer_to(query))["text"] for query in taps]
    assert sorted(answers) == sorted(["Sending…", STALE])
    [sms] = world.devsms.sent
    assert (sms.phone, sms.message) == (PHONE, "Through the webhook")
    assert len(world.devsms.requests_to(SEND)) == 1
    assert f"SMS id: {sms.sms_id}" in (result.text or "")


async def test_health_and_readiness_follow_the_database(world: World) -> None:
    assert await world.get("/healthz") == (200, {"ok": True})
    assert await world.get("/readyz") == (200, {"ready": True})
    database = world.bot.database_path
    # Another process holds the write lock: no send could be recorded.
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        locked = (503, {"ready": False, "reason": "database"})
        assert await world.readyz_turns(locked) == locked
        assert await world.get("/healthz") == (200, {"ok": True})
        holder.execute("ROLLBACK")
    assert await world.readyz_turns((200, {"ready": True})) == (200, {"ready": True})
    moved = database.with_name("moved.sqlite3")
    database.rename(moved)
    try:
        gone = (503, {"ready": False, "reason": "database"})
        assert await world.readyz_turns(gone) == gone
    finally:
        moved.rename(database)
    assert await world.readyz_turns((200, {"ready": True})) == (200, {"ready": True})


async def test_stopping_leaves_the_webhook_and_polling_mode_deletes_it(world: World) -> None:
    bot, telegram = world.bot, world.telegram
    assert await bot.stop() == 0, bot.log_tail()
    assert telegram.webhook_url == PUBLIC + "/telegram"  # another process takes over
    # A message while nobody listens waits at Telegram, and is not lost by the switch.
    user = ChatUser(telegram, user_id=7004)
    waiting = user.send("/start")
    bot.extra_env = {"WEB_PORT": bot.extra_env["WEB_PORT"]}  # polling, web server still on
    await bot.start()
    [delete] = telegram.calls_of("deleteWebhook")
    assert delete.params.get("drop_pending_updates") in (None, False)
    assert telegram.webhook_url == ""
    assert telegram.calls.index(delete) < telegram.calls.index(telegram.calls_of("getUpdates")[0])
    await user.reply_after(waiting, "API token")
    assert await world.get("/healthz") == (200, {"ok": True})


async def test_told_to_delete_it_webhook_mode_deletes_the_webhook_at_stop(world: World) -> None:
    bot, telegram = world.bot, world.telegram
    assert await bot.stop() == 0, bot.log_tail()
    deletes = len(telegram.calls_of("deleteWebhook"))
    bot.extra_env = {
        "TELEGRAM_MODE": "webhook",
        "PUBLIC_BASE_URL": PUBLIC,
        "WEBHOOK_SECRET": SECRET,
        "WEB_PORT": bot.extra_env["WEB_PORT"],
        "WEBHOOK_DELETE_ON_STOP": "1",
    }
    await bot.start()
    assert telegram.webhook_url == PUBLIC + "/telegram"
    assert await bot.stop() == 0, bot.log_tail()
    assert len(telegram.calls_of("deleteWebhook")) == deletes + 1
    assert telegram.webhook_url == ""
