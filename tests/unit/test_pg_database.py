"""PostgresDatabase's own rules (storage/pg.py): no row caches, and transactions waiting for
their turn do not take the pool's connections from lone statements."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage import CredentialRepo, UserRepo
from storage.pg import PostgresDatabase
from tests.support.services import postgres_schema

ALI = 1001


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    async with postgres_schema() as url:
        yield url


async def test_a_row_erased_through_another_path_is_not_answered_from_a_cache(dsn: str) -> None:
    """On a pool a read can cache a row that a concurrent transaction (/logout's erase) is
    about to delete: the caches rest on SQLite's one-connection order, so they keep nothing."""
    db = await PostgresDatabase.open_url(dsn)
    other = await PostgresDatabase.open_url(dsn)
    try:
        await UserRepo(db).upsert_seen(ALI, "Ali", None)
        credentials = CredentialRepo(db)
        await credentials.save(ALI, b"token")
        assert await credentials.get(ALI) is not None
        await other.execute("DELETE FROM credentials WHERE user_id = ?", (ALI,))
        assert await credentials.get(ALI) is None
    finally:
        await other.close()
        await db.close()
