"""/history through the Dispatcher: paging, filters, escaping, the 4096 limit, details."""

from __future__ import annotations

import datetime as dt
import html
import json
from decimal import Decimal

from aiogram.methods import EditMessageText, SendMessage

from services.devsms import SendResult
from storage.outbox import OutboxState
from storage.traffic import NewRecord
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness
from tests.support.recording import SentMessage

PHONE = "998901234567"
HOSTILE = "<&>" * 1000

FILTERS = [
    "• All",
    "Delivered",
    "Waiting",
    "Accepted",
    "Rejected",
    "Undeliverable",
    "🔎 Search by phone number",
]


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


async def send_sms(
    app: Harness, n: int, text: str = "Message {i}", phone: str = PHONE
) -> list[SendResult]:
    """``n`` SMS through the real client, as if sent outside the bot (the website, an API)."""
    return [
        await app.services.devsms.send_sms(GOOD_TOKEN, phone, text.format(i=i))
        for i in range(1, n + 1)
    ]


def entries(message: SentMessage) -> list[str]:
    """The numbered lines of a history page, e.g. ["1.", "2.", ...]."""
    return [
        line.split("</b>")[0].removeprefix("<b>")
        for line in message.text.split("\n")
        if line.startswith("<b>") and "</b> " in line and line[3:4].isdigit()
    ]


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


def gateway_queries(devsms: FakeDevsms) -> list[dict[str, str]]:
    return [r.query for r in devsms.requests_to("/get_history.php")]


