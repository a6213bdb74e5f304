"""The failure watch (grouping, once per SMS, at most one notice an hour), the delivery-rate
warning (once per hour window) and the digest's periods (zone-aware) and sending (once per
period, across restarts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.events import DeliveryRateLow, Event, FailuresSeen, TrafficDigest
from services.failure_watch import FailureWatch, group_failures, hour_window
from services.insights import DigestSender, due_period
from services.phones import operator_of
from services.schedule_time import zone_of
from storage import BulkRepo, Database, InsightRepo, TrafficRepo, UserRepo
from storage.alerts import AlertPrefs, WatchTarget
from storage.traffic import NewRecord

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TARGET = WatchTarget(1, b"", "en", "Ali", None, AlertPrefs())


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)


def failed(
    n: int, phone: str, status: str = "REJECTED", *, ago: timedelta = timedelta(minutes=5)
) -> NewRecord:
    return NewRecord(n, None, phone, "otp", "4546", 1, Decimal(50), "UZS", status, NOW - ago)


async def world(db: Database) -> tuple[TrafficRepo, InsightRepo, Recorder, FailureWatch]:
    await UserRepo(db).upsert_seen(1, "Ali", None)
    traffic, insights, notices = TrafficRepo(db), InsightRepo(db), Recorder()
    return traffic, insights, notices, FailureWatch(traffic, insights, notices)


def test_operators_come_from_the_carrier_data() -> None:
    assert operator_of("998901234567") == "Beeline"
    assert operator_of("+998 93 123 45 67") == "Ucell"
    assert operator_of("998971234567") == "MobiUZ"
    assert operator_of("998712345678") == "+998 71"  # a landline: no carrier, its prefix
    assert operator_of("not a phone") is None


async def test_failures_are_told_grouped_once_and_at_most_hourly(db: Database) -> None:
    traffic, insights, notices, watch = await world(db)
    await insights.set_failure_watch(1, True)
    await traffic.merge(
        1,
        [
            *(failed(n, f"99890123456{n}") for n in range(5)),  # Beeline
            failed(5, "998931234567", "UNDELIVERABLE"),  # Ucell
            failed(6, "998941234567"),  # Ucell
            failed(7, "998901111111", "DELIVERED"),  # delivered: not a failure
            failed(8, "998901111112", "EXPIRED"),  # expired: nobody refused it
        ],
        now=NOW,
    )
    await watch.after_round(TARGET, NOW)
    [event] = notices.events
    assert isinstance(event, FailuresSeen)
    assert event.total == 7
    assert event.operators == (("Beeline", 5), ("Ucell", 2))
    assert event.statuses == (("REJECTED", 6), ("UNDELIVERABLE", 1))
    shown = await traffic.failures_of(1, event.batch, 50)
    assert len(shown) == 7
    # The same round again: nothing new to tell.
    await watch.after_round(TARGET, NOW + timedelta(minutes=5))
    assert len(notices.events) == 1
    # New failures within the hour wait; after it they come as one notice.
    await traffic.merge(1, [failed(20, "998901234567"), failed(21, "998931234567")], now=NOW)
    await watch.after_round(TARGET, NOW + timedelta(minutes=30))
    assert len(notices.events) == 1
    await watch.after_round(TARGET, NOW + timedelta(minutes=61))
    assert [e.total for e in notices.events if isinstance(e, FailuresSeen)] == [7, 2]


async def test_the_bots_own_and_old_failures_and_those_before_opting_in_are_not_told(
    db: Database,
) -> None:
    traffic, insights, notices, watch = await world(db)
    outbox_row = await db.fetchone(
        "INSERT INTO outbox (user_id, phone, message, state, sms_id, created_at, updated_at) "
        "VALUES (1, '998901234567', 'otp', 'sent', 1, ?, ?) RETURNING id",
        (NOW.isoformat(), NOW.isoformat()),
    )
    assert outbox_row is not None
    await traffic.merge(1, [failed(1, "998901234567")], now=NOW)  # the bot's own: not told
    await traffic.merge(1, [failed(2, "998901234568")], now=NOW)  # before opting in
    await watch.after_round(TARGET, NOW)
    await insights.set_failure_watch(1, True)
    await traffic.merge(1, [failed(3, "998901234569", ago=timedelta(days=3))], now=NOW)
    await watch.after_round(TARGET, NOW + timedelta(minutes=5))
    assert notices.events == []
    await traffic.merge(1, [failed(4, "998901234560")], now=NOW)
    await watch.after_round(TARGET, NOW + timedelta(minutes=10))
    [event] = notices.events
    assert isinstance(event, FailuresSeen) and event.total == 1


async def test_rate_warning_below_the_threshold_once_per_hour_window(db: Database) -> None:
    traffic, insights, notices, watch = await world(db)
    await insights.set_rate_threshold(1, 90)
    records = [failed(n, "998901234567", "DELIVERED") for n in range(8)]
    records += [failed(n, "998901234567") for n in range(8, 10)]  # 8 of 10: 80 %
    await traffic.merge(1, records, now=NOW)
    await watch.after_round(TARGET, NOW)
    await watch.after_round(TARGET, NOW + timedelta(minutes=20))
    [event] = notices.events
    assert isinstance(event, DeliveryRateLow)
    assert (event.rate, event.threshold, event.delivered, event.failed) == (80, 90, 8, 2)
    assert hour_window(NOW) != hour_window(NOW + timedelta(hours=1))


async def test_rate_warning_needs_enough_settled_sms_and_a_rate_below(db: Database) -> None:
    traffic, insights, notices, watch = await world(db)
    await insights.set_rate_threshold(1, 50)
    await traffic.merge(1, [failed(n, "998901234567") for n in range(3)], now=NOW)
    await watch.after_round(TARGET, NOW)  # 3 settled: too few to judge
    await traffic.merge(1, [failed(n, "998901234567", "DELIVERED") for n in range(3, 20)])
    await watch.after_round(TARGET, NOW)  # 17 of 20 delivered: above 50 %
    assert notices.events == []


def test_group_failures_counts_unknown_operators_apart() -> None:
    from storage.traffic import Origin, TrafficRow

    row = TrafficRow(1, 1, 1, None, "garbage", None, None, 1, None, None, "REJECTED", NOW,
                     Origin.ELSEWHERE, None, None, None)  # fmt: skip
    assert group_failures([row]) == ((("", 1),), (("REJECTED", 1),))


# --- digest periods ----------------------------------------------------------------------------

TASHKENT = ZoneInfo("Asia/Tashkent")
LA = ZoneInfo("America/Los_Angeles")


def test_daily_digest_is_due_from_the_hour_for_yesterday_in_the_users_zone() -> None:
    # 03:30 UTC is 08:30 in Tashkent: before a 9 o'clock digest; at 04:00 UTC it is due.
    assert due_period(datetime(2026, 12, 1, 3, 30, tzinfo=UTC), TASHKENT, "daily", 9) is None
    period = due_period(datetime(2026, 12, 1, 4, 0, tzinfo=UTC), TASHKENT, "daily", 9)
    assert period is not None
    assert (period.first_day, period.last_day) == (date(2026, 11, 30), date(2026, 11, 30))
    assert period.since == datetime(2026, 11, 29, 19, tzinfo=UTC)
    assert period.until == datetime(2026, 11, 30, 19, tzinfo=UTC)
    assert period.previous_since == datetime(2026, 11, 28, 19, tzinfo=UTC)


def test_daily_digest_across_daylight_saving_has_a_23_hour_day() -> None:
    # Los Angeles moved its clocks forward on 8 March 2026: that day has 23 hours.
    period = due_period(datetime(2026, 3, 9, 17, 0, tzinfo=UTC), LA, "daily", 9)
    assert period is not None and period.first_day == date(2026, 3, 8)
    assert period.until - period.since == timedelta(hours=23)
    assert period.since - period.previous_since == timedelta(hours=24)


def test_weekly_digest_covers_monday_to_sunday_before() -> None:
    # Monday 7 December 2026, 08:00 in Tashkent: before 9; Tuesday: still last week's.
    monday_early = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert due_period(monday_early, TASHKENT, "weekly", 9) is None
    period = due_period(datetime(2026, 12, 8, 3, 0, tzinfo=UTC), TASHKENT, "weekly", 9)
    assert period is not None
    assert (period.first_day, period.last_day, period.days) == (
        date(2026, 11, 30), date(2026, 12, 6), 7
    )  # fmt: skip
    assert period.since - period.previous_since == timedelta(days=7)


def test_the_machines_zone_plays_no_part() -> None:
    # CI runs under TZ=America/Los_Angeles; only the zones given count.
    a = due_period(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), TASHKENT, "daily", 0)
    assert a is not None and a.first_day == date(2026, 12, 1)  # 04:30 on Dec 2 in Tashkent
    assert zone_of("Not/AZone").key == "Asia/Tashkent"


# --- digest sending ---------------------------------------------------------------------------


async def digest_world(db: Database, now: list[datetime]) -> tuple[DigestSender, Recorder]:
    await UserRepo(db).upsert_seen(1, "Ali", None)
    await db.execute(
        "INSERT INTO credentials (user_id, token_encrypted, state) VALUES (1, ?, 'valid')",
        (b"\x00",),
    )
    insights, traffic, notices = InsightRepo(db), TrafficRepo(db), Recorder()
    await insights.set_digest(1, "daily")
    await insights.set_digest_hour(1, 9)
    day = datetime(2026, 11, 30, 6, tzinfo=UTC)  # Nov 30 in Tashkent
    before = day - timedelta(days=1)
    await traffic.merge(1, [failed(n, "998901234567", "DELIVERED") for n in range(4)], now=NOW)
    await db.execute("UPDATE traffic SET created_at = ?", (day.isoformat(),))
    await traffic.merge(1, [failed(n, "998901234567") for n in range(10, 12)], now=NOW)
    await db.execute("UPDATE traffic SET created_at = ? WHERE sms_id >= 10", (before.isoformat(),))
    await traffic.record_balance(1, Decimal(1000), "UZS", now=day)
    sender = DigestSender(insights, traffic, BulkRepo(db), notices, poll=60, now=lambda: now[0])
    return sender, notices


async def test_digest_goes_out_once_per_period_and_compares_with_the_one_before(
    db: Database,
) -> None:
    clock = [datetime(2026, 12, 1, 3, 0, tzinfo=UTC)]  # 08:00 in Tashkent
    sender, notices = await digest_world(db, clock)
    assert await sender.send_due() == 0
    clock[0] = datetime(2026, 12, 1, 4, 5, tzinfo=UTC)  # 09:05
    assert await sender.send_due() == 1
    assert await sender.send_due() == 0  # the same period: never twice
    [event] = notices.events
    assert isinstance(event, TrafficDigest) and not event.weekly
    assert event.first_day == date(2026, 11, 30)
    assert (event.current.sms, event.current.delivered, event.previous.sms) == (4, 4, 2)
    assert event.current.cost_by_currency == {"UZS": Decimal(200)}
    assert event.balance is not None and event.balance.amount == 1000
    assert event.days_left == 5 and event.jobs == 0


async def test_digest_is_not_sent_again_after_a_restart(db: Database) -> None:
    clock = [datetime(2026, 12, 1, 4, 5, tzinfo=UTC)]
    sender, _ = await digest_world(db, clock)
    assert await sender.send_due() == 1
    again = DigestSender(
        InsightRepo(db), TrafficRepo(db), BulkRepo(db), Recorder(), poll=60, now=lambda: clock[0]
    )
    assert await again.send_due() == 0
    clock[0] += timedelta(days=1)
    assert await again.send_due() == 1


async def test_no_digest_when_off(db: Database) -> None:
    clock = [datetime(2026, 12, 1, 4, 5, tzinfo=UTC)]
    sender, notices = await digest_world(db, clock)
    await InsightRepo(db).set_digest(1, "off")
    assert await sender.send_due() == 0 and notices.events == []


async def test_digest_hour_is_in_the_users_own_zone(db: Database) -> None:
    clock = [datetime(2026, 12, 1, 16, 5, tzinfo=UTC)]  # 21:05 in Tashkent, 08:05 in LA
    sender, notices = await digest_world(db, clock)
    assert await UserRepo(db).set_timezone(1, "America/Los_Angeles")
    assert await sender.send_due() == 0
    clock[0] = datetime(2026, 12, 1, 17, 5, tzinfo=UTC)  # 09:05 on Dec 1 in Los Angeles
    assert await sender.send_due() == 1
    [event] = notices.events
    assert isinstance(event, TrafficDigest) and event.first_day == date(2026, 11, 30)
