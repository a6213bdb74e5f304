"""`make bench`: how fast, how steady and how big the bot is, next to a reference measured in the
same run.

Everything runs on 127.0.0.1: the fake Telegram and the fake devsms gateway (tests/fakes) serve
from this process, the bot runs as a real ``python -m bot`` process (tests/e2e/harness.py), and
the reference for throughput, latency, start-up and memory is a bare aiogram echo bot
(scripts/echo_bot.py) started the same way against the same fake. Background work (balance
rounds, bulk jobs) runs in scripts/background_probe.py, a process of its own that measures the
event loop's lag with the same service code the bot runs.

    python -m scripts.bench [--quick] [--json out.json] [--only 1,4] [--profile-bot out.prof]
                            [--postgres [DSN]]

Sections (--quick scales every count down):
1. /balance throughput of 200 users sending back to back, with the gateway answering in 0 and
   50 ms, against the echo bot, and at 0 ms in webhook mode (the fake Telegram posts every
   update to the bot's web server, at most 40 at once) next to polling; the latency the bot
   adds (answer at the fake Telegram minus message injected, minus the gateway's latency),
   also for 50 users who each write about once a second, which is where the 20 ms target
   applies; with --postgres the same passes with the bot on PostgreSQL (DATABASE_URL), beside
   SQLite's;
2. event-loop lag during a 10,000-user balance round and a 10,000-row bulk job, and one
   interactive user's /balance during them against idle (in the probe, and in the real bot
   process during its own start-up round);
3. the time of that 10,000-user round against N × latency / concurrency;
4. the local outbox history query with 1,000,000 rows, and the database size;
5. start-up time and memory of the bot against the echo bot, and its memory after a round over
   10,000 users;
6. 30 users connect a token at once with an admin group configured (so 30 admin notices at
   Telegram's 20 a minute), then each sends /balance: its reply time against the same /balance
   while the bot is idle.
7. the event loop's longest stall while the largest list a user may upload comes back from
   the upload worker (scripts/upload_stall.py), as the bot receives it and sent whole.
8. the time to draw one /stats chart (the chart process's code, run here), and one user's
   /balance while 20 other users' charts are being drawn, against the same /balance idle.
9. the metrics middleware's cost per update, and the time from a delivery callback of the
   gateway to the user's notification (scripts/bench_callbacks.py).
10. /balance throughput in webhook mode with 1, 2 and 3 replicas on PostgreSQL (a schema of
   its own: --postgres's DSN, else TEST_POSTGRES_DSN or the local server) and Redis
   (TEST_REDIS_URL's server, database 11, flushed) behind a round-robin balancer
   (tests/support/balancer.py), beside one process on SQLite in the same run: throughput,
   p50/p99, and the CPU of all bot processes summed per answered update. Skipped, with the
   reason, when either server is not reachable.

The machine is reported with the results, and so is how much CPU other processes took
meanwhile: on a shared machine, times stretch, while CPU per update stays comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import datetime as dt
import functools
import gc
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiogram
import aiohttp
from aiohttp import web

from bot.config import Settings
from scripts.bench_callbacks import measure_callbacks
from scripts.upload_stall import measure as measure_upload_stall
from services.charts import ChartLabels, ChartSpec, DayPoint, draw_chart, fill_days
from services.spreadsheet import MAX_CELLS, MAX_ROWS
from services.vault import TokenVault
from storage import Database, OutboxRepo, utc_now
from tests.e2e.harness import (
    BOT_ARGV,
    BOT_TOKEN,
    ENCRYPTION_KEY,
    REPO_ROOT,
    START_TIMEOUT,
    BotLauncher,
    BotProcess,
    ChatUser,
    child_env,
    die_with_parent,
    free_port,
)
from tests.fakes.fake_devsms import FakeDevsms, RecordedRequest
from tests.fakes.fake_telegram import FakeTelegram, JsonDict
from tests.support.balancer import Balancer

logger = logging.getLogger("scripts.bench")

T = TypeVar("T")

# devsms tokens of the fake accounts. The balance is far above LOW_BALANCE_THRESHOLD, so no
# round ever sends an alert: the bench measures checking, not the notifier's 25 messages/s.
LOAD_TOKEN: Final = "bench-load-token-000000000001"
WATCH_TOKEN: Final = "bench-watch-token-00000000002"
INTERACTIVE_TOKEN: Final = "bench-interactive-token-00003"
BALANCE: Final = 1_000_000_000
SMS_PRICE: Final = 50

# Telegram user ids of the seeded users, one range per purpose.
LOAD_USERS_FROM: Final = 5_000_001
INTERACTIVE_USER: Final = 6_000_001
WATCH_USERS_FROM: Final = 7_000_001
STORAGE_USERS_FROM: Final = 8_000_001
CONNECT_USERS_FROM: Final = 9_000_001
CHART_USERS_FROM: Final = 9_500_001
ADMIN_GROUP: Final = -1_009_000_000_001

LATENCY_P99_TARGET: Final = 0.020
THROUGHPUT_RATIO_TARGET: Final = 0.6
LAG_P99_TARGET: Final = 0.050
INTERACTIVE_SLOWDOWN_TARGET: Final = 1.5  # issue 10: p99 during a round or a bulk job
CONNECT_SLOWDOWN_TARGET: Final = 2.0
CHART_SLOWDOWN_TARGET: Final = 1.5
SCALE_RATIO_TARGET: Final = 1.3
PAGE_TARGET: Final = 0.005
# Issue 10: start-up and idle memory within this much of the echo bot's in the same run
# (importing aiogram is the floor). Issue 6's absolute 1.5 s and 80 MB are below that floor
# on every machine measured (echo alone: 2.2-4.9 s, 166-167 MB); shown for information.
STARTUP_OVER_ECHO: Final = 0.3
IDLE_RSS_OVER_ECHO_MB: Final = 15.0
STARTUP_OLD_TARGET: Final = 1.5
IDLE_RSS_OLD_TARGET_MB: Final = 80.0
# The review's bound for a list coming back from the upload worker: the loop never stands
# still longer than this (the bot's own lag target is a p99 of the same).
UPLOAD_STALL_TARGET: Final = 0.050

# Other processes' average use of one core above which the figures are flagged as disturbed.
CONTENTION_WARNING: Final = 0.15
REPLY_TIMEOUT: Final = 30.0
ROUND_TIMEOUT: Final = 240.0
INTERACTIVE_PAUSE: Final = 0.1
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
DEFAULT_CHECK_CONCURRENCY: Final = Settings.model_fields["balance_check_concurrency"].default
ECHO_ARGV: Final = ("-m", "scripts.echo_bot")
# The bot's own code, compiled before any process starts (compile_bot).
BOT_PACKAGES: Final = ("bot", "handlers", "services", "storage", "scripts")
# Webhook mode's public URL, which the fake Telegram routes to the bot's own web server.
WEBHOOK_PUBLIC: Final = "https://bench.example.test"
# Section 10: the replica counts, and the Redis database number the bench flushes (the e2e
# tests use others: tests/e2e/test_replicas_e2e.py 13).
REPLICA_COUNTS: Final = (1, 2, 3)
# Start-up limit of section 10's bots: several start at once, on cores other work may share.
REPLICA_START: Final = 60.0
# Below this many cores, three replicas, PostgreSQL, Redis and the fakes cannot all run at once.
FEW_CORES: Final = 4
BENCH_REDIS_DB: Final = 11
DEFAULT_POSTGRES_DSN: Final = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Profile:
    """The sizes of one run: the defaults take about 4 minutes on 2 cores, --quick about 1."""

    users: int = 200
    latency_users: int = 50
    think_seconds: float = 1.0
    pass_seconds: float = 10.0
    warmup_seconds: float = 1.5
    gateway_latency: float = 0.050
    background_users: int = 10_000
    bulk_rows: int = 10_000
    bulk_rate: float = 1000.0
    bulk_concurrency: int = 4  # BULK_CONCURRENCY's default
    idle_seconds: float = 3.0
    scale_concurrency: int = 50
    outbox_rows: int = 1_000_000
    outbox_users: int = 1_000
    page_queries: int = 200
    startups: int = 1  # in section 5; every other start of the run counts too
    connect_users: int = 30  # section 6: users who connect a token at the same moment
    upload_rows: int = MAX_ROWS  # section 7, of MAX_CELLS // MAX_ROWS columns
    chart_draws: int = 10  # section 8: charts drawn in a row for the time of one
    chart_users: int = 20  # section 8: users whose charts are drawn at once (the target's 20)
    chart_bursts: int = 6  # section 8: times the chart users ask for a chart at once


QUICK: Final = Profile(
    users=50,
    latency_users=20,
    pass_seconds=4.0,
    warmup_seconds=0.5,
    background_users=2_000,
    bulk_rows=2_000,
    idle_seconds=1.5,
    outbox_rows=100_000,
    upload_rows=10_000,
    outbox_users=100,
    chart_draws=4,
    chart_bursts=4,
)


# --- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    measure: str
    value: str
    reference: str
    verdict: str  # "ok", "MISSED", or "—" for a figure without a target
    data: dict[str, Any] = field(default_factory=dict)


def verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values (shown as "n/a")."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:.1f} ms"


def pair_ms(values: Sequence[float]) -> str:
    return f"p50 {ms(percentile(values, 50))} / p99 {ms(percentile(values, 99))}"


def lag_text(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return f"{pair_ms(values)} / max {ms(max(values))}"


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


# --- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = math.nan
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024 / 1024
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(ram_gb, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "aiogram": aiogram.__version__,
    }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu(pid: int, tid: int) -> float:
    """User + system CPU seconds of one thread of a live process (tid == pid: its main one)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> float:
    """CPU seconds all cores spent on anything (every process, the kernel, steal) so far."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def family_cpu() -> float:
    """This process and its children that have been waited for (every bot, every probe)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) in MB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


