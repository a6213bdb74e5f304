"""PostgreSQL and Redis for the tests that need them (TEST_POSTGRES_DSN, TEST_REDIS_URL).

Where a server is not reachable the test is skipped with the reason; with
REQUIRE_TEST_SERVICES=1 (.ci/run sets it) it fails instead, so CI always runs them.
Each PostgreSQL test works in a schema of its own, dropped afterwards, and each Redis test
under a key prefix of its own (tests/support/redis_keys.py), deleted afterwards: the tests of
other sessions run against the same servers at the same time.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from storage.migrations import MIGRATIONS
from storage.pg_migrations import migrate_postgres

DEFAULT_POSTGRES_DSN: Final = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
_CONNECT_TIMEOUT: Final = 2.0


def _unavailable(what: str, address: str, exc: BaseException) -> None:
    reason = f"{what} at {address} is not reachable ({exc!r})"
    if os.environ.get("REQUIRE_TEST_SERVICES") == "1":
        pytest.fail(f"{reason}; REQUIRE_TEST_SERVICES=1 wants it", pytrace=False)
    pytest.skip(reason)


def _reachable(url: str, default_port: int) -> None:
    parts = urlsplit(url)
    with socket.create_connection(
        (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=_CONNECT_TIMEOUT
    ):
        pass


def postgres_dsn() -> str:
    """TEST_POSTGRES_DSN, or the skip (failure under REQUIRE_TEST_SERVICES=1) that says why
    it cannot be used."""
    dsn = os.environ.get("TEST_POSTGRES_DSN") or DEFAULT_POSTGRES_DSN
    try:
        _reachable(dsn, 5432)
    except OSError as exc:
        _unavailable("PostgreSQL", dsn, exc)
    return dsn


def redis_url() -> str:
    """TEST_REDIS_URL, or the skip (failure under REQUIRE_TEST_SERVICES=1) that says why."""
    url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
    try:
        _reachable(url, 6379)
    except OSError as exc:
        _unavailable("Redis", url, exc)
    return url


def with_search_path(dsn: str, schema: str) -> str:
    """`dsn` whose connections work in `schema` (asyncpg takes unknown query parameters as
    server settings)."""
    parts = urlsplit(dsn)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A DSN whose connections see only a new, empty schema; the schema is dropped after."""
    dsn = postgres_dsn()
    schema = f"t_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable("PostgreSQL", dsn, exc)
        raise  # not reached: skip/fail raise
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield with_search_path(dsn, schema)
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


# --- migrated schemas, reused -------------------------------------------------------------------

# Migrating a new schema costs PostgreSQL about a second of DDL (every migration, each in its
# own transaction); some two hundred tests want one. A schema a test is done with is emptied
# instead (its rows deleted, its identities restarted: what a new, migrated schema holds) and
# handed to the next test. One whose structure the test changed is dropped, never reused.
_FREE_SCHEMAS: list[str] = []
_ALL_SCHEMAS: set[str] = set()
# (tables children first, identity sequences, the structure's fingerprint) per schema.
_LAYOUT: dict[str, tuple[list[str], list[str], str]] = {}

_TABLES_SQL: Final = """
SELECT c.relname,
       ARRAY(SELECT DISTINCT r.relname FROM pg_constraint f JOIN pg_class r ON r.oid = f.confrelid
             WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid)
FROM pg_class c
WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p')
"""
_SEQUENCES_SQL: Final = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(s.relname)
FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE s.relnamespace = $1::regnamespace AND s.relkind = 'S'
ORDER BY s.relname
"""
# Tables, columns, types, defaults, constraints and indexes: what a migration could change.
_FINGERPRINT_SQL: Final = """
SELECT md5(string_agg(line, E'\n' ORDER BY line)) FROM (
  SELECT format('col %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) AS line
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
       AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  WHERE c.relnamespace = $1::regnamespace
  UNION ALL
  SELECT format('con %s %s', t.relname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
  WHERE k.connamespace = $1::regnamespace
  UNION ALL
  SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
  WHERE t.relnamespace = $1::regnamespace
) AS lines
"""


def _children_first(parents: dict[str, list[str]]) -> list[str]:
    """The tables ordered so that each comes before every table it references."""
    order: list[str] = []
    placed: set[str] = set()

    def place(table: str, path: frozenset[str]) -> None:
        if table in placed or table in path:
            return
        for child in (t for t, refs in parents.items() if table in refs):
            place(child, path | {table})
        placed.add(table)
        order.append(table)

    for table in sorted(parents):
        place(table, frozenset())
    return order


async def _layout(admin: asyncpg.Connection, schema: str) -> tuple[list[str], list[str], str]:
    rows = await admin.fetch(_TABLES_SQL, schema)
    parents = {str(name): [str(p) for p in refs] for name, refs in rows}
    sequences = [str(row[0]) for row in await admin.fetch(_SEQUENCES_SQL, schema)]
    fingerprint = str(await admin.fetchval(_FINGERPRINT_SQL, schema))
    return _children_first(parents), sequences, fingerprint


async def _empty(admin: asyncpg.Connection, schema: str) -> bool:
    """Empties a schema a test used, as new and migrated; False if it is not fit for reuse."""
    known = _LAYOUT.get(schema)
    if known is None:
        return False
    tables, sequences, _ = known
    current = await _layout(admin, schema)
    if current != known:
        return False
    version = await admin.fetchval(f"SELECT version FROM {schema}.schema_version")
    if version != len(MIGRATIONS):
        return False
    kept = {"schema_version"}
    statements = [f'DELETE FROM {schema}."{table}"' for table in tables if table not in kept]
    statements += [f"ALTER SEQUENCE {sequence} RESTART" for sequence in sequences]
    async with admin.transaction():
        await admin.execute(";\n".join(statements))
    return True


@asynccontextmanager
async def migrated_postgres_schema() -> AsyncIterator[str]:
    """Like ``postgres_schema``, but the schema is migrated to the latest version (as the
    first ``Database.open`` leaves it), and reused by a later test once emptied."""
    dsn = postgres_dsn()
    try:
        admin = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable("PostgreSQL", dsn, exc)
        raise  # not reached: skip/fail raise
    try:
        if _FREE_SCHEMAS:
            schema = _FREE_SCHEMAS.pop()
        else:
            schema = f"t_{secrets.token_hex(6)}"
            await admin.execute(f"CREATE SCHEMA {schema}")
            _ALL_SCHEMAS.add(schema)
            migrating = await asyncpg.connect(
                with_search_path(dsn, schema), timeout=_CONNECT_TIMEOUT
            )
            try:
                await migrate_postgres(migrating)
            finally:
                await migrating.close()
            _LAYOUT[schema] = await _layout(admin, schema)
        reusable = False
        try:
            yield with_search_path(dsn, schema)
            reusable = await _empty(admin, schema)
        finally:
            if reusable:
                _FREE_SCHEMAS.append(schema)
            else:
                _ALL_SCHEMAS.discard(schema)
                _LAYOUT.pop(schema, None)
                await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


async def drop_reused_schemas() -> None:
    """Drops the schemas ``migrated_postgres_schema`` kept for reuse (at the session's end)."""
    if not _ALL_SCHEMAS:
        return
    admin = await asyncpg.connect(postgres_dsn(), timeout=_CONNECT_TIMEOUT)
    try:
        for schema in sorted(_ALL_SCHEMAS):
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        _ALL_SCHEMAS.clear()
        _FREE_SCHEMAS.clear()
        _LAYOUT.clear()
        await admin.close()
