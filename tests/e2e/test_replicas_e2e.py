"""Two replicas of `python -m bot` in webhook mode, REDIS_URL set, one database, behind a
round-robin balancer on 127.0.0.1: the fake Telegram posts each update to the balancer, which
hands them to the replicas in turn, as a load balancer would. A user's dialog goes on
whichever replica takes the next update, and a send goes out once.

Redis: TEST_REDIS_URL's server, in a database number of this module's own, flushed before
and after (the bots use their default key prefix).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.conftest import GOOD_TOKEN
from tests.e2e.harness import (
    BOT_TOKEN,
    BotLauncher,
    BotProcess,
    ChatUser,
    connect_token,
    free_port,
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram
from tests.support.balancer import Balancer
from tests.support.services import redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PUBLIC: Final = "https://bot.example.test"
SECRET: Final = "e2e-replicas-secret_0123456789"
SEND: Final = "/send_sms.php"
REDIS_DB: Final = 13


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    replicas: list[BotProcess]
    balancer: Balancer


def own_database(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{REDIS_DB}"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    url = own_database(redis_url())
    redis = Redis.from_url(url)
    await redis.flushdb()
    telegram, devsms = FakeTelegram(BOT_TOKEN), FakeDevsms()
    await telegram.start()
    await devsms.start()
    devsms.add_account(GOOD_TOKEN, balance=10_000, sms_price=50)
    root = Path(tmp_path_factory.mktemp("replicas"))
    ports = [free_port(), free_port()]
    balancer = Balancer([f"http://127.0.0.1:{port}" for port in ports])
    await balancer.start()
    telegram.route_webhook(PUBLIC, balancer.base)
    launcher = BotLauncher(root, telegram, devsms)
    replicas: list[BotProcess] = []
    try:
        for name, port in zip(("a", "b"), ports, strict=True):
            env = {
                "TELEGRAM_MODE": "webhook",
                "PUBLIC_BASE_URL": PUBLIC,
                "WEBHOOK_SECRET": SECRET,
                "WEB_PORT": str(port),
                "REDIS_URL": url,
                "REPLICA_ID": f"replica-{name}",
                "DATABASE_PATH": str(root / "shared" / "bot.sqlite3"),
            }
            replicas.append(await launcher.started(name, extra_env=env))
        yield World(telegram, devsms, replicas, balancer)
        for replica in replicas:
            assert unhandled_errors(replica) == [], replica.log_tail(120)
    finally:
        await launcher.stop_all()
        await balancer.stop()
        await devsms.stop()
        await telegram.stop()
        await redis.flushdb()
        await redis.aclose()


async def test_a_dialog_spread_over_two_replicas_sends_once(world: World) -> None:
    user = ChatUser(world.telegram, user_id=7101)
    await connect_token(user, GOOD_TOKEN)
    await user.ask("/send", "Whom to send to?")
    await user.ask("+998 90 123 45 67", "text")
    preview = await user.ask("Hello from two replicas", "Check before sending")
    user.tap(preview, "Send")
    await user.wait_edited(preview, "Sent")
    [request] = world.devsms.requests_to(SEND)
    assert request.json is not None and request.json["message"] == "Hello from two replicas"
    # Both replicas took part of the dialog, and each names itself in its log.
    assert all(count > 0 for count in world.balancer.handed.values()), world.balancer.handed
    assert len(world.balancer.handed) == 2
    for replica, name in zip(world.replicas, ("replica-a", "replica-b"), strict=True):
        assert f"[{name}]" in replica.log_text()


async def test_a_double_tap_split_over_the_replicas_sends_once(world: World) -> None:
    user = ChatUser(world.telegram, user_id=7102)
    await connect_token(user, GOOD_TOKEN)
    await user.ask("/send", "Whom to send to?")
    await user.ask("+998 90 765 43 21", "text")
    preview = await user.ask("Tapped twice", "Check before sending")
    before = dict(world.balancer.handed)
    first, second = user.tap(preview, "Send"), user.tap(preview, "Send")
    await user.answer_to(first)
    await user.answer_to(second)
    await user.wait_edited(preview, "Sent")
    # Each tap went to another replica; one SMS left, the other tap found no draft.
    assert {t: n - before.get(t, 0) for t, n in world.balancer.handed.items()} == dict.fromkeys(
        world.balancer.targets, 1
    )
    sent = [
        r for r in world.devsms.requests_to(SEND) if r.json and r.json["message"] == "Tapped twice"
    ]
    assert len(sent) == 1
