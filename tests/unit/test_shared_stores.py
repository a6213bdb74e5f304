"""What replicas share besides FSM state (services/shared_stores.py, bot/replicas.py), on a
real Redis under a key prefix of this test; and the settings and caches that go with it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from cryptography.fernet import Fernet
from pydantic import ValidationError
from redis.asyncio import Redis

from bot.config import Settings
from bot.logging_setup import ReplicaFilter
from bot.replicas import DIALOG_TTL, fsm_storage
from services.bulk_plan import PackedSource, parse_source
from services.chart_desk import ChartDesk
from services.export_desk import ExportDesk, Taken
from services.shared_stores import (
    RedisCodeKeeper,
    RedisLists,
    RedisRuns,
    RedisTaps,
    UnreadablePack,
    pack_list,
    unpack_list,
)
from services.vault import TokenVault
from storage import CredentialRepo, Database, UserRepo
from storage.fsm import ForgetsUsers
from tests.support.harness import BOT_TOKEN
from tests.support.redis_keys import redis_client

ALI, VALI = 1001, 1002
CSV = b"name,phone\nAli,+998 90 123 45 67\nBad,12\nVali,901234568\n"


@pytest.fixture
async def shared() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_client() as pair:
        yield pair


def packed(key: str = "k1", rows: int = 3) -> PackedSource:
    data = "phone,name\n" + "".join(f"9012345{i:02d},Name {i}\n" for i in range(rows))
    return PackedSource.pack(parse_source(data.encode(), "people.csv", key, 1000))


def test_a_packed_list_comes_back_as_it_was_read() -> None:
    source = parse_source(CSV, "people.csv", "k1", 100)
    again = unpack_list(pack_list(PackedSource.pack(source))).unpack()
    assert again == source
    with pytest.raises(UnreadablePack):
        unpack_list(b"\x00\x00\x00\x05{nope")
    with pytest.raises(UnreadablePack):
        unpack_list(pack_list(PackedSource.pack(source)) + b"x")


async def test_a_list_stored_by_one_replica_is_read_by_another(
    shared: tuple[Redis, str],
) -> None:
    redis, prefix = shared
    first, second = RedisLists(redis, prefix, 10**6), RedisLists(redis, prefix, 10**6)
    await first.save(ALI, packed("k1"))
    found = await second.load(ALI, "k1")
    assert found is not None and found.unpack() == packed("k1").unpack()
    assert await second.load(ALI, "another file") is None  # the dialog's list, or nothing
    assert await second.load(VALI, "k1") is None
    ttl = await redis.pttl(f"{prefix}:lists:user:{ALI}")
    assert 0 < ttl <= 3600 * 1000


async def test_lists_stay_within_the_budget_oldest_first(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    size = len(pack_list(packed(rows=50)))
    lists = RedisLists(redis, prefix, budget=size * 4 + 10)
    for user in range(1, 6):
        await lists.save(user, packed(f"k{user}", rows=50))
    assert await lists.load(1, "k1") is None  # the least recently stored went
    assert [await lists.load(u, f"k{u}") is not None for u in range(2, 6)] == [True] * 4
    # A list bigger than a quarter of the budget is not shared (read again instead).
    await lists.save(9, packed("big", rows=400))
    assert await lists.load(9, "big") is None
    assert await lists.load(5, "k5") is not None


async def test_an_otp_code_waits_encrypted_for_its_dialog(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    vault = TokenVault([Fernet.generate_key().decode()])
    keeper = RedisCodeKeeper(redis, prefix, vault, keep=60)
    await keeper.put(ALI, 11, "482193")
    raw = await redis.get(f"{prefix}:otp:{ALI}")
    assert raw is not None and b"482193" not in raw
    assert 0 < await redis.pttl(f"{prefix}:otp:{ALI}") <= 60_000
    other_replica = RedisCodeKeeper(redis, prefix, vault, keep=60)
    assert await other_replica.get(ALI, 11) == "482193"
    assert await other_replica.get(ALI, 12) is None  # another dialog of the same user
    assert await other_replica.get(VALI, 11) is None
    await other_replica.drop(ALI)
    assert await keeper.get(ALI, 11) is None
    # Keys changed meanwhile: the code is lost (asked again), nothing raises.
    await keeper.put(ALI, 11, "482193")
    changed = RedisCodeKeeper(redis, prefix, TokenVault([Fernet.generate_key().decode()]))
    assert await changed.get(ALI, 11) is None


async def test_with_replicas_no_row_cache_answers_for_another_process(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    one, other = await Database.open(path), await Database.open(path)
    try:
        for db in (one, other):
            db.stop_caching()
        users, credentials = UserRepo(one), CredentialRepo(one)
        await users.upsert_seen(ALI, "Ali", "ali")
        await credentials.save(ALI, b"old")
        assert (await credentials.get(ALI)) is not None
        await CredentialRepo(other).save(ALI, b"new")
        await UserRepo(other).set_language(ALI, "ru")
        found = await credentials.get(ALI)
        assert found is not None and found.token_encrypted == b"new"
        assert (await users.upsert_seen(ALI, "Ali", "ali")).language == "ru"
    finally:
        await one.close()
        await other.close()


def settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "bot_token": BOT_TOKEN,
        "encryption_key": Fernet.generate_key().decode(),
    }
    return Settings(_env_file=None, **(base | values))  # type: ignore[call-arg]


def test_redis_url_and_replica_id_settings() -> None:
    plain = settings()
    assert plain.redis_url is None and plain.replica_id  # the host name
    assert settings(redis_url="  ").redis_url is None
    shared = settings(redis_url="redis://:pw@10.0.0.5:6379/2", replica_id="web-2")
    assert shared.redis_url is not None and "pw" not in repr(shared)
    assert shared.replica_id == "web-2"
    assert settings(replica_id=" ").replica_id == plain.replica_id
    with pytest.raises(ValidationError, match="REDIS_URL must start with redis://") as error:
        settings(redis_url="http://:secret@host")
    # What `python -m bot` prints of it (bot/__main__.load_settings): the message alone.
    assert "secret" not in error.value.errors()[0]["msg"]


def test_every_log_line_names_the_replica() -> None:
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, "started", None, None)
    ReplicaFilter("web-2").filter(record)
    line = logging.Formatter("[%(replica)s] %(message)s").format(record)
    assert line == "[web-2] started"


async def test_dialogs_in_redis_keep_the_rules_of_the_database_storage(
    shared: tuple[Redis, str],
) -> None:
    redis, prefix = shared
    storage = fsm_storage(redis, prefix)
    key = StorageKey(bot_id=7, chat_id=ALI, user_id=ALI)
    # Only what comes back unchanged is stored (no tuples, no int keys): refused at once.
    with pytest.raises(TypeError, match="JSON round trip"):
        await storage.set_data(key, {"rows": (1, 2)})
    await storage.set_state(key, "SendForm:text")
    # Concurrent updates of one dialog (two replicas) lose nobody's keys.
    await asyncio.gather(*(storage.update_data(key, {f"k{i}": i}) for i in range(20)))
    assert await storage.get_data(key) == {f"k{i}": i for i in range(20)}
    keys = sorted([k.decode() async for k in redis.scan_iter(match=f"{prefix}:fsm:*")])
    assert keys == [
        f"{prefix}:fsm:7:{ALI}:{ALI}:default:data",
        f"{prefix}:fsm:7:{ALI}:{ALI}:default:state",
    ]
    assert 0 < await redis.ttl(keys[0]) <= DIALOG_TTL
    # Another bot on the same Redis has dialogs of its own.
    assert await storage.get_state(StorageKey(bot_id=8, chat_id=ALI, user_id=ALI)) is None
    await storage.set_state(key, None)
    await storage.set_data(key, {})
    assert [k async for k in redis.scan_iter(match=f"{prefix}:fsm:*")] == []


async def test_the_chart_of_the_last_tap_wins_whichever_replica_drew_it(
    shared: tuple[Redis, str],
) -> None:
    redis, prefix = shared
    a = ChartDesk(workers=1, latest=RedisTaps(redis, prefix))
    b = ChartDesk(workers=1, latest=RedisTaps(redis, prefix))
    shown: list[str] = []

    async def show(desk: ChartDesk, tap: int, days: str) -> None:
        if await desk.still_newest(ALI, tap):
            shown.append(days)

    thirty = await a.tap(ALI)  # "30 days" reaches a ...
    ninety = await b.tap(ALI)  # ... "90 days" b, right after
    await show(b, ninety, "90")  # b is done first
    await show(a, thirty, "30")  # a's older chart must not replace it
    assert shown == ["90"]
    assert await a.still_newest(VALI, await b.tap(VALI))  # other users have their own count
    # One process: no numbering, the desk itself keeps the newest request.
    alone = ChartDesk(workers=1)
    assert await alone.still_newest(ALI, await alone.tap(ALI))


async def test_one_export_per_user_across_replicas(shared: tuple[Redis, str]) -> None:
    redis, prefix = shared
    a = ExportDesk(2, shared=RedisRuns(redis, prefix))
    b = ExportDesk(2, shared=RedisRuns(redis, prefix))
    done = asyncio.Event()

    async def export() -> None:
        await done.wait()

    assert await a.take_slot(ALI) is Taken.YES
    a.start(ALI, export)
    # Ali taps Export again and the balancer sends it to b: his own export is running.
    assert await b.take_slot(ALI) is Taken.OWN
    assert await b.take_slot(VALI) is Taken.YES  # others are not held back
    b.release(VALI)
    await RedisRuns(redis, prefix).release(VALI, "not the ticket")  # only its owner lets go
    assert await a.take_slot(VALI) is Taken.OWN
    done.set()
    await a.idle()
    assert await b.take_slot(ALI) is Taken.YES  # ended on a: free everywhere
    ttl = await redis.pttl(f"{prefix}:export:{ALI}")
    assert 0 < ttl <= 180_000  # a replica that dies frees it within three minutes
    await a.close()
    await b.close()


async def test_erasing_a_user_deletes_their_dialogs_in_redis_in_every_chat(
    shared: tuple[Redis, str],
) -> None:
    redis, prefix = shared
    storage = fsm_storage(redis, prefix)
    mine = [
        StorageKey(bot_id=7, chat_id=ALI, user_id=ALI),
        StorageKey(bot_id=7, chat_id=-100, user_id=ALI),
        StorageKey(bot_id=7, chat_id=-100, user_id=ALI, thread_id=VALI),
    ]
    others = [
        StorageKey(bot_id=7, chat_id=VALI, user_id=VALI),
        StorageKey(bot_id=7, chat_id=-100, user_id=VALI, thread_id=ALI),  # a thread id = Ali's
        StorageKey(bot_id=8, chat_id=ALI, user_id=ALI),  # another bot's
    ]
    for key in mine + others:
        await storage.set_state(key, "SendForm:text")
        await storage.set_data(key, {"draft": 1})
    assert isinstance(storage, ForgetsUsers)
    assert await storage.forget_user(7, ALI) == 6
    assert [await storage.get_state(key) for key in mine] == [None] * 3
    assert [await storage.get_data(key) for key in others] == [{"draft": 1}] * 3
