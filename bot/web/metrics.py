"""GET /metrics: the process's Prometheus metrics (services/metrics.py) as text.

With METRICS_TOKEN set, a scrape must carry `Authorization: Bearer <METRICS_TOKEN>`; anything
else gets 401 (compared in constant time). The text holds no user ids, numbers or tokens.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from services import metrics

if TYPE_CHECKING:
    from bot.factory import App

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

METRICS_PATH = "/metrics"


def add_metrics_routes(web_app: web.Application, app: App) -> None:
    token = app.services.settings.metrics_token
    # prometheus_client loads with the web server, not at the first scrape.
    metrics.registry()
    web_app.router.add_get(
        METRICS_PATH, metrics_handler(None if token is None else token.get_secret_value())
    )


def metrics_handler(token: str | None) -> Handler:
    expected = None if token is None else f"Bearer {token}".encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return web.Response(
                    status=401,
                    text="401: Unauthorized\n",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": metrics.content_type()}
        )

    return handle
