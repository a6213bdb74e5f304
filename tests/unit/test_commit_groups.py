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
from storage.db import SqliteDatabase


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
