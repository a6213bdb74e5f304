"""Delivery tracking and 'unknown' sends, against the fake gateway and a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from handlers.callbacks import TokenCb
from services.access import AccessPolicy
from services.bulk import BulkRunner
from services.events import Event, JobFinished
from services.sending import SmsSender
from services.tracker import DeliveryTracker, stamp
from storage import BulkRepo, BulkRow, JobCounts, JobRow, OutboxRepo, OutboxRow, OutboxState
from storage.users import Access
from tests.fakes.fake_devsms import UNKNOWN_HISTORY_SHAPE, FakeDevsms
from tests.support.watch_env import World

PHONE = "998901234567"
SHOWN_PHONE = "+998 90 123 45 67"


class Clock:
    def __init__(self) -> None:
        # Whole seconds, like every stored time.
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.now = self.start

    def __call__(self) -> datetime:
        return self.now

    def at(self, delta: timedelta) -> None:
        self.now = self.start + delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_tracker(
    world: World, clock: Clock, *, outage_after: int = 3, **kwargs: object
) -> DeliveryTracker:
    watcher = world.watcher(outage_after=outage_after)  # also sets world.health
    return DeliveryTracker(
        OutboxRepo(world.db),
        world.alerts,
        world.accounts,
        world.notices,
        world.users,
        world.health,
        now=clock,
        on_token_rejected=watcher.token_rejected,
        **kwargs,  # type: ignore[arg-type]
    )


async def send(world: World, user_id: int, text: str = "Hello") -> tuple[int, int]:
    """A real send through the app's sender: (outbox id, sms_id)."""
    outcome = await SmsSender(world.accounts, OutboxRepo(world.db)).send(
        user_id, PHONE, text, None
    )
    assert outcome.result is not None and outcome.result.sms_id is not None
    return outcome.outbox_id, outcome.result.sms_id


async def row(world: World, outbox_id: int) -> OutboxRow:
    found = await OutboxRepo(world.db).get(outbox_id)
    assert found is not None
    return found


