"""The bot's web server: built from the App, run beside polling or as the webhook's receiver.

It runs in webhook mode (WEB_PORT, default 8080) or whenever WEB_PORT is set. Each feature adds
its own routes from its own module: the list is in `build_web_app`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aiohttp import web

from bot.replicas import TakenUpdates
from bot.web.delivery import add_delivery_routes
from bot.web.health import TelegramPulse, add_health_routes
from bot.web.metrics import add_metrics_routes
from bot.web.webhook import add_webhook_route

if TYPE_CHECKING:
    from bot.factory import App

logger = logging.getLogger(__name__)


def build_web_app(app: App, pulse: TelegramPulse) -> web.Application:
    settings = app.services.settings
    web_app = web.Application()
    add_health_routes(web_app, app.services.db, settings.database_path, pulse)
    if settings.telegram_mode == "webhook":
        redis = app.services.redis
        taken = None if redis is None else TakenUpdates(redis, app.services.redis_prefix)
        add_webhook_route(web_app, app.dp, app.bot, settings, taken)
    # ---- Routes of other features: each module adds its own (issue 14) ----
    add_metrics_routes(web_app, app)
    add_delivery_routes(web_app, app)
    return web_app


@asynccontextmanager
async def serve(web_app: web.Application, host: str, port: int) -> AsyncIterator[None]:
    """Listens on host:port inside the block; on the way out stops accepting, lets requests
    in flight and acknowledged webhook updates finish, then runs the app's cleanup."""
    # No access log: Telegram's requests carry the secret header, and the operator's proxy
    # logs requests anyway.
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        logger.info("web server on http://%s:%s", host, port)
        yield
    finally:
        await runner.cleanup()
