"""What several replicas of the bot share through Redis (REDIS_URL), and the replica's name.

With REDIS_URL empty the bot is one process: FSM state in the database (storage/fsm.py), event
isolation in memory (aiogram's SimpleEventIsolation), the dialog stores and the notifier's
pacing in memory. With it set, each of these has a Redis counterpart, chosen here once:

- FSM state and data: aiogram's own RedisStorage, keyed by bot id, chat, user, thread and
  destiny, with the same strict JSON as storage/fsm.py (a value that would not come back as
  stored is refused) and a TTL, so dialogs abandoned for a month do not stay in Redis for ever;
- per-user event isolation: aiogram's RedisEventIsolation (a Redis lock per chat and user), so
  a double tap that the load balancer spreads over two replicas is still handled one at a time;
  the lock lasts a lease (LEASE_SECONDS) and is renewed while its handler runs, so the lock of
  a replica killed mid-update goes within a lease, not after the longest handler's time;
- the /otp code keeper and the parsed bulk lists (services/shared_stores.py), the notifier's
  limiter (bot/notices/limiter.py): see there.

The row caches of storage/cache.py keep nothing then (Database.stop_caching): every replica
reads the database, which is the truth they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final

from aiogram.fsm.storage.base import (
    DefaultKeyBuilder,
    StorageKey,
)
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError, WatchError

from storage.fsm import to_json

logger = logging.getLogger(__name__)

# A dialog untouched for this long is forgotten (the SQLite storage keeps it for ever; Redis
# memory is dearer, and nobody comes back to a draft after a month).
DIALOG_TTL: Final = 30 * 24 * 3600
# A handler holds its user's lock at most this long, past the longest wait a handler has (an
# upload read in the worker, UPLOAD_TIME_LIMIT): a handler that hangs longer lets it go then.
ISOLATION_LOCK_SECONDS: Final = 300
# The lock's own time when no lease time is given; renewed every third of it while its handler
# runs, it outlives a replica that died by no more than this.
ISOLATION_LEASE_SECONDS: Final = 30.0
# Telegram keeps an unacknowledged update for up to 24 hours.
TAKEN_UPDATE_SECONDS: Final = 24 * 3600


class SharedFsmStorage(RedisStorage):
    """RedisStorage over the app's one Redis client, which the app closes (not the Dispatcher:
    the notifier and the stores still use the client after the Dispatcher's shutdown).

    update_data is one optimistic transaction (WATCH/MULTI), as storage/fsm.py's is one SQL
    transaction: two concurrent updates of one dialog never lose each other's keys (aiogram's
    own reads, then writes)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        super().__init__(
            redis,
            key_builder=key_builder(prefix),
            state_ttl=DIALOG_TTL,
            data_ttl=DIALOG_TTL,
            json_dumps=to_json,
        )
        self._prefix = prefix

    async def close(self) -> None:
        pass

    async def forget_user(self, bot_id: int, user_id: int) -> int:
        """Erasing a user (/logout): their dialogs in every chat. Keys end in
        `<user>:<destiny>:<part>` (DefaultKeyBuilder), whatever comes before. A scan of the
        bot's dialogs: rare, and never on an update's path but the erasing one."""
        doomed = [
            key
            async for key in self.redis.scan_iter(
                match=f"{self._prefix}:fsm:{bot_id}:*", count=1000
            )
            if key.decode().split(":")[-3] == str(user_id)
        ]
        if doomed:
            await self.redis.delete(*doomed)
        return len(doomed)

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        redis_key = self.key_builder.build(key, "data")
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(redis_key)
                    raw = await pipe.get(redis_key)
                    current: dict[str, Any] = {} if raw is None else json.loads(raw)
                    current.update(data)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if current:
                        pipe.set(redis_key, to_json(current), ex=self.data_ttl)
                    else:
                        pipe.delete(redis_key)
                    await pipe.execute()
                    return current.copy()
                except WatchError:
                    continue  # another replica wrote the dialog meanwhile: read it again


class TakenUpdates:
    """Update ids claimed by one replica (webhook mode): Telegram resends an update whose 200
    it missed, and the load balancer may hand the resend to another replica, which must drop
    it as the first one's own memory would (bot/web/webhook.py)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:update:"

    async def claim(self, bot_id: int, update_id: int) -> bool:
        """True for the first replica to see the update; RedisError when unknown."""
        key = f"{self._prefix}{bot_id}:{update_id}"
        return bool(await self._redis.set(key, b"1", nx=True, ex=TAKEN_UPDATE_SECONDS))


def key_builder(prefix: str) -> DefaultKeyBuilder:
    # The bot id in every key: one Redis may serve several bots.
    # ... and the business connection, as storage/fsm.py's keys have it.
    return DefaultKeyBuilder(
        prefix=f"{prefix}:fsm",
        with_bot_id=True,
        with_business_connection_id=True,
        with_destiny=True,
    )


def fsm_storage(redis: Redis, prefix: str) -> SharedFsmStorage:
    return SharedFsmStorage(redis, prefix)


class RenewedEventIsolation(RedisEventIsolation):
    """aiogram's RedisEventIsolation with a lock of `lease` seconds, renewed every third of
    it while the handler runs (up to `limit` seconds in all): a replica killed mid-update
    leaves its user waiting a lease at most, not the longest handler's time (a user's next
    update, on a survivor, waits for this lock)."""

    def __init__(self, redis: Redis, prefix: str, *, lease: float, limit: float) -> None:
        super().__init__(redis, key_builder=key_builder(prefix), lock_kwargs={"timeout": lease})
        self.lease = lease
        self.limit = limit

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        redis_key = self.key_builder.build(key, "lock")
        lock = self.redis.lock(name=redis_key, timeout=self.lease, lock_class=Lock)
        async with lock:
            keeper = asyncio.create_task(self._keep(lock), name="isolation-lock")
            try:
                yield None
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper

    async def _keep(self, lock: Lock) -> None:
        held = 0.0
        pause = self.lease / 3
        while held + pause < self.limit:
            await asyncio.sleep(pause)
            held += pause
            try:
                await lock.reacquire()
            except LockError:
                logger.warning("a user's update lock expired under its handler")
                return
            except RedisError:
                logger.warning("a user's update lock not renewed; trying again")


def event_isolation(
    redis: Redis, prefix: str, longest_handler: float = 0.0, lease: float | None = None
) -> RenewedEventIsolation:
    limit = max(ISOLATION_LOCK_SECONDS, int(longest_handler) + 60)
    lease = ISOLATION_LEASE_SECONDS if lease is None else lease
    return RenewedEventIsolation(redis, prefix, lease=min(lease, limit), limit=limit)


async def open_redis(url: str) -> Redis:
    """A client for the whole process; fails at start-up, not on the first update, when the
    server cannot be reached."""
    client = Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5)
    try:
        await client.ping()  # type: ignore[misc]  # redis-py types it for both clients
    except BaseException:
        await client.aclose()
        raise
    return client
