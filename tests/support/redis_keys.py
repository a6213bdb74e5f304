"""A Redis key prefix per test, its keys deleted afterwards (other tests share the server)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from tests.support.services import redis_url


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    """(TEST_REDIS_URL, a fresh prefix); skips the test when Redis is not reachable."""
    url = redis_url()
    prefix = f"test-{secrets.token_hex(6)}"
    try:
        yield url, prefix
    finally:
        client = Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@asynccontextmanager
async def redis_client() -> AsyncIterator[tuple[Redis, str]]:
    """A client of TEST_REDIS_URL and a fresh prefix, both gone afterwards."""
    async with redis_prefix() as (url, prefix):
        client = Redis.from_url(url)
        try:
            yield client, prefix
        finally:
            await client.aclose()
