"""The stop list: its repository, typed input, its migration, and the sends that skip it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from services.bulk import REFUSALS_TO_PAUSE
from services.bulk_plan import STOPPED, make_plan, parse_source
from services.phones import PhoneError
from services.sending import Outcome, SmsSender
from services.stoplist import NOTE_MAX, parse_typed
from storage import Database, OutboxRepo, StopListFull, StopListRepo, UserRepo
from storage.bulk import STOP_LIST
from storage.migrations import MIGRATIONS, migrate
from storage.stoplist import LOOKUP_CHUNK
from tests.support.bulk_env import USER, Env, wait

ALI = "998901234567"
VALI = "998901234568"


async def repo_of(db: Database, *users: int) -> StopListRepo:
    for user_id in users:
        await UserRepo(db).upsert_seen(user_id, "U", None)
    return StopListRepo(db)


# --- the repository ----------------------------------------------------------------------------


async def test_numbers_are_unique_per_user_with_notes_and_dates(db: Database) -> None:
    stoplist = await repo_of(db, 1, 2)
    added = await stoplist.add(1, [(ALI, "asked"), (VALI, None)], limit=10)
    assert (added.added, added.already, added.total) == (2, 0, 2)
    again = await stoplist.add(1, [(ALI, None), (VALI, "angry")], limit=10)
    assert (again.added, again.already, again.total) == (0, 2, 2)
    entries = {e.phone: e for e in await stoplist.all(1)}
    # A note given again replaces the old one; none given keeps it.
    assert (entries[ALI].note, entries[VALI].note) == ("asked", "angry")
    assert entries[ALI].added_at.startswith("20")
    assert await stoplist.all(2) == []  # another user's list is their own
    assert await stoplist.entry(2, ALI) is None
    assert await stoplist.stopped_among(2, [ALI, VALI]) == set()


async def test_the_limit_is_all_or_nothing(db: Database) -> None:
    stoplist = await repo_of(db, 1)
    await stoplist.add(1, [(f"99890123450{i}", None) for i in range(3)], limit=4)
    with pytest.raises(StopListFull) as caught:
        await stoplist.add(1, [(ALI, None), (VALI, None)], limit=4)
    assert (caught.value.limit, caught.value.have, caught.value.new) == (4, 3, 2)
    assert await stoplist.count(1) == 3
    # Numbers already on the list do not count against it.
    result = await stoplist.add(1, [("998901234500", None), (ALI, None)], limit=4)
    assert (result.added, result.total) == (1, 4)


async def test_stopped_among_a_long_list_reads_in_chunks(db: Database) -> None:
    stoplist = await repo_of(db, 1)
    phones = [f"99890{i:07d}" for i in range(LOOKUP_CHUNK * 2 + 7)]
    wanted = {phones[3], phones[LOOKUP_CHUNK + 1], phones[-1]}
    await stoplist.add(1, [(phone, None) for phone in wanted], limit=10)
    assert await stoplist.stopped_among(1, iter(phones)) == wanted
    assert await stoplist.stopped_among(1, []) == set()


async def test_pages_removal_and_the_owner_check(db: Database) -> None:
    stoplist = await repo_of(db, 1, 2)
    await stoplist.add(1, [(f"99890123450{i}", None) for i in range(5)], limit=10)
    first = await stoplist.page(1, 2)
    assert [e.phone for e in first] == ["998901234504", "998901234503"]  # newest first
    assert [e.phone for e in await stoplist.page(1, 2, 4)] == ["998901234500"]
    assert await stoplist.remove_entry(2, first[0].id) is None  # not user 2's
    removed = await stoplist.remove_entry(1, first[0].id)
    assert removed is not None and removed.phone == "998901234504"
    assert await stoplist.remove_entry(1, first[0].id) is None
    assert await stoplist.remove(1, ["998901234503", ALI]) == {"998901234503"}
    assert await stoplist.count(1) == 3


async def test_logout_deletes_the_list(db: Database) -> None:
    stoplist = await repo_of(db, 1)
    await stoplist.add(1, [(ALI, None)], limit=10)
    await UserRepo(db).delete_everything(1)
    assert await stoplist.count(1) == 0


# --- typed input -------------------------------------------------------------------------------


def test_typed_numbers_notes_and_mistakes() -> None:
    typed = parse_typed(
        "+998 90 123 45 67 asked to stop, by phone\n"
        "901234568; 91 234 56 78 905123456 100 so'm\n"
        "8 (90) 123-45-69"
    )
    assert typed.numbers == {
        ALI: "asked to stop, by phone",
        VALI: None,
        "998912345678": None,
        "998905123456": "100 so'm",
        "998901234569": None,
    }
    assert typed.invalid == []
    assert typed.shown[ALI] == "+998 90 123 45 67"
    bad = parse_typed("hello\n901234567 12345")
    assert bad.invalid == [("hello", PhoneError.NOT_A_NUMBER), ("12345", PhoneError.TOO_SHORT)]
    assert len(parse_typed(f"901234567 {'x' * 1000}").numbers[ALI] or "") == NOTE_MAX


def test_typed_input_is_linear() -> None:
    # A whole Telegram message of numbers on one line: each word starts at most one number.
    typed = parse_typed(" ".join(f"90{i:07d}" for i in range(400)))
    assert len(typed.numbers) == 400
    assert parse_typed("x " * 2000).invalid[0][1] is PhoneError.NOT_A_NUMBER


# --- the plan ----------------------------------------------------------------------------------


async def test_the_plan_leaves_stopped_numbers_out(db: Database) -> None:
    stoplist = await repo_of(db, 1)
    await stoplist.add(1, [(VALI, None)], limit=10)
    source = parse_source(b"phone\n901234567\n901234568\n", "list.csv", "k", 100)
    plan = await make_plan(source, "Hi", 10, stoplist=stoplist, user_id=1)
    assert [row[1] for row in plan.rows] == [ALI]
    assert plan.stopped == [(3, VALI)]
    assert [(s.row_no, s.reason) for s in plan.skipped] == [(3, STOPPED)]
    assert plan.parts_total == 1


# --- sending -----------------------------------------------------------------------------------


async def test_a_single_send_to_a_stopped_number_makes_no_request_and_no_record(env: Env) -> None:
    await StopListRepo(env.db).add(USER, [(ALI, "no")], limit=10)
    outbox = OutboxRepo(env.db)
    outcome = await SmsSender(env.accounts, outbox).send(USER, ALI, "Hi", None)
    assert outcome.outcome is Outcome.STOPPED
    assert outcome.stopped is not None and outcome.stopped.note == "no"
    assert env.fake.sent == []
    assert await outbox.recent(USER, 10) == []
    sent = await SmsSender(env.accounts, outbox).send(USER, VALI, "Hi", None)
    assert sent.outcome is Outcome.SENT


async def test_rows_stopped_after_the_dry_run_are_never_sent_nor_failed(env: Env) -> None:
    n = REFUSALS_TO_PAUSE + 4
    job_id = await env.job(n)
    rows = await env.bulk.all_rows(job_id)
    # More stopped rows in a row than the refusals that pause a job: they are no refusals.
    stopped = [row.phone for row in rows[: REFUSALS_TO_PAUSE + 1]]
    await StopListRepo(env.db).add(USER, [(phone, None) for phone in stopped], limit=100)
    assert await env.runner(concurrency=1).begin(job_id)
    job, counts = await wait(env.finished)
    assert job.state == "done"
    assert (counts.sent, counts.failed, counts.stopped) == (n - len(stopped), 0, len(stopped))
    assert not set(stopped) & {sms.phone for sms in env.fake.sent}
    states = {row.phone: (row.state, row.error) for row in await env.bulk.all_rows(job_id)}
    assert all(states[phone] == ("stopped", STOP_LIST) for phone in stopped)


async def test_rows_stopped_at_creation_are_in_the_job_and_never_sent(env: Env) -> None:
    job_id = await env.bulk.create_job(
        USER,
        template="Hi",
        sender=None,
        file_name=None,
        file_format="text",
        rows=[(2, ALI, "Hi", 1)],
        stopped=[(3, VALI)],
    )
    job = await env.bulk.get_job(job_id)
    assert job is not None and (job.total, job.parts_total) == (2, 1)
    assert await env.runner().begin(job_id)
    _, counts = await wait(env.finished)
    assert (counts.sent, counts.stopped, counts.done, counts.left) == (1, 1, 2, 0)
    assert [sms.phone for sms in env.fake.sent] == [ALI]


# --- the migration -----------------------------------------------------------------------------


async def schema_of(conn: aiosqlite.Connection, table: str) -> tuple[set[str], set[str]]:
    """The table's column names and index names."""
    async with conn.execute(f"PRAGMA table_info({table})") as cursor:
        columns = {row[1] for row in await cursor.fetchall()}
    async with conn.execute(f"PRAGMA index_list({table})") as cursor:
        indexes = {row[1] for row in await cursor.fetchall() if row[3] == "c"}
    return columns, indexes


