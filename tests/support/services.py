"""PostgreSQL and Redis for the tests that need them (TEST_POSTGRES_DSN, TEST_REDIS_URL).

Where a server is not reachable the test is skipped with the reason; with
REQUIRE_TEST_SERVICES=1 (.ci/run sets it) it fails instead, so CI always runs them.
Each PostgreSQL test works in a schema of its own, dropped afterwards, and each Redis test
under a key prefix of its own (tests/support/redis_keys.py), deleted afterwards: the tests of
other sessions run against the same servers at the same time.
"""

from __future__ import annotations

import os
import socket
from typing import Final
from urllib.parse import urlsplit

import pytest

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
