"""The send dialog as a user walks it: every branch, double taps, gateway failures."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery
from yarl import URL

from storage import OutboxRow
from tests.conftest import GOOD_TOKEN
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.recording import SentMessage

SEND = "/send_sms.php"


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


async def preview_for(app: Harness, phone: str, text: str) -> SentMessage:
    await app.send("/send")
    await app.send(phone)
    [preview] = await app.send(text)
    return preview


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


async def test_dialog_previews_then_sends_exactly_one_sms(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    [ask] = await app.send("/send")
    assert "Whom to send to?" in ask.text
    assert "📱 My own number" in ask.reply_buttons()
    [ask_text] = await app.send("+998 90 123-45-67")
    assert "+998 90 123 45 67" in ask_text.text
    [preview] = await app.send("Hello & <welcome>")

    assert "To: +998 90 123 45 67" in preview.text
    assert "From: 4546" in preview.text
    assert "Hello &amp; &lt;welcome&gt;" in preview.text  # shown as typed
    assert "GSM-7 · characters: 17 · parts: 1" in preview.text
    assert "Cost: 1 × 50 so'm = 50 so'm" in preview.text
    assert "Balance after sending: 9\u00a0950 so'm" in preview.text
    assert labels(preview) == [
        "✅ Send",
        "🕒 Send later",
        "✏️ Change text",
        "📞 Change number",
        "✖️ Cancel",
    ]
    assert devsms.sent == []  # nothing leaves without the tap

    [result] = await app.tap(preview, "Send")
    assert [(s.phone, s.message, s.sender) for s in devsms.sent] == [
        ("998901234567", "Hello & <welcome>", "4546")
    ]
    assert result.message_id == preview.message_id
    assert "✅ <b>Sent.</b>" in result.text
    assert f"SMS id: {devsms.sent[0].sms_id} · status: ⏳ waiting" in result.text
    assert f"Request id: <code>{devsms.sent[0].request_id}</code>" in result.text
    assert "Balance: 9\u00a0950 so'm" in result.text
    assert labels(result) == ["🔄 Refresh status"]
    [row] = await app.services.outbox.recent(1, 10)
    assert (row.state, row.sms_id, row.phone) == ("sent", devsms.sent[0].sms_id, "998901234567")


async def test_second_tap_and_concurrent_taps_send_once(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Once only")
    send = button_data(preview, "Send")
    # "same": one update delivered twice; Telegram refuses the second answer to its query.
    replies = await asyncio.gather(
        app.tap_data(preview, send, query_id="same"),
        app.tap_data(preview, send, query_id="same"),
        app.tap_data(preview, send),
    )
    await app.tap_data(preview, send)
    assert len(devsms.requests_to(SEND)) == 1
    assert not [m.text for batch in replies for m in batch if "went wrong" in m.text]
    assert "This preview is no longer active." in [a.text for a in app.answers()]


async def test_quick_form_goes_straight_to_the_preview(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    [preview] = await app.send("/send 998901234567 Some text")
    assert "To: +998 90 123 45 67" in preview.text
    assert "Some text" in preview.text
    await app.tap(preview, "Send")
    assert [s.message for s in devsms.sent] == ["Some text"]


async def test_quick_form_with_only_a_number_asks_for_the_text(app: Harness) -> None:
    await connect(app)
    [reply] = await app.send("/send +998 90 123 45 67")
    assert "Now send the text" in reply.text


async def test_bad_numbers_get_an_example_and_the_step_stays(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await app.send("/send")
    for bad, reason in [
        ("hello", "not a phone number"),
        ("12345", "too short"),
        ("+998 90 123 45 67 89 00", "too long"),
    ]:
        [reply] = await app.send(bad)
        assert reason in reply.text, (bad, reply.text)
        assert "Example: +998 90 123 45 67" in reply.text
    [reply] = await app.send_sticker()
    assert "Send the phone number as text" in reply.text
    [reply] = await app.send("(90) 1234567")
    assert "Now send the text" in reply.text
    assert devsms.requests_to(SEND) == []


async def test_shared_contact_and_reply_to_contact(app: Harness) -> None:
    await connect(app)
    await app.send("/send")
    [reply] = await app.send_contact("998935554433")
    assert "+998 93 555 44 33" in reply.text

    contact = app.message(contact={"phone_number": "+998 97 111 22 33", "first_name": "Ali"})
    reply_to_contact = app.message(text="/send", reply_to_message=contact)
    [reply] = await app.feed(message=reply_to_contact)
    assert "+998 97 111 22 33" in reply.text


async def test_foreign_number_is_accepted_and_said_in_the_preview(app: Harness) -> None:
    await connect(app)
    preview = await preview_for(app, "+7 916 123-45-67", "Privet")
    assert "To: +7 916 123-45-67" in preview.text
    assert "outside Uzbekistan" in preview.text


async def test_non_text_at_the_text_step(app: Harness) -> None:
    await connect(app)
    await app.send("/send")
    await app.send("901234567")
    [reply] = await app.send_sticker()
    assert "Only text can go by SMS" in reply.text
    [reply] = await app.send("   ")
    assert "cannot be empty" in reply.text


async def test_too_many_parts_is_refused_with_the_count(app: Harness) -> None:
    await connect(app)
    await app.send("/send")
    await app.send("901234567")
    [reply] = await app.send("x" * (153 * 10 + 1))
    assert "needs 11 SMS parts; at most 10" in reply.text


async def test_menu_button_at_the_text_step_is_not_taken_as_sms_text(app: Harness) -> None:
    await connect(app)
    await app.send("/send")
    await app.send("901234567")
    [balance] = await app.send("💰 Balance")
    assert "Balance: 10\u00a0000 so'm" in balance.text
    [preview] = await app.send("Real text")
    assert "Real text" in preview.text


async def test_uzbek_apostrophe_is_named_and_cheaper_spelling_is_offered_not_forced(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    text = "Hurmatli mijoz, buyurtmangiz tayyor. Doʻkonimizga kelib olib ketishingiz mumkin."
    preview = await preview_for(app, "901234567", text)
    assert "UCS-2" in preview.text
    assert "parts: 2" in preview.text
    assert "ʻ (U+02BB)" in preview.text
    assert "1 part instead of 2" in preview.text
    assert "🪶 Cheaper spelling" in labels(preview)

    [cheaper] = await app.tap(preview, "Cheaper spelling")
    assert cheaper.message_id == preview.message_id
    assert "GSM-7" in cheaper.text and "parts: 1" in cheaper.text
    assert "Do'konimizga" in cheaper.text
    await app.tap(cheaper, "✅ Send")
    assert [s.message for s in devsms.sent] == [text.replace("ʻ", "'")]


async def test_cyrillic_is_ucs2_without_a_cheaper_offer(app: Harness) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Здравствуйте")
    assert "UCS-2" in preview.text
    assert "🪶 Cheaper spelling" not in labels(preview)


async def test_not_enough_balance_warns_and_offers_no_send_button(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    devsms.accounts[GOOD_TOKEN].balance = Decimal(60)
    await app.services.accounts.forget_balance(1)
    preview = await preview_for(app, "901234567", "x" * 200)  # 2 parts = 100 so'm
    assert "Not enough balance: 40 so'm more is needed" in preview.text
    assert "✅ Send" not in labels(preview)


async def test_gateway_refusal_is_quoted_and_nothing_is_retried(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Hi")
    devsms.fail_next(
        1, status=400, body='{"success": false, "error": "Yuboruvchi <nomi> yo\'q"}', path=SEND
    )
    [result] = await app.tap(preview, "Send")
    assert "refused this SMS. Nothing was sent or charged." in result.text
    assert "«Yuboruvchi &lt;nomi&gt; yo'q»" in result.text
    assert len(devsms.requests_to(SEND)) == 1
    [row] = await app.services.outbox.recent(1, 10)
    assert row.state == "failed"


async def test_slow_gateway_is_reported_unknown_and_never_resent(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Maybe")
    devsms.fail_next(1, path=SEND, hang=5)  # the client gives up after 2 s
    send = button_data(preview, "Send")
    [result] = await app.tap_data(preview, send)
    assert "did not answer in time" in result.text
    assert "may or may not have gone out" in result.text
    await app.tap_data(preview, send)
    assert len(devsms.requests_to(SEND)) == 1
    assert len(devsms.sent) == 1  # it did go out: the gateway got it, answered too late
    [row] = await app.services.outbox.recent(1, 10)
    assert row.state == "unknown"


async def test_unreachable_gateway_sends_nothing_and_offers_the_draft_again(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Later")
    await devsms.stop()
    result, again = await app.tap(preview, "Send")
    assert "<b>not</b> sent" in result.text
    assert "Later" in again.text and "✅ Send" in labels(again)
    [row] = await app.services.outbox.recent(1, 10)
    assert row.state == "failed"


async def test_the_draft_comes_back_even_when_the_balance_cannot_be_read_either(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Later")
    await app.services.accounts.forget_balance(1)  # the preview's balance is too old to reuse
    port = URL(devsms.url).port
    await devsms.stop()
    result, again = await app.tap(preview, "Send")
    assert "<b>not</b> sent" in result.text
    # The price is unknown now, but the draft is back with its Send button.
    assert "Later" in again.text and "✅ Send" in labels(again)
    await devsms.start(port=port or 0)
    replies = await app.tap(again, "Send")
    assert any("Sent." in m.text for m in replies), [m.text for m in replies]
    assert [sms.message for sms in devsms.sent] == ["Later"]


async def test_cancel_at_every_step_sends_nothing(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    await app.send("/send")
    [reply] = await app.send("✖️ Cancel")
    assert "Nothing was sent" in reply.text
    await app.send("/send")
    await app.send("901234567")
    [reply] = await app.send("/cancel")
    assert "Cancelled." in reply.text
    preview = await preview_for(app, "901234567", "No")
    [cancelled] = await app.tap(preview, "✖️ Cancel")
    assert "Cancelled. Nothing was sent." in cancelled.text
    assert cancelled.buttons() == []
    assert devsms.requests_to(SEND) == []


async def test_change_text_and_number_from_the_preview(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "First")
    first_send = button_data(preview, "Send")
    *_, ask = await app.tap(preview, "Change text")
    assert "new text" in ask.text
    [second] = await app.send("Second")
    assert "Second" in second.text and "+998 90 123 45 67" in second.text
    await app.tap(second, "Change number")
    [third] = await app.send("+998 93 555 44 33")
    assert "To: +998 93 555 44 33" in third.text and "Second" in third.text
    # The first preview's buttons are dead now.
    await app.tap_data(preview, first_send)
    assert devsms.requests_to(SEND) == []
    await app.tap(third, "✅ Send")
    assert [(s.phone, s.message) for s in devsms.sent] == [("998935554433", "Second")]


async def test_preview_of_a_hostile_long_text_stays_under_telegrams_limit(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    text = "&<>" * 510  # 1530 GSM characters = 10 parts; 6630 characters once escaped
    preview = await preview_for(app, "901234567", text)
    assert len(preview.text) <= 4096
    assert "parts: 10" in preview.text
    [result] = await app.tap(preview, "✅ Send")
    assert [s.message for s in devsms.sent] == [text]  # the full text went, not the cut one
    assert len(result.text) <= 4096


async def test_own_sender_from_settings_is_used(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    [settings] = await app.send("/settings")
    assert "Sender: 4546 (default)" in settings.text
    await app.tap(settings, "Change sender")
    [reply] = await app.send("not a valid sender name")
    assert "A sender is 3–15 digits" in reply.text
    saved, shown = await app.send("MyShop")
    assert "MyShop" in saved.text and "Sender: MyShop" in shown.text
    preview = await preview_for(app, "901234567", "From the shop")
    assert "From: MyShop" in preview.text
    await app.tap(preview, "✅ Send")
    assert devsms.sent[0].sender == "MyShop"
    [reset] = await app.tap(shown, "Default sender")
    assert "Sender: 4546 (default)" in reset.text


async def test_unknown_send_can_be_checked_later_and_is_reconciled(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Did it go?")
    devsms.fail_next(1, path=SEND, hang=5)
    [result] = await app.tap(preview, "Send")
    assert labels(result) == ["🔎 Check status"]
    replies = await app.tap(result, "Check status")
    assert any(str(devsms.sent[0].sms_id) in m.text for m in replies)
    [row] = await app.services.outbox.recent(1, 10)
    assert (row.state, row.sms_id) == ("sent", devsms.sent[0].sms_id)
    assert len(devsms.requests_to(SEND)) == 1


async def test_whole_send_dialog_in_russian(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app, lang="ru")
    [ask] = await app.send("📤 Отправить SMS", lang="ru")
    assert "Кому отправить?" in ask.text
    assert "📱 Мой номер" in ask.reply_buttons()
    [bad] = await app.send("12345", lang="ru")
    assert "слишком короткий" in bad.text
    [ask_text] = await app.send("90 123 45 67", lang="ru")
    assert "Теперь отправьте текст SMS" in ask_text.text
    [preview] = await app.send("Привет", lang="ru")
    assert "Проверьте перед отправкой" in preview.text
    assert "Стоимость: 1 × 50 сум = 50 сум" in preview.text
    assert labels(preview)[0] == "✅ Отправить"
    [result] = await app.tap(preview, "Отправить", lang="ru")
    assert "Отправлено." in result.text
    assert "⏳ в ожидании" in result.text  # the status's label, translated
    assert [s.message for s in devsms.sent] == ["Привет"]


async def test_whole_send_dialog_in_uzbek(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app, lang="uz")
    [ask] = await app.send("/send", lang="uz")
    assert "Kimga yuboramiz?" in ask.text
    await app.send("+998901234567", lang="uz")
    text = "Hurmatli mijoz, doʻkonimizga yangi mahsulotlar keldi. Marhamat, tashrif buyuring!"
    [preview] = await app.send(text, lang="uz")
    assert "Yuborishdan oldin tekshiring" in preview.text
    assert "🪶 Arzonroq qilish" in labels(preview)
    [cancelled] = await app.tap(preview, "Bekor qilish", lang="uz")
    assert "Hech narsa yuborilmadi" in cancelled.text
    assert devsms.sent == []


# --- after the request: the user always learns the true outcome --------------------------------


async def wait_for_row_state(app: Harness, state: str) -> OutboxRow:
    """The user's newest outbox row once it reached `state` (recording may be retried)."""
    async with asyncio.timeout(5):
        while True:
            [row, *_] = await app.services.outbox.recent(1, 1)
            if row.state == state:
                return row
            await asyncio.sleep(0.05)


