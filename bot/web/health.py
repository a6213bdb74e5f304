"""GET /healthz and GET /readyz, and the record of the last Telegram call that got an answer.

/healthz answers 200 whenever the event loop runs this handler: a process that hangs or died
gets no answer at all. /readyz answers 200 only when

- the database answers: the bot's own connection runs a trivial query, and a short-lived
  second connection to the file at DATABASE_PATH takes the write lock and gives it back
  within a second (so a file that was deleted, or one another process keeps locked, shows
  here before a send cannot be recorded). /readyz needs no login, so that probe runs at most
  once at a time and its result serves every request for PROBE_FRESH seconds: a flood of
  requests must not hold the write lock the bot's own writes need;
- Telegram answered a call of the bot within TELEGRAM_FRESH seconds. In polling mode the bot
  calls getUpdates all the time (a long poll returns at least every 10 s). In webhook mode an
  idle bot makes no calls, so the webhook runner asks getWebhookInfo every
  WEBHOOK_CHECK_INTERVAL seconds; its answer counts like any other.

Otherwise 503 with {"ready": false, "reason": "database" | "telegram"}.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiohttp import web

from storage.db import SqliteDatabase

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

    from storage import Database

logger = logging.getLogger(__name__)

# How old the last answer from Telegram may be for /readyz.
TELEGRAM_FRESH: Final = 60.0
# How long the database has to answer /readyz's queries.
DATABASE_TIMEOUT: Final = 2.0
# How long one write-lock probe's result answers /readyz (requests meanwhile share it).
PROBE_FRESH: Final = 2.0


class TelegramPulse(BaseRequestMiddleware):
    """A session middleware: remembers when Telegram last answered a call (any answer but
    a network error, a 5xx or a rejected token: those say Telegram cannot be used)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.last_answer: float | None = None

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            response = await make_request(bot, method)
        except (TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError):
            raise
        except Exception:
            self.last_answer = self._clock()  # Telegram answered, with an error of the call
            raise
        self.last_answer = self._clock()
        return response

    def fresh(self, within: float = TELEGRAM_FRESH) -> bool:
        return self.last_answer is not None and self._clock() - self.last_answer <= within


def _take_write_lock(path: Path, timeout: float) -> None:
    # mode=rw: a missing file is an error here, never an empty new database. Taking the write
    # lock (and giving it back unused) is what a send's record needs: in WAL mode readers are
    # never blocked, so a read alone would not notice a file another process holds locked.
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout, isolation_level=None
    )
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute("ROLLBACK")
    finally:
        conn.close()


class WriteLockProbe:
    """_take_write_lock in a thread, one at a time: callers while it runs, and for
    PROBE_FRESH seconds after, get its outcome (its exception is raised to each)."""

    def __init__(self, path: Path, clock: Any = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._done_at = 0.0

    async def check(self) -> None:
        task = self._task
        if task is None or (task.done() and self._clock() - self._done_at > PROBE_FRESH):
            task = self._task = asyncio.create_task(self._probe())
            # Retrieved here so a probe whose waiters all timed out logs nothing.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.shield(task)  # a caller's timeout does not end the shared probe

    async def _probe(self) -> None:
        try:
            await asyncio.to_thread(_take_write_lock, self._path, DATABASE_TIMEOUT / 2)
        finally:
            self._done_at = self._clock()


async def database_answers(db: Database, probe: WriteLockProbe | None) -> bool:
    """`probe` is None for PostgreSQL: the pool's connection is proof."""
    errors: tuple[type[Exception], ...] = (TimeoutError, OSError, ValueError, sqlite3.Error)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            await db.fetchone("SELECT 1")
            if probe is not None:
                await probe.check()
    except errors + db.errors as exc:
        logger.warning("readiness: the database does not answer: %r", exc)
        return False
    return True


def add_health_routes(
    web_app: web.Application, db: Database, database_path: Path, pulse: TelegramPulse
) -> None:
    probe = WriteLockProbe(database_path) if isinstance(db, SqliteDatabase) else None

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(request: web.Request) -> web.Response:
        reason = None
        if not await database_answers(db, probe):
            reason = "database"
        elif not pulse.fresh():
            reason = "telegram"
        if reason is not None:
            return web.json_response({"ready": False, "reason": reason}, status=503)
        return web.json_response({"ready": True})

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
