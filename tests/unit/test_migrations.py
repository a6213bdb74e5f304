"""Schema migrations: fresh databases, upgrades that keep data, and refusing the unknown."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from storage import OutboxRepo, ScheduleRepo, migrations
from storage.db import Database
from storage.migrations import (
    LATEST_VERSION,
    MigrationError,
    migrate,
    schema_version,
)


@pytest.fixture
async def raw(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await aiosqlite.connect(tmp_path / "bot.sqlite3", isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        await conn.close()


async def columns(conn: aiosqlite.Connection, table: str) -> set[str]:
    async with conn.execute(f"PRAGMA table_info({table})") as cursor:
        return {row["name"] for row in await cursor.fetchall()}


async def test_fresh_database_reaches_latest_version(raw: aiosqlite.Connection) -> None:
    assert await migrate(raw) == LATEST_VERSION == len(migrations.MIGRATIONS)
    assert await schema_version(raw) == LATEST_VERSION
    assert {"sender", "is_active", "access"} <= await columns(raw, "users")
    assert {"next_check_at", "checks", "result_notified"} <= await columns(raw, "outbox")
    assert {"job_id", "row_no", "state", "sms_id"} <= await columns(raw, "bulk_rows")
    assert "request_id" in await columns(raw, "outbox")
    # A second run has nothing to do and must not fail on existing tables.
    assert await migrate(raw) == LATEST_VERSION


async def test_v1_database_with_data_upgrades_and_keeps_it(
    raw: aiosqlite.Connection, tmp_path: Path
) -> None:
    assert await migrate(raw, target=1) == 1
    assert "outbox" not in {
        row["name"] for row in await raw.execute_fetchall("SELECT name FROM sqlite_master")
    }
    await raw.execute(
        "INSERT INTO users (id, language, first_name, username, created_at, last_seen_at) "
        "VALUES (42, 'uz', 'Ali', 'ali', '2024-01-01T00:00:00+00:00', "
        "'2024-01-02T00:00:00+00:00')"
    )
    await raw.execute(
        "INSERT INTO credentials (user_id, token_encrypted, state, created_at, updated_at) "
        "VALUES (42, x'0102', 'valid', '2024-01-01T00:00:00+00:00', "
        "'2024-01-01T00:00:00+00:00')"
    )
    await raw.close()

    # The application opens the old file the ordinary way.
    db = await Database.open(tmp_path / "bot.sqlite3")
    try:
        assert await schema_version(db.conn) == LATEST_VERSION
        user = await db.fetchone("SELECT * FROM users WHERE id = 42")
        assert user is not None
        assert (user["language"], user["first_name"], user["username"]) == ("uz", "Ali", "ali")
        assert user["sender"] is None
        assert user["is_active"] == 1  # existing users count as active
        assert user["access"] == "pending"
        credential = await db.fetchone("SELECT * FROM credentials WHERE user_id = 42")
        assert credential is not None
        assert (bytes(credential["token_encrypted"]), credential["state"]) == (
            b"\x01\x02",
            "valid",
        )
        # The new table works against the old rows.
        await db.execute(
            "INSERT INTO outbox (user_id, phone, message, state, created_at, updated_at) "
            "VALUES (42, '998901234567', 'hi', 'pending', 'now', 'now')"
        )
    finally:
        await db.close()


async def test_database_from_newer_code_is_refused(raw: aiosqlite.Connection) -> None:
    await raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(MigrationError, match="newer"):
        await migrate(raw)
    # Nothing was created in it.
    assert await raw.execute_fetchall("SELECT name FROM sqlite_master") == []


async def test_database_open_refuses_newer_file(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    conn.close()
    with pytest.raises(MigrationError):
        await Database.open(path)


async def test_failing_migration_leaves_previous_version(
    raw: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = "CREATE TABLE extra (id INTEGER);\nINSERT INTO missing_table VALUES (1);"
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    with pytest.raises(MigrationError, match=f"version {LATEST_VERSION + 1}"):
        await migrate(raw)
    # The known versions were committed; the broken one was rolled back whole, its table too.
    assert await schema_version(raw) == LATEST_VERSION
    assert not raw.in_transaction
    names = {row["name"] for row in await raw.execute_fetchall("SELECT name FROM sqlite_master")}
    assert "outbox" in names
    assert "extra" not in names


async def test_bulk_rows_keep_what_the_traffic_record_needs(raw: aiosqlite.Connection) -> None:
    # A later rebuild of bulk_rows (the stop list's new CHECK) once dropped these.
    await migrate(raw)
    assert "sent_at" in await columns(raw, "bulk_rows")
    async with raw.execute("PRAGMA index_list(bulk_rows)") as cursor:
        indexes = {row["name"] for row in await cursor.fetchall()}
    assert {"bulk_rows_sms_id", "bulk_rows_request_id", "bulk_rows_state"} <= indexes


async def test_send_template_migration_keeps_old_sends_and_records_new_ones(
    raw: aiosqlite.Connection, tmp_path: Path
) -> None:
    before = migrations.MIGRATIONS.index(migrations._SEND_TEMPLATE)
    assert await migrate(raw, target=before) == before
    assert "template" not in await columns(raw, "outbox")
    stamp = "2026-11-01T00:00:00+00:00"
    await raw.execute(
        "INSERT INTO users (id, language, created_at, last_seen_at) VALUES (7, 'en', ?, ?)",
        (stamp, stamp),
    )
    await raw.execute(
        "INSERT INTO outbox (user_id, phone, message, state, created_at, updated_at) "
        "VALUES (7, '998901234567', 'typed', 'sent', ?, ?)",
        (stamp, stamp),
    )
    await raw.execute(
        "INSERT INTO scheduled (user_id, kind, phone, message, due_at, created_at, updated_at) "
        "VALUES (7, 'sms', '998901234567', 'later', ?, ?, ?)",
        (stamp, stamp, stamp),
    )
    await raw.close()

    db = await Database.open(tmp_path / "bot.sqlite3")
    try:
        assert await schema_version(db.conn) == LATEST_VERSION
        outbox = OutboxRepo(db)
        [old] = await outbox.recent(7, 10)
        assert (old.message, old.template) == ("typed", None)
        [item] = await ScheduleRepo(db).open_of(7, 10)
        assert (item.message, item.template) == ("later", None)
        new_id = await outbox.create_pending(7, "998901234567", "hi", None, template="Hours")
        new = await outbox.get(new_id)
        assert new is not None and new.template == "Hours"
    finally:
        await db.close()
