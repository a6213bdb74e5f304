"""/settings: sender, low-balance threshold in so'm or SMS, alerts on/off, delivery results."""

from __future__ import annotations

import pytest

from handlers.settings import parse_threshold
from tests.conftest import GOOD_TOKEN
from tests.support.harness import Harness


async def connect(app: Harness, lang: str = "en") -> None:
    await app.send("/start", lang=lang)
    await app.send(GOOD_TOKEN, lang=lang)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("20000", ("som", 20000)),
        ("20 000 so'm", ("som", 20000)),
        ("5000 сум", ("som", 5000)),
        ("100 sms", ("sms", 100)),
        ("100 ta SMS", ("sms", 100)),
        ("50 смс", ("sms", 50)),
    ],
)
def test_threshold_parsing(typed: str, expected: tuple[str, int]) -> None:
    parsed = parse_threshold(typed)
    assert parsed is not None
    assert (parsed[0], int(parsed[1])) == expected


@pytest.mark.parametrize("typed", ["", "0", "-5", "abc", "12.5", "10 dollars", "9" * 14])
def test_bad_thresholds_are_refused(typed: str) -> None:
    assert parse_threshold(typed) is None


async def test_settings_show_defaults(app: Harness) -> None:
    await connect(app)
    [shown] = await app.send("⚙️ Settings")
    assert "Sender: 4546 (default)" in shown.text
    assert "Low-balance alert: below 10\u00a0000 so'm" in shown.text
    assert "Delivery results: failures only" in shown.text


async def test_threshold_in_sms_and_in_som(app: Harness) -> None:
    await connect(app)
    [shown] = await app.send("/settings")
    [ask] = await app.tap(shown, "Alert threshold")
    assert "100 sms" in ask.text
    [refused] = await app.send("lots")
    assert "Send a whole number" in refused.text
    saved, again = await app.send("100 sms")
    assert saved.text == "Saved."
    assert "when fewer than 100 SMS are left" in again.text
    prefs = await app.services.alerts.get(1)
    assert (prefs.threshold_unit, prefs.threshold_value) == ("sms", "100")
    await app.tap(again, "Alert threshold")
    _, again = await app.send("25 000")
    assert "below 25\u00a0000 so'm" in again.text


async def test_alerts_toggle_and_delivery_mode_cycle_in_place(app: Harness) -> None:
    await connect(app)
    [shown] = await app.send("/settings")
    [off] = await app.tap(shown, "Turn alerts off")
    assert off.message_id == shown.message_id
    assert "Low-balance alert: off" in off.text
    assert not (await app.services.alerts.get(1)).balance_alerts
    [on] = await app.tap(off, "Turn alerts on")
    assert "Low-balance alert: below" in on.text
    modes = []
    for _ in range(3):
        [shown] = await app.tap(shown, "Delivery results")
        modes.append((await app.services.alerts.get(1)).delivery_notify)
    assert modes == ["all", "off", "failures"]
    assert "Delivery results: failures only" in shown.text


async def test_sticker_in_the_threshold_dialog(app: Harness) -> None:
    await connect(app)
    [shown] = await app.send("/settings")
    await app.tap(shown, "Alert threshold")
    [reply] = await app.send_sticker()
    assert "send it as a text message" in reply.text
    [reply] = await app.send("/cancel")
    assert "Cancelled." in reply.text
