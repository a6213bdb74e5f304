"""The lease and claim statements (storage/leases.py and the claims in the repositories), with
two Database objects on one database standing for two replicas: two connections on one SQLite
file, and two pools on one PostgreSQL schema (database_target, tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.rounds import LeaseLost, Rounds
from storage import AlertRepo, BulkRepo, CredentialRepo, Database, OutboxRepo, UserRepo
from storage.broadcasts import BroadcastRepo
from storage.leases import JobLeaseRepo, LeaseRepo, lease_stamp


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def pass_(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def pair(database_target: str | Path) -> AsyncIterator[tuple[Database, Database]]:
    first = await Database.open(database_target)
    second = await Database.open(database_target)
    yield first, second
    await second.close()
    await first.close()


async def test_a_lease_has_one_holder_until_it_expires(pair: tuple[Database, Database]) -> None:
    clock = Clock()
    a = LeaseRepo(pair[0], "a", 30, clock=clock)
    b = LeaseRepo(pair[1], "b", 30, clock=clock)
    assert await a.acquire("round") == 1
    assert await b.acquire("round") is None
    clock.pass_(20)
    assert await a.renew("round", 1)  # renewed: now until 12:00:50
    clock.pass_(20)
    assert await b.acquire("round") is None
    clock.pass_(11)  # a stopped renewing: expired
    assert await b.acquire("round") == 2
    # a comes back with its old fence: refused everywhere.
    assert not await a.renew("round", 1)
    assert not await a.release("round", 1)
    holder = await a.holder("round")
    assert holder is not None and (holder.owner, holder.fence) == ("b", 2)
    assert await b.release("round", 2)
    assert await a.acquire("round") == 3  # released: free at once


async def test_a_term_starts_once_per_period_whoever_asks(pair: tuple[Database, Database]) -> None:
    clock = Clock()
    a = LeaseRepo(pair[0], "a", 30, clock=clock)
    b = LeaseRepo(pair[1], "b", 30, clock=clock)
    assert await a.next_term("balance", 600) == 1
    assert await a.next_term("balance", 600) is None  # not even its starter starts another
    assert await b.next_term("balance", 600) is None
    clock.pass_(601)
    assert await b.next_term("balance", 600) == 2
    assert await a.advance("balance") == 3  # a forced round, whoever held the term


async def _job(db: Database, rows: int = 3) -> int:
    await UserRepo(db).upsert_seen(7, "Ali", None)
    bulk = BulkRepo(db)
    job_id = await bulk.create_job(
        7,
        template="Hi",
        sender=None,
        file_name="x.csv",
        file_format="csv",
        rows=[(n, f"99890100000{n}", "Hi", 1) for n in range(rows)],
    )
    assert await bulk.set_job_state(job_id, "running", allowed_from=("ready",))
    return job_id


async def test_a_job_lease_fences_out_a_replica_that_lost_it(
    pair: tuple[Database, Database],
) -> None:
    clock = Clock()
    a, b = BulkRepo(pair[0]), BulkRepo(pair[1])
    la, lb = JobLeaseRepo(pair[0]), JobLeaseRepo(pair[1])
    job_id = await _job(pair[0])

    def stamp(ahead: float = 0) -> str:
        return lease_stamp(clock() + timedelta(seconds=ahead))

    fence_a = await la.acquire_job(job_id, "a", stamp(30), stamp())
    assert fence_a == 1
    assert await lb.acquire_job(job_id, "b", stamp(30), stamp()) is None
    assert await a.claim(job_id, 0, lease=("a", fence_a))
    clock.pass_(31)  # a froze mid-request: its lease ran out
    fence_b = await lb.acquire_job(job_id, "b", stamp(30), stamp())
    assert fence_b == 2
    # The row a had claimed may have gone out: unknown, never pending again.
    states = {row.row_no: row.state for row in await b.all_rows(job_id)}
    assert states == {0: "unknown", 1: "pending", 2: "pending"}
    # a wakes up: it can neither claim nor renew.
    assert not await a.claim(job_id, 1, lease=("a", fence_a))
    assert not await la.renew_job(job_id, "a", fence_a, stamp(30))
    assert await b.claim(job_id, 1, lease=("b", fence_b))
    # Its end of run turns only its own rows unknown, not b's row in flight.
    assert await a.unsettled_to_unknown(job_id, fence_a) == 0
    assert [r.state for r in await b.all_rows(job_id)] == ["unknown", "sending", "pending"]
    # Paused (on any replica): the holder claims nothing more either.
    assert await a.set_job_state(job_id, "paused", allowed_from=("running",))
    assert not await b.claim(job_id, 2, lease=("b", fence_b))


async def test_a_job_cancelled_or_paused_on_another_replica_gets_no_more_rows_claimed(
    pair: tuple[Database, Database],
) -> None:
    a, b = BulkRepo(pair[0]), BulkRepo(pair[1])
    job_id = await _job(pair[0], rows=4)
    assert await a.claim(job_id, 0)
    assert await b.set_job_state(job_id, "paused", allowed_from=("running",))
    assert not await a.claim(job_id, 1)
    assert await b.set_job_state(job_id, "running", allowed_from=("paused",))
    assert await a.claim(job_id, 1)
    assert await b.set_job_state(job_id, "cancelled", allowed_from=("running",))
    assert not await a.claim(job_id, 2)
    assert not await a.claim(job_id, 3, callback=("ab" * 32, 7))
    assert [r.state for r in await b.all_rows(job_id)] == [
        "sending",
        "sending",
        "pending",
        "pending",
    ]


async def test_a_restarting_replica_settles_only_rows_of_jobs_nobody_holds(
    pair: tuple[Database, Database],
) -> None:
    clock = Clock()
    a, b = BulkRepo(pair[0]), BulkRepo(pair[1])
    held = await _job(pair[0])
    orphan = await _job(pair[0])
    now, later = lease_stamp(clock()), lease_stamp(clock() + timedelta(seconds=30))
    fence = await JobLeaseRepo(pair[0]).acquire_job(held, "a", later, now)
    assert fence is not None
    assert await a.claim(held, 0, lease=("a", fence))
    assert await a.claim(orphan, 0)  # a row of a job with no lease (an older version's)
    assert await b.orphans_to_unknown("b", now) == 1
    assert [r.state for r in await b.all_rows(held)] == ["sending", "pending", "pending"]
    assert [r.state for r in await b.all_rows(orphan)] == ["unknown", "pending", "pending"]
    # a itself restarting (same REPLICA_ID): its previous run's rows are orphans.
    assert await a.orphans_to_unknown("a", now) == 1


async def test_send_slots_never_overlap_across_replicas(pair: tuple[Database, Database]) -> None:
    a, b = JobLeaseRepo(pair[0]), JobLeaseRepo(pair[1])
    job_id = await _job(pair[0])
    now = 1_000_000_000
    first = await a.take_slots(job_id, 200_000, 3, now)  # 5/s: three slots, 0.2 s apart
    second = await b.take_slots(job_id, 200_000, 1, now)
    third = await a.take_slots(job_id, 200_000, 1, now + 100)
    assert (first, second, third) == (now, now + 600_000, now + 800_000)
    # A job idle for a while starts again from now, not from its old slots.
    assert await b.take_slots(job_id, 200_000, 1, now + 10_000_000) == now + 10_000_000


async def _users(db: Database, ids: list[int]) -> None:
    users, credentials = UserRepo(db), CredentialRepo(db)
    for user_id in ids:
        await users.upsert_seen(user_id, "U", None)
        await credentials.save(user_id, b"secret")


async def test_a_users_balance_check_is_claimed_once_per_round(
    pair: tuple[Database, Database],
) -> None:
    clock = Clock()
    a, b = AlertRepo(pair[0]), AlertRepo(pair[1])
    await _users(pair[0], [1, 2, 3])
    await a.set_balance_alerts(3, False)  # a user with a prefs row already

    def stamp(ahead: float = 0) -> str:
        return lease_stamp(clock() + timedelta(seconds=ahead))

    assert await a.claim_checks([1, 2], 1, "a", stamp(30), stamp()) == {1, 2}
    assert await b.claim_checks([1, 2, 3], 1, "b", stamp(30), stamp()) == {3}
    await a.finish_check(1, 1, "a")
    await b.finish_check(3, 1, "b")
    clock.pass_(31)
    # User 2's claim expired unfinished (a died): b takes it; user 1 was checked already.
    assert await b.claim_checks([1, 2, 3], 1, "b", stamp(30), stamp()) == {2}
    assert (await b.get(3)).balance_alerts is False  # the claim kept the user's settings
    # The next round claims everyone again.
    assert await a.claim_checks([1, 2, 3], 2, "a", stamp(30), stamp()) == {1, 2, 3}


async def test_a_due_delivery_check_is_claimed_by_one_replica(
    pair: tuple[Database, Database],
) -> None:
    a, b = OutboxRepo(pair[0], owner="a"), OutboxRepo(pair[1], owner="b")
    await UserRepo(pair[0]).upsert_seen(7, "Ali", None)
    outbox_id = await a.create_pending(7, "998901000001", "Hi", None)
    assert await a.mark_sent(outbox_id, 5, "r", "sent", 1, "50")
    await a.schedule_check(outbox_id, "2026-12-01T12:00:00+00:00", 0)
    now, until = "2026-12-01T12:00:05+00:00", "2026-12-01T12:00:35+00:00"
    [claimed] = await a.claim_due_checks(now, until)
    assert claimed.id == outbox_id
    assert await b.claim_due_checks(now, until) == []
    # Its replica died mid-check: due again once the claim ran out.
    assert [r.id for r in await b.claim_due_checks("2026-12-01T12:00:36+00:00", until)] == [
        outbox_id
    ]


async def test_a_starting_replica_leaves_other_replicas_sends_in_flight_alone(
    pair: tuple[Database, Database],
) -> None:
    a, b = OutboxRepo(pair[0], owner="a"), OutboxRepo(pair[1], owner="b")
    await UserRepo(pair[0]).upsert_seen(7, "Ali", None)
    in_flight = await a.create_pending(7, "998901000001", "Hi", None)
    own = await b.create_pending(7, "998901000002", "Hi", None)
    assert await b.orphans_to_unknown(older_than="2000-01-01T00:00:00+00:00") == 1
    assert (await b.get(own)).state == "unknown"  # type: ignore[union-attr]
    assert (await b.get(in_flight)).state == "pending"  # type: ignore[union-attr]
    # Long past any timeout, a's row is an orphan for anyone.
    assert await b.orphans_to_unknown(mine=False, older_than="2999-01-01T00:00:00+00:00") == 1


async def test_a_round_runs_on_one_replica_per_period(pair: tuple[Database, Database]) -> None:
    a = Rounds(LeaseRepo(pair[0], "a", 30))
    b = Rounds(LeaseRepo(pair[1], "b", 30))
    ran: list[str] = []

    async def work(name: str) -> str:
        ran.append(name)
        return name

    assert await a.run("traffic", lambda: work("a"), hold=600) == (True, "a")
    assert await b.run("traffic", lambda: work("b"), hold=600) == (False, None)
    assert await a.run("traffic", lambda: work("a")) == (True, "a")  # its own round again
    # Without `hold` the lease is free at the round's end: the next replica to ask runs it.
    assert await b.run("traffic", lambda: work("b")) == (True, "b")
    assert ran == ["a", "a", "b"]


async def test_a_round_whose_lease_was_taken_over_is_stopped(
    pair: tuple[Database, Database],
) -> None:
    stalled = Rounds(LeaseRepo(pair[0], "a", 0.3))
    other = LeaseRepo(pair[1], "b", 30)
    started = asyncio.Event()

    async def endless() -> None:
        started.set()
        await asyncio.Event().wait()

    async def take_over() -> None:
        await started.wait()
        await other.advance("round")  # as if a's lease had run out while it stalled

    with pytest.raises(LeaseLost):
        await asyncio.gather(stalled.run("round", endless), take_over())
    holder = await other.holder("round")
    assert holder is not None and holder.owner == "b"  # a's end left b's lease alone


async def test_a_stop_that_lands_as_a_round_ends_stops_the_loop_around_it(
    pair: tuple[Database, Database],
) -> None:
    """A stop right as a round hands its lease back (a SIGTERM just after start-up) ends the
    loop that runs the rounds: it was swallowed with the lease keeper's own cancellation, the
    loop went on to its pause, and the shutdown waited for it forever."""
    rounds = Rounds(LeaseRepo(pair[0], "a", 30))
    loop = asyncio.get_running_loop()

    async def work() -> None:
        # Two turns of the event loop after the work returns, the round waits for its keeper.
        loop.call_soon(loop.call_soon, runner.cancel)

    async def loop_of_rounds() -> None:
        while True:
            await rounds.run("round", work)
            await asyncio.Event().wait()  # the pause until the next round

    runner = asyncio.create_task(loop_of_rounds())
    done, _ = await asyncio.wait([runner], timeout=5)
    runner.cancel()  # the loop that went on: stopped for good, so the test itself ends
    assert runner in done and runner.cancelled(), "the stop was swallowed: the loop went on"


async def test_replicas_claiming_the_same_users_at_once_split_them(
    pair: tuple[Database, Database],
) -> None:
    # At the same moment, in the order the watcher pages them (by id): on PostgreSQL the
    # statements run side by side on two pools and wait for each other's row locks.
    clock = Clock()
    ids = list(range(1, 61))
    await _users(pair[0], ids)
    until, now = lease_stamp(clock() + timedelta(seconds=30)), lease_stamp(clock())
    repos = [AlertRepo(pair[0]), AlertRepo(pair[1])]
    for round_no in (1, 2):
        claims = await asyncio.gather(
            *(
                repos[n % 2].claim_checks(ids[start : start + 20], round_no, f"r{n}", until, now)
                for n in range(4)
                for start in range(0, len(ids), 20)
            )
        )
        claimed = [user_id for claim in claims for user_id in claim]
        assert sorted(claimed) == ids  # everyone once, nobody twice


async def test_replicas_claiming_the_same_rows_at_once_send_each_once(
    pair: tuple[Database, Database],
) -> None:
    a, b = BulkRepo(pair[0]), BulkRepo(pair[1])
    job_id = await _job(pair[0], rows=30)
    won = await asyncio.gather(
        *(repo.claim(job_id, row_no) for row_no in range(30) for repo in (a, b, a))
    )
    assert sum(won) == 30
    assert {r.state for r in await b.all_rows(job_id)} == {"sending"}


async def test_a_broadcasts_workers_claiming_at_once_take_each_target_once(
    pair: tuple[Database, Database],
) -> None:
    # run_broadcast's workers claim side by side (on PostgreSQL, on connections of their own):
    # each target must reach one of them, or its user gets the message twice.
    targets = list(range(1, 41))
    for user_id in targets:
        await UserRepo(pair[0]).upsert_seen(user_id, "U", None)
    repos = [BroadcastRepo(pair[0]), BroadcastRepo(pair[1])]
    broadcast_id = await repos[0].create(1, "Hi", targets, report=(1, 2), language="en")
    claimed: list[int] = []

    async def worker(repo: BroadcastRepo) -> None:
        while (user_id := await repo.claim(broadcast_id)) is not None:
            claimed.append(user_id)

    await asyncio.gather(*(worker(repos[n % 2]) for n in range(6)))
    assert sorted(claimed) == targets  # everyone once, nobody twice, nobody left waiting
    assert await repos[1].counts(broadcast_id) == {"claimed": len(targets)}


async def test_replicas_polling_due_checks_at_once_check_each_send_once(
    pair: tuple[Database, Database],
) -> None:
    repos = [OutboxRepo(pair[0], owner="a"), OutboxRepo(pair[1], owner="b")]
    await UserRepo(pair[0]).upsert_seen(7, "Ali", None)
    ids = []
    for n in range(20):
        outbox_id = await repos[0].create_pending(7, f"9989010000{n:02}", "Hi", None)
        assert await repos[0].mark_sent(outbox_id, 100 + n, "r", "sent", 1, "50")
        await repos[0].schedule_check(outbox_id, "2026-12-01T12:00:00+00:00", 0)
        ids.append(outbox_id)
    now, until = "2026-12-01T12:00:05+00:00", "2026-12-01T12:00:35+00:00"
    # Both read the same 20 due rows first, then claim them side by side.
    claims = await asyncio.gather(*(repos[n % 2].claim_due_checks(now, until) for n in range(4)))
    assert sorted(row.id for claim in claims for row in claim) == ids
