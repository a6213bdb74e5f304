"""The framework's floor for `make bench`: a bare aiogram bot answering every message.

Started like the real bot (``python -m scripts.echo_bot`` with BOT_TOKEN and TELEGRAM_API_URL
in the environment) against the same fake Telegram, so the difference between the two is what
the project's own code costs: middlewares, SQLite, the gateway call, rendering.

It logs warnings only: the real bot also mutes aiogram's per-update INFO line, and a floor
must not pay for work the bot does not do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

logger = logging.getLogger(__name__)


async def echo(message: Message) -> None:
    await message.answer(message.text or "?")


async def main() -> None:
    # A reference outside the app: it reads the two variables it needs and nothing else.
    token = os.environ["BOT_TOKEN"]
    api = os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org")
    bot = Bot(token=token, session=AiohttpSession(api=TelegramAPIServer.from_base(api)))
    dp = Dispatcher()
    dp.message.register(echo)
    try:
        await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types())
    finally:
        await bot.session.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    asyncio.run(main())
