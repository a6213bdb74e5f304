"""One-way copy of an SQLite database into an empty PostgreSQL one (`python -m bot
migrate-to-postgres`).

Both are brought to the latest schema first, so their tables and columns are the same. The
rows go over in batches with PostgreSQL's COPY, parents before children (foreign keys), all
in ONE PostgreSQL transaction: a failure or a count that does not match leaves the target as
empty as it was. Values are copied as stored: the encrypted tokens stay encrypted, and the
same ENCRYPTION_KEY decrypts them. Identity sequences are moved past the copied ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from storage.db import SqliteDatabase
from storage.pg import PostgresDatabase
from storage.pg_migrations import reset_identities

logger = logging.getLogger(__name__)

BATCH: Final = 5_000
_BOOKKEEPING: Final = frozenset({"schema_version"})


class CopyError(RuntimeError):
    """The copy cannot start or did not come out whole; the message says which."""


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int


async def copy_to_postgres(
    sqlite_path: Path,
    url: str,
    *,
    batch: int = BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> list[Copied]:
    """Copies every table of the SQLite file at `sqlite_path` into the PostgreSQL database
    at `url`, which must hold no rows yet. Returns the rows per table (verified)."""
    if not await asyncio.to_thread(sqlite_path.is_file):
        raise CopyError(f"no SQLite database at {sqlite_path}")
    source = await SqliteDatabase.open_file(sqlite_path)
    try:
        target = await PostgresDatabase.open_url(url)
        try:
            return await _copy(source, target, batch, progress)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(
    source: SqliteDatabase,
    target: PostgresDatabase,
    batch: int,
    progress: Callable[[str, int], None] | None,
) -> list[Copied]:
    tables = await _tables_in_order(source)
    async with target.pool.acquire() as conn:
        for table in tables:
            if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):
                raise CopyError(
                    f"the PostgreSQL database is not empty (table {table} has rows); "
                    "migrate-to-postgres only fills an empty one"
                )
        copied: list[Copied] = []
        async with conn.transaction():
            for table in tables:
                kinds = await _column_kinds(conn, table)
                columns = [name for name in await _columns(source, table) if name in kinds]
                count = 0
                async for rows in _batches(source, table, columns, batch):
                    records = [
                        tuple(_convert(kinds[c], v) for c, v in zip(columns, row, strict=True))
                        for row in rows
                    ]
                    await conn.copy_records_to_table(table, records=records, columns=columns)
                    count += len(records)
                    if progress is not None:
                        progress(table, count)
                copied.append(Copied(table, count))
            await reset_identities(conn)
            for item in copied:
                there = await conn.fetchval(f'SELECT count(*) FROM "{item.table}"')
                here = await source.fetchone(f'SELECT count(*) FROM "{item.table}"')
                expected = int(here[0]) if here is not None else -1
                if there != expected or item.rows != expected:
                    raise CopyError(
                        f"row counts differ for table {item.table}: SQLite {expected}, "
                        f"copied {item.rows}, PostgreSQL {there}; nothing was kept"
                    )
    return copied


async def _tables_in_order(source: SqliteDatabase) -> list[str]:
    """The tables, every one after the tables its foreign keys name."""
    names = [
        str(row["name"])
        for row in await source.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        if row["name"] not in _BOOKKEEPING
    ]
    parents = {
        name: {
            str(row["table"])
            for row in await source.fetchall(f"PRAGMA foreign_key_list('{name}')")
            if row["table"] != name
        }
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:
            raise CopyError(f"foreign keys form a cycle among {sorted(set(names) - set(ordered))}")
        ordered.extend(ready)
    return ordered


async def _columns(source: SqliteDatabase, table: str) -> list[str]:
    return [str(row["name"]) for row in await source.fetchall(f"PRAGMA table_info('{table}')")]


async def _column_kinds(conn: Any, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1",
        table,
    )
    return {row["column_name"]: row["data_type"] for row in rows}


async def _batches(
    source: SqliteDatabase, table: str, columns: Sequence[str], batch: int
) -> AsyncIterator[list[Any]]:
    """The table's rows, `batch` at a time, from one SELECT (one consistent read: the copy
    runs with the bot stopped)."""
    names = ", ".join(f'"{name}"' for name in columns)
    async with source.conn.execute(f'SELECT {names} FROM "{table}"') as cursor:
        while rows := await cursor.fetchmany(batch):
            yield list(rows)


def _convert(kind: str, value: Any) -> Any:
    """SQLite keeps what it was given; PostgreSQL's COPY wants the column's own type."""
    if value is None:
        return None
    if kind == "bigint" and not isinstance(value, int):
        return int(value)
    if kind == "text" and not isinstance(value, str):
        return value.decode() if isinstance(value, bytes) else str(value)
    if kind == "bytea" and isinstance(value, str):
        return value.encode()
    if kind == "double precision" and not isinstance(value, float):
        return float(value)
    return value
