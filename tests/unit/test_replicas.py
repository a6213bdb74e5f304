"""Background work done once by several replicas sharing one database: each "replica" here is
its own set of services over its own connection to one SQLite file, with its own gateway
client and REPLICA_ID, against one fake gateway whose log is the proof."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from services.accounts import Accounts
from services.bulk import BulkRunner
from services.devsms import DevsmsClient
from services.events import Event, JobFinished, JobPaused, LowBalance, Notices
from services.health import GatewayHealth
from services.scheduler import Scheduler
from services.sending import SmsSender
from services.tracker import DeliveryTracker
from services.vault import TokenVault
from services.watcher import BalanceWatcher
from storage import (
    AlertRepo,
    BulkRepo,
    CredentialRepo,
    Database,
    OutboxRepo,
    ScheduleRepo,
    UserRepo,
)
from storage.leases import LeaseRepo
from tests.fakes.fake_devsms import BALANCE, SEND, STATUS, FakeDevsms

USER = 7
TOKEN = "replica-token-1"
LIMIT = 20.0  # seconds any wait below may take on a busy machine


class Replica:
    """One replica's services over its own connection; events recorded for the test."""

    def __init__(self, db: Database, vault: TokenVault, fake: FakeDevsms, name: str) -> None:
        self.name = name
        self.db = db
        self.client = DevsmsClient(fake.url, timeout=5.0, get_retries=0, backoff=0.01)
        self.accounts = Accounts(CredentialRepo(db), vault, self.client)
        self.bulk = BulkRepo(db)
        self.outbox = OutboxRepo(db, owner=name)
        self.events: list[Event] = []
        self.finished = asyncio.Event()

    async def emit(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, JobFinished):
            self.finished.set()

    def runner(self, *, rate: float, lease_seconds: float) -> BulkRunner:
        return BulkRunner(
            self.bulk,
            self.accounts,
            rate=rate,
            concurrency=4,
            notices=self,
            replica_id=self.name,
            lease_seconds=lease_seconds,
        )

    def leases(self, seconds: float = 30.0) -> LeaseRepo:
        return LeaseRepo(self.db, self.name, seconds)

    async def close(self) -> None:
        await self.client.close()
        with contextlib.suppress(Exception):
            await self.db.close()


class Cluster:
    def __init__(self, path: Path, fake: FakeDevsms) -> None:
        self.path = path
        self.fake = fake
        self.vault = TokenVault([Fernet.generate_key().decode()])
        self.replicas: list[Replica] = []

    async def replica(self, name: str) -> Replica:
        replica = Replica(await Database.open(self.path), self.vault, self.fake, name)
        self.replicas.append(replica)
        return replica

    async def add_user(self, db: Database, user_id: int, token: str, balance: int) -> None:
        self.fake.add_account(token, balance=balance, sms_price=50)
        await UserRepo(db).upsert_seen(user_id, "Ali", None)
        await CredentialRepo(db).save(user_id, self.vault.encrypt(user_id, token))

    def events(self, kind: type[Event]) -> list[Event]:
        return [e for r in self.replicas for e in r.events if isinstance(e, kind)]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with FakeDevsms() as fake:
        made = Cluster(tmp_path / "bot.sqlite3", fake)
        yield made
        for replica in made.replicas:
            await replica.close()


async def _job(bulk: BulkRepo, rows: int) -> int:
    return await bulk.create_job(
        USER,
        template="Hello {n}",
        sender=None,
        file_name="x.csv",
        file_format="csv",
        rows=[(n + 2, f"99890{1000000 + n}", f"Hello {n}", 1) for n in range(rows)],
    )


async def _until_finished(cluster: Cluster) -> JobFinished:
    waits = [asyncio.create_task(r.finished.wait()) for r in cluster.replicas]
    try:
        await asyncio.wait_for(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED), LIMIT)
    finally:
        for wait in waits:
            wait.cancel()
    [finished] = cluster.events(JobFinished)
    assert isinstance(finished, JobFinished)
    return finished


