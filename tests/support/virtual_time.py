"""Virtual time for code that takes a Clock (bot/notices/notifier.py, bot/notices/digest.py).

FakeClock.run() drives the event loop and, whenever every task is waiting, jumps the clock to
the next sleeper's deadline, so minutes of pacing run instantly and always the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import Final, TypeVar

T = TypeVar("T")

# Event-loop turns that let every woken task run until it waits again.
SETTLE_TURNS: Final = 50


class FakeClock:
    """Virtual time: sleep() waits until run() moves `now` past the sleeper's deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), future))
        await future

    async def run(self, awaitable: Awaitable[T], *, limit: float = 3600.0) -> T:
        """Awaits `awaitable`, jumping to the next deadline whenever nothing else can run."""
        task = asyncio.ensure_future(awaitable)
        stuck = 0
        while not task.done():
            for _ in range(SETTLE_TURNS):
                await asyncio.sleep(0)
            if task.done():
                break
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # a cancelled sleep
            if not self._sleepers:
                stuck += 1
                if stuck > 20:
                    task.cancel()
                    raise AssertionError("stuck: nothing sleeps and the awaited task waits")
                continue
            stuck = 0
            deadline = self._sleepers[0][0]
            if deadline > limit:
                task.cancel()
                raise AssertionError(f"still waiting at virtual time {deadline}")
            self.now = max(self.now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self.now:
                future = heapq.heappop(self._sleepers)[2]
                if not future.done():
                    future.set_result(None)
        return task.result()
