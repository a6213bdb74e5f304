"""A bulk-job environment: the fake gateway, a real database and Accounts with one token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from services.accounts import Accounts
from services.bulk import BulkRunner
from services.devsms import DevsmsClient
from services.events import Event, JobFinished, JobPaused
from services.vault import TokenVault
from storage import BulkRepo, CredentialRepo, Database, JobCounts, JobRow, UserRepo
from tests.fakes.fake_devsms import FakeDevsms

TOKEN = "bulk-token-0001"
USER = 7
SEND = "/send_sms.php"


class Env:
    def __init__(self, db: Database, fake: FakeDevsms, accounts: Accounts) -> None:
        self.db = db
        self.fake = fake
        self.accounts = accounts
        self.bulk = BulkRepo(db)
        self.finished: asyncio.Queue[tuple[JobRow, JobCounts]] = asyncio.Queue()
        self.paused: asyncio.Queue[tuple[JobRow, JobCounts]] = asyncio.Queue()

    async def emit(self, event: Event) -> None:
        """services.events.Notices: the job's end and pauses, queued for the test."""
        if isinstance(event, JobFinished):
            await self.finished.put((event.job, event.counts))
        elif isinstance(event, JobPaused):
            await self.paused.put((event.job, event.counts))

    def runner(self, **kwargs: object) -> BulkRunner:
        options: dict[str, object] = {"rate": 200.0, "concurrency": 4, "notices": self}
        options.update(kwargs)
        return BulkRunner(self.bulk, self.accounts, **options)  # type: ignore[arg-type]

    async def job(self, n: int, start: int = 901000000) -> int:
        rows = [(i + 2, f"998{start + i}", f"Hello {i}", 1) for i in range(n)]
        return await self.bulk.create_job(
            USER,
            template="Hello {n}",
            sender=None,
            file_name="x.csv",
            file_format="csv",
            rows=rows,
        )


@pytest.fixture
async def env(database_target: Path | str) -> AsyncIterator[Env]:
    fake = FakeDevsms()
    fake.add_account(TOKEN, balance=1_000_000, sms_price=50)
    await fake.start()
    db = await Database.open(database_target)
    await UserRepo(db).upsert_seen(USER, "Ali", None)
    vault = TokenVault([Fernet.generate_key().decode()])
    # No test here waits for a timeout; 1 s was too short for a first connection on a machine
    # busy with the other test process (a send 'not reached (timeout)' in one CI run).
    client = DevsmsClient(fake.url, timeout=10.0, get_retries=1, backoff=0.01)
    credentials = CredentialRepo(db)
    await credentials.save(USER, vault.encrypt(USER, TOKEN))
    yield Env(db, fake, Accounts(credentials, vault, client))
    await client.close()
    await db.close()
    await fake.stop()


async def wait(queue: asyncio.Queue[tuple[JobRow, JobCounts]]) -> tuple[JobRow, JobCounts]:
    return await asyncio.wait_for(queue.get(), timeout=15)
