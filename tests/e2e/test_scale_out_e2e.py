"""Three replicas of `python -m bot` in webhook mode on one PostgreSQL schema and Redis, behind a
round-robin balancer that skips a dead replica: kill -9 one in the middle of a single send, a
1,000-row bulk job and a balance round, and restart all of them one by one under load. What a
user or operator would notice is read from the fake gateway's log, the chats and the database.

The replicas are shared by the module's tests; a test that kills one leaves it to the next
test's fixture to start it again (the same REPLICA_ID, as a supervisor would). LEASE_SECONDS
is short, so a dead replica's leases and claims expire within the test.

Redis: TEST_REDIS_URL's server, in a database number of this module's own, flushed before
and after (the bots use their default key prefix).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from services.vault import TokenVault
from storage import Database
from storage.credentials import CredentialRepo
from storage.users import UserRepo
from tests.conftest import GOOD_TOKEN
from tests.e2e.harness import (
    BOT_TOKEN,
    ENCRYPTION_KEY,
    BotLauncher,
    BotProcess,
    ChatUser,
    connect_token,
    free_port,
    messages_containing,
    unanswered_messages,
    unhandled_errors,
)
from tests.e2e.test_bulk_e2e import job_id_of, people_file, phone, review_for, start_job
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram
from tests.support.balancer import Balancer
from tests.support.services import postgres_schema, redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PUBLIC: Final = "https://bot.example.test"
SECRET: Final = "e2e-scale-out-secret_0123456789"
SEND: Final = "/send_sms.php"
BALANCE: Final = "/get_balance.php"
REDIS_DB: Final = 12
NAMES: Final = ("a", "b", "c")
LEASE: Final = 3.0
BULK_RATE: Final = 100
THRESHOLD: Final = 1000  # so'm: LOW_BALANCE_THRESHOLD; the shared account stays far above it
NOT_SENT: Final = ("not</b> sent", "not sent", "send again", "try again")
LOW_ALERT: Final = "Low balance"
# What a replica logs once it listens and has set the webhook (bot/web/webhook.py).
READY: Final = "webhook set to "
# Three interpreters importing the bot at once on a shared 2-core machine are slow to start.
START: Final = 60.0


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    replicas: list[BotProcess]
    balancer: Balancer
    dsn: str
    db: Database

    def replica(self, replica_id: str) -> BotProcess:
        [found] = [r for r in self.replicas if f"replica-{r.name}" == replica_id]
        return found

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def value(self, sql: str, *args: Any) -> Any:
        [row] = await self.fetch(sql, *args)
        return row[0]


def own_database(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{REDIS_DB}"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    url = own_database(redis_url())
    redis = Redis.from_url(url)
    await redis.flushdb()
    telegram, devsms = FakeTelegram(BOT_TOKEN), FakeDevsms()
    await telegram.start()
    await devsms.start()
    devsms.add_account(GOOD_TOKEN, balance=1_000_000, sms_price=50)
    root = Path(tmp_path_factory.mktemp("scale-out"))
    ports = [free_port() for _ in NAMES]
    balancer = Balancer([f"http://127.0.0.1:{port}" for port in ports])
    await balancer.start()
    telegram.route_webhook(PUBLIC, balancer.base)
    launcher = BotLauncher(root, telegram, devsms)
    try:
        async with postgres_schema() as dsn:
            replicas = [
                launcher.new(name, extra_env=replica_env(name, port, dsn, url))
                for name, port in zip(NAMES, ports, strict=True)
            ]
            # Side by side: whichever comes first migrates the schema, under its lock.
            await start_all(telegram, replicas)
            db = await Database.open(dsn)
            try:
                yield World(telegram, devsms, replicas, balancer, dsn, db)
            finally:
                await launcher.stop_all()
                await db.close()
    finally:
        await launcher.stop_all()
        await balancer.stop()
        await devsms.stop()
        await telegram.stop()
        await redis.flushdb()
        await redis.aclose()


async def start_all(telegram: FakeTelegram, replicas: list[BotProcess]) -> None:
    """Starts the replicas side by side and waits until each has set the webhook (its own
    log says so: BotProcess.start would take another replica's setWebhook for its own)."""
    for replica in replicas:
        replica.launch()

    def ready() -> bool:
        for replica in replicas:
            if not replica.running:
                raise AssertionError(f"{replica.name} exited:\n{replica.log_tail()}")
        return all(READY in replica.output() for replica in replicas)

    try:
        await telegram.wait_for(ready, START)
    except AssertionError as exc:
        tails = "\n".join(f"--- {r.name}\n{r.log_tail(20)}" for r in replicas)
        raise AssertionError(f"{exc}\n{tails}") from None


def replica_env(name: str, port: int, dsn: str, redis: str) -> dict[str, str]:
    return {
        "TELEGRAM_MODE": "webhook",
        "PUBLIC_BASE_URL": PUBLIC,
        "WEBHOOK_SECRET": SECRET,
        "WEB_PORT": str(port),
        "REDIS_URL": redis,
        "REPLICA_ID": f"replica-{name}",
        "DATABASE_URL": dsn,
        "LEASE_SECONDS": str(LEASE),
        "DEFAULT_LANGUAGE": "en",
        "LOW_BALANCE_THRESHOLD": str(THRESHOLD),
        # One round at start-up; the balance-round test starts the next one itself.
        "BALANCE_CHECK_INTERVAL": "3600",
        "BULK_RATE": str(BULK_RATE),
        "BULK_CONCURRENCY": "4",
        # A held send is still in flight when its replica is killed.
        "DEVSMS_TIMEOUT": "10",
    }


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def all_running(world: World) -> AsyncIterator[None]:
    """Every test starts with the three replicas up (a killed one restarted, as a supervisor
    would) and a gateway without holds or latency."""
    world.devsms.release()
    world.devsms.latency = 0.0
    await start_all(world.telegram, [r for r in world.replicas if not r.running])
    yield
    world.devsms.release()
    world.devsms.latency = 0.0


async def seed_users(world: World, ids: Iterable[int], token_of: dict[int, str]) -> None:
    """Users with a connected token, written as the bot writes them (its own repositories):
    two hundred /start dialogs would only slow the test."""
    users, credentials = UserRepo(world.db), CredentialRepo(world.db)
    vault = TokenVault([ENCRYPTION_KEY])
    for user_id in ids:
        await users.upsert_seen(user_id, f"User{user_id}", None)
        await users.set_language(user_id, "en")
        await credentials.save(user_id, vault.encrypt(user_id, token_of[user_id]))


async def wait_until(world: World, predicate: Any, timeout: float, what: str) -> None:  # noqa: ASYNC109
    try:
        await world.telegram.wait_for(predicate, timeout)
    except AssertionError as exc:
        tails = "\n".join(f"--- {r.name}\n{r.log_tail(40)}" for r in world.replicas)
        raise AssertionError(f"{what}: {exc}\n{tails}") from None


# --- 1. a single send ---------------------------------------------------------------------------


async def test_a_replica_killed_mid_send_sends_once_and_never_says_not_sent(
    world: World,
) -> None:
    user = ChatUser(world.telegram, user_id=9101)
    await connect_token(user, GOOD_TOKEN)
    await user.ask("/send", "Whom to send to?")
    await user.ask("+998 90 555 01 01", "text")
    preview = await user.ask("Killed mid-send", "Check before sending")
    send_data = str(preview.button("Send").get("callback_data"))

    world.devsms.hold(SEND)
    user.tap(preview, "Send")
    await world.devsms.wait_held(1)
    # The replica whose request the gateway holds: the one that recorded the send.
    owner = await world.value("SELECT lease_owner FROM outbox WHERE state = 'pending'")
    sender = world.replica(owner)
    sender.kill()
    world.devsms.release()  # answered into a dead connection

    # A second tap on the same preview (the user's screen may still show the button) reaches
    # a survivor: nothing to send.
    again = world.telegram.press_button(
        user.user_id, preview.message_id, send_data, check_button=False
    )
    await user.answer_to(again)

    # The dead replica comes back under its own name: its send in flight becomes 'unknown'
    # (it may have gone out), to be settled from the history, never resent.
    await sender.start(START)
    rows = await world.fetch("SELECT phone, state FROM outbox WHERE user_id = $1", user.user_id)
    assert [tuple(r) for r in rows] == [("998905550101", "unknown")]
    sent = [r for r in world.devsms.requests_to(SEND) if r.json["message"] == "Killed mid-send"]
    assert len(sent) == 1
    for message in user.bot_messages():
        assert not any(bad in (message.raw_text or message.text or "") for bad in NOT_SENT), (
            message
        )


# --- 2. a bulk job ------------------------------------------------------------------------------


async def test_a_bulk_job_finishes_on_the_survivors_once_per_row_at_its_rate(
    world: World,
) -> None:
    user = ChatUser(world.telegram, user_id=9201)
    await connect_token(user, GOOD_TOKEN)
    count = 1000
    review = await review_for(user, "people.csv", people_file(count))
    progress = await start_job(user, review)
    job_id = job_id_of(progress)
    numbers = {phone(n) for n in range(count)}

    def job_sends() -> list[Any]:
        return [r for r in world.devsms.requests_to(SEND) if r.json.get("phone") in numbers]

    await wait_until(world, lambda: len(job_sends()) >= 300, 20, "the job did not get going")
    owner = await world.value("SELECT lease_owner FROM bulk_jobs WHERE id = $1", job_id)
    world.replica(owner).kill()
    assert len(job_sends()) < count, "the job finished before the kill; slow it down"

    summary = await user.reply_after(
        progress.message_id, f"Bulk job #{job_id} finished.", timeout=45
    )
    # The bot groups thousands with a no-break space.
    text = (summary.text or "").replace("\u00a0", "")
    found = re.search(r"Sent: (\d+) · failed: (\d+) · unclear: (\d+)", text)
    assert found is not None, summary
    assert sum(int(n) for n in found.groups()) == count
    states = await world.fetch(
        "SELECT state, count(*) FROM bulk_rows WHERE job_id = $1 GROUP BY state", job_id
    )
    assert sum(n for _, n in states) == count
    assert {s for s, _ in states} <= {"sent", "failed", "unknown"}, states
    finisher = await world.value("SELECT lease_owner FROM bulk_jobs WHERE id = $1", job_id)
    assert finisher in (None, *(f"replica-{r.name}" for r in world.replicas if r.running))

    sends = job_sends()
    twice = {p: n for p, n in Counter(r.json["phone"] for r in sends).items() if n > 1}
    assert twice == {}
    # The job's pace holds across the replicas: no one-second window above the rate by a
    # clear margin (a takeover's pause is a gap, never a burst that catches up).
    stamps = sorted(r.at for r in sends)
    busiest = max(
        sum(1 for t in stamps[i : i + 2 * BULK_RATE] if t < start + 1.0)
        for i, start in enumerate(stamps)
    )
    assert busiest <= BULK_RATE * 1.3, busiest


# --- 3. a balance round ------------------------------------------------------------------------


async def test_a_balance_round_finishes_on_the_survivors_one_alert_each(world: World) -> None:
    ids = range(8_000, 8_200)
    tokens = {user_id: f"devsms-scale-token-{user_id}" for user_id in ids}
    for token in tokens.values():
        world.devsms.add_account(token, balance=THRESHOLD // 2, sms_price=50)
    await seed_users(world, ids, tokens)

    def alerted() -> Counter[int]:
        return Counter({u: len(messages_containing(world.telegram, u, LOW_ALERT)) for u in ids})

    world.devsms.latency = 0.3  # the round takes seconds: there is a middle to kill it in
    # The round's time has come (BALANCE_CHECK_INTERVAL passed, as far as the replicas know).
    await world.fetch("UPDATE leases SET until = NULL WHERE name = 'balance-round'")
    await wait_until(
        world, lambda: sum(alerted().values()) >= 40, 20, "the round did not get going"
    )
    owner = await world.value("SELECT owner FROM leases WHERE name = 'balance-round'")
    world.replica(owner).kill()
    assert sum(alerted().values()) < len(ids), "the round finished before the kill"

    round_no = await world.value("SELECT fence FROM leases WHERE name = 'balance-round'")

    async def open_claims() -> int:
        return int(
            await world.value(
                "SELECT count(*) FROM alert_prefs WHERE balance_round = $1 "
                "AND lease_until IS NOT NULL",
                round_no,
            )
        )

    deadline = time.monotonic() + 40
    while not (all(alerted()[u] >= 1 for u in ids) and await open_claims() == 0):
        missing = [u for u in ids if alerted()[u] == 0]
        assert time.monotonic() < deadline, f"{len(missing)} users got no alert: {missing[:10]}"
        await asyncio.sleep(0.1)
    doubled = {u: n for u, n in alerted().items() if n > 1}
    assert doubled == {}


# --- 4. a rolling restart ----------------------------------------------------------------------


async def test_a_rolling_restart_under_balance_load_loses_no_update(world: World) -> None:
    ids = range(9_400, 9_420)
    await seed_users(world, ids, dict.fromkeys(ids, GOOD_TOKEN))
    users = [ChatUser(world.telegram, user_id=u) for u in ids]
    rolling = asyncio.Event()
    answered = Counter[int]()

    async def keep_asking(user: ChatUser) -> None:
        while not rolling.is_set() or answered[user.user_id] == 0:
            await user.ask("/balance", "Balance:", timeout=20)
            answered[user.user_id] += 1

    askers = [asyncio.create_task(keep_asking(user)) for user in users]
    try:
        for replica in world.replicas:
            await wait_until(world, lambda: sum(answered.values()) >= 20, 20, "no answers")
            before = sum(answered.values())
            code = await replica.stop()
            assert code == 0, replica.log_tail()
            await replica.start(START)
            await wait_until(
                world, lambda b=before: sum(answered.values()) >= b + 20, 20, "no answers"
            )
        rolling.set()
        await asyncio.gather(*askers)
    finally:
        for task in askers:
            task.cancel()
        await asyncio.gather(*askers, return_exceptions=True)
    for user in users:
        assert unanswered_messages(world.telegram, user.user_id) == []
    # A reply in flight at a replica's SIGTERM once ran into the closed Bot session (an update
    # claimed while the replica began to stop): bot/web/webhook.py WebhookHandler.close.
    for replica in world.replicas:
        assert unhandled_errors(replica) == [], replica.log_tail(120)
