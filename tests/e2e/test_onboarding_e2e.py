"""Connecting a devsms token, end to end: `python -m bot` against fake Telegram and devsms."""

from __future__ import annotations

import asyncio
import stat
from urllib.parse import urlsplit

import pytest

from services.vault import TokenVault
from tests.conftest import GOOD_TOKEN
from tests.e2e.harness import BOT_TOKEN, ENCRYPTION_KEY, BotLauncher, BotProcess, ChatUser
from tests.fakes.fake_devsms import BALANCE, FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = pytest.mark.e2e

UNKNOWN_TOKEN = "devsms-unknown-token-0009"
MENU = [
    "📤 Send SMS",
    "💰 Balance",
    "📜 History",
    "🔎 Status",
    "⚙️ Settings",
    "📇 Contacts",
    "🔐 One-time code",
]
NBSP = "\u00a0"
ADMIN_CHAT = -1001234567890
ROUND_TRIP = 0.6  # seconds to each Bot API answer, for a bot far from Telegram


def stored_tokens(bot: BotProcess) -> list[tuple[int, bytes, str]]:
    return bot.query("SELECT user_id, token_encrypted, state FROM credentials")


def assert_log_clean(bot: BotProcess) -> None:
    log = bot.log_text()
    assert "Traceback" not in log, bot.log_tail()
    assert " ERROR " not in log and " CRITICAL " not in log, bot.log_tail()


def assert_menu_registered_before_polling(telegram: FakeTelegram) -> None:
    """The command menu exists in uz, ru and en before the first update is even fetched."""
    first_poll = telegram.calls.index(telegram.calls_of("getUpdates")[0])
    registered = [call for call in telegram.calls[:first_poll] if call.method == "setMyCommands"]
    by_language = {call.params.get("language_code"): call.params for call in registered}
    assert {"uz", "ru", "en"} <= set(by_language), telegram.dump()
    first_description = {
        language: by_language[language]["commands"][0]["description"]
        for language in ("uz", "ru", "en")
    }
    assert first_description == {"uz": "SMS yuborish", "ru": "Отправить SMS", "en": "Send an SMS"}
    for language in ("uz", "ru", "en"):
        shown = telegram.commands({"type": "all_private_chats"}, language)
        assert [c["command"] for c in shown][:3] == ["send", "balance", "history"], language


async def test_a_far_telegram_costs_the_start_up_three_round_trips_and_nothing_is_dropped(
    bots: BotLauncher, user: ChatUser, telegram: FakeTelegram
) -> None:
    """A bot far from Telegram (every answer 0.6 s away) takes updates three round trips after
    its first request (the webhook check, the menu in all languages at once, getMe), not eight:
    the menu still comes before polling, and the admins still hear of the start."""
    telegram.slow_down(ROUND_TRIP)
    await bots.started(extra_env={"ADMIN_CHAT_ID": str(ADMIN_CHAT), "DEFAULT_LANGUAGE": "en"})
    first_request, first_poll = telegram.calls[0], telegram.calls_of("getUpdates")[0]
    assert first_poll.at - first_request.at < 5 * ROUND_TRIP, telegram.dump()
    assert_menu_registered_before_polling(telegram)
    await telegram.wait_for_message(ADMIN_CHAT, containing="🟢 Bot started")
    greeting = await user.ask("/start", "API token")
    assert greeting.text is not None and greeting.text.startswith("Hello, Alice!")


