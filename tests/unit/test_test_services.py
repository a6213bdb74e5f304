"""tests/support/services.py: an unreachable server skips its tests with the reason, except under
REQUIRE_TEST_SERVICES=1 (CI), where it fails them; a migrated PostgreSQL schema a test is done
with is emptied for the next one."""

from __future__ import annotations

import asyncpg
import pytest
from _pytest.outcomes import Failed, Skipped

from storage.migrations import MIGRATIONS
from tests.support.services import (
    migrated_postgres_schema,
    postgres_dsn,
    redis_url,
    with_search_path,
)

CLOSED_PORT = "127.0.0.1:9"  # discard: nothing listens there on these machines


def test_unreachable_servers_are_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUIRE_TEST_SERVICES", raising=False)
    monkeypatch.setenv("TEST_POSTGRES_DSN", f"postgresql://postgres@{CLOSED_PORT}/test")
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://{CLOSED_PORT}/0")
    with pytest.raises(Skipped, match=f"PostgreSQL at postgresql://postgres@{CLOSED_PORT}"):
        postgres_dsn()
    with pytest.raises(Skipped, match=f"Redis at redis://{CLOSED_PORT}/0 is not reachable"):
        redis_url()


def test_ci_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUIRE_TEST_SERVICES", "1")
    monkeypatch.setenv("TEST_POSTGRES_DSN", f"postgresql://postgres@{CLOSED_PORT}/test")
    with pytest.raises(Failed, match="REQUIRE_TEST_SERVICES=1"):
        postgres_dsn()


def test_the_schema_goes_into_the_url_as_a_server_setting() -> None:
    assert with_search_path("postgresql://u@h:5432/db?sslmode=disable", "t_1") == (
        "postgresql://u@h:5432/db?sslmode=disable&search_path=t_1"
    )


async def test_a_reused_schema_is_as_empty_as_a_new_one_and_a_changed_one_is_not_reused() -> None:
    async def used(extra: str = "") -> str:
        async with migrated_postgres_schema() as dsn:
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("SELECT count(*) FROM users") == 0
                assert await conn.fetchval("SELECT version FROM schema_version") == len(MIGRATIONS)
                await conn.execute(
                    "INSERT INTO users (id, created_at, last_seen_at) VALUES (7, 'x', 'x');"
                    "INSERT INTO outbox (user_id, phone, message, state, created_at, updated_at)"
                    " VALUES (7, '998901234567', 'm', 'sent', 'x', 'x');" + extra
                )
                first_id = await conn.fetchval("SELECT id FROM outbox")
                assert first_id == 1  # identities start over too
            finally:
                await conn.close()
            return dsn

    first = await used()
    assert await used() == first  # emptied and handed on
    changed = await used("CREATE TABLE stray (id INTEGER)")
    assert await used() != changed  # a schema a test changed is dropped