# --- fakes and processes ----------------------------------------------------------------------


class BenchTelegram(FakeTelegram):
    """FakeTelegram that also tells a waiting user the moment the bot's answer arrived.

    The e2e helpers (wait_for_message) poll every 50 ms, which is coarser than what is measured
    here; a future per chat is resolved by the sendMessage handler itself instead.
    """

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.waiters: dict[int, asyncio.Future[tuple[float, str]]] = {}

    def _send_message(self, params: JsonDict) -> JsonDict:
        arrived = time.monotonic()
        result = super()._send_message(params)
        waiter = self.waiters.pop(int(result["chat"]["id"]), None)
        if waiter is not None and not waiter.done():
            waiter.set_result((arrived, str(result.get("text", ""))))
        return result

    def forget_history(self) -> None:
        """Drops recorded calls and chat contents between passes: a pass makes ~10^5 of them,
        and the bench keeps none of them."""
        self.calls.clear()
        self._messages.clear()

    async def ask(self, user_id: int, text: str) -> tuple[float, float, str]:
        """Sends ``text`` as the user; returns (sent, answered, answer text)."""
        future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
        self.waiters[user_id] = future
        sent = time.monotonic()
        self.send_text(user_id, text)
        try:
            answered, reply = await asyncio.wait_for(future, REPLY_TIMEOUT)
        finally:
            self.waiters.pop(user_id, None)
        return sent, answered, reply


class CountingDevsms(FakeDevsms):
    """FakeDevsms that counts requests per token without a scan of its request log."""

    def __init__(self) -> None:
        super().__init__()
        self.per_token: dict[str | None, int] = {}

    async def _record(self, request: web.Request, path: str) -> RecordedRequest:
        recorded = await super()._record(request, path)
        self.per_token[recorded.token] = self.per_token.get(recorded.token, 0) + 1
        return recorded

    def forget_history(self) -> None:
        self.requests.clear()
        self.sent.clear()
        for account in self.accounts.values():
            account.sent.clear()


def bot_env(**extra: str) -> dict[str, str]:
    # The harness logs at DEBUG (aiosqlite then writes two lines per statement): production
    # runs at INFO. Only the start-up round runs; the timeout covers a saturated bot.
    env = {"LOG_LEVEL": "INFO", "BALANCE_CHECK_INTERVAL": "86400", "DEVSMS_TIMEOUT": "20"}
    # The load users share one devsms account, where real users have one each: the per-account
    # request cap (4 by default) would measure that sharing instead of the bot.
    env |= {"DEVSMS_CONNECTIONS": "100", "DEVSMS_CONNECTIONS_PER_USER": "100"}
    env.update(extra)
    return env


def webhook_env(telegram: FakeTelegram) -> dict[str, str]:
    """bot_env for webhook mode: the fake Telegram posts each update to the bot's web server."""
    port = free_port()
    telegram.route_webhook(WEBHOOK_PUBLIC, f"http://127.0.0.1:{port}")
    return bot_env(
        TELEGRAM_MODE="webhook",
        PUBLIC_BASE_URL=WEBHOOK_PUBLIC,
        WEBHOOK_SECRET="bench-webhook-secret",
        WEB_PORT=str(port),
    )


# --- seeding ----------------------------------------------------------------------------------


async def seed_users(path: Path | str, user_ids: Iterable[int], token: str) -> None:
    """Users with a connected token, as /start + token would leave them (faster: one
    transaction, the same vault and key the bot is started with)."""
    vault = TokenVault([ENCRYPTION_KEY])
    db = await Database.open(path)
    try:
        now = utc_now()
        ids = list(user_ids)
        async with db.transaction():
            await db.executemany(
                "INSERT INTO users (id, first_name, created_at, last_seen_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                ((user_id, f"User {user_id}", now, now) for user_id in ids),
            )
            await db.executemany(
                "INSERT INTO credentials (user_id, token_encrypted, state, created_at, "
                "updated_at) VALUES (?, ?, 'valid', ?, ?)",
                ((user_id, vault.encrypt(user_id, token), now, now) for user_id in ids),
            )
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def bench_schema(dsn: str) -> AsyncIterator[str]:
    """A DATABASE_URL whose connections see a new, empty schema, dropped afterwards."""
    import asyncpg

    from tests.support.services import with_search_path

    schema = f"bench_{os.getpid()}_{random.randrange(1 << 30)}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield with_search_path(dsn, schema)
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


def unreachable(url: str, default_port: int) -> str | None:
    """Why the server of `url` cannot be used, or None when it accepts a connection."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or default_port)
    try:
        with socket.create_connection(address, timeout=2.0):
            return None
    except OSError as exc:
        return f"{address[0]}:{address[1]} is not reachable ({exc.strerror or exc})"


def own_redis_database(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{BENCH_REDIS_DB}"))


async def wait_ready(port: int, limit: float) -> None:
    """Until the bot's web server on `port` answers /readyz with 200."""
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    if answer.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot on port {port} was not ready within {limit:.0f} s")
            await asyncio.sleep(0.1)


# The start-up rounds over all users (section 10 waits for them: they are not /balance's cost).
START_ROUNDS: Final = ("balance round:", "traffic round:")


def rounds_done(bots: Sequence[BotProcess]) -> bool:
    """Whether the start-up rounds ran, on whichever of `bots` (each runs on one replica)."""
    outputs = [bot.output() for bot in bots]
    return all(any(text in output for output in outputs) for text in START_ROUNDS)


def copy_database(template: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Database.close() checkpointed the WAL into the main file: copying it alone is enough.
    shutil.copyfile(template, target)


# --- measuring helpers ------------------------------------------------------------------------


class LagTicker:
    """The bench process's own loop lag: when it is high, the fakes (not the bot) are slow."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.points.append((time.monotonic(), time.monotonic() - before - 0.01))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, start: float, end: float) -> list[float]:
        return [lag for moment, lag in self.points if start <= moment <= end]


async def wait_until(predicate: Callable[[], T | None], limit: float, what: str) -> T:
    """Polls ``predicate`` every 20 ms until it returns something truthy."""
    deadline = time.monotonic() + limit
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {limit:.0f} s")
        await asyncio.sleep(0.02)


@dataclass
class PassResult:
    label: str
    users: int
    seconds: float
    answered: int
    wrong: int
    timeouts: int
    latencies: list[float]
    gateway_latency: float
    bot_cpu: float  # fraction of one core
    bench_cpu: float
    other_cpu: float  # everything else on the machine (other people's tests, say)
    bench_lag: list[float]
    polls: int

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    @property
    def cpu_per_update(self) -> float:
        """Seconds of the bot's CPU per answered update."""
        return self.bot_cpu * self.seconds / self.answered if self.answered else math.nan

    @property
    def added(self) -> list[float]:
        return [latency - self.gateway_latency for latency in self.latencies]

    def data(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "users": self.users,
            "seconds": self.seconds,
            "answered": self.answered,
            "updates_per_second": self.rate,
            "wrong_answers": self.wrong,
            "timeouts": self.timeouts,
            "gateway_latency": self.gateway_latency,
            "latency": summary(self.latencies),
            "bot_added_latency": summary(self.added),
            "bot_cpu_of_one_core": self.bot_cpu,
            "bot_cpu_per_update": self.cpu_per_update,
            "bench_cpu_of_one_core": self.bench_cpu,
            "other_cpu_of_one_core": self.other_cpu,
            "bench_loop_lag": summary(self.bench_lag),
            "get_updates_calls": self.polls,
            "updates_per_get_updates": self.answered / self.polls if self.polls else math.nan,
        }


async def load_pass(
    label: str,
    telegram: BenchTelegram,
    process: BotProcess | Sequence[BotProcess],
    user_ids: Sequence[int],
    *,
    expected: str,
    seconds: float,
    warmup: float,
    gateway_latency: float,
    ticker: LagTicker,
    think: float = 0.0,
) -> PassResult:
    """Closed loop: every user sends /balance, waits for the answer, sends again at once, or
    after a pause of 0.5-1.5 × ``think`` seconds, in the warm-up too (then the users offer
    about users / think updates per second, and latency shows the bot's own work rather than
    queueing).

    Only answers to messages sent inside the measuring window count (the warm-up lets
    connections open and caches fill); an answer whose text differs from ``expected`` is
    counted as wrong, not as throughput. With several processes (replicas) the bot's CPU is
    theirs summed.
    """
    processes = [process] if isinstance(process, BotProcess) else list(process)
    pids = [bot.pid for bot in processes if bot.pid is not None]
    assert len(pids) == len(processes), "every bot process must be running"

    def bots_cpu() -> float:
        return sum(process_cpu(pid) for pid in pids)

    telegram.forget_history()
    loop = asyncio.get_running_loop()
    begin = loop.time()
    window_start, window_end = begin + warmup, begin + warmup + seconds
    latencies: list[float] = []
    counts = {"answered": 0, "wrong": 0, "timeouts": 0}
    marks: dict[str, float] = {}
    rng = random.Random(user_ids[0])

    async def user(user_id: int) -> None:
        if think:
            await asyncio.sleep(rng.uniform(0, think))  # no lockstep between users
        while loop.time() < window_end:
            in_window = loop.time() >= window_start
            try:
                sent, answered, reply = await telegram.ask(user_id, "/balance")
            except TimeoutError:
                counts["timeouts"] += 1
                continue
            if in_window and reply != expected:
                counts["wrong"] += 1
            elif in_window:
                counts["answered"] += 1
                latencies.append(answered - sent)
            if think:
                # In the warm-up too: users writing back to back until the window opened
                # left the bot a backlog that the window's first answers queued behind (the
                # paced pass's first 0.2 s held its whole tail: p99 36.7 ms, 14.1 ms without).
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think)

    async def meter() -> None:
        await asyncio.sleep(max(0.0, window_start - loop.time()))
        marks["start"] = time.monotonic()
        marks["bot_cpu"], marks["bench_cpu"] = bots_cpu(), own_cpu()
        marks["busy"] = machine_busy()
        await asyncio.sleep(max(0.0, window_end - loop.time()))
        marks["end"] = time.monotonic()
        marks["bot_cpu"] = bots_cpu() - marks["bot_cpu"]
        marks["bench_cpu"] = own_cpu() - marks["bench_cpu"]
        marks["busy"] = machine_busy() - marks["busy"]

    await asyncio.gather(meter(), *(user(user_id) for user_id in user_ids))
    polls = [
        call
        for call in telegram.calls_of("getUpdates")
        if marks["start"] <= call.at <= marks["end"]
    ]
    duration = marks["end"] - marks["start"]
    return PassResult(
        label=label,
        users=len(user_ids),
        seconds=seconds,
        answered=counts["answered"],
        wrong=counts["wrong"],
        timeouts=counts["timeouts"],
        latencies=latencies,
        gateway_latency=gateway_latency,
        bot_cpu=marks["bot_cpu"] / duration,
        bench_cpu=marks["bench_cpu"] / duration,
        other_cpu=max(0.0, marks["busy"] - marks["bot_cpu"] - marks["bench_cpu"]) / duration,
        bench_lag=ticker.between(marks["start"], marks["end"]),
        polls=len(polls),
    )


