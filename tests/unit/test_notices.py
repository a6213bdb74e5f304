"""Events rendered by the bot's presentation (bot/notices/): the recipient's language, the real
CallbackData of the handlers that answer the buttons, admin notices in the default language."""

from __future__ import annotations

from decimal import Decimal

import pytest

from handlers.callbacks import BalanceCb, SmsCb, TokenCb
from services.broadcast import run_broadcast
from services.events import (
    AccessDecided,
    AccessRequested,
    BroadcastFinished,
    BroadcastProgress,
    BulkDeliveryResults,
    Delivery,
    DeliveryResult,
    GatewayDown,
    GatewayUp,
    LowBalance,
    Person,
    Tally,
    TokenConnected,
    TokenRejected,
    UnknownSendMissing,
)
from services.money import UZS, Money
from storage import BroadcastRepo
from tests.support.watch_env import World

USER = 42
# One fragment of each notice as the catalogue has it, by language.
EXPECTED = {
    "en": {
        "low": "⚠️ <b>Low balance: 4\u00a0000 so'm</b>",
        "balance_button": "💰 Balance",
        "token": "🔑 devsms no longer accepts your token",
        "token_button": "🔑 Connect a new token",
        "result": "✅ SMS to +998 90 123 45 67: delivered\nSMS id: 1042",
        "details": "Details",
        "missing": "❔ Your SMS to +998 90 123 45 67, whose sending was unclear",
        "bulk": "📬 <b>Bulk job #7: delivery results</b>\nDelivered: 1\u00a0200",
        "allowed": "✅ An administrator gave you access. Send /start to begin.",
        "denied": "Sorry, the administrators did not allow you to use this bot.",
    },
    "ru": {
        "low": "⚠️ <b>Низкий баланс: 4\u00a0000 сум</b>",
        "balance_button": "💰 Баланс",
        "token": "🔑 devsms больше не принимает ваш токен",
        "token_button": "🔑 Подключить новый токен",
        "result": "✅ SMS на +998 90 123 45 67: доставлено\nID SMS: 1042",
        "details": "Подробнее",
        "missing": "❔ SMS на +998 90 123 45 67, отправка которого была под вопросом",
        "bulk": "📬 <b>Рассылка #7: результаты доставки</b>\nДоставлено: 1\u00a0200",
        "allowed": "✅ Администратор открыл вам доступ. Отправьте /start, чтобы начать.",
        "denied": "Извините, администраторы не разрешили вам пользоваться этим ботом.",
    },
    "uz": {
        "low": "⚠️ <b>Balans kam qoldi: 4\u00a0000 soʻm</b>",
        "balance_button": "💰 Balans",
        "token": "🔑 devsms endi tokeningizni qabul qilmayapti",
        "token_button": "🔑 Yangi token ulash",
        "result": "✅ +998 90 123 45 67 raqamiga SMS: yetkazildi\nSMS ID: 1042",
        "details": "Batafsil",
        "missing": "❔ +998 90 123 45 67 raqamiga yuborilishi noaniq boʻlgan SMS",
        "bulk": "📬 <b>#7-ommaviy yuborish: yetkazish natijalari</b>\nYetkazildi: 1\u00a0200",
        "allowed": "✅ Administrator sizga ruxsat berdi. Boshlash uchun /start yuboring.",
        "denied": "Kechirasiz, administratorlar sizga bu botdan foydalanishga ruxsat bermadi.",
    },
}


def som(amount: int) -> Money:
    return Money(Decimal(amount), UZS)


def low_balance(person: Person) -> LowBalance:
    return LowBalance(person, som(4_000), som(5_000), sms_left=80, days_left=4)


@pytest.mark.parametrize("language", ["uz", "ru", "en"])
async def test_user_notices_speak_the_recipients_language(world: World, language: str) -> None:
    person = Person(USER, language, "Ali", None)
    expected = EXPECTED[language]
    notices = world.notices

    await notices.emit(low_balance(person))
    await notices.emit(TokenRejected(person))
    await notices.emit(DeliveryResult(person, "998901234567", "DELIVERED", 1042))
    await notices.emit(UnknownSendMissing(person, "998901234567"))
    await notices.emit(BulkDeliveryResults(person, 7, delivered=1_200, failed=3, waiting=0))
    await notices.emit(AccessDecided(person, allowed=True))
    await notices.emit(AccessDecided(person, allowed=False))

    low, token, result, missing, bulk, allowed, denied = world.notify.to(USER)
    assert low.text.startswith(expected["low"])
    assert low.buttons() == [(expected["balance_button"], BalanceCb().pack())]
    assert token.text.startswith(expected["token"])
    assert token.buttons() == [(expected["token_button"], TokenCb().pack())]
    assert result.text == expected["result"]
    assert result.buttons() == [(expected["details"], SmsCb(sms_id=1042).pack())]
    assert missing.text.startswith(expected["missing"]) and missing.buttons() == []
    assert bulk.text.startswith(expected["bulk"])
    assert (allowed.text, denied.text) == (expected["allowed"], expected["denied"])


