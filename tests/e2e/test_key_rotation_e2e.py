"""Rotating ENCRYPTION_KEY at start-up, end to end: `python -m bot` restarted with a new key in
front re-encrypts every stored token, and afterwards runs with the new key alone."""

from __future__ import annotations

from typing import Final

import pytest

from services.vault import TokenVault, VaultError
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN
from tests.e2e.harness import ENCRYPTION_KEY, BotLauncher, BotProcess, ChatUser, connect_token
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = pytest.mark.e2e

KEY_A: Final = ENCRYPTION_KEY
# Another fixed Fernet key (urlsafe base64 of 32 bytes), so a failing run can be inspected.
KEY_B: Final = "ZTJlLXJvdGF0aW9uLWtleS1iLW5vdC1hLXNlY3JldDE="
BALANCE: Final = "/get_balance.php"


def stored(bot: BotProcess) -> dict[int, bytes]:
    return {
        user_id: bytes(blob)
        for user_id, blob in bot.query("SELECT user_id, token_encrypted FROM credentials")
    }


def readable_with(key: str, rows: dict[int, bytes]) -> dict[int, str | None]:
    """Each user's token as ``key`` alone decrypts it, None where it cannot."""
    vault = TokenVault([key])
    result: dict[int, str | None] = {}
    for user_id, blob in rows.items():
        try:
            result[user_id] = vault.decrypt(user_id, blob)
        except VaultError:
            result[user_id] = None
    return result


async def balance_uses(bot: BotProcess, user: ChatUser, devsms: FakeDevsms, token: str) -> None:
    """/balance answers, and the gateway was asked with the user's own token (after the
    start-up balance round, which asks with every token)."""
    await user.telegram.wait_for(lambda: "balance round:" in bot.output())
    before = len(devsms.requests_to(BALANCE))
    await user.ask("/balance", "Balance:")
    assert [r.token for r in devsms.requests_to(BALANCE)[before:]] == [token]


async def test_a_new_key_in_front_re_encrypts_every_token_and_then_suffices_alone(
    bots: BotLauncher, telegram: FakeTelegram, devsms: FakeDevsms
) -> None:
    bot = await bots.started(encryption_key=KEY_A)
    alice = ChatUser(telegram, user_id=1001, first_name="Alice")
    bob = ChatUser(telegram, user_id=1002, first_name="Bob")
    await connect_token(alice, GOOD_TOKEN)
    await connect_token(bob, OTHER_TOKEN)
    tokens = {alice.user_id: GOOD_TOKEN, bob.user_id: OTHER_TOKEN}
    assert readable_with(KEY_A, stored(bot)) == tokens
    assert readable_with(KEY_B, stored(bot)) == dict.fromkeys(tokens)

    # ENCRYPTION_KEY=B,A: the start-up re-encrypts under B before any update is handled.
    assert await bot.stop() == 0
    bot.encryption_key = f"{KEY_B},{KEY_A}"
    await bot.start()
    assert "key rotation: 2 of 2 stored tokens now use the first key" in bot.output()
    rotated = stored(bot)
    assert readable_with(KEY_B, rotated) == tokens
    assert readable_with(KEY_A, rotated) == dict.fromkeys(tokens)
    await balance_uses(bot, alice, devsms, GOOD_TOKEN)
    await balance_uses(bot, bob, devsms, OTHER_TOKEN)

    # The old key dropped: everything still works, and nothing needed rotating.
    assert await bot.stop() == 0
    bot.encryption_key = KEY_B
    await bot.start()
    assert "key rotation" not in bot.output()
    assert stored(bot) == rotated
    await balance_uses(bot, alice, devsms, GOOD_TOKEN)
    await balance_uses(bot, bob, devsms, OTHER_TOKEN)
    assert KEY_A not in bot.log_text() and KEY_B not in bot.log_text()
