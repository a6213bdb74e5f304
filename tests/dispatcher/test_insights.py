"""The insights in the current screens: /balance's days-left forecast, /history's filters for
every status and its search by phone number, and the /settings entries of the failure watch
and the digest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot.notices.insights import failures_seen
from services.events import FailuresSeen, Person
from storage.traffic import NewRecord
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN
from tests.fakes.fake_devsms import BALANCE, FakeDevsms
from tests.support.harness import Harness
from tests.support.recording import SentMessage


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


def spent(n: int, cost: int, *, phone: str = "998901234567", status: str = "DELIVERED",
          days_ago: float = 1) -> NewRecord:  # fmt: skip
    at = datetime.now(UTC) - timedelta(days=days_ago)
    return NewRecord(n, f"r{n}", phone, "otp", "4546", 1, Decimal(cost), "UZS", status, at)


# --- /balance ----------------------------------------------------------------------------------


async def test_balance_without_spending_says_there_is_no_forecast(app: Harness) -> None:
    await connect(app)
    [balance] = await app.send("/balance")
    assert "📅 Nothing spent lately: no forecast of the days left." in balance.text


async def test_balance_forecast_from_the_accounts_last_week(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    # 7 × 200 so'm in the last seven days, SMS sent outside the bot included: 200 a day;
    # 10 000 so'm last 50 days.
    await app.services.traffic.merge(1, [spent(n, 200, days_ago=n % 6 + 0.5) for n in range(7)])
    [balance] = await app.send("/balance")
    assert "📅 Lasts about 50 days at the pace of the last 7 days" in balance.text
    devsms.accounts[GOOD_TOKEN].balance -= 5000
    [edited] = await app.tap(balance, "Refresh")
    assert "📅 Lasts about 25 days at the pace of the last 7 days" in edited.text


async def test_balance_forecast_falls_back_to_the_gateways_own_count(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    account = devsms.accounts[GOOD_TOKEN]
    account.today_spent = Decimal(2500)
    [balance] = await app.send("/balance")
    assert "📅 Lasts about 4 days at the current pace" in balance.text


async def test_balance_reads_the_traffic_record_while_the_gateway_answers(
    app: Harness, devsms: FakeDevsms, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The days-left line does not wait for the gateway: the reply comes one gateway round trip
    # after the message, not that plus a database round trip.
    await connect(app)
    await app.services.traffic.merge(1, [spent(n, 200, days_ago=n % 6 + 0.5) for n in range(7)])
    traffic, read = app.services.traffic, asyncio.Event()
    real = traffic.spending

    async def spending(*args: Any) -> dict[str, Decimal]:
        found = await real(*args)
        read.set()
        return found

    monkeypatch.setattr(traffic, "spending", spending)
    devsms.hold(BALANCE)
    answer = asyncio.create_task(app.send("/balance"))
    await devsms.wait_held()
    await asyncio.wait_for(read.wait(), 2.0)
    devsms.release()
    [balance] = await answer
    assert "📅 Lasts about 50 days at the pace of the last 7 days" in balance.text


async def test_balance_forecast_in_russian_uses_plural_forms(app: Harness) -> None:
    await connect(app, lang="ru")
    await app.services.traffic.merge(1, [spent(n, 1000, days_ago=1) for n in range(7)])
    [balance] = await app.send("/balance", lang="ru")
    assert "📅 Хватит примерно на 10 дней" in balance.text


# --- /history: every status, and the search by phone number ----------------------------------


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


async def test_history_filters_accepted_and_undeliverable(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    accepted = devsms.sent_elsewhere(GOOD_TOKEN, "998901111111", "with the operator")
    accepted.status = "ACCEPTED"
    lost = devsms.sent_elsewhere(GOOD_TOKEN, "998902222222", "never arrived")
    lost.status = "UNDELIVERABLE"
    [page] = await app.send("/history")
    [only_accepted] = await app.tap(page, "Accepted")
    assert "· Accepted" in only_accepted.text and "with the operator" in only_accepted.text
    assert "never arrived" not in only_accepted.text
    assert "• Accepted" in labels(only_accepted)
    [only_lost] = await app.tap(only_accepted, "Undeliverable")
    assert "❌ undeliverable" in only_lost.text and "never arrived" in only_lost.text
    assert "with the operator" not in only_lost.text
    devsms.accounts[GOOD_TOKEN].sent.clear()
    [empty] = await app.tap(only_lost, "Accepted")
    assert "No SMS is with the operator now." in empty.text
    [empty_lost] = await app.tap(empty, "Undeliverable")
    assert "No undeliverable SMS." in empty_lost.text


async def test_waiting_filter_finds_what_a_newer_gateway_calls_sent(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    devsms.sent_elsewhere(GOOD_TOKEN, "998901111111", "newer gateway", status="sent")
    [page] = await app.send("/history")
    assert "⏳ waiting" in page.text  # "sent" reads as waiting
    [waiting] = await app.tap(page, "Waiting")
    assert "newer gateway" in waiting.text
    assert "• Waiting" in labels(waiting)
    statuses = [r.query.get("status") for r in devsms.requests_to("/get_history.php")]
    assert statuses[-2:] == ["waiting", "sent"]


async def test_search_by_phone_from_the_button_with_a_wrong_number_first(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await app.services.traffic.merge(
        1,
        [
            spent(1, 50, phone="998901234567", days_ago=0.1),
            spent(2, 50, phone="998907654321", days_ago=0.1),
            spent(3, 50, phone="998901234567", status="REJECTED", days_ago=0.2),
        ],
    )
    [page] = await app.send("/history")
    [ask] = await app.tap(page, "🔎 Search by phone number")
    assert "Send the phone number to look for" in ask.text
    [bad] = await app.send("12")
    assert "/cancel to stop." in bad.text
    [sticker] = await app.send_sticker()
    assert "Please send the number as a text message." in sticker.text
    [found] = await app.send("+998 90 123 45 67")
    assert "🔎 <b>SMS to +998 90 123 45 67</b>" in found.text
    assert found.text.count("otp") == 2 and "❌ rejected" in found.text
    # The dialog is over: the next number is not a search any more.
    [after] = await app.send("+998 90 123 45 67")
    assert "SMS to +998" not in after.text


async def test_history_command_with_a_number_and_with_garbage(app: Harness) -> None:
    await connect(app)
    [none] = await app.send("/history 90 765 43 21")
    assert "No SMS to this number in the record yet." in none.text
    await app.services.traffic.merge(1, [spent(7, 50, phone="998907654321", days_ago=0.1)])
    [one] = await app.send("/history +998907654321")
    assert "SMS to +998 90 765 43 21" in one.text and "otp" in one.text
    [bad] = await app.send("/history hello")
    assert "/history alone shows every SMS" in bad.text


async def test_search_can_be_cancelled(app: Harness) -> None:
    await connect(app)
    [page] = await app.send("/history")
    await app.tap(page, "🔎 Search by phone number")
    [cancelled] = await app.send("/cancel")
    assert "Cancelled." in cancelled.text
    [answer] = await app.send("+998901234567")
    assert "SMS to +998" not in answer.text


async def test_search_in_uzbek(app: Harness) -> None:
    await connect(app, lang="uz")
    [found] = await app.send("/history +998901234567", lang="uz")
    assert "🔎 <b>+998 90 123 45 67 raqamiga SMS</b>" in found.text


# --- /settings: failure watch, delivery-rate warning, digest ----------------------------------


async def open_insights(app: Harness, lang: str = "en") -> SentMessage:
    [shown] = await app.send("/settings", lang=lang)
    [insights] = await app.tap(shown, "📈", lang=lang)  # "Failure watch and digest"
    return insights


async def test_insights_settings_are_off_by_default_and_toggle(app: Harness) -> None:
    await connect(app)
    shown = await open_insights(app)
    assert "Failure watch (SMS sent outside the bot that fail): off" in shown.text
    assert "Delivery-rate warning: off" in shown.text
    assert "Digest: off" in shown.text
    assert "Times are in your time zone: Asia/Tashkent" in shown.text
    assert labels(shown) == [
        "👁 Watch failures",
        "📉 Delivery-rate warning",
        "📰 Digest: turn on daily",
    ]
    [watching] = await app.tap(shown, "👁 Watch failures")
    assert "that fail): on" in watching.text
    assert (await app.services.insights.get(1)).failure_watch
    [stopped] = await app.tap(watching, "🔕 Stop the failure watch")
    assert "that fail): off" in stopped.text
    [daily] = await app.tap(stopped, "📰 Digest: turn on daily")
    assert "Digest: daily at 09:00" in daily.text
    assert "🕘 Digest hour" in labels(daily)
    [hours] = await app.tap(daily, "🕘 Digest hour")
    assert len(labels(hours)) == 25 and labels(hours)[-1] == "↩️ Back"
    [back] = await app.tap(hours, "↩️ Back")
    assert "Digest: daily at 09:00" in back.text
    [hours] = await app.tap(back, "🕘 Digest hour")
    [chosen] = await app.tap(hours, "18:00")
    assert "Digest: daily at 18:00" in chosen.text
    assert app.answers()[-1].text == "Saved."
    [weekly] = await app.tap(chosen, "📰 Digest: make it weekly")
    assert "Digest: weekly, on Mondays at 18:00" in weekly.text
    [off] = await app.tap(weekly, "📰 Digest: turn off")
    assert "Digest: off" in off.text and "🕘 Digest hour" not in labels(off)
    assert app.session.refused == []


async def test_rate_threshold_dialog_refuses_bad_input_and_can_be_turned_off(
    app: Harness,
) -> None:
    await connect(app)
    shown = await open_insights(app)
    [ask] = await app.tap(shown, "📉 Delivery-rate warning")
    assert "Send a percentage from 1 to 100" in ask.text
    for bad in ("101", "ninety", "-5", "1e2"):
        [refused] = await app.send(bad)
        assert "Send a whole number from 0 to 100, e.g. 90." in refused.text, bad
    [sticker] = await app.send_sticker()
    assert "Please send it as a text message." in sticker.text
    assert (await app.services.insights.get(1)).rate_threshold is None
    saved, view = await app.send("90%")
    assert "Saved: a warning when fewer than 90% are delivered." in saved.text
    assert "Delivery-rate warning: below 90%" in view.text
    await app.tap(view, "📉 Delivery-rate warning")
    saved, view = await app.send("0")
    assert "Saved: no delivery-rate warning." in saved.text
    assert "Delivery-rate warning: off" in view.text
    await app.tap(view, "📉 Delivery-rate warning")
    [cancelled] = await app.send("/cancel")
    assert "Cancelled." in cancelled.text
    assert (await app.services.insights.get(1)).rate_threshold is None


async def test_insights_settings_in_russian(app: Harness) -> None:
    await connect(app, lang="ru")
    shown = await open_insights(app, lang="ru")
    assert "Контроль сбоев" in shown.text and "Сводка: выключено" in shown.text
    [watching] = await app.tap(shown, "👁 Следить за сбоями", lang="ru")
    assert "не дошедшие): включено" in watching.text


async def test_show_them_lists_the_failed_sms_of_that_notice_only(app: Harness) -> None:
    await connect(app)
    traffic = app.services.traffic
    await traffic.merge(
        1,
        [
            spent(1, 50, phone="998901234567", status="REJECTED", days_ago=0.01),
            spent(2, 50, phone="998931234567", status="UNDELIVERABLE", days_ago=0.01),
        ],
    )
    now = datetime.now(UTC)
    rows = [r async for r in traffic.iter_rows(1, now - timedelta(days=1), now)]
    await traffic.mark_failures([r.id for r in rows], 777)
    i18n = app.services.i18n
    with i18n.context(), i18n.use_locale("en"):
        text, markup = failures_seen(
            FailuresSeen(Person(1, "en", "A", None), 2, (("Beeline", 1), ("Ucell", 1)),
                         (("REJECTED", 1), ("UNDELIVERABLE", 1)), 777)
        )  # fmt: skip
    assert "2 SMS sent outside the bot failed in the last hour" in text
    assert "By operator: Beeline: 1 · Ucell: 1" in text
    assert "By status: ❌ rejected: 1 · ❌ undeliverable: 1" in text
    await app.bot.send_message(1, text, reply_markup=markup)  # as the notifier would
    notice = app.last(1)
    [listed] = await app.tap(notice, "👀 Show them")
    assert "The SMS that failed" in listed.text
    assert "+998 90 123 45 67" in listed.text and "+998 93 123 45 67" in listed.text
    await traffic.mark_failures([r.id for r in rows], 778)
    assert await app.tap(notice, "👀 Show them") == []
    assert app.answers()[-1].text == "These SMS are no longer in the record."


async def test_insights_settings_show_the_users_own_zone(app: Harness) -> None:
    await connect(app)
    await app.services.users.set_timezone(1, "Europe/Moscow")
    shown = await open_insights(app)
    assert "Times are in your time zone: Europe/Moscow" in shown.text


async def test_a_new_token_or_logout_drops_the_accounts_record(app: Harness) -> None:
    await connect(app)
    traffic = app.services.traffic
    await traffic.merge(1, [spent(1, 50, days_ago=0.1)])
    await traffic.record_balance(1, Decimal(100), "UZS")
    await app.send("/token")
    await app.send(OTHER_TOKEN)
    assert await traffic.latest_balance(1) is None
    now = datetime.now(UTC)
    assert [r async for r in traffic.iter_rows(1, now - timedelta(days=1), now)] == []
    await traffic.merge(1, [spent(2, 50, days_ago=0.1)])
    await app.services.insights.set_failure_watch(1, True)
    [confirm] = await app.send("/logout")
    await app.tap(confirm, "Yes, delete everything")
    assert [r async for r in traffic.iter_rows(1, now - timedelta(days=1), now)] == []
    assert not (await app.services.insights.get(1)).failure_watch


async def test_balance_answer_without_price_or_statistics_shows_dashes(
    app: Harness, devsms: FakeDevsms
) -> None:
    # Found by the fuzz test: a count the gateway leaves out went into ngettext as None and
    # /balance answered "something went wrong".
    await connect(app)
    devsms.fail_next(
        status=200,
        body='{"success": true, "data": {"balance": 5000, "statistics": {}}}',
        path=BALANCE,
    )
    [balance] = await app.send("/balance")
    assert "💰 <b>Balance: 5\xa0000 so'm</b>" in balance.text
    assert "Enough for about — SMS" in balance.text
    assert "Today: — SMS" in balance.text
