"""The write-through caches of the rows read on every update, and the read-only connection.

What a user would notice if a cache went wrong: an old token used after /token, a dialog
that comes back after /cancel or after erasing their data, a language change that does not
stick. Each test writes through the repositories and reads back what the next update reads.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey

from storage import (
    CredentialRepo,
    CredentialState,
    Database,
    SQLiteStorage,
    UserRepo,
    yield_to_users,
)
from storage.cache import MISSING, RowCache

ALI = 1001
KEY = StorageKey(bot_id=7, chat_id=ALI, user_id=ALI)


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A database on disk: WAL, so the read-only connection is there too."""
    database = await Database.open(tmp_path / "bot.sqlite3")
    try:
        yield database
    finally:
        await database.close()


async def record_statements(db: Database) -> list[str]:
    """From now on, the SQL the write connection runs."""
    seen: list[str] = []
    await db.conn.set_trace_callback(seen.append)
    return seen


def test_row_cache_keeps_the_most_recently_used_rows() -> None:
    cache: RowCache[int, str] = RowCache(2)
    cache.put(1, "a")
    cache.put(2, "b")
    assert cache.get(1) == "a"  # 1 is now the most recent
    cache.put(3, "c")
    assert (cache.get(1), cache.get(2), cache.get(3)) == ("a", MISSING, "c")
    cache.put(4, None)  # type: ignore[arg-type]  # None is a row too ("no row")
    assert cache.get(4) is None and cache.get(1) is MISSING
    assert len(cache) == 2


async def test_a_new_token_is_used_at_once_by_every_repository_object(db: Database) -> None:
    await UserRepo(db).upsert_seen(ALI, "Ali", None)
    writer, reader = CredentialRepo(db), CredentialRepo(db)
    assert await reader.get(ALI) is None  # read (and remembered) before /token
    await writer.save(ALI, b"first")
    found = await reader.get(ALI)
    assert found is not None and found.token_encrypted == b"first"
    await writer.save(ALI, b"second")
    await writer.mark_invalid(ALI)
    found = await reader.get(ALI)
    assert found is not None
    assert (found.token_encrypted, found.state) == (b"second", CredentialState.INVALID)
    await writer.delete(ALI)
    assert await reader.get(ALI) is None


async def test_a_known_token_is_not_read_again(db: Database) -> None:
    await UserRepo(db).upsert_seen(ALI, "Ali", None)
    credentials = CredentialRepo(db)
    await credentials.save(ALI, b"token")
    await credentials.get(ALI)
    seen = await record_statements(db)
    for _ in range(3):
        assert await credentials.get(ALI) is not None
    assert not [sql for sql in seen if "credentials" in sql]


async def test_a_token_saved_in_a_rolled_back_transaction_is_not_used(db: Database) -> None:
    await UserRepo(db).upsert_seen(ALI, "Ali", None)
    credentials = CredentialRepo(db)
    await credentials.save(ALI, b"kept")
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await credentials.save(ALI, b"rolled back")
            inside = await credentials.get(ALI)  # the transaction sees its own write
            assert inside is not None and inside.token_encrypted == b"rolled back"
            raise RuntimeError
    found = await credentials.get(ALI)
    assert found is not None and found.token_encrypted == b"kept"


async def test_a_known_user_writing_again_costs_no_statement(db: Database) -> None:
    users = UserRepo(db)
    await users.upsert_seen(ALI, "Ali", "ali")
    seen = await record_statements(db)
    row = await users.upsert_seen(ALI, "Ali", "ali")
    assert row.first_name == "Ali" and not seen


async def test_user_changes_reach_the_next_update(db: Database) -> None:
    users = UserRepo(db)
    await users.upsert_seen(ALI, "Ali", "ali")
    await users.set_language(ALI, "uz")
    await users.set_sender(ALI, "MyShop")
    row = await users.upsert_seen(ALI, "Ali", "ali")
    assert (row.language, row.sender) == ("uz", "MyShop")
    renamed = await users.upsert_seen(ALI, "Alisher", "ali")
    assert renamed.first_name == "Alisher"
    stored = await users.get(ALI)
    assert stored is not None and stored.first_name == "Alisher"


async def test_a_user_who_had_blocked_the_bot_is_active_again_when_they_write(
    db: Database,
) -> None:
    users = UserRepo(db)
    await users.upsert_seen(ALI, "Ali", None)
    await users.set_active(ALI, False)  # a broadcast bounced
    row = await users.upsert_seen(ALI, "Ali", None)
    stored = await users.get(ALI)
    assert row.is_active and stored is not None and stored.is_active


async def test_a_known_dialog_state_is_not_read_again(db: Database) -> None:
    storage = SQLiteStorage(db)
    assert await storage.get_state(KEY) is None
    seen = await record_statements(db)
    assert await storage.get_state(KEY) is None
    assert not seen


