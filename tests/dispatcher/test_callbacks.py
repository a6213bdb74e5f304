"""Delivery callbacks and metrics through the app's own Dispatcher: the send dialog passes a
callback URL only when PUBLIC_BASE_URL is set, with its token's hash already committed when
the request is in flight; every update is counted."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.factory import build_app
from services import metrics
from services.scheduler import Scheduler, parse_stamp
from storage import OutboxState
from tests.conftest import GOOD_TOKEN, make_settings
from tests.fakes.fake_devsms import SEND, FakeDevsms
from tests.support.harness import Harness, make_bot
from tests.support.notifiers import install
from tests.support.recording import RecordingSession

BASE = "https://bot.example.com"


@pytest.fixture
async def public_app(tmp_path: Path, devsms: FakeDevsms) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, devsms.url, public_base_url=BASE, web_port=8099)
    session = RecordingSession()
    async with build_app(settings, bot=make_bot(session)) as built:
        yield Harness.of(built, session)


async def confirm_send(app: Harness) -> None:
    await app.send("/start")
    await app.send(GOOD_TOKEN)
    await app.send("/send")
    await app.send("+998901234567")
    [preview] = await app.send("Hello")
    await app.tap(preview, "Send")


async def test_callback_token_is_committed_hashed_before_the_request_leaves(
    public_app: Harness, devsms: FakeDevsms
) -> None:
    devsms.hold(SEND)
    dialog = asyncio.create_task(confirm_send(public_app))
    [held] = await devsms.wait_held()
    url = held.json["callback_url"]
    assert url.startswith(BASE + "/devsms/callback/")
    token = url.rsplit("/", 1)[1]
    db = public_app.services.db
    # While the request is in flight: the outbox row and its token's hash are both there.
    [stored] = await db.fetchall("SELECT token_hash, outbox_id, user_id FROM delivery_callbacks")
    [pending] = await public_app.services.outbox.recent(1, 10)
    assert pending.state is OutboxState.PENDING
    assert tuple(stored) == (hashlib.sha256(token.encode()).hexdigest(), pending.id, 1)
    devsms.release()
    await dialog
    assert "Sent." in public_app.last().text
    # The token itself is nowhere in the database.
    for table in ("outbox", "delivery_callbacks", "fsm"):
        for row in await db.fetchall(f"SELECT * FROM {table}"):
            assert token not in str(tuple(row))


async def test_no_callback_url_without_public_base_url(app: Harness, devsms: FakeDevsms) -> None:
    await confirm_send(app)
    [sms] = devsms.sent
    assert sms.callback_url is None
    assert "callback_url" not in devsms.requests_to(SEND)[0].json
    assert await app.services.db.fetchall("SELECT * FROM delivery_callbacks") == []


async def test_every_update_is_counted_by_type_and_outcome(app: Harness) -> None:
    def count(kind: str, outcome: str) -> float:
        sample = metrics.registry().get_sample_value(
            "devsms_bot_updates_total", {"type": kind, "outcome": outcome}
        )
        return sample or 0.0

    def timed(kind: str) -> float:
        sample = metrics.registry().get_sample_value(
            "devsms_bot_handler_seconds_count", {"type": kind}
        )
        return sample or 0.0

    handled, seen = count("message", "handled"), timed("message")
    taps = count("callback_query", "handled")
    await confirm_send(app)  # five messages and one tap
    assert count("message", "handled") == handled + 5
    assert timed("message") == seen + 5
    assert count("callback_query", "handled") == taps + 1


async def test_a_scheduled_send_carries_its_own_callback_url(
    public_app: Harness, devsms: FakeDevsms
) -> None:
    app = public_app
    install(app.dp, app.bot, None, app.services)
    await app.send("/start")
    await app.send(GOOD_TOKEN)
    [preview] = await app.send("/send 998901234567 Later, with a report")
    sent = await app.tap(preview, "Send later")
    ask = next(m for m in sent if "When should it go out?" in m.text)
    await app.tap(ask, "In 1 hour")
    [item] = await app.services.schedule.open_of(1, 10)
    scheduler: Scheduler = app.dp["scheduler"]
    due = parse_stamp(item.due_at)
    assert due is not None
    scheduler.now = lambda: due + dt.timedelta(seconds=1)
    await scheduler.tick()
    [sms] = devsms.sent
    token = (sms.callback_url or "").removeprefix(BASE + "/devsms/callback/")
    assert len(token) == 43
    [row] = await app.services.db.fetchall("SELECT token_hash, outbox_id FROM delivery_callbacks")
    [outbox] = await app.services.outbox.recent(1, 10)
    assert tuple(row) == (hashlib.sha256(token.encode()).hexdigest(), outbox.id)
    await app.dp["bulk_runner"].stop()
