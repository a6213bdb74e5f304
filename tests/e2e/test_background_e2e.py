"""What the bot does on its own, end to end: low-balance alerts, delivery results, and how
they cope with restarts, Telegram's flood control and users who blocked the bot."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import pytest

from tests.conftest import GOOD_TOKEN, OTHER_TOKEN
from tests.e2e.harness import (
    BotLauncher,
    ChatUser,
    connect_token,
    gateway_requests,
    messages_containing,
    wait_gateway_requests,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = pytest.mark.e2e

ADMIN_CHAT: Final = -1001234567890
BALANCE: Final = "/get_balance.php"
SEND: Final = "/send_sms.php"
PHONE: Final = "998901234567"
NBSP: Final = "\u00a0"
USER_ALERT: Final = "Low balance:"
ADMIN_ALERT: Final = "Low balance of"
# A balance round every second against a 5 000 so'm threshold. Admin notices are written in
# DEFAULT_LANGUAGE (uz unless set): English here, so the tests read the same texts as users.
WATCHING: Final = {
    "BALANCE_CHECK_INTERVAL": "1",
    "LOW_BALANCE_THRESHOLD": "5000",
    "DEFAULT_LANGUAGE": "en",
}
# Admin notices wait for the end of a short digest window: a lone one still goes out alone.
WITH_ADMINS: Final = {
    **WATCHING,
    "ADMIN_CHAT_ID": str(ADMIN_CHAT),
    "ADMIN_DIGEST_INTERVAL": "0.5",
}


async def rounds(devsms: FakeDevsms, token: str, n: int) -> None:
    """Waits for ``n`` more balance checks of the account: the watcher's next ``n`` rounds.

    Rounds run one after another, so once the n-th has asked the gateway, the n-1 before it
    have finished, their messages included.
    """
    seen = len(gateway_requests(devsms, BALANCE, token))
    await wait_gateway_requests(devsms, seen + n, path=BALANCE, token=token)


def alert_counts(telegram: FakeTelegram, user: ChatUser) -> tuple[int, int]:
    """Low-balance alerts the user and the admin group have received."""
    return (
        len(messages_containing(telegram, user.chat_id, USER_ALERT)),
        len(messages_containing(telegram, ADMIN_CHAT, ADMIN_ALERT)),
    )


def send_attempts(telegram: FakeTelegram, chat_id: int) -> int:
    return sum(call.params.get("chat_id") == chat_id for call in telegram.calls_of("sendMessage"))


async def test_low_balance_is_told_once_across_rounds_and_a_restart_and_again_after_recovery(
    bots: BotLauncher, user: ChatUser, telegram: FakeTelegram, devsms: FakeDevsms
) -> None:
    bot = await bots.started(extra_env=WITH_ADMINS)
    await telegram.wait_for_message(ADMIN_CHAT, containing="🟢 Bot started")
    await connect_token(user, GOOD_TOKEN)
    account = devsms.accounts[GOOD_TOKEN]
    assert alert_counts(telegram, user) == (0, 0)  # 10 000 so'm is above the threshold

    account.balance = Decimal(3000)
    alert = await telegram.wait_for_message(user.chat_id, containing=USER_ALERT)
    note = await telegram.wait_for_message(ADMIN_CHAT, containing=ADMIN_ALERT)
    assert f"⚠️ Low balance: 3{NBSP}000 so'm" in (alert.text or "")
    assert "Enough for about 60 SMS" in (alert.text or "")
    assert f"Alert threshold: 5{NBSP}000 so'm" in (alert.text or "")
    assert "Top up your devsms account to keep sending SMS." in (alert.text or "")
    assert alert.button_texts == ["💰 Balance"]
    assert f"Low balance of Alice (id {user.user_id}): 3{NBSP}000 so'm" in (note.text or "")

    await rounds(devsms, GOOD_TOKEN, 2)
    assert alert_counts(telegram, user) == (1, 1)

    # The "already told" mark is in the database: a new process does not repeat the alert.
    await bot.restart()
    await rounds(devsms, GOOD_TOKEN, 2)
    assert alert_counts(telegram, user) == (1, 1)
    assert len(messages_containing(telegram, ADMIN_CHAT, "🔴 Bot stopped.")) == 1
    assert len(messages_containing(telegram, ADMIN_CHAT, "🟢 Bot started")) == 2

    # Back above the threshold re-arms the alert; the next fall is told again.
    account.balance = Decimal(8000)
    await rounds(devsms, GOOD_TOKEN, 2)
    assert alert_counts(telegram, user) == (1, 1)
    account.balance = Decimal(2000)
    second = await telegram.wait_for_message(
        user.chat_id, containing=USER_ALERT, after_message_id=alert.message_id
    )
    assert f"Low balance: 2{NBSP}000 so'm" in (second.text or "")
    await telegram.wait_for(lambda: alert_counts(telegram, user)[1] == 2)
    assert alert_counts(telegram, user) == (2, 2)


async def test_rejected_sms_and_alerts_each_arrive_once_through_a_burst_of_429s(
    bots: BotLauncher, user: ChatUser, telegram: FakeTelegram, devsms: FakeDevsms
) -> None:
    delivery = {"DELIVERY_FIRST_CHECK": "0", "DELIVERY_POLL": "0.5"}
    await bots.started(extra_env={**WITH_ADMINS, **delivery})
    await telegram.wait_for_message(ADMIN_CHAT, containing="🟢 Bot started")
    await connect_token(user, GOOD_TOKEN)
    preview = await user.ask(f"/send {PHONE} Track me", "Check before sending")

    # From here on the bot only edits the preview; every sendMessage is a notice of its own,
    # and the first three of them meet flood control.
    telegram.fail_next(3, method="sendMessage", error_code=429, retry_after=1)
    devsms.accounts[GOOD_TOKEN].balance = Decimal(3000)
    # The gateway answers the send half a second late; meanwhile the SMS is rejected, so the
    # bot's first status check (due at once) already finds the final status.
    devsms.fail_next(1, path=SEND, hang=0.5)
    user.tap(preview, "✅ Send")
    [sms] = await devsms.wait_sent(1)
    devsms.set_status(sms.sms_id, "REJECTED")
    await user.wait_edited(preview, "Sent.")

    rejected = await user.reply_after(preview.message_id, "SMS to +998 90 123 45 67: rejected")
    assert (rejected.text or "").startswith("❌ ")
    assert f"SMS id: {sms.sms_id}" in (rejected.text or "")
    assert rejected.button_texts == ["Details"]
    await telegram.wait_for_message(user.chat_id, containing=USER_ALERT)
    await telegram.wait_for_message(ADMIN_CHAT, containing=ADMIN_ALERT)

    # A whole balance round and several delivery polls later, nothing came twice.
    await rounds(devsms, GOOD_TOKEN, 2)
    flood = [call for call in telegram.calls_of("sendMessage") if call.status == 429]
    assert len(flood) == 3
    assert len(messages_containing(telegram, user.chat_id, "rejected")) == 1
    assert alert_counts(telegram, user) == (1, 1)
    # The final status ended the tracking: one status request, no more.
    assert len(devsms.requests_to("/get_status.php")) == 1


async def test_user_who_blocked_the_bot_is_marked_inactive_and_no_longer_checked(
    bots: BotLauncher, user: ChatUser, telegram: FakeTelegram, devsms: FakeDevsms
) -> None:
    bot = await bots.started(extra_env=WATCHING)
    # Bob stays above the threshold: his balance checks only mark the watcher's rounds.
    bob = ChatUser(telegram, user_id=1002, first_name="Bob")
    devsms.accounts[OTHER_TOKEN].balance = Decimal(10_000)
    await connect_token(user, GOOD_TOKEN)
    await connect_token(bob, OTHER_TOKEN)
    account = devsms.accounts[GOOD_TOKEN]

    def is_active() -> list[tuple[int]]:
        return bot.query("SELECT is_active FROM users WHERE id = ?", user.user_id)

    telegram.block_user(user.user_id)
    account.balance = Decimal(3000)
    await telegram.wait_for(lambda: is_active() == [(0,)])
    refused = [
        call
        for call in telegram.calls_of("sendMessage")
        if call.params.get("chat_id") == user.chat_id and call.status == 403
    ]
    assert len(refused) == 1  # the alert that found the block, not retried
    attempts = send_attempts(telegram, user.chat_id)
    checks = len(gateway_requests(devsms, BALANCE, GOOD_TOKEN))

    # Up and down again would alert an active user; this one is neither checked nor written to.
    account.balance = Decimal(8000)
    await rounds(devsms, OTHER_TOKEN, 2)
    account.balance = Decimal(2000)
    await rounds(devsms, OTHER_TOKEN, 2)
    assert send_attempts(telegram, user.chat_id) == attempts
    assert len(gateway_requests(devsms, BALANCE, GOOD_TOKEN)) == checks
    assert messages_containing(telegram, bob.chat_id, USER_ALERT) == []

    # Writing to the bot again makes the user active, and watched, again.
    telegram.unblock_user(user.user_id)
    balance = await user.ask("/balance", "Balance:")
    assert f"Balance: 2{NBSP}000 so'm" in (balance.text or "")
    assert is_active() == [(1,)]
    await wait_gateway_requests(devsms, checks + 2, path=BALANCE, token=GOOD_TOKEN)
