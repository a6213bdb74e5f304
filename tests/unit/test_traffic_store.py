"""storage/traffic.py: the read API other features build on (day totals in a zone, streaming
rows, the forecast) and the merge of history pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest

from storage import Database, OutboxRepo, TrafficRepo, UserRepo
from storage.db import SqliteDatabase
from storage.traffic import NewRecord, Origin, Outcome, outcome_of

R = TypeVar("R")
T0 = datetime(2026, 11, 30, 20, 30, tzinfo=UTC)  # 01:30 on Dec 1 in Tashkent


def sqlite_only(db: Database) -> None:
    if not isinstance(db, SqliteDatabase):
        pytest.skip("counts what SQLite's one connection runs (its VM steps, its statements)")


def rec(sms_id: int, at: datetime, status: str = "DELIVERED", cost: str = "50") -> NewRecord:
    return NewRecord(
        sms_id, f"req-{sms_id}", "998901234567", "hi", "4546", 1,
        Decimal(cost.lstrip("$")), "USD" if cost.startswith("$") else "UZS", status, at,
    )  # fmt: skip


async def repo_with_user(db: Database) -> TrafficRepo:
    await UserRepo(db).upsert_seen(1, "A", None)
    return TrafficRepo(db)


async def test_daily_totals_fall_on_the_local_day_and_include_empty_days(db: Database) -> None:
    traffic = await repo_with_user(db)
    await traffic.merge(
        1,
        [
            rec(1, T0),
            rec(2, T0 + timedelta(hours=1), "REJECTED"),
            rec(3, T0 - timedelta(hours=2), "waiting", cost="$0.005"),
        ],
    )
    since = datetime(2026, 11, 29, 19, tzinfo=UTC)  # Nov 30 00:00 in Tashkent
    until = datetime(2026, 12, 2, 19, tzinfo=UTC)
    days = await traffic.daily_totals(1, since, until, "Asia/Tashkent")
    assert [d.day for d in days] == [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)]
    nov30, dec1, dec2 = days
    assert (nov30.sms, nov30.waiting) == (1, 1)
    assert (dec1.sms, dec1.delivered, dec1.failed, dec1.parts) == (2, 1, 1, 2)
    assert dec1.cost_by_currency == {"UZS": Decimal(100)}
    assert dec2.sms == 0 and dec2.cost_by_currency == {}
    # The same SMS seen from Los Angeles all fall on Nov 30.
    la = await traffic.daily_totals(1, since, until, "America/Los_Angeles")
    assert sum(d.sms for d in la if d.day == date(2026, 11, 30)) == 3


async def test_a_day_with_two_currencies_and_an_unknown_cost_counts_every_sms_once(
    db: Database,
) -> None:
    traffic = await repo_with_user(db)
    unpriced = NewRecord(4, "req-4", "998901234567", "hi", "4546", 2, None, None, "REJECTED", T0)
    await traffic.merge(
        1,
        [
            rec(1, T0),
            rec(2, T0 + timedelta(minutes=1), cost="$0.01"),
            rec(3, T0 + timedelta(minutes=2), "waiting", cost="$0.02"),
            unpriced,
        ],
    )
    since = datetime(2026, 11, 30, 19, tzinfo=UTC)  # Dec 1 00:00 in Tashkent
    (dec1,) = await traffic.daily_totals(1, since, since + timedelta(days=1), "Asia/Tashkent")
    assert (dec1.sms, dec1.delivered, dec1.failed, dec1.waiting, dec1.parts) == (4, 2, 1, 1, 5)
    assert dec1.cost_by_currency == {"UZS": Decimal(50), "USD": Decimal("0.03")}


async def test_iter_rows_streams_in_batches_oldest_first(db: Database) -> None:
    traffic = await repo_with_user(db)
    await traffic.merge(1, [rec(n, T0 + timedelta(minutes=n % 3)) for n in range(1, 12)])
    rows = [r async for r in traffic.iter_rows(1, T0, T0 + timedelta(days=1), batch=4)]
    assert len(rows) == 11
    assert [r.created_at for r in rows] == sorted(r.created_at for r in rows)
    assert len({r.id for r in rows}) == 11
    assert rows[0].origin is Origin.ELSEWHERE and rows[0].cost == Decimal(50)


async def insert_elsewhere(db: Database, count: int, status: str = "DELIVERED") -> None:
    """`count` rows of outside traffic, three to a second, straight into the table (merge
    would take minutes for a realistic history)."""
    stamps = [(T0 + timedelta(seconds=n // 3)).isoformat() for n in range(count)]
    await db.executemany(
        "INSERT INTO traffic (user_id, sms_id, phone, message, status, created_at, origin, "
        "first_seen_at, updated_at) VALUES (1, ?, '998901234567', 'hi', ?, ?, 'elsewhere', ?, ?)",
        [(n + 1, status, at, at, at) for n, at in enumerate(stamps)],
    )


async def test_iter_rows_each_batch_costs_the_same(db: Database) -> None:
    """Keyset paging that kept `since` as its lower bound read every earlier row again: batch k
    stepped over k × 500 index entries (70 ms a batch at 900k rows, one connection for all)."""
    traffic = await repo_with_user(db)
    await insert_elsewhere(db, 6000)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    sqlite_only(db)
    await db.conn.set_progress_handler(count, 10)
    at_batch_start: list[int] = []
    seen: list[tuple[str, int]] = []
    async for row in traffic.iter_rows(1, T0, T0 + timedelta(days=1), batch=500):
        if len(seen) % 500 == 0:
            at_batch_start.append(steps[0])
        seen.append((row.created_at.isoformat(), row.id))
    await db.conn.set_progress_handler(None, 0)
    assert len(seen) == 6000 and len(set(seen)) == 6000 and seen == sorted(seen)
    first = at_batch_start[0]
    last = at_batch_start[-1] - at_batch_start[-2]
    assert last <= 2 * first, (first, last)


async def steps_of(db: Database, query: Callable[[], Awaitable[R]]) -> tuple[R, int]:
    """What `query` returns and how many SQLite VM instructions it ran (a row visited costs
    a handful; the count does not depend on the machine's speed)."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    sqlite_only(db)
    await db.conn.set_progress_handler(count, 1)
    try:
        result = await query()
    finally:
        await db.conn.set_progress_handler(None, 0)
    return result, steps[0]


async def test_unnoticed_failures_skip_outside_history_that_delivered(db: Database) -> None:
    """The failure watch runs every round for every user; its index held every outside row
    not yet looked at, DELIVERED ones included forever, so each round read the whole outside
    history (0.17 s a user a round at 1M rows)."""
    traffic = await repo_with_user(db)
    await insert_elsewhere(db, 100_000)
    await traffic.merge(1, [rec(200_001, T0 + timedelta(days=2), "REJECTED")])
    rows, steps = await steps_of(db, lambda: traffic.unnoticed_failures(1))
    assert [r.sms_id for r in rows] == [200_001]
    assert steps < 1_000 * 10, steps  # well under a thousand rows, at ~10 steps a row


async def test_forget_deletes_in_short_transactions_and_only_that_user(db: Database) -> None:
    """One transaction deleting a whole record held the one connection 3.2 s at 1M rows:
    every user's taps waited. It goes in chunks now, other statements between them."""
    traffic = await repo_with_user(db)
    await UserRepo(db).upsert_seen(2, "B", None)
    await insert_elsewhere(db, 12_000)
    await traffic.merge(2, [rec(900_001, T0)])
    await traffic.record_balance(1, Decimal(5000), "UZS", now=T0)
    sqlite_only(db)
    statements: list[str] = []
    await db.conn.set_trace_callback(statements.append)
    try:
        await traffic.forget(1)
    finally:
        await db.conn.set_trace_callback(None)
    deletes = [s for s in statements if s.startswith("DELETE FROM traffic ")]
    assert len(deletes) >= 3  # at most 5,000 rows each
    day = timedelta(days=1)
    assert [r async for r in traffic.iter_rows(1, T0 - day, T0 + day)] == []
    assert len([r async for r in traffic.iter_rows(2, T0 - day, T0 + day)]) == 1
    assert await traffic.balance_forecast(1, T0) is None


async def test_merge_updates_status_and_counts_known(db: Database) -> None:
    traffic = await repo_with_user(db)
    first = await traffic.merge(1, [rec(1, T0, "waiting")])
    again = await traffic.merge(1, [rec(1, T0, "waiting"), rec(2, T0)])
    changed = await traffic.merge(1, [rec(1, T0, "UNDELIVERABLE")])
    assert (first.inserted, again.inserted, again.known, again.updated) == (1, 1, 1, 0)
    assert changed.updated == 1
    rows = [r async for r in traffic.iter_rows(1, T0, T0 + timedelta(hours=1))]
    assert {r.sms_id: r.outcome for r in rows} == {1: Outcome.FAILED, 2: Outcome.DELIVERED}


async def test_forecast_uses_the_average_spend_of_the_window(db: Database) -> None:
    traffic = await repo_with_user(db)
    now = T0 + timedelta(days=1)
    assert await traffic.balance_forecast(1, now) is None
    await traffic.record_balance(1, Decimal(7000), "UZS", now=now)
    nothing = await traffic.balance_forecast(1, now)
    assert nothing is not None and nothing.days_left is None
    await traffic.merge(1, [rec(n, T0 - timedelta(days=n % 7), cost="100") for n in range(70)])
    forecast = await traffic.balance_forecast(1, now, days=7)
    assert forecast is not None
    assert forecast.daily_spend == Decimal(1000) and forecast.days_left == 7


async def test_spending_is_told_by_currency_within_the_window(db: Database) -> None:
    # /balance reads it before the gateway has said the balance's currency.
    traffic = await repo_with_user(db)
    unpriced = NewRecord(9, "req-9", "998901234567", "hi", "4546", 1, None, "EUR", "sent", T0)
    await traffic.merge(
        1, [rec(1, T0, cost="100"), rec(2, T0, cost="$0.5"), rec(3, T0, cost="$1.25"), unpriced]
    )
    await traffic.merge(1, [rec(4, T0 - timedelta(days=8), cost="700")])
    found = await traffic.spending(1, T0 - timedelta(days=7), T0 + timedelta(seconds=1))
    assert found == {"UZS": Decimal(100), "USD": Decimal("1.75")}
    assert await traffic.spent(1, T0, T0 + timedelta(seconds=1), currency="EUR") == 0


def test_outcomes() -> None:
    assert outcome_of("sent") is Outcome.WAITING
    assert outcome_of("ACCEPTED") is Outcome.WAITING
    assert outcome_of("rejected") is Outcome.FAILED
    assert outcome_of(None) is Outcome.WAITING


async def test_a_page_repeating_an_entry_stores_it_once(db: Database) -> None:
    traffic = await repo_with_user(db)
    result = await traffic.merge(1, [rec(1, T0), rec(1, T0), rec(2, T0)])
    assert (result.inserted, result.known) == (2, 0)


async def test_an_open_outbox_row_to_the_same_phone_and_text_is_the_bots(db: Database) -> None:
    traffic = await repo_with_user(db)
    # The bot's send is in flight (its answer not recorded yet) when the history shows it.
    row_id = await OutboxRepo(db).create_pending(1, "998901234567", "hi", None)
    await traffic.merge(1, [rec(1, T0)])
    [row] = [r async for r in traffic.iter_rows(1, T0, T0 + timedelta(seconds=1))]
    assert (row.origin, row.outbox_id) == (Origin.BOT, row_id)
