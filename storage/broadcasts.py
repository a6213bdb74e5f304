"""Admin broadcasts on disk: the text, where its report goes, and every target's fate.

A broadcast to 10,000 users takes minutes; kept only in memory, a restart in the middle lost
the rest with no record. Each target is claimed (waiting → claimed) before its message is
handed to the notifier and settled after it (delivered, blocked, failed, skipped). A target
left 'claimed' by a process that stopped may have got its message: it becomes 'unknown' and
is never sent again; the 'waiting' ones are sent when the bot is back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from storage.db import Database, Row, utc_now

BroadcastState = Literal["running", "finished", "stopped"]
UNKNOWN: Final = "unknown"
_COLUMNS: Final = "id, admin_id, text, report_chat, report_message, language, state"


@dataclass(frozen=True, slots=True)
class BroadcastRow:
    id: int
    admin_id: int
    text: str
    report_chat: int
    report_message: int
    language: str
    state: BroadcastState

    @classmethod
    def from_row(cls, row: Row) -> BroadcastRow:
        return cls(*(row[key] for key in row.keys()))  # noqa: SIM118 (Row)


class BroadcastRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        admin_id: int,
        text: str,
        targets: Sequence[int],
        *,
        report: tuple[int, int],
        language: str,
    ) -> int:
        """The broadcast and its targets, all 'waiting', in one transaction."""
        now = utc_now()
        async with self._db.transaction():
            row = await self._db.fetchone(
                "INSERT INTO broadcasts (admin_id, text, report_chat, report_message, language, "
                "state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) "
                "RETURNING id",
                (admin_id, text, *report, language, now, now),
            )
            assert row is not None  # INSERT ... RETURNING always yields the row
            broadcast_id = int(row["id"])
            await self._db.executemany(
                "INSERT INTO broadcast_targets (broadcast_id, user_id) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                ((broadcast_id, user_id) for user_id in targets),
            )
        return broadcast_id

    async def claim(self, broadcast_id: int) -> int | None:
        """The next waiting target, now 'claimed'; None when none waits.

        The outer `state = 'waiting'` is what makes a claim one claim on PostgreSQL: there,
        workers claiming side by side all pick the same first target in the subquery (each
        from its own snapshot); the ones that waited for the winner's row lock re-check only
        the outer WHERE on the row as the winner left it, so without that condition they
        claimed, and sent to, the same user again. A worker that lost the race looks again
        while any target waits (on SQLite, one writer at a time, the first try always wins).
        """
        while True:
            row = await self._db.fetchone(
                "UPDATE broadcast_targets SET state = 'claimed' WHERE broadcast_id = ? "
                "AND state = 'waiting' AND user_id = (SELECT user_id FROM broadcast_targets "
                "WHERE broadcast_id = ? AND state = 'waiting' ORDER BY user_id LIMIT 1) "
                "RETURNING user_id",
                (broadcast_id, broadcast_id),
            )
            if row is not None:
                return int(row["user_id"])
            waiting = await self._db.fetchone(
                "SELECT 1 FROM broadcast_targets WHERE broadcast_id = ? AND state = 'waiting' "
                "LIMIT 1",
                (broadcast_id,),
            )
            if waiting is None:
                return None

    async def settle(self, broadcast_id: int, user_id: int, outcome: str) -> None:
        await self._db.execute(
            "UPDATE broadcast_targets SET state = ? WHERE broadcast_id = ? AND user_id = ? "
            "AND state = 'claimed'",
            (outcome, broadcast_id, user_id),
        )

    async def counts(self, broadcast_id: int) -> dict[str, int]:
        """Targets by state."""
        rows = await self._db.fetchall(
            "SELECT state, COUNT(*) AS n FROM broadcast_targets WHERE broadcast_id = ? "
            "GROUP BY state",
            (broadcast_id,),
        )
        return {str(row["state"]): int(row["n"]) for row in rows}

    async def unfinished(self) -> list[BroadcastRow]:
        """Broadcasts a stopped process left running, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM broadcasts WHERE state = 'running' ORDER BY id"
        )
        return [BroadcastRow.from_row(row) for row in rows]

    async def interrupted(self, broadcast_id: int) -> int:
        """Targets claimed by a process that stopped become 'unknown': maybe sent, never
        sent again. Returns how many."""
        return await self._db.execute(
            "UPDATE broadcast_targets SET state = ? WHERE broadcast_id = ? AND state = 'claimed'",
            (UNKNOWN, broadcast_id),
        )

    async def finish(self, broadcast_id: int, state: BroadcastState) -> None:
        """The broadcast ends: its report carries the tally, and nothing reads its targets
        again (only 'running' ones resume), so their rows go: kept, every broadcast left one
        row per user for good."""
        async with self._db.transaction():
            await self._db.execute(
                "UPDATE broadcasts SET state = ?, updated_at = ? WHERE id = ?",
                (state, utc_now(), broadcast_id),
            )
            await self._db.execute(
                "DELETE FROM broadcast_targets WHERE broadcast_id = ?", (broadcast_id,)
            )
