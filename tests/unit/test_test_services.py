"""tests/support/services.py: an unreachable server skips its tests with the reason, except under
REQUIRE_TEST_SERVICES=1 (CI), where it fails them."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from tests.support.services import postgres_dsn, redis_url, with_search_path

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
