"""GET /metrics (Prometheus): filled in by the metrics work of issue 14."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from bot.factory import App


def add_metrics_routes(web_app: web.Application, app: App) -> None:
    """Adds the metrics routes to `web_app`; nothing yet."""
