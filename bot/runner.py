"""Runs a built App until SIGINT/SIGTERM: polling (the default) or webhook mode, each with the
web server when it is wanted (see bot/web/server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from bot.factory import App
from bot.web.health import TelegramPulse
from bot.web.server import build_web_app, serve
from bot.web.webhook import WEBHOOK_CHECK_INTERVAL, set_webhook, watch_webhook

logger = logging.getLogger(__name__)


async def run(app: App) -> None:
    settings = app.services.settings
    pulse = TelegramPulse()
    app.bot.session.middleware(pulse)
    port = settings.web_port_in_use
    if settings.telegram_mode == "webhook":
        assert port is not None  # webhook mode always has one
        await run_webhook(app, pulse, port)
        return
    async with AsyncExitStack() as stack:
        if port is not None:
            await stack.enter_async_context(
                serve(build_web_app(app, pulse), settings.web_host, port)
            )
        await run_polling(app)


async def run_polling(app: App) -> None:
    bot, dp = app.bot, app.dp
    # A webhook left by webhook mode makes getUpdates fail (409); the updates it holds stay.
    await bot.delete_webhook(drop_pending_updates=False)
    await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types())


async def run_webhook(app: App, pulse: TelegramPulse, port: int) -> None:
    bot, dp = app.bot, app.dp
    workflow = {"dispatcher": dp, "bots": [bot], **dp.workflow_data}
    # A stop signal from now on ends the run in order (before, it would kill the process
    # between setWebhook and the wait, e.g. when an orchestrator stops a bot just started).
    async with _stop_signals() as stop:
        await _serve_webhook(app, pulse, port, workflow, stop)


async def _serve_webhook(
    app: App, pulse: TelegramPulse, port: int, workflow: dict[str, Any], stop: asyncio.Event
) -> None:
    bot, dp, settings = app.bot, app.dp, app.services.settings
    # As start_polling does: the start-up hooks run before the first update is handled, and
    # the shutdown hooks only after a start-up that succeeded.
    await dp.emit_startup(bot=bot, **workflow)
    try:
        # Listening first: Telegram posts as soon as the webhook is set (or at once, when a
        # previous process left it set).
        async with serve(build_web_app(app, pulse), settings.web_host, port):
            await set_webhook(bot, dp, settings)
            watcher = asyncio.create_task(watch_webhook(bot, settings, WEBHOOK_CHECK_INTERVAL))
            try:
                await stop.wait()
                logger.info("stopping: signal received")
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            # The webhook stays set: a restarted process (or another replica) takes over, and
            # Telegram keeps the updates that come meanwhile; unless told otherwise.
            if settings.webhook_delete_on_stop:
                await bot.delete_webhook(drop_pending_updates=False)
                logger.info("webhook deleted at stop (WEBHOOK_DELETE_ON_STOP)")
    finally:
        await dp.emit_shutdown(bot=bot, **workflow)


@contextlib.asynccontextmanager
async def _stop_signals() -> AsyncIterator[asyncio.Event]:
    """An event SIGINT and SIGTERM set while the block runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
