"""The account's whole traffic, end to end: SMS sent outside the bot (put straight into the fake
gateway's history) show up in the bot, and with the failure watch on, failed ones bring one
grouped notice whose button lists them.

One `python -m bot` serves the module, syncing every half second.
"""

from __future__ import annotations

import asyncio
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
    gateway_requests,
    messages_containing,
    unhandled_errors,
    wait_gateway_requests,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

FAST: Final = {
    "DEFAULT_LANGUAGE": "en",
    "TRAFFIC_SYNC_INTERVAL": "0.5",
    "INSIGHTS_POLL": "0.5",
}
FAILED: Final = "SMS sent outside the bot failed in the last hour"
DEADLINE: Final = 10.0
HISTORY: Final = "/get_history.php"


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess

    def user(self, user_id: int) -> tuple[ChatUser, str]:
        token = f"devsms-insights-token-{user_id}"
        self.devsms.add_account(token, balance=10_000, sms_price=50)
        return ChatUser(self.telegram, user_id=user_id), token


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("insights")), telegram, devsms)
    try:
        bot = await launcher.started(extra_env=FAST)
        yield World(telegram, devsms, bot)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


async def stored(bot: BotProcess, user_id: int, count: int) -> list[tuple[int, str, str]]:
    """(sms_id, origin, status) of the user's stored traffic once it holds `count` rows."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        rows = bot.query(
            "SELECT sms_id, origin, status FROM traffic WHERE user_id = ? ORDER BY sms_id",
            user_id,
        )
        if len(rows) >= count:
            return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.1)


async def test_sms_sent_elsewhere_show_up_in_the_bot(world: World) -> None:
    user, token = world.user(2001)
    await connect_token(user, token)
    otp = world.devsms.sent_elsewhere(token, "998901234567", "Your code: 1234")
    other = world.devsms.sent_elsewhere(token, "998931112233", "Your code: 9876")
    rows = await stored(world.bot, user.user_id, 2)
    assert {(sms_id, origin) for sms_id, origin, _ in rows} == {
        (otp.sms_id, "elsewhere"),
        (other.sms_id, "elsewhere"),
    }
    found = await user.ask("/history +998 90 123 45 67", "SMS to +998 90 123 45 67")
    assert "Your code: 1234" in (found.text or "")
    assert "Your code: 9876" not in (found.text or "")
    # The status follows the history.
    otp.status = "DELIVERED"
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while (
        dict((s, st) for s, _, st in await stored(world.bot, user.user_id, 2))[otp.sms_id]
        != "DELIVERED"
    ):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


async def test_failed_sms_from_elsewhere_bring_one_grouped_notice(world: World) -> None:
    user, token = world.user(2002)
    await connect_token(user, token)
    settings = await user.ask("/settings", "Settings")
    user.tap(settings, "Failure watch and digest")
    insights = await user.reply_after(settings.message_id, "Failure watch (SMS sent outside")
    user.tap(insights, "Watch failures")
    await user.wait_edited(insights, "that fail): on")

    for phone in ("998901234567", "998911234567"):
        world.devsms.sent_elsewhere(token, phone, "otp", status="REJECTED")
    world.devsms.sent_elsewhere(token, "998931234567", "otp", status="UNDELIVERABLE")
    notice = await world.telegram.wait_for_message(user.chat_id, containing=FAILED)
    text = notice.text or ""
    assert "3 SMS sent outside the bot failed" in text
    assert "Beeline: 2" in text and "Ucell: 1" in text
    # More rounds pass: the same failures are never told again.
    await stored(world.bot, user.user_id, 3)
    calls = len(gateway_requests(world.devsms, HISTORY, token))
    await wait_gateway_requests(world.devsms, calls + 3, path=HISTORY, token=token)
    assert len(messages_containing(world.telegram, user.chat_id, FAILED)) == 1

    user.tap(notice, "Show them")
    listed = await user.reply_after(notice.message_id, "The SMS that failed")
    shown = listed.text or ""
    assert shown.count("❌ rejected") == 2 and shown.count("❌ undeliverable") == 1