async def test_history_pages_by_ten_and_paging_edits_the_same_message(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await send_sms(app, 25)

    [first] = await app.send("/history")
    assert entries(first) == [f"{n}." for n in range(1, 11)]
    assert "Page 1 of 3 · 25 SMS" in first.text
    # Newest first, each line with phone, status, parts, cost and the text.
    assert first.text.index("Message 25") < first.text.index("Message 16")
    assert "Message 15" not in first.text
    assert "+998 90 123 45 67" in first.text
    assert "⏳ waiting · 1 part · 50 so'm" in first.text
    assert labels(first)[:10] == [str(n) for n in range(1, 11)]
    assert labels(first)[10:12] == ["◀", "▶"]
    assert labels(first)[12:] == FILTERS

    [second] = await app.tap(first, "▶")
    assert second.message_id == first.message_id and second.edits == 1
    assert entries(second) == [f"{n}." for n in range(11, 21)]
    assert "Message 15" in second.text and "Message 16" not in second.text

    [third] = await app.tap(second, "▶")
    assert entries(third) == [f"{n}." for n in range(21, 26)]
    assert "Page 3 of 3" in third.text
    assert labels(third)[:5] == ["21", "22", "23", "24", "25"]

    # Past the last page nothing is edited; the tap is answered.
    assert await app.tap(third, "▶") == []
    assert app.answers()[-1].text == "This is the last page."

    [back] = await app.tap(third, "◀")
    assert entries(back) == [f"{n}." for n in range(11, 21)]
    assert [q["offset"] for q in gateway_queries(devsms)] == ["0", "10", "20", "30", "10"]


async def test_back_on_the_first_page_is_answered_without_asking_the_gateway(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await send_sms(app, 11)
    [page] = await app.send("/history")
    asked = len(devsms.requests)
    assert await app.tap(page, "◀") == []
    assert app.answers()[-1].text == "This is the first page."
    assert len(devsms.requests) == asked


async def test_a_single_page_has_no_arrows(app: Harness) -> None:
    await connect(app)
    await send_sms(app, 3)
    [page] = await app.send("📜 History")
    assert entries(page) == ["1.", "2.", "3."]
    assert "◀" not in labels(page)


async def test_filters_ask_the_gateway_for_that_status_and_mark_the_active_one(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    sent = await send_sms(app, 6)
    devsms.set_status(sent[0].sms_id, "DELIVERED")  # "Message 1"
    devsms.set_status(sent[1].sms_id, "REJECTED")  # "Message 2"
    devsms.set_status(sent[2].sms_id, "EXPIRED")

    [page] = await app.send("/history")
    assert "✅ delivered" in page.text and "❌ rejected" in page.text
    assert "❌ expired" in page.text

    [delivered] = await app.tap(page, "Delivered")
    assert gateway_queries(devsms)[-1] == {"limit": "11", "offset": "0", "status": "DELIVERED"}
    assert entries(delivered) == ["1."]
    assert "Message 1" in delivered.text and "Message 2" not in delivered.text
    assert "• Delivered" in labels(delivered) and "All" in labels(delivered)

    [waiting] = await app.tap(delivered, "Waiting")
    assert gateway_queries(devsms)[-1]["status"] == "waiting"
    assert len(entries(waiting)) == 3

    [rejected] = await app.tap(waiting, "Rejected")
    assert gateway_queries(devsms)[-1]["status"] == "REJECTED"
    assert "Message 2" in rejected.text and len(entries(rejected)) == 1

    # Tapping the active filter again changes nothing and says so.
    assert await app.tap(rejected, "• Rejected") == []
    assert app.answers()[-1].text == "Already up to date."


async def test_empty_history_says_so_for_each_filter(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    [page] = await app.send("/history")
    assert "No SMS yet" in page.text
    assert labels(page) == FILTERS
    [rejected] = await app.tap(page, "Rejected")
    assert "No rejected SMS." in rejected.text
    [delivered] = await app.tap(rejected, "Delivered")
    assert "No delivered SMS yet." in delivered.text


async def test_texts_are_escaped_and_a_page_of_hostile_texts_stays_under_4096(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    devsms.accounts[GOOD_TOKEN].balance = Decimal(10**9)  # long texts cost many parts
    await send_sms(app, 1, "<b>not bold</b> & Tom")
    await send_sms(app, 10, HOSTILE)
    devsms.sent[-1].status = "<script>"  # a status nobody documented, shown verbatim

    [page] = await app.send("/history")
    assert len(page.text) <= 4096
    assert len(entries(page)) == 10
    assert "❔ &lt;script&gt;" in page.text
    [page2] = await app.tap(page, "▶")
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; Tom" in page2.text
    # Telegram would have refused an over-long text; nothing failed on the way.
    sent = app.session.of(SendMessage) + app.session.of(EditMessageText)
    assert all(len(call.text) <= 4096 for call in sent)


async def test_details_show_the_whole_text_and_the_status_with_refresh(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await send_sms(app, 3, "Hello number {i}, & welcome")
    [page] = await app.send("/history")

    [details] = await app.tap(page, "2")
    assert details.message_id != page.message_id  # the list stays as it is
    assert "Hello number 2, &amp; welcome" in details.text
    assert "Status: ⏳ waiting" in details.text
    assert "Phone: +998 90 123 45 67" in details.text
    assert labels(details) == ["🔄 Refresh"]


async def test_details_of_a_long_hostile_text_are_split_and_rebuild_it(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    devsms.accounts[GOOD_TOKEN].balance = Decimal(10**9)
    long_text = HOSTILE * 2 + " end"
    await send_sms(app, 1, long_text)
    [page] = await app.send("/history")
    replies = await app.tap(page, "1")
    *pieces, card = replies
    assert len(pieces) >= 2
    assert all(len(m.text) <= 4096 for m in replies)
    assert "".join(html.unescape(p.text) for p in pieces) == long_text
    assert "The whole text is in the messages above." in card.text
    assert labels(card) == ["🔄 Refresh"]


async def test_entries_without_an_sms_id_get_no_details_button(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    items = [
        {"sms_id": 77, "phone": PHONE, "message": "with id", "status": "DELIVERED"},
        {"phone": PHONE, "message": "without id"},
    ]
    body = json.dumps({"success": True, "data": {"sms": items, "total": 2}})
    devsms.fail_next(status=200, body=body, path="/get_history.php")
    [page] = await app.send("/history")
    assert entries(page) == ["1.", "2."]
    assert labels(page) == ["1", *FILTERS]
    # The entry with nothing known shows dashes, not "None".
    assert "None" not in page.text
    assert "❔ — · parts: — · —" in page.text


async def test_stale_or_forged_buttons_are_answered_not_crashed(app: Harness) -> None:
    await connect(app)
    await send_sms(app, 2)
    [page] = await app.send("/history")
    for data in ("hst:0:z", "hst:x:a", "sms:0:0:0"):
        assert await app.tap_data(page, data) == []
        assert app.answers()[-1].text == "This button is no longer active."
    # An SMS id of another account is not shown.
    other = await app.services.devsms.send_sms(OTHER_TOKEN, PHONE, "not yours")
    assert await app.tap_data(page, f"sms:{other.sms_id}:0:0") == []
    assert app.answers()[-1].text == "This SMS was not found for your account."


async def test_history_settles_a_send_that_timed_out(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    outbox = app.services.outbox
    row_id = await outbox.create_pending(1, PHONE, "Did it go?", None)
    await outbox.mark_unknown(row_id, "timeout")
    [sms] = await send_sms(app, 1, "Did it go?")

    [page] = await app.send("/history")
    assert "1 SMS whose sending was unclear turned up here" in page.text
    row = await outbox.get(row_id)
    assert row is not None
    assert (row.state, row.sms_id, row.status) == (OutboxState.SENT, sms.sms_id, "waiting")
    # Settled once: the next look says nothing more.
    [again] = await app.send("/history")
    assert "unclear" not in again.text


async def test_history_in_russian_keeps_numbers_phones_and_buttons(
    app: Harness, devsms: FakeDevsms
) -> None:
    # Only things that do not depend on the catalogues are asserted here.
    await connect(app, lang="ru")
    await send_sms(app, 12)
    [page] = await app.send("/history", lang="ru")
    assert entries(page) == [f"{n}." for n in range(1, 11)]
    assert page.text.count("+998 90 123 45 67") == 10
    assert labels(page)[:12] == [*(str(n) for n in range(1, 11)), "◀", "▶"]
    [second] = await app.tap(page, "▶", lang="ru")
    assert entries(second) == ["11.", "12."]


async def test_a_tap_while_the_gateway_is_down_gets_exactly_one_answer(
    app: Harness, devsms: FakeDevsms
) -> None:
    # The history and status routers answer taps through AnswerCallbacks; when the handler
    # fails, the errors router answers instead, and only it (Telegram refuses a second answer).
    await connect(app)
    await send_sms(app, 12)
    [page] = await app.send("/history")
    [details] = await app.tap(page, "2")
    for sent, label, path in ((page, "▶", "/get_history.php"), (details, "Refresh", None)):
        devsms.fail_next(10, path=path)
        before = len(app.answers())
        [told] = await app.tap(sent, label)
        assert "devsms.uz is not answering right now" in told.text
        assert [answer.text for answer in app.answers()[before:]] == [None]
    assert app.session.refused == []


async def test_the_record_shows_times_on_the_users_clock(app: Harness) -> None:
    """/history +number showed the record's times on the gateway's clock (Tashkent) whatever
    zone the user chose in /settings, while /export and the digest used theirs."""
    await connect(app)
    await app.services.users.set_timezone(1, "Europe/Berlin")
    at = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)  # 11:00 in Berlin, 15:00 in Tashkent
    await app.services.traffic.merge(1, [NewRecord(
        7, "req-7", "998901234567", "Hello", "4546", 1, Decimal(50), "UZS", "DELIVERED", at,
    )])  # fmt: skip
    [found] = await app.send("/history +998901234567")
    assert "05.01.2026 11:00" in found.text
    assert "15:00" not in found.text