async def probe_answer(telegram: BenchTelegram, user_id: int) -> str:
    """The answer every /balance must get (same account, so the same text every time)."""
    *_, reply = await telegram.ask(user_id, "/balance")
    return reply


async def run_probe(config: dict[str, Any]) -> dict[str, Any]:
    """Runs scripts/background_probe.py and returns what it printed."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.background_probe",
        json.dumps(config),
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), ROUND_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        await child.wait()
        raise
    if child.returncode != 0:
        raise RuntimeError(
            f"background probe failed ({child.returncode}):\n{err.decode(errors='replace')}"
        )
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# --- the bench --------------------------------------------------------------------------------


class Bench:
    def __init__(self, profile: Profile, root: Path, say: Callable[[str], None]) -> None:
        self.profile = profile
        self.root = root
        self.say = say
        self.rows: list[Row] = []
        self.details: dict[str, Any] = {}
        self.launchers: list[BotLauncher] = []
        self._template: Path | None = None
        # Section 1's bot; --profile-bot puts it under cProfile (slower: for finding why).
        self.load_bot_argv: Sequence[str] = BOT_ARGV
        self.charts_bot_argv: Sequence[str] = BOT_ARGV
        # --postgres: section 1 also runs the bot on PostgreSQL (DATABASE_URL) at this DSN.
        self.postgres_dsn: str | None = None
        # Seconds to the first getUpdates of every start in the run, for section 5.
        self.starts: dict[str, list[float]] = {"bot": [], "echo": []}

    def add(
        self, section: str, measure: str, value: str, reference: str, result: str, **data: Any
    ) -> None:
        self.rows.append(Row(section, measure, value, reference, result, data))

    async def stop_all(self) -> None:
        for launcher in self.launchers:
            with contextlib.suppress(Exception):
                await launcher.stop_all()  # kills what did not stop
        self.launchers.clear()

    async def start_process(
        self,
        name: str,
        telegram: FakeTelegram,
        devsms: FakeDevsms,
        *,
        argv: Sequence[str] = BOT_ARGV,
        env: dict[str, str] | None = None,
        database: Path | None = None,
        timeout: float = START_TIMEOUT,  # noqa: ASYNC109
    ) -> BotProcess:
        launcher = BotLauncher(self.root, telegram, devsms)
        self.launchers.append(launcher)
        process = launcher.new(name, extra_env=env or bot_env(), argv=argv)
        if database is not None:
            copy_database(database, process.database_path)
        seconds = await process.start(timeout)
        kind = {tuple(BOT_ARGV): "bot", tuple(ECHO_ARGV): "echo"}.get(tuple(argv))
        if kind is not None:
            self.starts[kind].append(seconds)
        return process

    async def template(self) -> Path:
        """A database with the background users (each with a token) and the interactive user."""
        if self._template is None:
            path = self.root / "template" / "bot.sqlite3"
            started = time.monotonic()
            await seed_users(
                path,
                range(WATCH_USERS_FROM, WATCH_USERS_FROM + self.profile.background_users),
                WATCH_TOKEN,
            )
            await seed_users(path, [INTERACTIVE_USER], INTERACTIVE_TOKEN)
            self.say(
                f"  seeded {self.profile.background_users} users with tokens in "
                f"{time.monotonic() - started:.1f} s"
            )
            self._template = path
        return self._template

    @staticmethod
    async def fakes() -> tuple[BenchTelegram, CountingDevsms]:
        telegram = BenchTelegram(BOT_TOKEN)
        await telegram.start()
        devsms = CountingDevsms()
        for token in (LOAD_TOKEN, WATCH_TOKEN, INTERACTIVE_TOKEN):
            devsms.add_account(token, balance=BALANCE, sms_price=SMS_PRICE)
        await devsms.start()
        return telegram, devsms

    # --- 1 -------------------------------------------------------------------------------------

    async def throughput(self) -> None:
        p = self.profile
        self.say(f"1. throughput: {p.users} users, {p.pass_seconds:.0f} s per pass")
        telegram, devsms = await self.fakes()
        ticker = LagTicker()
        ticker.start()
        users = list(range(LOAD_USERS_FROM, LOAD_USERS_FROM + p.users))
        few = users[: p.latency_users]
        passes: dict[str, PassResult] = {}

        async def measure(
            label: str,
            process: BotProcess,
            group: list[int],
            expected: str,
            latency: float,
            think: float = 0.0,
        ) -> None:
            devsms.latency = latency
            result = await load_pass(
                label,
                telegram,
                process,
                group,
                expected=expected,
                seconds=p.pass_seconds,
                warmup=p.warmup_seconds,
                gateway_latency=latency,
                ticker=ticker,
                think=think,
            )
            passes[label] = result
            self.say(
                f"  {label}: {result.rate:.0f} updates/s, {ms(result.cpu_per_update)} bot CPU "
                f"per update, others on the machine {result.other_cpu:.0%} of a core"
            )

        try:
            echo = await self.start_process("echo", telegram, devsms, argv=ECHO_ARGV)
            await measure("echo", echo, users, "/balance", 0.0)
            await measure("echo-paced", echo, few, "/balance", 0.0, p.think_seconds)
            await echo.stop()

            database = self.root / "load-seed" / "bot.sqlite3"
            await seed_users(database, users, LOAD_TOKEN)
            bot = await self.start_process(
                "load", telegram, devsms, database=database, argv=self.load_bot_argv
            )
            # The start-up balance round must be over before measuring.
            await wait_until(
                lambda: "balance round:" in bot.output(), ROUND_TIMEOUT, "start-up round"
            )
            expected = await probe_answer(telegram, users[0])
            await measure("bot-0ms", bot, users, expected, 0.0)
            await measure("bot-latency", bot, users, expected, p.gateway_latency)
            await measure(
                "bot-paced", bot, few, expected, p.gateway_latency, think=p.think_seconds
            )
            await bot.stop()
            # The same load in webhook mode: Telegram posts every update (at most 40 at once).
            hooked = await self.start_process(
                "load-webhook", telegram, devsms, database=database, env=webhook_env(telegram)
            )
            await wait_until(
                lambda: "balance round:" in hooked.output(), ROUND_TIMEOUT, "start-up round"
            )
            await measure("webhook-0ms", hooked, users, expected, 0.0)
            await hooked.stop()
            if self.postgres_dsn is not None:
                async with bench_schema(self.postgres_dsn) as url:
                    await seed_users(url, users, LOAD_TOKEN)
                    on_pg = await self.start_process(
                        "load-pg", telegram, devsms, env=bot_env(DATABASE_URL=url)
                    )
                    await wait_until(
                        lambda: "balance round:" in on_pg.output(),
                        ROUND_TIMEOUT,
                        "start-up round",
                    )
                    await measure("pg-0ms", on_pg, users, expected, 0.0)
                    await measure("pg-latency", on_pg, users, expected, p.gateway_latency)
                    await measure(
                        "pg-paced", on_pg, few, expected, p.gateway_latency, p.think_seconds
                    )
                    await on_pg.stop()
        finally:
            await ticker.stop()
            await self.stop_all()
            await telegram.stop()
            await devsms.stop()
        self.details["throughput"] = {label: result.data() for label, result in passes.items()}

        echo_all, echo_paced = passes["echo"], passes["echo-paced"]
        gateway_ms = f"{p.gateway_latency * 1000:.0f} ms"
        for label, latency_text in (("bot-0ms", "0 ms"), ("bot-latency", gateway_ms)):
            result = passes[label]
            ratio = result.rate / echo_all.rate if echo_all.rate else math.nan
            self.add(
                "1",
                f"/balance throughput, {p.users} users, gateway {latency_text}",
                f"{result.rate:.0f} upd/s (ratio {ratio:.2f})",
                f"echo {echo_all.rate:.0f} upd/s; ratio ≥ {THROUGHPUT_RATIO_TARGET}",
                verdict(ratio >= THROUGHPUT_RATIO_TARGET),
                rate=result.rate,
                echo_rate=echo_all.rate,
                ratio=ratio,
            )
        bot_0ms = passes["bot-0ms"]
        self.add(
            "1",
            "bot CPU per answered update, gateway 0 ms",
            ms(bot_0ms.cpu_per_update),
            f"echo {ms(echo_all.cpu_per_update)}",
            "—",
            bot=bot_0ms.cpu_per_update,
            echo=echo_all.cpu_per_update,
        )
        for label, latency_text in (("bot-0ms", "0 ms"), ("bot-latency", gateway_ms)):
            result = passes[label]
            self.add(
                "1",
                f"bot-added latency, {p.users} users back to back, gateway {latency_text}",
                pair_ms(result.added),
                f"echo {pair_ms(echo_all.latencies)}",
                "—",
                **summary(result.added),
            )
        self.webhook_rows(passes["webhook-0ms"], passes["bot-0ms"])
        if "pg-0ms" in passes:
            self.postgres_rows(passes)
        paced = passes["bot-paced"]
        p99 = percentile(paced.added, 99)
        self.add(
            "1",
            f"bot-added latency, {p.latency_users} users each every ~{p.think_seconds:.0f} s, "
            f"gateway {gateway_ms}",
            pair_ms(paced.added) + f" ({paced.rate:.0f} upd/s)",
            f"p99 ≤ {ms(LATENCY_P99_TARGET)}; echo {pair_ms(echo_paced.latencies)}",
            verdict(p99 <= LATENCY_P99_TARGET),
            **summary(paced.added),
        )
        order = ("echo", "bot-0ms", "bot-latency", "echo-paced", "bot-paced", "webhook-0ms")
        cpu = ", ".join(f"{label} {passes[label].bot_cpu:.0%}" for label in order)
        fakes = ", ".join(f"{passes[label].bench_cpu:.0%}" for label in order)
        others = ", ".join(f"{passes[label].other_cpu:.0%}" for label in order)
        self.add(
            "1",
            "CPU of one core: bot process per pass",
            cpu,
            f"fakes+load (this process): {fakes}; other processes: {others}",
            "—",
        )
        batches = ", ".join(
            f"{label} {passes[label].data()['updates_per_get_updates']:.1f}"
            for label in order
            if passes[label].polls
        )
        lag99 = ", ".join(f"{ms(percentile(passes[label].bench_lag, 99))}" for label in order)
        self.add(
            "1",
            "updates per getUpdates (limit 100)",
            batches,
            f"fakes' loop lag p99: {lag99}",
            "—",
        )
        problems = {
            label: (result.wrong, result.timeouts)
            for label, result in passes.items()
            if result.wrong or result.timeouts
        }
        if problems:
            self.add("1", "wrong answers / timeouts", str(problems), "none expected", "MISSED")

    def webhook_rows(self, hook: PassResult, polled: PassResult) -> None:
        ratio = hook.rate / polled.rate if polled.rate else math.nan
        self.add(
            "1",
            f"/balance throughput in webhook mode, {hook.users} users, gateway 0 ms",
            f"{hook.rate:.0f} upd/s ({ratio:.2f}× polling)",
            f"polling {polled.rate:.0f} upd/s in the same run",
            "—",
            rate=hook.rate,
            polling_rate=polled.rate,
            ratio=ratio,
        )
        self.add(
            "1",
            "webhook mode: bot CPU per update; bot-added latency, gateway 0 ms",
            f"{ms(hook.cpu_per_update)}; {pair_ms(hook.added)}",
            f"polling {ms(polled.cpu_per_update)}; {pair_ms(polled.added)}",
            "—",
            cpu_per_update=hook.cpu_per_update,
            **summary(hook.added),
        )

    def postgres_rows(self, passes: dict[str, PassResult]) -> None:
        """The same passes on PostgreSQL beside SQLite's (one process each, same run)."""
        p = self.profile
        gateway_ms = f"{p.gateway_latency * 1000:.0f} ms"
        for pg, lite, latency_text in (
            ("pg-0ms", "bot-0ms", "0 ms"),
            ("pg-latency", "bot-latency", gateway_ms),
        ):
            on_pg, on_lite = passes[pg], passes[lite]
            self.add(
                "1",
                f"PostgreSQL: /balance throughput, {p.users} users, gateway {latency_text}; "
                "bot CPU per update",
                f"{on_pg.rate:.0f} upd/s; {ms(on_pg.cpu_per_update)}",
                f"SQLite {on_lite.rate:.0f} upd/s; {ms(on_lite.cpu_per_update)}",
                "—",
                rate=on_pg.rate,
                sqlite_rate=on_lite.rate,
                cpu_per_update=on_pg.cpu_per_update,
                sqlite_cpu_per_update=on_lite.cpu_per_update,
            )
        paced, lite_paced = passes["pg-paced"], passes["bot-paced"]
        self.add(
            "1",
            f"PostgreSQL: bot-added latency, {p.latency_users} users each every "
            f"~{p.think_seconds:.0f} s, gateway {gateway_ms}",
            pair_ms(paced.added),
            f"SQLite {pair_ms(lite_paced.added)}; p99 ≤ {ms(LATENCY_P99_TARGET)}",
            verdict(percentile(paced.added, 99) <= LATENCY_P99_TARGET),
            **summary(paced.added),
        )

    # --- 2 and 3 -------------------------------------------------------------------------------

    async def background(self) -> None:
        p = self.profile
        template = await self.template()
        telegram, devsms = await self.fakes()
        base = {
            "devsms_url": devsms.url,
            "encryption_key": ENCRYPTION_KEY,
            "interactive_user": INTERACTIVE_USER,
            "idle_seconds": p.idle_seconds,
        }
        ideal = p.background_users * p.gateway_latency / p.scale_concurrency
        try:
            self.say(
                f"2. loop lag: bulk job of {p.bulk_rows} rows "
                f"(rate {p.bulk_rate:.0f}/s, concurrency {p.bulk_concurrency}, gateway 0 ms)"
            )
            database = self.root / "bulk" / "bot.sqlite3"
            copy_database(template, database)
            bulk = await run_probe(
                {
                    **base,
                    "mode": "bulk",
                    "database": str(database),
                    "bulk_user": INTERACTIVE_USER,
                    "rows": p.bulk_rows,
                    "rate": p.bulk_rate,
                    "concurrency": p.bulk_concurrency,
                }
            )
            self.say(f"  job took {bulk['elapsed']:.1f} s: {bulk.get('counts')}")
            devsms.forget_history()

            self.say(
                f"2+3. balance round: {p.background_users} users, "
                f"gateway {p.gateway_latency * 1000:.0f} ms, "
                f"concurrency {p.scale_concurrency} (ideal {ideal:.1f} s)"
            )
            devsms.latency = p.gateway_latency
            database = self.root / "scale" / "bot.sqlite3"
            copy_database(template, database)
            watch = await run_probe(
                {
                    **base,
                    "mode": "watcher",
                    "database": str(database),
                    "concurrency": p.scale_concurrency,
                }
            )
            self.say(f"  round took {watch['report']['elapsed']:.1f} s")
        finally:
            await telegram.stop()
            await devsms.stop()
        series = ("lag_idle", "lag_work", "interactive_idle", "interactive_work")
        self.details["background"] = {
            key: {name: summary(value) if name in series else value for name, value in run.items()}
            for key, run in (("bulk", bulk), ("round", watch))
        }

        lag_idle = watch["lag_idle"] + bulk["lag_idle"]
        self.add("2", "loop lag, idle (reference)", lag_text(lag_idle), "", "—")
        for label, result in (
            (f"balance round over {p.background_users:,} users (as in 3)", watch),
            (f"bulk job of {p.bulk_rows:,} rows, gateway 0 ms", bulk),
        ):
            lag = result["lag_work"]
            self.add(
                "2",
                f"loop lag during {label}",
                lag_text(lag),
                f"p99 ≤ {ms(LAG_P99_TARGET)}",
                verdict(percentile(lag, 99) <= LAG_P99_TARGET),
                **summary(lag),
            )
        for label, result, latency in (
            ("balance round", watch, p.gateway_latency),
            ("bulk job", bulk, 0.0),
        ):
            idle, busy = result["interactive_idle"], result["interactive_work"]
            idle99, busy99 = percentile(idle, 99), percentile(busy, 99)
            errors = result["interactive_errors"]
            self.add(
                "2",
                f"/balance service path during the {label} "
                f"(same loop, gateway {latency * 1000:.0f} ms)",
                pair_ms(busy) + (f"; {len(errors)} errors" if errors else ""),
                f"idle {pair_ms(idle)}; p99 ≤ {INTERACTIVE_SLOWDOWN_TARGET:g}× idle",
                verdict(busy99 <= INTERACTIVE_SLOWDOWN_TARGET * idle99 and not errors),
                idle=summary(idle),
                busy=summary(busy),
            )
        sent = int((bulk.get("counts") or {}).get("sent", 0))
        achieved = sent / bulk["work_seconds"] if bulk["work_seconds"] else 0.0
        self.add(
            "2",
            f"bulk job of {p.bulk_rows:,} rows: rate achieved, peak memory",
            f"{achieved:.0f} SMS/s ({sent:,} sent), peak RSS {bulk['peak_rss_mb']:.0f} MB",
            f"BULK_RATE {p.bulk_rate:.0f}/s (ratio {achieved / p.bulk_rate:.2f})",
            "—",
            achieved=achieved,
            peak_rss_mb=bulk["peak_rss_mb"],
        )
        actual = float(watch["report"]["elapsed"])
        ratio = actual / ideal
        checked = watch["report"]["checked"]
        self.add(
            "3",
            f"balance round: N={p.background_users:,}, latency {p.gateway_latency * 1000:.0f} ms, "
            f"concurrency {p.scale_concurrency}",
            f"{actual:.1f} s ({ratio:.2f}× ideal; {checked} checked)",
            f"ideal {ideal:.1f} s; ≤ {SCALE_RATIO_TARGET}×",
            verdict(ratio <= SCALE_RATIO_TARGET and checked == p.background_users + 1),
            actual=actual,
            ideal=ideal,
            ratio=ratio,
        )
        self.add(
            "3",
            "CPU of the background process during that round",
            f"{watch['cpu_seconds']:.1f} s CPU in {watch['work_seconds']:.1f} s",
            f"bulk job: {bulk['cpu_seconds']:.1f} s CPU in {bulk['work_seconds']:.1f} s",
            "—",
        )

    # --- 6 -------------------------------------------------------------------------------------

    async def connect_burst(self) -> None:
        """Users connect a token at once with an admin group set, then each sends /balance.

        Every connect makes an admin notice, and Telegram takes 20 a minute in a group: a bot
        whose handlers waited for that pace would hold each user's chat (updates of one user
        are handled one at a time) until their notice went out, up to minutes. The reference
        is the same sequence of /balance while the bot is idle, measured first.
        """
        n = self.profile.connect_users
        self.say(f"6. {n} users connect a token at once (admin group set), then /balance")
        telegram, devsms = await self.fakes()
        database = self.root / "connect-seed" / "bot.sqlite3"
        await seed_users(database, [INTERACTIVE_USER], INTERACTIVE_TOKEN)
        env = bot_env(ADMIN_CHAT_ID=str(ADMIN_GROUP), DEFAULT_LANGUAGE="en")
        users = [
            ChatUser(telegram, user_id=CONNECT_USERS_FROM + k, first_name=f"Bench {k}")
            for k in range(n)
        ]
        idle: list[float] = []
        after: list[float] = []
        timeouts = 0
        try:
            bot = await self.start_process("connect", telegram, devsms, database=database, env=env)
            await wait_until(
                lambda: "balance round:" in bot.output(), ROUND_TIMEOUT, "start-up round"
            )
            expected = await probe_answer(telegram, INTERACTIVE_USER)
            for _ in range(n):
                sent, answered, _reply = await telegram.ask(INTERACTIVE_USER, "/balance")
                idle.append(answered - sent)
                await asyncio.sleep(INTERACTIVE_PAUSE)
            await asyncio.gather(*(user.ask("/start", "API token") for user in users))

            async def connect(user: ChatUser) -> None:
                token_message = user.send(LOAD_TOKEN)
                connected = await user.reply_after(token_message, "Token connected")
                await user.reply_after(connected.message_id, "Balance:")

            started = time.monotonic()
            await asyncio.gather(*(connect(user) for user in users))
            connected_in = time.monotonic() - started
            # One after another, as in the idle pass: what is measured is whether a user's
            # chat answers, not how 30 updates at once queue up.
            for user in users:
                try:
                    sent, answered, reply = await telegram.ask(user.user_id, "/balance")
                except TimeoutError:
                    timeouts += 1
                    continue
                if reply.split("\n")[0] != expected.split("\n")[0]:
                    raise AssertionError(f"unexpected /balance answer: {reply!r}")
                after.append(answered - sent)
            group_messages = len(telegram.chat_messages(ADMIN_GROUP))
            await bot.stop()
        finally:
            await self.stop_all()
            await telegram.stop()
            await devsms.stop()
        self.say(
            f"  {n} connects answered in {connected_in:.1f} s; admin group got "
            f"{group_messages} messages meanwhile; {timeouts} /balance timeouts"
        )
        self.details["connect_burst"] = {
            "users": n,
            "idle": summary(idle),
            "after_connect": summary(after),
            "timeouts": timeouts,
            "connect_seconds": connected_in,
            "admin_group_messages": group_messages,
        }
        idle99, after99 = percentile(idle, 99), percentile(after, 99)
        self.add(
            "6",
            f"/balance of {n} users right after they connected a token at once (admin group set)",
            pair_ms(after) + f" (n={len(after)}, timeouts {timeouts})",
            f"idle {pair_ms(idle)}; p99 < {CONNECT_SLOWDOWN_TARGET:g}× idle",
            verdict(not timeouts and after99 < CONNECT_SLOWDOWN_TARGET * idle99),
            after=summary(after),
            idle=summary(idle),
            timeouts=timeouts,
        )

    # --- 4 -------------------------------------------------------------------------------------

    async def storage(self) -> None:
        p = self.profile
        self.say(f"4. storage: {p.outbox_rows} outbox rows over {p.outbox_users} users")
        path = self.root / "storage" / "bot.sqlite3"
        rng = random.Random(7)
        users = range(STORAGE_USERS_FROM, STORAGE_USERS_FROM + p.outbox_users)
        now = utc_now()

        def outbox_row(number: int) -> tuple[Any, ...]:
            # Rows spread over the users in turn, as interleaved traffic leaves them.
            return (
                STORAGE_USERS_FROM + number % p.outbox_users,
                f"99890{rng.randrange(10_000_000):07d}",
                f"Hurmatli mijoz, buyurtmangiz #{number} tayyor. Rahmat!",
                "4546",
                "sent",
                100_000 + number,
                f"{rng.getrandbits(128):032x}",  # the gateway's request ids are random
                "DELIVERED",
                1,
                "50",
                now,
                now,
            )

        sample = [outbox_row(number) for number in range(1, 1001)]
        raw_per_row = sum(len(str(value)) for row in sample for value in row) / len(sample)

        db = await Database.open(path)
        try:
            # Filling the table is not what is measured: a big page cache only makes it faster.
            await db.conn.execute("PRAGMA cache_size = -262144")
            started = time.monotonic()
            async with db.transaction():
                await db.conn.executemany(
                    "INSERT INTO users (id, created_at, last_seen_at) VALUES (?, ?, ?)",
                    ((user_id, now, now) for user_id in users),
                )
                await db.conn.executemany(
                    "INSERT INTO outbox (user_id, phone, message, sender, state, sms_id, "
                    "request_id, status, parts_count, total_cost, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (outbox_row(number) for number in range(1, p.outbox_rows + 1)),
                )
            inserted = time.monotonic() - started
        finally:
            # Closing checkpoints the WAL: the queries below read a settled database, as the
            # bot does between its (small) writes, not one 1,000,000-row transaction's WAL.
            await db.close()
        self.say(f"  inserted in {inserted:.1f} s")
        size = path.stat().st_size
        db = await Database.open(path)
        try:
            outbox = OutboxRepo(db)
            timings: list[float] = []
            for _ in range(p.page_queries):
                user_id = rng.choice(users)
                offset = rng.randrange(0, 101)
                before = time.perf_counter()
                page = await outbox.recent(user_id, 10, offset)
                timings.append(time.perf_counter() - before)
                if len(page) != 10:
                    raise AssertionError(f"user {user_id} offset {offset}: {len(page)} rows")
        finally:
            await db.close()
        per_100k = size / p.outbox_rows * 100_000 / 1e6
        self.add(
            "4",
            f"OutboxRepo.recent(user, 10, offset ≤ 100), {p.outbox_rows:,} rows",
            pair_ms(timings),
            f"p99 ≤ {ms(PAGE_TARGET)}",
            verdict(percentile(timings, 99) <= PAGE_TARGET),
            **summary(timings),
        )
        self.add(
            "4",
            "database size per 100,000 SMS",
            f"{per_100k:.1f} MB",
            f"raw column text {raw_per_row * 100_000 / 1e6:.1f} MB",
            "—",
            file_bytes=size,
            rows=p.outbox_rows,
        )
        self.add(
            "4",
            "bulk insert (executemany, one transaction)",
            f"{p.outbox_rows / inserted:,.0f} rows/s",
            f"{inserted:.1f} s in all",
            "—",
        )

    # --- 5 -------------------------------------------------------------------------------------

    async def footprint(self) -> None:
        p = self.profile
        self.say(f"5. footprint: idle bots, then a round over {p.background_users} users")
        telegram, devsms = await self.fakes()
        rss: dict[str, list[float]] = {"echo": [], "bot": []}
        try:
            for kind, argv in (("echo", ECHO_ARGV), ("bot", BOT_ARGV)):
                for attempt in range(p.startups):
                    # A fresh installation each time: the bot creates its database.
                    name = f"{kind}-start-{attempt + 1}"
                    process = await self.start_process(name, telegram, devsms, argv=argv)
                    # Settled: start-up work (migrations, the first round over no users) done.
                    await asyncio.sleep(p.idle_seconds)
                    assert process.pid is not None
                    rss[kind].append(memory_mb(process.pid)["VmRSS"])
                    await process.stop()
                    self.say(
                        f"  {name}: {self.starts[kind][-1]:.2f} s to getUpdates, "
                        f"{rss[kind][-1]:.0f} MB idle"
                    )
            big = await self.footprint_round(telegram, devsms)
        finally:
            await self.stop_all()
            await telegram.stop()
            await devsms.stop()
        self.details["footprint"] = {"starts": self.starts, "idle_rss": rss, "round": big}
        bot_starts, echo_starts = self.starts["bot"], self.starts["echo"]
        startup, echo_startup = statistics.median(bot_starts), statistics.median(echo_starts)
        self.add(
            "5",
            f"start-up to first getUpdates (median of {len(bot_starts)} starts in this run)",
            f"{startup:.2f} s ({startup - echo_startup:+.2f} s on echo)",
            f"echo {echo_startup:.2f} s (median of {len(echo_starts)}); within "
            f"{STARTUP_OVER_ECHO} s of echo (issue 10; issue 6's ≤ {STARTUP_OLD_TARGET} s is "
            "below echo's own)",
            verdict(startup - echo_startup <= STARTUP_OVER_ECHO),
            bot=bot_starts,
            echo=echo_starts,
        )
        idle, echo_idle = statistics.median(rss["bot"]), statistics.median(rss["echo"])
        self.add(
            "5",
            "idle RSS (VmRSS)",
            f"{idle:.0f} MB ({idle - echo_idle:+.1f} MB on echo)",
            f"echo {echo_idle:.0f} MB; within {IDLE_RSS_OVER_ECHO_MB:.0f} MB of echo (issue 10; "
            f"issue 6's ≤ {IDLE_RSS_OLD_TARGET_MB:.0f} MB is below echo's own)",
            verdict(idle - echo_idle <= IDLE_RSS_OVER_ECHO_MB),
            bot=rss["bot"],
            echo=rss["echo"],
        )
        self.add(
            "5",
            f"RSS after a round over {p.background_users:,} users",
            f"{big['rss']:.0f} MB (peak {big['hwm']:.0f} MB)",
            f"idle {idle:.0f} MB",
            "—",
        )
        during, idle_lat = big["during"], big["idle"]
        during99, idle99 = percentile(during, 99), percentile(idle_lat, 99)
        self.add(
            "2",
            f"/balance (bot process) during its own round over {p.background_users:,} users "
            f"(concurrency {DEFAULT_CHECK_CONCURRENCY}, gateway 0 ms)",
            pair_ms(during) + f" (n={len(during)})",
            f"idle {pair_ms(idle_lat)}; p99 ≤ {INTERACTIVE_SLOWDOWN_TARGET:g}× idle; "
            f"the user's first, cold: {big['first'] * 1000:.1f} ms (not counted)",
            verdict(during99 <= INTERACTIVE_SLOWDOWN_TARGET * idle99),
            during=summary(during),
            idle=summary(idle_lat),
            round_seconds=big["round_seconds"],
        )

    async def footprint_round(
        self, telegram: BenchTelegram, devsms: CountingDevsms
    ) -> dict[str, Any]:
        """The bot with footprint_users users: its start-up round, one interactive user's
        /balance during it and after it, and its memory once the round is over."""
        p = self.profile
        template = await self.template()
        devsms.latency = 0.0
        bot = await self.start_process("round", telegram, devsms, database=template, env=bot_env())
        stop = asyncio.Event()
        samples: list[tuple[float, float]] = []
        expected: list[str] = []

        async def interactive() -> None:
            while not stop.is_set():
                sent, answered, reply = await telegram.ask(INTERACTIVE_USER, "/balance")
                if not expected:
                    expected.append(reply)
                elif reply != expected[0]:
                    raise AssertionError(f"unexpected /balance answer: {reply!r}")
                samples.append((sent, answered - sent))
                await asyncio.sleep(INTERACTIVE_PAUSE)

        user = asyncio.create_task(interactive())
        try:
            started = time.monotonic()
            await wait_until(
                lambda: devsms.per_token.get(WATCH_TOKEN, 0) >= p.background_users,
                ROUND_TIMEOUT,
                "balance round",
            )
            round_end = time.monotonic()
            await wait_until(
                lambda: re.search(r"balance round: .* in [\d.]+ s", bot.output()),
                ROUND_TIMEOUT,
                "balance round log line",
            )
            await asyncio.sleep(p.idle_seconds * 2)
            stop.set()
            await user
            assert bot.pid is not None
            memory = memory_mb(bot.pid)
        finally:
            user.cancel()
            with contextlib.suppress(asyncio.CancelledError, AssertionError):
                await user
        found = re.search(r"balance round: (.*) in ([\d.]+) s", bot.output())
        await bot.stop()
        self.say(f"  round: {found.group(0) if found else '?'}; RSS {memory['VmRSS']:.0f} MB")
        return {
            "rss": memory["VmRSS"],
            "hwm": memory["VmHWM"],
            "round_seconds": float(found.group(2)) if found else math.nan,
            "round_seen_seconds": round_end - started,
            # The first /balance is the user's cold one (their row, their token's first
            # decryption, the answer's first formatting): 30-40 ms on its own, and with ~30
            # samples in a quick run the p99 is their largest, so it alone failed the row.
            "first": samples[0][1] if samples else math.nan,
            # A request answered after the round ended but sent during it counts as during.
            "during": [latency for sent, latency in samples[1:] if sent < round_end],
            "idle": [latency for sent, latency in samples[1:] if sent > round_end + 0.5],
        }

    async def upload_stall(self) -> None:
        rows, columns = self.profile.upload_rows, MAX_CELLS // MAX_ROWS
        self.say(f"section 7: a list of {rows:,} rows × {columns} columns from the upload worker")
        results = await measure_upload_stall(rows, columns)
        (took, stall), (whole_took, whole_stall) = results["packed"], results["whole"]
        self.add(
            "7",
            f"longest event-loop stall while a {rows:,} × {columns} list comes back from the "
            "upload worker",
            f"{stall * 1000:.0f} ms (round trip {took:.1f} s)",
            f"≤ {UPLOAD_STALL_TARGET * 1000:.0f} ms; sent whole {whole_stall * 1000:.0f} ms "
            f"({whole_took:.1f} s)",
            verdict(stall <= UPLOAD_STALL_TARGET),
            stall=stall,
            whole_stall=whole_stall,
        )

    # --- 8 -------------------------------------------------------------------------------------

    async def charts(self) -> None:
        """One chart's drawing time, and /balance while other users' charts are drawn.

        The bot draws charts in its chart process (services/chart_desk.py), so a chart should
        cost the event loop only the reading of its numbers and the upload of the PNG. The
        reference is the same user's /balance while the bot is idle, measured in a window after
        each burst with as many samples as the burst had, after one chart has started the
        chart process (a one-off per bot process). The bot's CPU per chart is taken on a burst
        of its own with no /balance.
        """
        p = self.profile
        n = p.chart_users
        self.say(f"8. charts: one drawn {p.chart_draws} times, then {n} users' /stats at once")
        first, times = await asyncio.to_thread(time_charts, p.chart_draws)
        telegram, devsms = await self.fakes()
        database = self.root / "charts-seed" / "bot.sqlite3"
        await seed_users(database, [INTERACTIVE_USER], INTERACTIVE_TOKEN)
        chart_users = range(CHART_USERS_FROM, CHART_USERS_FROM + n)
        await seed_users(database, chart_users, LOAD_TOKEN)
        idle: list[float] = []
        during: list[float] = []

        def photos(user_id: int) -> int:
            return sum("photo" in m.message for m in telegram.chat_messages(user_id))

        try:
            bot = await self.start_process(
                "charts",
                telegram,
                devsms,
                database=database,
                env=bot_env(),
                argv=self.charts_bot_argv,
            )
            await wait_until(
                lambda: "balance round:" in bot.output() and "traffic round:" in bot.output(),
                ROUND_TIMEOUT,
                "start-up rounds",
            )
            expected = await probe_answer(telegram, INTERACTIVE_USER)
            telegram.send_text(INTERACTIVE_USER, "/stats")
            await wait_until(lambda: photos(INTERACTIVE_USER) or None, ROUND_TIMEOUT, "chart")
            assert bot.pid is not None
            # The bot's own CPU per chart, measured on a burst with nothing else going on:
            # the /stats update, reading the numbers, handing them to the chart process,
            # taking the PNG back and uploading it (all threads; the loop's own apart).
            cpu_quiet, loop_quiet = process_cpu(bot.pid), thread_cpu(bot.pid, bot.pid)
            for user_id in chart_users:
                telegram.send_text(user_id, "/stats")
            await wait_until(
                lambda: sum(photos(user_id) for user_id in chart_users) >= n or None,
                ROUND_TIMEOUT,
                "the quiet burst's charts",
            )
            cpu_per_chart = (process_cpu(bot.pid) - cpu_quiet) / n
            loop_per_chart = (thread_cpu(bot.pid, bot.pid) - loop_quiet) / n
            # Idle windows alternate with the bursts, so that both figures see the same
            # weather on a shared machine, and each window holds as many samples as the burst
            # before it: the p99 of 90 samples is their largest, that of 100 their second
            # largest, which alone made the smaller side look slower.
            cpu_idle = cpu_loaded = charts_seconds = 0.0
            arrivals: list[float] = []
            for burst in range(1, p.chart_bursts + 1):
                cpu_before, started = process_cpu(bot.pid), time.monotonic()
                actions = len(telegram.calls_of("sendChatAction"))
                for user_id in chart_users:
                    telegram.send_text(user_id, "/stats")
                # The /balance sent together with the 20 /stats waits behind their 20
                # updates (user rows, chat actions): reported beside the figure, not in it.
                sent, answered, _reply = await telegram.ask(INTERACTIVE_USER, "/balance")
                arrivals.append(answered - sent)
                await wait_until(
                    lambda goal=actions + n: (
                        len(telegram.calls_of("sendChatAction")) >= goal or None
                    ),
                    REPLY_TIMEOUT,
                    "the /stats handled",
                )
                in_burst = 0
                while sum(photos(user_id) for user_id in chart_users) < n * (burst + 1):
                    if time.monotonic() - started > ROUND_TIMEOUT:
                        raise TimeoutError(f"{n} charts not sent within {ROUND_TIMEOUT} s")
                    sent, answered, reply = await telegram.ask(INTERACTIVE_USER, "/balance")
                    if reply.split("\n")[0] != expected.split("\n")[0]:
                        raise AssertionError(f"unexpected /balance answer: {reply!r}")
                    during.append(answered - sent)
                    in_burst += 1
                    await asyncio.sleep(INTERACTIVE_PAUSE)
                charts_seconds += time.monotonic() - started
                cpu_loaded += process_cpu(bot.pid) - cpu_before
                cpu_before = process_cpu(bot.pid)
                for _ in range(max(in_burst, 1)):
                    sent, answered, _reply = await telegram.ask(INTERACTIVE_USER, "/balance")
                    idle.append(answered - sent)
                    await asyncio.sleep(INTERACTIVE_PAUSE)
                cpu_idle += process_cpu(bot.pid) - cpu_before
            charts_in = charts_seconds / p.chart_bursts
            # The same with the /balance answered meanwhile taken off at the idle windows'
            # cost each: rougher (a /balance costs more under load), kept for comparison.
            per_balance = cpu_idle / len(idle)
            cpu_per_chart_loaded = (cpu_loaded - per_balance * len(during)) / (n * p.chart_bursts)
            await bot.stop()
        finally:
            await self.stop_all()
            await telegram.stop()
            await devsms.stop()
        draw = statistics.median(times)
        self.say(
            f"  {p.chart_bursts} × {n} charts, {charts_in:.1f} s each; "
            f"{len(during)} /balance meanwhile; bot CPU per chart {cpu_per_chart * 1000:.1f} ms "
            f"(event loop {loop_per_chart * 1000:.1f} ms) alone, "
            f"≈ {cpu_per_chart_loaded * 1000:.1f} ms beside the /balance"
        )
        self.details["charts"] = {
            "first_draw_with_import": first,
            "draws": times,
            "users": n,
            "charts_seconds": charts_in,
            "idle": summary(idle),
            "during": summary(during),
            "during_samples": during,
            "with_the_stats": arrivals,
            "bot_cpu_per_chart": cpu_per_chart,
            "loop_cpu_per_chart": loop_per_chart,
            "bot_cpu_per_chart_beside_balance": cpu_per_chart_loaded,
        }
        self.add(
            "8",
            "one /stats chart drawn (30 days, 1000 × 600 PNG; median of "
            f"{len(times)}, matplotlib already imported)",
            f"{draw * 1000:.0f} ms",
            f"first one with matplotlib's import {first:.2f} s; the bot's own CPU per chart "
            f"(the /stats, reading, upload; {n} charts alone) {cpu_per_chart * 1000:.1f} ms, "
            f"of which its event loop {loop_per_chart * 1000:.1f} ms",
            "—",
            draws=times,
        )
        idle99, during99 = percentile(idle, 99), percentile(during, 99)
        self.add(
            "8",
            f"/balance while {n} users' charts are drawn ({p.chart_bursts} × {n} charts, each "
            f"{n} sent in {charts_in:.1f} s; the /balance sent together with the {n} /stats: "
            f"up to {ms(max(arrivals))})",
            pair_ms(during) + f" (n={len(during)})",
            f"idle {pair_ms(idle)}; p99 ≤ {CHART_SLOWDOWN_TARGET:g}× idle",
            verdict(during99 <= CHART_SLOWDOWN_TARGET * idle99),
            during=summary(during),
            idle=summary(idle),
        )

    # --- 9 -------------------------------------------------------------------------------------

    async def callbacks(self) -> None:
        await measure_callbacks(self, seed=seed_users, env=bot_env)

    # --- 10 ------------------------------------------------------------------------------------

    async def replicas(self) -> None:
        p = self.profile
        dsn = self.postgres_dsn or os.environ.get("TEST_POSTGRES_DSN") or DEFAULT_POSTGRES_DSN
        redis_url = own_redis_database(os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL)
        self.say(
            f"10. replicas: {p.users} users, /balance in webhook mode, gateway 0 ms, "
            f"{p.pass_seconds:.0f} s per pass; SQLite, then "
            + ", ".join(str(n) for n in REPLICA_COUNTS)
            + " replica(s) on PostgreSQL + Redis"
        )
        missing = [
            f"{what} at {reason}"
            for what, reason in (
                ("PostgreSQL", unreachable(dsn, 5432)),
                ("Redis", unreachable(redis_url, 6379)),
            )
            if reason is not None
        ]
        if missing:
            self.say("  skipped: " + "; ".join(missing))
            self.add("10", "replicas on PostgreSQL + Redis", "skipped", "; ".join(missing), "—")
            return
        from redis.asyncio import Redis

        telegram, devsms = await self.fakes()
        ticker = LagTicker()
        ticker.start()
        users = list(range(LOAD_USERS_FROM, LOAD_USERS_FROM + p.users))
        passes: dict[str, PassResult] = {}
        handed: dict[str, list[int]] = {}
        redis = Redis.from_url(redis_url)

        async def measure(label: str, bots: Sequence[BotProcess]) -> None:
            devsms.latency = 0.0
            expected = await probe_answer(telegram, users[0])
            result = await load_pass(
                label,
                telegram,
                bots,
                users,
                expected=expected,
                seconds=p.pass_seconds,
                warmup=p.warmup_seconds,
                gateway_latency=0.0,
                ticker=ticker,
            )
            passes[label] = result
            self.say(
                f"  {label}: {result.rate:.0f} updates/s, {ms(result.cpu_per_update)} CPU of "
                f"all bots per update, {pair_ms(result.latencies)}, others on the machine "
                f"{result.other_cpu:.0%} of a core"
            )

        started = time.monotonic()
        try:
            database = self.root / "replicas-seed" / "bot.sqlite3"
            await seed_users(database, users, LOAD_TOKEN)
            lite = await self.start_process(
                "replicas-sqlite",
                telegram,
                devsms,
                database=database,
                env=webhook_env(telegram),
                timeout=REPLICA_START,
            )
            self.say(f"  sqlite: started at {time.monotonic() - started:.0f} s")
            await wait_until(lambda: rounds_done([lite]), ROUND_TIMEOUT, "start-up rounds")
            self.say(f"  sqlite: rounds done at {time.monotonic() - started:.0f} s")
            await measure("sqlite", [lite])
            await lite.stop()
            async with bench_schema(dsn) as url:
                await seed_users(url, users, LOAD_TOKEN)
                self.say(f"  PostgreSQL seeded at {time.monotonic() - started:.0f} s")
                for count in REPLICA_COUNTS:
                    await redis.flushdb()
                    label = f"replicas-{count}"
                    bots, balancer = await self.start_replicas(
                        label, count, telegram, devsms, url, redis_url
                    )
                    self.say(f"  {label}: ready at {time.monotonic() - started:.0f} s")
                    try:
                        if count == REPLICA_COUNTS[0]:
                            # The schema's first start runs the start-up rounds; later sets
                            # find their terms (BALANCE_CHECK_INTERVAL, TRAFFIC_SYNC_INTERVAL)
                            # still running.
                            await wait_until(
                                functools.partial(rounds_done, bots),
                                ROUND_TIMEOUT,
                                "start-up rounds",
                            )
                        await measure(label, bots)
                        handed[label] = list(balancer.handed.values())
                        if any(balancer.refused.values()):
                            self.say(f"  {label}: connections refused {balancer.refused}")
                    finally:
                        await asyncio.gather(*(bot.stop() for bot in bots))
                        await balancer.stop()
        finally:
            await ticker.stop()
            await self.stop_all()
            await telegram.stop()
            await devsms.stop()
            with contextlib.suppress(Exception):
                await redis.flushdb()
            await redis.aclose()
        self.say(f"  section 10 took {time.monotonic() - started:.0f} s")
        self.details["replicas"] = {
            label: {**result.data(), "updates_per_replica": handed.get(label)}
            for label, result in passes.items()
        }
        self.replica_rows(passes, handed)

    async def start_replicas(
        self,
        label: str,
        count: int,
        telegram: FakeTelegram,
        devsms: FakeDevsms,
        database_url: str,
        redis_url: str,
    ) -> tuple[list[BotProcess], Balancer]:
        """`count` bots in webhook mode on one database and Redis, behind a new balancer to
        which the fake Telegram posts every update."""
        ports = [free_port() for _ in range(count)]
        balancer = Balancer([f"http://127.0.0.1:{port}" for port in ports])
        await balancer.start()
        telegram.route_webhook(WEBHOOK_PUBLIC, balancer.base)
        envs = [
            bot_env(
                TELEGRAM_MODE="webhook",
                PUBLIC_BASE_URL=WEBHOOK_PUBLIC,
                WEBHOOK_SECRET="bench-webhook-secret",
                WEB_PORT=str(port),
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                REPLICA_ID=f"bench-{count}-{number}",
            )
            for number, port in enumerate(ports, 1)
        ]
        try:
            # All at once, as `docker compose up` starts them (stop_all kills them on failure);
            # three starting side by side on two busy cores need longer than one.
            bots = await asyncio.gather(
                *(
                    self.start_process(
                        f"{label}-{number}", telegram, devsms, env=env, timeout=REPLICA_START
                    )
                    for number, env in enumerate(envs, 1)
                )
            )
            # BotProcess.start() returns at the first setWebhook of the run, which may be
            # another replica's: each one is in the balancer's turn once it answers /readyz,
            # as Caddy's health checks would have it.
            await asyncio.gather(*(wait_ready(port, REPLICA_START) for port in ports))
        except BaseException:
            await balancer.stop()
            raise
        return list(bots), balancer

    def replica_rows(self, passes: dict[str, PassResult], handed: dict[str, list[int]]) -> None:
        p = self.profile
        lite = passes["sqlite"]
        self.add(
            "10",
            f"/balance in webhook mode, {p.users} users, gateway 0 ms: SQLite, one process",
            f"{lite.rate:.0f} upd/s; {ms(lite.cpu_per_update)} CPU/update; "
            f"{pair_ms(lite.latencies)}",
            f"others on the machine {lite.other_cpu:.0%} of a core",
            "—",
            rate=lite.rate,
            cpu_per_update=lite.cpu_per_update,
            **summary(lite.latencies),
        )
        one = passes.get(f"replicas-{REPLICA_COUNTS[0]}")
        for count in REPLICA_COUNTS:
            result = passes.get(f"replicas-{count}")
            if result is None:
                continue
            ratio = result.rate / one.rate if one is not None and one.rate else math.nan
            shares = "/".join(str(n) for n in handed.get(f"replicas-{count}", []))
            self.add(
                "10",
                f"PostgreSQL + Redis, {count} replica(s) behind round robin "
                "(CPU: all bots summed)",
                f"{result.rate:.0f} upd/s ({ratio:.2f}× 1 replica); "
                f"{ms(result.cpu_per_update)} CPU/update; {pair_ms(result.latencies)}",
                f"updates per replica {shares}; others (PostgreSQL, Redis, other sessions) "
                f"{result.other_cpu:.0%} of a core",
                "—",
                replicas=count,
                rate=result.rate,
                ratio_to_one=ratio,
                cpu_per_update=result.cpu_per_update,
                **summary(result.latencies),
            )
        cores = os.cpu_count() or 1
        self.add(
            "10",
            "reading section 10",
            f"on this {cores}-core machine the numbers show overhead, not scaling"
            if cores < FEW_CORES
            else f"{cores} cores: replicas may scale up to what the servers and fakes leave",
            "replicas, PostgreSQL, Redis and the fakes share the same cores: cores needed ≈ "
            "rate × CPU/update (+ the servers' own share)",
            "—",
        )
        problems = {
            label: (result.wrong, result.timeouts)
            for label, result in passes.items()
            if result.wrong or result.timeouts
        }
        if problems:
            self.add("10", "wrong answers / timeouts", str(problems), "none expected", "MISSED")