def _watcher(
    replica: Replica,
    alerts: AlertRepo | None = None,
    *,
    notices: Notices | None = None,
    lease: float | None = 30.0,
    concurrency: int = 3,
) -> BalanceWatcher:
    """A replica's balance watcher, threshold 5,000; `lease` None: one process (no leases)."""
    return BalanceWatcher(
        AlertRepo(replica.db) if alerts is None else alerts,
        replica.accounts,
        replica if notices is None else notices,
        default_threshold=Decimal(5_000),
        interval=600.0,
        concurrency=concurrency,
        health=GatewayHealth(100, replica),
        leases=None if lease is None else replica.leases(lease),
    )


async def test_two_replicas_split_a_balance_round_and_check_each_user_once(
    cluster: Cluster,
) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    users = range(1, 41)
    for user_id in users:
        # Every fifth user is low: one alert each, whichever replica checks them.
        low = user_id % 5 == 0
        await cluster.add_user(a.db, user_id, f"tok-{user_id}", 1_000 if low else 20_000)
    cluster.fake.latency = 0.02  # a round long enough for both to be in it
    first, second = await asyncio.gather(
        _watcher(a, AlertRepo(a.db)).tick(), _watcher(b, AlertRepo(b.db)).tick()
    )
    assert first is not None and second is not None
    asked = Counter(r.token for r in cluster.fake.requests_to(BALANCE))
    assert asked == {f"tok-{user_id}": 1 for user_id in users}
    # Split, not repeated: both did part of it.
    assert first.checked + second.checked == 40
    assert first.checked > 0 and second.checked > 0
    alerted = sorted(e.person.user_id for e in cluster.events(LowBalance))  # type: ignore[attr-defined]
    assert alerted == [5, 10, 15, 20, 25, 30, 35, 40]
    # Nothing left for either replica in this round; the next one is not due yet.
    assert await _watcher(a, AlertRepo(a.db)).tick() is not None  # a fresh watcher joins once
    assert len(cluster.fake.requests_to(BALANCE)) == 40


class _Frozen:
    """The notices of a replica that dies while its alerts wait to go out."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def emit(self, event: Event) -> None:
        self.waiting.set()
        await asyncio.Event().wait()


class _DiesWithItsReplica(AlertRepo):
    """A killed replica's alert records: once dead, its writes never reach the database."""

    dead = False

    async def alert_told(self, user_id: int) -> None:
        if not self.dead:
            await super().alert_told(user_id)

    async def renew_checks(self, round_no: int, owner: str, until: str, now: str) -> int:
        return 0 if self.dead else await super().renew_checks(round_no, owner, until, now)


async def test_a_survivor_takes_up_the_checks_and_alerts_of_a_replica_dead_mid_round(
    cluster: Cluster,
) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    users = range(1, 21)
    for user_id in users:
        await cluster.add_user(a.db, user_id, f"tok-{user_id}", 1_000)  # all low
    lease = 0.3
    frozen = _Frozen()
    dying_alerts = _DiesWithItsReplica(a.db)
    dying = _watcher(a, dying_alerts, notices=frozen, lease=lease)
    survivor = _watcher(b, lease=lease)
    round_a = asyncio.create_task(dying.tick())
    await asyncio.wait_for(frozen.waiting.wait(), LIMIT)
    # "a" recorded crossings and claimed users it will never finish; "b" walks the round.
    assert await survivor.tick() is not None
    dying_alerts.dead = True  # killed: it writes nothing more, its claims are not renewed
    round_a.cancel()
    await asyncio.gather(round_a, return_exceptions=True)

    async def all_told() -> None:
        while len(b.events) < len(users):
            await survivor.tick()  # its looks, a lease's third apart
            await asyncio.sleep(lease / 3)

    await asyncio.wait_for(all_told(), LIMIT)
    alerted = Counter(e.person.user_id for e in cluster.events(LowBalance))  # type: ignore[attr-defined]
    assert alerted == dict.fromkeys(users, 1)
    assert await survivor.tick() is None  # the round is done


class _Slow:
    """A replica's notices when the notifier's queue is long: each alert goes out `delay`
    seconds after it was asked for."""

    def __init__(self, replica: Replica, delay: float) -> None:
        self.replica, self.delay = replica, delay
        self.asked = asyncio.Event()

    async def emit(self, event: Event) -> None:
        self.asked.set()
        await asyncio.sleep(self.delay)
        await self.replica.emit(event)


