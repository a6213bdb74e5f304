"""`python -m bot` with DATABASE_URL: a send dialog kept in PostgreSQL across a restart, the
SMS recorded there and sent once; no SQLite file is made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import asyncpg
import pytest

from tests.conftest import GOOD_TOKEN
from tests.e2e.harness import BotLauncher, ChatUser, connect_token
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.services import postgres_schema

pytestmark = pytest.mark.e2e

PHONE: Final = "998901234567"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with postgres_schema() as dsn:
        yield dsn


async def test_a_send_dialog_survives_a_restart_and_sends_once(
    bots: BotLauncher, user: ChatUser, devsms: FakeDevsms, postgres_url: str
) -> None:
    bot = await bots.started(extra_env={"DATABASE_URL": postgres_url})
    await connect_token(user, GOOD_TOKEN)
    await user.ask("/send", "Whom to send to?")
    await user.ask(PHONE, "Now send the text")

    await bot.restart()  # the dialog's step is in PostgreSQL, not in the process
    preview = await user.ask("Hello from PostgreSQL", "Check before sending")
    taps = [user.tap(preview, "✅ Send"), user.tap(preview, "✅ Send")]
    result = await user.wait_edited(preview, "Sent.")
    for tap in taps:
        await user.answer_to(tap)
    [sms] = devsms.sent
    assert (sms.phone, sms.message, sms.token) == (PHONE, "Hello from PostgreSQL", GOOD_TOKEN)
    assert f"SMS id: {sms.sms_id}" in (result.text or "")

    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT phone, state, sms_id FROM outbox")
        token = await conn.fetchval("SELECT token_encrypted FROM credentials")
    finally:
        await conn.close()
    assert [tuple(row) for row in rows] == [(PHONE, "sent", sms.sms_id)]
    assert GOOD_TOKEN.encode() not in token
    assert not bot.database_path.exists()
    assert GOOD_TOKEN not in bot.log_path.read_text(errors="replace")
