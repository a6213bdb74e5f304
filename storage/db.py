"""The database every repository shares: one interface (`Database`), two engines.

SQLite (the default, DATABASE_PATH) is `SqliteDatabase` here: one aiosqlite connection with
serialised transactions. PostgreSQL (DATABASE_URL=postgresql://...) is storage/pg.py's
`PostgresDatabase` over an asyncpg pool. `Database.open(...)` picks one by its argument.
The SQL the repositories write runs on both: the portable subset is in storage/migrations.py.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import aiosqlite

from storage.cache import RowCache
from storage.migrations import migrate

logger = logging.getLogger(__name__)

MEMORY: Final = ":memory:"
# The database holds phone numbers, texts and the encrypted tokens: for the bot's user only.
_FILE_MODE: Final = 0o600
_FOLDER_MODE: Final = 0o700

# WAL lets readers (e.g. a backup) work while the bot writes; busy_timeout covers the short
# moments a second process (a maintenance script) holds the write lock. FULL syncs the WAL on
# every commit: under NORMAL a power cut can lose the last commits, and the outbox row written
# before a send is exactly the commit that must survive (one fsync per send is nothing here).
_PRAGMAS: Final = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA synchronous = FULL",
)
# SQLite's INTEGER is a signed 64-bit number; a larger Python int raises OverflowError.
SQLITE_INT_MAX: Final = 2**63 - 1

T = TypeVar("T")
Params = Iterable[Any]
Statement = tuple[str, Sequence[Any]]  # SQL and its parameters


class Row(Protocol):
    """A result row of either engine (sqlite3.Row, asyncpg.Record): row["col"], row[0],
    row.keys(), dict(row)."""

    def keys(self) -> Iterable[str]: ...
    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


# A unique, foreign-key, NOT NULL or check constraint said no, on either engine (storage/pg.py
# raises a subclass). Inside a transaction catch it around a nested `transaction()` (a
# savepoint): PostgreSQL refuses every further statement of a transaction in which one failed.
IntegrityError: Final = sqlite3.IntegrityError


def utc_now() -> str:
    """The current time as stored in every `*_at` column: ISO-8601 UTC, whole seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_private_file(path: Path) -> None:
    """Creates `path` empty and 0600 (its folder 0700) unless it exists.

    SQLite gives the -wal and -shm files it creates later the mode of the database file, so
    creating that one private first keeps all three private, whatever the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=_FOLDER_MODE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            # Made by an earlier version under the umask; its -wal/-shm follow its mode.
            logger.warning("%s is readable by other users; run: chmod 600 %s*", path, path)
        return
    try:
        os.fchmod(fd, _FILE_MODE)  # the umask may have taken more than group and others
    finally:
        os.close(fd)


def sqlite_int(value: int | None) -> int | None:
    """`value` when SQLite can store it, else None: an id a remote service hands out (the
    gateway's sms_id) must not make a write fail after the fact it records has happened."""
    if value is None or -SQLITE_INT_MAX - 1 <= value <= SQLITE_INT_MAX:
        return value
    return None


_BACKGROUND: ContextVar[bool] = ContextVar("storage_background", default=False)


def yield_to_users() -> None:
    """Marks the calling task's database work (and that of the tasks it starts) as background
    work: while the connection is busy, a user's update waiting for it goes first."""
    _BACKGROUND.set(True)


class _UsersFirst:
    """The connection's lock: waiting tasks take turns in order, except that the turns of
    users' updates come before those of background work (a balance round queues up to
    BALANCE_CHECK_CONCURRENCY writes, and an update's first read would wait behind them)."""

    def __init__(self) -> None:
        self._held = False
        self._users: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if not self._held:
            self._held = True
            return
        queue = self._background if _BACKGROUND.get() else self._users
        turn = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the lock had been handed over: hand it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(turn)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        for queue in (self._users, self._background):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # handed over: the lock stays held
                    return
        self._held = False


class _Batch:
    """One piece of batched work and the future its caller awaits; `statements` when the
    work is just those (SqliteDatabase.write_together), which a group runs in one hop."""

    __slots__ = ("future", "started", "statements", "work")

    def __init__(
        self,
        work: Callable[[], Awaitable[Any]],
        future: asyncio.Future[Any],
        statements: Sequence[Statement] | None = None,
    ) -> None:
        self.work = work
        self.future = future
        self.statements = statements
        self.started = False

    async def run(self) -> Any:
        self.started = True
        return await self.work()


# Works in one transaction at most: a group holds the connection for all of them, and a user's
# statement waits for the group (2.8 ms at 10 works, 21.6 ms at 100, measured).
GROUP_MOST: Final = 32


class _CommitGroups:
    """Group commit for `SqliteDatabase.batched`: work that arrives while a group is being
    written waits for the next group, and each group is one transaction, so N tasks' writes
    cost one sync to disk instead of N. Each caller is answered after its group's COMMIT,
    never before: a write awaited is durable, as with a lone statement.

    When any work of a group raises, the group is rolled back and each of its works runs
    again alone, so one failure is its own caller's only. A caller cancelled before its work
    started writes nothing; a work that calls `batched` itself runs inside its own group."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._waiting: list[_Batch] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(
        self, work: Callable[[], Awaitable[T]], statements: Sequence[Statement] | None = None
    ) -> T:
        if asyncio.current_task() is self._writer:
            # Nested: queued, it would wait for the writer that waits for it.
            return await work()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        batch = _Batch(work, future, statements)
        self._waiting.append(batch)
        if self._writer is None or self._writer.done():
            # The writer inherits this task's context: background work stays background.
            self._writer = asyncio.create_task(self._write(), name="sqlite-commit-group")
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if not batch.started:
                future.cancel()  # skipped by the writer: nothing of it is written
            raise

    async def _write(self) -> None:
        while self._waiting:
            group = self._waiting[:GROUP_MOST]
            del self._waiting[:GROUP_MOST]
            try:
                await self._write_group(group)
            except BaseException as exc:  # cancelled at shutdown: nobody waits forever
                for batch in (*group, *self._waiting):
                    if not batch.future.done():
                        batch.future.set_exception(exc)
                    elif not batch.future.cancelled():
                        batch.future.exception()  # retrieved: no "never retrieved" noise
                self._waiting.clear()
                raise

    async def _write_group(self, group: list[_Batch]) -> None:
        live = [batch for batch in group if not batch.future.cancelled()]
        if len(live) > 1 and all(batch.statements is not None for batch in live):
            # Statements only (a balance round's records): the whole group, BEGIN to
            # COMMIT, in one hop to the connection's thread. On a busy loop every hop waits
            # a turn of the loop, and a hop per statement made the group commit the round's
            # bottleneck.
            for batch in live:
                batch.started = True
            try:
                rows = await self._db.run_works([batch.statements or () for batch in live])
            except Exception:
                logger.debug("a commit group failed; its %s works run alone", len(live))
            else:
                for batch, result in zip(live, rows, strict=True):
                    if not batch.future.done():
                        batch.future.set_result(result)
                return
        elif len(group) > 1:
            results: list[tuple[_Batch, Any]] = []
            try:
                async with self._db.transaction():
                    for batch in group:
                        if not batch.future.cancelled():
                            results.append((batch, await batch.run()))
            except Exception:
                logger.debug("a commit group failed; its %s works run alone", len(group))
            else:
                for batch, result in results:
                    if not batch.future.done():
                        batch.future.set_result(result)
                return
        for batch in group:
            if batch.future.cancelled():
                continue
            try:
                result = await batch.run()
            except Exception as exc:
                if not batch.future.done():
                    batch.future.set_exception(exc)
            else:
                if not batch.future.done():
                    batch.future.set_result(result)


class Database(abc.ABC):
    """What the repositories use of a database; `open` connects to one of the two engines."""

    def __init__(self) -> None:
        self._caches: dict[str, RowCache[Any, Any]] = {}
        self._caching = True

    async def batched(self, work: Callable[[], Awaitable[T]]) -> T:
        """Runs `work` (a few statements, nothing but this database) and returns once its
        writes are committed. Where a commit is dear (SQLite syncs each one to disk) the
        work of every task waiting at the same moment shares one commit; `work` opens its
        own transaction() where its statements must hold together. Here: `work` alone."""
        return await work()

    @staticmethod
    async def open(target: str | Path) -> Database:
        """A `postgresql://` (or `postgres://`) URL opens PostgreSQL; anything else is the
        path of an SQLite file (or ":memory:"). Either way the schema is brought up to date."""
        text = str(target)
        if text.startswith(("postgresql://", "postgres://")):
            from storage.pg import PostgresDatabase  # asyncpg only where it is used

            return await PostgresDatabase.open_url(text)
        return await SqliteDatabase.open_file(target)

    def cache(self, name: str, size: int) -> RowCache[Any, Any]:
        """The process's one cache called `name` (see storage/cache.py): every repository
        object over this database shares it, so a write through one is seen by all."""
        if (found := self._caches.get(name)) is None:
            found = self._caches[name] = RowCache(size)
            if not self._caching:
                found.stop_keeping()
        return found

    def stop_caching(self) -> None:
        """Other processes write this database too (replicas): no cache keeps a row."""
        self._caching = False
        for cache in self._caches.values():
            cache.stop_keeping()

    # What the engine's driver raises when the database cannot do what was asked.
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    @property
    @abc.abstractmethod
    def in_transaction(self) -> bool:
        """Whether the current task is inside its own transaction (caches are not filled
        from it: it may still roll back)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs one statement; returns the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Runs one statement once per parameter row."""

    @abc.abstractmethod
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    @abc.abstractmethod
    async def read_one(self, sql: str, params: Params = ()) -> Row | None:
        """A SELECT that may run beside other tasks' writes (see SqliteDatabase.read_all)."""

    @abc.abstractmethod
    async def read_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A transaction for the block: COMMIT at its end, ROLLBACK when it raises; a block
        inside another one of the same task is a SAVEPOINT."""

    async def run_together(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """Runs `statements` in order, all or none (a transaction, or a SAVEPOINT inside the
        current task's one), and returns the rows of each. For writes that always go
        together: SQLite runs them in one hop to its thread instead of one hop each."""
        if len(statements) == 1 and not self.in_transaction:
            # A lone statement is all or none by itself; inside a transaction it still takes
            # a SAVEPOINT, so that its failure leaves the surrounding one usable.
            return [await self.fetchall(*statements[0])]
        async with self.transaction():
            return [await self.fetchall(sql, params) for sql, params in statements]

    async def write_together(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """`run_together`, committed with the batched writes of other tasks waiting at the
        same moment (see `batched`); returns once committed."""
        return await self.batched(lambda: self.run_together(statements))


class SqliteDatabase(Database):
    """Wraps ONE aiosqlite connection for every write, plus a read-only one for reads that
    must not queue behind other tasks' writes.

    The connection runs in autocommit mode: a lone statement commits at once, and
    `transaction()` opens an explicit BEGIN IMMEDIATE. All tasks share the connection, so
    statements and transactions are serialised by one lock; otherwise a statement of task B
    would silently become part of (and be rolled back with) task A's open transaction.

    Every call is one hop to aiosqlite's thread and back (the statement and its rows in one
    go): on a busy bot the hops, not SQLite, were the cost.
    """

    def __init__(
        self, conn: aiosqlite.Connection, reader: aiosqlite.Connection | None = None
    ) -> None:
        super().__init__()
        self._conn = conn
        self._reader = reader
        self._lock = _UsersFirst()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0
        self._groups = _CommitGroups(self)

    async def batched(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work` in a transaction shared with the batched work of other tasks waiting at
        the same moment (see _CommitGroups): one sync to disk for them all. Inside the
        current task's own transaction it simply runs there."""
        if self._holds_lock():
            return await work()
        return await self._groups.run(work)

    @classmethod
    async def open_file(cls, path: str | Path) -> SqliteDatabase:
        """Connects, sets the pragmas and brings the schema up to date."""
        in_memory = str(path) == MEMORY
        if not in_memory:
            create_private_file(Path(path))
            # The migrations run on a connection of their own, closed before the bot's opens:
            # SQLite's cache of every page they touched goes with it (0.7 MB of the idle
            # process after creating a new database, which nothing reads again).
            migrating, _ = await _connect(path)
            try:
                await migrate(migrating)
            finally:
                await migrating.close()
        conn, mode = await _connect(path)
        wal = mode.lower() == "wal"
        try:
            if not in_memory and not wal:
                logger.warning("SQLite refused WAL mode (got %s); continuing without it", mode)
            # Up to date already, unless the database lives in this connection only.
            version = await migrate(conn)
            reader = await _open_reader(path) if wal and not in_memory else None
        except BaseException:
            await conn.close()
            raise
        logger.info("database %s ready at schema version %s", path, version)
        return cls(conn, reader)

    @property
    def conn(self) -> aiosqlite.Connection:
        return self._conn

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        async with self._lock:
            await self._conn.close()

    @property
    def in_transaction(self) -> bool:
        return self._holds_lock()

    def _holds_lock(self) -> bool:
        return self._owner is not None and self._owner is asyncio.current_task()

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Runs a lone statement outside other tasks' transactions (inside our own one)."""
        if self._holds_lock():
            yield
            return
        async with self._lock:
            yield

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs one statement; returns the number of rows it changed."""
        async with self._exclusive():
            # Not closed: a write has finished (and reset its statement) when execute
            # returns, and closing would be a second hop to the thread for nothing.
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._exclusive():
            await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        # All rows are fetched, which also ends an INSERT ... RETURNING statement (and the
        # implicit transaction it holds open until it ends).
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._exclusive():
            rows: list[Row] = list(await self._conn.execute_fetchall(sql, params))
            return rows

    async def write_together(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """Group-committed like `batched`, and a group of such writes only is one hop to
        the connection's thread, BEGIN to COMMIT."""
        if self._holds_lock():
            return await self.run_together(statements)
        return await self._groups.run(lambda: self.run_together(statements), statements)

    async def run_together(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """One hop to the connection's thread for all of `statements` with their BEGIN and
        COMMIT (or SAVEPOINT and RELEASE): a hop costs the loop about 30 µs of CPU and the
        writer a thread switch each way, more than SQLite's own work on a small write."""
        [rows] = await self.run_works([statements])
        return rows

    async def run_works(self, works: Sequence[Sequence[Statement]]) -> list[list[list[Row]]]:
        """Each work's statements in turn, all in one transaction (or SAVEPOINT) and one
        hop; the rows of each statement of each work."""
        inside = self._holds_lock()
        async with self._exclusive():
            if inside:
                name = f"sp{self._depth}"  # the next free name: nothing nests inside the hop
                begin, end = f"SAVEPOINT {name}", f"RELEASE {name}"
                undo: tuple[str, ...] = (f"ROLLBACK TO {name}", f"RELEASE {name}")
            else:
                begin, end, undo = "BEGIN IMMEDIATE", "COMMIT", ("ROLLBACK",)
            # aiosqlite has no public call for a function on its thread; `_execute` is the
            # one its own methods use (aiosqlite 0.17 to 0.22 at least).
            rows: list[list[list[Row]]] = await self._conn._execute(  # type: ignore[no-untyped-call]
                _run_works, self._conn._conn, begin, end, undo, works
            )
            return rows

    async def read_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.read_all(sql, params)
        return rows[0] if rows else None

    async def read_all(self, sql: str, params: Params = ()) -> list[Row]:
        """A SELECT on the read-only connection: it sees what is committed and never waits
        for other tasks' transactions (WAL readers run beside the writer), so an interactive
        read does not queue behind a background round's writes. Inside the current task's
        own transaction, and without WAL (an in-memory database), it is `fetchall`."""
        if self._reader is None or self._holds_lock():
            return await self.fetchall(sql, params)
        rows: list[Row] = list(await self._reader.execute_fetchall(sql, params))
        return rows

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises.

        A transaction opened inside another one by the same task becomes a SAVEPOINT, so
        repository methods that use transactions can be combined. A task started from inside
        a transaction must not use the database until the transaction ends (it would wait
        for the lock the transaction holds).
        """
        if self._holds_lock():
            async with self._savepoint():
                yield
            return
        async with self._lock:
            self._owner = asyncio.current_task()
            self._depth = 1
            try:
                try:
                    # IMMEDIATE takes the write lock now: a deferred transaction that reads
                    # first and writes later can fail with SQLITE_BUSY halfway through.
                    # Inside the try: a task cancelled while aiosqlite's thread waits for
                    # another connection's lock leaves the BEGIN to run there later; the
                    # ROLLBACK queues behind it (aiosqlite's queue is FIFO) and undoes it.
                    await self._conn.execute("BEGIN IMMEDIATE")
                    yield
                    await self._conn.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    raise
            finally:
                self._owner = None
                self._depth = 0

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        name = f"sp{self._depth}"
        self._depth += 1
        try:
            await self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                await self._conn.execute(f"ROLLBACK TO {name}")
                await self._conn.execute(f"RELEASE {name}")
                raise
            await self._conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.OperationalError:
            # The BEGIN failed (busy), the COMMIT went through after all (e.g. the task was
            # cancelled while it ran), or SQLite already rolled back on its own: nothing
            # is left open.
            logger.debug("ROLLBACK found no open transaction")


def _run_works(
    conn: sqlite3.Connection,
    begin: str,
    end: str,
    undo: tuple[str, ...],
    works: Sequence[Sequence[Statement]],
) -> list[list[list[Row]]]:
    """SqliteDatabase.run_works on aiosqlite's thread."""
    conn.execute(begin)
    try:
        rows: list[list[list[Row]]] = [
            [conn.execute(sql, params).fetchall() for sql, params in work] for work in works
        ]
        conn.execute(end)
    except BaseException:
        for statement in undo:
            with contextlib.suppress(sqlite3.OperationalError):  # already rolled back
                conn.execute(statement)
        raise
    return rows


async def _connect(path: str | Path) -> tuple[aiosqlite.Connection, str]:
    """A connection with the pragmas set, and the journal mode SQLite took ("wal")."""
    # isolation_level=None: sqlite3 must not open transactions behind our back.
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        rows = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
        mode = str(next(iter(rows))[0]) if rows else ""
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
    except BaseException:
        await conn.close()
        raise
    return conn, mode


async def _open_reader(path: str | Path) -> aiosqlite.Connection:
    reader = await aiosqlite.connect(path, isolation_level=None)
    try:
        reader.row_factory = sqlite3.Row
        await reader.execute("PRAGMA query_only = ON")
        await reader.execute("PRAGMA busy_timeout = 5000")
    except BaseException:
        await reader.close()
        raise
    return reader
