"""OTP sends: input rules, the universal_otp call against the fake gateway, the outbox record
made before it, "unknown" without a retry, and reconciliation through the history."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.logging_setup import setup_logging
from services.devsms import (
    SEND_PATH,
    DevsmsBadRequest,
    DevsmsClient,
    DevsmsSendUnknown,
    SmsRecord,
)
from services.otp import (
    CodeKeeper,
    CodeProblem,
    InvalidCode,
    InvalidName,
    NameProblem,
    OtpRequest,
    clean_code,
    clean_service_name,
    code_of,
    codes_in,
    generate_code,
    outbox_text,
)
from services.reconcile import OpenSend, SendKind, pair
from services.sending import Outcome, SmsSender
from services.tracker import DeliveryTracker
from storage import OutboxKind, OutboxRepo, OutboxState
from tests.fakes.fake_devsms import ERR_MODERATION, FakeDevsms
from tests.support.watch_env import World

TOKEN = "tok-OTP-1"
PHONE = "998901234567"
CODE = "480913"
OTP = OtpRequest(template_type=1, service_name="Oila Market", code=CODE)


# --- input rules ------------------------------------------------------------------------------


def test_company_names_are_one_short_line() -> None:
    assert clean_service_name("  Oila   Market ") == "Oila Market"
    assert clean_service_name("Oʻzbek Savdo") == "Oʻzbek Savdo"
    for raw, problem in [
        ("", NameProblem.EMPTY),
        ("   ", NameProblem.EMPTY),
        ("A", NameProblem.TOO_SHORT),
        ("X" * 31, NameProblem.TOO_LONG),
        ("Y" * 5000, NameProblem.TOO_LONG),
        ("Oila\nMarket", NameProblem.CONTROL),
        ("Oila\u202eMarket", NameProblem.CONTROL),
        ("---", NameProblem.NO_LETTERS),
    ]:
        with pytest.raises(InvalidName) as caught:
            clean_service_name(raw)
        assert caught.value.problem is problem, raw


def test_codes_are_four_to_eight_digits() -> None:
    assert clean_code(" 12 34 ") == "1234"
    assert clean_code("١٢٣٤٥") == "12345"
    assert clean_code("0007") == "0007"
    for raw, problem in [
        ("", CodeProblem.NOT_DIGITS),
        ("12a4", CodeProblem.NOT_DIGITS),
        ("123", CodeProblem.TOO_SHORT),
        ("123456789", CodeProblem.TOO_LONG),
        ("1" * 5000, CodeProblem.TOO_LONG),
    ]:
        with pytest.raises(InvalidCode) as caught:
            clean_code(raw)
        assert caught.value.problem is problem, raw


def test_generated_codes_are_six_digits_and_vary() -> None:
    codes = {generate_code() for _ in range(50)}
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    assert len(codes) > 40


def test_the_outbox_text_keeps_the_code_and_the_request_hides_it() -> None:
    assert outbox_text(OTP) == f"OTP Oila Market: {CODE}"
    assert code_of(outbox_text(OTP)) == CODE
    assert code_of("Hello: 1234") is None
    assert CODE not in repr(OTP)
    assert codes_in(f"Oila Market: kod {CODE}. 12 ta") == {CODE}


# --- the client call ------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeDevsms]:
    async with FakeDevsms() as fake:
        fake.add_account(TOKEN, balance=1000, sms_price=50)
        yield fake


@pytest.fixture
async def client(fake: FakeDevsms) -> AsyncIterator[DevsmsClient]:
    client = DevsmsClient(fake.url, timeout=0.5, get_retries=0, backoff=0.01)
    yield client
    await client.close()


async def test_send_otp_posts_the_template_fields_once(
    fake: FakeDevsms, client: DevsmsClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await client.send_otp(
        TOKEN, PHONE, template_type=2, service_name="Oila Market", otp_code=CODE
    )

    [request] = fake.requests_to(SEND_PATH)
    assert request.json == {
        "phone": PHONE,
        "type": "universal_otp",
        "template_type": 2,
        "service_name": "Oila Market",
        "otp_code": CODE,
    }
    assert result.sms_id == fake.sent[0].sms_id
    assert result.total_cost is not None and result.total_cost.amount == 50
    assert CODE not in caplog.text


async def test_a_refused_company_name_is_a_refusal_and_is_charged(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    fake.refused_service_names.add("Bad Name")

    with pytest.raises(DevsmsBadRequest) as caught:
        await client.send_otp(
            TOKEN, PHONE, template_type=1, service_name="bad name", otp_code=CODE
        )

    assert caught.value.gateway_text == ERR_MODERATION
    assert fake.accounts[TOKEN].balance == 950  # the gateway's warning, made true
    assert [sms.status for sms in fake.sent] == ["REJECTED"]


async def test_an_otp_whose_answer_is_lost_is_unknown_and_sent_once(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    fake.fail_next(1, hang=5.0, path=SEND_PATH)

    with pytest.raises(DevsmsSendUnknown):
        await client.send_otp(TOKEN, PHONE, template_type=1, service_name="Shop", otp_code=CODE)

    assert len(fake.requests_to(SEND_PATH)) == 1


async def test_an_international_send_reports_the_country(
    fake: FakeDevsms, client: DevsmsClient
) -> None:
    fake.country_prices["7"] = 300
    result = await client.send_sms(TOKEN, "79161234567", "Hi")
    assert (result.country, result.country_code) == ("Russia", "RU")
    assert result.total_cost is not None and result.total_cost.amount == 300


# --- the sender: recorded first, never retried, reconciled ------------------------------------


async def test_the_outbox_row_exists_before_the_request_and_says_otp(
    world: World, devsms: FakeDevsms
) -> None:
    await world.add_user(1, TOKEN)
    outbox = OutboxRepo(world.db)
    devsms.hold(SEND_PATH)
    sender = SmsSender(world.accounts, outbox)
    task = asyncio.create_task(sender.send_otp(1, PHONE, OTP))
    await devsms.wait_held()
    [pending] = await outbox.open_for_user(1)
    assert (pending.state, pending.kind, pending.message) == (
        OutboxState.PENDING,
        OutboxKind.OTP,
        outbox_text(OTP),
    )
    devsms.release()
    outcome = await task

    assert outcome.outcome is Outcome.SENT
    row = await outbox.get(outcome.outbox_id)
    assert row is not None and row.state is OutboxState.SENT and row.total_cost == "50"


async def test_a_timed_out_otp_is_unknown_then_settled_from_the_history(
    world: World, devsms: FakeDevsms, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await world.add_user(1, TOKEN)
    outbox = OutboxRepo(world.db)
    devsms.fail_next(1, hang=5.0, path=SEND_PATH)

    outcome = await SmsSender(world.accounts, outbox).send_otp(1, PHONE, OTP)

    assert outcome.outcome is Outcome.UNKNOWN
    assert len(devsms.requests_to(SEND_PATH)) == 1
    gateway_sms = devsms.sent[0]
    assert CODE in gateway_sms.message  # the gateway wrote its own text around the code
    moment = datetime.now(UTC) + timedelta(minutes=3)
    watcher = world.watcher()
    tracker = DeliveryTracker(
        outbox,
        world.alerts,
        world.accounts,
        world.notices,
        world.users,
        world.health,
        now=lambda: moment,
        on_token_rejected=watcher.token_rejected,
    )
    assert await tracker.reconcile_unknown_rows() == 1
    row = await outbox.get(outcome.outbox_id)
    assert row is not None
    assert (row.state, row.sms_id) == (OutboxState.SENT, gateway_sms.sms_id)
    assert len(devsms.requests_to(SEND_PATH)) == 1
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("aiosqlite")]
    assert not any(CODE in line for line in ours)


def test_the_bot_keeps_aiosqlite_statements_out_of_a_debug_log() -> None:
    # aiosqlite writes each statement with its parameters (an OTP code among them) at DEBUG.
    aiosqlite_logger, event_logger = (
        logging.getLogger("aiosqlite"),
        logging.getLogger("aiogram.event"),
    )
    before, event_level = aiosqlite_logger.level, event_logger.level
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("DEBUG")
        assert not aiosqlite_logger.isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        aiosqlite_logger.setLevel(before)
        event_logger.setLevel(event_level)


def test_an_otp_send_is_paired_by_its_code_not_by_another_code() -> None:
    now = datetime.now(UTC)
    send = OpenSend(SendKind.OUTBOX, 1, 0, PHONE, outbox_text(OTP), now, now, False, otp_code=CODE)
    other = SmsRecord(sms_id=5, phone=PHONE, message="Shop: kod 111111", created_at=now)
    mine = SmsRecord(sms_id=6, phone=PHONE, message=f"Oila Market: kod {CODE}", created_at=now)
    elsewhere = SmsRecord(sms_id=7, phone="998911111111", message=f"kod {CODE}", created_at=now)

    assert pair([send], [other, elsewhere]) == []
    assert pair([send], [other, mine, elsewhere]) == [(send, mine)]


async def test_code_keeper_holds_one_code_per_dialog_for_a_while() -> None:
    now = [0.0]
    keeper = CodeKeeper(keep=60, limit=2, clock=lambda: now[0])
    await keeper.put(1, draft=11, code="1234")
    assert await keeper.get(1, 11) == "1234"
    assert await keeper.get(1, 12) is None  # another dialog of the same user
    await keeper.put(1, draft=12, code="5678")  # a new dialog replaces the old one's code
    assert (await keeper.get(1, 11), await keeper.get(1, 12)) == (None, "5678")
    now[0] = 61
    assert await keeper.get(1, 12) is None  # past its time
    await keeper.put(2, 1, "1111")
    await keeper.put(3, 1, "2222")
    await keeper.put(4, 1, "3333")  # bounded: the oldest goes
    assert len(keeper) == 2 and await keeper.get(2, 1) is None and await keeper.get(4, 1) == "3333"
    await keeper.drop(4)
    assert await keeper.get(4, 1) is None
    now[0] = 200
    await keeper.put(5, 1, "4444")  # the expired ones go on the next put
    assert len(keeper) == 1
