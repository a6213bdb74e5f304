"""aiogram FSM storage in the `fsm` table, so dialogs survive a restart.

State and data are stored as JSON, never pickle: a database row must never be able to run
code, and a developer reading the table should see plain values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol, runtime_checkable

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from storage.cache import MISSING, RowCache
from storage.db import Database, utc_now

logger = logging.getLogger(__name__)

_EMPTY: Final = "{}"
# Row key -> (state, data as stored) or None for no row, of the users writing now: aiogram
# reads the state of every update, and most users are in no dialog (storage/cache.py).
DIALOG_CACHE: Final = "fsm"
DIALOG_CACHE_SIZE: Final = 10_000

_Row = tuple[str | None, str] | None


def build_key(key: StorageKey) -> str:
    """`bot:chat:user:thread:business_connection:destiny`.

    bot, chat and user are integers and come first, so `fsm_key_ids()` can split them off
    unambiguously whatever the later fields hold.
    """
    return (
        f"{key.bot_id}:{key.chat_id}:{key.user_id}:{key.thread_id or ''}:"
        f"{key.business_connection_id or ''}:{key.destiny}"
    )


def fsm_key_ids(key: str) -> tuple[int, int] | None:
    """(chat_id, user_id) of a key made by `build_key()`, or None for a foreign key."""
    parts = key.split(":", 3)
    if len(parts) < 4:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


def to_json(data: Mapping[str, Any]) -> str:
    """FSM data as stored, here and in Redis (bot/replicas.py); TypeError for data that
    would not come back unchanged."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"FSM data must be JSON-serialisable: {exc}") from None
    # json.dumps quietly turns tuples into lists and int keys into strings; the handler
    # would then read back something else than it stored. Refuse that at once.
    if json.loads(text) != data:
        changed = ", ".join(
            repr(k) for k, v in data.items() if json.loads(json.dumps({k: v})) != {k: v}
        )
        raise TypeError(
            "FSM data must survive a JSON round trip unchanged (str keys; lists, not "
            f"tuples); offending top-level keys: {changed}"
        )
    return text


@runtime_checkable
class ForgetsUsers(Protocol):
    """An FSM storage outside the database (Redis, bot/replicas.py): UserRepo.delete_everything
    cannot reach it, so erasing a user asks it too."""

    async def forget_user(self, bot_id: int, user_id: int) -> int:
        """Deletes every dialog of the user (in any chat); returns how many keys went."""
        ...


def forget_dialogs(db: Database) -> None:
    """For writes to the table made elsewhere (erasing a user: rare, so everything goes)."""
    _cache(db).clear()


def _cache(db: Database) -> RowCache[str, _Row]:
    return db.cache(DIALOG_CACHE, DIALOG_CACHE_SIZE)


class SQLiteStorage(BaseStorage):
    """Persists FSM state and data in the shared Database; `close()` leaves it open."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache = _cache(db)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        row_key = build_key(key)
        async with self._db.transaction():
            await self._db.execute(
                "INSERT INTO fsm (key, state, data, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (row_key, value, _EMPTY, utc_now()),
            )
            await self._delete_if_empty(row_key)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._row(build_key(key))
        return None if row is None else row[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        text = to_json(data)
        row_key = build_key(key)
        async with self._db.transaction():
            await self._db.execute(
                "INSERT INTO fsm (key, state, data, updated_at) VALUES (?, NULL, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at",
                (row_key, text, utc_now()),
            )
            await self._delete_if_empty(row_key)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._row(build_key(key))
        if row is None:
            return {}
        data: dict[str, Any] = json.loads(row[1])
        return data

    async def _row(self, row_key: str) -> _Row:
        cached = self._cache.get(row_key)
        if cached is not MISSING:
            return cached
        found = await self._db.fetchone("SELECT state, data FROM fsm WHERE key = ?", (row_key,))
        row: _Row = None if found is None else (found["state"], found["data"])
        if not self._db.in_transaction:
            self._cache.put(row_key, row)
        return row

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        # One transaction, so two concurrent updates cannot lose each other's keys.
        async with self._db.transaction():
            current = await self.get_data(key)
            current.update(data)
            await self.set_data(key, current)
        return current.copy()

    async def close(self) -> None:
        # The Database is shared with the repositories; the application closes it.
        pass

    async def _delete_if_empty(self, row_key: str) -> None:
        """Ends every write (inside its transaction)."""
        await self._db.execute(
            "DELETE FROM fsm WHERE key = ? AND state IS NULL AND data = ?", (row_key, _EMPTY)
        )
        self._cache.drop(row_key)