@pytest.mark.parametrize("language", ["uz", "ru"])
async def test_admin_notices_speak_the_default_language_whatever_the_users(
    world: World, language: str
) -> None:
    person = Person(USER, language, "Ali & Vali", "ali")
    notices = world.notices

    await notices.emit(low_balance(person))
    await notices.emit(TokenRejected(person))
    await notices.emit(AccessRequested(Person(43, None, "New", None)))
    await notices.emit(TokenConnected(person))
    await notices.emit(GatewayDown(failures=5))
    await notices.emit(GatewayUp(down_for=3 * 3600 + 5 * 60 + 9))

    label = "Ali &amp; Vali (@ali, id <code>42</code>)"
    low, token, request, connected, down, up = (m.text for m in world.notify.admin)
    assert low.split("\n") == [
        f"⚠️ Low balance of {label}: 4\u00a0000 so'm",
        "Enough for about 80 SMS",
        "At the current pace it lasts about 4 more days.",
        "Alert threshold: 5\u00a0000 so'm",
    ]
    assert token == f"🔑 devsms rejected the token of {label}."
    assert request == "🙋 A new user asks for access: New (id <code>43</code>)"
    [buttons] = [m.buttons() for m in world.notify.admin if m.text == request]
    assert buttons == [("✅ Approve", "acc:43:1"), ("⛔ Deny", "acc:43:0")]
    assert connected == f"🔑 {label} connected a devsms token."
    assert down.startswith("🚨 The devsms gateway is not answering: 5 requests in a row failed.")
    assert up == "✅ The devsms gateway answers again. It was down for about 3 h 5 min."


async def test_a_status_the_bot_does_not_know_is_shown_as_the_gateway_wrote_it(
    world: World,
) -> None:
    person = Person(USER, "en", None, None)
    await world.notices.emit(DeliveryResult(person, "12345", "PART<DELIVERED>", None))

    [result] = world.notify.to(USER)
    assert result.text == "❔ SMS to 12345: PART&lt;DELIVERED&gt;"
    assert result.buttons() == []


BROADCAST = {
    "en": (
        "📣 Broadcast in progress: 3 of 5\nDelivered: 2, blocked the bot: 1, failed: 0",
        "📣 Broadcast finished. Recipients: 5\nDelivered: 3, blocked the bot: 1, failed: 1",
        "📣 Broadcast stopped by an error after 4 of 5\n"
        "Delivered: 3, blocked the bot: 1, failed: 0",
    ),
    "ru": (
        "📣 Объявление отправляется: 3 из 5\nДоставлено: 2, заблокировали бота: 1, ошибок: 0",
        "📣 Объявление разослано. Получателей: 5\nДоставлено: 3, заблокировали бота: 1, ошибок: 1",
        "📣 Отправка объявления прервана ошибкой после 4 из 5\n"
        "Доставлено: 3, заблокировали бота: 1, ошибок: 0",
    ),
    "uz": (
        "📣 Eʼlon yuborilmoqda: 5 tadan 3 tasi\nYetkazildi: 2, botni bloklagan: 1, xato: 0",
        "📣 Eʼlon yuborildi. Qabul qiluvchilar: 5\nYetkazildi: 3, botni bloklagan: 1, xato: 1",
        "📣 Eʼlon yuborish xato tufayli 5 tadan 4 tasidan keyin toʻxtadi\n"
        "Yetkazildi: 3, botni bloklagan: 1, xato: 0",
    ),
}


@pytest.mark.parametrize("language", ["uz", "ru", "en"])
async def test_a_broadcast_report_follows_the_tally_in_the_admins_language(
    world: World, language: str
) -> None:
    admin, report = 5, 77
    running, finished, stopped = BROADCAST[language]
    notices = world.notices

    await notices.emit(BroadcastProgress(admin, report, language, 5, Tally(2, 1, 0)))
    await notices.emit(BroadcastFinished(admin, report, language, 5, Tally(3, 1, 1)))
    await notices.emit(BroadcastFinished(admin, report, language, 5, Tally(3, 1, 0), True))

    # The report message is edited in place; the end also comes as a message of its own.
    assert world.notify.edits == [
        (admin, report, running),
        (admin, report, finished),
        (admin, report, stopped),
    ]
    assert [m.text for m in world.notify.to(admin)] == [finished, stopped]


async def test_a_broadcast_stopped_by_an_error_still_reports_its_end(world: World) -> None:
    class Breaks:
        """Delivers to user 1, then the bot itself fails (the database, say)."""

        async def send(self, chat_id: int, text: str) -> Delivery:
            if chat_id != 1:
                raise RuntimeError("database is locked")
            return Delivery.DELIVERED

    for user_id in (1, 2):
        await world.users.upsert_seen(user_id, f"U{user_id}", None)
    log = BroadcastRepo(world.db)
    broadcast_id = await log.create(5, "News", [1, 2], report=(5, 77), language="en")
    [row] = await log.unfinished()
    assert row.id == broadcast_id
    await run_broadcast(Breaks(), world.notices, log, row, workers=1)

    stopped = "📣 Broadcast stopped by an error after 1 of 2\n"
    tally = "Delivered: 1, blocked the bot: 0, failed: 0"
    assert world.notify.edits == [(5, 77, stopped + tally)]
    assert [m.text for m in world.notify.to(5)] == [stopped + tally]
    # Ended, stopped or not: not resumed at the next start, and its targets' rows are gone.
    assert await log.unfinished() == []
    assert await log.counts(broadcast_id) == {}
