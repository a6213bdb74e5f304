"""Telegram users the bot has seen, and erasing everything the bot keeps about one."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from storage.cache import MISSING, RowCache
from storage.credentials import forget_credentials
from storage.db import Database, utc_now
from storage.fsm import forget_dialogs, fsm_key_ids

logger = logging.getLogger(__name__)

# The user rows of the people writing now (storage/cache.py): one row is a few hundred bytes.
USER_CACHE: Final = "users"
USER_CACHE_SIZE: Final = 10_000
# How often a user who keeps writing has last_seen_at written: it is read by nobody to the
# second, and writing it on every update was one commit (and fsync) per update.
SEEN_EVERY: Final = 60.0

_COLUMNS: Final = (
    "id, language, first_name, username, sender, is_active, created_at, last_seen_at, access, "
    "timezone, quiet_hours"
)


class Access(StrEnum):
    """Who may use the bot when ACCESS_MODE=allowlist (ignored in open mode)."""

    PENDING = "pending"
    ALLOWED = "allowed"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    language: str | None
    first_name: str | None
    username: str | None
    sender: str | None
    is_active: bool
    created_at: str
    last_seen_at: str
    access: Access = Access.PENDING  # counts only when ACCESS_MODE=allowlist
    timezone: str | None = None  # IANA name; None: Asia/Tashkent
    quiet_hours: str | None = None  # "HH:MM-HH:MM" or "off"; None: QUIET_HOURS

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> UserRow:
        return cls(
            id=row["id"],
            language=row["language"],
            first_name=row["first_name"],
            username=row["username"],
            sender=row["sender"],
            is_active=bool(row["is_active"]),
            created_at=row["created_at"],
            last_seen_at=row["last_seen_at"],
            access=Access(row["access"]),
            timezone=row["timezone"],
            quiet_hours=row["quiet_hours"],
        )


@dataclass(frozen=True, slots=True)
class UserCounts:
    total: int
    blocked: int  # is_active = 0: the bot's messages bounce
    valid_tokens: int
    waiting: int  # asked for access, nobody decided yet
    allowed: int
    denied: int


@dataclass(frozen=True, slots=True)
class UserListEntry:
    """One line of the admins' user list."""

    id: int
    first_name: str | None
    username: str | None
    language: str | None
    is_active: bool
    access: Access
    token_state: str | None  # 'valid' / 'invalid', None without a token

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> UserListEntry:
        return cls(
            id=row["id"],
            first_name=row["first_name"],
            username=row["username"],
            language=row["language"],
            is_active=bool(row["is_active"]),
            access=Access(row["access"]),
            token_state=row["token_state"],
        )


_writes: set[asyncio.Task[int]] = set()  # writes in flight, kept from the garbage collector


def _written(task: asyncio.Task[int]) -> None:
    _writes.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.warning("last seen not recorded: %s", exc)


