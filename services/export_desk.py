"""Exports run in the background, at most a few at once, one per user.

An export reads up to a year of records, writes files in threads and uploads parts of up to
50 MB with a ten-minute timeout each: minutes, not milliseconds. Inside the handler that time
belonged to the user's chat (aiogram's SimpleEventIsolation holds a chat while its update is
handled), so their /send or a tap waited behind their own export. A handler takes a slot
(take), hands the desk the export (start) and returns; the slot is released when the export
ends, however it ends. Like services.chart_desk, the desk owns the tasks and cancels them at
shutdown.

With replicas a user's taps may reach several processes: `shared` (services.shared_stores.
RedisRuns) holds the user's one export slot across all of them, kept alive while the export
runs and let go when it ends (or, when its replica dies, a few minutes later).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from services.export import ExportSlots

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
# How often a running export tells the other replicas it still holds the user's slot.
KEEP_ALIVE: Final = 60.0


class SharedRuns(Protocol):
    """One export per user across replicas."""

    async def claim(self, user_id: int) -> str | None:
        """A ticket for the user's slot, or None when another replica holds it."""
        ...

    async def keep(self, user_id: int, ticket: str) -> None: ...

    async def release(self, user_id: int, ticket: str) -> None: ...


class Taken(enum.Enum):
    YES = "yes"
    BUSY = "busy"
    """EXPORTS_AT_ONCE exports run here already."""
    OWN = "own"
    """The user's own export runs (here or on another replica)."""


class ExportDesk(ExportSlots):
    def __init__(self, limit: int, shared: SharedRuns | None = None) -> None:
        super().__init__(limit)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._closed = False
        self._shared = shared
        self._tickets: dict[int, str] = {}

    async def take_slot(self, user_id: int) -> Taken:
        """take(), and with replicas the user's one slot across all of them."""
        if not self.take(user_id):
            return Taken.OWN if self.running(user_id) else Taken.BUSY
        if self._shared is None:
            return Taken.YES
        ticket = await self._shared.claim(user_id)
        if ticket is None:
            self.release(user_id)
            return Taken.OWN
        self._tickets[user_id] = ticket
        return Taken.YES

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
        ticket = self._tickets.pop(user_id, None)
        keeper = None
        if self._shared is not None and ticket is not None:
            keeper = asyncio.create_task(self._keep(user_id, ticket))
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
            if keeper is not None and ticket is not None and self._shared is not None:
                keeper.cancel()
                with contextlib.suppress(Exception):
                    await self._shared.release(user_id, ticket)

    async def _keep(self, user_id: int, ticket: str) -> None:
        assert self._shared is not None
        while True:
            await asyncio.sleep(KEEP_ALIVE)
            try:
                await self._shared.keep(user_id, ticket)
            except Exception as exc:  # Redis away for a while: the claim may lapse, no more
                logger.warning("export slot of user %s not kept: %s", user_id, exc)

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
