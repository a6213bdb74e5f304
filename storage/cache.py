"""Small write-through caches of rows read on every update (users, tokens, dialog states).

The database stays the truth; a cache only saves the round trip to aiosqlite's thread for a
row this process has read or written. That is sound because this process is the database's
only writer (maintenance scripts run while the bot is stopped, see README), and because of
how the repositories use a cache:

- an entry is filled right after a read or write done under the Database's lock, with no
  await in between, so a later writer of the same row has not started yet;
- every write drops the row's entry right after its statement, so the next read goes to the
  database (which other tasks reach only after the writer's transaction has ended);
- nothing is filled from inside a transaction, which could still roll back, and nothing
  from the read-only connection, whose reads are not ordered with the writes.

Each cache is bounded and evicts the least recently used rows.

With several replicas (REDIS_URL set) other processes write the same rows, so nothing above
holds: `Database.stop_caching()` turns every cache into one that keeps nothing, and each read
goes to the database (the truth every replica shares). The dialog cache is not used then at
all: FSM state lives in Redis (aiogram's RedisStorage). PostgreSQL turns them off as well,
even for one process: its statements run on a pool, not one ordered connection (storage/pg.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from enum import Enum
from typing import Final, Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Missing(Enum):
    """The answer of `RowCache.get` for a key it does not hold (None may be a cached row)."""

    MISSING = "missing"


MISSING: Final = _Missing.MISSING


class RowCache(Generic[K, V]):
    """At most `size` rows by key, least recently used evicted first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self._size = size
        self._keeps = True
        self._rows: OrderedDict[K, V] = OrderedDict()

    def stop_keeping(self) -> None:
        """From now on nothing is kept: another process writes the same rows."""
        self._keeps = False
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: K) -> V | Literal[_Missing.MISSING]:
        try:
            value = self._rows[key]
        except KeyError:
            return MISSING
        self._rows.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if not self._keeps:
            return
        self._rows[key] = value
        self._rows.move_to_end(key)
        if len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def drop(self, key: K) -> None:
        self._rows.pop(key, None)

    def clear(self) -> None:
        self._rows.clear()
