"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.config import Settings
from bot.factory import build_app
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import BOT_TOKEN, Harness, make_bot
from tests.support.recording import RecordingSession
from tests.support.services import drop_reused_schemas

GOOD_TOKEN = "devsms-good-token-0001"
OTHER_TOKEN = "devsms-other-token-0002"


@pytest.fixture(scope="session", autouse=True)
def _drop_reused_postgres_schemas() -> Iterator[None]:
    """The PostgreSQL schemas tests handed on to each other go when the session ends."""
    yield
    asyncio.run(drop_reused_schemas())


@pytest.fixture
async def devsms() -> AsyncIterator[FakeDevsms]:
    fake = FakeDevsms()
    fake.add_account(GOOD_TOKEN, balance=10_000, sms_price=50)
    fake.add_account(OTHER_TOKEN, balance=500, sms_price=50)
    await fake.start()
    yield fake
    await fake.stop()


def make_settings(tmp_path: Path, devsms_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "bot_token": BOT_TOKEN,
        "devsms_api_url": devsms_url,
        "devsms_timeout": 2.0,
        "devsms_retries": 1,
        "devsms_retry_backoff": 0.01,
        "database_path": tmp_path / "bot.sqlite3",
        "encryption_key": Fernet.generate_key().decode(),
        "telegram_api_url": "http://127.0.0.1:9",
        # Quiet hours would hold bulk jobs back depending on when the suite runs; the tests
        # of quiet hours turn them on themselves.
        "quiet_hours": "off",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    return make_settings(tmp_path, devsms.url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Harness]:
    """The app's own Dispatcher, built by the same factory `python -m bot` uses."""
    session = RecordingSession()
    async with build_app(settings, bot=make_bot(session)) as built:
        yield Harness.of(built, session)
