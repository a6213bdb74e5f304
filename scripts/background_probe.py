"""The bot's background work in a process of its own, with a loop-lag ticker (for `make bench`).

``python -m scripts.background_probe '<json config>'`` opens a prepared database, builds the
same objects the bot builds (Database, Accounts over TokenVault and DevsmsClient,
BalanceWatcher or BulkRunner) and runs one balance round over every user, or one bulk job,
against the gateway URL it is given (the bench's FakeDevsms). Meanwhile

- a ticker sleeps 10 ms again and again and records how late it wakes up: the event loop's
  lag, i.e. how long something else kept the loop from answering an update;
- one "interactive user" repeats the storage and gateway work of /balance (the user
  middleware's upsert, the HasToken look-up, Accounts.balance) every 100 ms.

Both run through an idle phase first, then the work. The bot itself is left untouched: this
process is the probe. It prints one JSON object on stdout and exits.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import resource
import sys
import time
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from aiogram.types import InlineKeyboardMarkup

from bot.__main__ import GC_YOUNG_THRESHOLD
from bot.i18n import create_i18n
from bot.notices.digest import AdminDigest
from bot.notices.presenter import Presenter
from services.accounts import Accounts
from services.bulk import BulkRunner
from services.devsms import DevsmsClient, mark_background
from services.events import Event, JobFinished, JobPaused
from services.health import GatewayHealth
from services.vault import TokenVault
from services.watcher import BalanceWatcher, RoundReport
from storage import (
    AlertRepo,
    BulkRepo,
    CredentialRepo,
    Database,
    TrafficRepo,
    UserRepo,
    yield_to_users,
)
from storage.leases import LeaseRepo

logger = logging.getLogger(__name__)

TICK: Final = 0.010
INTERACTIVE_EVERY: Final = 0.100
DEFAULT_LANGUAGE: Final = "uz"
DEFAULT_THRESHOLD: Final = Decimal(10_000)
OUTAGE_AFTER: Final = 5
# What the bot's Settings give a single replica: its name in the leases, and their time.
REPLICA_ID: Final = "bench-probe"
LEASE_SECONDS: Final = 30.0

JsonResult = dict[str, Any]


class RecordingNotify:
    """The notifier without Telegram: background notices are rendered, then only counted."""

    def __init__(self) -> None:
        self.sent = 0
        self.to_admins_count = 0

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> object:
        self.sent += 1
        return None

    def post_to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> bool:
        self.to_admins_count += 1
        return True

    def post(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        self.sent += 1


class Samples:
    """(moment, value) pairs; a phase is a time window over them."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def add(self, value: float) -> None:
        self.points.append((time.monotonic(), value))

    def between(self, start: float, end: float) -> list[float]:
        return [value for moment, value in self.points if start <= moment <= end]


async def ticker(lag: Samples) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(TICK)
        lag.add(time.monotonic() - before - TICK)


async def interactive(
    user_id: int, users: UserRepo, accounts: Accounts, latency: Samples, errors: list[str]
) -> None:
    """What one /balance costs the bot's loop apart from aiogram: the same awaits in order."""
    while True:
        started = time.monotonic()
        try:
            await users.upsert_seen(user_id, "Interactive", None)
            if await accounts.has_token(user_id):
                await accounts.balance(user_id)
        except Exception as exc:  # a failure is reported, never hidden in a latency
            errors.append(type(exc).__name__)
        else:
            latency.add(time.monotonic() - started)
        await asyncio.sleep(INTERACTIVE_EVERY)


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def run_watcher(config: dict[str, Any], accounts: Accounts, db: Database) -> JsonResult:
    notify = RecordingNotify()
    i18n = create_i18n(DEFAULT_LANGUAGE)
    digest = AdminDigest(notify, i18n, language=DEFAULT_LANGUAGE, interval=0)
    notices = Presenter(notify, digest, i18n, UserRepo(db), default_language=DEFAULT_LANGUAGE)
    health = GatewayHealth(OUTAGE_AFTER, notices)
    # Built as bot/background.py builds it: claims under the round's lease, a balance
    # snapshot per user, and the round's task marked as background work.
    watcher = BalanceWatcher(
        AlertRepo(db),
        accounts,
        notices,
        default_threshold=DEFAULT_THRESHOLD,
        interval=3600.0,
        concurrency=int(config["concurrency"]),
        health=health,
        snapshots=TrafficRepo(db),
        leases=LeaseRepo(db, REPLICA_ID, LEASE_SECONDS),
    )

    async def one_round() -> RoundReport | None:
        # What BalanceWatcher.run does before its first round, then that round.
        mark_background()
        yield_to_users()
        return await watcher.tick()

    report = await asyncio.create_task(one_round(), name="balance-round")
    if report is None:
        raise RuntimeError("the balance round did not start")
    return {
        "report": asdict(report),
        "notices": notify.sent,
        "admin_notices": notify.to_admins_count,
    }


