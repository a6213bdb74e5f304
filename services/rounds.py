"""One replica per round: a background loop's round runs under a named lease.

Loops whose round walks all users or all jobs (the traffic sync, the reconciliation of
unknown sends, the bulk delivery reports, quiet hours of running jobs) run the round only on
the replica that takes the round's lease (storage/leases.py); the others skip it. While the
round runs the lease is renewed every third of its time; a holder that loses it (it stalled
and another replica took over) has its round cancelled. A replica that dies mid-round leaves
the lease to expire, and the next replica to try takes the round over.

Without a lease repository (tests of one service, a one-off script) every round just runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from storage.leases import LeaseRepo, lease_stamp

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LeaseLost(Exception):
    """Another replica took over the lease while our round ran."""


class Rounds:
    def __init__(self, leases: LeaseRepo | None) -> None:
        self.leases = leases

    @property
    def retry_after(self) -> float:
        """How long a replica that found the round taken waits before it asks again."""
        return 5.0 if self.leases is None else max(self.leases.seconds / 3, 0.05)

    async def run(
        self, name: str, work: Callable[[], Awaitable[T]], *, hold: float = 0.0
    ) -> tuple[bool, T | None]:
        """(True, result) when this replica ran the round, (False, None) when another holds
        it. With `hold`, the lease stays ours `hold` seconds from the round's start, so no
        replica starts the next round before then (a round per interval across replicas)."""
        leases = self.leases
        if leases is None:
            return True, await work()
        # Read first: while another replica holds the round, asking costs no write.
        holder = await leases.holder(name)
        if (
            holder is not None
            and holder.owner not in (None, leases.owner)
            and holder.until is not None
            and holder.until >= leases.now()
        ):
            return False, None
        fence = await leases.acquire(name)
        if fence is None:
            return False, None
        started = leases.clock()
        worker: asyncio.Task[T] = asyncio.create_task(_call(work), name=f"round-{name}")
        keeper = asyncio.create_task(self._keep(name, fence, worker), name=f"lease-{name}")
        ok = False
        try:
            result = await worker
            ok = True
        except asyncio.CancelledError:
            if keeper.done() and not keeper.cancelled() and keeper.result():
                raise LeaseLost(name) from None
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not worker.done():
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            await self._end(name, fence, lease_stamp(started + timedelta(seconds=hold)), ok)
            # The suppress above also swallows a cancellation of this task that lands while it
            # waits for the keeper (a stop right after the round): it must still end the task,
            # or the loop around the round goes on and whoever stops it waits forever.
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError
        return True, result

    async def _keep(self, name: str, fence: int, worker: asyncio.Task[T]) -> bool:
        """Renews the lease while `worker` runs; cancels it (and returns True) when lost."""
        assert self.leases is not None
        while True:
            await asyncio.sleep(self.leases.seconds / 3)
            try:
                if await self.leases.renew(name, fence):
                    continue
            except Exception:
                logger.exception("lease %s not renewed", name)
                continue  # the database may be back before the lease runs out
            logger.warning("lease %s was taken over; stopping this replica's round", name)
            worker.cancel()
            return True

    async def _end(self, name: str, fence: int, until: str, ok: bool) -> None:
        assert self.leases is not None
        try:
            if ok and until > self.leases.now():
                await self.leases.hold_until(name, fence, until)
            else:
                await self.leases.release(name, fence)
        except Exception:
            logger.exception("lease %s not released; it expires on its own", name)


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
