"""Settling 'unknown' outbox rows from the gateway's records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.devsms import DevsmsGatewayError, HistoryPage, SmsRecord, parse_history
from services.money import parse_money
from services.reconcile import HistoryWalk, reconcile_unknown
from storage import BulkRepo, Database, OutboxRepo, UserRepo
from storage.bulk import RowState
from storage.outbox import OutboxState

ALI = 1001
BOB = 2002
PHONE = "998901234567"


@pytest.fixture
async def outbox(db: Database) -> AsyncIterator[OutboxRepo]:
    users = UserRepo(db)
    await users.upsert_seen(ALI, "Ali", None)
    await users.upsert_seen(BOB, "Bob", None)
    yield OutboxRepo(db)


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
    # Aware, as the client returns the gateway's times (services/devsms.py).
    created = None if ago is None else datetime.now(UTC) - ago
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


async def bulk_row(
    outbox: OutboxRepo,
    text: str,
    *,
    state: RowState,
    sms_id: int | None = None,
    started_ago: timedelta = timedelta(0),
    finished_ago: timedelta = timedelta(0),
) -> tuple[BulkRepo, int]:
    """A one-row bulk job of Ali's to PHONE, its row 2 left in ``state``."""
    bulk = BulkRepo(outbox.db)
    job_id = await bulk.create_job(
        ALI,
        template=text,
        sender=None,
        file_name="x.csv",
        file_format="csv",
        rows=[(2, PHONE, text, 1)],
    )
    await bulk.set_job_state(job_id, "running", allowed_from=("ready",))
    await bulk.claim(job_id, 2)
    await bulk.finish_row(job_id, 2, state, sms_id=sms_id)
    now = datetime.now(UTC)
    await outbox.db.execute(
        "UPDATE bulk_jobs SET started_at = ? WHERE id = ?",
        ((now - started_ago).isoformat(timespec="seconds"), job_id),
    )
    await outbox.db.execute(
        "UPDATE bulk_rows SET updated_at = ? WHERE job_id = ?",
        ((now - finished_ago).isoformat(timespec="seconds"), job_id),
    )
    return bulk, job_id


async def test_a_bulk_sms_sent_earlier_is_not_claimed_by_a_later_unknown_single_send(
    outbox: OutboxRepo,
) -> None:
    # A bulk job sent "Hello" to the number a minute ago (sms 5); then a single send of the
    # same text timed out and never reached the gateway.
    await bulk_row(outbox, "Hello", state="sent", sms_id=5, started_ago=timedelta(minutes=1))
    row_id = await unknown_row(outbox, "Hello")
    bulk_sms = record(5, "Hello", ago=timedelta(minutes=1))
    assert await reconcile_unknown(outbox, ALI, [bulk_sms]) == []
    row = await outbox.get(row_id)
    assert row is not None and row.state is OutboxState.UNKNOWN
    # Its own SMS, once it shows up, is taken.
    assert await reconcile_unknown(outbox, ALI, [record(6, "Hello"), bulk_sms]) == [row_id]


async def test_an_unknown_bulk_row_and_a_later_unknown_single_send_each_get_their_own_sms(
    outbox: OutboxRepo,
) -> None:
    # A bulk row went out 7 minutes ago with a lost answer; a single send of the same text
    # 3 minutes ago too. Within the clock skew, the older SMS could be either's.
    bulk, job_id = await bulk_row(
        outbox,
        "Hello",
        state="unknown",
        started_ago=timedelta(minutes=8),
        finished_ago=timedelta(minutes=6),
    )
    row_id = await unknown_row(outbox, "Hello")
    await outbox.db.execute(
        "UPDATE outbox SET created_at = ?, updated_at = ? WHERE id = ?",
        (
            (datetime.now(UTC) - timedelta(minutes=3)).isoformat(timespec="seconds"),
            (datetime.now(UTC) - timedelta(minutes=3)).isoformat(timespec="seconds"),
            row_id,
        ),
    )
    records = [
        record(12, "Hello", ago=timedelta(minutes=3)),
        record(11, "Hello", ago=timedelta(minutes=7)),
    ]
    assert await reconcile_unknown(outbox, ALI, records) == [row_id]
    row = await outbox.get(row_id)
    assert row is not None and (row.state, row.sms_id) == (OutboxState.SENT, 12)
    [bulk_settled] = await bulk.all_rows(job_id)
    assert (bulk_settled.state, bulk_settled.sms_id) == ("sent", 11)


async def test_sms_ids_held_by_single_and_bulk_sends_are_found_among_many(
    outbox: OutboxRepo,
) -> None:
    single = await outbox.create_pending(ALI, PHONE, "a", None)
    await outbox.mark_sent(single, 950, "req-950", "waiting", 1, "50")
    await bulk_row(outbox, "b", state="sent", sms_id=20)
    bobs = await outbox.create_pending(BOB, PHONE, "c", None)
    await outbox.mark_sent(bobs, 30, "req-30", "waiting", 1, "50")
    # More ids than one query binds.
    assert await outbox.sms_ids_taken(ALI, list(range(1, 1001))) == {20, 950}


class PagedHistory:
    """A gateway's history of ``count`` SMS, newest first, ``cap`` entries a page at most."""

    def __init__(self, count: int, *, cap: int = 200, ignores_offset: bool = False) -> None:
        self.entries = [record(count - n, f"Text {count - n}") for n in range(count)]
        self.cap, self.ignores_offset = cap, ignores_offset
        self.offsets: list[int] = []

    async def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> HistoryPage:
        self.offsets.append(offset)
        start = 0 if self.ignores_offset else offset
        return HistoryPage(items=self.entries[start : start + min(limit, self.cap)])


