"""Sending, history and status, end to end: `python -m bot` against fake Telegram and devsms."""

from __future__ import annotations

import json
import re
from typing import Final

import pytest

from services.devsms import DevsmsClient, SendResult
from tests.conftest import GOOD_TOKEN
from tests.e2e.harness import REPLY_TIMEOUT, BotLauncher, BotProcess, ChatUser, connect_token
from tests.fakes.fake_devsms import ERR_SENDER, FakeDevsms
from tests.fakes.fake_telegram import ChatMessage

pytestmark = pytest.mark.e2e

SEND: Final = "/send_sms.php"
PHONE: Final = "998901234567"
SHOWN_PHONE: Final = "+998 90 123 45 67"
PREVIEW_BUTTONS: Final = [
    "✅ Send",
    "🕒 Send later",
    "✏️ Change text",
    "📞 Change number",
    "✖️ Cancel",
]
FILTERS: Final = [
    "• All",
    "Delivered",
    "Waiting",
    "Accepted",
    "Rejected",
    "Undeliverable",
    "🔎 Search by phone number",
]
STALE: Final = "This preview is no longer active."
# Longer than DEVSMS_TIMEOUT=1 of the slow-gateway bot: its answer comes after the bot gave up.
HANG: Final = 3.0


def entries(message: ChatMessage) -> list[int]:
    """The numbers of the SMS listed on a history page, as the user reads them."""
    return [int(n) for n in re.findall(r"^(\d+)\. ", message.text or "", re.MULTILINE)]


def send_data(preview: ChatMessage) -> str:
    data = preview.button("✅ Send").get("callback_data")
    assert isinstance(data, str)
    return data


def stale_tap(user: ChatUser, message: ChatMessage, data: str) -> str:
    """A tap on a button the message no longer shows (a client that did not redraw yet)."""
    return user.telegram.press_button(
        user.user_id,
        message.message_id,
        data,
        first_name=user.first_name,
        language_code=user.language_code,
        check_button=False,
    )


async def answers(user: ChatUser, *query_ids: str) -> list[str | None]:
    return [(await user.answer_to(query_id)).get("text") for query_id in query_ids]


async def test_dialog_and_quick_form_each_send_one_sms_even_on_a_double_tap(
    bot: BotProcess, user: ChatUser, devsms: FakeDevsms
) -> None:
    await connect_token(user, GOOD_TOKEN)

    ask = await user.ask("/send", "Whom to send to?")
    assert "📱 My own number" in str(user.telegram.reply_keyboard(user.chat_id))
    recipient = await user.reply_after(user.send("+998 90 123-45-67"), "Now send the text")
    assert f"Recipient: {SHOWN_PHONE}." in (recipient.text or "")
    assert recipient.message_id > ask.message_id
    text = "Dialog & <test>: hello"
    preview = await user.ask(text, "Check before sending")
    assert f"To: {SHOWN_PHONE}" in (preview.text or "")
    assert text in (preview.text or "")  # shown as typed, not as HTML
    assert "Cost: 1 × 50 so'm = 50 so'm" in (preview.text or "")
    assert preview.button_texts == PREVIEW_BUTTONS
    assert devsms.sent == []  # nothing leaves without the tap

    tap = user.tap(preview, "✅ Send")
    result = await user.wait_edited(preview, "Sent.")
    assert await answers(user, tap) == ["Sending…"]
    [sms] = devsms.sent
    assert (sms.phone, sms.message, sms.token) == (PHONE, text, GOOD_TOKEN)
    assert f"SMS id: {sms.sms_id}" in (result.text or "")
    assert result.button_texts == ["🔄 Refresh status"]

    quick = await user.ask(f"/send {PHONE} Some text", "Check before sending")
    assert f"To: {SHOWN_PHONE}" in (quick.text or "")
    # Two taps before the bot saw either: the second finds the draft gone.
    taps = [user.tap(quick, "✅ Send"), user.tap(quick, "✅ Send")]
    quick_result = await user.wait_edited(quick, "Sent.")
    assert sorted(await answers(user, *taps)) == sorted(["Sending…", STALE])
    # A late tap from a client still showing the old buttons sends nothing either.
    assert await answers(user, stale_tap(user, quick, send_data(quick))) == [STALE]
    assert [(s.phone, s.message) for s in devsms.sent] == [(PHONE, text), (PHONE, "Some text")]
    assert len(devsms.requests_to(SEND)) == 2
    assert f"SMS id: {devsms.sent[1].sms_id}" in (user.message(quick.message_id).text or "")
    assert quick_result.message_id == quick.message_id