async def test_menu_token_balance_and_refresh_and_no_secret_leaks(
    bot: BotProcess, user: ChatUser, telegram: FakeTelegram, devsms: FakeDevsms
) -> None:
    assert_menu_registered_before_polling(telegram)
    greeting = await user.ask("/start", "API token")
    assert greeting.text is not None and greeting.text.startswith("Hello, Alice!")

    token_message = user.send(GOOD_TOKEN)
    connected = await user.reply_after(token_message, "Token connected")
    balance = await user.reply_after(connected.message_id, "Balance:")
    # The token left the chat at Telegram, not just in the bot's memory.
    assert user.message(token_message).deleted
    assert [call.params for call in telegram.calls_of("deleteMessage")] == [
        {"chat_id": user.chat_id, "message_id": token_message}
    ]
    assert connected.button_texts == MENU
    assert f"Balance: 10{NBSP}000 so'm" in (balance.text or "")
    assert "Enough for about 200 SMS" in (balance.text or "")
    assert balance.button_texts == ["🔄 Refresh"]

    # At rest: neither the database nor its WAL/shm hold the token; the row decrypts with
    # ENCRYPTION_KEY only.
    files = bot.database_files()
    assert {path.name for path in files} >= {"bot.sqlite3", "bot.sqlite3-wal"}
    for path in files:
        assert GOOD_TOKEN.encode() not in path.read_bytes(), path.name
    [(user_id, blob, state)] = stored_tokens(bot)
    assert (user_id, state) == (user.user_id, "valid")
    assert TokenVault([ENCRYPTION_KEY]).decrypt(user_id, blob) == GOOD_TOKEN
    assert not bot.key_file.exists()
    # ... and the DEBUG log holds neither the devsms token nor the bot token's secret.
    log = bot.log_text()
    assert GOOD_TOKEN not in log
    assert BOT_TOKEN.partition(":")[2] not in log

    shown = await user.ask("/balance", "Balance:")
    assert f"Balance: 10{NBSP}000 so'm" in (shown.text or "")

    devsms.accounts[GOOD_TOKEN].balance -= 150
    messages_before = len(user.bot_messages())
    first_tap = user.tap(shown, "Refresh")
    refreshed = await user.wait_edited(shown, f"Balance: 9{NBSP}850 so'm")
    assert (await user.answer_to(first_tap)).get("text") == "Updated."
    assert refreshed.message_id == shown.message_id
    assert refreshed.button_texts == ["🔄 Refresh"]

    second_tap = user.tap(refreshed, "Refresh")
    assert (await user.answer_to(second_tap)).get("text") == "Already up to date."
    assert user.message(shown.message_id).edits == 1
    assert len(user.bot_messages()) == messages_before
    assert_log_clean(bot)


