"""Delivery reports pushed by the gateway (callback_url): filled in by issue 14's callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from bot.factory import App


def add_delivery_routes(web_app: web.Application, app: App) -> None:
    """Adds the delivery callback routes to `web_app`; nothing yet."""
