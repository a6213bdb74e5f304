"""Metrics and delivery callbacks end to end: `python -m bot` with its web server on
127.0.0.1 (WEB_PORT), PUBLIC_BASE_URL pointing at it (http is allowed for loopback only), the
fake devsms calling the callback URL each send carried, the fake Telegram recording what the
user reads."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import report_logs_of
from tests.e2e.harness import (
    BOT_TOKEN,
    BotLauncher,
    BotProcess,
    ChatUser,
    connect_token,
    unhandled_errors,
)
from tests.fakes.fake_devsms import STATUS, FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PHONE: Final = "998901234567"
METRICS_TOKEN: Final = "scrape-" + "k" * 20
WAIT: Final = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess
    base: str

    async def user(self, user_id: int) -> ChatUser:
        token = f"devsms-cb-token-{user_id}"
        self.devsms.add_account(token, balance=10_000, sms_price=50)
        user = ChatUser(self.telegram, user_id=user_id, language_code="en")
        await connect_token(user, token)
        return user

    async def metrics(self, token: str | None = METRICS_TOKEN) -> tuple[int, dict[str, float]]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base + "/metrics", headers=headers) as answer,
        ):
            text = await answer.text()
        if answer.status != 200:
            return answer.status, {}
        samples = {
            sample.name + _labels(sample.labels): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return answer.status, samples


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("callbacks")), telegram, devsms)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        bot = await launcher.started(
            extra_env={
                "WEB_PORT": str(port),
                "PUBLIC_BASE_URL": base,
                "METRICS_TOKEN": METRICS_TOKEN,
            }
        )
        yield World(telegram, devsms, bot, base)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


async def send_one(user: ChatUser, devsms: FakeDevsms, text: str) -> int:
    """A confirmed /send; returns the gateway's sms id."""
    preview = await user.ask(f"/send {PHONE} {text}", "Check before sending")
    user.tap(preview, "✅ Send")
    await user.wait_edited(preview, "Sent.")
    return next(sms.sms_id for sms in devsms.sent if sms.message == text)


def results_about(user: ChatUser, sms_id: int) -> list[str]:
    return [
        message.text or ""
        for message in user.bot_messages()
        if f"SMS id: {sms_id}" in (message.text or "") and "rejected" in (message.text or "")
    ]


async def until(telegram: FakeTelegram, check: Callable[[], object]) -> None:
    await telegram.wait_for(check, WAIT)


async def test_metrics_want_the_token_and_count_a_send(world: World) -> None:
    assert (await world.metrics(None))[0] == 401
    assert (await world.metrics("wrong"))[0] == 401
    status, before = await world.metrics()
    assert status == 200
    user = await world.user(3001)
    await send_one(user, world.devsms, "metrics please")
    _, after = await world.metrics()
    sent = "devsms_bot_sms_total{kind=single,outcome=sent}"
    assert after[sent] == before.get(sent, 0) + 1
    gateway = "devsms_bot_gateway_calls_total{endpoint=/send_sms.php,result=2xx}"
    assert after[gateway] == before.get(gateway, 0) + 1
    handled = "devsms_bot_updates_total{outcome=handled,type=message}"
    assert after[handled] > before.get(handled, 0)
    assert after["devsms_bot_handler_seconds_count{type=callback_query}"] >= 1
    assert not any(PHONE in key or "3001" in key for key in after)


async def test_a_callback_tells_the_result_once_and_forged_or_replayed_ones_nothing(
    world: World,
) -> None:
    devsms = world.devsms
    user = await world.user(3002)
    first = await send_one(user, devsms, "first of three")
    second = await send_one(user, devsms, "second of three")
    third = await send_one(user, devsms, "third of three")
    for sms_id in (first, second, third):
        assert (devsms.find(sms_id).callback_url or "").startswith(
            world.base + "/devsms/callback/"
        )

    devsms.set_status(first, "REJECTED")
    assert await devsms.call_back(first) == 204
    await until(world.telegram, lambda: results_about(user, first))

    # Forged: a token of the right shape the bot never made, and garbage.
    devsms.set_status(third, "REJECTED")
    forged = world.base + "/devsms/callback/" + secrets.token_urlsafe(32)
    assert await devsms.call_back(third, url=forged) == 204
    assert await devsms.call_back(third, url=world.base + "/devsms/callback/nope") == 404
    # Replayed: the first SMS's own URL again (once the per-token limit lets it in).
    statuses_before = len(devsms.requests_to(STATUS))
    for _ in range(40):  # the per-token limit is one call in 2 s
        answer = await devsms.call_back(first, body={"sms_id": first})
        if answer != 429:
            break
        await asyncio.sleep(0.25)
    assert answer == 204
    # A barrier: the inbox works callbacks off in order, so once the second SMS's result is
    # told, the forged and replayed calls before it have been handled.
    devsms.set_status(second, "REJECTED")
    assert await devsms.call_back(second) == 204
    await until(world.telegram, lambda: results_about(user, second))

    assert len(results_about(user, first)) == 1
    assert results_about(user, third) == []  # only polling, 30 s on, will find it
    status_calls = [r.query.get("sms_id") for r in devsms.requests_to(STATUS)]
    assert status_calls[statuses_before:] == [str(second)]  # the replay asked nothing
