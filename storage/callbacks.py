"""The hashes of delivery-callback tokens, each with the send it was handed out for.

A token is written by the repository that records the send (OutboxRepo.create_pending,
BulkRepo.claim) in the same transaction, through :func:`add_callback`, so a callback can never
name a send whose record is not durable.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database, utc_now


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """The send a callback token belongs to: an outbox row, or a row of a bulk job."""

    user_id: int
    outbox_id: int | None
    job_id: int | None
    row_no: int | None
    row_state: str | None = None
    """For a bulk row: its state, gateway id and delivery status now."""
    row_sms_id: int | None = None
    row_status: str | None = None


async def add_callback(
    db: Database,
    token_hash: str,
    user_id: int,
    *,
    outbox_id: int | None = None,
    job_id: int | None = None,
    row_no: int | None = None,
) -> None:
    """Call inside the transaction that records the send."""
    await db.execute(
        "INSERT INTO delivery_callbacks (token_hash, user_id, outbox_id, job_id, row_no, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (token_hash, user_id, outbox_id, job_id, row_no, utc_now()),
    )


class CallbackRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(self, token_hash: str) -> CallbackTarget | None:
        row = await self._db.fetchone(
            "SELECT c.user_id, c.outbox_id, c.job_id, c.row_no, r.state, r.sms_id, r.status "
            "FROM delivery_callbacks c LEFT JOIN bulk_rows r "
            "ON r.job_id = c.job_id AND r.row_no = c.row_no WHERE c.token_hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        return CallbackTarget(*tuple(row))

    async def prune(self, before: str) -> int:
        """Forgets the tokens handed out before `before` (an ISO stamp): their sends are no
        longer tracked, so a late callback has nothing left to settle."""
        return await self._db.execute(
            "DELETE FROM delivery_callbacks WHERE created_at < ?", (before,)
        )