async def test_refusal_is_quoted_and_a_slow_gateway_is_unknown_and_never_resent(
    bots: BotLauncher, user: ChatUser, devsms: FakeDevsms
) -> None:
    await bots.started(extra_env={"DEVSMS_TIMEOUT": "1"})
    await connect_token(user, GOOD_TOKEN)

    # The gateway says no, in Uzbek: the user reads its words; nothing went out.
    refused_preview = await user.ask(f"/send {PHONE} Refused text", "Check before sending")
    error = json.dumps({"success": False, "error": ERR_SENDER})
    devsms.fail_next(1, status=400, body=error, path=SEND)
    user.tap(refused_preview, "✅ Send")
    refused = await user.wait_edited(refused_preview, "refused this SMS")
    assert "Nothing was sent or charged." in (refused.text or "")
    assert f"Its answer: «{ERR_SENDER}»" in (refused.text or "")
    assert refused.button_texts == []
    assert devsms.sent == []
    assert len(devsms.requests_to(SEND)) == 1

    # The gateway takes the SMS but answers after the bot's 1 s timeout.
    preview = await user.ask(f"/send {PHONE} Maybe sent", "Check before sending")
    data = send_data(preview)
    devsms.fail_next(1, path=SEND, hang=HANG)
    user.tap(preview, "✅ Send")
    unknown = await user.wait_edited(preview, "did not answer in time")
    assert "may or may not have gone out" in (unknown.text or "")
    assert "It will not be sent again automatically" in (unknown.text or "")
    assert f"To {SHOWN_PHONE}: Maybe sent" in (unknown.text or "")
    assert unknown.button_texts == ["🔎 Check status"]

    # Not an assertion but its precondition: the gateway has sent its late answer, so a bot
    # that resent on it (or on the timeout) has done so before the counts below.
    late = devsms.requests_to(SEND)[-1]
    await user.telegram.wait_for(lambda: late.answered, HANG + REPLY_TIMEOUT)
    assert await answers(user, stale_tap(user, preview, data)) == [STALE]
    [sms] = devsms.sent
    assert (sms.phone, sms.message) == (PHONE, "Maybe sent")
    assert len(devsms.requests_to(SEND)) == 2  # the refused one and this one, each once
    assert "did not answer in time" in (user.message(preview.message_id).text or "")


async def send_directly(devsms: FakeDevsms, count: int) -> list[SendResult]:
    """SMS sent outside the bot (the website, another program): history shows them too."""
    async with DevsmsClient(devsms.url, timeout=5) as client:
        return [
            await client.send_sms(GOOD_TOKEN, PHONE, f"E2E message {i:02d}")
            for i in range(1, count + 1)
        ]


async def test_history_pages_and_filters_edit_one_message_and_status_finds_both_ids(
    bot: BotProcess, user: ChatUser, devsms: FakeDevsms
) -> None:
    await connect_token(user, GOOD_TOKEN)
    sent = await send_directly(devsms, 25)

    first = await user.ask("/history", "SMS history")
    assert entries(first) == list(range(1, 11))
    assert "Page 1 of 3 · 25 SMS" in (first.text or "")
    text = first.text or ""
    # Newest first.
    assert text.index("E2E message 25") < text.index("E2E message 16")
    assert "E2E message 15" not in text
    assert first.button_texts == [*(str(n) for n in range(1, 11)), "◀", "▶", *FILTERS]
    messages_before = len(user.bot_messages())

    user.tap(first, "▶")
    second = await user.wait_edited(first, "Page 2 of 3")
    assert second.message_id == first.message_id
    assert entries(second) == list(range(11, 21))
    assert "E2E message 15" in (second.text or "")
    assert "E2E message 16" not in (second.text or "")

    for number in (3, 7, 12):
        devsms.set_status(sent[number - 1].sms_id or 0, "DELIVERED")
    user.tap(second, "Delivered")
    delivered = await user.wait_edited(second, "SMS history · Delivered")
    assert delivered.message_id == first.message_id
    assert entries(delivered) == [1, 2, 3]
    shown = delivered.text or ""
    assert all(f"E2E message {n:02d}" in shown for n in (3, 7, 12))
    assert "E2E message 25" not in shown
    assert "• Delivered" in delivered.button_texts and "All" in delivered.button_texts
    assert "▶" not in delivered.button_texts  # one page only
    # Paging and filtering never posted a new message.
    assert len(user.bot_messages()) == messages_before
    assert [r.query.get("status") for r in devsms.requests_to("/get_history.php")][-1] == (
        "DELIVERED"
    )

    by_id = sent[6]
    card = await user.ask(f"/status {by_id.sms_id}", "Status:")
    assert f"SMS {by_id.sms_id}" in (card.text or "")
    assert "Status: ✅ delivered" in (card.text or "")
    assert f"Phone: {SHOWN_PHONE}" in (card.text or "")
    assert "E2E message 07" in (card.text or "")
    assert card.button_texts == ["🔄 Refresh"]

    by_request = sent[19]
    assert by_request.request_id is not None
    card = await user.ask(f"/status {by_request.request_id}", "Status:")
    assert f"SMS {by_request.sms_id}" in (card.text or "")
    assert f"Request id: {by_request.request_id}" in (card.text or "")
    assert "Status: ⏳ waiting" in (card.text or "")
    assert "E2E message 20" in (card.text or "")
    assert devsms.requests_to("/get_status.php")[-1].query == {"request_id": by_request.request_id}
