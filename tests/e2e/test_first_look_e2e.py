"""The first look at a newly connected account, end to end: the real bot reads the account's
history right after the token is connected, not at the next traffic round (an hour here), and
/stats says the look is under way until then rather than drawing an empty chart.

One `python -m bot` serves the module.
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
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

HISTORY: Final = "/get_history.php"
REPLY: Final = 20.0  # the first chart starts the chart process (matplotlib's import)
TOKEN: Final = "devsms-first-look-token-3001"
POLLS: Final = 50  # /stats asked at most this often, 0.2 s apart, while the first look runs


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("first-look")), telegram, devsms)
    try:
        bot = await launcher.started(
            extra_env={"DEFAULT_LANGUAGE": "en", "TRAFFIC_SYNC_INTERVAL": "3600"}
        )
        yield World(telegram, devsms, bot)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


async def test_a_new_account_is_read_at_once_and_stats_waits_for_it(world: World) -> None:
    devsms = world.devsms
    devsms.add_account(TOKEN, balance=10_000, sms_price=50)
    for n, status in enumerate(["DELIVERED", "REJECTED"]):
        devsms.sent_elsewhere(TOKEN, "998901234567", f"OTP {n}", status=status)
    user = ChatUser(world.telegram, user_id=3001, language_code="en")
    # The history's answer waits, so the first look is provably under way.
    devsms.hold(HISTORY)
    await connect_token(user, TOKEN)
    await devsms.wait_held(1)
    early = await user.ask("/stats", "first look at your account is under way")
    assert "photo" not in early.message
    devsms.release()
    # Well before the next round (an hour away) the account is read and /stats draws it.
    for _ in range(POLLS):
        reply = await user.ask("/stats", timeout=REPLY)
        if "photo" in reply.message:
            break
        assert "first look at your account is under way" in (reply.text or "")
        await asyncio.sleep(0.2)
    assert "photo" in reply.message, world.bot.log_tail(40)
    assert "SMS: 2 · delivered 1, not delivered 1, waiting 0" in (reply.text or "")
