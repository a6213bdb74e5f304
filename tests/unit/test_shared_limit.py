"""The notifier's limit shared by replicas (bot/notices/limiter.py), on a real Redis: two
limiters over the same keys never let more through together than one would alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiogram import Bot
from redis.asyncio import Redis

from bot.notices.limiter import RedisLimiter, Wait
from bot.notices.notifier import Delivery, Notifier
from storage import UserRepo
from tests.support.redis_keys import redis_client
from tests.unit.test_notifier import FakeUsers, max_in_window

BOT_ID = 42


@pytest.fixture
async def redis_and_prefix() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_client() as pair:
        yield pair


def pair(redis: Redis, prefix: str, rate: float, per_chat: float = 1.0) -> list[RedisLimiter]:
    return [
        RedisLimiter(redis, prefix, BOT_ID, rate=rate, per_chat_interval=per_chat)
        for _ in range(2)
    ]


async def test_two_replicas_together_stay_within_the_rate(
    redis_and_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_and_prefix
    limiters = pair(redis, prefix, rate=25)
    granted: list[int] = []
    chat = 0
    # Both replicas ask for a new chat every 5 ms for three seconds of Redis-side time.
    for now in range(1_000_000, 1_003_000, 5):
        for limiter in limiters:
            chat += 1
            slot = await limiter.take(chat, now_ms=now)
            if slot.wait is Wait.NONE:
                granted.append(now)
            else:
                assert slot.wait is Wait.BOT and 0 < slot.seconds <= 0.04
    # One send per 40 ms for the bot as a whole: 25 in any second, never 50.
    assert len(granted) == 75
    for i, start in enumerate(granted):
        assert sum(1 for t in granted[i:] if t < start + 1000) <= 25


async def test_one_chat_gets_one_message_a_second_from_all_replicas(
    redis_and_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_and_prefix
    first, second = pair(redis, prefix, rate=1000)
    assert (await first.take(7, now_ms=5_000)).wait is Wait.NONE
    held = await second.take(7, now_ms=5_100)
    assert held.wait is Wait.CHAT and held.seconds == pytest.approx(0.9)
    assert (await second.take(8, now_ms=5_100)).wait is Wait.NONE  # other chats go on
    assert (await second.take(7, now_ms=6_000)).wait is Wait.NONE


async def test_a_group_gets_at_most_twenty_a_minute_from_all_replicas(
    redis_and_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_and_prefix
    limiters = pair(redis, prefix, rate=1000, per_chat=0)
    for i in range(20):
        slot = await limiters[i % 2].take(-100, group_limit=20, now_ms=10_000 + i * 100)
        assert slot.wait is Wait.NONE
    held = await limiters[0].take(-100, group_limit=20, now_ms=12_000)
    assert held.wait is Wait.CHAT and held.seconds == pytest.approx(58.0)
    assert (await limiters[1].take(-100, group_limit=20, now_ms=70_000)).wait is Wait.NONE


async def test_redis_down_holds_sends_instead_of_letting_them_through() -> None:
    # Nothing listens on port 9: the limiter says wait, it does not raise or wave through.
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    try:
        limiter = RedisLimiter(unreachable, "test-down", BOT_ID, rate=25)
        slot = await limiter.take(1)
        assert slot.wait is Wait.BOT and slot.seconds > 0
    finally:
        await unreachable.aclose()


class TimedBot:
    """Records when each message left, on the real clock."""

    def __init__(self, sent: list[float]) -> None:
        self.sent = sent

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> object:
        self.sent.append(time.monotonic())
        return object()


async def test_two_notifiers_share_one_rate(redis_and_prefix: tuple[Redis, str]) -> None:
    """Two replicas' notifiers, 15 messages each to other chats, at NOTIFY_RATE 20: alone
    each would be done in 0.7 s; together they take the 30 slots of 1.5 s."""
    redis, prefix = redis_and_prefix
    sent: list[float] = []
    notifiers = [
        Notifier(
            cast(Bot, TimedBot(sent)),
            cast(UserRepo, FakeUsers(*range(1, 100))),
            rate=20,
            shared=RedisLimiter(redis, prefix, BOT_ID, rate=20),
        )
        for _ in range(2)
    ]
    for notifier in notifiers:
        await notifier.start()
    try:
        futures = [
            notifiers[i % 2].submit(chat, f"news {chat}") for i, chat in enumerate(range(1, 31))
        ]
        async with asyncio.timeout(10):
            results = await asyncio.gather(*futures)
    finally:
        for notifier in notifiers:
            await notifier.stop(drain=0)
    assert results == [Delivery.DELIVERED] * 30
    assert sent[-1] - sent[0] >= 29 * 0.05 - 0.01
    # Spaced in Redis's time; the way from Redis to the send may shift one by a few ms.
    assert max_in_window(sent, 1.0) <= 21
