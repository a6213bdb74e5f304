"""/settings: sender, low-balance threshold in so'm or SMS, alerts on/off, delivery results."""

from __future__ import annotations

import time

from tests.conftest import GOOD_TOKEN
from tests.support.harness import Harness


async def connect(app: Harness, lang: str = "en") -> None:
    await app.send("/start", lang=lang)
    await app.send(GOOD_TOKEN, lang=lang)


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


async def test_sender_with_arabic_indic_digits_is_refused_and_nothing_changes(
    app: Harness,
) -> None:
    await connect(app)
    [shown] = await app.send("/settings")
    await app.tap(shown, "Change sender")
    [refused] = await app.send("٤٥٤٦")
    assert "Use only Latin letters (A–Z) and the digits 0–9." in refused.text
    assert "/cancel keeps the current one." in refused.text
    assert (await app.services.users.get(1)).sender is None
    saved, again = await app.send(" 4546 ")
    assert saved.text == "Saved: SMS will go out from 4546."
    assert "Sender: 4546" in again.text


async def test_a_sender_saved_with_unicode_digits_earlier_is_not_used(app: Harness) -> None:
    # Stored by an older version that took any Unicode digit: the gateway would refuse it.
    await connect(app)
    await app.services.users.set_sender(1, "٤٥٤٦")
    [shown] = await app.send("/settings")
    assert "Sender: 4546 (default)" in shown.text


async def test_a_4096_character_threshold_is_refused_at_once(app: Harness) -> None:
    await connect(app)
    [shown] = await app.send("/settings")
    await app.tap(shown, "Alert threshold")
    for hostile in ("1" + "\n" * 4094 + "x", "1" + " " * 4094 + "x", "1 " * 2047 + "x"):
        started = time.thread_time()
        [refused] = await app.send(hostile)
        # The old pattern backtracked for about 80 s of CPU on such a message.
        assert time.thread_time() - started < 1.0
        assert "Send a whole number" in refused.text
    assert (await app.services.alerts.get(1)).threshold_value is None


async def test_every_settings_button_is_answered_once_without_a_text(app: Harness) -> None:
    await connect(app)
    [shown] = await app.send("/settings")
    labels = [label for label, _ in shown.buttons()]
    assert len(labels) == 9  # no "Default sender" without an own one; the last: stop list
    for label in labels:
        before = len(app.answers())
        await app.tap(shown, label)
        assert [answer.text for answer in app.answers()[before:]] == [None], label
        await app.send("/cancel")
    assert app.session.refused == []