async def test_dialog_state_changes_are_read_back(db: Database) -> None:
    storage, other = SQLiteStorage(db), SQLiteStorage(db)
    assert await other.get_state(KEY) is None
    await storage.set_state(KEY, "SendForm:phone")
    await storage.set_data(KEY, {"phone": "+998901234567"})
    assert await other.get_state(KEY) == "SendForm:phone"
    assert await other.get_data(KEY) == {"phone": "+998901234567"}
    await storage.set_state(KEY, None)  # /cancel
    await storage.set_data(KEY, {})
    assert await other.get_state(KEY) is None and await other.get_data(KEY) == {}


async def test_a_dialog_step_in_a_rolled_back_transaction_is_forgotten(db: Database) -> None:
    storage = SQLiteStorage(db)
    await storage.set_state(KEY, "SendForm:phone")
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await storage.set_state(KEY, "SendForm:text")
            assert await storage.get_state(KEY) == "SendForm:text"
            raise RuntimeError
    assert await storage.get_state(KEY) == "SendForm:phone"


async def test_erasing_a_user_forgets_their_cached_rows(db: Database) -> None:
    users, credentials, storage = UserRepo(db), CredentialRepo(db), SQLiteStorage(db)
    await users.upsert_seen(ALI, "Ali", None)
    await users.set_language(ALI, "ru")
    await credentials.save(ALI, b"token")
    await storage.set_state(KEY, "SendForm:phone")
    # Read once each, as an update would.
    await users.upsert_seen(ALI, "Ali", None)
    await credentials.get(ALI)
    await storage.get_state(KEY)
    assert await users.delete_everything(ALI)
    assert await credentials.get(ALI) is None
    assert await storage.get_state(KEY) is None
    fresh = await users.upsert_seen(ALI, "Ali", None)
    assert fresh.language is None  # a new user: the language is asked again


async def test_the_read_connection_sees_what_is_committed(file_db: Database) -> None:
    await UserRepo(file_db).upsert_seen(ALI, "Ali", None)
    row = await file_db.read_one("SELECT first_name FROM users WHERE id = ?", (ALI,))
    assert row is not None and row["first_name"] == "Ali"
    async with file_db.transaction():
        await file_db.execute("UPDATE users SET first_name = 'Alisher' WHERE id = ?", (ALI,))
        # Inside its own transaction a task reads its own writes.
        row = await file_db.read_one("SELECT first_name FROM users WHERE id = ?", (ALI,))
        assert row is not None and row["first_name"] == "Alisher"
    row = await file_db.read_one("SELECT first_name FROM users WHERE id = ?", (ALI,))
    assert row is not None and row["first_name"] == "Alisher"


async def test_the_read_connection_does_not_wait_for_other_tasks_transactions(
    file_db: Database,
) -> None:
    await UserRepo(file_db).upsert_seen(ALI, "Ali", None)
    inside, release = asyncio.Event(), asyncio.Event()

    async def long_write() -> None:
        async with file_db.transaction():
            await file_db.execute("UPDATE users SET first_name = 'Alisher' WHERE id = ?", (ALI,))
            inside.set()
            await release.wait()

    writer = asyncio.create_task(long_write())
    await inside.wait()
    # Answered while the other transaction is open: the committed row, not the open write.
    row = await asyncio.wait_for(
        file_db.read_one("SELECT first_name FROM users WHERE id = ?", (ALI,)), timeout=10
    )
    assert row is not None and row["first_name"] == "Ali"
    release.set()
    await writer


async def test_the_read_connection_cannot_write(file_db: Database) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await file_db.read_all("DELETE FROM users")


async def test_a_users_statement_goes_before_queued_background_work(db: Database) -> None:
    await UserRepo(db).upsert_seen(ALI, "Ali", None)
    order: list[str] = []
    inside, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with db.transaction():
            inside.set()
            await release.wait()

    async def background(n: int) -> None:
        yield_to_users()  # as the balance round's workers do
        await db.execute("UPDATE users SET sender = ? WHERE id = ?", (f"bg{n}", ALI))
        order.append(f"background {n}")

    async def user() -> None:
        await db.execute("UPDATE users SET language = 'uz' WHERE id = ?", (ALI,))
        order.append("user")

    held = asyncio.create_task(holder())
    await inside.wait()
    queued = [asyncio.create_task(background(n)) for n in range(3)]
    await asyncio.sleep(0)  # the background writes queue first
    users_turn = asyncio.create_task(user())
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(held, users_turn, *queued)
    assert order == ["user", "background 0", "background 1", "background 2"]


async def test_a_cancelled_wait_does_not_keep_the_connection(db: Database) -> None:
    inside, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with db.transaction():
            inside.set()
            await release.wait()

    held = asyncio.create_task(holder())
    await inside.wait()
    waiting = asyncio.create_task(db.execute("SELECT 1"))
    await asyncio.sleep(0)
    waiting.cancel()
    release.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.wait_for(db.fetchone("SELECT 2"), timeout=10) is not None