def time_charts(draws: int) -> tuple[float, list[float]]:
    """Seconds of the first chart (with matplotlib's import) and of each later one."""
    first_day = dt.date(2026, 11, 1)
    points = [
        DayPoint(first_day + dt.timedelta(days=i), 40 + i % 7 * 9, i % 5, i % 3, Decimal(50 * i))
        for i in range(30)
    ]
    labels = ChartLabels(
        title="SMS and spending, last 30 days",
        sms_axis="SMS a day",
        spent_axis="Spent a day, so'm",
        delivered="Delivered",
        failed="Not delivered",
        waiting="Waiting",
        empty="No SMS in these days",
    )
    spec = ChartSpec(fill_days(points, first_day, first_day + dt.timedelta(days=29)), labels)
    started = time.perf_counter()
    draw_chart(spec)
    first = time.perf_counter() - started
    times = []
    for _ in range(draws):
        started = time.perf_counter()
        draw_chart(spec)
        times.append(time.perf_counter() - started)
    return first, times


# --- output -----------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """NaN (a percentile of no samples) becomes null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def render_table(rows: Sequence[Row]) -> str:
    header = ("#", "measure", "value", "reference/target", "verdict")
    cells = [header] + [(r.section, r.measure, r.value, r.reference, r.verdict) for r in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    divider = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), divider, *(line(row) for row in cells[1:])])


