"""Delivery results of bulk jobs: tracked like single SMS, reported once per job.

Asking the status of every SMS of a 10,000-row job would cost 10,000 requests per round;
the history answers 200 at a time, so the job's rows are updated from it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from services.access import OPEN, AccessPolicy
from services.accounts import Accounts, NoToken
from services.bulk import HISTORY_PAGES_MAX
from services.devsms import DevsmsError, is_final_status
from services.events import BulkDeliveryResults, Notices, Person
from services.history_pages import HistoryCursor
from services.rounds import Rounds
from storage import BulkRepo, JobRow, UserRepo

logger = logging.getLogger(__name__)

REPORT_AFTER: Final = timedelta(hours=24)  # give up waiting for the slowest operators
CHECK_EVERY: Final = 300.0
WAKE_GAP: Final = 30.0


class BulkDeliveryReporter:
    def __init__(
        self,
        bulk: BulkRepo,
        accounts: Accounts,
        users: UserRepo,
        notices: Notices,
        *,
        policy: AccessPolicy = OPEN,
        report_after: timedelta = REPORT_AFTER,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rounds: Rounds | None = None,
    ) -> None:
        self._bulk = bulk
        # One replica reads the history for the finished jobs at a time (services/rounds.py).
        self._rounds = rounds if rounds is not None else Rounds(None)
        self._accounts = accounts
        self._users = users
        self._notices = notices
        self._policy = policy
        self._report_after = report_after
        self._now = now
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A delivery callback came for a row: its job may be complete, look now."""
        self._wake.set()

    async def run(self, every: float = CHECK_EVERY) -> None:
        while True:
            self._wake.clear()
            started = time.monotonic()
            try:
                await self._rounds.run("bulk-delivery", self.tick)
            except Exception:
                logger.exception("bulk delivery round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._wake.wait()
            # Callbacks of a big job wake it often: a round reads history pages, so at most
            # one round per WAKE_GAP.
            await asyncio.sleep(max(0.0, min(every, WAKE_GAP) - (time.monotonic() - started)))

    async def tick(self) -> int:
        """Updates the statuses of finished jobs not reported yet; returns reports sent."""
        reported = 0
        for job in await self._bulk.jobs_in(("done", "cancelled")):
            if job.delivery_reported:
                continue
            try:
                if await self._check(job):
                    reported += 1
            except (DevsmsError, NoToken) as exc:
                logger.info("bulk job %s: statuses not available (%s)", job.id, type(exc).__name__)
        return reported

    async def _check(self, job: JobRow) -> bool:
        rows = await self._bulk.rows_in(job.id, ("sent",))
        if not rows:
            await self._bulk.mark_delivery_reported(job.id)  # nothing went out: nothing to say
            return False
        waiting = {
            row.sms_id: row for row in rows if row.sms_id and not is_final_status(row.status)
        }
        if waiting:
            cursor = HistoryCursor(self._accounts, job.user_id)
            async for chunk in cursor.pages(HISTORY_PAGES_MAX):
                for record in chunk.items:
                    row = waiting.get(record.sms_id) if record.sms_id else None
                    if row is not None and record.status and record.status != row.status:
                        await self._bulk.set_row_status(job.id, row.row_no, record.status)
            rows = await self._bulk.rows_in(job.id, ("sent",))
        still = sum(1 for row in rows if not is_final_status(row.status))
        finished = datetime.fromisoformat(job.finished_at or job.updated_at)
        if still and self._now() - finished < self._report_after:
            return False
        if not await self._bulk.mark_delivery_reported(job.id):
            return False
        delivered = sum(1 for row in rows if (row.status or "").upper() == "DELIVERED")
        user = await self._users.get(job.user_id)
        if user is None or not user.is_active or not self._policy.admits(user.id, user.access):
            return False
        await self._notices.emit(
            BulkDeliveryResults(
                Person.of(user),
                job.id,
                delivered=delivered,
                failed=len(rows) - delivered - still,
                waiting=still,
            )
        )
        return True