async def test_checks_slower_than_a_lease_stay_with_their_replica_and_alert_once(
    cluster: Cluster,
) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    users = range(1, 7)
    for user_id in users:
        await cluster.add_user(a.db, user_id, f"tok-{user_id}", 1_000)  # all low
    lease = 0.3
    notifier_a = _Slow(a, 3 * lease)
    slow, other = _watcher(a, notices=notifier_a, lease=lease), _watcher(b, lease=lease)
    round_a = asyncio.create_task(slow.tick())
    await asyncio.wait_for(notifier_a.asked.wait(), LIMIT)  # "a" started the round
    # "b" looks a lease's third apart the whole time "a" waits for its notifier: the claims
    # of "a", renewed meanwhile, never look like a dead replica's.
    while not round_a.done():
        await other.tick()
        await asyncio.sleep(lease / 3)
    assert (await round_a) is not None
    alerted = Counter(e.person.user_id for e in cluster.events(LowBalance))  # type: ignore[attr-defined]
    assert alerted == dict.fromkeys(users, 1)


async def test_a_stop_while_alerts_wait_for_their_turn_does_not_tell_them_again(
    cluster: Cluster,
) -> None:
    a = await cluster.replica("a")
    for user_id in (1, 2):
        await cluster.add_user(a.db, user_id, f"tok-{user_id}", 1_000)  # low
    frozen = _Frozen()  # the alerts are queued in the notifier, which sends them at the stop
    stopping = asyncio.create_task(
        _watcher(a, notices=frozen, lease=None, concurrency=2).check_all()
    )
    await asyncio.wait_for(frozen.waiting.wait(), LIMIT)
    await asyncio.sleep(0.05)
    stopping.cancel()  # the bot stops
    await asyncio.gather(stopping, return_exceptions=True)
    report = await _watcher(a, lease=None).check_all()  # started again: still below
    assert report.checked == 2
    assert cluster.events(LowBalance) == []


async def test_a_job_seen_by_two_replicas_sends_each_row_once_at_its_rate(
    cluster: Cluster,
) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    await cluster.add_user(a.db, USER, TOKEN, 1_000_000)
    rate = 40.0
    job_id = await _job(a.bulk, 120)
    first = a.runner(rate=rate, lease_seconds=5.0)
    second = b.runner(rate=rate, lease_seconds=5.0)
    await first.start()
    await second.start()
    assert await first.begin(job_id)
    # The other replica sees a running job too (its start-up, its sweep): it takes no row.
    await second.start()
    assert await second.take_over() in ([], [job_id])
    finished = await _until_finished(cluster)
    await first.stop()
    await second.stop()
    assert finished.counts.sent == 120
    phones = Counter(sms.phone for sms in cluster.fake.sent)
    assert len(phones) == 120 and set(phones.values()) == {1}
    # The job's rate, from the gateway's own clock (whole seconds): never a burst above it.
    per_second = Counter(sms.created_at for sms in cluster.fake.sent)
    assert max(per_second.values()) <= rate * 1.5 + 2
    span = (max(per_second) - min(per_second)).total_seconds()
    assert span >= 120 / rate - 2


async def test_a_survivor_finishes_the_job_of_a_killed_replica_without_resending(
    cluster: Cluster,
) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    await cluster.add_user(a.db, USER, TOKEN, 1_000_000)
    job_id = await _job(a.bulk, 200)
    doomed = a.runner(rate=100.0, lease_seconds=0.9)
    survivor = b.runner(rate=100.0, lease_seconds=0.9)
    await survivor.start()
    await doomed.start()
    assert await doomed.begin(job_id)
    await cluster.fake.wait_sent(30)
    # The next requests reach the gateway (sent, charged) but their answers never come back.
    cluster.fake.hold(SEND)
    in_flight = await cluster.fake.wait_held(2)
    # Killed: no clean-up of any kind (its database connection is gone first).
    killed = _tasks_of(doomed)
    await a.db.close()
    for task in killed:
        task.cancel()
    await asyncio.gather(*killed, return_exceptions=True)
    cluster.fake.release()
    finished = await _until_finished(cluster)
    await survivor.stop()

    phones = Counter(sms.phone for sms in cluster.fake.sent)
    assert set(phones.values()) == {1}, "an SMS went out twice"
    # Every row is accounted for: sent exactly when the gateway has it; a row the dead
    # replica had claimed but whose request never left stays unknown (the tracker concludes
    # it later), it is never sent again.
    rows = {row.phone: row for row in await b.bulk.all_rows(job_id)}
    assert {p for p, row in rows.items() if row.state == "sent"} == set(phones)
    unclear = [row for row in rows.values() if row.state != "sent"]
    assert all(row.state == "unknown" for row in unclear) and len(unclear) <= 4
    assert finished.counts.sent == len(phones) >= 196
    # The rows it had in flight were settled from the history, not resent.
    held = {r.json["phone"] for r in in_flight if r.json}
    assert held and all(rows[p].state == "sent" and rows[p].sms_id for p in held)
    assert [type(e) for e in b.events if isinstance(e, JobFinished | JobPaused)] == [JobFinished]


