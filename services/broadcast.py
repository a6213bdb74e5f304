"""A broadcast: one text to many users through the paced notifier.

It runs in a task of its own (handlers/admin/broadcast.py owns it and cancels it at
shutdown): at 25 messages a second, 10,000 users take minutes, and no handler may wait that
long. The admin's report message follows the tally (BroadcastProgress events) and gets the end
(BroadcastFinished), also when an error stops it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Final, Protocol

from services.events import BroadcastFinished, BroadcastProgress, Delivery, Notices, Tally

logger = logging.getLogger(__name__)

# Messages of one broadcast waiting in the notifier at once. The notifier paces them; a short
# queue lets alerts and other users' notices slip in between instead of waiting behind all.
WORKERS: Final = 10
# Reporting progress more often than this (an edited message) runs into flood limits.
PROGRESS_EVERY: Final = 3.0


class Deliver(Protocol):
    """The paced notifier (bot/notices/notifier.Notifier); it never raises."""

    async def send(self, chat_id: int, text: str) -> Delivery: ...


async def run_broadcast(
    notifier: Deliver,
    notices: Notices,
    text: str,
    targets: Sequence[int],
    *,
    report: tuple[int, int],
    language: str,
    workers: int = WORKERS,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """Sends `text` to every target; `report` is the (chat_id, message_id) of the admin's
    report message, `language` theirs."""
    outcomes: Counter[Delivery] = Counter()
    pending = iter(targets)
    last_report = time.monotonic()

    async def worker() -> None:
        nonlocal last_report
        for user_id in pending:
            # The notifier marks users who blocked the bot inactive itself.
            outcomes[await notifier.send(user_id, text)] += 1
            done = sum(outcomes.values())
            if time.monotonic() - last_report >= progress_every and done < len(targets):
                last_report = time.monotonic()
                await notices.emit(
                    BroadcastProgress(*report, language, len(targets), Tally.of(outcomes))
                )

    stopped = False
    try:
        async with asyncio.TaskGroup() as group:
            for _worker in range(min(workers, len(targets))):
                group.create_task(worker())
    except Exception:
        logger.exception("broadcast stopped after %s messages", sum(outcomes.values()))
        stopped = True
    else:
        logger.info("broadcast finished: %s", dict(outcomes))
    finished = BroadcastFinished(*report, language, len(targets), Tally.of(outcomes), stopped)
    await notices.emit(finished)
