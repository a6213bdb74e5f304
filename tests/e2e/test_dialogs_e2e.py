"""Whole dialogs in Uzbek and Russian, /settings, /templates and /logout, end to end.

One `python -m bot` serves every test of this module (each test is a user of its own, with a
devsms account of its own), so the module costs one start-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import pytest_asyncio

from tests.e2e.conftest import report_logs_of
from tests.e2e.harness import (
    BOT_TOKEN,
    BotLauncher,
    BotProcess,
    ChatUser,
    unanswered_messages,
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import ChatMessage, FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SEND: Final = "/send_sms.php"
PHONE: Final = "998901234567"
SHOWN_PHONE: Final = "+998 90 123 45 67"
NBSP: Final = "\u00a0"


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess

    def user(self, user_id: int, language: str) -> ChatUser:
        """A new user with a devsms account of their own (token ``token_of(user)``)."""
        self.devsms.add_account(token_of(user_id), balance=10_000, sms_price=50)
        return ChatUser(self.telegram, user_id=user_id, language_code=language)


def token_of(user_id: int) -> str:
    return f"devsms-dialog-token-{user_id}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("dialogs")), telegram, devsms)
    try:
        bot = await launcher.started(extra_env={"DEFAULT_LANGUAGE": "en"})
        yield World(telegram, devsms, bot)
        # Whatever the tests did, nobody was left without an answer and nothing broke.
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


def text_of(message: ChatMessage) -> str:
    return message.text or ""


def assert_all_answered(user: ChatUser) -> None:
    assert unanswered_messages(user.telegram, user.chat_id) == [], user.telegram.dump(user.chat_id)


# --- a whole dialog in the user's language ------------------------------------------------------

# What each step shows, as the catalogue says it in that language; none of it is English.
UZ: Final = {
    "greeting": "Assalomu alaykum",
    "connected": "✅ Token ulandi va shifrlangan holda saqlandi.",
    "balance": f"Balans: 10{NBSP}000 soʻm",
    "recipient": f"Qabul qiluvchi: {SHOWN_PHONE}. Endi SMS matnini yuboring.",
    "preview": "Yuborishdan oldin tekshiring",
    "send": "✅ Yuborish",
    "sending": "Yuborilmoqda…",
    "sent": "Yuborildi.",
    "history": "SMS tarixi",
    "page": "1/1-sahifa · jami 1 ta SMS",
}
RU: Final = {
    "greeting": "Здравствуйте",
    "connected": "✅ Токен подключён и сохранён в зашифрованном виде.",
    "balance": f"Баланс: 10{NBSP}000 сум",
    "recipient": f"Получатель: {SHOWN_PHONE}. Теперь отправьте текст SMS.",
    "preview": "Проверьте перед отправкой",
    "send": "✅ Отправить",
    "sending": "Отправляю…",
    "sent": "Отправлено.",
    "history": "История SMS",
    "page": "Страница 1 из 1 · всего 1 SMS",
}
# English words that would show a text left untranslated.
ENGLISH: Final = ("Hello", "Balance", "Recipient", "Check before", "Sent.", "SMS history", "Page")


async def whole_dialog(world: World, user: ChatUser, words: dict[str, str]) -> None:
    """Connect the token, send one SMS through the dialog with its preview, read the history."""
    shown: list[str] = []

    greeting = await user.ask("/start", words["greeting"])
    shown.append(text_of(greeting))
    token_message = user.send(token_of(user.user_id))
    connected = await user.reply_after(token_message, words["connected"])
    balance = await user.reply_after(connected.message_id, words["balance"])
    shown += [text_of(connected), text_of(balance)]

    asked = await user.ask("/send")
    recipient = await user.ask("+998 90 123-45-67", words["recipient"])
    text = f"Salom, {user.user_id}!"
    preview = await user.ask(text, words["preview"])
    assert text in text_of(preview)
    assert preview.button_texts[0] == words["send"]
    shown += [text_of(asked), text_of(recipient), text_of(preview)]

    tap = user.tap(preview, words["send"])
    result = await user.wait_edited(preview, words["sent"])
    assert (await user.answer_to(tap)).get("text") == words["sending"]
    [sms] = [s for s in world.devsms.sent if s.token == token_of(user.user_id)]
    assert (sms.phone, sms.message) == (PHONE, text)
    assert str(sms.sms_id) in text_of(result)
    shown.append(text_of(result))

    history = await user.ask("/history", words["history"])
    assert text in text_of(history)
    assert words["page"] in text_of(history)
    shown.append(text_of(history))

    untranslated = [(word, t) for t in shown for word in ENGLISH if word in t]
    assert untranslated == [], untranslated
    assert_all_answered(user)


async def test_a_whole_dialog_in_uzbek(world: World) -> None:
    await whole_dialog(world, world.user(2001, "uz"), UZ)


async def test_a_whole_dialog_in_russian(world: World) -> None:
    await whole_dialog(world, world.user(2002, "ru"), RU)


# --- /settings --------------------------------------------------------------------------------


async def connected_user(world: World, user_id: int) -> ChatUser:
    user = world.user(user_id, "en")
    await user.ask("/start", "API token")
    token_message = user.send(token_of(user_id))
    connected = await user.reply_after(token_message, "Token connected")
    await user.reply_after(connected.message_id, "Balance:")
    return user


async def test_settings_change_threshold_alerts_and_delivery_mode_and_refuse_bad_input(
    world: World,
) -> None:
    user = await connected_user(world, 2101)
    shown = await user.ask("/settings", "Settings")
    assert f"Low-balance alert: below 10{NBSP}000 so'm" in text_of(shown)
    assert "Delivery results: failures only" in text_of(shown)

    user.tap(shown, "Alert threshold")
    await user.reply_after(shown.message_id, "100 sms")
    for bad in ("lots", "-5", "1" * 4000):
        refused = await user.ask(bad, "Send a whole number")
        assert "Saved" not in text_of(refused)
    # Nothing changed by the refusals: the screen still shows the default.
    assert f"below 10{NBSP}000 so'm" in text_of(user.message(shown.message_id))
    saved = await user.ask("100 sms", "Saved.")
    again = await user.reply_after(saved.message_id, "Settings")
    assert "when fewer than 100 SMS are left" in text_of(again)

    user.tap(again, "Turn alerts off")
    off = await user.wait_edited(again, "Low-balance alert: off")
    user.tap(off, "Turn alerts on")
    on = await user.wait_edited(off, "when fewer than 100 SMS are left")

    current = on
    for shown_mode in ("every result", "off", "failures only"):
        user.tap(current, "Delivery results")
        current = await user.wait_edited(current, f"Delivery results: {shown_mode}")
    assert current.message_id == again.message_id  # every change edited the one screen
    rows = world.bot.query(
        "SELECT balance_alerts, threshold_unit, threshold_value, delivery_notify "
        "FROM alert_prefs WHERE user_id = ?",
        user.user_id,
    )
    assert rows == [(1, "sms", "100", "failures")]
    assert_all_answered(user)


# --- /templates -------------------------------------------------------------------------------


async def test_templates_create_use_and_delete(world: World) -> None:
    user = await connected_user(world, 2201)
    empty = await user.ask("/templates", "You have no templates yet")
    user.tap(empty, "New template")
    await user.reply_after(empty.message_id, "Send a name for the new template")
    refused = await user.ask("Bad <name>!", "A name is up to 32 letters or digits")
    assert "saved" not in text_of(refused)
    await user.ask("Hours", "Now send the text of «Hours»")
    saved = await user.ask("We are open 9-18 <daily>", "✅ Template saved.")
    assert "We are open 9-18 <daily>" in text_of(saved)  # shown as typed, not as HTML
    assert saved.button_texts[0] == "📤 Send with this text"

    user.tap(saved, "Send with this text")
    await user.reply_after(saved.message_id, "Whom to send to?")
    preview = await user.ask("+998 90 123 45 67", "Check before sending")
    assert "We are open 9-18 <daily>" in text_of(preview)
    user.tap(preview, "✅ Send")
    await user.wait_edited(preview, "Sent.")
    mine = [s for s in world.devsms.sent if s.token == token_of(user.user_id)]
    assert [(s.phone, s.message) for s in mine] == [(PHONE, "We are open 9-18 <daily>")]

    listing = await user.ask("/templates", "Your templates")
    assert listing.button_texts == ["📄 Hours", "➕ New template"]
    user.tap(listing, "Hours")
    opened = await user.wait_edited(listing, "📄 Hours")
    user.tap(opened, "Delete")
    confirm = await user.wait_edited(opened, "Delete the template «Hours»?")
    user.tap(confirm, "Yes, delete")
    await user.wait_edited(confirm, "You have no templates yet")
    assert world.bot.query("SELECT name FROM templates WHERE user_id = ?", user.user_id) == []
    assert_all_answered(user)


# --- /logout ----------------------------------------------------------------------------------


async def test_logout_keeps_everything_on_no_and_deletes_the_token_on_yes(world: World) -> None:
    user = await connected_user(world, 2301)
    confirm = await user.ask("/logout", "delete")
    user.tap(confirm, "No, keep it")
    await user.wait_edited(confirm, "Nothing was deleted")
    assert world.bot.query("SELECT user_id FROM credentials WHERE user_id = ?", 2301) == [(2301,)]

    confirm = await user.ask("/logout", "delete")
    tap = user.tap(confirm, "Yes, delete everything")
    await user.reply_after(confirm.message_id - 1, "all your data are deleted")
    await user.answer_to(tap)
    assert world.bot.query("SELECT user_id FROM credentials WHERE user_id = ?", 2301) == []
    requests_before = len(world.devsms.requests)
    reply = await user.ask("/balance", "First connect your devsms token")
    assert "Balance:" not in text_of(reply)
    assert len(world.devsms.requests) == requests_before  # no token left to ask with
    assert_all_answered(user)


# --- Telegram failing edits and callback answers ------------------------------------------------


async def test_flood_control_and_5xx_on_edits_and_callback_answers(world: World) -> None:
    telegram = world.telegram
    user = await connected_user(world, 2401)
    shown = await user.ask("/settings", "Settings")
    edits_before = len(telegram.calls_of("editMessageText"))
    answers_before = len(telegram.calls_of("answerCallbackQuery"))

    async def toggle(label: str, now: str) -> None:
        query_id = user.tap(user.message(shown.message_id), label)
        await user.wait_edited(user.message(shown.message_id), now)
        # The tap is answered after its edit: wait for that call (ok or refused), so the next
        # fault is not taken by this answer.
        await telegram.wait_for(
            lambda: any(
                call.status and call.params.get("callback_query_id") == query_id
                for call in telegram.calls_of("answerCallbackQuery")
            )
        )

    # An edit refused with a 5xx or flood control is tried again (after retry_after).
    telegram.fail_next(1, method="editMessageText", error_code=502, description="Bad Gateway")
    await toggle("Turn alerts off", "Low-balance alert: off")
    telegram.fail_next(1, method="editMessageText", error_code=429, retry_after=1)
    await toggle("Turn alerts on", "Low-balance alert: below")
    # A refused callback answer is not (Telegram forgets the query soon), and the edit after
    # it still comes: the user sees the change they made.
    telegram.fail_next(1, method="answerCallbackQuery", error_code=429, retry_after=1)
    await toggle("Turn alerts off", "Low-balance alert: off")
    telegram.fail_next(1, method="answerCallbackQuery", error_code=500, description="Oops")
    await toggle("Turn alerts on", "Low-balance alert: below")

    edits = telegram.calls_of("editMessageText")[edits_before:]
    answers = telegram.calls_of("answerCallbackQuery")[answers_before:]
    assert [c.status for c in edits] == [502, 200, 429, 200, 200, 200], edits
    assert edits[3].at - edits[2].at >= 1.0  # retry_after was honoured
    assert [c.status for c in answers] == [200, 200, 429, 500], answers
    assert [m for m in user.bot_messages() if "Something went wrong" in text_of(m)] == []
    rows = world.bot.query("SELECT balance_alerts FROM alert_prefs WHERE user_id = ?", 2401)
    assert rows == [(1,)]
    assert_all_answered(user)
