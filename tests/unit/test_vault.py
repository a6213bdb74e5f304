"""Token encryption: round trips, key rotation, per-user binding and the key file."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from services.vault import (
    _DERIVED_KEPT,
    TokenVault,
    VaultError,
    load_or_create_key_file,
    parse_keys,
)

TOKEN = "dsms_live_6f1c2a9e0b7d4e3f"
ALI = 1001
BOB = 2002


@pytest.fixture
def old_key() -> str:
    return TokenVault.generate_key()


@pytest.fixture
def new_key() -> str:
    return TokenVault.generate_key()


def test_round_trip(old_key: str) -> None:
    vault = TokenVault([old_key])
    blob = vault.encrypt(ALI, TOKEN)
    assert TOKEN.encode() not in blob
    assert vault.decrypt(ALI, blob) == TOKEN
    # Fernet uses a fresh IV each time: equal tokens do not give equal rows.
    assert vault.encrypt(ALI, TOKEN) != blob


def test_old_key_second_in_list_still_decrypts(old_key: str, new_key: str) -> None:
    blob = TokenVault([old_key]).encrypt(ALI, TOKEN)
    assert TokenVault([new_key, old_key]).decrypt(ALI, blob) == TOKEN


def test_rotate_moves_the_blob_to_the_first_key(old_key: str, new_key: str) -> None:
    blob = TokenVault([old_key]).encrypt(ALI, TOKEN)
    rotated = TokenVault([new_key, old_key]).rotate(ALI, blob)
    assert TokenVault([new_key]).decrypt(ALI, rotated) == TOKEN
    with pytest.raises(VaultError):
        TokenVault([old_key]).decrypt(ALI, rotated)


def test_rotate_fails_cleanly_without_a_matching_key(old_key: str, new_key: str) -> None:
    blob = TokenVault([old_key]).encrypt(ALI, TOKEN)
    with pytest.raises(VaultError):
        TokenVault([new_key]).rotate(ALI, blob)


def test_blob_copied_to_another_user_does_not_decrypt(old_key: str) -> None:
    vault = TokenVault([old_key])
    blob = vault.encrypt(ALI, TOKEN)
    with pytest.raises(VaultError) as caught:
        vault.decrypt(BOB, blob)
    assert TOKEN not in str(caught.value)
    assert old_key not in str(caught.value)


def test_the_master_key_alone_does_not_decrypt(old_key: str) -> None:
    # The stored ciphertext is made with a derived key, not with the master key itself.
    blob = TokenVault([old_key]).encrypt(ALI, TOKEN)
    with pytest.raises(InvalidToken):
        Fernet(old_key.encode()).decrypt(blob)


def test_wrong_key_fails_without_leaking(old_key: str, new_key: str) -> None:
    blob = TokenVault([old_key]).encrypt(ALI, TOKEN)
    with pytest.raises(VaultError) as caught:
        TokenVault([new_key]).decrypt(ALI, blob)
    message = str(caught.value)
    assert TOKEN not in message and old_key not in message and new_key not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_tampered_blob_fails(old_key: str) -> None:
    vault = TokenVault([old_key])
    blob = bytearray(vault.encrypt(ALI, TOKEN))
    blob[-5] ^= 1
    with pytest.raises(VaultError):
        vault.decrypt(ALI, bytes(blob))
    with pytest.raises(VaultError):
        vault.decrypt(ALI, b"not a fernet token")


def test_repr_does_not_show_keys(old_key: str, new_key: str) -> None:
    vault = TokenVault([old_key, new_key])
    for text in (repr(vault), str(vault), f"{vault}"):
        assert old_key not in text and new_key not in text
        assert "2" in text


def test_vault_refuses_bad_construction(old_key: str) -> None:
    with pytest.raises(ValueError):
        TokenVault([])
    with pytest.raises(TypeError):
        TokenVault(old_key)
    with pytest.raises(ValueError, match="#2") as caught:
        TokenVault([old_key, "short"])
    assert old_key not in str(caught.value)


def test_parse_keys_splits_and_strips(old_key: str, new_key: str) -> None:
    assert parse_keys(f" {new_key} ,\n{old_key}") == [new_key, old_key]
    assert parse_keys(old_key) == [old_key]


@pytest.mark.parametrize(
    ("value", "position"),
    [
        ("{k},not-a-key", "#2"),
        ("{k},,{k}", "#2"),
        ("{k},", "#2"),
        ("{k},{k}==", "#2"),
        ("c2hvcnQ=", "#1"),  # valid base64, but only 5 bytes
        ("ключ", "#1"),
    ],
)
def test_parse_keys_names_the_bad_position_not_the_key(
    old_key: str, value: str, position: str
) -> None:
    value = value.replace("{k}", old_key)
    with pytest.raises(ValueError, match=position) as caught:
        parse_keys(value)
    assert old_key not in str(caught.value)
    assert "not-a-key" not in str(caught.value)


@pytest.mark.parametrize("value", ["", "   ", " , "])
def test_parse_keys_needs_a_key(value: str) -> None:
    with pytest.raises(ValueError):
        parse_keys(value)


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "vault.key"
    key, created = load_or_create_key_file(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    assert parse_keys(key) == [key]
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind

    again, created_again = load_or_create_key_file(path)
    assert (again, created_again) == (key, False)
    # The key it holds really works.
    vault = TokenVault([again])
    assert vault.decrypt(ALI, TokenVault([key]).encrypt(ALI, TOKEN)) == TOKEN


def test_key_file_with_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.write_text("this is not a key\n")
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match=r"vault\.key") as caught:
        load_or_create_key_file(path)
    assert "this is not a key" not in str(caught.value)
    assert path.read_text() == "this is not a key\n"  # never overwritten


def test_key_file_readable_by_others_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vault.key"
    key = TokenVault.generate_key()
    path.write_text(key)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="services.vault"):
        assert load_or_create_key_file(path) == (key, False)
    assert "chmod 600" in caplog.text
    assert key not in caplog.text


def test_keys_kept_per_user_are_bounded_and_each_user_still_decrypts_their_own(
    old_key: str,
) -> None:
    vault = TokenVault([old_key])
    users = range(1, _DERIVED_KEPT + 50)
    blobs = {user: vault.encrypt(user, f"token-{user}") for user in users}
    assert len(vault._derived) == _DERIVED_KEPT
    # The first users' keys were let go and are derived again; the others come from memory.
    assert all(vault.decrypt(user, blobs[user]) == f"token-{user}" for user in users)
    # Kept keys stay bound to their user: one user's blob does not open with another's.
    with pytest.raises(VaultError):
        vault.decrypt(2, blobs[users[-1]])
