"""Honest prices as a user sees them: numbers abroad in the single-send preview and in the bulk
dry run (listed apart, Start asks once more), the dry run's parts per row, and its cheaper
spelling with the saving in money."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import Settings
from services.bulk import BulkRunner
from tests.conftest import GOOD_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness
from tests.support.notifiers import install
from tests.support.recording import SentMessage

SEND = "/send_sms.php"
RU_PHONE = "+7 916 123 45 67"
APOSTROPHE = "\u02bb"  # the Uzbek oʻ as typed on phones: not GSM-7


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    return make_settings(tmp_path, devsms.url, bulk_rate=200, bulk_max_rows=50)


@pytest.fixture
async def bulk_app(app: Harness) -> AsyncIterator[Harness]:
    runner: BulkRunner = app.dp["bulk_runner"]
    install(app.dp, app.bot, None, app.services)
    yield app
    await runner.stop()


async def connect(app: Harness) -> None:
    await app.send("/start")
    await app.send(GOOD_TOKEN)


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


async def preview_for(app: Harness, phone: str, text: str) -> SentMessage:
    await app.send("/send")
    await app.send(phone)
    [preview] = await app.send(text)
    return preview


async def dry_run(app: Harness, numbers: list[str], text: str) -> SentMessage:
    await app.send("/bulk")
    await app.send("\n".join(numbers))
    return (await app.send(text))[-1]


# --- single send ------------------------------------------------------------------------------


async def test_a_first_sms_abroad_says_its_price_is_known_after_sending(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    devsms.country_prices["7"] = Decimal(300)
    preview = await preview_for(app, RU_PHONE, "Hello")
    assert "outside Uzbekistan" in preview.text
    assert "Cost: international, the price is known only after sending." in preview.text
    assert "× 50 so'm" not in preview.text  # never the local price
    assert "✅ Send" in labels(preview)

    [result] = await app.tap(preview, "Send")
    assert "cost: 300 so'm" in result.text  # the real cost, from the gateway's answer
    assert "🌍 Billed as a send to: Russia (RU)" in result.text


async def test_a_later_sms_to_that_country_is_priced_as_the_gateway_charged(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    devsms.country_prices["7"] = Decimal(300)
    await app.tap(await preview_for(app, RU_PHONE, "Hello"), "Send")
    long_text = "x" * 200  # two parts
    preview = await preview_for(app, "+7 903 123 45 67", long_text)
    assert "Cost: 2 × 300 so'm = 600 so'm" in preview.text
    assert "the rate devsms.uz charged for your last SMS to this country" in preview.text
    # Another country is still unknown.
    other = await preview_for(app, "+1 202 555 0123", "Hi")
    assert "the price is known only after sending" in other.text


async def test_an_uzbek_number_keeps_the_local_price(app: Harness) -> None:
    await connect(app)
    preview = await preview_for(app, "901234567", "Hi")
    assert "Cost: 1 × 50 so'm = 50 so'm" in preview.text
    assert "outside Uzbekistan" not in preview.text


# --- bulk dry run ------------------------------------------------------------------------------


async def test_the_dry_run_shows_parts_per_row(app: Harness) -> None:
    await connect(app)
    review = await dry_run(app, ["901234567", "901234568", "901234569"], "Salom")
    assert "Parts per row: GSM-7: 3 rows × 1 part" in review.text
    mixed = await dry_run(app, ["901234567"], "Привет")
    assert "Parts per row: UCS-2: 1 row × 1 part" in mixed.text


async def test_rows_abroad_are_listed_apart_and_start_asks_about_them(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    review = await dry_run(app, ["901234567", "79161234567", "79031234567"], "Hi")
    assert "🌍 Rows abroad: 2." in review.text
    assert "+7 RU: rows 2, parts 2, price known after sending" in review.text
    # Only the Uzbek row is in the cost; the rest is said to be left out.
    assert "SMS parts in total: 3 · cost: 50 so'm" in review.text
    assert "Not in the cost, priced only after sending: rows abroad 2" in review.text

    [question] = await app.tap(review, "Start")
    assert "Rows abroad: 2" in question.text and "Start anyway?" in question.text
    assert devsms.requests_to(SEND) == []
    assert labels(question) == ["🚀 Start, rows abroad included", "✖️ Cancel"]
    sent = await app.tap(question, "Start, rows abroad included")
    assert any("Bulk job #" in m.text for m in sent)
    await devsms.wait_sent(3)


async def test_send_later_asks_about_rows_abroad_as_start_does(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    review = await dry_run(app, ["901234567", "79161234567"], "Hi")
    [question] = await app.tap(review, "Send later")
    assert "Rows abroad: 1" in question.text and "Schedule it anyway?" in question.text
    assert labels(question) == ["🕒 Send later, rows abroad included", "✖️ Cancel"]
    assert await app.services.schedule.open_of(1, 10) == []
    sent = await app.tap(question, "Send later, rows abroad included")
    [ask] = [m for m in sent if "When should it go out?" in m.text]
    done = await app.tap(ask, "In 1 hour")
    assert any("Scheduled for" in m.text for m in done)
    [item] = await app.services.schedule.open_of(1, 10)
    assert item.kind == "bulk"
    assert devsms.requests_to(SEND) == []
    # Cancel under the question schedules nothing.
    review = await dry_run(app, ["79161234567"], "Hi")
    [question] = await app.tap(review, "Send later")
    [cancelled] = await app.tap(question, "Cancel")
    assert "Cancelled. Nothing was sent." in cancelled.text
    assert len(await app.services.schedule.open_of(1, 10)) == 1


async def test_send_later_of_a_list_at_home_asks_nothing_more(app: Harness) -> None:
    await connect(app)
    review = await dry_run(app, ["901234567"], "Hi")
    sent = await app.tap(review, "Send later")
    assert [m for m in sent if "When should it go out?" in m.text]
    assert not [m for m in sent if "Rows abroad" in m.text]


async def test_cancel_at_the_abroad_question_sends_nothing(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    review = await dry_run(app, ["79161234567"], "Hi")
    [question] = await app.tap(review, "Start")
    [cancelled] = await app.tap(question, "Cancel")
    assert "Cancelled. Nothing was sent." in cancelled.text
    assert await app.state_of() is None
    assert devsms.requests_to(SEND) == []


async def test_the_cheaper_spelling_shows_the_saving_and_rewrites_the_template(
    bulk_app: Harness, devsms: FakeDevsms
) -> None:
    app = bulk_app
    await connect(app)
    # 100 characters with oʻ: UCS-2, two parts; with a plain apostrophe GSM-7, one part.
    text = f"O{APOSTROPHE}zbek " + "a" * 94
    review = await dry_run(app, ["901234567", "901234568"], text)
    assert "UCS-2: 2 rows × 2 parts" in review.text
    assert "SMS parts with plain apostrophes and quotes: 2 instead of 4, 100 so'm less." in (
        review.text
    )
    assert "🪶 Cheaper spelling" in labels(review)

    *_, again = await app.tap(review, "Cheaper spelling")
    assert "GSM-7: 2 rows × 1 part" in again.text
    assert "O'zbek" in again.text
    assert "Cheaper spelling" not in " ".join(labels(again))
    sent = await app.tap(again, "Start")
    assert any("Bulk job #" in m.text for m in sent)
    smses = await devsms.wait_sent(2)
    assert {sms.message for sms in smses} == {"O'zbek " + "a" * 94}


async def test_no_cheaper_offer_when_it_saves_nothing(app: Harness) -> None:
    await connect(app)
    review = await dry_run(app, ["901234567"], f"O{APOSTROPHE}zbek")  # one part either way
    assert "plain apostrophes" not in review.text
    assert "🪶 Cheaper spelling" not in labels(review)


async def test_an_old_dry_runs_cheaper_button_does_nothing(app: Harness) -> None:
    await connect(app)
    old = await dry_run(app, ["901234567"], f"O{APOSTROPHE}zbek " + "a" * 94)
    await dry_run(app, ["901234567"], "Hi")
    await app.tap(old, "Cheaper spelling")
    assert "no longer active" in (app.answers()[-1].text or "")
