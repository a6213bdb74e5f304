"""Charts are drawn in child processes, one request per user at a time, the newest one winning.

Drawing a chart is a few hundred milliseconds of CPU in matplotlib: on the event loop it would
stall every chat (the GIL), so it runs in children started by forkserver with a memory and a
time limit (services.upload_worker.UploadWorker; matplotlib is imported there, never in the
bot). A handler does not wait for a chart: it hands the desk a job (read the numbers, draw,
send the photo) and returns. Per user the desk keeps the job that runs and at most one that
waits; a later tap replaces the waiting one, so a user tapping 7/30/90 fast gets the chart
of their last tap and the desk never holds more than two jobs per user. The jobs of different
users share the children: as many jobs run at once as there are children, the others wait
their turn (the machine has few cores; more children than cores would only share them). A job
reads its numbers only once it runs, so 20 users asking at once do not put 20 readings in
front of everyone else's database calls at the same moment.

With replicas, the taps of one user may reach different processes, each with its own desk:
`latest` (services.shared_stores.RedisTaps) numbers each user's taps across replicas, and a
job whose tap is no longer the newest shows nothing (`still_newest`), so the chart left in the
chat is the last tap's whichever replica drew it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from services.charts import PRELOAD, ChartSpec, draw_chart
from services.upload_worker import UploadWorker

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class LatestTaps(Protocol):
    """Each user's chart taps numbered across replicas."""

    async def take(self, user_id: int) -> int:
        """The number of a new tap: higher than every earlier one of the user."""
        ...

    async def newest(self, user_id: int) -> int | None: ...


DEFAULT_MEMORY_LIMIT: Final = 768 * 1024 * 1024
DEFAULT_TIME_LIMIT: Final = 30.0
# The chart children run at the lowest priority, nice 19 and (Linux) the SCHED_IDLE class: on
# a machine with few cores the event loop, which answers everyone, gets the CPU first and
# takes it back from a chart the moment an update arrives (make bench, section 8: nice 10
# alone kept /balance's p99 under charts at 1.5 × idle only at the edge).
CHART_NICE: Final = 19


class ChartDesk:
    def __init__(
        self,
        *,
        workers: int = 1,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        time_limit: float = DEFAULT_TIME_LIMIT,
        latest: LatestTaps | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("at least one chart worker")
        self._workers = [
            UploadWorker(
                memory_limit=memory_limit,
                time_limit=time_limit,
                preload=PRELOAD,
                nice=CHART_NICE,
                idle_class=True,
                name="chart worker",
            )
            for _ in range(workers)
        ]
        self._free: asyncio.Queue[UploadWorker] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: dict[int, asyncio.Task[None]] = {}
        # With the context it was submitted in (the user's locale for gettext, for one).
        self._waiting: dict[int, tuple[Job, contextvars.Context]] = {}
        self._closed = False
        self._latest = latest

    async def tap(self, key: int) -> int:
        """Numbers a chart request of `key` (0 in one process: `submit` keeps the newest)."""
        return 0 if self._latest is None else await self._latest.take(key)

    async def still_newest(self, key: int, tap: int) -> bool:
        """Whether no later request of `key` came, to any replica, since `tap`: a job checks
        it right before it shows its chart."""
        if self._latest is None:
            return True
        newest = await self._latest.newest(key)
        return newest is None or newest <= tap

    @property
    def pids(self) -> list[int]:
        """Process ids of the children started so far (none until the first chart)."""
        return [w.pid for w in self._workers if w.pid is not None]

    def submit(self, key: int, job: Job) -> bool:
        """Runs `job` after `key`'s running one, in place of any job of `key` still waiting.

        Returns False when the job waits (another one of `key` runs). Never blocks.
        """
        if self._closed:
            raise RuntimeError("chart desk closed")
        if key in self._running:
            if key in self._waiting:
                logger.debug("chart request of %s replaced a waiting one", key)
            self._waiting[key] = (job, contextvars.copy_context())
            return False
        self._start(key, job, contextvars.copy_context())
        return True

    def pending(self, key: int) -> int:
        """Jobs of `key` the desk holds: 0, 1 (running) or 2 (one waits)."""
        return int(key in self._running) + int(key in self._waiting)

    async def draw(self, spec: ChartSpec) -> bytes:
        """The PNG of `spec`, drawn in a free child (waits for one). Raises TooSlow or
        TooLarge (services.spreadsheet) when the child ran past its limits."""
        free = self._queue()
        worker = await free.get()
        try:
            return await worker.run(draw_chart, spec)
        finally:
            free.put_nowait(worker)

    async def idle(self) -> None:
        """Returns once no job runs or waits (tests and the bench)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        self._waiting.clear()
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        for worker in self._workers:
            await worker.close()

    def _turns(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(len(self._workers))
        return self._slots

    def _queue(self) -> asyncio.Queue[UploadWorker]:
        # Made on first use, inside the running loop.
        if self._free is None:
            self._free = asyncio.Queue()
            for worker in self._workers:
                self._free.put_nowait(worker)
        return self._free

    def _start(self, key: int, job: Job, context: contextvars.Context) -> None:
        task = asyncio.create_task(self._run(key, job), name=f"chart-{key}", context=context)
        self._running[key] = task

    async def _run(self, key: int, job: Job) -> None:
        try:
            async with self._turns():
                await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A job reports its own failures to its user; this is a bug in one.
            logger.exception("chart job of %s failed", key)
        finally:
            del self._running[key]
            following = self._waiting.pop(key, None)
            if following is not None and not self._closed:
                self._start(key, *following)
