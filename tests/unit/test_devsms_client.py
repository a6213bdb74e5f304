"""DevsmsClient against the fake gateway on 127.0.0.1: answers, errors, retries, never-resend."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.config import Settings
from services.devsms import (
    BALANCE_PATH,
    HISTORY_PATH,
    SEND_PATH,
    STATUS_PATH,
    DevsmsBadRequest,
    DevsmsClient,
    DevsmsError,
    DevsmsForbidden,
    DevsmsGatewayError,
    DevsmsNotFound,
    DevsmsRateLimited,
    DevsmsSendUnknown,
    DevsmsUnauthorized,
    DevsmsUnavailable,
    HistoryPage,
    SmsRecord,
    is_final_status,
    mark_background,
    parse_history,
)
from services.money import Money
from tests.fakes.fake_devsms import FakeDevsms

TOKEN = "tok-SECRET-8f2c1d"
OTHER_TOKEN = "tok-OTHER-55aa"
PHONE = "998901234567"
TEXT = "Kodingiz: 4821"
GET_RETRIES = 2


def uzs(amount: int | str) -> Money:
    return Money(Decimal(amount), "UZS")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDevsms]:
    fake = FakeDevsms()
    fake.add_account(TOKEN, balance=1000, sms_price=50)
    fake.add_account(OTHER_TOKEN, balance=500, sms_price=40)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(fake: FakeDevsms) -> AsyncIterator[DevsmsClient]:
    client = DevsmsClient(fake.url, timeout=2.0, get_retries=GET_RETRIES, backoff=0.01)
    yield client
    await client.close()


@pytest.fixture
async def impatient(fake: FakeDevsms) -> AsyncIterator[DevsmsClient]:
    """A client whose timeout runs out long before a hanging fake answers. Connecting gets
    seconds: on a loaded machine it took longer than half of 0.3 s (the default), and the
    request then never left, which is another test's case."""
    client = DevsmsClient(fake.url, timeout=0.3, connect_timeout=5.0, get_retries=1, backoff=0.01)
    yield client
    await client.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


# --- the happy paths ----------------------------------------------------------------------------


