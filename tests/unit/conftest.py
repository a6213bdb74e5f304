"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.utils.i18n import I18n
from cryptography.fernet import Fernet

from bot.i18n import create_i18n
from services.vault import TokenVault
from storage import Database
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram
from tests.support.bulk_env import env
from tests.support.harness import BOT_TOKEN
from tests.support.services import migrated_postgres_schema
from tests.support.watch_env import World

__all__ = ["database_target", "db", "devsms", "env", "i18n", "telegram", "world"]


@pytest.fixture(params=["sqlite", "postgres"])
async def database_target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str | Path]:
    """Where the test's database lives: an SQLite file, or a PostgreSQL schema of its own
    (skipped with the reason when the server is not reachable), empty and already migrated:
    often one an earlier test used and emptied, as migrating a new schema costs PostgreSQL
    about a second. Reopening it is a restart."""
    if request.param == "sqlite":
        yield tmp_path / "bot.sqlite3"
        return
    async with migrated_postgres_schema() as dsn:
        yield dsn


@pytest.fixture
async def db(database_target: str | Path) -> AsyncIterator[Database]:
    """An empty, fully migrated database on each engine (SQLite in memory)."""
    in_memory = isinstance(database_target, Path)
    database = await Database.open(":memory:" if in_memory else database_target)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return create_i18n("en")


@pytest.fixture
async def devsms() -> AsyncIterator[FakeDevsms]:
    """A fake gateway with no accounts yet (tests add their own)."""
    async with FakeDevsms() as fake:
        yield fake


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API server, its chats empty."""
    server = FakeTelegram(BOT_TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def world(
    database_target: str | Path, devsms: FakeDevsms, i18n: I18n
) -> AsyncIterator[World]:
    vault = TokenVault([Fernet.generate_key().decode()])
    opened = await World(database_target, devsms, vault, i18n).open()
    yield opened
    await opened.close()
