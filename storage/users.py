"""Telegram users the bot has seen, and erasing everything the bot keeps about one."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Final

from storage.db import Database, utc_now
from storage.fsm import fsm_key_ids

logger = logging.getLogger(__name__)

_COLUMNS: Final = "id, language, first_name, username, sender, is_active, created_at, last_seen_at"


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
        )


class UserRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_seen(
        self, user_id: int, first_name: str | None, username: str | None
    ) -> UserRow:
        """Records that the user wrote to the bot; keeps language and sender.

        Also marks the user active again: whoever writes to the bot has not blocked it.
        """
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
        return UserRow.from_row(row)

    async def get(self, user_id: int) -> UserRow | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return None if row is None else UserRow.from_row(row)

    async def set_language(self, user_id: int, lang: str | None) -> bool:
        """Returns False when there is no such user."""
        return await self._set(user_id, "language", lang)

    async def set_sender(self, user_id: int, sender: str | None) -> bool:
        """None goes back to the gateway's default sender."""
        return await self._set(user_id, "sender", sender)

    async def set_active(self, user_id: int, active: bool) -> bool:
        """False when the user blocked the bot: broadcasts skip them."""
        return await self._set(user_id, "is_active", int(active))

    async def _set(self, user_id: int, column: str, value: str | int | None) -> bool:
        # `column` is always one of the literals above, never user input.
        changed = await self._db.execute(
            f"UPDATE users SET {column} = ? WHERE id = ?", (value, user_id)
        )
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
        logger.info("user %s erased (%s dialog rows)", user_id, len(fsm_keys))
        return existed > 0

    async def count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM users")
        return 0 if row is None else int(row[0])
