"""PostgresDatabase's own rules (storage/pg.py): no row caches, and transactions waiting for
their turn do not take the pool's connections from lone statements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage import CredentialRepo, UserRepo
from storage.db import IntegrityError
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


async def test_waiting_transactions_leave_the_pool_to_lone_statements(dsn: str) -> None:
    db = await PostgresDatabase.open_url(dsn, pool_size=2)
    inside, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def transaction(n: int) -> None:
        async with db.transaction():
            await db.fetchone("SELECT 1")
            inside.set()
            await release.wait()  # holds the advisory lock a moment; the others wait
        order.append(f"transaction {n}")

    async def lone() -> None:
        assert await db.fetchone("SELECT 2 AS two") is not None
        order.append("lone")
        release.set()

    try:
        waiting = [asyncio.create_task(transaction(n)) for n in range(4)]
        await inside.wait()
        for _ in range(20):  # the others reach the pool (or its turn) too
            await asyncio.sleep(0)
        # Without a way out (the lone SELECT starved) the transactions let go after a while.
        asyncio.get_running_loop().call_later(3.0, release.set)
        await asyncio.gather(lone(), *waiting)
        assert order[0] == "lone"
    finally:
        await db.close()


async def test_a_lone_statement_that_fails_inside_a_transaction_leaves_it_usable(
    dsn: str,
) -> None:
    """run_together promises all or none inside the caller's transaction too: its failure
    is the caller's to catch, and the transaction goes on (as on SQLite)."""
    db = await PostgresDatabase.open_url(dsn)
    try:
        async with db.transaction():
            await UserRepo(db).upsert_seen(ALI, "Ali", None)
            with pytest.raises(IntegrityError):
                # The same user again: the primary key refuses it.
                await db.run_together(
                    [
                        (
                            "INSERT INTO users (id, created_at, last_seen_at) VALUES (?, '', '')",
                            (ALI,),
                        )
                    ]
                )
            await db.execute("UPDATE users SET first_name = ? WHERE id = ?", ("Alo", ALI))
        row = await db.fetchone("SELECT first_name FROM users WHERE id = ?", (ALI,))
        assert row is not None and row["first_name"] == "Alo"
    finally:
        await db.close()
