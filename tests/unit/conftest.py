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
from tests.support.bulk_env import env
from tests.support.services import postgres_schema
from tests.support.watch_env import World

__all__ = ["db", "devsms", "env", "i18n", "world"]


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """An empty, fully migrated database: SQLite in memory, or PostgreSQL in a schema of its
    own (skipped with the reason when the server is not reachable)."""
    if request.param == "sqlite":
        database = await Database.open(":memory:")
        try:
            yield database
        finally:
            await database.close()
        return
    async with postgres_schema() as dsn:
        database = await Database.open(dsn)
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
async def world(tmp_path: Path, devsms: FakeDevsms, i18n: I18n) -> AsyncIterator[World]:
    vault = TokenVault([Fernet.generate_key().decode()])
    opened = await World(tmp_path / "bot.sqlite3", devsms, vault, i18n).open()
    yield opened
    await opened.close()