async def test_the_migration_keeps_bulk_rows_and_allows_the_stopped_state(tmp_path: Path) -> None:
    ours = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE stoplist" in script)
    conn = await aiosqlite.connect(tmp_path / "bot.sqlite3", isolation_level=None)
    try:
        await conn.execute("PRAGMA foreign_keys = ON")
        await migrate(conn, target=ours)
        # The rebuild keeps every column and index the migrations before it gave bulk_rows.
        before = await schema_of(conn, "bulk_rows")
        await conn.executescript(
            "INSERT INTO users (id, created_at, last_seen_at) VALUES (7, 'x', 'x');"
            "INSERT INTO bulk_jobs (id, user_id, state, template, created_at, updated_at) "
            "VALUES (1, 7, 'done', 't', 'x', 'x');"
            "INSERT INTO bulk_rows (job_id, row_no, phone, message, parts, state, sms_id) "
            "VALUES (1, 2, '998901234567', 'm', 1, 'sent', 42);"
        )
        with pytest.raises(sqlite3.IntegrityError):
            await conn.execute(
                "INSERT INTO bulk_rows (job_id, row_no, phone, message, parts, state) "
                "VALUES (1, 3, 'p', 'm', 1, 'stopped')"
            )
        await migrate(conn, target=ours + 1)
        columns, indexes = await schema_of(conn, "bulk_rows")
        assert columns >= before[0] and indexes >= before[1], (before, columns, indexes)
        assert await migrate(conn) == len(MIGRATIONS)
        async with conn.execute("SELECT row_no, state, sms_id FROM bulk_rows") as cursor:
            assert [tuple(row) for row in await cursor.fetchall()] == [(2, "sent", 42)]
        await conn.execute(
            "INSERT INTO bulk_rows (job_id, row_no, phone, message, parts, state) "
            "VALUES (1, 3, 'p', '', 0, 'stopped')"
        )
    finally:
        await conn.close()
