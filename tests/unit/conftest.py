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
from tests.support.watch_env import World

__all__ = ["db", "devsms", "env", "i18n", "world"]


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    """An empty, fully migrated database in memory."""
    database = await Database.open(":memory:")
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
