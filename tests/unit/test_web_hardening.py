"""Hostile requests to the web server's endpoints get a plain answer, never a 500."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Message
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.replicas import TakenUpdates
from bot.web.delivery import callback_handler
from bot.web.webhook import WebhookHandler
from services.callbacks import CALLBACK_PATH, CallbackInbox, CallbackLinks
from storage import CallbackRepo, Database
from tests.conftest import BOT_TOKEN

TOKEN = "A" * 43  # a token's shape (token_urlsafe(32)) the bot never made


async def test_a_deeply_nested_callback_body_is_taken_like_any_unreadable_one() -> None:
    db = await Database.open(":memory:")
    try:
        inbox = CallbackInbox(CallbackRepo(db), CallbackLinks("https://bot.example"))
        app = web.Application()
        app.router.add_route("POST", CALLBACK_PATH + "{token}", callback_handler(inbox))
        async with TestClient(TestServer(app)) as client:
            garbage = await client.post(CALLBACK_PATH + TOKEN, data=b"{", headers=_JSON)
            assert garbage.status == 204
            nested = await client.post(CALLBACK_PATH + "B" * 43, data=b"[" * 3000, headers=_JSON)
            assert nested.status == garbage.status
    finally:
        await db.close()


_JSON = {"Content-Type": "application/json"}


async def test_a_non_ascii_webhook_secret_is_refused_not_an_error() -> None:
    bot = Bot(BOT_TOKEN)
    handler = WebhookHandler(Dispatcher(), bot, handle_in_background=True, secret_token="s3cret")
    app = web.Application()
    handler.register(app, path="/telegram")
    try:
        async with TestClient(TestServer(app)) as client:
            for secret in ("sécret", "wrong", ""):
                answer = await client.post(
                    "/telegram",
                    data=b"{}",
                    headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                )
                assert answer.status == 401, secret
            good = await client.post(
                "/telegram", data=b"{}", headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
            )
            assert good.status == 400  # past the secret; {} is not an Update
    finally:
        await bot.session.close()


class _SlowClaims(TakenUpdates):
    """Update ids claimed in a Redis that answers only when the test says so."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def claim(self, bot_id: int, update_id: int) -> bool:
        self.asked.set()
        await self.answer.wait()
        return True


async def test_a_stop_waits_for_an_update_being_taken_and_refuses_new_ones() -> None:
    bot = Bot(BOT_TOKEN)
    dp = Dispatcher()
    handled: list[int] = []

    @dp.message()
    async def record(message: Message) -> None:
        handled.append(message.message_id)

    claims = _SlowClaims()
    handler = WebhookHandler(
        dp, bot, handle_in_background=True, secret_token="s3cret", taken=claims
    )
    app = web.Application()
    handler.register(app, path="/telegram")
    update = {
        "update_id": 1,
        "message": {
            "message_id": 7,
            "date": 0,
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "Ali"},
            "text": "hi",
        },
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
    try:
        async with TestClient(TestServer(app)) as client:
            taking = asyncio.create_task(client.post("/telegram", json=update, headers=headers))
            await claims.asked.wait()
            # The stop begins while the update is being claimed: it waits for its handling.
            closing = asyncio.create_task(handler.close())
            await asyncio.sleep(0.05)
            assert not closing.done()
            late = await client.post("/telegram", json={**update, "update_id": 2}, headers=headers)
            assert late.status == 503  # Telegram sends it again, elsewhere or later
            claims.answer.set()
            assert (await taking).status == 200
            await asyncio.wait_for(closing, 5)
            assert handled == [7]
    finally:
        await bot.session.close()


async def test_a_stop_leaves_a_read_that_never_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis that never answers the resend check (or a body on a stalled connection) held
    the stop for ever; it waits READS_AT_STOP, then leaves the unacknowledged update to
    Telegram's resend."""
    monkeypatch.setattr("bot.web.webhook.READS_AT_STOP", 0.2)
    bot = Bot(BOT_TOKEN)
    claims = _SlowClaims()  # never answered
    handler = WebhookHandler(
        Dispatcher(), bot, handle_in_background=True, secret_token="s3cret", taken=claims
    )
    app = web.Application()
    handler.register(app, path="/telegram")
    update = {
        "update_id": 3,
        "message": {"message_id": 8, "date": 0, "chat": {"id": 5, "type": "private"}},
    }
    try:
        async with TestClient(TestServer(app)) as client:
            stuck = asyncio.create_task(
                client.post(
                    "/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
                )
            )
            await claims.asked.wait()
            await asyncio.wait_for(handler.close(), 5)
            stuck.cancel()
    finally:
        await bot.session.close()
