"""`python -m bot migrate-to-postgres`: an SQLite bot's data, PostgreSQL afterwards, whole."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.__main__ import load_settings, log_secrets
from services.vault import TokenVault
from storage import BulkRepo, ContactRepo, CredentialRepo, Database, OutboxRepo, UserRepo
from storage.pg_copy import CopyError, copy_to_postgres
from tests.support.harness import BOT_TOKEN
from tests.support.services import postgres_schema
from tests.unit.test_web_settings import clean_env, refusal

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "devsms-secret-token-0001"
USERS = (5_000_000_001, 5_000_000_002, 7)  # Telegram ids beyond 32 bits


@pytest.fixture
async def target() -> AsyncIterator[str]:
    async with postgres_schema() as dsn:
        yield dsn


async def fill_sqlite(path: Path, vault: TokenVault) -> dict[str, int]:
    """A bot's database with a bit of everything; returns its row count per table."""
    db = await Database.open(path)
    try:
        users = UserRepo(db)
        for user_id in USERS:
            await users.upsert_seen(user_id, "Ali", "ali")
            await CredentialRepo(db).save(user_id, vault.encrypt(user_id, TOKEN))
        outbox = OutboxRepo(db)
        for n in range(7):
            await outbox.create_pending(USERS[0], f"99890123456{n}", f"Hello {n}", None)
        await BulkRepo(db).create_job(
            USERS[1],
            template="Hi {name}",
            sender=None,
            file_name="x.csv",
            file_format="csv",
            rows=[(n + 2, f"99890{n:07d}", f"Hi {n}", 1) for n in range(2_500)],
        )
        contacts = ContactRepo(db)
        await contacts.add(USERS[0], "Vali", "998901112233", {"city": "Toshkent"}, limit=100)
        group = await contacts.create_group(USERS[0], "Mijozlar", limit=10)
        assert group is not None
        await db.execute("INSERT INTO fsm (key, state, data) VALUES ('k', 'SendForm:text', '{}')")
        tables = await db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        counts = {}
        for table in tables:
            row = await db.fetchone(f'SELECT count(*) FROM "{table[0]}"')
            assert row is not None
            counts[str(table[0])] = int(row[0])
        return counts
    finally:
        await db.close()


async def test_everything_arrives_counted_and_the_same_key_reads_the_tokens(
    tmp_path: Path, target: str
) -> None:
    vault = TokenVault([Fernet.generate_key().decode()])
    counts = await fill_sqlite(tmp_path / "bot.sqlite3", vault)
    copied = await copy_to_postgres(tmp_path / "bot.sqlite3", target, batch=1_000)
    assert {item.table: item.rows for item in copied} == counts
    assert counts["bulk_rows"] == 2_500 and counts["outbox"] == 7

    db = await Database.open(target)
    try:
        for user_id in USERS:
            row = await CredentialRepo(db).get(user_id)
            assert row is not None and TOKEN.encode() not in row.token_encrypted
            assert vault.decrypt(user_id, row.token_encrypted) == TOKEN
        # New rows take ids after the copied ones.
        new_id = await OutboxRepo(db).create_pending(USERS[0], "998901234567", "After", None)
        assert new_id == 8
        contact = await ContactRepo(db).by_phone(USERS[0], "998901112233")
        assert contact is not None and contact.fields == {"city": "Toshkent"}
        assert await ContactRepo(db).create_group(USERS[0], "MIJOZLAR", limit=10) is None
    finally:
        await db.close()


async def test_a_database_that_has_rows_is_not_touched(tmp_path: Path, target: str) -> None:
    vault = TokenVault([Fernet.generate_key().decode()])
    await fill_sqlite(tmp_path / "bot.sqlite3", vault)
    db = await Database.open(target)
    try:
        await UserRepo(db).upsert_seen(99, "Already", None)
    finally:
        await db.close()
    with pytest.raises(CopyError, match="not empty"):
        await copy_to_postgres(tmp_path / "bot.sqlite3", target)
    db = await Database.open(target)
    try:
        rows = await db.fetchall("SELECT id FROM users")
        assert [row["id"] for row in rows] == [99]
    finally:
        await db.close()


async def test_a_missing_sqlite_file_is_said_and_creates_nothing(
    tmp_path: Path, target: str
) -> None:
    with pytest.raises(CopyError, match="no SQLite database"):
        await copy_to_postgres(tmp_path / "missing.sqlite3", target)
    assert not (tmp_path / "missing.sqlite3").exists()


def run_command(tmp_path: Path, target: str, key: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BOT_TOKEN": BOT_TOKEN,
        "DATABASE_PATH": str(tmp_path / "bot.sqlite3"),
        "DATABASE_URL": target,
        "ENCRYPTION_KEY": key,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate-to-postgres"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_command_copies_once_and_refuses_a_second_time(
    tmp_path: Path, target: str
) -> None:
    key = Fernet.generate_key().decode()
    counts = await fill_sqlite(tmp_path / "bot.sqlite3", TokenVault([key]))
    first = run_command(tmp_path, target, key)
    assert first.returncode == 0, first.stderr
    assert f"bulk_rows: {counts['bulk_rows']} rows" in first.stdout
    assert "counts match" in first.stdout
    second = run_command(tmp_path, target, key)
    assert second.returncode == 1
    assert "not empty" in second.stderr
    assert TOKEN not in first.stdout + first.stderr + second.stderr


def test_database_url_selects_postgresql_and_empty_keeps_sqlite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env(monkeypatch, tmp_path, DATABASE_URL="")
    settings = load_settings()
    assert settings.database_target == settings.database_path  # no new setting: SQLite
    url = "postgresql://bot:pa55word@db:5432/bot?search_path=bot"
    clean_env(monkeypatch, tmp_path, DATABASE_URL=url)
    settings = load_settings()
    assert settings.database_target == url
    assert "pa55word" in log_secrets(settings)  # masked in the log
    line = refusal(monkeypatch, tmp_path, capsys, DATABASE_URL="mysql://bot:pa55word@db/bot")
    assert line.startswith("Configuration error: DATABASE_URL must start with postgresql://")
    assert "pa55word" not in line