async def run_bulk(
    config: dict[str, Any], accounts: Accounts, bulk: BulkRepo, job_id: int
) -> JsonResult:
    finished = asyncio.Event()
    outcome: dict[str, Any] = {}

    class Settled:
        async def emit(self, event: Event) -> None:
            if isinstance(event, JobFinished | JobPaused):
                job, counts = event.job, event.counts
                outcome.update(
                    state=job.state, pause_reason=job.pause_reason, counts=asdict(counts)
                )
                finished.set()

    runner = BulkRunner(
        bulk,
        accounts,
        rate=float(config["rate"]),
        concurrency=int(config["concurrency"]),
        notices=Settled(),
    )
    started = time.monotonic()
    if not await runner.begin(job_id):
        raise RuntimeError(f"bulk job {job_id} did not start")
    await finished.wait()
    elapsed = time.monotonic() - started
    await runner.stop()
    return {"elapsed": elapsed, **outcome}


async def create_job(bulk: BulkRepo, user_id: int, rows: int) -> int:
    # Distinct phones and one-part Latin texts, as a typical mailing would be.
    job_id = await bulk.create_job(
        user_id,
        template="Hello {name}, your code is {code}",
        sender=None,
        file_name="bench.csv",
        file_format="csv",
        rows=(
            (number, f"99890{number:07d}", f"Hello client {number}, your code is {number:06d}", 1)
            for number in range(1, rows + 1)
        ),
    )
    return job_id


async def main(config: dict[str, Any]) -> JsonResult:
    # The bot's collector settings (bot/__main__.py): its long-lived objects out of reach and
    # a young generation of GC_YOUNG_THRESHOLD; the default collects every 700 allocations.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    db = await Database.open(Path(config["database"]))
    # The bench's watched users share one devsms account, where real users have one each: the
    # per-account request cap (DEVSMS_CONNECTIONS_PER_USER) would measure that sharing, not the
    # round. The pool is sized for the round's concurrency plus the interactive user: a
    # token's further requests leave a quarter of the pool free for other tokens (_Slots),
    # which real users' first requests never meet, so the pool is a third larger.
    slots = int(config.get("concurrency", 10)) + 2
    devsms = DevsmsClient(
        config["devsms_url"],
        timeout=10.0,
        get_retries=1,
        backoff=0.05,
        connections=slots * 4 // 3 + 1,
        per_token=slots,
    )
    accounts = Accounts(CredentialRepo(db), TokenVault([config["encryption_key"]]), devsms)
    users, bulk = UserRepo(db), BulkRepo(db)
    mode = config["mode"]
    job_id = 0
    if mode == "bulk":
        job_id = await create_job(bulk, int(config["bulk_user"]), int(config["rows"]))

    lag, latency = Samples(), Samples()
    errors: list[str] = []
    tasks = [
        asyncio.create_task(ticker(lag)),
        asyncio.create_task(
            interactive(int(config["interactive_user"]), users, accounts, latency, errors)
        ),
    ]
    try:
        idle_start = time.monotonic()
        await asyncio.sleep(float(config["idle_seconds"]))
        work_start = time.monotonic()
        cpu_before = cpu_seconds()
        if mode == "watcher":
            result = await run_watcher(config, accounts, db)
        elif mode == "bulk":
            result = await run_bulk(config, accounts, bulk, job_id)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        work_end = time.monotonic()
        cpu_used = cpu_seconds() - cpu_before
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await devsms.close()
        await db.close()
    return {
        "mode": mode,
        "work_seconds": work_end - work_start,
        "cpu_seconds": cpu_used,
        "lag_idle": lag.between(idle_start, work_start),
        "lag_work": lag.between(work_start, work_end),
        "interactive_idle": latency.between(idle_start, work_start),
        "interactive_work": latency.between(work_start, work_end),
        "interactive_errors": errors,
        # Peak resident memory of this process, in MB (ru_maxrss is in KB on Linux).
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **result,
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
