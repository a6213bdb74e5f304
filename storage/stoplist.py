"""The stop list: numbers that must never get an SMS from a user's account.

Phones are stored as services/phones.py normalises them (digits, country code first), the form
every send path hands to the gateway, so one lookup of the same string answers for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from storage.db import Database, Row, utc_now

_COLUMNS: Final = "id, user_id, phone, note, added_at"
# Phones per `IN (...)` query: far below SQLite's variable limit, and a lookup over a list of
# 50,000 numbers holds no more than one chunk of parameters at a time.
LOOKUP_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class StopEntry:
    id: int
    user_id: int
    phone: str
    note: str | None
    added_at: str

    @classmethod
    def from_row(cls, row: Row) -> StopEntry:
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (Row)


@dataclass(frozen=True, slots=True)
class Added:
    added: int
    """Numbers that were not on the list before."""
    already: int
    """Numbers that were there already (a note given for one replaces its old note)."""
    total: int
    """The list's size afterwards."""


class StopListFull(Exception):
    """Adding would take the list past its limit: nothing was added."""

    def __init__(self, limit: int, have: int, new: int) -> None:
        super().__init__(f"stop list limit {limit}: {have} + {new}")
        self.limit = limit
        self.have = have
        self.new = new


class StopListRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def stopped_among(self, user_id: int, phones: Iterable[str]) -> set[str]:
        """The numbers of `phones` on the user's stop list: one indexed query per LOOKUP_CHUNK
        numbers, so the time is linear in the list and the memory bounded by the answer."""
        found: set[str] = set()
        chunk: list[str] = []
        for phone in phones:
            chunk.append(phone)
            if len(chunk) == LOOKUP_CHUNK:
                found |= await self._lookup(user_id, chunk)
                chunk = []
        if chunk:
            found |= await self._lookup(user_id, chunk)
        return found

    async def _lookup(self, user_id: int, phones: Sequence[str]) -> set[str]:
        marks = ", ".join("?" * len(phones))
        rows = await self._db.fetchall(
            f"SELECT phone FROM stoplist WHERE user_id = ? AND phone IN ({marks})",
            (user_id, *phones),
        )
        return {str(row["phone"]) for row in rows}

    async def entry(self, user_id: int, phone: str) -> StopEntry | None:
        """The entry of one number (digits), or None when it may be sent to. Read on the
        read-only connection (what is committed), beside the writes of the moment."""
        row = await self._db.read_one(
            f"SELECT {_COLUMNS} FROM stoplist WHERE user_id = ? AND phone = ?", (user_id, phone)
        )
        return None if row is None else StopEntry.from_row(row)

    async def get(self, user_id: int, entry_id: int) -> StopEntry | None:
        """By id, checked against the owner: ids arrive in callback data, which can be forged."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM stoplist WHERE id = ? AND user_id = ?", (entry_id, user_id)
        )
        return None if row is None else StopEntry.from_row(row)

    async def count(self, user_id: int) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM stoplist WHERE user_id = ?", (user_id,)
        )
        assert row is not None  # an aggregate always yields one row
        return int(row["n"])

    async def page(self, user_id: int, limit: int, offset: int = 0) -> list[StopEntry]:
        """Newest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM stoplist WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [StopEntry.from_row(row) for row in rows]

    async def add(
        self, user_id: int, entries: Sequence[tuple[str, str | None]], *, limit: int
    ) -> Added:
        """Adds (phone, note) pairs, all or nothing: raises StopListFull, changing nothing,
        when the numbers new to the list would take it past `limit`. Pass each phone once."""
        now = utc_now()
        async with self._db.transaction():
            have = await self.count(user_id)
            already = await self.stopped_among(user_id, (phone for phone, _note in entries))
            new = len({phone for phone, _note in entries} - already)
            if have + new > limit:
                raise StopListFull(limit, have, new)
            await self._db.executemany(
                "INSERT INTO stoplist (user_id, phone, note, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id, phone) DO UPDATE SET note = excluded.note "
                "WHERE excluded.note IS NOT NULL",
                ((user_id, phone, note, now) for phone, note in entries),
            )
        return Added(added=new, already=len(already), total=have + new)

    async def remove(self, user_id: int, phones: Sequence[str]) -> set[str]:
        """Removes the numbers; returns those that were on the list."""
        async with self._db.transaction():
            present = await self.stopped_among(user_id, phones)
            await self._db.executemany(
                "DELETE FROM stoplist WHERE user_id = ? AND phone = ?",
                ((user_id, phone) for phone in present),
            )
        return present

    async def remove_entry(self, user_id: int, entry_id: int) -> StopEntry | None:
        """Removes one entry by id (a button); returns it, or None when it was not there."""
        row = await self._db.fetchone(
            f"DELETE FROM stoplist WHERE id = ? AND user_id = ? RETURNING {_COLUMNS}",
            (entry_id, user_id),
        )
        return None if row is None else StopEntry.from_row(row)

    async def all(self, user_id: int) -> list[StopEntry]:
        """The whole list, oldest first (an export; its size is bounded by STOPLIST_LIMIT)."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM stoplist WHERE user_id = ? ORDER BY id", (user_id,)
        )
        return [StopEntry.from_row(row) for row in rows]
