"""The fake Telegram's webhook side, which the webhook e2e tests trust: it posts queued updates
with the secret, resends one the bot did not acknowledge, and refuses what Telegram refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.telegram.model import WebhookPost

TOKEN: Final = "123456:" + "A" * 35
PUBLIC: Final = "https://bot.example.test"


class Receiver:
    """A bot's webhook that answers 500 to the first ``failures`` posts, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[int, str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        update = await request.json()
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        self.received.append((update["update_id"], secret))
        if self.failures:
            self.failures -= 1
            return web.Response(status=500)
        return web.json_response({})


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    client = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
    yield client
    await client.session.close()


async def test_updates_are_posted_with_the_secret_and_resent_until_acknowledged(
    fake: FakeTelegram, bot: Bot
) -> None:
    receiver = Receiver(failures=1)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        fake.route_webhook(PUBLIC, str(server.make_url("")))
        fake.send_text(1001, "hello")
        [update] = fake.pending_updates
        update_id = update["update_id"]
        assert await bot.set_webhook(f"{PUBLIC}/hook", secret_token="s3cret")
        await fake.wait_for(lambda: not fake.pending_updates)
        assert receiver.received == [(update_id, "s3cret"), (update_id, "s3cret")]
        assert fake.webhook_posts == [WebhookPost(update_id, 500), WebhookPost(update_id, 200)]
        info = await bot.get_webhook_info()
        assert (info.url, info.pending_update_count) == (f"{PUBLIC}/hook", 0)
        assert info.last_error_message == (
            "Wrong response from the webhook: 500 Internal Server Error"
        )
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        assert await bot.get_updates() == []


async def test_a_webhook_must_be_https_with_a_well_formed_secret(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="HTTPS URL must be provided"):
        await bot.set_webhook("http://bot.example.test/hook")
    with pytest.raises(TelegramBadRequest, match="secret token"):
        await bot.set_webhook(f"{PUBLIC}/hook", secret_token="not allowed!")
