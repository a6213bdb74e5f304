"""Re-encrypting every stored devsms token under the first ENCRYPTION_KEY.

Rotating a key: put the new key in front (``ENCRYPTION_KEY=new,old``), run :func:`rotate_all`
once, then drop the old key. Rows that no configured key decrypts are left as they are: they
were unreadable before and stay so; :meth:`Accounts.token_for` marks them invalid when the
user next needs the token, and the user is asked to connect it again.

Run it before the bot handles updates (at start-up, or with the bot stopped): a token saved
between reading and writing the rows would be overwritten with its older ciphertext (see
:meth:`CredentialRepo.replace_encrypted`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.vault import TokenVault, VaultError
from storage import CredentialRepo

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rotation:
    """Rows re-encrypted under the first key, and the users whose row no key decrypts."""

    rotated: list[tuple[int, bytes]] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)


def rotate_rows(rows: Iterable[tuple[int, bytes]], vault: TokenVault) -> Rotation:
    """Re-encrypts each (user_id, ciphertext) under the vault's first key; never raises."""
    result = Rotation()
    for user_id, blob in rows:
        try:
            result.rotated.append((user_id, vault.rotate(user_id, blob)))
        except VaultError:
            result.unreadable.append(user_id)
    return result


async def rotate_all(credentials: CredentialRepo, vault: TokenVault) -> int:
    """Re-encrypts every stored token under the first key in one transaction.

    Returns how many rows were rewritten; rows no key decrypts are left untouched and logged.
    """
    rows = await credentials.all_encrypted()
    # Key derivation and encryption of many rows is CPU work: keep it off the event loop.
    result = await asyncio.to_thread(rotate_rows, rows, vault)
    if result.unreadable:
        # User ids only: they say whom to ask to reconnect, and are no secret.
        logger.warning(
            "%s of %s stored tokens do not decrypt with any configured key (users %s); "
            "left as they are",
            len(result.unreadable),
            len(rows),
            ", ".join(str(user_id) for user_id in result.unreadable),
        )
    updated = await credentials.replace_encrypted(result.rotated)
    logger.info("key rotation: %s of %s stored tokens now use the first key", updated, len(rows))
    return updated
