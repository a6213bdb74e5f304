"""Connecting a token, the balance, language, logout: walked through the Dispatcher."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from aiogram.methods import DeleteMessage, SetMyCommands

from bot.factory import create_dispatcher
from storage.traffic import NewRecord
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data

MENU = [
    "📤 Send SMS",
    "💰 Balance",
    "📜 History",
    "🔎 Status",
    "⚙️ Settings",
    "📇 Contacts",
    "🔐 One-time code",
]


async def connect(
    app: Harness, token: str = GOOD_TOKEN, user_id: int = 1, lang: str = "en"
) -> None:
    await app.send("/start", user_id, lang)
    await app.send(token, user_id, lang)


async def test_start_asks_for_the_token_and_a_good_token_shows_balance_and_menu(
    app: Harness, devsms: FakeDevsms
) -> None:
    [greeting] = await app.send("/start")
    assert "Hello, User&lt;1&gt;!" in greeting.text  # the name is escaped
    assert "API token" in greeting.text

    token_message = app.message(text=GOOD_TOKEN)
    replies = await app.feed(message=token_message)

    deletes = app.session.of(DeleteMessage)
    assert [(d.chat_id, d.message_id) for d in deletes] == [(1, token_message.message_id)]
    connected, balance = replies
    assert "Token connected" in connected.text
    assert connected.reply_buttons() == MENU
    assert "Balance: 10\u00a0000 so'm" in balance.text
    assert "Price of one SMS: 50 so'm" in balance.text
    assert "Enough for about 200 SMS" in balance.text
    assert [label for label, _ in balance.buttons()] == ["🔄 Refresh"]
    # The gateway saw the token once, on the balance check.
    assert [r.token for r in devsms.requests] == [GOOD_TOKEN]


async def test_token_is_stored_encrypted_and_never_in_fsm(app: Harness, settings) -> None:  # type: ignore[no-untyped-def]
    await connect(app)
    raw = b"".join(p.read_bytes() for p in settings.database_path.parent.glob("bot.sqlite3*"))
    assert GOOD_TOKEN.encode() not in raw
    rows = await app.services.db.fetchall("SELECT data FROM fsm")
    assert all(GOOD_TOKEN not in row["data"] for row in rows)
    assert await app.services.accounts.token_for(1) == GOOD_TOKEN


async def test_rejected_token_keeps_the_dialog_and_stores_nothing(
    app: Harness, devsms: FakeDevsms
) -> None:
    await app.send("/start")
    [reply] = await app.send("not-a-real-token-123")
    assert "did not accept this token" in reply.text
    assert await app.services.credentials.get(1) is None
    # Still in the dialog: the next paste is checked again.
    [connected, _] = await app.send(GOOD_TOKEN)
    assert "Token connected" in connected.text


async def test_gateway_down_says_so_stores_nothing_and_lets_the_user_retry(
    app: Harness, devsms: FakeDevsms
) -> None:
    await app.send("/start")
    # The client retries a failed balance check once (DEVSMS_RETRIES=1 in tests).
    devsms.fail_next(2, status=502, body="<html>Bad Gateway</html>")
    [reply] = await app.send(GOOD_TOKEN)
    assert len(devsms.requests) == 2
    assert "not answering right now" in reply.text
    assert "nothing was stored" in reply.text
    assert await app.services.credentials.get(1) is None
    [connected, _] = await app.send(GOOD_TOKEN)
    assert "Token connected" in connected.text


async def test_malformed_token_is_deleted_and_refused_without_asking_the_gateway(
    app: Harness, devsms: FakeDevsms
) -> None:
    await app.send("/start")
    [reply] = await app.send("my token is secret")
    assert "does not look like a devsms token" in reply.text
    assert len(app.session.of(DeleteMessage)) == 1
    assert devsms.requests == []


async def test_sticker_in_the_token_dialog_gets_a_clear_answer(app: Harness) -> None:
    await app.send("/start")
    [reply] = await app.send_sticker()
    assert "send the token as a text message" in reply.text


async def test_balance_refresh_edits_in_place_and_a_second_tap_is_harmless(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    [balance] = await app.send("/balance")
    devsms.accounts[GOOD_TOKEN].balance -= 150

    [edited] = await app.tap(balance, "Refresh")
    assert edited.message_id == balance.message_id
    assert "Balance: 9\u00a0850 so'm" in edited.text
    assert app.answers()[-1].text == "Updated."

    assert await app.tap(edited, "Refresh") == []
    assert app.answers()[-1].text == "Already up to date."


async def test_menu_button_shows_balance(app: Harness) -> None:
    await connect(app)
    [balance] = await app.send("💰 Balance")
    assert "Balance: 10\u00a0000 so'm" in balance.text


async def test_usd_account_balance_is_shown_in_dollars(app: Harness, devsms: FakeDevsms) -> None:
    from decimal import Decimal

    devsms.add_account(
        "usd-token-00001", balance=Decimal("1.25"), sms_price=Decimal("0.005"), currency="USD"
    )
    await connect(app, "usd-token-00001")
    [balance] = await app.send("/balance")
    assert "Balance: $1.25" in balance.text
    assert "Price of one SMS: $0.005" in balance.text
    assert "Enough for about 250 SMS" in balance.text


async def test_without_a_token_other_commands_lead_to_connecting(app: Harness) -> None:
    for user_id, text in enumerate(("/balance", "💰 Balance", "/history", "hello"), start=7):
        [reply] = await app.send(text, user_id=user_id)
        assert "First connect your devsms token" in reply.text
    # ... and the next text is taken as the token.
    [connected, _] = await app.send(GOOD_TOKEN, user_id=10)
    assert "Token connected" in connected.text


async def test_token_command_replaces_the_token_and_a_bad_one_keeps_the_old(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    [ask] = await app.send("/token")
    assert "current one stays in use" in ask.text
    [refused] = await app.send("wrong-token-000")
    assert "did not accept" in refused.text
    assert await app.services.accounts.token_for(1) == GOOD_TOKEN
    await app.send(OTHER_TOKEN)
    assert await app.services.accounts.token_for(1) == OTHER_TOKEN
    [balance] = await app.send("/balance")
    assert "Balance: 500 so'm" in balance.text


async def test_the_same_token_again_keeps_the_record_of_traffic(app: Harness) -> None:
    """Sending the connected token again dropped the whole record of the account's traffic,
    and the history older than the backfill was lost for good."""
    await connect(app)
    traffic = app.services.traffic
    at = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
    await traffic.merge(1, [NewRecord(
        7, "req-7", "998901234567", "hi", "4546", 1, Decimal(50), "UZS", "DELIVERED", at,
    )])  # fmt: skip

    async def kept() -> int:
        day = dt.timedelta(days=1)
        return len([r async for r in traffic.iter_rows(1, at - day, at + day)])

    await app.send("/token")
    await app.send(GOOD_TOKEN)
    assert await kept() == 1
    await app.send("/token")
    await app.send(OTHER_TOKEN)  # maybe another account: its record starts afresh
    assert await kept() == 0


async def test_logout_asks_first_then_deletes_everything(app: Harness) -> None:
    await connect(app)
    [confirm] = await app.send("/logout")
    [kept] = await app.tap(confirm, "No, keep it")
    assert "Nothing was deleted" in kept.text
    assert await app.services.accounts.has_token(1)

    [confirm] = await app.send("/logout")
    replies = await app.tap(confirm, "Yes, delete everything")
    assert "all your data are deleted" in replies[0].text
    assert await app.services.credentials.get(1) is None
    # The old confirmation button, tapped again (a double tap), changes nothing and does not
    # crash: re-editing the same text is refused by Telegram as "not modified".
    again = await app.tap_data(confirm, "out:1")
    assert not [m.text for m in again if "Something went wrong" in m.text]
    [reply] = await app.send("/balance")
    assert "First connect your devsms token" in reply.text


async def test_help_lists_the_commands(app: Harness) -> None:
    [reply] = await app.send("/help")
    for command in ("/send", "/balance", "/history", "/status", "/language", "/logout", "/cancel"):
        assert command in reply.text


async def test_cancel_leaves_the_token_dialog(app: Harness, devsms: FakeDevsms) -> None:
    await app.send("/start")
    [reply] = await app.send("/cancel")
    assert "Cancelled." in reply.text
    [reply] = await app.send("/cancel")
    assert "nothing to cancel" in reply.text
    assert devsms.requests == []


async def test_unknown_command_with_a_token_points_to_help(app: Harness) -> None:
    await connect(app)
    [reply] = await app.send("/frobnicate")
    assert "/help" in reply.text


async def test_stale_button_is_answered_not_crashed(app: Harness) -> None:
    await connect(app)
    [balance] = await app.send("/balance")
    await app.tap_data(balance, "zzz:unknown")
    assert app.answers()[-1].text == "This button is no longer active."


async def test_group_messages_are_ignored(app: Harness) -> None:
    from aiogram.types import Chat

    message = app.message(text="/start").model_copy(update={"chat": Chat(id=-100, type="group")})
    assert await app.feed(message=message) == []


async def test_dialog_survives_a_restart(app: Harness, devsms: FakeDevsms) -> None:
    await app.send("/start")
    # A new Dispatcher over the same database, as after a restart of the process.
    restarted = create_dispatcher(app.services, app.shared)
    app.dp = restarted
    [connected, _] = await app.send(GOOD_TOKEN)
    assert "Token connected" in connected.text


async def test_command_menu_is_registered_in_three_languages(app: Harness) -> None:
    await app.dp.emit_startup(bot=app.bot)
    calls = app.session.of(SetMyCommands)
    by_language = {call.language_code: call.commands for call in calls}
    assert set(by_language) == {"uz", "ru", "en", None}
    assert [c.command for c in by_language["en"]][:3] == ["send", "balance", "history"]
    descriptions = {lang: by_language[lang][0].description for lang in ("uz", "ru", "en")}
    assert len(set(descriptions.values())) == 3, descriptions


async def test_greeting_follows_the_telegram_language(app: Harness) -> None:
    [ru] = await app.send("/start", user_id=21, lang="ru")
    assert "Здравствуйте" in ru.text
    [uz] = await app.send("/start", user_id=22, lang="uz")
    assert "Assalomu alaykum" in uz.text
    [en] = await app.send("/start", user_id=23, lang="de")
    assert "Hello" in en.text
    # No language from Telegram at all: DEFAULT_LANGUAGE (uz by default).
    [default] = await app.send("/start", user_id=24, lang=None)
    assert "Assalomu alaykum" in default.text


async def test_whole_connection_in_russian(app: Harness) -> None:
    await app.send("/start", lang="ru")
    connected, balance = await app.send(GOOD_TOKEN, lang="ru")
    assert "Токен подключён" in connected.text
    assert connected.reply_buttons()[1] == "💰 Баланс"
    assert "Баланс: 10\u00a0000 сум" in balance.text
    assert [label for label, _ in balance.buttons()] == ["🔄 Обновить"]


async def test_language_choice_is_kept_and_old_menu_buttons_still_work(app: Harness) -> None:
    await connect(app, lang="en")
    [picker] = await app.send("/language")
    chosen, menu = await app.tap(picker, "Oʻzbekcha")
    assert chosen.text == "Til: 🇺🇿 Oʻzbekcha"
    assert menu.reply_buttons()[1] == "💰 Balans"
    # Telegram still says "en", but the user's choice wins, also after a restart.
    app.dp = create_dispatcher(app.services, app.shared)
    [help_reply] = await app.send("/help", lang="en")
    assert "Nimalar qila olaman" in help_reply.text
    # A keyboard sent before the switch still works.
    [balance] = await app.send("💰 Balance", lang="en")
    assert "Balans: 10\u00a0000 soʻm" in balance.text


async def test_double_tap_on_a_language_is_harmless(app: Harness) -> None:
    await connect(app, lang="en")
    [picker] = await app.send("/language")
    russian = button_data(picker, "Русский")
    await app.tap_data(picker, russian)
    # The second tap of a double tap: the same language, so the same text is edited in.
    replies = await app.tap_data(picker, russian)
    assert not [m.text for m in replies if "went wrong" in m.text]
    assert app.session.chat(1)[-1].text == "Меню теперь на этом языке."


def test_no_filter_is_left_for_a_thread(app: Harness) -> None:
    """Every filter runs on the event loop (see handlers.run_sync_filters_inline)."""
    left = [
        (each.name, name, flt.callback)
        for each in app.dp.chain_tail
        for name, observer in each.observers.items()
        for handler in (observer._handler, *observer.handlers)
        for flt in handler.filters or ()
        if not flt.awaitable
    ]
    assert left == []


async def test_first_contact_settles_the_language_background_messages_will_use(
    app: Harness,
) -> None:
    await app.send("/start", user_id=31, lang="ru")
    await app.send("/start", user_id=32, lang="de")
    assert (await app.services.users.get(31)).language == "ru"  # type: ignore[union-attr]
    assert (await app.services.users.get(32)).language == "en"  # type: ignore[union-attr]
