"""Every SMS a user asked to send, written down BEFORE the gateway is called.

devsms has no idempotency key, so a send whose answer was lost must never be retried
blindly: the row stays 'unknown' until the history shows whether it went out.

    pending --> sent | failed | unknown
    unknown --> sent | not_sent
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from storage.callbacks import add_callback
from storage.db import Database, Row, sqlite_int, utc_now

logger = logging.getLogger(__name__)


Claim = Callable[[int], Awaitable[bool]]
"""Marks what a send records as taken (a scheduled item), given the outbox row's id; False
when something else took it first."""


class NotClaimed(Exception):
    """The claim of a send said no: nothing was recorded, nothing must be sent."""


class OutboxKind(StrEnum):
    SMS = "sms"  # a text the user wrote
    OTP = "otp"  # a verification code through the gateway's template (services/otp.py)


class OutboxState(StrEnum):
    PENDING = "pending"  # recorded, gateway not answered yet
    SENT = "sent"  # the gateway accepted it; `status` follows delivery
    FAILED = "failed"  # the gateway refused it: not sent, not charged
    UNKNOWN = "unknown"  # the request may have reached the gateway; reconcile via history
    NOT_SENT = "not_sent"  # reconciled: it never went out


_COLUMNS: Final = (
    "id, user_id, phone, message, sender, state, sms_id, request_id, status, "
    "parts_count, total_cost, error, created_at, updated_at, next_check_at, checks, "
    "result_notified, kind, country, template"
)
_OPEN: Final = (OutboxState.PENDING, OutboxState.UNKNOWN)
# SQLite allows 999 bound parameters in older builds; each id is bound twice.
_IDS_PER_QUERY: Final = 400


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    user_id: int
    phone: str
    message: str
    sender: str | None
    state: OutboxState
    sms_id: int | None
    request_id: str | None
    status: str | None  # the gateway's delivery status, verbatim
    parts_count: int | None
    total_cost: str | None  # verbatim: the gateway sends both 50 and "$0.005"
    error: str | None
    created_at: str
    updated_at: str
    next_check_at: str | None = None  # when delivery tracking looks again; None: not tracked
    checks: int = 0
    result_notified: bool = False
    kind: OutboxKind = OutboxKind.SMS
    country: str | None = None
    """The ISO region of a number outside Uzbekistan (phonenumbers); None for Uzbek ones."""
    template: str | None = None
    """The name of the saved template the text came from (/export), if any."""

    @classmethod
    def from_row(cls, row: Row) -> OutboxRow:
        values = dict(zip(row.keys(), tuple(row), strict=True))
        values["state"] = OutboxState(values["state"])
        values["result_notified"] = bool(values["result_notified"])
        values["kind"] = OutboxKind(values["kind"])
        return cls(**values)


class OutboxRepo:
    def __init__(self, db: Database, *, owner: str | None = None) -> None:
        self._db = db
        # The replica recording sends through this repository (REPLICA_ID): kept on each
        # 'pending' row, so that a replica starting up leaves other replicas' sends alone.
        self.owner = owner

    @property
    def db(self) -> Database:
        return self._db

    async def create_pending(
        self,
        user_id: int,
        phone: str,
        message: str,
        sender: str | None,
        *,
        kind: OutboxKind = OutboxKind.SMS,
        country: str | None = None,
        template: str | None = None,
        callback_hash: str | None = None,
    ) -> int:
        """Records the SMS and commits at once, before the gateway is called. `template`: the
        name of the saved template the text came from, if any (shown by /export); with
        `callback_hash`, the hash of its delivery-callback token in the same transaction."""
        if callback_hash is not None:
            async with self._db.transaction():
                outbox_id = await self.create_pending(
                    user_id, phone, message, sender, kind=kind, country=country, template=template
                )
                await add_callback(self._db, callback_hash, user_id, outbox_id=outbox_id)
            return outbox_id
        now = utc_now()
        row = await self._db.fetchone(
            "INSERT INTO outbox (user_id, phone, message, sender, state, created_at, updated_at, "
            "kind, country, template, lease_owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (
                user_id,
                phone,
                message,
                sender,
                OutboxState.PENDING.value,
                now,
                now,
                kind.value,
                country,
                template,
                self.owner,
            ),
        )
        assert row is not None  # INSERT ... RETURNING always yields the row
        return int(row["id"])

    async def create_claimed(
        self,
        user_id: int,
        phone: str,
        message: str,
        sender: str | None,
        claim: Claim,
        *,
        country: str | None = None,
        template: str | None = None,
        callback_hash: str | None = None,
    ) -> int:
        """Records the SMS like `create_pending`, in one transaction with `claim` (given the
        new row's id): both are committed, or neither (NotClaimed when the claim said no)."""
        async with self._db.transaction():
            outbox_id = await self.create_pending(
                user_id,
                phone,
                message,
                sender,
                country=country,
                template=template,
                callback_hash=callback_hash,
            )
            if not await claim(outbox_id):
                raise NotClaimed(outbox_id)
        return outbox_id

    async def mark_sent(
        self,
        id: int,
        sms_id: int | None,
        request_id: str | None,
        status: str | None,
        parts_count: int | None,
        total_cost: str | None,
    ) -> bool:
        """The gateway accepted the SMS. Also used when history proves an 'unknown' one went out.

        Returns False (and changes nothing) when the row is not pending/unknown any more,
        e.g. a second click already settled it. An sms_id beyond SQLite's range is kept as
        NULL (the request_id still finds the SMS): the SMS went out, so the row must say so.
        """
        return await self._transition(
            id,
            _OPEN,
            OutboxState.SENT,
            sms_id=sqlite_int(sms_id),
            request_id=request_id,
            status=status,
            parts_count=parts_count,
            total_cost=total_cost,
            error=None,
        )

    async def mark_failed(self, id: int, error: str) -> bool:
        """The gateway refused the SMS for certain, so nothing went out."""
        return await self._transition(id, _OPEN, OutboxState.FAILED, error=error)

    async def mark_unknown(self, id: int, error: str) -> bool:
        """The request may have reached the gateway (timeout, dropped connection)."""
        return await self._transition(id, (OutboxState.PENDING,), OutboxState.UNKNOWN, error=error)

    async def mark_not_sent(self, id: int) -> bool:
        """Reconciled: the gateway has no trace of it. Only from 'unknown': a send settled
        meanwhile keeps its outcome."""
        return await self._transition(id, (OutboxState.UNKNOWN,), OutboxState.NOT_SENT)

    async def update_status(self, id: int, status: str) -> bool:
        """Stores the latest delivery status (DELIVERED, REJECTED, ...) verbatim."""
        changed = await self._db.execute(
            "UPDATE outbox SET status = ?, updated_at = ? WHERE id = ?",
            (status, utc_now(), id),
        )
        return changed > 0

    async def _transition(
        self,
        id: int,
        allowed_from: Iterable[OutboxState],
        to: OutboxState,
        **columns: Any,
    ) -> bool:
        allowed = [state.value for state in allowed_from]
        # Column names come from the keyword arguments above, never from user input.
        assignments = "".join(f", {name} = ?" for name in columns)
        changed = await self._db.execute(
            f"UPDATE outbox SET state = ?, updated_at = ?{assignments} "
            f"WHERE id = ? AND state IN ({', '.join('?' * len(allowed))})",
            (to.value, utc_now(), *columns.values(), id, *allowed),
        )
        if not changed:
            logger.info("outbox %s: not moved to %s (missing or already settled)", id, to)
        return changed > 0

    async def get(self, id: int, *, user_id: int | None = None) -> OutboxRow | None:
        """Pass `user_id` when the id came from a button: callback data can be forged."""
        if user_id is None:
            row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (id,))
        else:
            row = await self._db.fetchone(
                f"SELECT {_COLUMNS} FROM outbox WHERE id = ? AND user_id = ?", (id, user_id)
            )
        return None if row is None else OutboxRow.from_row(row)

    async def open_for_user(self, user_id: int) -> list[OutboxRow]:
        """The user's sends in flight ('pending') or of unknown fate, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox WHERE user_id = ? AND state IN (?, ?) ORDER BY id",
            (user_id, *(state.value for state in _OPEN)),
        )
        return [OutboxRow.from_row(row) for row in rows]

    async def sms_ids_taken(self, user_id: int, sms_ids: Sequence[int]) -> set[int]:
        """Those of `sms_ids` that a send of the user already holds: a single send here, or a
        row of one of their bulk jobs (storage/bulk.py). A gateway SMS is one send's only."""
        taken: set[int] = set()
        # An id beyond SQLite's range is never stored (see mark_sent), so none holds it.
        sms_ids = [sms_id for sms_id in sms_ids if sqlite_int(sms_id) is not None]
        for start in range(0, len(sms_ids), _IDS_PER_QUERY):
            chunk = sms_ids[start : start + _IDS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            rows = await self._db.fetchall(
                f"SELECT sms_id FROM outbox WHERE user_id = ? AND sms_id IN ({marks}) "
                "UNION SELECT r.sms_id FROM bulk_jobs j JOIN bulk_rows r ON r.job_id = j.id "
                f"WHERE j.user_id = ? AND r.sms_id IN ({marks})",
                (user_id, *chunk, user_id, *chunk),
            )
            taken.update(int(row["sms_id"]) for row in rows)
        return taken

    async def unknown_older_than(self, cutoff: str) -> list[OutboxRow]:
        """Every user's 'unknown' sends created at or before `cutoff`, by user, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox WHERE state = ? AND created_at <= ? "
            "ORDER BY user_id, id",
            (OutboxState.UNKNOWN.value, cutoff),
        )
        return [OutboxRow.from_row(row) for row in rows]

    async def recent(self, user_id: int, limit: int, offset: int = 0) -> list[OutboxRow]:
        """Newest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [OutboxRow.from_row(row) for row in rows]

    # --- delivery tracking ---------------------------------------------------------------------

    async def schedule_check(self, id: int, at: str | None, checks: int) -> None:
        """Sets when tracking looks at this SMS next; `at=None` stops tracking it."""
        await self._db.execute(
            "UPDATE outbox SET next_check_at = ?, checks = ? WHERE id = ?", (at, checks, id)
        )

    async def due_checks(self, now: str, limit: int = 100) -> list[OutboxRow]:
        """Sent SMS whose next status check is due, most overdue first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox WHERE next_check_at IS NOT NULL "
            "AND next_check_at <= ? AND state = ? ORDER BY next_check_at LIMIT ?",
            (now, OutboxState.SENT.value, limit),
        )
        return [OutboxRow.from_row(row) for row in rows]

    async def claim_due_checks(self, now: str, until: str, limit: int = 100) -> list[OutboxRow]:
        """Like `due_checks`, and claims them: their next check moves to `until`, in the same
        statement, so another replica does not check them too (the checker reschedules each;
        one whose replica died is due again at `until`)."""
        # Read first: most polls find nothing due, and a read takes no write lock.
        due = await self.due_checks(now, limit)
        if not due:
            return []
        marks = ", ".join("?" * len(due))
        rows = await self._db.fetchall(
            f"UPDATE outbox SET next_check_at = ? WHERE id IN ({marks}) "
            "AND next_check_at IS NOT NULL AND next_check_at <= ? AND state = ? "
            f"RETURNING {_COLUMNS}",
            (until, *(row.id for row in due), now, OutboxState.SENT.value),
        )
        return sorted((OutboxRow.from_row(row) for row in rows), key=lambda row: row.id)

    async def mark_result_notified(self, id: int) -> bool:
        """True only the first time: a delivery result is reported once."""
        changed = await self._db.execute(
            "UPDATE outbox SET result_notified = 1 WHERE id = ? AND result_notified = 0", (id,)
        )
        return changed > 0

    async def totals(self, since: str) -> tuple[int, int]:
        """(SMS sent through the bot since `since`, parts of them) — for the admin summary."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(parts_count), 0) AS parts FROM outbox "
            "WHERE state = ? AND created_at >= ?",
            (OutboxState.SENT.value, since),
        )
        assert row is not None
        return int(row["n"]), int(row["parts"])

    async def costs_since(self, since: str) -> list[str]:
        """The verbatim total_cost of each SMS sent since `since` (so'm or "$..." strings)."""
        rows = await self._db.fetchall(
            "SELECT total_cost FROM outbox WHERE state = ? AND created_at >= ? "
            "AND total_cost IS NOT NULL",
            (OutboxState.SENT.value, since),
        )
        return [str(row["total_cost"]) for row in rows]

    async def country_costs(
        self, user_id: int, countries: Sequence[str]
    ) -> dict[str, tuple[str, int]]:
        """Per country of `countries`: (total_cost verbatim, parts) of the user's latest plain
        SMS there that the gateway billed. One query, on the (user_id, country, id) index."""
        wanted = sorted(set(countries))[:_IDS_PER_QUERY]  # there are about 250 regions
        if not wanted:
            return {}
        marks = ", ".join("?" * len(wanted))
        rows = await self._db.fetchall(
            "SELECT country, total_cost, parts_count FROM outbox WHERE id IN ("
            "SELECT MAX(id) FROM outbox WHERE user_id = ? AND country IN "
            f"({marks}) AND state = ? AND kind = ? AND total_cost IS NOT NULL "
            "AND parts_count > 0 GROUP BY country)",
            (user_id, *wanted, OutboxState.SENT.value, OutboxKind.SMS.value),
        )
        return {
            str(row["country"]): (str(row["total_cost"]), int(row["parts_count"])) for row in rows
        }

    async def orphans_to_unknown(self, *, mine: bool = True, older_than: str | None = None) -> int:
        """Sends left 'pending' by a process that died mid-request may have gone out; they
        become 'unknown' and are reconciled against the history, never resent.

        At start-up (`mine`): those of this replica's previous run and of no known replica,
        and with `older_than` anybody's last touched before it (long past any request's
        timeout, so their replica is gone). Other replicas' sends in flight are left alone."""
        conditions = []
        params: list[object] = [OutboxState.UNKNOWN.value, utc_now(), OutboxState.PENDING.value]
        if mine:
            if self.owner is None:
                conditions.append("1 = 1")  # one process: everything pending is orphaned
            else:
                conditions.append("lease_owner IS NULL OR lease_owner = ?")
                params.append(self.owner)
        if older_than is not None:
            conditions.append("updated_at < ?")
            params.append(older_than)
        if not conditions:
            return 0
        return await self._db.execute(
            "UPDATE outbox SET state = ?, error = 'interrupted', updated_at = ? "
            f"WHERE state = ? AND ({' OR '.join(conditions)})",
            params,
        )
