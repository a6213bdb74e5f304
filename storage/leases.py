"""Leases: background work done once across replicas that share the database.

A lease names who holds a piece of work (`owner`, the replica id) and until when (`until`);
whoever finds it free or expired takes it with one conditional statement, and `fence` grows
with every new holder. A replica that dies releases nothing: its lease simply expires. A
replica that stalled past its lease (a long GC pause, a frozen VM) finds its fence outdated
when it comes back, and the writes that matter refuse an outdated fence.

Every statement is portable SQL (SQLite 3.35+ and PostgreSQL): conditional UPDATE or
INSERT ... ON CONFLICT DO UPDATE ... WHERE, with RETURNING. Stamps are ISO-8601 UTC with
microseconds, always the same width, so they compare as text on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from storage.db import Database

Clock = Callable[[], datetime]


def lease_stamp(moment: datetime) -> str:
    """The text of a lease's `until`: fixed width (microseconds), so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utc_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Holder:
    owner: str | None
    until: str | None
    fence: int


class LeaseRepo:
    """Named leases (the `leases` table) held by `owner` for `seconds` at a time."""

    def __init__(
        self, db: Database, owner: str, seconds: float, *, clock: Clock = utc_clock
    ) -> None:
        if seconds <= 0:
            raise ValueError("a lease must last a positive time")
        self._db = db
        self.owner = owner
        self.seconds = seconds
        self.clock = clock

    @property
    def db(self) -> Database:
        return self._db

    def now(self) -> str:
        return lease_stamp(self.clock())

    def until(self, seconds: float | None = None) -> str:
        """The stamp `seconds` (default: the lease time) from now."""
        return lease_stamp(
            self.clock() + timedelta(seconds=self.seconds if seconds is None else seconds)
        )

    async def acquire(self, name: str, seconds: float | None = None) -> int | None:
        """Takes the lease when it is free, expired or already ours; its new fence, or None
        when another replica holds it. Taking it again bumps the fence (a new term)."""
        row = await self._db.fetchone(
            "INSERT INTO leases (name, owner, until, fence) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until, "
            "fence = leases.fence + 1 "
            "WHERE leases.until IS NULL OR leases.until < ? OR leases.owner = ? "
            "RETURNING fence",
            (name, self.owner, self.until(seconds), self.now(), self.owner),
        )
        return None if row is None else int(row["fence"])

    async def next_term(self, name: str, seconds: float) -> int | None:
        """Starts the next term of `name` (a new round) when the current one has run out,
        whoever held it; its number, or None when the current term still runs. The term
        lasts `seconds`: no replica starts another one before."""
        row = await self._db.fetchone(
            "INSERT INTO leases (name, owner, until, fence) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until, "
            "fence = leases.fence + 1 WHERE leases.until IS NULL OR leases.until < ? "
            "RETURNING fence",
            (name, self.owner, self.until(seconds), self.now()),
        )
        return None if row is None else int(row["fence"])

    async def renew(self, name: str, fence: int, seconds: float | None = None) -> bool:
        """Extends our lease; False when it is no longer ours (expired and taken over)."""
        changed = await self._db.execute(
            "UPDATE leases SET until = ? WHERE name = ? AND owner = ? AND fence = ?",
            (self.until(seconds), name, self.owner, fence),
        )
        return changed > 0

    async def hold_until(self, name: str, fence: int, until: str) -> bool:
        """Keeps our lease to `until` (the next round's time), then it is free for anyone."""
        changed = await self._db.execute(
            "UPDATE leases SET until = ? WHERE name = ? AND owner = ? AND fence = ?",
            (until, name, self.owner, fence),
        )
        return changed > 0

    async def release(self, name: str, fence: int) -> bool:
        """Frees our lease at once; False when it was no longer ours."""
        changed = await self._db.execute(
            "UPDATE leases SET owner = NULL, until = NULL WHERE name = ? AND owner = ? "
            "AND fence = ?",
            (name, self.owner, fence),
        )
        return changed > 0

    async def holder(self, name: str) -> Holder | None:
        row = await self._db.fetchone(
            "SELECT owner, until, fence FROM leases WHERE name = ?", (name,)
        )
        return None if row is None else Holder(row["owner"], row["until"], int(row["fence"]))

    async def advance(self, name: str) -> int:
        """Starts a new numbered term of `name` whoever holds it (a round number every replica
        reads); returns the new fence."""
        row = await self._db.fetchone(
            "INSERT INTO leases (name, owner, until, fence) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until, "
            "fence = leases.fence + 1 RETURNING fence",
            (name, self.owner, self.until()),
        )
        assert row is not None  # an upsert without a condition always yields the row
        return int(row["fence"])
