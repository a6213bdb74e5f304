"""The state one process keeps to itself, or shares with other replicas (REDIS_URL).

Chosen once at start-up: without Redis the database and memory (bot/replicas.py and the Redis
client are then never imported: 4 MB and 30-55 ms of a start-up for nothing); with it, the
Redis counterparts of bot/replicas.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation

from services.bulk_plan import SourceCache
from services.otp import CodeKeeper, CodeStore
from services.vault import TokenVault
from storage import Database, SQLiteStorage

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Every key of the bot starts with this (tests pass their own, one per test).
DEFAULT_PREFIX: Final = "devsms"


def dialog_state(
    db: Database,
    redis: Redis | None,
    prefix: str,
    longest_handler: float = 0.0,
    lease: float | None = None,
) -> tuple[BaseStorage, BaseEventIsolation]:
    """FSM storage and event isolation: the database and memory for one process, Redis for
    replicas (`longest_handler`: seconds the slowest handler may take, UPLOAD_TIME_LIMIT;
    `lease`: how long a dead replica's user lock outlives it, LEASE_SECONDS)."""
    if redis is None:
        return SQLiteStorage(db), SimpleEventIsolation()
    from bot.replicas import event_isolation, fsm_storage

    return fsm_storage(redis, prefix), event_isolation(redis, prefix, longest_handler, lease)


def bulk_sources(budget: int, redis: Redis | None, prefix: str) -> SourceCache:
    """Parsed bulk lists between a dialog's steps: in memory, and in Redis for replicas."""
    if redis is None:
        return SourceCache(budget)
    from services.shared_stores import RedisLists

    return SourceCache(budget, RedisLists(redis, prefix, budget))


def otp_codes(vault: TokenVault, redis: Redis | None, prefix: str) -> CodeStore:
    """/otp codes between the code step and Send, never in FSM storage: in memory (a new
    Dispatcher, like a restart, starts without them), or in Redis, encrypted, for an hour."""
    if redis is None:
        return CodeKeeper()
    from services.shared_stores import RedisCodeKeeper

    return RedisCodeKeeper(redis, prefix, vault)
