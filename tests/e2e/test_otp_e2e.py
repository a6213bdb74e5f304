"""/otp and honest prices end to end: `python -m bot` against fake Telegram and devsms.

One bot process (DEVSMS_TIMEOUT=1, LOG_LEVEL=DEBUG) serves every test of this module; each test
is a user with a devsms account of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
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
    connect_token,
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import ChatMessage, FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SEND: Final = "/send_sms.php"
PHONE: Final = "998901234567"
# Longer than the bot's DEVSMS_TIMEOUT=1: the gateway takes the code, answers too late.
HANG: Final = 3.0
WARNING: Final = "if its moderation refuses the company name, the SMS is <b>not</b> sent"


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess

    async def user(self, user_id: int) -> ChatUser:
        token = f"devsms-otp-token-{user_id}"
        self.devsms.add_account(token, balance=10_000, sms_price=50)
        user = ChatUser(self.telegram, user_id=user_id, language_code="en")
        await connect_token(user, token)
        return user


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("otp")), telegram, devsms)
    try:
        bot = await launcher.started(extra_env={"DEVSMS_TIMEOUT": "1", "LOG_LEVEL": "DEBUG"})
        yield World(telegram, devsms, bot)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


def sends_of(devsms: FakeDevsms, user_id: int) -> list[dict[str, object]]:
    token = f"devsms-otp-token-{user_id}"
    return [r.json for r in devsms.requests_to(SEND) if r.token == token]


async def confirm_step(user: ChatUser, code: str, company: str = "Oila Market") -> ChatMessage:
    await user.ask("/otp", "Verification code by SMS")
    kinds = await user.ask("+998 90 123 45 67", "What is the code for?")
    assert kinds.button_texts == ["1 — confirm an operation", "2 — password", "✖️ Cancel"]
    user.tap(kinds, "2 — password")
    await user.reply_after(kinds.message_id, "company name")
    await user.ask(company, "type the code")
    return await user.ask(code, "Check before sending")


async def test_an_otp_goes_out_once_with_the_right_fields(world: World) -> None:
    user = await world.user(2001)
    confirm = await confirm_step(user, "730512")
    text = confirm.text or ""
    assert "Code: 730512" in text and "Company name: Oila Market" in text
    assert "devsms.uz warns:" in text
    assert sends_of(world.devsms, 2001) == []

    user.tap(confirm, "Send the code")
    result = await user.wait_edited(confirm, "Code sent")
    assert "Code: 730512" in (result.text or "")
    assert sends_of(world.devsms, 2001) == [
        {
            "phone": PHONE,
            "type": "universal_otp",
            "template_type": 2,
            "service_name": "Oila Market",
            "otp_code": "730512",
        }
    ]
    # A second tap on the sent confirm changes nothing.
    assert result.button_texts == ["🔄 Refresh status"]
    assert len(sends_of(world.devsms, 2001)) == 1
    assert "730512" not in world.bot.log_text()  # the code is a secret for the log


async def test_a_timeout_is_unknown_and_never_repeated(world: World) -> None:
    user = await world.user(2002)
    confirm = await confirm_step(user, "551177")
    world.devsms.fail_next(1, path=SEND, hang=HANG)
    user.tap(confirm, "Send the code")
    unknown = await user.wait_edited(confirm, "did not answer in time")
    assert "may or may not have gone out" in (unknown.text or "")
    assert unknown.button_texts == ["🔎 Check status"]
    # The gateway did take it; the bot never asks again.
    await world.devsms.wait_requests(1, path=SEND)
    assert len(sends_of(world.devsms, 2002)) == 1
    rows = world.bot.query("SELECT state, kind FROM outbox WHERE user_id = ? ORDER BY id", 2002)
    assert rows == [("unknown", "otp")]
    assert "551177" not in world.bot.log_text()


async def test_an_international_preview_says_the_price_comes_after_sending(
    world: World,
) -> None:
    user = await world.user(2003)
    world.devsms.country_prices["7"] = Decimal(320)
    await user.ask("/send", "Whom to send to?")
    await user.ask("+7 916 123 45 67", "Now send the text")
    preview = await user.ask("Hello from Tashkent", "Check before sending")
    assert "Cost: international, the price is known only after sending." in (preview.text or "")
    assert "× 50 so'm" not in (preview.text or "")
    user.tap(preview, "✅ Send")
    result = await user.wait_edited(preview, "Sent.")
    assert "cost: 320 so'm" in (result.text or "")  # the real cost, as the gateway billed it
