"""Encryption of the users' devsms tokens at rest.

Master keys are Fernet keys. The first one encrypts, all of them decrypt, so a key is
rotated by putting a new one in front, re-encrypting (`rotate`) and later dropping the old.
Each ciphertext is bound to its Telegram user: the Fernet key actually used is derived from
the master key and the user id (HKDF-SHA256), so a row copied onto another user's row does
not decrypt there.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

logger = logging.getLogger(__name__)

_INFO_PREFIX: Final = b"devsms-token:"
_KEY_BYTES: Final = 32
_FILE_MODE: Final = 0o600
# Users whose derived keys stay at hand (a few hundred bytes each): deriving them (HKDF and
# three key objects) was half of every token decryption, on each /balance.
_DERIVED_KEPT: Final = 1024


class VaultError(Exception):
    """A stored token cannot be decrypted (wrong key, other user's row, or tampering)."""


def _key_bytes(key: str) -> bytes:
    """The 32 raw bytes of a Fernet key; ValueError (without the key) when it is not one."""
    try:
        # Stricter than Fernet itself, which skips stray characters: a mangled copy-paste
        # should be reported, not half-accepted.
        raw = base64.b64decode(key.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("not url-safe base64") from None
    if len(raw) != _KEY_BYTES:
        raise ValueError(f"decodes to {len(raw)} bytes instead of {_KEY_BYTES}")
    return raw


def parse_keys(value: str) -> list[str]:
    """Splits a comma-separated list of Fernet keys; the first one encrypts.

    Errors name the key's position (1-based), never the key itself.
    """
    keys = [part.strip() for part in value.split(",")]
    if keys == [""]:
        raise ValueError("no encryption key given")
    for position, key in enumerate(keys, start=1):
        if not key:
            raise ValueError(f"encryption key #{position} is empty")
        try:
            _key_bytes(key)
        except ValueError as exc:
            raise ValueError(
                f"encryption key #{position} is not a Fernet key ({exc}); "
                "make one with TokenVault.generate_key()"
            ) from None
    return keys


class TokenVault:
    def __init__(self, keys: Sequence[str]) -> None:
        if isinstance(keys, str):
            # A bare string is a sequence too; it would be read character by character.
            raise TypeError("TokenVault takes a list of keys; use parse_keys() on a setting")
        if not keys:
            raise ValueError("TokenVault needs at least one key")
        masters: list[bytes] = []
        for position, key in enumerate(keys, start=1):
            try:
                masters.append(_key_bytes(key))
            except ValueError as exc:
                raise ValueError(
                    f"encryption key #{position} is not a Fernet key ({exc})"
                ) from None
        self._masters: Final = tuple(masters)
        # Keys derived from the masters per user, most recently used last. They open nothing
        # the masters, held beside them, do not; no token is kept.
        self._derived: OrderedDict[int, MultiFernet] = OrderedDict()
        self._derived_lock = threading.Lock()

    @property
    def key_count(self) -> int:
        return len(self._masters)

    def __repr__(self) -> str:
        return f"<TokenVault with {len(self._masters)} key(s)>"

    __str__ = __repr__

    @staticmethod
    def generate_key() -> str:
        # What Fernet.generate_key() returns, without loading cryptography for it.
        return base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode("ascii")

    def _fernet(self, user_id: int) -> MultiFernet:
        # Locked: key rotation runs the vault in a worker thread.
        with self._derived_lock:
            fernet = self._derived.get(user_id)
            if fernet is not None:
                self._derived.move_to_end(user_id)
                return fernet
        fernet = self._derive(user_id)
        with self._derived_lock:
            self._derived[user_id] = fernet
            if len(self._derived) > _DERIVED_KEPT:
                self._derived.popitem(last=False)
        return fernet

    def _derive(self, user_id: int) -> MultiFernet:
        # cryptography (7 MB) loads with the first token read or written, not with the bot:
        # an idle bot, or one whose users have no token yet, never needs it.
        from cryptography.fernet import Fernet, MultiFernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        info = _INFO_PREFIX + str(user_id).encode("ascii")
        return MultiFernet(
            [
                Fernet(
                    base64.urlsafe_b64encode(
                        HKDF(
                            algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=info
                        ).derive(master)
                    )
                )
                for master in self._masters
            ]
        )

    def encrypt(self, user_id: int, token: str) -> bytes:
        return self._fernet(user_id).encrypt(token.encode("utf-8"))

    def decrypt(self, user_id: int, blob: bytes) -> str:
        fernet = self._fernet(user_id)
        from cryptography.fernet import InvalidToken

        try:
            return fernet.decrypt(blob).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError, TypeError):
            raise VaultError(
                f"stored token of user {user_id} does not decrypt with the configured keys"
            ) from None

    def rotate(self, user_id: int, blob: bytes) -> bytes:
        """Re-encrypts under the first key; VaultError when no key decrypts it."""
        fernet = self._fernet(user_id)
        from cryptography.fernet import InvalidToken

        try:
            return fernet.rotate(blob)
        except (InvalidToken, TypeError):
            raise VaultError(
                f"stored token of user {user_id} does not decrypt with the configured keys"
            ) from None


def load_generated_keys(key_file: Path, old_key_file: Path) -> tuple[list[str], bool]:
    """The keys of an installation without ENCRYPTION_KEY, and whether one was just created.

    The key lives in `key_file`, created on the first run. Earlier versions generated it
    beside the database (`old_key_file`), where one backup of the data folder is enough to
    read every token: such a key is still read, so existing installs keep decrypting, and
    the operator is told to move it. While both files exist and differ, the old key stays a
    decrypting one (the start-up rotation re-encrypts its tokens under the new one).
    """
    if not key_file.exists() and old_key_file.exists():
        key = _read_key_file(old_key_file)
        logger.warning(
            "the encryption key is in %s, beside the database: a backup of that folder is "
            "enough to read every stored token. Move the file to %s (KEY_FILE) or put its "
            "key into ENCRYPTION_KEY",
            old_key_file,
            key_file,
        )
        return [key], False
    key, created = load_or_create_key_file(key_file)
    if not old_key_file.exists():
        return [key], created
    old_key = _read_key_file(old_key_file)
    logger.warning(
        "an encryption key is still in %s, beside the database: delete it once the bot "
        "runs with %s",
        old_key_file,
        key_file,
    )
    return ([key] if old_key == key else [key, old_key]), created


def load_or_create_key_file(path: Path) -> tuple[str, bool]:
    """Reads the key kept in `path`, or creates the file with a new key (mode 0600).

    Returns (key, created). The file appears complete or not at all, and two processes
    starting at once end up with the same key: the new file is written under a temporary
    name and then hard-linked into place, which fails if the other one was first.
    """
    try:
        return _read_key_file(path), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = TokenVault.generate_key()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)  # exactly 0600, whatever the umask took away
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_key_file(path), False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    logger.warning("created a new encryption key in %s: back it up", path)
    return key, True


def _read_key_file(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    try:
        _key_bytes(key)
    except ValueError as exc:
        raise ValueError(f"{path} does not hold a Fernet key ({exc})") from None
    if path.stat().st_mode & 0o077:
        logger.warning("%s is readable by other users; run: chmod 600 %s", path, path)
    return key
