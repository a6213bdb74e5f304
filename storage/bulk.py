"""Bulk jobs and their rows. Every row's state is written before and after its request.

row:  pending --> sending --> sent | failed | unknown
      sending --(process died mid-request, found at start-up)--> unknown
      sending --(its result was lost to an error, found when the run ends)--> unknown
      unknown --(reconciled against the history)--> sent
      unknown --(no trace a day later, in a history read back past it)--> not_sent
      sending --(the number is on the owner's stop list)--> stopped  (never sent)
      stopped  (on the stop list when the job was created: in the job, never sent)
job:  ready --> running <--> paused (pause_reason says why);  running | paused --> cancelled | done
      ready --> paused (its owner was denied access before it began)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from storage.callbacks import add_callback
from storage.db import Database, Row, sqlite_int, utc_now

JobState = Literal["ready", "running", "paused", "cancelled", "done"]
RowState = Literal["pending", "sending", "sent", "failed", "unknown", "not_sent", "stopped"]
# The error of a row left out because its number is on the owner's stop list.
STOP_LIST: Final = "stop list"

_JOB_COLUMNS: Final = (
    "id, user_id, state, pause_reason, file_name, file_format, template, sender, total, "
    "parts_total, chat_id, progress_message_id, created_at, started_at, finished_at, "
    "updated_at, summary_sent, delivery_reported"
)
_ROW_COLUMNS: Final = (
    "job_id, row_no, phone, message, parts, state, sms_id, request_id, status, cost, error, "
    "updated_at"
)


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    user_id: int
    state: JobState
    pause_reason: str | None
    file_name: str | None
    file_format: str
    template: str
    sender: str | None
    total: int
    parts_total: int
    chat_id: int | None
    progress_message_id: int | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    summary_sent: bool
    delivery_reported: bool

    @classmethod
    def from_row(cls, row: Row) -> JobRow:
        values = {key: row[key] for key in row.keys()}  # noqa: SIM118 (Row)
        values["summary_sent"] = bool(values["summary_sent"])
        values["delivery_reported"] = bool(values["delivery_reported"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class BulkRow:
    job_id: int
    row_no: int
    phone: str
    message: str
    parts: int
    state: RowState
    sms_id: int | None
    request_id: str | None
    status: str | None
    cost: str | None
    error: str | None
    updated_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> BulkRow:
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (Row)


@dataclass(frozen=True, slots=True)
class JobCounts:
    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    not_sent: int = 0
    stopped: int = 0
    """On the owner's stop list: never sent, and no failure of the gateway."""

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unknown + self.not_sent + self.stopped

    @property
    def left(self) -> int:
        return self.pending + self.sending


class _Declined(Exception):
    """Rolls a transaction back when one of its steps found its row taken."""


class BulkRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- jobs ------------------------------------------------------------------------------

    async def create_job(
        self,
        user_id: int,
        *,
        template: str,
        sender: str | None,
        file_name: str | None,
        file_format: str,
        rows: Iterable[tuple[int, str, str, int]],
        stopped: Iterable[tuple[int, str]] = (),
    ) -> int:
        """Stores a job in state 'ready' with its rows (row_no, phone, message, parts), in one
        transaction: a job exists whole or not at all. `stopped` (row_no, phone) are the rows
        left out for the stop list: stored 'stopped', so the result file shows them."""
        now = utc_now()
        async with self._db.transaction():
            row = await self._db.fetchone(
                "INSERT INTO bulk_jobs (user_id, state, template, sender, file_name, "
                "file_format, created_at, updated_at) VALUES (?, 'ready', ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (user_id, template, sender, file_name, file_format, now, now),
            )
            assert row is not None
            job_id = int(row["id"])
            await self._db.executemany(
                "INSERT INTO bulk_rows (job_id, row_no, phone, message, parts) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    (job_id, row_no, phone, message, parts)
                    for row_no, phone, message, parts in rows
                ),
            )
            await self._db.executemany(
                "INSERT INTO bulk_rows (job_id, row_no, phone, message, parts, state, error, "
                "updated_at) VALUES (?, ?, ?, '', 0, 'stopped', ?, ?)",
                ((job_id, row_no, phone, STOP_LIST, now) for row_no, phone in stopped),
            )
            await self._db.execute(
                "UPDATE bulk_jobs SET total = (SELECT COUNT(*) FROM bulk_rows WHERE job_id = ?), "
                "parts_total = (SELECT COALESCE(SUM(parts), 0) FROM bulk_rows WHERE job_id = ?) "
                "WHERE id = ?",
                (job_id, job_id, job_id),
            )
        return job_id

    async def get_job(self, job_id: int, *, user_id: int | None = None) -> JobRow | None:
        """Pass `user_id` when the id came from a button: callback data can be forged."""
        sql = f"SELECT {_JOB_COLUMNS} FROM bulk_jobs WHERE id = ?"
        params: tuple[int, ...] = (job_id,)
        if user_id is not None:
            sql += " AND user_id = ?"
            params = (job_id, user_id)
        row = await self._db.fetchone(sql, params)
        return None if row is None else JobRow.from_row(row)

    async def jobs_of(self, user_id: int, limit: int = 20, offset: int = 0) -> list[JobRow]:
        rows = await self._db.fetchall(
            f"SELECT {_JOB_COLUMNS} FROM bulk_jobs WHERE user_id = ? "
            "ORDER BY id DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [JobRow.from_row(row) for row in rows]

    async def jobs_in(
        self, states: Sequence[JobState], *, user_id: int | None = None
    ) -> list[JobRow]:
        """Jobs in one of `states`, of every user or of `user_id` only."""
        marks = ", ".join("?" * len(states))
        sql = f"SELECT {_JOB_COLUMNS} FROM bulk_jobs WHERE state IN ({marks})"
        params: tuple[object, ...] = tuple(states)
        if user_id is not None:
            sql += " AND user_id = ?"
            params += (user_id,)
        rows = await self._db.fetchall(sql + " ORDER BY id", params)
        return [JobRow.from_row(row) for row in rows]

    async def started_between(self, user_id: int, since: str, until: str) -> int:
        """Jobs of the user started in [since, until) (UTC `*_at` texts): the digest."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM bulk_jobs WHERE user_id = ? AND started_at >= ? "
            "AND started_at < ?",
            (user_id, since, until),
        )
        return 0 if row is None else int(row["n"])

    async def count_active(self, user_id: int) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM bulk_jobs WHERE user_id = ? "
            "AND state IN ('running', 'paused')",
            (user_id,),
        )
        assert row is not None
        return int(row["n"])

    async def set_job_state(
        self,
        job_id: int,
        state: JobState,
        *,
        allowed_from: Sequence[JobState],
        reason: str | None = None,
    ) -> bool:
        """Moves the job only from one of `allowed_from`; False when it was elsewhere (a double
        tap, or a job that finished meanwhile)."""
        now = utc_now()
        marks = ", ".join("?" * len(allowed_from))
        extra = ""
        if state == "running":
            extra = ", started_at = COALESCE(started_at, ?)"
        elif state in ("done", "cancelled"):
            extra = ", finished_at = ?"
        params: tuple[object, ...] = (state, reason, now) + ((now,) if extra else ())
        changed = await self._db.execute(
            f"UPDATE bulk_jobs SET state = ?, pause_reason = ?, updated_at = ?{extra} "
            f"WHERE id = ? AND state IN ({marks})",
            (*params, job_id, *allowed_from),
        )
        return changed > 0

    async def begin_claimed(self, job_id: int, claim: Callable[[], Awaitable[bool]]) -> bool:
        """ready → running in one transaction with `claim` (a scheduled item taken): both,
        or neither. False when either said no."""
        try:
            async with self._db.transaction():
                if not await claim():
                    raise _Declined
                if not await self.set_job_state(job_id, "running", allowed_from=("ready",)):
                    raise _Declined
        except _Declined:
            return False
        return True

    async def set_progress_message(self, job_id: int, chat_id: int, message_id: int) -> None:
        await self._db.execute(
            "UPDATE bulk_jobs SET chat_id = ?, progress_message_id = ? WHERE id = ?",
            (chat_id, message_id, job_id),
        )

    async def mark_summary_sent(self, job_id: int) -> bool:
        changed = await self._db.execute(
            "UPDATE bulk_jobs SET summary_sent = 1 WHERE id = ? AND summary_sent = 0", (job_id,)
        )
        return changed > 0

    async def mark_delivery_reported(self, job_id: int) -> bool:
        changed = await self._db.execute(
            "UPDATE bulk_jobs SET delivery_reported = 1 WHERE id = ? AND delivery_reported = 0",
            (job_id,),
        )
        return changed > 0

    # --- rows ------------------------------------------------------------------------------

    async def counts(self, job_id: int) -> JobCounts:
        rows = await self._db.fetchall(
            "SELECT state, COUNT(*) AS n FROM bulk_rows WHERE job_id = ? GROUP BY state",
            (job_id,),
        )
        return JobCounts(**{row["state"]: int(row["n"]) for row in rows})

    async def costs(self, job_id: int) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT cost FROM bulk_rows WHERE job_id = ? AND cost IS NOT NULL", (job_id,)
        )
        return [str(row["cost"]) for row in rows]

    async def parts_left(self, job_id: int, *, phone_prefix: str = "") -> int:
        """SMS parts of the rows not sent yet: what resuming the job will cost. With
        `phone_prefix`, only of the rows whose phone (digits) starts with it."""
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(parts), 0) AS n FROM bulk_rows "
            "WHERE job_id = ? AND state = 'pending' AND substr(phone, 1, ?) = ?",
            (job_id, len(phone_prefix), phone_prefix),
        )
        assert row is not None  # an aggregate always yields one row
        return int(row["n"])

    async def last_failure(self, job_id: int) -> str | None:
        """The gateway's text for the job's most recent failed row."""
        row = await self._db.fetchone(
            "SELECT error FROM bulk_rows WHERE job_id = ? AND state = 'failed' "
            "ORDER BY updated_at DESC, row_no DESC LIMIT 1",
            (job_id,),
        )
        return None if row is None else row["error"]

    async def next_pending(self, job_id: int, limit: int) -> list[BulkRow]:
        rows = await self._db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM bulk_rows WHERE job_id = ? AND state = 'pending' "
            "ORDER BY row_no LIMIT ?",
            (job_id, limit),
        )
        return [BulkRow.from_row(row) for row in rows]

    async def claim(
        self,
        job_id: int,
        row_no: int,
        *,
        callback: tuple[str, int] | None = None,
        lease: tuple[str, int] | None = None,
    ) -> bool:
        """pending → sending, committed BEFORE the request leaves. False if someone else has it,
        or the job is no longer running: Pause or Cancel may have landed on another replica,
        and only the database knows. `callback` (token hash, owner's user id) is stored with
        the claim, in its transaction. With `lease` (replica, fence) the claim also needs the
        job held under that very fence: a replica whose job lease was taken over claims
        nothing more."""
        sql = (
            "UPDATE bulk_rows SET state = 'sending', updated_at = ?, lease_owner = ?, "
            "claim_fence = ? WHERE job_id = ? AND row_no = ? AND state = 'pending' "
            "AND EXISTS (SELECT 1 FROM bulk_jobs WHERE id = ? AND state = 'running'"
        )
        owner, fence = lease if lease is not None else (None, None)
        params: tuple[object, ...] = (utc_now(), owner, fence, job_id, row_no, job_id)
        if lease is not None:
            sql += " AND lease_owner = ? AND lease_fence = ?"
            params += (owner, fence)
        sql += ")"
        if callback is None:
            # Committed with the other workers' claims and results of the moment (one sync).
            return await self._db.batched(lambda: self._db.execute(sql, params)) > 0
        token_hash, user_id = callback

        async def claim_with_callback() -> bool:
            async with self._db.transaction():
                if not await self._db.execute(sql, params):
                    return False
                await add_callback(self._db, token_hash, user_id, job_id=job_id, row_no=row_no)
            return True

        return await self._db.batched(claim_with_callback)

    async def finish_row(
        self,
        job_id: int,
        row_no: int,
        state: RowState,
        *,
        sms_id: int | None = None,
        request_id: str | None = None,
        status: str | None = None,
        cost: str | None = None,
        error: str | None = None,
    ) -> None:
        """Records a row's outcome, committed with the other workers' claims and results of
        the moment (one sync to disk for them all)."""
        outcome = (state, sms_id, request_id, status, cost, error)
        await self._db.batched(lambda: self._finish_row(job_id, row_no, *outcome))

    async def _finish_row(
        self,
        job_id: int,
        row_no: int,
        state: RowState,
        sms_id: int | None,
        request_id: str | None,
        status: str | None,
        cost: str | None,
        error: str | None,
    ) -> None:
        await self._db.execute(
            "UPDATE bulk_rows SET state = ?, sms_id = ?, request_id = ?, status = ?, cost = ?, "
            "error = ?, updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
            "WHERE job_id = ? AND row_no = ?",
            # An sms_id beyond SQLite's range must not turn a sent row into a crash.
            (
                state,
                sqlite_int(sms_id),
                request_id,
                status,
                cost,
                error,
                now := utc_now(),
                state,
                now,
                job_id,
                row_no,
            ),
        )

    async def release(self, job_id: int, row_no: int) -> None:
        """sending → pending, only when the request certainly never left (connection refused)."""
        params = (utc_now(), job_id, row_no)
        await self._db.batched(
            lambda: self._db.execute(
                "UPDATE bulk_rows SET state = 'pending', updated_at = ? "
                "WHERE job_id = ? AND row_no = ? AND state = 'sending'",
                params,
            )
        )

    async def orphans_to_unknown(self, owner: str | None = None, now: str | None = None) -> int:
        """At start-up: rows left 'sending' by a process that died mid-request become
        'unknown' (they may have gone out); they are reconciled, never resent blindly.

        With `owner` and `now` (lease stamps), only rows of jobs no live replica holds: the
        lease expired, was never taken, or is `owner`'s own (this replica's previous run)."""
        if owner is None or now is None:
            return await self._db.execute(
                "UPDATE bulk_rows SET state = 'unknown', error = 'interrupted', updated_at = ? "
                "WHERE state = 'sending'",
                (utc_now(),),
            )
        return await self._db.execute(
            "UPDATE bulk_rows SET state = 'unknown', error = 'interrupted', updated_at = ? "
            "WHERE state = 'sending' AND job_id IN (SELECT id FROM bulk_jobs "
            "WHERE lease_until IS NULL OR lease_until < ? OR lease_owner = ?)",
            (utc_now(), now, owner),
        )

    async def unsettled_to_unknown(self, job_id: int, fence: int | None = None) -> int:
        """After a run of the job ended: a row still 'sending' lost its result to an error
        and may have gone out, so it becomes 'unknown' (reconciled, never resent). With
        `fence`, only the rows claimed under it (this run's, not a later holder's)."""
        if fence is None:
            return await self._db.execute(
                "UPDATE bulk_rows SET state = 'unknown', error = 'interrupted', updated_at = ? "
                "WHERE job_id = ? AND state = 'sending'",
                (utc_now(), job_id),
            )
        return await self._db.execute(
            "UPDATE bulk_rows SET state = 'unknown', error = 'interrupted', updated_at = ? "
            "WHERE job_id = ? AND state = 'sending' AND claim_fence = ?",
            (utc_now(), job_id, fence),
        )

    async def rows_in(self, job_id: int, states: Sequence[RowState]) -> list[BulkRow]:
        marks = ", ".join("?" * len(states))
        rows = await self._db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM bulk_rows WHERE job_id = ? AND state IN ({marks}) "
            "ORDER BY row_no",
            (job_id, *states),
        )
        return [BulkRow.from_row(row) for row in rows]

    async def all_rows(self, job_id: int) -> list[BulkRow]:
        rows = await self._db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM bulk_rows WHERE job_id = ? ORDER BY row_no", (job_id,)
        )
        return [BulkRow.from_row(row) for row in rows]

    async def totals(self, since: str) -> tuple[int, int]:
        """(Bulk rows sent since `since`, parts of them), every job: the admin summary."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(parts), 0) AS parts FROM bulk_rows "
            "WHERE state = 'sent' AND COALESCE(sent_at, updated_at) >= ?",
            (since,),
        )
        assert row is not None
        return int(row["n"]), int(row["parts"])

    async def costs_since(self, since: str) -> list[str]:
        """The verbatim cost of each bulk row sent since `since`."""
        rows = await self._db.fetchall(
            "SELECT cost FROM bulk_rows WHERE state = 'sent' "
            "AND COALESCE(sent_at, updated_at) >= ? AND cost IS NOT NULL",
            (since,),
        )
        return [str(row["cost"]) for row in rows]

    async def set_row_status(self, job_id: int, row_no: int, status: str) -> None:
        await self._db.execute(
            "UPDATE bulk_rows SET status = ?, updated_at = ? WHERE job_id = ? AND row_no = ?",
            (status, utc_now(), job_id, row_no),
        )

    # --- reconciliation (services/reconcile.py) ------------------------------------------------

    @property
    def db(self) -> Database:
        return self._db

    async def open_rows_of_user(self, user_id: int) -> list[tuple[BulkRow, str]]:
        """The user's rows whose request is in flight ('sending') or whose fate is unknown,
        each with its job's start, over all jobs."""
        rows = await self._db.fetchall(
            "SELECT r.job_id, r.row_no, r.phone, r.message, r.parts, r.state, r.sms_id, "
            "r.request_id, r.status, r.cost, r.error, r.updated_at, "
            "COALESCE(j.started_at, j.created_at) AS job_started "
            "FROM bulk_jobs j JOIN bulk_rows r ON r.job_id = j.id "
            "WHERE j.user_id = ? AND r.state IN ('sending', 'unknown') "
            "ORDER BY r.job_id, r.row_no",
            (user_id,),
        )
        found: list[tuple[BulkRow, str]] = []
        for row in rows:
            values = {key: row[key] for key in row.keys() if key != "job_started"}  # noqa: SIM118
            found.append((BulkRow(**values), str(row["job_started"])))
        return found

    async def settle_unknown(
        self,
        job_id: int,
        row_no: int,
        *,
        sms_id: int | None,
        request_id: str | None,
        status: str | None,
        cost: str | None,
    ) -> bool:
        """unknown → sent, found in the history; False when the row is not 'unknown' any more
        (another reconciliation got there first)."""
        changed = await self._db.execute(
            "UPDATE bulk_rows SET state = 'sent', sms_id = ?, request_id = ?, status = ?, "
            "cost = ?, error = NULL, updated_at = ?, sent_at = COALESCE(sent_at, ?) "
            "WHERE job_id = ? AND row_no = ? AND state = 'unknown'",
            # An sms_id beyond SQLite's range must not stop the user's reconciliation for good.
            (sqlite_int(sms_id), request_id, status, cost, now := utc_now(), now, job_id, row_no),
        )
        return changed > 0

    async def mark_not_sent(self, job_id: int, row_no: int) -> bool:
        """unknown → not_sent: no trace in the history; False when the row is not 'unknown'
        any more (a match settled it as sent meanwhile, which must stand)."""
        changed = await self._db.execute(
            "UPDATE bulk_rows SET state = 'not_sent', updated_at = ? "
            "WHERE job_id = ? AND row_no = ? AND state = 'unknown'",
            (utc_now(), job_id, row_no),
        )
        return changed > 0

    async def unknown_users_older_than(self, cutoff: str) -> list[int]:
        """The users with a bulk row 'unknown' since `cutoff` or before, in any job."""
        # Per job, so that the (job_id, state) index serves instead of a scan of every row.
        rows = await self._db.fetchall(
            "SELECT DISTINCT j.user_id FROM bulk_jobs j WHERE EXISTS (SELECT 1 FROM bulk_rows r "
            "WHERE r.job_id = j.id AND r.state = 'unknown' AND r.updated_at <= ?) "
            "ORDER BY j.user_id",
            (cutoff,),
        )
        return [int(row["user_id"]) for row in rows]
