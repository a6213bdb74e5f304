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

from storage.db import Database, utc_now

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


class JobLeaseRepo:
    """A running bulk job's lease (columns of bulk_jobs): the replica that sends it, until
    when, under which fence; and the job's send slots, shared by whoever sends it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def acquire_job(self, job_id: int, owner: str, until: str, now: str) -> int | None:
        """Takes the running job's lease when free, expired or `owner`'s own; its new fence,
        or None (another replica sends it, or it is not running). Rows the previous holder
        left 'sending' become 'unknown' in the same transaction: they may have gone out."""
        async with self._db.transaction():
            row = await self._db.fetchone(
                "UPDATE bulk_jobs SET lease_owner = ?, lease_until = ?, "
                "lease_fence = lease_fence + 1 WHERE id = ? AND state = 'running' "
                "AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?) "
                "RETURNING lease_fence",
                (owner, until, job_id, now, owner),
            )
            if row is None:
                return None
            fence = int(row["lease_fence"])
            await self._db.execute(
                "UPDATE bulk_rows SET state = 'unknown', error = 'interrupted', updated_at = ? "
                "WHERE job_id = ? AND state = 'sending' "
                "AND (claim_fence IS NULL OR claim_fence < ?)",
                (utc_now(), job_id, fence),
            )
        return fence

    async def renew_job(self, job_id: int, owner: str, fence: int, until: str) -> bool:
        """Extends our lease of the job; False when another replica took it over."""
        changed = await self._db.execute(
            "UPDATE bulk_jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? "
            "AND lease_fence = ?",
            (until, job_id, owner, fence),
        )
        return changed > 0

    async def release_job(self, job_id: int, owner: str, fence: int) -> bool:
        changed = await self._db.execute(
            "UPDATE bulk_jobs SET lease_owner = NULL, lease_until = NULL WHERE id = ? "
            "AND lease_owner = ? AND lease_fence = ?",
            (job_id, owner, fence),
        )
        return changed > 0

    async def unleased_running(self, now: str) -> list[int]:
        """Running jobs no replica holds (expired or never taken): for a survivor to take."""
        rows = await self._db.fetchall(
            "SELECT id FROM bulk_jobs WHERE state = 'running' "
            "AND (lease_until IS NULL OR lease_until < ?) ORDER BY id",
            (now,),
        )
        return [int(row["id"]) for row in rows]

    async def take_slots(self, job_id: int, step_us: int, count: int, now_us: int) -> int:
        """Reserves the job's next `count` send slots, `step_us` apart, none before `now_us`
        (microseconds since the epoch); returns the first. One statement, so replicas that
        share a job never share a slot: the job's rate holds across them."""
        row = await self._db.fetchone(
            "UPDATE bulk_jobs SET next_slot_us = CASE WHEN next_slot_us IS NULL "
            "OR next_slot_us < ? THEN ? ELSE next_slot_us END + ? WHERE id = ? "
            "RETURNING next_slot_us",
            (now_us, now_us, step_us * count, job_id),
        )
        if row is None:
            return now_us  # the job is gone: nothing will be sent anyway
        return int(row["next_slot_us"]) - step_us * count
