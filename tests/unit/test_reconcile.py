"""Settling 'unknown' outbox rows from the gateway's records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.devsms import SmsRecord
from services.money import parse_money
from services.reconcile import cost_text, reconcile_unknown
from storage import Database, OutboxRepo, UserRepo
from storage.outbox import OutboxState

ALI = 1001
BOB = 2002
PHONE = "998901234567"


@pytest.fixture
async def outbox() -> AsyncIterator[OutboxRepo]:
    db = await Database.open(":memory:")
    users = UserRepo(db)
    await users.upsert_seen(ALI, "Ali", None)
    await users.upsert_seen(BOB, "Bob", None)
    try:
        yield OutboxRepo(db)
    finally:
        await db.close()


async def unknown_row(
    outbox: OutboxRepo, text: str, user_id: int = ALI, phone: str = PHONE
) -> int:
    row_id = await outbox.create_pending(user_id, phone, text, None)
    await outbox.mark_unknown(row_id, "timeout")
    return row_id


def record(
    sms_id: int,
    text: str,
    *,
    phone: str = PHONE,
    ago: timedelta | None = timedelta(0),
    status: str = "waiting",
) -> SmsRecord:
    # The gateway's naive wall-clock time; here in UTC.
    created = None if ago is None else datetime.now(UTC).replace(tzinfo=None) - ago
    return SmsRecord(
        sms_id=sms_id,
        request_id=f"req-{sms_id}",
        phone=phone,
        message=text,
        status=status,
        parts_count=1,
        cost=parse_money(50),
        created_at=created,
    )


async def test_same_phone_and_text_is_marked_sent_with_the_gateway_data(
    outbox: OutboxRepo,
) -> None:
    row_id = await unknown_row(outbox, "Hello")
    resolved = await reconcile_unknown(
        outbox, ALI, [record(7, "Hello", phone="+998 90 123-45-67", status="DELIVERED")]
    )
    assert resolved == [row_id]
    row = await outbox.get(row_id)
    assert row is not None
    assert row.state is OutboxState.SENT
    assert (row.sms_id, row.request_id, row.status, row.parts_count, row.total_cost) == (
        7,
        "req-7",
        "DELIVERED",
        1,
        "50",
    )
    # Settled once: the same records again change nothing.
    assert await reconcile_unknown(outbox, ALI, [record(7, "Hello")]) == []


async def test_different_text_or_phone_is_not_matched(outbox: OutboxRepo) -> None:
    row_id = await unknown_row(outbox, "Hello")
    records = [record(7, "Hello!"), record(8, "Hello", phone="998901234568")]
    assert await reconcile_unknown(outbox, ALI, records) == []
    row = await outbox.get(row_id)
    assert row is not None and row.state is OutboxState.UNKNOWN


async def test_two_identical_unknown_sends_take_two_different_records(
    outbox: OutboxRepo,
) -> None:
    first = await unknown_row(outbox, "Code 1234")
    second = await unknown_row(outbox, "Code 1234")
    # History comes newest first.
    resolved = await reconcile_unknown(
        outbox, ALI, [record(12, "Code 1234"), record(11, "Code 1234")]
    )
    assert resolved == [first, second]
    rows = [await outbox.get(first), await outbox.get(second)]
    assert [row.sms_id for row in rows if row] == [11, 12]


async def test_one_record_settles_only_one_of_two_identical_sends(outbox: OutboxRepo) -> None:
    first = await unknown_row(outbox, "Code 1234")
    second = await unknown_row(outbox, "Code 1234")
    assert await reconcile_unknown(outbox, ALI, [record(11, "Code 1234")]) == [first]
    row = await outbox.get(second)
    assert row is not None and row.state is OutboxState.UNKNOWN


async def test_a_record_from_before_the_send_is_not_matched(outbox: OutboxRepo) -> None:
    row_id = await unknown_row(outbox, "Hello")
    older = record(5, "Hello", ago=timedelta(hours=1))
    assert await reconcile_unknown(outbox, ALI, [older]) == []
    # A few minutes of clock difference between us and the gateway are tolerated.
    skewed = record(6, "Hello", ago=timedelta(minutes=2))
    assert await reconcile_unknown(outbox, ALI, [older, skewed]) == [row_id]


async def test_a_record_without_a_time_is_matched_by_phone_and_text(outbox: OutboxRepo) -> None:
    row_id = await unknown_row(outbox, "Hello")
    assert await reconcile_unknown(outbox, ALI, [record(5, "Hello", ago=None)]) == [row_id]


async def test_an_sms_already_tied_to_an_earlier_send_is_not_reused(outbox: OutboxRepo) -> None:
    earlier = await outbox.create_pending(ALI, PHONE, "Hello", None)
    await outbox.mark_sent(earlier, 5, "req-5", "DELIVERED", 1, "50")
    row_id = await unknown_row(outbox, "Hello")
    assert await reconcile_unknown(outbox, ALI, [record(5, "Hello")]) == []
    assert await reconcile_unknown(outbox, ALI, [record(6, "Hello"), record(5, "Hello")]) == [
        row_id
    ]


async def test_only_the_users_own_rows_are_settled(outbox: OutboxRepo) -> None:
    bobs = await unknown_row(outbox, "Hello", user_id=BOB)
    assert await reconcile_unknown(outbox, ALI, [record(5, "Hello")]) == []
    row = await outbox.get(bobs)
    assert row is not None and row.state is OutboxState.UNKNOWN


async def test_line_endings_and_outer_spaces_do_not_prevent_a_match(outbox: OutboxRepo) -> None:
    row_id = await unknown_row(outbox, "Line one\r\nLine two ")
    assert await reconcile_unknown(outbox, ALI, [record(5, "Line one\nLine two")]) == [row_id]


def test_cost_is_stored_the_way_the_gateway_writes_it() -> None:
    assert cost_text(parse_money(50)) == "50"
    assert cost_text(parse_money("$0.005")) == "$0.005"
    assert cost_text(parse_money("1250.50")) == "1250.5"
    assert cost_text(None) is None
    for value in (50, "$0.005", "1250.50", 0):
        money = parse_money(value)
        assert parse_money(cost_text(money)) == money
