"""services/traffic.py: the account's whole history kept locally, incrementally and within a
bound of gateway calls per round, with statuses that follow the history and the bot's own
sends told apart from the rest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.sending import SmsSender
from services.traffic import TrafficSync
from storage import BulkRepo, OutboxRepo, TrafficRepo
from storage.traffic import Origin
from tests.fakes.fake_devsms import HISTORY, FakeDevsms
from tests.support.watch_env import World

TOKEN = "tok-traffic-1"


def sync(world: World, *, pages: int = 3, limit: int = 5, days: int = 90) -> TrafficSync:
    return TrafficSync(
        TrafficRepo(world.db),
        world.alerts,
        world.accounts,
        interval=60,
        max_pages=pages,
        concurrency=2,
        backfill_days=days,
        page_limit=limit,
    )


def elsewhere(devsms: FakeDevsms, n: int, status: str = "DELIVERED") -> list[int]:
    return [
        devsms.sent_elsewhere(TOKEN, f"99890123{i:04d}", f"code {i}", status=status).sms_id
        for i in range(n)
    ]


def history_calls(devsms: FakeDevsms) -> int:
    return len(devsms.requests_to(HISTORY))


async def stored(world: World) -> dict[int | None, tuple[str | None, Origin]]:
    now = datetime.now(UTC)
    rows = TrafficRepo(world.db).iter_rows(1, now - timedelta(days=3), now + timedelta(days=1))
    return {r.sms_id: (r.status, r.origin) async for r in rows}


async def test_a_round_stops_at_what_is_already_known(world: World) -> None:
    await world.add_user(1, TOKEN)
    ids = elsewhere(world.devsms, 7)
    worker = sync(world, pages=5, limit=5)
    first = await worker.sync_user(1)
    assert first.inserted == 7 and first.resume_offset is None
    assert set(await stored(world)) == set(ids)
    before = history_calls(world.devsms)
    more = elsewhere(world.devsms, 2)
    second = await worker.sync_user(1)
    # Two new SMS on top of known, final ones: one page read, nothing deeper.
    assert (second.inserted, second.calls) == (2, 1)
    assert history_calls(world.devsms) - before == 1
    assert set(await stored(world)) == set(ids + more)


async def test_calls_per_round_are_bounded_and_the_rest_comes_later(world: World) -> None:
    await world.add_user(1, TOKEN)
    ids = elsewhere(world.devsms, 23)
    worker = sync(world, pages=2, limit=5)
    before = history_calls(world.devsms)
    report = await worker.sync_user(1)
    assert history_calls(world.devsms) - before == 2 == report.calls
    assert len(await stored(world)) == 10 and report.resume_offset == 10
    # Three new on top meanwhile: the next rounds read them and go on below the first ten.
    newer = elsewhere(world.devsms, 3)
    for _ in range(5):
        report = await worker.sync_user(1)
        assert report.calls <= 2
    assert set(await stored(world)) == set(ids + newer)
    assert report.resume_offset is None


async def test_a_burst_bigger_than_a_round_leaves_no_gap(world: World) -> None:
    await world.add_user(1, TOKEN)
    old = elsewhere(world.devsms, 4)
    worker = sync(world, pages=2, limit=5)
    await worker.sync_user(1)
    burst = elsewhere(world.devsms, 17)
    for _ in range(4):
        await worker.sync_user(1)
    assert set(await stored(world)) == set(old + burst)


async def test_statuses_follow_the_history(world: World) -> None:
    await world.add_user(1, TOKEN)
    devsms = world.devsms
    waiting = devsms.sent_elsewhere(TOKEN, "998901112233", "otp 1", status="waiting")
    elsewhere(devsms, 6)  # newer, final ones on top of the waiting one
    worker = sync(world, pages=5, limit=5)
    await worker.sync_user(1)
    assert (await stored(world))[waiting.sms_id][0] == "waiting"
    waiting.status = "REJECTED"
    report = await worker.sync_user(1)
    assert report.updated == 1
    assert (await stored(world))[waiting.sms_id][0] == "REJECTED"
    # Settled: the next round reads only the first page.
    assert (await worker.sync_user(1)).calls == 1


async def test_the_bots_own_sends_are_told_from_the_rest(world: World) -> None:
    await world.add_user(1, TOKEN)
    outbox = OutboxRepo(world.db)
    sender = SmsSender(world.accounts, outbox, first_check=timedelta(seconds=30))
    result = await sender.send(1, "998907654321", "from the chat", None)
    other = world.devsms.sent_elsewhere(TOKEN, "998901234567", "from the backend")
    await sync(world).sync_user(1)
    rows = await stored(world)
    assert rows[other.sms_id][1] is Origin.ELSEWHERE
    sent = world.devsms.sent[-1]
    assert rows[sent.sms_id][1] is Origin.BOT
    assert result is not None


async def test_bulk_rows_and_late_recorded_sends_are_the_bots(world: World) -> None:
    await world.add_user(1, TOKEN)
    bulk = BulkRepo(world.db)
    job = await bulk.create_job(
        1, template="hi", sender=None, file_name="a.csv", file_format="csv",
        rows=[(1, "998901000001", "hi", 1)],
    )  # fmt: skip
    from_job = world.devsms.sent_elsewhere(TOKEN, "998901000001", "hi")
    await bulk.finish_row(job, 1, "sent", request_id=from_job.request_id, status="waiting")
    # A chat send whose answer is recorded only after the history showed it.
    outbox = OutboxRepo(world.db)
    late = world.devsms.sent_elsewhere(TOKEN, "998907777777", "late answer")
    row_id = await outbox.create_pending(1, "998907777777", "other text", None)
    worker = sync(world)
    await worker.sync_user(1)
    rows = await stored(world)
    assert rows[from_job.sms_id][1] is Origin.BULK
    assert rows[late.sms_id][1] is Origin.ELSEWHERE
    await outbox.mark_sent(row_id, late.sms_id, None, "waiting", 1, "50")
    await worker.sync_user(1)
    assert (await stored(world))[late.sms_id][1] is Origin.BOT
    traffic = TrafficRepo(world.db)
    now = datetime.now(UTC)
    [job_row] = [
        r
        async for r in traffic.iter_rows(1, now - timedelta(hours=1), now + timedelta(hours=1))
        if r.sms_id == from_job.sms_id
    ]
    assert job_row.job_id == job


async def test_the_watcher_keeps_balance_snapshots_for_the_forecast(world: World) -> None:
    await world.add_user(1, TOKEN, balance=12_345)
    traffic = TrafficRepo(world.db)
    await world.watcher(snapshots=traffic).check_all()
    snapshot = await traffic.latest_balance(1)
    assert snapshot is not None and snapshot.amount == 12_345 and snapshot.currency == "UZS"


async def test_a_round_that_meets_a_new_token_writes_nothing_more(world: World) -> None:
    await world.add_user(1, TOKEN)
    elsewhere(world.devsms, 12)
    world.devsms.add_account("tok-traffic-2", balance=100, sms_price=50)
    traffic = TrafficRepo(world.db)
    worker = sync(world, pages=3, limit=5)
    world.devsms.hold("/get_history.php")
    round_ = asyncio.create_task(worker.sync_user(1))
    await world.devsms.wait_held(1)
    # The owner connects another account's token while the first page is on its way.
    await world.credentials.save(1, world.vault.encrypt(1, "tok-traffic-2"))
    await traffic.forget(1)
    world.devsms.release()
    report = await round_
    assert report.inserted == 0
    assert await stored(world) == {}


async def test_a_failing_gateway_costs_one_call_and_the_next_round_catches_up(
    world: World,
) -> None:
    await world.add_user(1, TOKEN)
    ids = elsewhere(world.devsms, 3)
    worker = sync(world, pages=5, limit=5)
    world.devsms.fail_next(5, path="/get_history.php")
    before = history_calls(world.devsms)
    report = await worker.sync_user(1)
    assert history_calls(world.devsms) - before == 1 and report.inserted == 0
    world.devsms.clear_faults()
    await worker.sync_user(1)
    assert set(await stored(world)) == set(ids)
