"""Scheduled sends (one SMS, or a prepared bulk job) and quiet-hours overrides of jobs.

An item is 'waiting' until the scheduler starts it. Starting is a claim (waiting → started)
made in the same transaction that records the send itself: the outbox row of an SMS
(OutboxRepo.create_claimed) or the job going 'running' (BulkRepo.begin_claimed). So an item
is started at most once, and a crash after the claim is settled by the outbox's and the bulk
runner's own recovery, never by starting the item again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from storage.bulk import BulkRepo
from storage.db import Database, utc_now

ItemKind = Literal["sms", "bulk"]
ItemState = Literal["waiting", "started", "cancelled", "missed", "failed"]
# What the owner can still act on: cancel it, or send it now.
OPEN_STATES: Final = ("waiting", "missed")

_COLUMNS: Final = (
    "id, user_id, kind, phone, message, sender, job_id, due_at, state, ignore_quiet, "
    "outbox_id, reason, created_at, updated_at, template"
)


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    id: int
    user_id: int
    kind: ItemKind
    phone: str | None
    message: str | None
    sender: str | None
    job_id: int | None
    due_at: str
    """ISO-8601 UTC."""
    state: ItemState
    ignore_quiet: bool
    outbox_id: int | None
    reason: str | None
    created_at: str
    updated_at: str
    template: str | None = None
    """The name of the saved template a single SMS's text came from, if any."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ScheduledRow:
        values = {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row)
        values["ignore_quiet"] = bool(values["ignore_quiet"])
        return cls(**values)


class ScheduleRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_sms(
        self,
        user_id: int,
        phone: str,
        message: str,
        sender: str | None,
        due_at: str,
        *,
        template: str | None = None,
    ) -> int:
        now = utc_now()
        row = await self._db.fetchone(
            "INSERT INTO scheduled (user_id, kind, phone, message, sender, due_at, created_at, "
            "updated_at, template) VALUES (?, 'sms', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (user_id, phone, message, sender, due_at, now, now, template),
        )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return int(row["id"])

    async def add_job(
        self,
        user_id: int,
        due_at: str,
        *,
        template: str,
        sender: str | None,
        file_name: str | None,
        file_format: str,
        rows: Iterable[tuple[int, str, str, int]],
        stopped: Iterable[tuple[int, str]] = (),
    ) -> tuple[int, int]:
        """A bulk job in state 'ready' and the item that starts it, in one transaction;
        returns (item id, job id). `stopped`: see BulkRepo.create_job."""
        now = utc_now()
        async with self._db.transaction():
            job_id = await BulkRepo(self._db).create_job(
                user_id,
                template=template,
                sender=sender,
                file_name=file_name,
                file_format=file_format,
                rows=rows,
                stopped=stopped,
            )
            row = await self._db.fetchone(
                "INSERT INTO scheduled (user_id, kind, job_id, due_at, created_at, updated_at) "
                "VALUES (?, 'bulk', ?, ?, ?, ?) RETURNING id",
                (user_id, job_id, due_at, now, now),
            )
            assert row is not None
        return int(row["id"]), job_id

    async def get(self, item_id: int, *, user_id: int | None = None) -> ScheduledRow | None:
        """Pass `user_id` when the id came from a button: callback data can be forged."""
        sql = f"SELECT {_COLUMNS} FROM scheduled WHERE id = ?"
        params: tuple[int, ...] = (item_id,)
        if user_id is not None:
            sql += " AND user_id = ?"
            params = (item_id, user_id)
        row = await self._db.fetchone(sql, params)
        return None if row is None else ScheduledRow.from_row(row)

    async def open_of(self, user_id: int, limit: int) -> list[ScheduledRow]:
        """The user's items still waiting or waiting for a decision, soonest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM scheduled WHERE user_id = ? "
            "AND state IN ('waiting', 'missed') ORDER BY due_at, id LIMIT ?",
            (user_id, limit),
        )
        return [ScheduledRow.from_row(row) for row in rows]

    async def count_open(self, user_id: int) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM scheduled WHERE user_id = ? "
            "AND state IN ('waiting', 'missed')",
            (user_id,),
        )
        assert row is not None
        return int(row["n"])

    async def due(self, now: str, limit: int = 200) -> list[ScheduledRow]:
        """Waiting items whose time has come, the longest due first. An item held for its
        owner's quiet hours (see hold) comes back when they end, not every round: else a
        round's `limit` filled with held items and other users' sends waited behind them."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM scheduled WHERE state = 'waiting' "
            "AND COALESCE(release_at, due_at) <= ? ORDER BY COALESCE(release_at, due_at), id "
            "LIMIT ?",
            (now, limit),
        )
        return [ScheduledRow.from_row(row) for row in rows]

    async def hold(self, item_id: int, until: str) -> None:
        """The waiting item is not due before `until` (the end of its owner's quiet hours)."""
        await self._db.execute(
            "UPDATE scheduled SET release_at = ? WHERE id = ? AND state = 'waiting'",
            (until, item_id),
        )

    async def release_held(self, user_id: int | None = None) -> None:
        """Held items are due again at their due_at, to be held anew from the user's (or
        everyone's: the configured default may have changed) current quiet hours."""
        sql = "UPDATE scheduled SET release_at = NULL WHERE release_at IS NOT NULL"
        if user_id is None:
            await self._db.execute(sql)
        else:
            await self._db.execute(sql + " AND user_id = ?", (user_id,))

    async def for_job(self, job_id: int) -> ScheduledRow | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM scheduled WHERE job_id = ? ORDER BY id DESC LIMIT 1",
            (job_id,),
        )
        return None if row is None else ScheduledRow.from_row(row)

    async def claim(self, item_id: int, outbox_id: int | None = None) -> bool:
        """waiting → started; False when it was not waiting (cancelled, or taken already)."""
        return await self._move(
            item_id, "started", ("waiting",), extra=", outbox_id = ?", params=(outbox_id,)
        )

    async def mark_missed(self, item_id: int, reason: str) -> bool:
        return await self._move(item_id, "missed", ("waiting",), reason=reason)

    async def mark_failed(self, item_id: int, reason: str) -> bool:
        return await self._move(item_id, "failed", ("waiting",), reason=reason)

    async def cancel(self, item_id: int, user_id: int) -> bool:
        changed = await self._db.execute(
            "UPDATE scheduled SET state = 'cancelled', updated_at = ? "
            "WHERE id = ? AND user_id = ? AND state IN ('waiting', 'missed')",
            (utc_now(), item_id, user_id),
        )
        return changed > 0

    async def send_now(self, item_id: int, user_id: int, now: str) -> bool:
        """Due at once, quiet hours or not: the owner asked for it."""
        changed = await self._db.execute(
            "UPDATE scheduled SET state = 'waiting', due_at = ?, ignore_quiet = 1, reason = NULL, "
            "release_at = NULL, updated_at = ? "
            "WHERE id = ? AND user_id = ? AND state IN ('waiting', 'missed')",
            (now, utc_now(), item_id, user_id),
        )
        return changed > 0

    async def _move(
        self,
        item_id: int,
        state: ItemState,
        allowed_from: tuple[ItemState, ...],
        *,
        reason: str | None = None,
        extra: str = "",
        params: tuple[object, ...] = (),
    ) -> bool:
        marks = ", ".join("?" * len(allowed_from))
        changed = await self._db.execute(
            f"UPDATE scheduled SET state = ?, reason = ?, updated_at = ?{extra} "
            f"WHERE id = ? AND state IN ({marks})",
            (state, reason, utc_now(), *params, item_id, *allowed_from),
        )
        return changed > 0

    # --- quiet-hours overrides of bulk jobs ------------------------------------------------

    async def set_job_quiet_until(self, job_id: int, until: str) -> None:
        await self._db.execute(
            "INSERT INTO job_quiet (job_id, until) VALUES (?, ?) "
            "ON CONFLICT (job_id) DO UPDATE SET until = excluded.until",
            (job_id, until),
        )

    async def job_quiet_until(self, job_id: int) -> str | None:
        row = await self._db.fetchone("SELECT until FROM job_quiet WHERE job_id = ?", (job_id,))
        return None if row is None else str(row["until"])
