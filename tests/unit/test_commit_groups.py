"""Database.batched: the writes of tasks waiting at the same moment share one commit on
SQLite; each caller is answered only once its write is committed, and one failing write
fails only its own caller."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database
from storage.db import GROUP_MOST, Row, SqliteDatabase


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(tmp_path / "bot.sqlite3")
    await db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    yield db
    await db.close()


async def test_writes_waiting_together_share_one_commit(file_db: Database, tmp_path: Path) -> None:
    assert isinstance(file_db, SqliteDatabase)
    commits: list[str] = []
    await file_db.conn.set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )

    async def insert(n: int) -> int:
        return await file_db.batched(lambda: file_db.execute("INSERT INTO t (n) VALUES (?)", (n,)))

    assert await asyncio.gather(*(insert(n) for n in range(20))) == [1] * 20
    # Committed when answered: another connection sees every row.
    other = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        assert other.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 20
    finally:
        other.close()
    # The first write went alone; the 19 that arrived meanwhile shared the next commit.
    assert len(commits) <= 2


async def test_a_failing_write_fails_only_its_own_caller(file_db: Database) -> None:
    await file_db.execute("INSERT INTO t (n) VALUES (5)")

    async def insert(n: int) -> int:
        return await file_db.batched(lambda: file_db.execute("INSERT INTO t (n) VALUES (?)", (n,)))

    results = await asyncio.gather(*(insert(n) for n in (1, 2, 5, 3, 4)), return_exceptions=True)
    assert [isinstance(r, sqlite3.IntegrityError) for r in results] == [
        False,
        False,
        True,
        False,
        False,
    ]
    rows = await file_db.fetchall("SELECT n FROM t ORDER BY n")
    assert [row["n"] for row in rows] == [1, 2, 3, 4, 5]


async def test_a_work_that_batches_again_does_not_hang_the_writer(file_db: Database) -> None:
    """Alone (the rerun after its group failed) a nested batched call used to queue behind
    the writer that waited for it, and every later batched write hung with it."""
    await file_db.execute("INSERT INTO t (n) VALUES (5)")

    async def nested(n: int) -> int:
        await file_db.batched(lambda: file_db.execute("INSERT INTO t (n) VALUES (?)", (n + 100,)))
        return await file_db.execute("INSERT INTO t (n) VALUES (?)", (n,))

    async def insert(n: int) -> int:
        return await file_db.batched(lambda: nested(n))

    async with asyncio.timeout(10):
        results = await asyncio.gather(*(insert(n) for n in (1, 5, 2)), return_exceptions=True)
        assert [isinstance(r, sqlite3.IntegrityError) for r in results] == [False, True, False]
        assert await insert(3) == 1  # the writer still writes
    rows = await file_db.fetchall("SELECT n FROM t ORDER BY n")
    # 105 is written by the failing work's nested call, outside the failing statement.
    assert [row["n"] for row in rows] == [1, 2, 3, 5, 101, 102, 103, 105]


async def test_a_caller_cancelled_before_its_turn_writes_nothing(file_db: Database) -> None:
    async def insert(n: int) -> int:
        return await file_db.batched(lambda: file_db.execute("INSERT INTO t (n) VALUES (?)", (n,)))

    first = asyncio.create_task(insert(1))  # starts the writer, written alone
    await asyncio.sleep(0)
    queued = [asyncio.create_task(insert(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    queued[1].cancel()  # 3 is waiting for the next group
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    rows = await file_db.fetchall("SELECT n FROM t ORDER BY n")
    assert [row["n"] for row in rows] == [1, 2, 4]


async def test_a_group_holds_at_most_group_most_works(file_db: Database) -> None:
    assert isinstance(file_db, SqliteDatabase)
    commits: list[str] = []
    await file_db.conn.set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )

    async def insert(n: int) -> int:
        return await file_db.batched(lambda: file_db.execute("INSERT INTO t (n) VALUES (?)", (n,)))

    await asyncio.gather(*(insert(n) for n in range(1 + 2 * GROUP_MOST)))
    # The first alone (a lone statement, no COMMIT of its own), then two full groups, not one
    # of 64: a user's statement waits for GROUP_MOST works at most.
    assert len(commits) == 2
    rows = await file_db.fetchall("SELECT COUNT(*) AS n FROM t")
    assert rows[0]["n"] == 1 + 2 * GROUP_MOST


async def test_statement_writes_share_a_commit_and_a_failing_one_fails_alone(
    file_db: Database, tmp_path: Path
) -> None:
    assert isinstance(file_db, SqliteDatabase)
    await file_db.execute("INSERT INTO t (n) VALUES (5)")
    commits: list[str] = []
    await file_db.conn.set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )

    async def insert(n: int) -> list[list[Row]]:
        return await file_db.write_together(
            [("INSERT INTO t (n) VALUES (?) RETURNING n", (n,)), ("SELECT COUNT(*) FROM t", ())]
        )

    ok = await asyncio.gather(*(insert(n) for n in range(10, 30)))
    assert [rows[0][0]["n"] for rows in ok] == list(range(10, 30))
    assert len(commits) <= 2  # the first alone, the 19 that arrived meanwhile together
    results = await asyncio.gather(*(insert(n) for n in (1, 2, 5, 3)), return_exceptions=True)
    assert [isinstance(r, sqlite3.IntegrityError) for r in results] == [False, False, True, False]
    other = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        assert other.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 24
    finally:
        other.close()
