"""The production Bot's retry of Bot API calls, against the fake Telegram server on 127.0.0.1.

Dispatcher tests build their Bot without RetryRequestMiddleware, so its 5xx and network
branches are proven here, through the Bot that bot.factory.create_bot builds.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramServerError
from aiogram.methods import SendMessage
from aiohttp.client_reqrep import ConnectionKey

from bot.factory import create_bot
from bot.middlewares import RetryRequestMiddleware
from tests.conftest import make_settings
from tests.fakes.fake_telegram import FakeTelegram

CHAT: Final = 1001


def production_bot(tmp_path: Path, telegram_url: str) -> Bot:
    return create_bot(
        make_settings(tmp_path, "http://127.0.0.1:9/api", telegram_api_url=telegram_url)
    )


@pytest.fixture
async def bot(tmp_path: Path, telegram: FakeTelegram) -> AsyncIterator[Bot]:
    client = production_bot(tmp_path, telegram.url)
    yield client
    await client.session.close()


def texts(telegram: FakeTelegram) -> list[str | None]:
    return [message.text for message in telegram.chat_messages(CHAT)]


async def test_message_posted_then_connection_lost_is_not_sent_twice(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.fail_next(1, method="sendMessage", drop_connection=True, processed=True)

    with pytest.raises(TelegramNetworkError):
        await bot.send_message(CHAT, "Your SMS was sent")

    assert texts(telegram) == ["Your SMS was sent"]
    assert len(telegram.calls_of("sendMessage")) == 1


async def test_message_posted_then_server_error_is_not_sent_twice(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.fail_next(
        1, method="sendMessage", error_code=502, description="Bad Gateway", processed=True
    )

    with pytest.raises(TelegramServerError):
        await bot.send_message(CHAT, "Job finished")

    assert texts(telegram) == ["Job finished"]


async def test_edit_after_a_lost_connection_is_repeated(telegram: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Sending…")
    telegram.fail_next(1, method="editMessageText", drop_connection=True, processed=True)

    await bot.edit_message_text("✅ Sent", chat_id=CHAT, message_id=sent.message_id)

    assert texts(telegram) == ["✅ Sent"]
    assert len(telegram.calls_of("editMessageText")) == 2


async def test_flood_control_on_a_send_is_waited_out_and_sent_once(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.fail_next(1, method="sendMessage", error_code=429, retry_after=1)

    await bot.send_message(CHAT, "After the wait")

    assert texts(telegram) == ["After the wait"]
    assert len(telegram.calls_of("sendMessage")) == 2


async def test_send_is_repeated_when_the_connection_was_refused(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    # Nothing listens on the port at first: the request cannot have reached Telegram.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = production_bot(tmp_path, f"http://127.0.0.1:{port}")
    try:
        sending = asyncio.create_task(client.send_message(CHAT, "Once"))
        await asyncio.sleep(0.1)  # the first attempt is refused; the retry waits 0.5 s
        await telegram.stop()
        await telegram.start(port=port)
        await sending
    finally:
        await client.session.close()

    assert texts(telegram) == ["Once"]


# --- the decision itself, on aiogram's own exceptions --------------------------------------------


def network_error(cause: BaseException) -> TelegramNetworkError:
    error = TelegramNetworkError(SendMessage(chat_id=CHAT, text="x"), "network")
    error.__cause__ = cause
    return error


REFUSED: Final = aiohttp.ClientConnectorError(
    ConnectionKey("h", 1, False, True, None, None, None), OSError(111, "Connection refused")
)


@pytest.mark.parametrize(
    ("cause", "retried"),
    [
        (REFUSED, True),
        (aiohttp.ConnectionTimeoutError("connect"), True),
        (TimeoutError(), False),  # may have been posted
        (aiohttp.ServerDisconnectedError(), False),
        (aiohttp.ClientPayloadError("cut"), False),
    ],
)
async def test_send_message_is_repeated_only_when_telegram_never_got_it(
    cause: BaseException, retried: bool
) -> None:
    calls: list[Any] = []

    async def make_request(bot: Any, method: Any) -> Any:
        calls.append(method)
        if len(calls) == 1:
            raise network_error(cause)
        return "ok"

    middleware = RetryRequestMiddleware(base_delay=0)
    method = SendMessage(chat_id=CHAT, text="x")
    if retried:
        assert await middleware(make_request, None, method) == "ok"  # type: ignore[arg-type]
    else:
        with pytest.raises(TelegramNetworkError):
            await middleware(make_request, None, method)  # type: ignore[arg-type]
    assert len(calls) == (2 if retried else 1)
