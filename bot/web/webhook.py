"""Webhook mode: Telegram POSTs updates to PUBLIC_BASE_URL + WEBHOOK_PATH.

aiogram's SimpleRequestHandler checks the secret header (a wrong or missing one gets 401 and
the update is never read). It would answer a malformed body with 500, or accept it and fail in
the background; this subclass reads and validates the Update first, answers 400 when that
fails, and only then acknowledges and hands the update to the Dispatcher in a task, so that a
slow gateway never makes Telegram wait (and resend) — the same way polling hands each update
to a task. An update id seen before (Telegram resends when it missed our answer) is
acknowledged and dropped: polling's offsets give the same guarantee. With replicas the resend
may reach another process, so the update ids are also claimed in Redis (`TakenUpdates`).
Everything after that is
the Dispatcher's as in polling: the middlewares, the events isolation (one update at a time
per user), the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError

from bot.replicas import TakenUpdates

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from bot.config import Settings

logger = logging.getLogger(__name__)

# How often an idle bot in webhook mode asks Telegram for its webhook (see health.py).
WEBHOOK_CHECK_INTERVAL: Final = 20.0
# Update ids remembered to drop a resent update (Telegram resends when our 200 got lost).
SEEN_UPDATES: Final = 10_000
# At a stop, how long requests still being read may take before they are left unanswered.
READS_AT_STOP: Final = 10.0


class WebhookHandler(SimpleRequestHandler):
    def __init__(self, *args: Any, taken: TakenUpdates | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._taken = taken
        # Shutdown: no update is taken any more, and the requests still being read (their
        # update claimed, the task not yet made) are waited for, then every task.
        self._closing = False
        self._reading = 0
        self._read = asyncio.Event()
        self._read.set()

    def _first_time(self, update_id: int) -> bool:
        """False for an update already taken: Telegram resends one whose answer it did not
        get, and a tap handled twice must not become two of anything."""
        if update_id in self._seen:
            return False
        self._seen[update_id] = None
        if len(self._seen) > SEEN_UPDATES:
            self._seen.popitem(last=False)
        return True

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        # aiogram's compare_digest on str raises TypeError for a non-ASCII header (a 500);
        # bytes compare in constant time whatever they hold. aiohttp decodes headers with
        # surrogateescape, so that is how they go back to the bytes that came.
        if not self.secret_token:
            return True
        came = telegram_secret_token.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(came, self.secret_token.encode("utf-8"))

    async def handle(self, request: web.Request) -> web.Response:
        if self._closing:
            # Stopping: Telegram sends the update again, to another replica or the next run.
            return web.Response(body="Service Unavailable", status=503)
        self._reading += 1
        self._read.clear()
        try:
            return await self._take(request)
        finally:
            self._reading -= 1
            if not self._reading:
                self._read.set()

    async def _take(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), bot):
            return web.Response(body="Unauthorized", status=401)
        try:
            raw = json.loads(await request.read())
            update = Update.model_validate(raw, context={"bot": bot})
        # JSONDecodeError and UnicodeError are ValueErrors; RecursionError: b"[" * 3000
        except (ValueError, RecursionError, ValidationError):
            return web.Response(body="Bad Request", status=400)
        if not self._first_time(update.update_id):
            logger.info("update %s came again: already taken, dropped", update.update_id)
            return web.json_response({})
        if self._taken is not None:
            try:
                first = await self._taken.claim(bot.id, update.update_id)
            except RedisError as exc:
                # Not known whether another replica took it: Telegram sends it again later.
                self._seen.pop(update.update_id, None)
                logger.warning(
                    "update %s not claimed (%s): Telegram will resend", update.update_id, exc
                )
                return web.Response(body="Service Unavailable", status=503)
            if not first:
                logger.info("update %s came again: another replica took it", update.update_id)
                return web.json_response({})
        task = asyncio.create_task(self._process(bot, update))
        self._background_feed_update_tasks.add(task)
        task.add_done_callback(self._background_feed_update_tasks.discard)
        return web.json_response({})

    async def _process(self, bot: Bot, update: Update) -> None:
        try:
            result = await self.dispatcher.feed_update(bot, update, **self.data)
            if isinstance(result, TelegramMethod):
                await self.dispatcher.silent_call_request(bot=bot, result=result)
        except Exception:
            logger.exception("update %s failed", update.update_id)

    async def close(self) -> None:
        """At shutdown: the updates already acknowledged finish (Telegram will not resend
        them), those of requests still being read too (a task made after a first look would
        run into the closed Bot session: a reply cut, or an update taken and never handled);
        the Bot's session is closed by whoever opened it, not here."""
        self._closing = True
        loop = asyncio.get_running_loop()
        # A body on a stalled connection, or a Redis that does not answer the resend check,
        # would hold the stop for ever: reads get READS_AT_STOP seconds, then are left (their
        # updates not acknowledged, so Telegram sends them again).
        deadline = loop.time() + READS_AT_STOP
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._read.wait()
            tasks = list(self._background_feed_update_tasks)
            if not tasks:
                if self._reading:
                    logger.warning(
                        "stop: %s webhook requests still being read are left", self._reading
                    )
                return
            await asyncio.gather(*tasks, return_exceptions=True)


def add_webhook_route(
    web_app: web.Application,
    dp: Dispatcher,
    bot: Bot,
    settings: Settings,
    taken: TakenUpdates | None = None,
) -> None:
    assert settings.webhook_secret is not None  # Settings refuses webhook mode without it
    handler = WebhookHandler(
        dp,
        bot,
        handle_in_background=True,
        secret_token=settings.webhook_secret.get_secret_value(),
        # What polling hands the handlers besides the Dispatcher's workflow data (and itself).
        bots=[bot],
        taken=taken,
    )
    handler.register(web_app, path=settings.webhook_path)


async def set_webhook(bot: Bot, dp: Dispatcher, settings: Settings) -> None:
    assert settings.webhook_secret is not None
    await bot.set_webhook(
        url=settings.webhook_url,
        secret_token=settings.webhook_secret.get_secret_value(),
        allowed_updates=dp.resolve_used_update_types(),
        # Updates that came while no process listened are still wanted.
        drop_pending_updates=False,
    )
    logger.info("webhook set to %s", settings.webhook_url)


async def watch_webhook(bot: Bot, settings: Settings, interval: float) -> None:
    """Asks Telegram for the webhook every `interval` seconds: an idle webhook bot makes no
    other calls, and /readyz wants a recent answer. A webhook set elsewhere is logged."""
    while True:
        await asyncio.sleep(interval)
        try:
            info = await bot.get_webhook_info()
        except Exception as exc:
            logger.warning("getWebhookInfo failed: %r", exc)
            continue
        if info.url != settings.webhook_url:
            logger.warning("the webhook points elsewhere now (another process set it?)")
        elif info.last_error_message:
            logger.info(
                "Telegram's last webhook error: %s (%s pending)",
                info.last_error_message,
                info.pending_update_count,
            )