async def test_sent_sms_is_reported_sent_when_recording_it_fails_once(
    app: Harness, devsms: FakeDevsms, monkeypatch: pytest.MonkeyPatch
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Recorded later")
    outbox = app.services.outbox
    real_mark_sent = outbox.mark_sent
    failures = [sqlite3.OperationalError("database is locked")]

    async def locked_once(*args: Any, **kwargs: Any) -> bool:
        if failures:
            raise failures.pop()
        return await real_mark_sent(*args, **kwargs)

    monkeypatch.setattr(outbox, "mark_sent", locked_once)
    replies = await app.tap(preview, "Send")

    [sms] = devsms.sent
    texts = "\n".join(m.text for m in replies)
    assert "✅ <b>Sent.</b>" in texts and f"SMS id: {sms.sms_id}" in texts
    assert "Something went wrong" not in texts and "try again" not in texts
    row = await wait_for_row_state(app, "sent")  # written in the background
    assert row.sms_id == sms.sms_id
    assert len(devsms.requests_to(SEND)) == 1


@pytest.mark.parametrize("sms_id", [9_300_000_000_000_000_000, 10**20])
async def test_gateway_id_beyond_sqlite_range_is_still_reported_sent(
    app: Harness, devsms: FakeDevsms, sms_id: int
) -> None:
    await connect(app)
    devsms._next_id = sms_id
    preview = await preview_for(app, "901234567", "Huge id")
    [result] = await app.tap(preview, "Send")

    assert "✅ <b>Sent.</b>" in result.text
    assert f"SMS id: {sms_id}" in result.text
    row = await wait_for_row_state(app, "sent")
    assert (row.sms_id, row.request_id) == (None, devsms.sent[0].request_id)
    # Its status is found through the request id, without an error.
    replies = await app.tap(result, "Check status")
    assert any("Huge id" in m.text for m in replies)
    assert not any("Something went wrong" in m.text for m in app.session.chat(1))
    assert len(devsms.requests_to(SEND)) == 1


async def test_preview_gone_after_the_send_gets_the_result_as_a_new_message(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Deleted preview")
    del app.session.messages[(1, preview.message_id)]  # the user deleted it meanwhile
    [result] = await app.tap(preview, "Send")

    assert result.message_id != preview.message_id
    assert "✅ <b>Sent.</b>" in result.text
    assert f"SMS id: {devsms.sent[0].sms_id}" in result.text
    assert len(devsms.requests_to(SEND)) == 1


async def test_token_gone_between_preview_and_confirm_is_not_sent(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "No token now")
    # Still "valid", so the tap passes the token gate, but it can no longer be read (its key
    # left ENCRYPTION_KEY, the row was tampered with): the token is gone at the last moment.
    # Through the repository: the bot caches the stored row and is the database's only writer.
    await app.services.credentials.save(1, b"unreadable")
    replies = await app.tap(preview, "Send")

    texts = "\n".join(m.text for m in replies)
    assert "<b>not</b> sent" in texts
    assert "/token" in texts
    assert "may or may not" not in texts
    assert devsms.requests_to(SEND) == []
    [row] = await app.services.outbox.recent(1, 10)
    assert row.state == "failed"  # certainly not sent: nothing to reconcile


async def test_expired_callback_query_does_not_stop_the_confirmed_send(
    app: Harness, devsms: FakeDevsms, monkeypatch: pytest.MonkeyPatch
) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Tapped long ago")
    session = app.session
    real_request = session.make_request

    async def too_old(bot: Any, method: Any, **kwargs: Any) -> Any:
        if isinstance(method, AnswerCallbackQuery):
            session.calls.append(method)
            raise TelegramBadRequest(
                method,
                "Bad Request: query is too old and response timeout expired or query ID is "
                "invalid",
            )
        return await real_request(bot, method, **kwargs)

    monkeypatch.setattr(session, "make_request", too_old)
    send = button_data(preview, "Send")
    [result] = await app.tap_data(preview, send)
    await app.tap_data(preview, send)  # the user taps again: nothing more is sent

    assert [s.message for s in devsms.sent] == ["Tapped long ago"]
    assert "✅ <b>Sent.</b>" in result.text
    assert len(devsms.requests_to(SEND)) == 1
