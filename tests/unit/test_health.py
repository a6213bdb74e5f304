"""/healthz and /readyz over a real socket, with a real database and a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.methods import GetMe
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web import health
from bot.web.health import TELEGRAM_FRESH, TelegramPulse, add_health_routes
from storage import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


METHOD = GetMe()


async def answered(bot: object, call: object) -> str:
    return "ok"


async def refused(bot: object, call: object) -> str:
    raise TelegramBadRequest(METHOD, "Bad Request: chat not found")


async def unreachable(bot: object, call: object) -> str:
    raise TelegramNetworkError(METHOD, "connection refused")


@pytest.fixture
async def database(database_target: str | Path) -> AsyncIterator[Database]:
    """The bot's database on each engine (an SQLite file at tmp_path / "bot.sqlite3")."""
    db = await Database.open(database_target)
    yield db
    await db.close()


async def test_the_pulse_is_fresh_only_after_a_recent_answer() -> None:
    clock = Clock()
    pulse = TelegramPulse(clock)
    assert not pulse.fresh()
    assert await pulse(answered, None, METHOD) == "ok"  # type: ignore[arg-type]
    assert pulse.fresh(within=60)
    clock.now += 61
    assert not pulse.fresh(within=60)
    with pytest.raises(TelegramNetworkError):
        await pulse(unreachable, None, METHOD)  # type: ignore[arg-type]
    assert not pulse.fresh(within=60)
    with pytest.raises(TelegramBadRequest):
        await pulse(refused, None, METHOD)  # type: ignore[arg-type]
    assert pulse.fresh(within=60)  # Telegram answered, if with an error of the call


async def test_readyz_wants_a_recent_answer_from_telegram(
    database: Database, tmp_path: Path
) -> None:
    clock = Clock()
    pulse = TelegramPulse(clock)
    app = web.Application()
    add_health_routes(app, database, tmp_path / "bot.sqlite3", pulse)
    async with TestClient(TestServer(app)) as client:

        async def get(path: str) -> tuple[int, object]:
            response = await client.get(path)
            return response.status, await response.json()

        # No call has been answered yet (start-up).
        assert await get("/readyz") == (503, {"ready": False, "reason": "telegram"})
        assert await get("/healthz") == (200, {"ok": True})
        await pulse(answered, None, METHOD)  # type: ignore[arg-type]
        assert await get("/readyz") == (200, {"ready": True})
        clock.now += TELEGRAM_FRESH + 1
        assert await get("/readyz") == (503, {"ready": False, "reason": "telegram"})
        await pulse(answered, None, METHOD)  # type: ignore[arg-type]
        assert await get("/readyz") == (200, {"ready": True})
        await database.close()  # the bot's own connection is gone
        assert await get("/readyz") == (503, {"ready": False, "reason": "database"})


async def test_a_flood_of_readyz_takes_the_write_lock_once_or_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz needs no login: each request taking the SQLite write lock in its own thread
    would let a flood make the bot's own writes fail with "database is locked"."""
    path = tmp_path / "bot.sqlite3"
    db = await Database.open(path)
    probes = 0
    real = health._take_write_lock

    def counted(where: Path, timeout: float) -> None:
        nonlocal probes
        probes += 1
        real(where, timeout)

    monkeypatch.setattr(health, "_take_write_lock", counted)
    pulse = TelegramPulse()
    await pulse(answered, None, METHOD)  # type: ignore[arg-type]
    app = web.Application()
    add_health_routes(app, db, path, pulse)
    try:
        async with TestClient(TestServer(app)) as client:

            async def ready() -> int:
                response = await client.get("/readyz")
                return response.status

            statuses = await asyncio.gather(*(ready() for _ in range(100)))
        assert statuses == [200] * 100
        assert 1 <= probes <= 2
    finally:
        await db.close()
