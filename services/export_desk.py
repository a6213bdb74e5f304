"""Exports run in the background, at most a few at once, one per user.

An export reads up to a year of records, writes files in threads and uploads parts of up to
50 MB with a ten-minute timeout each: minutes, not milliseconds. Inside the handler that time
belonged to the user's chat (aiogram's SimpleEventIsolation holds a chat while its update is
handled), so their /send or a tap waited behind their own export. A handler takes a slot
(take), hands the desk the export (start) and returns; the slot is released when the export
ends, however it ends. Like services.chart_desk, the desk owns the tasks and cancels them at
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from services.export import ExportSlots

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class ExportDesk(ExportSlots):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._closed = False

    def start(self, user_id: int, job: Job) -> None:
        """Runs `job` for the slot `user_id` took (take() returned True); releases it when the
        job ends. Never blocks. The task runs in a copy of the caller's context (the user's
        locale for gettext)."""
        if self._closed:
            self.release(user_id)
            raise RuntimeError("export desk closed")
        self._running[user_id] = asyncio.create_task(
            self._run(user_id, job), name=f"export-{user_id}"
        )

    async def _run(self, user_id: int, job: Job) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A job tells its user of its own failures; this is a bug in one.
            logger.exception("export of user %s failed", user_id)
        finally:
            self._running.pop(user_id, None)
            self.release(user_id)

    def running(self, user_id: int) -> bool:
        return user_id in self._running

    async def idle(self) -> None:
        """Returns once no export runs (tests and the bench)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
