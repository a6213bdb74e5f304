"""The Database wrapper and the repositories, against real SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.config import Settings
from bot.factory import open_services
from storage import (
    CredentialRepo,
    CredentialState,
    Database,
    OutboxRepo,
    OutboxState,
    SQLiteStorage,
    UserRepo,
)
from storage.db import IntegrityError, SqliteDatabase

ALI = 1001
BOB = 2002


@pytest.fixture
async def users(db: Database) -> UserRepo:
    repo = UserRepo(db)
    await repo.upsert_seen(ALI, "Ali", "ali")
    await repo.upsert_seen(BOB, "Bob", None)
    return repo


# --- Database -------------------------------------------------------------------------------


async def test_file_database_is_created_with_its_folder_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "bot.sqlite3"
    db = await Database.open(path)
    try:
        assert path.exists()
        mode = await db.fetchone("PRAGMA journal_mode")
        keys = await db.fetchone("PRAGMA foreign_keys")
        timeout = await db.fetchone("PRAGMA busy_timeout")
        sync = await db.fetchone("PRAGMA synchronous")
        assert mode is not None and keys is not None and timeout is not None and sync is not None
        # synchronous 2 = FULL: a commit survives a power cut (the outbox row before a send).
        assert (mode[0], keys[0], timeout[0], sync[0]) == ("wal", 1, 5000, 2)
    finally:
        await db.close()


async def test_the_apps_database_syncs_every_commit(settings: Settings) -> None:
    services = await open_services(settings)
    try:
        sync = await services.db.fetchone("PRAGMA synchronous")
        assert sync is not None and sync[0] == 2
    finally:
        await services.close()


async def test_transaction_rolls_back_when_the_block_raises(db: Database, users: UserRepo) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.execute("UPDATE users SET language = 'ru' WHERE id = ?", (ALI,))
            raise RuntimeError("boom")
    user = await users.get(ALI)
    assert user is not None and user.language is None
    assert not db.in_transaction
    if isinstance(db, SqliteDatabase):
        assert not db.conn.in_transaction


async def test_nested_transaction_rolls_back_only_its_own_part(
    db: Database, users: UserRepo
) -> None:
    async with db.transaction():
        await users.set_language(ALI, "uz")
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await users.set_language(BOB, "ru")
                raise RuntimeError("inner")
    ali, bob = await users.get(ALI), await users.get(BOB)
    assert ali is not None and ali.language == "uz"
    assert bob is not None and bob.language is None


async def test_other_tasks_do_not_write_into_an_open_transaction(
    db: Database, users: UserRepo
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def failing_transaction() -> None:
        async with db.transaction():
            await users.set_language(ALI, "ru")
            inside.set()
            await release.wait()
            raise RuntimeError("rolled back")

    task = asyncio.create_task(failing_transaction())
    await inside.wait()
    # While the other task's transaction is open, this write must wait for it instead of
    # joining it (and being rolled back with it).
    write = asyncio.create_task(users.set_language(BOB, "uz"))
    release.set()
    with pytest.raises(RuntimeError):
        await task
    assert await write
    ali, bob = await users.get(ALI), await users.get(BOB)
    assert ali is not None and ali.language is None
    assert bob is not None and bob.language == "uz"


async def test_a_transaction_cancelled_while_waiting_for_the_write_lock_leaves_none_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while aiosqlite's thread waits out another connection's lock: the BEGIN
    still runs there later, and a transaction left open would swallow the next lone write
    (the outbox row before a send) uncommitted and make every later transaction() fail."""
    path = tmp_path / "bot.sqlite3"
    db = await Database.open(path)
    assert isinstance(db, SqliteDatabase)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")

        async def waits() -> None:
            async with db.transaction():
                raise AssertionError("never got the lock")

        queued = asyncio.Event()
        execute = db._conn.execute

        def spy(sql: str, *args: object) -> object:
            if sql == "BEGIN IMMEDIATE":
                queued.set()  # on aiosqlite's queue once the task yields
            return execute(sql, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(db._conn, "execute", spy)
        task = asyncio.create_task(waits())
        await queued.wait()
        task.cancel()
        other.execute("ROLLBACK")  # the BEGIN, no longer awaited, now goes through
        with pytest.raises(asyncio.CancelledError):
            await task
        await UserRepo(db).upsert_seen(ALI, "Ali", "ali")  # a lone write
        assert other.execute("SELECT count(*) FROM users").fetchone() == (1,)
        async with db.transaction():
            await UserRepo(db).set_language(ALI, "ru")
        assert other.execute("SELECT language FROM users").fetchone() == ("ru",)
    finally:
        other.close()
        await db.close()


async def test_concurrent_transactions_do_not_lose_updates(db: Database, users: UserRepo) -> None:
    await db.execute("UPDATE users SET sender = '0' WHERE id = ?", (ALI,))

    async def increment() -> None:
        async with db.transaction():
            row = await db.fetchone("SELECT sender FROM users WHERE id = ?", (ALI,))
            assert row is not None
            await asyncio.sleep(0)  # give the other tasks every chance to interleave
            await db.execute(
                "UPDATE users SET sender = ? WHERE id = ?", (str(int(row[0]) + 1), ALI)
            )

    await asyncio.gather(*(increment() for _ in range(20)))
    user = await users.get(ALI)
    assert user is not None and user.sender == "20"


# --- UserRepo -------------------------------------------------------------------------------


async def test_user_upsert_keeps_language_and_updates_names(db: Database) -> None:
    repo = UserRepo(db)
    first = await repo.upsert_seen(ALI, "Ali", "ali")
    assert (first.id, first.first_name, first.username, first.language) == (
        ALI,
        "Ali",
        "ali",
        None,
    )
    assert first.is_active and first.sender is None
    assert await repo.set_language(ALI, "uz")
    assert await repo.set_sender(ALI, "MyShop")
    assert await repo.set_active(ALI, False)

    again = await repo.upsert_seen(ALI, "Alisher", None)
    assert (again.first_name, again.username) == ("Alisher", None)
    assert (again.language, again.sender) == ("uz", "MyShop")
    assert again.created_at == first.created_at
    assert again.is_active  # writing to the bot means they did not block it
    assert await repo.get(ALI) == again
    assert await repo.count() == 1


async def test_user_setters_report_missing_user(db: Database) -> None:
    repo = UserRepo(db)
    assert await repo.get(ALI) is None
    assert not await repo.set_language(ALI, "uz")
    assert not await repo.set_sender(ALI, None)
    assert not await repo.set_active(ALI, False)
    assert await repo.count() == 0


async def test_set_sender_none_restores_default(users: UserRepo) -> None:
    await users.set_sender(ALI, "MyShop")
    await users.set_sender(ALI, None)
    user = await users.get(ALI)
    assert user is not None and user.sender is None


# --- CredentialRepo -------------------------------------------------------------------------


async def test_credentials_round_trip(db: Database, users: UserRepo) -> None:
    repo = CredentialRepo(db)
    assert await repo.get(ALI) is None
    await repo.save(ALI, b"cipher-1")
    row = await repo.get(ALI)
    assert row is not None
    assert (row.user_id, row.token_encrypted, row.state) == (ALI, b"cipher-1", "valid")
    assert b"cipher" not in repr(row).encode()

    assert await repo.mark_invalid(ALI)
    row = await repo.get(ALI)
    assert row is not None and row.state is CredentialState.INVALID

    # Saving a new token makes it valid again.
    await repo.save(ALI, b"cipher-2")
    row = await repo.get(ALI)
    assert row is not None and (row.token_encrypted, row.state) == (b"cipher-2", "valid")

    assert await repo.delete(ALI)
    assert await repo.get(ALI) is None
    assert not await repo.mark_invalid(ALI)


async def test_credentials_need_a_known_user(db: Database) -> None:
    with pytest.raises(IntegrityError):
        await CredentialRepo(db).save(ALI, b"cipher")


async def test_credentials_replace_encrypted_for_rotation(db: Database, users: UserRepo) -> None:
    repo = CredentialRepo(db)
    await repo.save(ALI, b"old-a")
    await repo.save(BOB, b"old-b")
    await repo.mark_invalid(BOB)
    assert await repo.all_encrypted() == [(ALI, b"old-a"), (BOB, b"old-b")]

    updated = await repo.replace_encrypted(
        [(user_id, blob.replace(b"old", b"new")) for user_id, blob in await repo.all_encrypted()]
    )
    assert updated == 2
    assert await repo.all_encrypted() == [(ALI, b"new-a"), (BOB, b"new-b")]
    bob = await repo.get(BOB)
    assert bob is not None and bob.state is CredentialState.INVALID  # rotation keeps state


async def test_credentials_replace_is_all_or_nothing(db: Database, users: UserRepo) -> None:
    repo = CredentialRepo(db)
    await repo.save(ALI, b"old-a")
    await repo.save(BOB, b"old-b")
    with pytest.raises(IntegrityError):
        # NULL violates NOT NULL on the second row: the first must not stay replaced.
        await repo.replace_encrypted([(ALI, b"new-a"), (BOB, None)])  # type: ignore[list-item]
    assert await repo.all_encrypted() == [(ALI, b"old-a"), (BOB, b"old-b")]


# --- OutboxRepo -----------------------------------------------------------------------------


async def test_outbox_send_lifecycle(db: Database, users: UserRepo) -> None:
    repo = OutboxRepo(db)
    sms = await repo.create_pending(ALI, "998901234567", "Salom", "4546")
    row = await repo.get(sms)
    assert row is not None
    assert (row.user_id, row.phone, row.message, row.sender) == (
        ALI,
        "998901234567",
        "Salom",
        "4546",
    )
    assert row.state is OutboxState.PENDING and row.sms_id is None

    assert await repo.mark_sent(sms, 123, "uuid-1", "waiting", 1, "50")
    assert await repo.update_status(sms, "DELIVERED")
    row = await repo.get(sms)
    assert row is not None
    assert (row.state, row.sms_id, row.request_id, row.status, row.parts_count) == (
        "sent",
        123,
        "uuid-1",
        "DELIVERED",
        1,
    )
    assert row.total_cost == "50"

    # A settled send cannot be flipped by a late or repeated action.
    assert not await repo.mark_failed(sms, "late")
    assert not await repo.mark_not_sent(sms)
    row = await repo.get(sms)
    assert row is not None and row.state is OutboxState.SENT and row.error is None


async def test_outbox_pending_row_is_committed_before_the_gateway_call(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.sqlite3"
    db = await Database.open(path)
    try:
        await UserRepo(db).upsert_seen(ALI, "Ali", None)
        sms = await OutboxRepo(db).create_pending(ALI, "998901234567", "hi", None)
        # Another connection (another process after a crash) already sees it.
        with sqlite3.connect(path) as other:
            state = other.execute("SELECT state FROM outbox WHERE id = ?", (sms,)).fetchone()
        other.close()
        assert state == ("pending",)
    finally:
        await db.close()


async def test_outbox_unknown_then_reconciled(db: Database, users: UserRepo) -> None:
    repo = OutboxRepo(db)
    lost = await repo.create_pending(ALI, "998901234567", "one", None)
    went_out = await repo.create_pending(ALI, "998901234568", "two", None)
    refused = await repo.create_pending(ALI, "998901234569", "three", None)
    assert await repo.mark_unknown(lost, "timeout")
    assert await repo.mark_unknown(went_out, "connection reset")
    assert await repo.mark_failed(refused, "Balans yetarli emas")

    assert [row.id for row in await repo.open_for_user(ALI)] == [lost, went_out]
    assert await repo.open_for_user(BOB) == []

    assert await repo.mark_not_sent(lost)
    assert await repo.mark_sent(went_out, 77, None, "waiting", None, None)
    assert await repo.open_for_user(ALI) == []
    states = {row.id: (row.state, row.error) for row in await repo.recent(ALI, 10, 0)}
    assert states == {
        lost: (OutboxState.NOT_SENT, "timeout"),
        went_out: (OutboxState.SENT, None),
        refused: (OutboxState.FAILED, "Balans yetarli emas"),
    }
    # mark_unknown only applies to a send still waiting for its answer.
    assert not await repo.mark_unknown(refused, "again")


async def test_outbox_recent_pages_newest_first_per_user(db: Database, users: UserRepo) -> None:
    repo = OutboxRepo(db)
    ids = [await repo.create_pending(ALI, "998901234567", f"m{i}", None) for i in range(5)]
    await repo.create_pending(BOB, "998901234567", "bob's", None)

    first = await repo.recent(ALI, 2, 0)
    second = await repo.recent(ALI, 2, 2)
    last = await repo.recent(ALI, 2, 4)
    assert [row.id for row in first + second + last] == ids[::-1]
    assert [row.message for row in await repo.recent(BOB, 10, 0)] == ["bob's"]


async def test_outbox_get_scoped_to_user(db: Database, users: UserRepo) -> None:
    repo = OutboxRepo(db)
    sms = await repo.create_pending(ALI, "998901234567", "hi", None)
    assert await repo.get(sms, user_id=ALI) is not None
    # An id from a forged button does not reveal another user's message.
    assert await repo.get(sms, user_id=BOB) is None
    assert await repo.get(sms + 100) is None


async def test_outbox_rejects_unknown_user(db: Database) -> None:
    with pytest.raises(IntegrityError):
        await OutboxRepo(db).create_pending(ALI, "998901234567", "hi", None)


# --- delete_everything ----------------------------------------------------------------------


async def test_delete_everything_erases_one_user_only(db: Database, users: UserRepo) -> None:
    credentials, outbox, fsm = CredentialRepo(db), OutboxRepo(db), SQLiteStorage(db)
    for user_id in (ALI, BOB):
        await credentials.save(user_id, b"cipher")
        await outbox.create_pending(user_id, "998901234567", "hi", None)
        await fsm.set_state(StorageKey(bot_id=1, chat_id=user_id, user_id=user_id), "Form:x")
    # Ali in a group, and Bob in a forum thread whose id equals Ali's user id.
    ali_in_group = StorageKey(bot_id=1, chat_id=-100500, user_id=ALI)
    bob_in_thread = StorageKey(bot_id=1, chat_id=-100500, user_id=BOB, thread_id=ALI)
    await fsm.set_data(ali_in_group, {"step": 1})
    await fsm.set_data(bob_in_thread, {"step": 2})

    assert await users.delete_everything(ALI)

    assert await users.get(ALI) is None
    assert await credentials.get(ALI) is None
    assert await outbox.recent(ALI, 10, 0) == []
    assert await fsm.get_state(StorageKey(bot_id=1, chat_id=ALI, user_id=ALI)) is None
    assert await fsm.get_data(ali_in_group) == {}

    assert await users.get(BOB) is not None
    assert await credentials.get(BOB) is not None
    assert len(await outbox.recent(BOB, 10, 0)) == 1
    assert await fsm.get_state(StorageKey(bot_id=1, chat_id=BOB, user_id=BOB)) == "Form:x"
    assert await fsm.get_data(bob_in_thread) == {"step": 2}
    assert await users.count() == 1

    # Erasing again finds nothing, and says so.
    assert not await users.delete_everything(ALI)


async def test_record_check_reports_each_crossing_below_once(db: Database) -> None:
    from storage import AlertRepo

    await UserRepo(db).upsert_seen(3, "Ann", None)
    alerts = AlertRepo(db)
    seen = []
    for balance, below in [
        ("9000", False),
        ("4000", True),  # crossed
        ("3000", True),
        ("3000", True),
        ("12000", False),
        ("2000", True),  # crossed again
    ]:
        seen.append(due := await alerts.record_check(3, balance, below=below))
        if due:
            await alerts.alert_told(3)
    assert seen == [False, True, False, False, False, True]


async def test_an_alert_not_told_is_due_again_until_told(db: Database) -> None:
    from storage import AlertRepo

    await UserRepo(db).upsert_seen(3, "Ann", None)
    alerts = AlertRepo(db)
    assert await alerts.record_check(3, "4000", below=True)  # crossed; its replica died
    assert await alerts.record_check(3, "3500", below=True)  # still owed: the next check
    await alerts.alert_told(3)
    assert not await alerts.record_check(3, "3000", below=True)
    assert not await alerts.record_check(3, "12000", below=False)
    assert await alerts.record_check(3, "2000", below=True)
    assert (await alerts.get(3)).last_balance == "2000"


async def test_a_first_check_already_below_counts_as_a_crossing(db: Database) -> None:
    from storage import AlertRepo

    await UserRepo(db).upsert_seen(4, "Bob", None)
    alerts = AlertRepo(db)
    assert await alerts.record_check(4, "100", below=True)
    await alerts.alert_told(4)
    assert not await alerts.record_check(4, "90", below=True)