SECTIONS: Final[dict[str, Callable[[Bench], Awaitable[None]]]] = {
    "1": Bench.throughput,
    "2": Bench.background,  # also section 3
    "4": Bench.storage,
    "5": Bench.footprint,
    "6": Bench.connect_burst,
    "7": Bench.upload_stall,
    "8": Bench.charts,
    "9": Bench.callbacks,
    "10": Bench.replicas,
}


def compile_bot() -> None:
    """Writes the bot's bytecode, as the Docker image does at build time: the echo bot's
    aiogram was compiled by pip, and a bot compiling its ~30,000 lines at every start (where
    PYTHONDONTWRITEBYTECODE is set, or __pycache__ is not writable) paid 0.3-0.5 s of start-up
    and the compiler's memory for it."""
    for package in BOT_PACKAGES:
        compileall.compile_dir(REPO_ROOT / package, quiet=1)


async def run(
    profile: Profile,
    only: set[str],
    say: Callable[[str], None],
    profile_to: Path | None,
    postgres_dsn: str | None = None,
) -> Bench:
    compile_bot()
    busy, ours = machine_busy(), family_cpu()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="devsms-bench-") as tmp:
        bench = Bench(profile, Path(tmp), say)
        bench.postgres_dsn = postgres_dsn
        if profile_to is not None:
            bench.load_bot_argv = ("-m", "scripts.profile_bot", str(profile_to))
            # Section 8's bot: its event loop's CPU time, in PATH.charts.
            charts_to = profile_to.with_name(profile_to.name + ".charts")
            bench.charts_bot_argv = ("-m", "scripts.profile_bot", str(charts_to), "--cpu")
        try:
            for key, section in SECTIONS.items():
                if key in only or (key == "2" and "3" in only):
                    # The load generator's own full collections (160-230 ms, with the fakes'
                    # records of earlier passes) stalled its loop mid-pass and showed as the
                    # bot's latency: collected between sections, never during one.
                    gc.collect()
                    gc.disable()
                    try:
                        await section(bench)
                    finally:
                        gc.enable()
        finally:
            await bench.stop_all()
    elapsed = time.monotonic() - started
    others = (machine_busy() - busy) - (family_cpu() - ours)
    bench.details["other_processes_cpu_of_one_core"] = max(0.0, others) / elapsed
    return bench


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--only",
        default="1,2,3,4,5,6,7,8,9,10",
        help="comma-separated sections to run (default: all; 10 needs PostgreSQL and Redis)",
    )
    parser.add_argument(
        "--profile-bot",
        type=Path,
        metavar="PATH",
        help="run section 1's bot under cProfile (scripts/profile_bot.py) and write its stats "
        "there, and section 8's (the event loop's CPU time) to PATH.charts; the profiler slows "
        "the bot down, so its figures are not comparable",
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("TEST_POSTGRES_DSN") or "postgresql://postgres@127.0.0.1:5432/test",
        metavar="DSN",
        help="section 1 also runs the bot on PostgreSQL at DSN (default TEST_POSTGRES_DSN or "
        "the local server), in a schema of its own dropped afterwards; section 10 uses DSN "
        "(it runs on that default without this option)",
    )
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else Profile()
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    info = machine()
    print(
        f"devsms bot bench — {info['date']}\n"
        f"machine: {info['cores']} cores ({info['cpu']}), {info['ram_gb']} GB RAM, "
        f"{info['implementation']} {info['python']}, aiogram {info['aiogram']}, {info['os']}\n"
        f"profile: {'quick' if args.quick else 'full'}\n",
        flush=True,
    )

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    profile_to = args.profile_bot.resolve() if args.profile_bot is not None else None
    bench = asyncio.run(run(profile, only, say, profile_to, args.postgres))
    elapsed = time.monotonic() - started
    # By section number: "10" after "9".
    rows = sorted(bench.rows, key=lambda row: int(row.section))
    print(render_table(rows))
    missed = [row for row in rows if row.verdict == "MISSED"]
    print(f"\n{len(missed)} target(s) missed; bench took {elapsed:.0f} s.")
    others = bench.details["other_processes_cpu_of_one_core"]
    print(
        f"Other processes on this machine used {others:.0%} of one core on average meanwhile"
        + (
            " — the machine was shared, so times are longer than on an idle one "
            "(CPU per update is the steadier figure)."
            if others > CONTENTION_WARNING
            else "."
        )
    )
    if args.json is not None:
        payload = {
            "machine": info,
            "profile": asdict(profile),
            "elapsed_seconds": elapsed,
            "rows": [asdict(row) for row in rows],
            "details": bench.details,
        }
        args.json.write_text(json.dumps(json_safe(payload), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