async def test_balance_reports_money_and_statistics(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    await client.send_sms(TOKEN, PHONE, TEXT)

    balance = await client.get_balance(TOKEN)

    assert balance.balance == uzs(950)
    assert balance.sms_price == uzs(50)
    assert balance.statistics.today_sms == 1
    assert balance.statistics.total_spent == uzs(50)
    assert fake.requests_to(BALANCE_PATH)[0].token == TOKEN


async def test_balance_in_dollar_strings(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.add_account("usd-token", balance=Decimal("12.5"), sms_price="0.005", currency="USD")

    balance = await client.get_balance("usd-token")

    assert balance.balance == Money(Decimal("12.5"), "USD")
    assert str(balance.sms_price) == "$0.005"


async def test_send_charges_and_reports_the_sms(fake: FakeDevsms, client: DevsmsClient) -> None:
    result = await client.send_sms(TOKEN, PHONE, TEXT)

    assert [(sms.phone, sms.message, sms.sender) for sms in fake.sent] == [(PHONE, TEXT, "4546")]
    assert result.sms_id == fake.sent[0].sms_id
    assert result.request_id == fake.sent[0].request_id
    assert result.status == "waiting"
    assert result.parts_count == 1
    assert result.total_cost == uzs(50)
    assert result.balance == uzs(950)
    assert fake.requests_to(SEND_PATH)[0].json == {"phone": PHONE, "message": TEXT}


async def test_send_passes_sender_and_callback_only_when_given(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    long_cyrillic = "Привет! " * 20  # UCS-2, 160 characters: 3 parts of 67
    result = await client.send_sms(TOKEN, "79161234567", long_cyrillic, sender="MyShop")

    assert fake.requests_to(SEND_PATH)[0].json == {
        "phone": "79161234567",
        "message": long_cyrillic,
        "from": "MyShop",
    }
    assert result.parts_count == 3
    assert result.total_cost == uzs(150)


async def test_history_newest_first_with_paging_and_filter(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    ids = [(await client.send_sms(TOKEN, PHONE, f"SMS {n}")).sms_id for n in range(3)]
    await client.send_sms(OTHER_TOKEN, PHONE, "not yours")
    assert ids[1] is not None
    fake.set_status(ids[1], "DELIVERED")

    first_page = await client.get_history(TOKEN, limit=2)
    second_page = await client.get_history(TOKEN, limit=2, offset=2)
    delivered = await client.get_history(TOKEN, status="DELIVERED")

    assert [item.message for item in first_page.items] == ["SMS 2", "SMS 1"]
    assert [item.message for item in second_page.items] == ["SMS 0"]
    assert first_page.total == 3
    assert [item.sms_id for item in delivered.items] == [ids[1]]
    assert fake.requests_to(HISTORY_PATH)[0].query == {"limit": "2", "offset": "0"}


@pytest.mark.parametrize(
    ("shape", "total"),
    [
        ("list", None),
        ("sms", 2),
        ("items", 2),
        ("history", 2),
        ("messages", 2),
        ("data", 2),
        ("paginated", 2),
    ],
)
async def test_history_reads_every_answer_shape(
    fake: FakeDevsms, client: DevsmsClient, shape: str, total: int | None
) -> None:
    await client.send_sms(TOKEN, PHONE, "first", sender="Shop")
    await client.send_sms(TOKEN, "998911112233", "second")
    fake.history_shape = shape

    page = await client.get_history(TOKEN)

    assert page.total == total
    newest = page.items[0]
    assert (newest.phone, newest.message, newest.sender) == ("998911112233", "second", "4546")
    assert newest.sms_id == fake.sent[1].sms_id
    assert newest.cost == uzs(50)
    assert isinstance(newest.created_at, datetime)
    assert page.items[1].sender == "Shop"


@pytest.mark.parametrize("zone", ["Asia/Tashkent", "America/Los_Angeles", "UTC"])
async def test_gateway_times_without_an_offset_are_read_in_the_gateway_zone(
    fake: FakeDevsms, zone: str
) -> None:
    # Whatever zone the gateway keeps (and whatever the machine's), the moment comes out right.
    fake.timezone = ZoneInfo(zone)
    async with DevsmsClient(fake.url, timeout=2.0, timezone=ZoneInfo(zone)) as client:
        before = datetime.now(UTC).replace(microsecond=0)
        sent = await client.send_sms(TOKEN, PHONE, TEXT)
        [entry] = (await client.get_history(TOKEN)).items
        assert sent.sms_id is not None
        record = await client.get_status(TOKEN, sms_id=sent.sms_id)
    for created in (entry.created_at, record.created_at):
        assert isinstance(created, datetime) and created.tzinfo is not None
        assert before <= created <= datetime.now(UTC) + timedelta(seconds=1)
        # Shown on the gateway's own clock.
        assert created.replace(tzinfo=None) == fake.find(sent.sms_id).created_at


def test_the_gateway_zone_is_a_setting_that_refuses_unknown_names(tmp_path: Any) -> None:
    values: dict[str, Any] = {"bot_token": "123456:" + "A" * 35, "database_path": tmp_path}
    assert Settings(_env_file=None, **values).gateway_zone == ZoneInfo("Asia/Tashkent")  # type: ignore[call-arg]
    chosen = Settings(_env_file=None, gateway_timezone="Europe/Moscow", **values)  # type: ignore[call-arg]
    assert chosen.gateway_zone == ZoneInfo("Europe/Moscow")
    with pytest.raises(ValidationError, match="GATEWAY_TIMEZONE"):
        Settings(_env_file=None, gateway_timezone="Mars/Olympus", **values)  # type: ignore[call-arg]


async def test_status_by_sms_id_and_by_request_id(fake: FakeDevsms, client: DevsmsClient) -> None:
    sent = await client.send_sms(TOKEN, PHONE, TEXT)
    assert sent.sms_id is not None and sent.request_id is not None
    fake.set_status(sent.sms_id, "DELIVERED")

    by_id = await client.get_status(TOKEN, sms_id=sent.sms_id)
    by_request = await client.get_status(TOKEN, request_id=sent.request_id)

    assert by_id == by_request
    assert by_id.status == "DELIVERED"
    assert by_id.message == TEXT


async def test_status_of_another_accounts_sms_is_not_found(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    sent = await client.send_sms(OTHER_TOKEN, PHONE, TEXT)

    with pytest.raises(DevsmsNotFound) as caught:
        await client.get_status(TOKEN, sms_id=sent.sms_id)

    assert caught.value.http_status == 404
    assert caught.value.gateway_text == "SMS topilmadi"
    assert len(fake.requests_to(STATUS_PATH)) == 1  # 404 is an answer, not a fault to retry


async def test_status_needs_exactly_one_id(client: DevsmsClient) -> None:
    with pytest.raises(ValueError):
        await client.get_status(TOKEN)
    with pytest.raises(ValueError):
        await client.get_status(TOKEN, sms_id=1, request_id="x")


# --- refusals -----------------------------------------------------------------------------------


async def test_unknown_token_is_unauthorized_without_retries(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    with pytest.raises(DevsmsUnauthorized) as caught:
        await client.get_balance("wrong-token")

    assert caught.value.http_status == 401
    assert caught.value.gateway_text == "Token noto'g'ri"
    assert len(fake.requests) == 1


async def test_malformed_token_is_refused_before_any_request(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    for token in ("", "   ", "abc\r\nX-Evil: 1", "токен"):
        with pytest.raises(DevsmsUnauthorized):
            await client.get_balance(token)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("phone", "message", "text"),
    [
        ("+998 90 123", TEXT, "Telefon raqami noto'g'ri formatda. Namuna: 998901234567"),
        (PHONE, "   ", "Xabar matni bo'sh bo'lishi mumkin emas"),
        (PHONE, "x" * 400, "Balans yetarli emas"),  # 3 parts × 50 > 100 left
    ],
)
async def test_send_refused_by_the_gateway_carries_its_text(
    fake: FakeDevsms, client: DevsmsClient, phone: str, message: str, text: str
) -> None:
    fake.accounts[TOKEN].balance = Decimal(100)

    with pytest.raises(DevsmsBadRequest) as caught:
        await client.send_sms(TOKEN, phone, message)

    assert caught.value.http_status == 400
    assert caught.value.gateway_text == text
    assert text in str(caught.value)
    assert fake.sent == []
    assert fake.accounts[TOKEN].balance == 100


async def test_403_is_forbidden_and_a_bad_request(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.fail_next(1, status=403, body=json.dumps({"success": False, "error": "Ruxsat yo'q"}))

    with pytest.raises(DevsmsForbidden) as caught:
        await client.get_balance(TOKEN)

    assert isinstance(caught.value, DevsmsBadRequest)
    assert caught.value.gateway_text == "Ruxsat yo'q"


async def test_success_false_with_http_200_is_a_refusal(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    refusal = json.dumps({"success": False, "error": "Yuboruvchi nomi tasdiqlanmagan"})
    fake.fail_next(1, status=200, body=refusal, path=SEND_PATH)

    with pytest.raises(DevsmsBadRequest) as caught:
        await client.send_sms(TOKEN, PHONE, TEXT, sender="Unknown")

    assert caught.value.gateway_text == "Yuboruvchi nomi tasdiqlanmagan"
    assert caught.value.http_status == 200


async def test_long_gateway_text_is_trimmed(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.fail_next(1, status=400, body=json.dumps({"success": False, "error": "xato " * 200}))

    with pytest.raises(DevsmsBadRequest) as caught:
        await client.get_balance(TOKEN)

    assert caught.value.gateway_text is not None
    assert len(caught.value.gateway_text) <= 300


# --- faults and retries -------------------------------------------------------------------------


async def test_get_retries_5xx_then_gives_up(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.fail_next(10, status=500)

    with pytest.raises(DevsmsGatewayError) as caught:
        await client.get_balance(TOKEN)

    assert caught.value.http_status == 500
    assert len(fake.requests) == GET_RETRIES + 1


async def test_get_recovers_when_a_retry_succeeds(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.fail_next(1, status=503)
    fake.fail_next(1, status=429)

    balance = await client.get_balance(TOKEN)

    assert balance.balance == uzs(1000)
    assert len(fake.requests) == 3


async def test_lasting_429_is_rate_limited(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.fail_next(10, status=429)

    with pytest.raises(DevsmsRateLimited):
        await client.get_history(TOKEN)

    assert len(fake.requests) == GET_RETRIES + 1


async def test_4xx_is_not_retried(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.fail_next(1, status=400)

    with pytest.raises(DevsmsBadRequest):
        await client.get_history(TOKEN)

    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        '{"success": true, "data": {"bal',
        "[1, 2, 3]",
        "",
    ],
    ids=["html", "truncated-json", "json-array", "empty"],
)
async def test_unreadable_answer_to_a_get_is_a_gateway_error(
    fake: FakeDevsms, client: DevsmsClient, body: str
) -> None:
    fake.fail_next(1, status=200, body=body)

    with pytest.raises(DevsmsGatewayError) as caught:
        await client.get_balance(TOKEN)

    assert caught.value.gateway_text is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, None),
        (502, "<html>Bad Gateway</html>"),
        (429, None),
        (200, "<html>oops</html>"),
        (200, '{"success": tr'),
    ],
)
async def test_send_without_usable_answer_is_unknown_and_never_retried(
    fake: FakeDevsms, client: DevsmsClient, status: int, body: str | None
) -> None:
    fake.fail_next(1, status=status, body=body, path=SEND_PATH)

    with pytest.raises(DevsmsSendUnknown):
        await client.send_sms(TOKEN, PHONE, TEXT)

    assert len(fake.requests_to(SEND_PATH)) == 1


async def test_send_timeout_is_unknown_and_the_gateway_got_it_exactly_once(
    fake: FakeDevsms, impatient: DevsmsClient
) -> None:
    fake.fail_next(1, hang=10.0, path=SEND_PATH)

    with pytest.raises(DevsmsSendUnknown):
        await impatient.send_sms(TOKEN, PHONE, TEXT)

    assert len(fake.requests_to(SEND_PATH)) == 1
    assert [sms.message for sms in fake.sent] == [TEXT]
    # The next call works normally: the hanging exchange did not poison the client.
    assert (await impatient.get_balance(TOKEN)).balance == uzs(950)


async def test_send_dropped_mid_request_is_unknown(fake: FakeDevsms, client: DevsmsClient) -> None:
    fake.fail_next(1, drop=True, process=True, path=SEND_PATH)

    with pytest.raises(DevsmsSendUnknown):
        await client.send_sms(TOKEN, PHONE, TEXT)

    assert len(fake.requests_to(SEND_PATH)) == 1
    assert len(fake.sent) == 1


async def test_get_timeout_is_retried_then_unavailable(
    fake: FakeDevsms, impatient: DevsmsClient
) -> None:
    fake.fail_next(5, hang=10.0)

    with pytest.raises(DevsmsUnavailable):
        await impatient.get_history(TOKEN)

    assert len(fake.requests) == 2  # get_retries=1


async def test_connection_refused_is_unavailable_for_gets_and_sends() -> None:
    async with DevsmsClient(closed_port_url(), timeout=1.0, get_retries=1, backoff=0.01) as client:
        with pytest.raises(DevsmsUnavailable):
            await client.get_balance(TOKEN)
        # Refused before anything left: definitely not sent, so not "unknown".
        with pytest.raises(DevsmsUnavailable):
            await client.send_sms(TOKEN, PHONE, TEXT)


async def test_closed_client_is_unavailable(fake: FakeDevsms) -> None:
    client = DevsmsClient(fake.url, timeout=1.0, backoff=0.01)
    await client.get_balance(TOKEN)
    await client.close()

    with pytest.raises(DevsmsUnavailable):
        await client.get_balance(TOKEN)
    assert len(fake.requests) == 1


# --- "not sent" only when nothing can have left -------------------------------------------------


async def test_answer_cut_off_mid_body_is_unknown_and_was_sent_once(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    fake.fail_next(1, cut=True, path=SEND_PATH)

    with pytest.raises(DevsmsSendUnknown):
        await client.send_sms(TOKEN, PHONE, TEXT)

    assert len(fake.requests_to(SEND_PATH)) == 1
    assert [sms.message for sms in fake.sent] == [TEXT]


async def test_runtime_error_after_the_request_left_is_unknown(
    fake: FakeDevsms, client: DevsmsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What aiohttp's StreamReader raises when the connection is gone while the answer is read.
    async def connection_closed(self: aiohttp.ClientResponse) -> bytes:
        raise RuntimeError("Connection closed.")

    monkeypatch.setattr(aiohttp.ClientResponse, "read", connection_closed)

    with pytest.raises(DevsmsSendUnknown):
        await client.send_sms(TOKEN, PHONE, TEXT)
    assert len(fake.sent) == 1  # it did go out: "not sent, send again" would charge twice


async def test_runtime_error_before_a_connection_is_not_sent(
    fake: FakeDevsms, client: DevsmsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_connection(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Session and connector has to use same event loop")

    monkeypatch.setattr(aiohttp.TCPConnector, "connect", no_connection)

    with pytest.raises(DevsmsUnavailable):
        await client.send_sms(TOKEN, PHONE, TEXT)
    assert fake.requests == []


async def test_session_closed_under_the_client_is_not_sent(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    await client.get_balance(TOKEN)
    session = client._session
    assert session is not None
    await session.close()  # aiohttp: RuntimeError("Session is closed") before any write

    with pytest.raises(DevsmsUnavailable):
        await client.send_sms(TOKEN, PHONE, TEXT)
    assert fake.requests_to(SEND_PATH) == []


# --- slots: waiting for one is "not sent yet", and one account cannot take them all -----------


async def test_send_waiting_for_a_slot_longer_than_its_timeout_is_sent_not_unknown(
    fake: FakeDevsms,
) -> None:
    # One slot; two slow sends (0.6 s each, under the 1 s timeout) hold it for 1.2 s.
    fake.fail_next(2, hang=0.6, path=SEND_PATH)
    async with DevsmsClient(
        fake.url, timeout=1.0, connections=1, per_token=1, slot_wait=5.0
    ) as client:
        slow = [asyncio.create_task(client.send_sms(TOKEN, PHONE, f"slow {n}")) for n in (1, 2)]
        await fake.wait_requests(1, path=SEND_PATH)
        started = time.monotonic()
        result = await client.send_sms(TOKEN, PHONE, "waited")
        waited = time.monotonic() - started
        await asyncio.gather(*slow)

    assert waited > 1.0  # longer than the send timeout, and still not "unknown"
    assert result.sms_id == fake.sent[-1].sms_id
    assert sorted(sms.message for sms in fake.sent) == ["slow 1", "slow 2", "waited"]


async def test_no_slot_in_time_is_not_sent_and_nothing_reaches_the_gateway(
    fake: FakeDevsms,
) -> None:
    fake.fail_next(1, hang=1.0, path=SEND_PATH)
    async with DevsmsClient(
        fake.url, timeout=2.0, connections=1, per_token=1, slot_wait=0.2
    ) as client:
        slow = asyncio.create_task(client.send_sms(TOKEN, PHONE, "slow"))
        await fake.wait_requests(1, path=SEND_PATH)
        with pytest.raises(DevsmsUnavailable):
            await client.send_sms(OTHER_TOKEN, PHONE, "no slot")
        with pytest.raises(DevsmsUnavailable):
            await client.get_balance(OTHER_TOKEN)  # busy: not retried into a longer wait
        await slow

    assert [request.json["message"] for request in fake.requests_to(SEND_PATH)] == ["slow"]
    assert fake.requests_to(BALANCE_PATH) == []


async def test_one_accounts_burst_does_not_make_another_account_wait(fake: FakeDevsms) -> None:
    fake.add_account("third-token", balance=1000, sms_price=50)
    fake.latency = 1.0  # every answer comes a second after the SMS was taken
    async with DevsmsClient(fake.url, timeout=3.0, connections=4, per_token=2) as client:
        bursts = [
            asyncio.create_task(client.send_sms(token, PHONE, f"bulk {token} {n}"))
            for token in (TOKEN, OTHER_TOKEN)
            for n in range(4)
        ]
        await fake.wait_requests(3, path=SEND_PATH)
        # Two accounts hold three of four slots; the last one is kept for an account that
        # has nothing in flight, so a single send goes out at once, not after a second.
        single = asyncio.create_task(client.send_sms("third-token", PHONE, "single"))
        async with asyncio.timeout(0.5):
            requests = await fake.wait_requests(4, path=SEND_PATH)
        assert requests[-1].token == "third-token"
        assert not any(task.done() for task in bursts)
        await asyncio.gather(single, *bursts)

    assert len(fake.sent) == 9


async def test_a_users_own_bulk_work_leaves_their_tap_a_slot(fake: FakeDevsms) -> None:
    fake.latency = 3.0  # every answer comes three seconds after the SMS was taken

    async def background_send(n: int) -> None:
        mark_background()  # as a bulk job's task does
        await client.send_sms(TOKEN, PHONE, f"bulk {n}")

    async with DevsmsClient(fake.url, timeout=8.0, connections=20, per_token=4) as client:
        bulk = [asyncio.create_task(background_send(n)) for n in range(6)]
        await fake.wait_requests(3, path=SEND_PATH)
        # The job holds three of the token's four slots; its other rows wait, and the
        # owner's own /send goes out at once, not when a row's answer frees a slot (3 s; the
        # margin is for a loaded machine).
        single = asyncio.create_task(client.send_sms(TOKEN, PHONE, "single"))
        async with asyncio.timeout(2.0):
            requests = await fake.wait_requests(4, path=SEND_PATH)
        assert requests[-1].json["message"] == "single"
        await asyncio.gather(single, *bulk)

    assert len(fake.sent) == 7


# --- secrets stay secret ------------------------------------------------------------------------


async def test_token_and_sms_text_never_reach_exceptions_or_logs(
    fake: FakeDevsms, impatient: DevsmsClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = json.dumps({"success": False, "error": f"Token {TOKEN} noto'g'ri"})
    fake.fail_next(1, status=401, body=echo)
    fake.fail_next(1, status=500, body=echo, path=SEND_PATH)
    fake.fail_next(1, hang=10.0, path=SEND_PATH)
    fake.fail_next(2, status=503, path=HISTORY_PATH)
    calls = [
        impatient.get_balance(TOKEN),
        impatient.send_sms(TOKEN, PHONE, TEXT),
        impatient.send_sms(TOKEN, PHONE, TEXT),
        impatient.get_history(TOKEN),
        impatient.get_status(TOKEN, sms_id=999_999),
    ]
    errors: list[DevsmsError] = []
    for call in calls:
        with pytest.raises(DevsmsError) as caught:
            await call
        errors.append(caught.value)

    assert [type(error) for error in errors] == [
        DevsmsUnauthorized,
        DevsmsSendUnknown,
        DevsmsSendUnknown,
        DevsmsGatewayError,
        DevsmsNotFound,
    ]
    assert errors[0].gateway_text == "Token *** noto'g'ri"
    for error in errors:
        assert TOKEN not in str(error) and TOKEN not in repr(error)
        assert TOKEN not in (error.gateway_text or "")
    assert "GET /get_balance.php -> 401" in caplog.text
    assert TOKEN not in caplog.text
    assert TEXT not in caplog.text
    assert "Bearer" not in caplog.text


# --- pure parsing -------------------------------------------------------------------------------

SMS = {"id": 7, "phone": "998901234567", "message": "Salom", "status": "DELIVERED", "cost": 50}


@pytest.mark.parametrize(
    "payload",
    [
        {"success": True, "data": [SMS]},
        [SMS],
        {"sms": [SMS], "total": 1},
        {"history": [SMS], "count": 1},
        {"items": [SMS], "pagination": {"total": 1}},
        {"messages": [SMS], "total": "1"},
        {"data": {"data": [SMS], "total": 1}},
        {"success": True, "data": {"list": [SMS]}, "total": 1},
        {"rows": [SMS, "junk", None, 5, [1]]},
    ],
)
def test_parse_history_finds_the_list(payload: object) -> None:
    page = parse_history(payload)

    assert page.items == [
        SmsRecord(
            sms_id=7, phone="998901234567", message="Salom", status="DELIVERED", cost=uzs(50)
        )
    ]
    assert page.total in (None, 1)


@pytest.mark.parametrize(
    "payload", [None, 5, "text", True, {}, {"data": None}, {"data": {"total": 3}}, {"sms": "x"}]
)
def test_parse_history_of_nonsense_is_an_empty_page(payload: object) -> None:
    # Without a list, the page is empty and says so: no entries were found, not "no more".
    assert parse_history(payload) == HistoryPage(items=[], total=None, listed=False)


@pytest.mark.parametrize("payload", [[], {"sms": []}, {"data": {"items": [], "total": 0}}])
def test_parse_history_of_an_empty_list_is_an_empty_page_with_a_list(payload: object) -> None:
    assert parse_history(payload).listed


def test_sms_record_tolerates_odd_field_types() -> None:
    page = parse_history(
        [
            {
                "sms_id": "12",
                "request_id": 345,
                "phone": 998901234567,
                "parts_count": "2",
                "total_cost": "$0.01",
                "created_at": "2024-05-01T10:00:00+05:00",
            },
            {"sms_id": True, "parts_count": 1.5, "total_cost": "lots", "created_at": "yesterday"},
        ]
    )

    first, second = page.items
    assert (first.sms_id, first.request_id, first.phone) == (12, "345", "998901234567")
    assert first.parts_count == 2
    assert first.cost == Money(Decimal("0.01"), "USD")
    assert isinstance(first.created_at, datetime) and first.created_at.utcoffset() is not None
    assert (second.sms_id, second.parts_count, second.cost) == (None, None, None)
    assert second.created_at == "yesterday"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
history_like = st.dictionaries(
    st.sampled_from(["data", "sms", "items", "total", "count", "id", "status", "created_at"]),
    json_values,
)


@given(json_values | history_like | st.lists(history_like))
def test_parse_history_never_raises(payload: Any) -> None:
    page = parse_history(payload)
    assert all(isinstance(item, SmsRecord) for item in page.items)


@pytest.mark.parametrize(
    ("status", "final"),
    [
        ("DELIVERED", True),
        ("delivered", True),
        ("REJECTED", True),
        ("UNDELIVERABLE", True),
        ("EXPIRED", True),
        ("waiting", False),
        ("sent", False),
        ("ACCEPTED", False),
        ("PARTDELIVERED", False),
        ("SOMETHING_NEW", False),
        (None, False),
    ],
)
def test_is_final_status(status: str | None, final: bool) -> None:
    assert is_final_status(status) is final
