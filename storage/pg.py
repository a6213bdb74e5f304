"""PostgreSQL behind storage.db's `Database` interface (DATABASE_URL=postgresql://...).

The repositories write their SQL once, for both engines: `?` placeholders, the portable subset
documented in storage/migrations.py. This module turns a statement text into asyncpg's form
(`$1..$n`) once per text and keeps the result; everything else is PostgreSQL as it is.

- Statements outside a transaction take any connection of the pool (asyncpg keeps a prepared
  statement per text and connection).
- `transaction()` takes one connection of the pool for the block; the statements the same
  task runs inside it use that connection (a context variable names it), nested blocks are
  SAVEPOINTs. Within the process, transactions take their turn on an asyncio.Lock BEFORE
  taking a connection: waiting for the advisory lock on a connection each, ten of them would
  hold the whole pool, and lone statements (handlers' reads, the outbox row before a send,
  /readyz) would wait behind them. Transactions are serialised, across every process on the
  schema, by an advisory lock taken first: the repositories were written for SQLite's BEGIN
  IMMEDIATE (one write transaction at a time; a read, then a write that depends on it,
  inside one block), and keep exactly that guarantee. Lone statements run side by side;
  claims are conditional UPDATEs (`... WHERE state = 'pending' RETURNING`), which PostgreSQL
  re-checks on the row it waited for (READ COMMITTED), so two replicas never both claim one
  row.
- No row caches (storage/cache.py), even without REDIS_URL: they rest on SQLite's one
  connection, where a read and the writes are ordered; on a pool a read can cache a row that
  a concurrent transaction (e.g. /logout's erase) is about to delete, and answer with it
  after the erase.
- Rows are asyncpg Records: row["col"], row[0], row.keys() and dict(row) as with sqlite3.Row.
- numeric results (SUM and AVG of integers) are decoded the way SQLite gives them: an int
  when whole, else a float; the schema itself has no numeric columns.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Final

import asyncpg

from storage.db import Database, Params, Row
from storage.pg_migrations import migrate_postgres

logger = logging.getLogger(__name__)

# Connections per process: a replica's updates and background rounds share them. Each is a
# server process on the PostgreSQL side, so N replicas hold N times this many.
POOL_SIZE: Final = 10
# Distinct statement texts are a few hundred; asyncpg's default cache (100) would re-prepare.
_STATEMENT_CACHE: Final = 1024

# A literal, a quoted identifier or a comment: a `?` inside one is not a placeholder.
_OPAQUE: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?", re.S)


@lru_cache(maxsize=4096)
def to_postgres(sql: str) -> str:
    """`sql` with its `?` placeholders numbered `$1..$n` (cached per text)."""
    number = 0

    def placeholder(match: re.Match[str]) -> str:
        nonlocal number
        if match.group() != "?":
            return match.group()
        number += 1
        return f"${number}"

    return _OPAQUE.sub(placeholder, sql)


def rowcount(status: str) -> int:
    """The row count of a command status ("UPDATE 3", "INSERT 0 1"), -1 when it has none."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else -1


def _numeric(text: str) -> int | float:
    return float(text) if "." in text or "e" in text.lower() else int(text)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset of a connection it takes back (asyncpg rolls back an open
    transaction itself before). Its default, RESET ALL and the rest, is one more round trip
    per statement; nothing here changes session state (no SET, LISTEN, cursors or
    session-level advisory locks: the migrations' lock is on a connection of their own)."""


async def _setup(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "numeric", schema="pg_catalog", encoder=str, decoder=_numeric, format="text"
    )


class PostgresIntegrityError(sqlite3.IntegrityError):
    """asyncpg's IntegrityConstraintViolationError as storage.db.IntegrityError (SQLite's
    type, which the repositories catch), the original chained."""


@contextmanager
def _integrity() -> Iterator[None]:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise PostgresIntegrityError(str(exc)) from exc


class PostgresDatabase(Database):
    """An asyncpg pool with the methods of storage.db's `Database`."""

    errors = (asyncpg.PostgresError, asyncpg.InterfaceError)

    def __init__(self, pool: asyncpg.Pool, lock_key: int) -> None:
        super().__init__()
        self.stop_caching()  # see the module's docstring: the caches need one connection
        self._pool = pool
        self._lock_key = lock_key
        # This process's transactions, one at a time, before they take a pool connection.
        self._turn = asyncio.Lock()
        # The connection of the current task's transaction, and the task (a task started
        # inside the block inherits the variable but must not use that connection).
        self._held: ContextVar[tuple[asyncpg.Connection, asyncio.Task[Any] | None] | None] = (
            ContextVar(f"pg_transaction_{id(self)}", default=None)
        )

    @classmethod
    async def open_url(cls, url: str, *, pool_size: int = POOL_SIZE) -> PostgresDatabase:
        """Connects (query parameters of the URL other than libpq's, such as search_path,
        are server settings) and brings the schema up to date under an advisory lock."""
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=pool_size,
            init=_setup,
            reset=_keep_session,
            statement_cache_size=_STATEMENT_CACHE,
        )
        try:
            # A connection of its own: closing it releases the migrations' session lock
            # whatever happened.
            conn = await asyncpg.connect(url)
            try:
                version = await migrate_postgres(conn)
                lock_key = await conn.fetchval(
                    "SELECT hashtext('devsms-bot transactions ' || current_schema())"
                )
            finally:
                await conn.close()
        except BaseException:
            await pool.close()
            raise
        logger.info("PostgreSQL database ready at schema version %s", version)
        return cls(pool, lock_key)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    @property
    def in_transaction(self) -> bool:
        return self._connection() is not None

    def _connection(self) -> asyncpg.Connection | None:
        held = self._held.get()
        if held is None or held[1] is not asyncio.current_task():
            return None
        return held[0]

    async def execute(self, sql: str, params: Params = ()) -> int:
        target = self._connection() or self._pool
        with _integrity():
            return rowcount(await target.execute(to_postgres(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        target = self._connection() or self._pool
        with _integrity():
            await target.executemany(to_postgres(sql), rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        target = self._connection() or self._pool
        with _integrity():
            row: Row | None = await target.fetchrow(to_postgres(sql), *params)
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        target = self._connection() or self._pool
        with _integrity():
            rows: list[Row] = await target.fetch(to_postgres(sql), *params)
        return rows

    async def read_one(self, sql: str, params: Params = ()) -> Row | None:
        return await self.fetchone(sql, params)

    async def read_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self.fetchall(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN ... COMMIT on one pool connection, ROLLBACK when the block raises; a block
        inside another one of the same task is a SAVEPOINT (and does not wait for a turn)."""
        held = self._connection()
        if held is not None:
            async with held.transaction():
                yield
            return
        async with self._turn, self._pool.acquire() as conn:
            token = self._held.set((conn, asyncio.current_task()))
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
                    yield
            finally:
                self._held.reset(token)