class UserRepo:
    def __init__(self, db: Database) -> None:
        self._db = db
        # user id -> (row, time.monotonic() when it was written or read)
        self._cache: RowCache[int, tuple[UserRow, float]] = db.cache(USER_CACHE, USER_CACHE_SIZE)

    async def upsert_seen(
        self, user_id: int, first_name: str | None, username: str | None
    ) -> UserRow:
        """Records that the user wrote to the bot; keeps language and sender.

        Also marks the user active again: whoever writes to the bot has not blocked it.
        When the cached row already says all that, the update is not waited for: only
        last_seen_at is written, at most every SEEN_EVERY seconds, beside the update (a
        commit waits for the disk, and the update needs nothing from it).
        """
        cached = self._cache.get(user_id)
        if cached is not MISSING:
            known, written = cached
            if known.first_name == first_name and known.username == username and known.is_active:
                if time.monotonic() - written >= SEEN_EVERY:
                    self._cache.put(user_id, (known, time.monotonic()))
                    self._write_soon(
                        "UPDATE users SET last_seen_at = ? WHERE id = ?", (utc_now(), user_id)
                    )
                return known
        now = utc_now()
        row = await self._db.fetchone(
            "INSERT INTO users (id, first_name, username, created_at, last_seen_at) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name, "
            "username = excluded.username, last_seen_at = excluded.last_seen_at, is_active = 1 "
            f"RETURNING {_COLUMNS}",
            (user_id, first_name, username, now, now),
        )
        assert row is not None  # INSERT ... RETURNING always yields the row
        user = UserRow.from_row(row)
        if not self._db.in_transaction:
            self._cache.put(user_id, (user, time.monotonic()))
        return user

    async def get(self, user_id: int) -> UserRow | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return None if row is None else UserRow.from_row(row)

    def _write_soon(self, sql: str, params: tuple[object, ...]) -> None:
        """Runs a write nobody waits for (the cached row stays: last_seen_at is in no
        decision). A bot stopping meanwhile loses it, which costs one minute of last seen."""
        task = asyncio.get_running_loop().create_task(self._db.execute(sql, params))
        _writes.add(task)
        task.add_done_callback(_written)

    def _forget(self, user_id: int) -> None:
        """Every write to a user's row ends with this (see storage/cache.py)."""
        self._cache.drop(user_id)

    async def set_language(self, user_id: int, lang: str | None) -> bool:
        """Returns False when there is no such user."""
        return await self._set(user_id, "language", lang)

    async def set_sender(self, user_id: int, sender: str | None) -> bool:
        """None goes back to the gateway's default sender."""
        return await self._set(user_id, "sender", sender)

    async def set_timezone(self, user_id: int, zone: str | None) -> bool:
        return await self._set_clock(user_id, "timezone", zone)

    async def set_quiet(self, user_id: int, quiet: str | None) -> bool:
        """ "HH:MM-HH:MM" or "off"; None goes back to QUIET_HOURS."""
        return await self._set_clock(user_id, "quiet_hours", quiet)

    async def _set_clock(self, user_id: int, column: str, value: str | None) -> bool:
        """The user's clock changed: their scheduled items held for quiet hours (see
        ScheduleRepo.hold) are looked at again next round, against the new hours."""
        async with self._db.transaction():
            await self._db.execute(
                "UPDATE scheduled SET release_at = NULL "
                "WHERE user_id = ? AND release_at IS NOT NULL",
                (user_id,),
            )
            return await self._set(user_id, column, value)

    async def set_active(self, user_id: int, active: bool) -> bool:
        """False when the user blocked the bot: broadcasts skip them."""
        return await self._set(user_id, "is_active", int(active))

    async def _set(self, user_id: int, column: str, value: str | int | None) -> bool:
        # `column` is always one of the literals above, never user input.
        changed = await self._db.execute(
            f"UPDATE users SET {column} = ? WHERE id = ?", (value, user_id)
        )
        self._forget(user_id)
        return changed > 0

    async def delete_everything(self, user_id: int) -> bool:
        """Erases the user, their token, their outbox and their dialog state.

        Returns whether the user row existed. FSM rows go too even when it did not.
        """
        async with self._db.transaction():
            # The cascades would do this; explicit deletes keep it true even on a
            # connection that forgot `PRAGMA foreign_keys`.
            await self._db.execute("DELETE FROM outbox WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM credentials WHERE user_id = ?", (user_id,))
            for table in ("traffic", "traffic_sync", "balance_snapshots", "insight_prefs"):
                await self._db.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
            # LIKE only narrows the candidates; the exact match on the chat and user
            # fields is done in Python, since a thread id could also equal the user id.
            candidates = await self._db.fetchall(
                "SELECT key FROM fsm WHERE key LIKE ?", (f"%:{user_id}:%",)
            )
            fsm_keys = [
                row["key"]
                for row in candidates
                if (ids := fsm_key_ids(row["key"])) is not None and user_id in ids
            ]
            for key in fsm_keys:
                await self._db.execute("DELETE FROM fsm WHERE key = ?", (key,))
            existed = await self._db.execute("DELETE FROM users WHERE id = ?", (user_id,))
            self._forget(user_id)
            forget_credentials(self._db, user_id)
            forget_dialogs(self._db)
        logger.info("user %s erased (%s dialog rows)", user_id, len(fsm_keys))
        return existed > 0

    async def count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM users")
        return 0 if row is None else int(row[0])

    # --- Administration -------------------------------------------------------------------

    async def get_access(self, user_id: int) -> Access | None:
        """None when the user never wrote to the bot."""
        row = await self._db.fetchone("SELECT access FROM users WHERE id = ?", (user_id,))
        return None if row is None else Access(row["access"])

    async def set_access(self, user_id: int, access: Access) -> None:
        """Allows or denies a user; an admin may allow someone before they first write,
        so a missing row is created."""
        now = utc_now()
        await self._db.execute(
            "INSERT INTO users (id, created_at, last_seen_at, access) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET access = excluded.access",
            (user_id, now, now, Access(access).value),
        )
        self._forget(user_id)

    async def mark_access_asked(self, user_id: int) -> bool:
        """True only the first time: the admins hear about a user's request once."""
        changed = await self._db.execute(
            "UPDATE users SET access_asked = 1 WHERE id = ? AND access_asked = 0", (user_id,)
        )
        return changed > 0

    async def counts(self) -> UserCounts:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS total, "
            "COALESCE(SUM(is_active = 0), 0) AS blocked, "
            "COALESCE(SUM(access = 'pending' AND access_asked = 1), 0) AS waiting, "
            "COALESCE(SUM(access = 'allowed'), 0) AS allowed, "
            "COALESCE(SUM(access = 'denied'), 0) AS denied, "
            "(SELECT COUNT(*) FROM credentials WHERE state = 'valid') AS valid_tokens "
            "FROM users"
        )
        assert row is not None  # an aggregate always yields one row
        return UserCounts(
            total=int(row["total"]),
            blocked=int(row["blocked"]),
            valid_tokens=int(row["valid_tokens"]),
            waiting=int(row["waiting"]),
            allowed=int(row["allowed"]),
            denied=int(row["denied"]),
        )

    async def list_page(self, offset: int, limit: int) -> list[UserListEntry]:
        """Users in the order they first came: a newcomer lands on the last page and does
        not shift the pages an admin is reading."""
        rows = await self._db.fetchall(
            "SELECT u.id, u.first_name, u.username, u.language, u.is_active, u.access, "
            "c.state AS token_state FROM users AS u "
            "LEFT JOIN credentials AS c ON c.user_id = u.id "
            "ORDER BY u.created_at, u.id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [UserListEntry.from_row(row) for row in rows]

    async def waiting(self, limit: int) -> list[UserListEntry]:
        """The oldest `limit` access requests nobody has decided on yet."""
        rows = await self._db.fetchall(
            "SELECT u.id, u.first_name, u.username, u.language, u.is_active, u.access, "
            "c.state AS token_state FROM users AS u "
            "LEFT JOIN credentials AS c ON c.user_id = u.id "
            "WHERE u.access = 'pending' AND u.access_asked = 1 "
            "ORDER BY u.created_at, u.id LIMIT ?",
            (limit,),
        )
        return [UserListEntry.from_row(row) for row in rows]

    async def broadcast_targets(self) -> list[tuple[int, Access]]:
        """(id, access) of every user who has not blocked the bot and has a valid token."""
        rows = await self._db.fetchall(
            "SELECT u.id, u.access FROM users AS u "
            "JOIN credentials AS c ON c.user_id = u.id "
            "WHERE u.is_active = 1 AND c.state = 'valid' ORDER BY u.id"
        )
        return [(int(row["id"]), Access(row["access"])) for row in rows]
