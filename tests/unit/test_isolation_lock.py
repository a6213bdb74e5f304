"""The per-user update lock of replicas (bot/replicas.py RenewedEventIsolation) on a real
Redis: held as long as its handler runs, gone a lease after its replica died."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.base import StorageKey
from redis.asyncio import Redis

from bot.replicas import event_isolation
from tests.support.redis_keys import redis_client

KEY = StorageKey(bot_id=1, chat_id=501, user_id=501)
LEASE = 0.3


@pytest.fixture
async def shared() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_client() as pair:
        yield pair


async def test_a_handler_longer_than_a_lease_keeps_the_users_lock(
    shared: tuple[Redis, str],
) -> None:
    redis, prefix = shared
    first, second = (event_isolation(redis, prefix, lease=LEASE) for _ in range(2))
    order: list[str] = []
    inside = asyncio.Event()

    async def slow_handler() -> None:
        async with first.lock(KEY):
            order.append("first in")
            inside.set()
            await asyncio.sleep(LEASE * 4)  # the work of a slow handler, renewed meanwhile
            order.append("first out")

    async def next_update() -> None:
        await inside.wait()
        async with second.lock(KEY):
            order.append("second in")

    await asyncio.gather(slow_handler(), next_update())
    assert order == ["first in", "first out", "second in"]


async def test_a_dead_replicas_lock_goes_after_a_lease(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    dying, survivor = (event_isolation(redis, prefix, lease=LEASE) for _ in range(2))
    name = survivor.key_builder.build(KEY, "lock")
    async with dying.lock(KEY):
        # What a replica killed now leaves behind: a lock that lives a lease at most, not
        # the longest handler's time (ISOLATION_LOCK_SECONDS).
        assert 0 < await redis.pttl(name) <= LEASE * 1000
    dead = redis.lock(name, timeout=LEASE)  # taken, then never released nor renewed
    assert await dead.acquire(blocking=False)
    async with asyncio.timeout(LEASE * 10), survivor.lock(KEY):
        pass  # the next update of the user is handled on the survivor
