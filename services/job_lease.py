"""A running bulk job on several replicas: which one sends it, and at what pace.

The replica holding a job's lease (storage/leases.py JobLeaseRepo) sends it; it renews the
lease every third of LEASE_SECONDS while it runs. A replica that dies stops renewing, and
after the lease runs out another one takes the job over with a higher fence: the rows the
dead one had in flight become 'unknown' (settled from the history, never sent again), its
pending rows are sent by the survivor. A replica that only stalled and comes back finds its
fence outdated: its row claims are refused (BulkRepo.claim), so it sends nothing more.

The job's rate holds across replicas: send slots are reserved in the job's row.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from storage.leases import Clock, JobLeaseRepo, lease_stamp, utc_clock

logger = logging.getLogger(__name__)

# A replica reserves a job's send slots this many seconds' worth at a time (at least one):
# one write per block keeps a fast job (BULK_RATE 1000/s) from paying a commit per row.
SLOT_BLOCK_SECONDS: Final = 0.25


class JobPacer:
    """Spaces a job's requests `1/rate` seconds apart across every replica that sends it:
    the slots come from the job's row (JobLeaseRepo.take_slots) in wall-clock microseconds,
    so the replicas' clocks must agree (NTP), as for every lease."""

    def __init__(
        self,
        repo: JobLeaseRepo,
        job_id: int,
        rate: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._job_id = job_id
        self._step_us = max(1, round(1_000_000 / rate))
        self._block = max(1, int(rate * SLOT_BLOCK_SECONDS))
        self._clock = clock
        self._slots: deque[int] = deque()

    async def wait(self) -> None:
        if not self._slots:
            now_us = int(self._clock() * 1_000_000)
            first = await self._repo.take_slots(self._job_id, self._step_us, self._block, now_us)
            self._slots.extend(first + n * self._step_us for n in range(self._block))
        delay = self._slots.popleft() / 1_000_000 - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)


class JobLease:
    """This replica's side of the job leases: REPLICA_ID, LEASE_SECONDS and the clock."""

    def __init__(
        self,
        repo: JobLeaseRepo,
        replica_id: str | None = None,
        seconds: float = 30.0,
        clock: Clock = utc_clock,
    ) -> None:
        if seconds <= 0:
            raise ValueError("a lease must last a positive time")
        self.repo = repo
        self.owner = replica_id or socket.gethostname()
        self.seconds = seconds
        self._clock = clock

    def stamp(self, ahead: float = 0.0) -> str:
        return lease_stamp(self._clock() + timedelta(seconds=ahead))

    async def acquire(self, job_id: int) -> int | None:
        """The job's lease with a new fence, or None (another replica sends it)."""
        return await self.repo.acquire_job(
            job_id, self.owner, self.stamp(self.seconds), self.stamp()
        )

    async def release(self, job_id: int, fence: int) -> bool:
        return await self.repo.release_job(job_id, self.owner, fence)

    async def unleased(self) -> list[int]:
        """Running jobs no live replica holds."""
        return await self.repo.unleased_running(self.stamp())

    async def keep(
        self, job_id: int, fence: int, stop: asyncio.Event, lost: asyncio.Event
    ) -> None:
        """Renews the lease every third of its time until cancelled; when it was lost (this
        replica stalled past it and another took the job over) sets `lost` and `stop`."""
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                kept = await self.repo.renew_job(
                    job_id, self.owner, fence, self.stamp(self.seconds)
                )
            except Exception:
                logger.exception("bulk job %s: lease not renewed", job_id)
                continue  # the database may be back before the lease runs out
            if not kept:
                logger.warning("bulk job %s was taken over by another replica", job_id)
                lost.set()
                stop.set()
                return

    def pacer(self, job_id: int, rate: float) -> JobPacer:
        return JobPacer(self.repo, job_id, rate)
