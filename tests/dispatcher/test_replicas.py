"""Two replicas (REDIS_URL set, one database) taking one user's updates in turn, as a load
balancer hands them out: the dialog goes on whichever replica gets the next step.

Both are built by build_app from the same settings, on one SQLite file and one Redis key
prefix, and talk to one recorded Telegram (as two processes talk to the one real Telegram).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from aiogram.methods import GetFile
from aiogram.types import Update
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.config import Settings
from bot.factory import build_app
from bot.replicas import SharedFsmStorage, TakenUpdates
from bot.web.webhook import add_webhook_route
from storage import OutboxKind
from tests.conftest import GOOD_TOKEN, make_settings
from tests.dispatcher.test_bulk import until
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, make_bot
from tests.support.notifiers import install
from tests.support.recording import RecordingSession
from tests.support.redis_keys import redis_prefix

SEND = "/send_sms.php"
PEOPLE_CSV = b"name,phone\nAli,+998 90 123 45 67\nVali,901234568\nGulnora,+998 (91) 234-56-78\n"


@pytest.fixture
async def replicas(tmp_path: Path, devsms: FakeDevsms) -> AsyncIterator[tuple[Harness, Harness]]:
    async with redis_prefix() as (url, prefix), AsyncExitStack() as stack:
        settings: Settings = make_settings(tmp_path, devsms.url, redis_url=url, bulk_rate=200)
        session = RecordingSession()
        built = []
        for replica in ("a", "b"):
            bot = make_bot(session)
            app = await stack.enter_async_context(
                build_app(
                    settings.model_copy(update={"replica_id": replica}),
                    bot=bot,
                    redis_prefix=prefix,
                )
            )
            install(app.dp, bot, None, app.services)
            built.append(Harness.of(app, session))
        a, b = built
        b._ids = a._ids  # one Telegram: update and message ids never repeat across replicas
        yield a, b


async def connect(app: Harness) -> None:
    await app.send("/start")
    await app.send(GOOD_TOKEN)


async def test_a_dialog_goes_on_whichever_replica_takes_the_next_step(
    replicas: tuple[Harness, Harness], devsms: FakeDevsms
) -> None:
    a, b = replicas
    assert isinstance(a.dp.storage, SharedFsmStorage)
    await connect(a)
    [ask] = await b.send("/send")
    assert "Whom to send to?" in ask.text
    [ask_text] = await a.send("+998 90 123-45-67")
    assert "+998 90 123 45 67" in ask_text.text
    assert await b.state_of() == await a.state_of() == "SendForm:text"
    [preview] = await b.send("Hello")
    assert "To: +998 90 123 45 67" in preview.text
    assert "Balance after sending: 9\u00a0950 so'm" in preview.text

    # A double tap that the load balancer splits over both replicas: one SMS.
    await asyncio.gather(a.tap(preview, "Send"), b.tap(preview, "Send"))
    assert [(s.phone, s.message) for s in devsms.sent] == [("998901234567", "Hello")]
    assert "✅ <b>Sent.</b>" in a.session.messages[(1, preview.message_id)].text
    assert await a.state_of() is None and await b.state_of() is None


async def test_what_one_replica_changes_the_other_sees_at_once(
    replicas: tuple[Harness, Harness], devsms: FakeDevsms
) -> None:
    a, b = replicas
    await connect(a)
    [balance] = await b.send("/balance")  # b has read the user's token row and balance
    assert "Balance: 10\u00a0000 so'm" in balance.text
    await a.send("/send")
    await a.send("901234567")
    [preview] = await b.send("One")
    await a.tap(preview, "Send")  # the balance changes through a
    await b.send("/send")
    await a.send("901234567")
    [preview] = await b.send("Two")
    assert "Balance after sending: 9\u00a0900 so'm" in preview.text  # not b's old 10 000

    [confirm] = await b.send("/logout")
    await a.tap(confirm, "Yes, delete everything")
    [reply] = await b.send("/balance")
    assert "First connect your devsms token" in reply.text


async def test_a_list_uploaded_through_one_replica_starts_on_the_other(
    replicas: tuple[Harness, Harness], devsms: FakeDevsms
) -> None:
    a, b = replicas
    await connect(b)
    await a.send("/bulk")
    [ask_text] = await a.send_document("people.csv", PEOPLE_CSV)
    assert "people.csv: rows: 3" in ask_text.text
    [review] = await b.send("Hello {name}")
    assert "✅ To send: 3" in review.text
    assert "Hello Gulnora" in review.text
    sent = await b.tap(review, "Start")
    assert any("Bulk job #" in m.text for m in sent)
    async with asyncio.timeout(5):
        done = await devsms.wait_sent(3)
    assert sorted(s.phone for s in done) == ["998901234567", "998901234568", "998912345678"]
    # The file was read once, through a: b took the parsed list from Redis, not Telegram.
    assert len(a.session.of(GetFile)) == 1


async def test_an_otp_code_typed_on_one_replica_is_sent_from_the_other(
    replicas: tuple[Harness, Harness], devsms: FakeDevsms
) -> None:
    a, b = replicas
    await connect(a)
    await a.send("/otp")
    _, kinds = await b.send("+998 90 123 45 67")
    await a.tap(kinds, "2 — password")
    [ask_code] = await b.send("Oila Market")
    assert "code" in ask_code.text
    [confirm] = await a.send("4821")
    assert "Code: <code>4821</code>" in confirm.text
    [result] = await b.tap(confirm, "Send the code")
    [request] = devsms.requests_to(SEND)
    assert request.json is not None and request.json["otp_code"] == "4821"
    assert "Code sent" in result.text
    [row] = await a.services.outbox.recent(1, 5)
    assert row.kind is OutboxKind.OTP
    # The code is in neither replica's FSM data, and Redis holds no code in the clear.
    assert "4821" not in str(await a.dp.storage.get_data(_key(a)))
    redis = a.services.redis
    assert redis is not None
    for key in [k async for k in redis.scan_iter(match=f"{a.services.redis_prefix}:*")]:
        kind = await redis.type(key)
        if kind == b"string":
            assert b"4821" not in (await redis.get(key) or b"")


def _key(app: Harness) -> object:
    return app.dp.fsm.get_context(app.bot, chat_id=1, user_id=1).key


async def test_an_update_telegram_resends_to_the_other_replica_is_handled_once(
    replicas: tuple[Harness, Harness],
) -> None:
    a, b = replicas
    secret = "s3cret"
    settings = a.services.settings.model_copy(update={"webhook_secret": SecretStr(secret)})
    clients = []
    for replica in (a, b):
        assert replica.services.redis is not None
        web_app = web.Application()
        taken = TakenUpdates(replica.services.redis, replica.services.redis_prefix)
        add_webhook_route(web_app, replica.dp, replica.bot, settings, taken)
        clients.append(TestClient(TestServer(web_app)))
    update = Update(update_id=900_005, message=a.message(text="/start")).model_dump(
        mode="json", exclude_none=True
    )
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with clients[0], clients[1]:
        # The 200 to a got lost; Telegram sends the update again, and b gets it this time.
        for client in clients:
            response = await client.post(settings.webhook_path, json=update, headers=headers)
            assert response.status == 200

        def greetings() -> int:
            return sum("API token" in m.text for m in a.session.chat(1))

        await until(lambda: greetings() > 0)
        # The user's next message is handled after anything still queued for them: once it
        # is answered, a second greeting would have been sent too.
        await b.send("/cancel")
    assert greetings() == 1