async def test_a_walk_through_a_gateway_with_smaller_pages_skips_nothing() -> None:
    gateway = PagedHistory(120, cap=50)
    walk = HistoryWalk(since=None)
    wanted = {("998901234567", "Text 1")}
    assert await walk.advance(gateway, ALI, pages=10, wanted=wanted)  # type: ignore[arg-type]
    # A short page is not the end: only an empty one is.
    assert gateway.offsets == [0, 50, 100, 120]
    assert [r.sms_id for r in walk.records] == [1]


async def test_a_gateway_that_ignores_the_offset_never_completes_a_walk() -> None:
    gateway = PagedHistory(300, ignores_offset=True)
    walk = HistoryWalk(since=None)
    assert not await walk.advance(gateway, ALI, pages=10, wanted=set())  # type: ignore[arg-type]
    assert walk.stuck and not walk.complete
    assert len(gateway.offsets) == 2


async def test_a_send_in_flight_keeps_its_own_sms_from_an_older_unknown_send(
    outbox: OutboxRepo,
) -> None:
    # Send 1 of "Hello" lost its answer 4 minutes ago and never reached the gateway; send 2 of
    # the same text is in flight now, and the gateway already lists its SMS 99. Within the
    # clock skew, SMS 99 fits send 1's window too, but it is send 2's.
    older = await unknown_row(outbox, "Hello")
    four_minutes_ago = (datetime.now(UTC) - timedelta(minutes=4)).isoformat(timespec="seconds")
    await outbox.db.execute(
        "UPDATE outbox SET created_at = ?, updated_at = ? WHERE id = ?",
        (four_minutes_ago, four_minutes_ago, older),
    )
    in_flight = await outbox.create_pending(ALI, PHONE, "Hello", None)

    assert await reconcile_unknown(outbox, ALI, [record(99, "Hello")]) == []
    row = await outbox.get(older)
    assert row is not None and (row.state, row.sms_id) == (OutboxState.UNKNOWN, None)
    # Send 2's answer arrives with SMS 99: from then on it is taken, and send 1 gets its own
    # SMS only if the history shows one.
    assert await outbox.mark_sent(in_flight, 99, "req-99", "waiting", 1, "50")
    assert await reconcile_unknown(outbox, ALI, [record(99, "Hello")]) == []


async def test_an_sms_id_beyond_64_bits_settles_single_and_bulk_sends(
    outbox: OutboxRepo,
) -> None:
    row_id = await unknown_row(outbox, "Hello")
    bulk, job_id = await bulk_row(outbox, "Bulk hello", state="unknown")
    huge = 10**20  # a gateway's id SQLite cannot hold
    records = [record(huge + 1, "Bulk hello"), record(huge, "Hello")]

    assert await reconcile_unknown(outbox, ALI, records) == [row_id]
    row = await outbox.get(row_id)
    assert row is not None and (row.state, row.request_id) == (OutboxState.SENT, f"req-{huge}")
    [settled] = await bulk.all_rows(job_id)
    assert (settled.state, settled.sms_id, settled.request_id) == (
        "sent",
        None,
        f"req-{huge + 1}",
    )


class UnknownShape:
    """A gateway whose history answer holds its list under a key the parser does not know."""

    def __init__(self) -> None:
        self.asked = 0

    async def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> HistoryPage:
        self.asked += 1
        entry = {"sms_id": 5, "phone": PHONE, "message": "Hello", "created_at": 0}
        return parse_history({"result": [entry]})


async def test_a_history_answer_without_a_list_is_an_error_not_the_end() -> None:
    gateway = UnknownShape()
    walk = HistoryWalk(since=datetime.now(UTC) - timedelta(days=2))
    with pytest.raises(DevsmsGatewayError):
        await walk.advance(gateway, ALI, pages=5, wanted=set())  # type: ignore[arg-type]
    assert not walk.complete and not walk.finished
    # The next round asks again, from the same place.
    with pytest.raises(DevsmsGatewayError):
        await walk.advance(gateway, ALI, pages=5, wanted=set())  # type: ignore[arg-type]
    assert gateway.asked == 2 and not walk.complete


class Pages:
    """A history served as the given pages, in the gateway's own order within each."""

    def __init__(self, *pages: list[SmsRecord]) -> None:
        self.by_offset: dict[int, list[SmsRecord]] = {}
        offset = 0
        for page in pages:
            self.by_offset[offset] = page
            offset += len(page)

    async def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> HistoryPage:
        return HistoryPage(items=self.by_offset.get(offset, []))


async def test_one_old_entry_on_a_page_does_not_end_the_walk() -> None:
    # The page's order is not newest first: an old entry sits among new ones, and the SMS
    # looked for is on the next page.
    gateway = Pages(
        [record(30, "Other", ago=timedelta(0)), record(10, "Other", ago=timedelta(hours=3))],
        [record(20, "Hello", ago=timedelta(minutes=30))],
        [record(5, "Other", ago=timedelta(hours=4))],
    )
    walk = HistoryWalk(since=datetime.now(UTC) - timedelta(hours=1))
    wanted = {(PHONE, "Hello")}
    assert await walk.advance(gateway, ALI, pages=5, wanted=wanted)  # type: ignore[arg-type]
    assert [r.sms_id for r in walk.records] == [20]
    # The third page is older than the bound throughout: there the walk stops.
    assert walk.passed and not walk.stuck
