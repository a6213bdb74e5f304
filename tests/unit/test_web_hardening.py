"""Hostile requests to the web server's endpoints get a plain answer, never a 500."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

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
