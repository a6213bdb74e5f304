"""Each user's devsms token, stored only as ciphertext (see services/vault.py)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from storage.cache import MISSING, RowCache
from storage.db import Database, utc_now

logger = logging.getLogger(__name__)

# The stored row (ciphertext and state, never a decrypted token) of the users writing now:
# /balance, /send and the bulk runner's check before every row read it (storage/cache.py).
CREDENTIAL_CACHE: Final = "credentials"
CREDENTIAL_CACHE_SIZE: Final = 10_000


class CredentialState(StrEnum):
    VALID = "valid"
    INVALID = "invalid"  # the gateway rejected it, or it no longer decrypts


@dataclass(frozen=True, slots=True)
class CredentialRow:
    user_id: int
    token_encrypted: bytes
    state: CredentialState
    updated_at: str | None

    def __repr__(self) -> str:
        # Ciphertext is not secret, but it has no business in logs and tracebacks either.
        return (
            f"CredentialRow(user_id={self.user_id}, state={self.state.value!r}, "
            f"updated_at={self.updated_at!r})"
        )

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CredentialRow:
        return cls(
            user_id=row["user_id"],
            token_encrypted=bytes(row["token_encrypted"]),
            state=CredentialState(row["state"]),
            updated_at=row["updated_at"],
        )


def forget_credentials(db: Database, user_id: int) -> None:
    """For writes to the table made elsewhere (erasing a user)."""
    _cache(db).drop(user_id)


def _cache(db: Database) -> RowCache[int, CredentialRow | None]:
    return db.cache(CREDENTIAL_CACHE, CREDENTIAL_CACHE_SIZE)


class CredentialRepo:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache = _cache(db)

    async def save(self, user_id: int, token_encrypted: bytes) -> None:
        """Stores (or replaces) the user's token as valid. The user row must exist."""
        now = utc_now()
        await self._db.execute(
            "INSERT INTO credentials (user_id, token_encrypted, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET token_encrypted = excluded.token_encrypted, "
            "state = excluded.state, updated_at = excluded.updated_at",
            (user_id, token_encrypted, CredentialState.VALID.value, now, now),
        )
        self._cache.drop(user_id)

    async def get(self, user_id: int) -> CredentialRow | None:
        cached = self._cache.get(user_id)
        if cached is not MISSING:
            return cached
        row = await self._db.fetchone(
            "SELECT user_id, token_encrypted, state, updated_at FROM credentials "
            "WHERE user_id = ?",
            (user_id,),
        )
        found = None if row is None else CredentialRow.from_row(row)
        if not self._db.in_transaction:
            self._cache.put(user_id, found)
        return found

    async def mark_invalid(self, user_id: int) -> bool:
        """Returns False when the user has no stored token."""
        changed = await self._db.execute(
            "UPDATE credentials SET state = ?, updated_at = ? WHERE user_id = ?",
            (CredentialState.INVALID.value, utc_now(), user_id),
        )
        self._cache.drop(user_id)
        return changed > 0

    async def delete(self, user_id: int) -> bool:
        changed = await self._db.execute("DELETE FROM credentials WHERE user_id = ?", (user_id,))
        self._cache.drop(user_id)
        return changed > 0

    async def all_encrypted(self) -> list[tuple[int, bytes]]:
        """Every (user_id, ciphertext), for re-encrypting under a new key."""
        rows = await self._db.fetchall(
            "SELECT user_id, token_encrypted FROM credentials ORDER BY user_id"
        )
        return [(row["user_id"], bytes(row["token_encrypted"])) for row in rows]

    async def replace_encrypted(self, rows: Iterable[tuple[int, bytes]]) -> int:
        """Writes re-encrypted ciphertexts in one transaction; returns how many were updated.

        Run the rotation before the bot starts handling updates: a token saved between
        `all_encrypted()` and this call would be overwritten by the old one. `updated_at`
        is kept because the token itself did not change.
        """
        updated = 0
        async with self._db.transaction():
            for user_id, token_encrypted in rows:
                updated += await self._db.execute(
                    "UPDATE credentials SET token_encrypted = ? WHERE user_id = ?",
                    (token_encrypted, user_id),
                )
                self._cache.drop(user_id)
        logger.info("re-encrypted %s stored tokens", updated)
        return updated