async def test_token_dialog_survives_a_restart_and_a_crash_with_a_generated_key_file(
    bots: BotLauncher, user: ChatUser
) -> None:
    bot = await bots.started(encryption_key=None)
    # No ENCRYPTION_KEY: a key is generated into KEY_FILE, away from the database (a backup of
    # the data folder must not be enough to read the tokens), private, and announced.
    assert not bot.key_file.is_relative_to(bot.database_path.parent)
    assert not bot.old_key_file.exists()
    key = bot.key_file.read_text().strip()
    assert bot.key_file.stat().st_mode & 0o077 == 0
    assert "ENCRYPTION_KEY is not set" in bot.log_text()

    await user.ask("/start", "API token")
    assert await bot.stop() == 0
    assert "bot stopped" in bot.output()

    await bot.start()
    # The same key is read back, not silently replaced (that would orphan stored tokens).
    assert bot.key_file.read_text().strip() == key
    assert bot.log_text().count("ENCRYPTION_KEY is not set") == 1

    token_message = user.send(GOOD_TOKEN)
    connected = await user.reply_after(token_message, "Token connected")
    await user.reply_after(connected.message_id, "Balance:")
    assert user.message(token_message).deleted
    [(user_id, blob, _)] = stored_tokens(bot)
    assert TokenVault([key]).decrypt(user_id, blob) == GOOD_TOKEN
    # The database and the -wal/-shm files SQLite made beside it are the bot user's only.
    files = bot.database_files()
    assert {path.name for path in files} >= {"bot.sqlite3", "bot.sqlite3-wal", "bot.sqlite3-shm"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name

    # A crash (no shutdown hooks, WAL not checkpointed) loses neither the token nor the key.
    bot.kill()
    await bot.start()
    balance = await user.ask("/balance", "Balance:")
    assert f"Balance: 10{NBSP}000 so'm" in (balance.text or "")
    assert GOOD_TOKEN not in bot.log_text()
    assert_log_clean(bot)


async def test_token_the_gateway_rejects_is_refused_and_nothing_is_stored(
    bot: BotProcess, user: ChatUser, devsms: FakeDevsms
) -> None:
    await user.ask("/start", "API token")
    token_message = user.send(UNKNOWN_TOKEN)
    refused = await user.reply_after(token_message, "did not accept")
    assert user.message(token_message).deleted
    # One balance check, not retried: a 401 does not get better by asking again.
    assert [request.token for request in devsms.requests] == [UNKNOWN_TOKEN]
    assert stored_tokens(bot) == []
    assert UNKNOWN_TOKEN not in bot.log_text()

    reply = await user.ask("/balance", "First connect your devsms token")
    assert reply.message_id > refused.message_id


async def test_gateway_down_tells_the_user_and_a_later_retry_works(
    bot: BotProcess, user: ChatUser, devsms: FakeDevsms
) -> None:
    await user.ask("/start", "API token")
    port = urlsplit(devsms.url).port
    assert port is not None
    await devsms.stop()

    down = await user.ask(GOOD_TOKEN, "not answering right now")
    assert "nothing was stored" in (down.text or "")
    assert stored_tokens(bot) == []

    await devsms.start(port=port)
    connected = await user.ask(GOOD_TOKEN, "Token connected")
    await user.reply_after(connected.message_id, "Balance:")
    assert len(stored_tokens(bot)) == 1

    # Up but failing: both attempts of the balance check get a 502 page.
    # (Only /balance's calls: the first look at the new account reads the history meanwhile.)
    devsms.fail_next(2, status=502, body="<html>Bad Gateway</html>", path=BALANCE)
    failing = await user.ask("/balance", "not answering right now")
    # The token check, then the /balance attempt and its one retry (DEVSMS_RETRIES=1).
    assert len(devsms.requests_to("/get_balance.php")) == 3
    recovered = await user.ask("/balance", "Balance:")
    assert recovered.message_id > failing.message_id
    assert GOOD_TOKEN not in bot.log_text()
    assert_log_clean(bot)


def assert_one_clear_line_about_bot_token(bot: BotProcess, code: int, value: str) -> None:
    output = bot.output()
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Configuration error: BOT_TOKEN "), lines[0]
    assert lines[0].count("BOT_TOKEN") == 1, lines[0]
    assert "Traceback" not in output
    if value:
        # The value may be a real token with a typo: it is never echoed.
        assert value not in output


async def test_missing_or_malformed_bot_token_exits_with_code_2_and_one_clear_line(
    bots: BotLauncher, telegram: FakeTelegram
) -> None:
    # name: (BOT_TOKEN, the part that must not be echoed)
    cases = {
        "missing": (None, ""),
        "malformed": ("42:not a token at all", "not a token at all"),
    }
    # Side by side: each spends its few seconds importing aiogram before it can refuse.
    bots_by_case = {name: bots.new(name, bot_token=token) for name, (token, _) in cases.items()}
    codes = await asyncio.gather(*(bot.run_to_exit() for bot in bots_by_case.values()))
    for (name, bot), code in zip(bots_by_case.items(), codes, strict=True):
        assert_one_clear_line_about_bot_token(bot, code, cases[name][1])
    assert "BOT_TOKEN is not set." in bots_by_case["missing"].output()
    assert "does not look like a token" in bots_by_case["malformed"].output()
    # Nothing reached "Telegram": the configuration is checked before anything connects.
    assert telegram.calls == []


async def test_the_container_refuses_to_start_without_encryption_key(
    bots: BotLauncher, telegram: FakeTelegram
) -> None:
    # The Dockerfile sets REQUIRE_ENCRYPTION_KEY=1: no key is generated onto the data volume.
    bot = bots.new(encryption_key=None, extra_env={"REQUIRE_ENCRYPTION_KEY": "1"})
    assert await bot.run_to_exit() == 2
    lines = [line for line in bot.output().splitlines() if line.strip()]
    assert len(lines) == 1, bot.output()
    assert lines[0].startswith("Configuration error: ENCRYPTION_KEY is not set"), lines[0]
    assert "Traceback" not in bot.output()
    assert not bot.key_file.exists()
    assert not bot.old_key_file.exists()
    assert not bot.database_path.exists()
    assert telegram.calls == []
