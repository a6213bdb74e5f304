"""Secrets and files at rest: where the generated key lives, who may read the database files,
and the installations that must refuse to start."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from bot.__main__ import load_settings
from bot.config import Settings, default_key_file
from bot.factory import load_vault
from services.vault import TokenVault
from storage import Database, UserRepo
from tests.conftest import BOT_TOKEN, make_settings

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
TOKEN: Final = "devsms-token-of-ali"
ALI: Final = 42


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common umask 022, under which files are world-readable unless made private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def keyless_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        "http://127.0.0.1:9",
        database_path=tmp_path / "data" / "bot.sqlite3",
        encryption_key=None,
        key_file=tmp_path / "config" / "encryption.key",
    )


# --- database files ---------------------------------------------------------------------------


@pytest.mark.usefixtures("open_umask")
async def test_database_wal_and_shm_are_private_after_writes(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bot.sqlite3"
    db = await Database.open(path)
    try:
        for user_id in range(1, 20):
            await UserRepo(db).upsert_seen(user_id, "Ali", None)
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert all(file.exists() for file in files)
        assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}
        assert mode(path.parent) == 0o700
    finally:
        await db.close()


async def test_an_existing_database_is_opened_as_it_is_and_a_readable_one_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.sqlite3"
    first = await Database.open(path)
    await UserRepo(first).upsert_seen(1, "Ali", None)
    await first.close()
    path.chmod(0o644)  # as an earlier version left it under umask 022
    with caplog.at_level(logging.WARNING, logger="storage.db"):
        again = await Database.open(path)
    try:
        assert (await UserRepo(again).get(1)) is not None
    finally:
        await again.close()
    assert f"run: chmod 600 {path}*" in caplog.text
    assert mode(path) == 0o644  # the operator's to change, not silently altered


# --- where the key lives ----------------------------------------------------------------------


def test_the_default_key_file_is_in_the_users_config_folder_not_beside_the_database() -> None:
    settings = Settings(bot_token=BOT_TOKEN, _env_file=None)  # type: ignore[arg-type, call-arg]
    assert settings.key_file == default_key_file()
    assert settings.key_file == Path.home() / ".config" / "devsms-bot" / "encryption.key"
    assert not settings.key_file.resolve().is_relative_to(settings.database_path.parent.resolve())


@pytest.mark.usefixtures("open_umask")
def test_a_generated_key_goes_to_key_file_private_and_not_beside_the_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = keyless_settings(tmp_path)
    with caplog.at_level(logging.WARNING):
        vault = load_vault(settings)
    assert not settings.old_key_file.exists()
    assert not (tmp_path / "data").exists()
    key = settings.key_file.read_text().strip()
    assert mode(settings.key_file) == 0o600
    assert mode(settings.key_file.parent) == 0o700
    assert TokenVault([key]).decrypt(ALI, vault.encrypt(ALI, TOKEN)) == TOKEN
    assert "ENCRYPTION_KEY is not set: generated one into" in caplog.text
    assert key not in caplog.text
    # The next start reads the same key back.
    assert load_vault(settings).decrypt(ALI, vault.encrypt(ALI, TOKEN)) == TOKEN
    assert settings.key_file.read_text().strip() == key


def test_a_key_left_beside_the_database_is_still_read_with_a_warning_to_move_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = keyless_settings(tmp_path)
    old_key = TokenVault.generate_key()
    settings.old_key_file.parent.mkdir(parents=True)
    settings.old_key_file.write_text(old_key + "\n")
    settings.old_key_file.chmod(0o600)
    stored = TokenVault([old_key]).encrypt(ALI, TOKEN)

    with caplog.at_level(logging.WARNING):
        vault = load_vault(settings)
    assert vault.decrypt(ALI, stored) == TOKEN
    # No second key is generated: it would not decrypt what is stored.
    assert not settings.key_file.exists()
    assert "beside the database" in caplog.text
    assert f"Move the file to {settings.key_file}" in caplog.text
    assert old_key not in caplog.text


def test_a_moved_key_with_a_different_old_copy_left_behind_still_decrypts_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = keyless_settings(tmp_path)
    old_key, new_key = TokenVault.generate_key(), TokenVault.generate_key()
    for path, key in ((settings.old_key_file, old_key), (settings.key_file, new_key)):
        path.parent.mkdir(parents=True)
        path.write_text(key)
        path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        vault = load_vault(settings)
    assert vault.decrypt(ALI, TokenVault([old_key]).encrypt(ALI, TOKEN)) == TOKEN
    # The key in KEY_FILE encrypts: the start-up rotation moves old rows onto it.
    assert TokenVault([new_key]).decrypt(ALI, vault.encrypt(ALI, TOKEN)) == TOKEN
    assert "delete it" in caplog.text


# --- refusals at start-up -----------------------------------------------------------------------


def start_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str
) -> pytest.ExceptionInfo[SystemExit]:
    """`load_settings()` as `python -m bot` runs it, in an empty folder with `env`."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("BOT_TOKEN", BOT_TOKEN)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        load_settings()
    return caught


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    return lines[0]


def test_key_file_inside_the_database_folder_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key_file in ("data/encryption.key", "data/keys/bot.key"):
        caught = start_with(
            monkeypatch, tmp_path, DATABASE_PATH="data/bot.sqlite3", KEY_FILE=key_file
        )
        assert caught.value.code == 2
        line = one_line(capsys)
        assert line.startswith("Configuration error: KEY_FILE must not be inside"), line
    assert not (tmp_path / "data").exists()


def test_a_database_in_the_home_folder_starts_with_the_default_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(home)
    monkeypatch.setenv("BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("DATABASE_PATH", str(home / "bot.sqlite3"))
    settings = load_settings()
    assert settings.key_file == home / ".config" / "devsms-bot" / "encryption.key"
    # The database's own folder is still refused.
    monkeypatch.setenv("KEY_FILE", str(home / "bot.key"))
    with pytest.raises(SystemExit):
        load_settings()


def test_without_encryption_key_a_container_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    caught = start_with(monkeypatch, tmp_path, REQUIRE_ENCRYPTION_KEY="1")
    assert caught.value.code == 2
    line = one_line(capsys)
    assert line.startswith("Configuration error: ENCRYPTION_KEY is not set"), line
    assert "REQUIRE_ENCRYPTION_KEY=1" in line


def test_the_container_image_requires_the_key() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    env_lines = " ".join(
        line for line in dockerfile.replace("\\\n", " ").splitlines() if line.startswith("ENV ")
    )
    assert "REQUIRE_ENCRYPTION_KEY=1" in env_lines.split()


# --- make run's .env ----------------------------------------------------------------------------


def test_make_creates_env_private(tmp_path: Path) -> None:
    for name in ("Makefile", ".env.example"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    subprocess.run(
        ["make", "--no-print-directory", ".env"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        umask=0o022,
    )
    env_file = tmp_path / ".env"
    assert mode(env_file) == 0o600
    assert env_file.read_text() == (REPO_ROOT / ".env.example").read_text()
