"""/status and the SMS buttons through the Dispatcher."""

from __future__ import annotations

import re

from handlers.callbacks import SmsCb
from storage.outbox import OutboxState
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness
from tests.support.recording import SentMessage

PHONE = "998901234567"
USAGE = "<code>/status 1234</code>"


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


async def test_status_by_sms_id_shows_the_sms(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    sms = await app.services.devsms.send_sms(GOOD_TOKEN, PHONE, "Hi <there> & you")
    [card] = await app.send(f"/status {sms.sms_id}")
    assert f"SMS {sms.sms_id}" in card.text
    assert "Status: ⏳ waiting" in card.text
    assert "Phone: +998 90 123 45 67" in card.text
    assert "Parts: 1 · Cost: 50 so'm" in card.text
    assert re.search(r"Time: \d\d\.\d\d\.\d{4} \d\d:\d\d", card.text)
    assert "Hi &lt;there&gt; &amp; you" in card.text
    assert labels(card) == ["🔄 Refresh"]
    assert devsms.requests_to("/get_status.php")[-1].query == {"sms_id": str(sms.sms_id)}


async def test_status_by_request_id(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    sms = await app.services.devsms.send_sms(GOOD_TOKEN, PHONE, "By uuid")
    assert sms.request_id is not None
    [card] = await app.send(f"/status  {sms.request_id.upper()} ")
    assert "By uuid" in card.text
    assert f"Request id: <code>{sms.request_id}</code>" in card.text
    assert devsms.requests_to("/get_status.php")[-1].query == {"request_id": sms.request_id}


async def test_malformed_ids_get_an_example_without_asking_the_gateway(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    asked = len(devsms.requests)
    for bad in ("abc", "0", "-5", "12.5", "<b>1</b>", "0f8fad5b-d9cb-469f-a165", "9" * 30):
        [reply] = await app.send(f"/status {bad}")
        assert "is neither an SMS id nor a request id" in reply.text, bad
        assert USAGE in reply.text
    [reply] = await app.send("/status <b>1</b>")
    assert "«&lt;b&gt;1&lt;/b&gt;»" in reply.text
    assert len(devsms.requests) == asked


async def test_status_alone_and_the_menu_button_explain_with_an_example(app: Harness) -> None:
    await connect(app)
    for text in ("/status", "🔎 Status"):
        [reply] = await app.send(text)
        assert USAGE in reply.text
        assert "/history" in reply.text


async def test_unknown_or_foreign_sms_is_not_found_for_your_account(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    [reply] = await app.send("/status 999999")
    assert "SMS <code>999999</code> was not found for your account." in reply.text
    other = await app.services.devsms.send_sms(OTHER_TOKEN, PHONE, "not yours")
    [reply] = await app.send(f"/status {other.sms_id}")
    assert "was not found for your account" in reply.text
    assert "not yours" not in reply.text


async def test_refresh_edits_in_place_and_a_second_tap_is_already_up_to_date(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    sms = await app.services.devsms.send_sms(GOOD_TOKEN, PHONE, "Track me")
    assert sms.sms_id is not None
    [card] = await app.send(f"/status {sms.sms_id}")

    assert await app.tap(card, "Refresh") == []
    assert app.answers()[-1].text == "Already up to date."

    devsms.set_status(sms.sms_id, "DELIVERED")
    [edited] = await app.tap(card, "Refresh")
    assert edited.message_id == card.message_id
    assert "Status: ✅ delivered" in edited.text
    assert app.answers()[-1].text == "Updated."

    assert await app.tap(edited, "Refresh") == []
    assert app.answers()[-1].text == "Already up to date."


async def test_gateway_down_is_reported(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    devsms.fail_next(2, status=503)
    [reply] = await app.send("/status 1001")
    assert "not answering right now" in reply.text


async def test_status_settles_a_send_that_timed_out(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    outbox = app.services.outbox
    row_id = await outbox.create_pending(1, PHONE, "Lost answer", None)
    await outbox.mark_unknown(row_id, "timeout")
    sms = await app.services.devsms.send_sms(GOOD_TOKEN, PHONE, "Lost answer")
    assert sms.sms_id is not None

    await app.send(f"/status {sms.sms_id}")
    row = await outbox.get(row_id)
    assert row is not None
    assert (row.state, row.sms_id, row.request_id) == (
        OutboxState.SENT,
        sms.sms_id,
        sms.request_id,
    )


async def test_button_of_an_unconfirmed_send_turns_into_its_status_once_the_gateway_shows_it(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    outbox = app.services.outbox
    row_id = await outbox.create_pending(1, PHONE, "Maybe sent", None)
    await outbox.mark_unknown(row_id, "timeout")
    # The message the send flow left behind, with its status button.
    [page] = await app.send("/history")
    [card] = await app.tap_data(page, SmsCb(outbox_id=row_id).pack())
    assert "not confirmed" in card.text
    assert "Maybe sent" in card.text
    assert labels(card) == ["🔄 Refresh"]

    sms = await app.services.devsms.send_sms(GOOD_TOKEN, PHONE, "Maybe sent")
    assert sms.sms_id is not None
    [edited] = await app.tap(card, "Refresh")
    assert edited.message_id == card.message_id
    assert f"SMS {sms.sms_id}" in edited.text and "Status: ⏳ waiting" in edited.text
    row = await outbox.get(row_id)
    assert row is not None and row.state is OutboxState.SENT


async def test_a_send_with_no_trace_a_day_later_is_shown_as_probably_not_sent(
    app: Harness,
) -> None:
    await connect(app)
    outbox = app.services.outbox
    row_id = await outbox.create_pending(1, PHONE, "Never seen", None)
    await outbox.mark_unknown(row_id, "timeout")
    assert await outbox.mark_not_sent(row_id)  # what the tracker concludes after 24 h
    [page] = await app.send("/history")
    [card] = await app.tap_data(page, SmsCb(outbox_id=row_id).pack())
    # As the tracker's notice says: its fate was never known for certain.
    assert "❔ probably not sent: devsms.uz shows no trace of it" in card.text
    assert "❌" not in card.text


async def test_another_users_outbox_button_is_refused(app: Harness) -> None:
    await connect(app, user_id=1)
    await connect(app, user_id=2)
    row_id = await app.services.outbox.create_pending(2, PHONE, "Private", None)
    [page] = await app.send("/history", user_id=1)
    assert await app.tap_data(page, SmsCb(outbox_id=row_id).pack(), user_id=1) == []
    assert app.answers()[-1].text == "This button is no longer active."


async def test_status_in_russian_shows_the_phone_and_the_id(app: Harness) -> None:
    # Only things that do not depend on the catalogues are asserted here.
    await connect(app, lang="ru")
    sms = await app.services.devsms.send_sms(GOOD_TOKEN, PHONE, "Привет")
    [card] = await app.send(f"/status {sms.sms_id}", lang="ru")
    assert str(sms.sms_id) in card.text
    assert "+998 90 123 45 67" in card.text and "Привет" in card.text
    assert len(card.buttons()) == 1