async def test_rejected_sms_is_reported_once(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")
    outbox_id, sms_id = await send(world, 1)
    tracker = make_tracker(world, clock)

    # Not due before the first 30 s.
    assert await tracker.tick() == 0
    devsms.set_status(sms_id, "REJECTED")
    clock.at(timedelta(seconds=31))
    assert await tracker.tick() == 1

    [report] = world.notify.to(1)
    assert report.text == f"❌ SMS to {SHOWN_PHONE}: rejected\nSMS id: {sms_id}"
    assert report.buttons() == [("Details", f"sms:{sms_id}:0:0")]
    tracked = await row(world, outbox_id)
    assert (tracked.status, tracked.next_check_at, tracked.result_notified) == (
        "REJECTED",
        None,
        True,
    )

    clock.at(timedelta(hours=2))
    assert await tracker.tick() == 0
    assert len(world.notify.to(1)) == 1


async def test_delivered_is_told_only_to_those_who_want_everything(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")  # default: failures only
    await world.add_user(2, "tok-2")
    await world.alerts.set_delivery_notify(2, "all")
    await world.add_user(3, "tok-3")
    await world.alerts.set_delivery_notify(3, "off")
    for user_id in (1, 2, 3):
        _, sms_id = await send(world, user_id)
        devsms.set_status(sms_id, "DELIVERED")

    clock.at(timedelta(minutes=1))
    assert await make_tracker(world, clock).tick() == 3
    assert world.notify.to(1) == [] and world.notify.to(3) == []
    [report] = world.notify.to(2)
    assert report.text.startswith(f"✅ SMS to {SHOWN_PHONE}: delivered")


async def test_schedule_advances_and_stops_after_a_day(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")
    outbox_id, _ = await send(world, 1)
    tracker = make_tracker(world, clock)

    gaps = []
    moment = timedelta(seconds=31)
    for _ in range(6):
        clock.at(moment)
        assert await tracker.tick() == 1
        tracked = await row(world, outbox_id)
        assert tracked.next_check_at is not None
        next_at = datetime.fromisoformat(tracked.next_check_at)
        gaps.append(next_at - clock.now)
        moment = next_at - clock.start
        # Just before it is due, nothing happens.
        clock.now = next_at - timedelta(seconds=1)
        assert await tracker.tick() == 0
    assert gaps == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    assert (await row(world, outbox_id)).checks == 6

    clock.at(timedelta(hours=25))
    assert await tracker.tick() == 1
    tracked = await row(world, outbox_id)
    assert tracked.next_check_at is None
    assert world.notify.messages == []


async def test_gateway_error_keeps_the_sms_tracked(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")
    outbox_id, sms_id = await send(world, 1)
    # One failed call is an outage here: the admins hear of the failure and of the recovery.
    tracker = make_tracker(world, clock, outage_after=1)
    devsms.set_status(sms_id, "UNDELIVERABLE")
    devsms.fail_next(1, status=503, path="/get_status.php")

    clock.at(timedelta(seconds=31))
    assert await tracker.tick() == 1
    tracked = await row(world, outbox_id)
    assert tracked.next_check_at is not None and tracked.status == "waiting"
    assert [m.text.split(":")[0] for m in world.notify.admin] == [
        "🚨 The devsms gateway is not answering"
    ]
    assert world.notify.to(1) == []

    clock.at(timedelta(minutes=2))
    assert await tracker.tick() == 1
    assert "undeliverable" in world.notify.to(1)[0].text
    assert world.notify.admin[-1].text.startswith("✅ The devsms gateway answers again.")


async def test_revoked_token_stops_tracking_and_tells_the_user_once(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")
    first, _ = await send(world, 1, "one")
    second, _ = await send(world, 1, "two")
    del devsms.accounts["tok-1"]

    clock.at(timedelta(minutes=1))
    assert await make_tracker(world, clock).tick() == 2
    [notice] = world.notify.to(1)
    assert notice.buttons()[0][1] == TokenCb().pack()
    assert (await row(world, first)).next_check_at is None
    assert (await row(world, second)).next_check_at is None


async def unknown_row(world: World, user_id: int, text: str) -> int:
    outbox = OutboxRepo(world.db)
    outbox_id = await outbox.create_pending(user_id, PHONE, text, None)
    await outbox.mark_unknown(outbox_id, "timeout")
    return outbox_id


async def test_unknown_send_found_in_history_is_settled_and_tracked(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")
    outbox_id = await unknown_row(world, 1, "Lost answer")
    # The gateway did get it: it is in the history.
    result = await world.client.send_sms("tok-1", PHONE, "Lost answer")
    tracker = make_tracker(world, clock)

    # Too fresh: the gateway may still be working on it.
    assert await tracker.reconcile_unknown_rows() == 0
    clock.at(timedelta(minutes=3))
    assert await tracker.reconcile_unknown_rows() == 1
    settled = await row(world, outbox_id)
    assert (settled.state, settled.sms_id) == (OutboxState.SENT, result.sms_id)
    assert settled.next_check_at == stamp(clock.now + timedelta(seconds=30))

    # From there on it is tracked like any other send.
    assert result.sms_id is not None
    devsms.set_status(result.sms_id, "EXPIRED")
    clock.at(timedelta(minutes=4))
    assert await tracker.tick() == 1
    assert "expired" in world.notify.to(1)[0].text


async def test_unknown_send_without_a_trace_is_not_sent_after_a_day(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")
    outbox_id = await unknown_row(world, 1, "Never arrived")
    tracker = make_tracker(world, clock)

    clock.at(timedelta(hours=23))
    assert await tracker.reconcile_unknown_rows() == 0
    assert (await row(world, outbox_id)).state is OutboxState.UNKNOWN

    # While the gateway is down, nothing is concluded.
    devsms.fail_next(1, status=500, path="/get_history.php")
    clock.at(timedelta(hours=25))
    assert await tracker.reconcile_unknown_rows() == 0
    assert (await row(world, outbox_id)).state is OutboxState.UNKNOWN

    assert await tracker.reconcile_unknown_rows() == 1
    assert (await row(world, outbox_id)).state is OutboxState.NOT_SENT
    [notice] = world.notify.to(1)
    assert_unsure_not_sent_notice(notice.text)
    assert await tracker.reconcile_unknown_rows() == 0
    assert len(world.notify.to(1)) == 1


def assert_unsure_not_sent_notice(text: str) -> None:
    """Its fate was never known: the user is told what devsms shows, never to just resend."""
    assert text.startswith(f"❔ Your SMS to {SHOWN_PHONE}")
    assert "no trace" in text and "probably not sent" in text
    assert "/history" in text and "recipient" in text
    assert "send it again" not in text.lower()


async def busy_history(world: World, token: str, count: int) -> None:
    """``count`` other SMS of the account, sent after whatever is in the history now."""
    for n in range(count):
        await world.client.send_sms(token, "998909999999", f"Other {n}")


async def test_unknown_send_deep_in_a_busy_history_is_settled_as_sent(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1", balance=100_000)
    outbox_id = await unknown_row(world, 1, "Lost answer")
    result = await world.client.send_sms("tok-1", PHONE, "Lost answer")
    # A busy account: the SMS is entry #350 of the history by the time it is looked for.
    await busy_history(world, "tok-1", 349)
    tracker = make_tracker(world, clock)

    # A day later, too: a walk that finds it never calls it "not sent".
    clock.at(timedelta(hours=25))
    assert await tracker.reconcile_unknown_rows() == 1
    settled = await row(world, outbox_id)
    assert (settled.state, settled.sms_id) == (OutboxState.SENT, result.sms_id)
    assert world.notify.to(1) == []


async def test_a_walk_cut_by_a_gateway_error_goes_on_next_round_and_only_then_concludes(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1", balance=100_000)
    outbox_id = await unknown_row(world, 1, "Never arrived")
    await busy_history(world, "tok-1", 450)  # three pages of 200
    tracker = make_tracker(world, clock, history_pages=1)
    clock.at(timedelta(hours=25))

    assert await tracker.reconcile_unknown_rows() == 0  # page 1
    devsms.fail_next(1, status=500, path="/get_history.php")
    assert await tracker.reconcile_unknown_rows() == 0  # page 2 fails
    assert await tracker.reconcile_unknown_rows() == 0  # page 2
    assert (await row(world, outbox_id)).state is OutboxState.UNKNOWN
    assert world.notify.to(1) == []
    offsets = [r.query["offset"] for r in devsms.requests_to("/get_history.php")]
    assert offsets == ["0", "200", "200"]  # one page per round, and none skipped

    assert await tracker.reconcile_unknown_rows() == 1  # page 3: the walk is complete
    assert (await row(world, outbox_id)).state is OutboxState.NOT_SENT
    [notice] = world.notify.to(1)
    assert_unsure_not_sent_notice(notice.text)


async def test_a_walk_stopped_by_its_page_bound_never_concludes_not_sent(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1", balance=100_000)
    outbox_id = await unknown_row(world, 1, "Never arrived")
    await busy_history(world, "tok-1", 450)
    tracker = make_tracker(world, clock, history_pages=2)
    clock.at(timedelta(hours=25))

    assert await tracker.reconcile_unknown_rows() == 0
    assert len(devsms.requests_to("/get_history.php")) == 2  # the bound per user and round
    assert (await row(world, outbox_id)).state is OutboxState.UNKNOWN
    assert world.notify.to(1) == []


async def test_unknown_older_than_lists_only_old_unknown_rows(world: World) -> None:
    await world.add_user(2, "tok-2")
    await world.add_user(1, "tok-1")
    outbox = OutboxRepo(world.db)
    later_user = await unknown_row(world, 2, "b")
    earlier_user = await unknown_row(world, 1, "a")
    sent = await outbox.create_pending(1, PHONE, "c", None)
    await outbox.mark_sent(sent, 5, None, "waiting", 1, "50")

    now = datetime.now(UTC)
    found = await outbox.unknown_older_than(stamp(now + timedelta(seconds=2)))
    assert [r.id for r in found] == [earlier_user, later_user]
    assert await outbox.unknown_older_than(stamp(now - timedelta(minutes=1))) == []


async def test_a_denied_user_hears_nothing_more(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1")
    await world.users.set_access(1, Access.ALLOWED)
    outbox_id, sms_id = await send(world, 1)
    await world.users.set_access(1, Access.DENIED)  # /deny in ACCESS_MODE=allowlist
    tracker = make_tracker(world, clock, policy=AccessPolicy(allowlist=True))
    devsms.set_status(sms_id, "REJECTED")
    clock.at(timedelta(seconds=31))
    await tracker.tick()
    assert (await row(world, outbox_id)).status == "REJECTED"  # tracked, not told
    assert world.notify.to(1) == []


async def test_a_history_answer_in_an_unknown_shape_never_concludes_not_sent(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    await world.add_user(1, "tok-1", balance=100_000)
    outbox_id = await unknown_row(world, 1, "Lost answer")
    await world.client.send_sms("tok-1", PHONE, "Lost answer")  # it did go out
    devsms.history_shape = UNKNOWN_HISTORY_SHAPE
    tracker = make_tracker(world, clock)
    clock.at(timedelta(hours=25))

    assert await tracker.reconcile_unknown_rows() == 0
    assert (await row(world, outbox_id)).state is OutboxState.UNKNOWN
    assert world.notify.to(1) == []
    # Once the answer is readable again, the walk goes on and finds it.
    devsms.history_shape = "sms"
    assert await tracker.reconcile_unknown_rows() == 1
    assert (await row(world, outbox_id)).state is OutboxState.SENT


# --- bulk rows of unknown fate ------------------------------------------------------------------


async def lost_bulk_row(
    world: World, devsms: FakeDevsms, clock: Clock
) -> tuple[BulkRepo, BulkRow, DeliveryTracker]:
    """A finished three-row bulk job of user 1 whose first row was answered 500 (and never
    reached the gateway): that row, 'unknown', and the tracker that goes on looking."""
    await world.add_user(1, "tok-1", balance=100_000)
    bulk = BulkRepo(world.db)
    job_id = await bulk.create_job(
        1,
        template="Hi {n}",
        sender=None,
        file_name="x.csv",
        file_format="csv",
        rows=[(n, f"99890123456{n}", f"Hi {n}", 1) for n in (2, 3, 4)],
    )
    finished: asyncio.Queue[tuple[JobRow, JobCounts]] = asyncio.Queue()

    class Finished:
        async def emit(self, event: Event) -> None:
            if isinstance(event, JobFinished):
                await finished.put((event.job, event.counts))

    runner = BulkRunner(bulk, world.accounts, rate=200.0, concurrency=1, notices=Finished())
    devsms.fail_next(1, status=500, path="/send_sms.php")  # the first row: not processed
    assert await runner.begin(job_id)
    job, counts = await asyncio.wait_for(finished.get(), timeout=15)
    assert job.state == "done"
    # Not found at the end: unclear, never failed nor "not sent".
    assert (counts.sent, counts.unknown, counts.failed, counts.not_sent) == (2, 1, 0, 0)
    [lost] = await bulk.rows_in(job_id, ("unknown",))
    return bulk, lost, make_tracker(world, clock)


async def still_unclear(tracker: DeliveryTracker, bulk: BulkRepo, lost: BulkRow) -> None:
    """A round of the tracker leaves the row unclear: neither failed nor "not sent"."""
    assert await tracker.reconcile_unknown_rows() == 0
    counts = await bulk.counts(lost.job_id)
    assert (counts.unknown, counts.failed, counts.not_sent) == (1, 0, 0)


async def now_of(bulk: BulkRepo, row: BulkRow) -> BulkRow:
    [found] = [r for r in await bulk.all_rows(row.job_id) if r.row_no == row.row_no]
    return found


async def test_a_bulk_row_the_gateway_lists_late_is_settled_as_sent(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    bulk, lost, tracker = await lost_bulk_row(world, devsms, clock)
    clock.at(timedelta(minutes=3))  # past the two minutes a lost answer is given
    await still_unclear(tracker, bulk, lost)

    # A slow gateway: the SMS shows up in the history only now.
    late = await world.client.send_sms("tok-1", lost.phone, lost.message)
    clock.at(timedelta(minutes=5))
    assert await tracker.reconcile_unknown_rows() == 1
    settled = await now_of(bulk, lost)
    assert (settled.state, settled.sms_id) == ("sent", late.sms_id)
    assert (await bulk.counts(lost.job_id)).sent == 3
    assert world.notify.to(1) == []


async def test_a_bulk_row_without_a_trace_is_probably_not_sent_only_after_a_day(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    bulk, lost, tracker = await lost_bulk_row(world, devsms, clock)
    clock.at(timedelta(hours=23))
    await still_unclear(tracker, bulk, lost)

    clock.at(timedelta(hours=25))
    assert await tracker.reconcile_unknown_rows() == 1
    counts = await bulk.counts(lost.job_id)
    assert (counts.sent, counts.unknown, counts.not_sent, counts.failed) == (2, 0, 1, 0)
    assert await tracker.reconcile_unknown_rows() == 0


async def test_a_not_sent_conclusion_never_overwrites_a_row_settled_as_sent_meanwhile(
    world: World, devsms: FakeDevsms, clock: Clock
) -> None:
    bulk, lost, tracker = await lost_bulk_row(world, devsms, clock)
    clock.at(timedelta(hours=25))

    # The walk reads a history without the row's SMS; while that answer is on its way, the
    # row is settled as sent (another reconciliation found it).
    devsms.hold("/get_history.php")
    round_ = asyncio.create_task(tracker.reconcile_unknown_rows())
    await devsms.wait_held()
    assert await bulk.settle_unknown(
        lost.job_id, lost.row_no, sms_id=4242, request_id=None, status="waiting", cost="50"
    )
    devsms.release()
    await asyncio.wait_for(round_, timeout=15)

    settled = await now_of(bulk, lost)
    assert (settled.state, settled.sms_id) == ("sent", 4242)
