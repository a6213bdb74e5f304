"""The scheduler stops when asked, even when a handler's "Send now" woke it in the same turn
(services.scheduler.Scheduler.run: asyncio.wait_for on Python 3.11 swallowed that stop)."""

from __future__ import annotations

import asyncio
from typing import Any

from services.scheduler import Scheduler


class NothingDue:
    """Schedule, users and bulk records with nothing to do."""

    async def release_held(self) -> None:
        return None

    async def jobs_in(self, states: Any) -> list[Any]:
        return []

    async def due(self, now: Any) -> list[Any]:
        return []


async def test_a_stop_right_after_a_wake_up_ends_the_scheduler() -> None:
    empty: Any = NothingDue()
    scheduler = Scheduler(empty, empty, empty, None, None, None, None, poll=0.05)
    scheduler.start()
    task = scheduler._task
    assert task is not None
    await asyncio.sleep(0.01)  # waiting for its next round

    scheduler.wake()  # "Send now" ...
    stopping = asyncio.create_task(scheduler.stop())  # ... and the shutdown right after
    done, _ = await asyncio.wait({stopping}, timeout=2)

    assert done, "Scheduler.stop did not return"
    assert task.done()
