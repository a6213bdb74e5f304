"""/stats and /export end to end: the real bot draws its chart in its chart process and sends
it as a photo, redraws it in place, and exports the account's history (synced from the fake
gateway, SMS sent outside the bot included) as a CSV.

One `python -m bot` serves the module; the traffic sync runs every second.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
    wait_gateway_requests,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PNG: Final = b"\x89PNG\r\n\x1a\n"
HISTORY: Final = "/get_history.php"
REPLY: Final = 20.0  # the first chart starts the chart process (matplotlib's import)


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess

    def user(self, user_id: int) -> ChatUser:
        self.devsms.add_account(token_of(user_id), balance=10_000, sms_price=50)
        return ChatUser(self.telegram, user_id=user_id, language_code="en")


def token_of(user_id: int) -> str:
    return f"devsms-stats-token-{user_id}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("stats")), telegram, devsms)
    try:
        bot = await launcher.started(
            extra_env={"DEFAULT_LANGUAGE": "en", "TRAFFIC_SYNC_INTERVAL": "1"}
        )
        yield World(telegram, devsms, bot)
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


async def synced(world: World, user_id: int) -> None:
    """Waits for two more history reads of the user's token: a whole sync round after now."""
    token = token_of(user_id)
    seen = len([r for r in world.devsms.requests_to(HISTORY) if r.token == token])
    await wait_gateway_requests(world.devsms, seen + 2, path=HISTORY, token=token)


async def test_stats_sends_a_chart_and_redraws_it_in_place(world: World) -> None:
    user = world.user(2001)
    await connect_token(user, token_of(2001))
    for n, status in enumerate(["DELIVERED", "DELIVERED", "REJECTED"]):
        world.devsms.sent_elsewhere(token_of(2001), "998901234567", f"OTP {n}", status=status)
    await synced(world, 2001)

    chart = await user.ask("/stats", "Last 7 days", timeout=REPLY)
    assert "photo" in chart.message and chart.document is not None
    assert chart.document.content.startswith(PNG)
    assert "SMS: 3 · delivered 2, not delivered 1, waiting 0" in (chart.text or "")
    assert "Delivery rate: 66.7%" in (chart.text or "")
    assert chart.button_texts == ["• 7 days", "30 days", "90 days"]

    tap = user.tap(chart, "90 days")
    assert (await user.answer_to(tap)).get("text") == "Drawing the chart…"
    redrawn = await user.wait_edited(chart, "Last 90 days", timeout=REPLY)
    assert redrawn.button_texts == ["7 days", "30 days", "• 90 days"]
    assert redrawn.document is not None and redrawn.document.content.startswith(PNG)
    assert redrawn.document.file_id != chart.document.file_id
    assert len([m for m in user.bot_messages() if "photo" in m.message]) == 1


async def test_export_sends_a_csv_of_the_gateways_history(world: World) -> None:
    user = world.user(2002)
    await connect_token(user, token_of(2002))
    sent = [
        world.devsms.sent_elsewhere(token_of(2002), "998901234567", "Code 1", status="DELIVERED"),
        world.devsms.sent_elsewhere(token_of(2002), "998907654321", "=1+2", status="REJECTED"),
        world.devsms.sent_elsewhere(token_of(2002), "998901112233", "Salom " * 30),
    ]
    await synced(world, 2002)

    menu = await user.ask("/export", "Choose the period")
    user.tap(menu, "This month")
    formats = await user.wait_edited(menu, "Choose the file format")
    user.tap(formats, "CSV")
    document = await user.reply_after(formats.message_id, "3 SMS", timeout=REPLY)
    assert document.document is not None
    assert (document.document.file_name or "").endswith(".csv")
    header, *rows = list(csv.reader(io.StringIO(document.document.content.decode("utf-8-sig"))))
    assert header[:6] == ["Time", "Phone", "Text", "Parts", "Cost", "Status"]
    # Oldest first; the gateway's clock is Tashkent's, as is the user's (the default zone).
    expected = [
        [
            sms.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            sms.phone,
            "'=1+2" if sms.message == "=1+2" else sms.message,
            str(sms.parts_count),
            str(sms.cost),
            sms.status,
            "elsewhere",
            "",
            "",
        ]
        for sms in sent
    ]
    assert sorted(rows) == sorted(expected)
    await user.wait_edited(formats, "Exported 3 SMS")
