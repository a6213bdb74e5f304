"""A broadcast: one text to many users through the paced notifier.

It runs in a task of its own (handlers/admin/broadcast.py owns it and cancels it at
shutdown): at 25 messages a second, 10,000 users take minutes, and no handler may wait that
long. It is kept on disk (storage/broadcasts.py), so a restart resumes it where it stopped.
The admin's report message follows the tally (BroadcastProgress events) and gets the end
(BroadcastFinished), also when an error stops it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Final, Protocol

from services.events import BroadcastFinished, BroadcastProgress, Delivery, Notices, Tally
from services.rounds import Rounds
from storage.broadcasts import UNKNOWN, BroadcastRepo, BroadcastRow

logger = logging.getLogger(__name__)

# Messages of one broadcast waiting in the notifier at once. The notifier paces them; a short
# queue lets alerts and other users' notices slip in between instead of waiting behind all.
WORKERS: Final = 10
# Reporting progress more often than this (an edited message) runs into flood limits.
PROGRESS_EVERY: Final = 3.0


class Deliver(Protocol):
    """The paced notifier (bot/notices/notifier.Notifier); it never raises."""

    async def send(self, chat_id: int, text: str) -> Delivery: ...


def settled_so_far(counts: dict[str, int]) -> Counter[Delivery]:
    """The outcomes a broadcast's targets have on disk. 'unknown' (claimed when the process
    stopped: maybe sent, never again) counts as failed."""
    outcomes: Counter[Delivery] = Counter()
    for state, n in counts.items():
        if state == UNKNOWN:
            outcomes[Delivery.FAILED] += n
        elif state in Delivery.__members__.values():
            outcomes[Delivery(state)] += n
    return outcomes


async def run_broadcast(
    notifier: Deliver,
    notices: Notices,
    log: BroadcastRepo,
    broadcast: BroadcastRow,
    *,
    workers: int = WORKERS,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """Sends the broadcast's text to each of its waiting targets, claiming each on disk
    before its message goes out (a restart resumes the rest, see BroadcastRepo). The admin's
    report message follows the tally of every target, those settled before a restart too."""
    report = (broadcast.report_chat, broadcast.report_message)
    counts = await log.counts(broadcast.id)
    total = sum(counts.values())
    outcomes = settled_so_far(counts)
    last_report = time.monotonic()

    async def worker() -> None:
        nonlocal last_report
        while (user_id := await log.claim(broadcast.id)) is not None:
            # The notifier marks users who blocked the bot inactive itself.
            outcome = await notifier.send(user_id, broadcast.text)
            await log.settle(broadcast.id, user_id, outcome.value)
            outcomes[outcome] += 1
            done = sum(outcomes.values())
            if time.monotonic() - last_report >= progress_every and done < total:
                last_report = time.monotonic()
                await notices.emit(
                    BroadcastProgress(*report, broadcast.language, total, Tally.of(outcomes))
                )

    stopped = False
    try:
        async with asyncio.TaskGroup() as group:
            for _worker in range(min(workers, counts.get("waiting", 0))):
                group.create_task(worker())
    except Exception:
        logger.exception(
            "broadcast %s stopped after %s messages", broadcast.id, sum(outcomes.values())
        )
        stopped = True
    else:
        logger.info("broadcast %s finished: %s", broadcast.id, dict(outcomes))
    await log.finish(broadcast.id, "stopped" if stopped else "finished")
    finished = BroadcastFinished(*report, broadcast.language, total, Tally.of(outcomes), stopped)
    await notices.emit(finished)


async def run_leased(
    rounds: Rounds,
    notifier: Deliver,
    notices: Notices,
    log: BroadcastRepo,
    broadcast: BroadcastRow,
    *,
    resume: bool = False,
) -> bool:
    """Runs the broadcast on this replica only while it holds the broadcast's lease (several
    replicas: one sends it, one reports its end). With `resume` (a start-up), the targets a
    stopped process had claimed become 'unknown' first, under the lease, so a live replica's
    claims are never taken for a dead one's. False when another replica runs it."""

    async def work() -> None:
        if resume:
            unknown = await log.interrupted(broadcast.id)
            logger.info(
                "broadcast %s resumed; %s messages may have gone out before", broadcast.id, unknown
            )
        await run_broadcast(notifier, notices, log, broadcast)

    ran, _ = await rounds.run(f"broadcast-{broadcast.id}", work)
    if not ran:
        logger.info("broadcast %s is sent by another replica", broadcast.id)
    return ran