async def test_a_replica_stopping_hands_its_job_to_another_which_finishes_it(
    cluster: Cluster,
) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    await cluster.add_user(a.db, USER, TOKEN, 1_000_000)
    job_id = await _job(a.bulk, 60)
    leaving = a.runner(rate=50.0, lease_seconds=0.9)
    staying = b.runner(rate=50.0, lease_seconds=0.9)
    await staying.start()
    await leaving.start()
    assert await leaving.begin(job_id)
    await cluster.fake.wait_sent(10)
    await leaving.stop()  # a rolling restart: SIGTERM, rows in flight settle
    job = await a.bulk.get_job(job_id)
    assert job is not None and job.state == "running"  # not "done" with rows pending
    # Its owner hears of no end and no pause: a restart is not an event of the job.
    assert not [e for e in a.events if isinstance(e, JobFinished | JobPaused)]
    finished = await _until_finished(cluster)
    await staying.stop()
    phones = Counter(sms.phone for sms in cluster.fake.sent)
    assert len(phones) == 60 and set(phones.values()) == {1}
    assert finished.counts.sent == 60
    assert [type(e) for e in b.events if isinstance(e, JobFinished | JobPaused)] == [JobFinished]


def _tasks_of(runner: BulkRunner) -> set[asyncio.Task[None]]:
    """The runner's own tasks: its job runs and its takeover sweep (what a kill ends)."""
    tasks = {control.task for control in runner._jobs.values()}
    if runner._sweeper is not None:
        tasks.add(runner._sweeper)
    return tasks


async def test_a_scheduled_sms_due_once_is_sent_by_one_of_two_replicas(
    cluster: Cluster,
) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    await cluster.add_user(a.db, USER, TOKEN, 1_000_000)
    due = (datetime.now(UTC) - timedelta(seconds=5)).isoformat(timespec="seconds")
    item = await ScheduleRepo(a.db).add_sms(USER, "998901234567", "Hello", None, due)

    def scheduler(replica: Replica) -> Scheduler:
        return Scheduler(
            ScheduleRepo(replica.db),
            UserRepo(replica.db),
            replica.bulk,
            replica.accounts,
            SmsSender(replica.accounts, replica.outbox),
            replica.runner(rate=10, lease_seconds=5),
            replica,
            quiet_default=None,
        )

    await asyncio.gather(scheduler(a).tick(), scheduler(b).tick())
    assert [sms.phone for sms in cluster.fake.sent] == ["998901234567"]
    row = await ScheduleRepo(b.db).get(item)
    assert row is not None and row.state == "started"
    # The owner hears of it once, from the replica that sent it.
    assert sum(len(r.events) for r in cluster.replicas) == 1


async def test_a_due_delivery_check_is_made_by_one_of_two_replicas(cluster: Cluster) -> None:
    a, b = await cluster.replica("a"), await cluster.replica("b")
    await cluster.add_user(a.db, USER, TOKEN, 1_000_000)
    outcome = await SmsSender(a.accounts, a.outbox).send(USER, "998901234567", "Hello", None)
    cluster.fake.set_status(cluster.fake.sent[0].sms_id, "DELIVRD")
    await a.outbox.schedule_check(outcome.outbox_id, "2000-01-01T00:00:00+00:00", 0)  # due

    def tracker(replica: Replica) -> DeliveryTracker:
        return DeliveryTracker(
            replica.outbox,
            AlertRepo(replica.db),
            replica.accounts,
            replica,
            UserRepo(replica.db),
            GatewayHealth(100, replica),
        )

    checked = await asyncio.gather(tracker(a).tick(), tracker(b).tick())
    assert sorted(checked) == [0, 1]
    assert len(cluster.fake.requests_to(STATUS)) == 1
