"""The fake gateway itself: tests that rely on it need it to behave like the docs say."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from tests.fakes.fake_devsms import FakeDevsms, count_parts

TOKEN = "fake-token-1"
PHONE = "998901234567"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDevsms]:
    fake = FakeDevsms(seed=7)
    fake.add_account(TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    fake: FakeDevsms,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    **kwargs: Any,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with http.request(method, fake.url + path, headers=headers, **kwargs) as response:
        body = await response.text()
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, body


async def test_missing_token_is_401_and_still_recorded(
    fake: FakeDevsms, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, fake, "GET", "/get_balance.php", token=None)

    assert (status, body) == (401, {"success": False, "error": "Token noto'g'ri"})
    assert [(r.method, r.path, r.token) for r in fake.requests] == [
        ("GET", "/get_balance.php", None)
    ]


async def test_usd_account_answers_with_dollar_strings(
    fake: FakeDevsms, http: aiohttp.ClientSession
) -> None:
    fake.add_account("usd", balance="1", sms_price=Decimal("0.005"), currency="USD")

    _, sent = await call(
        http, fake, "POST", "/send_sms.php", token="usd", json={"phone": PHONE, "message": "Hi"}
    )
    _, balance = await call(http, fake, "GET", "/get_balance.php", token="usd")

    assert sent["data"]["total_cost"] == "$0.005"
    assert balance["data"]["balance"] == "$0.995"
    assert balance["data"]["statistics"]["total_spent"] == "$0.005"


def test_parts_are_counted_like_the_gateway_bills() -> None:
    assert count_parts("a" * 160) == 1
    assert count_parts("a" * 161) == 2
    assert count_parts("{" * 80) == 1  # extension characters take two places
    assert count_parts("oʻ" * 35) == 1  # U+02BB is not GSM-7: 70 per part
    assert count_parts("oʻ" * 36) == 2


async def test_an_answer_delayed_by_latency_is_recorded_before_it_is_sent(
    fake: FakeDevsms, http: aiohttp.ClientSession
) -> None:
    fake.latency = 5.0
    send = asyncio.create_task(
        call(http, fake, "POST", "/send_sms.php", json={"phone": PHONE, "message": "x"})
    )

    async with asyncio.timeout(2.0):
        sent = await fake.wait_sent(1)

    assert [sms.message for sms in sent] == ["x"]
    assert not send.done()
    send.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await send


async def test_fail_next_for_one_path_leaves_the_others_alone(
    fake: FakeDevsms, http: aiohttp.ClientSession
) -> None:
    fake.fail_next(1, status=502, body="<html>bad gateway</html>", path="/get_history.php")

    balance_status, _ = await call(http, fake, "GET", "/get_balance.php")
    history_status, history_body = await call(http, fake, "GET", "/get_history.php")
    again_status, _ = await call(http, fake, "GET", "/get_history.php")

    assert (balance_status, history_status, again_status) == (200, 502, 200)
    assert history_body == "<html>bad gateway</html>"


async def test_a_held_send_is_processed_and_answered_only_on_release(
    fake: FakeDevsms, http: aiohttp.ClientSession
) -> None:
    fake.hold("/send_sms.php")
    send = asyncio.create_task(
        call(http, fake, "POST", "/send_sms.php", json={"phone": PHONE, "message": "held"})
    )
    [held] = await fake.wait_held(1)

    assert [sms.message for sms in fake.sent] == ["held"]  # charged before the answer
    assert (held.answered, fake.in_flight, send.done()) == (False, 1, False)
    balance_status, _ = await call(http, fake, "GET", "/get_balance.php")  # other paths flow
    assert balance_status == 200
    fake.release()
    status, body = await send
    assert (status, body["success"], held.answered, fake.in_flight) == (200, True, True, 0)
    assert fake.max_in_flight == 2  # the balance went through beside the held send


async def test_each_request_records_the_fault_it_met(
    fake: FakeDevsms, http: aiohttp.ClientSession
) -> None:
    fake.failure_mode = "garbage"
    fake.fail_next_in_mode(1, path="/send_sms.php")
    fake.fail_next(1, status=502, path="/get_history.php")

    await call(http, fake, "POST", "/send_sms.php", json={"phone": PHONE, "message": "x"})
    await call(http, fake, "GET", "/get_history.php")
    await call(http, fake, "GET", "/get_balance.php")

    assert [(r.path, r.fault) for r in fake.requests] == [
        ("/send_sms.php", "garbage"),
        ("/get_history.php", "502"),
        ("/get_balance.php", None),
    ]
    assert fake.sent == []  # a fault answers without processing, unless told otherwise


async def test_random_failures_are_reproducible_with_a_seed(http: aiohttp.ClientSession) -> None:
    outcomes: list[list[int]] = []
    for _ in range(2):
        async with FakeDevsms(seed=42) as fake:
            fake.add_account(TOKEN)
            fake.failure_rate, fake.failure_mode = 0.5, "503"
            statuses = [(await call(http, fake, "GET", "/get_balance.php"))[0] for _ in range(20)]
            outcomes.append(statuses)

    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 503}


async def test_history_limit_is_validated_and_capped(
    fake: FakeDevsms, http: aiohttp.ClientSession
) -> None:
    for n in range(3):
        await call(http, fake, "POST", "/send_sms.php", json={"phone": PHONE, "message": str(n)})

    bad_status, bad_body = await call(http, fake, "GET", "/get_history.php?limit=abc")
    _, page = await call(http, fake, "GET", "/get_history.php?limit=1000&offset=1")

    assert bad_status == 400 and bad_body["success"] is False
    assert [item["message"] for item in page["data"]["sms"]] == ["1", "0"]
    assert page["data"]["total"] == 3
