"""A broadcast: one text to many users through the paced notifier.

It runs in a task of its own (handlers/admin.py owns it and cancels it at shutdown): at 25
messages a second, 10,000 users take minutes, and no handler may wait that long.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from services.events import Delivery

# Messages of one broadcast waiting in the notifier at once. The notifier paces them; a short
# queue lets alerts and other users' notices slip in between instead of waiting behind all.
WORKERS: Final = 10
# Reporting progress more often than this (an edited message) runs into flood limits.
PROGRESS_EVERY: Final = 3.0

Progress = Callable[[Counter[Delivery], int], Awaitable[None]]
"""Called with the tally so far and how many are done (never for the last one)."""


class Deliver(Protocol):
    """The paced notifier (bot/notices/notifier.Notifier); it never raises."""

    async def send(self, chat_id: int, text: str) -> Delivery: ...


class Outbox(Deliver, Protocol):
    """What a broadcast's owner needs besides: the tally as a message, and its report edited
    in place."""

    def post(self, chat_id: int, text: str) -> None: ...

    async def edit(self, chat_id: int, message_id: int, text: str) -> Delivery: ...


async def run_broadcast(
    notifier: Deliver,
    text: str,
    targets: Sequence[int],
    tally: Counter[Delivery],
    on_progress: Progress,
    *,
    workers: int = WORKERS,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """Sends `text` to every target, counting outcomes into `tally` (which keeps the count
    of what was done should this raise)."""
    pending = iter(targets)
    last_report = time.monotonic()

    async def worker() -> None:
        nonlocal last_report
        for user_id in pending:
            # The notifier marks users who blocked the bot inactive itself.
            tally[await notifier.send(user_id, text)] += 1
            done = sum(tally.values())
            if time.monotonic() - last_report >= progress_every and done < len(targets):
                last_report = time.monotonic()
                await on_progress(tally, done)

    async with asyncio.TaskGroup() as group:
        for _worker in range(min(workers, len(targets))):
            group.create_task(worker())
