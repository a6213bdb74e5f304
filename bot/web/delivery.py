"""POST/GET /devsms/callback/<token>: delivery reports pushed by the gateway (callback_url).

The answer is immediate and never waits for the gateway: the token and a hint are handed to
the callback inbox (services/callbacks.py), whose task looks the token up and has the delivery
tracker check that SMS now. Answers:

- 204: taken. Also for a token the bot never made or whose send is settled (a replay): they
  change nothing, and telling them apart would only help someone guessing;
- 404: not a token's shape at all (nothing of ours);
- 429: more than one call per token in 2 s, or more than 50 a second overall;
- 503: the inbox is full (polling finds the result);
- 413: a body over 4 KB.

The body is undocumented (shared/devsms-api.md): whatever id it carries (sms_id or request_id,
in JSON, a form or the query) is only logged as a hint, never trusted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

from aiohttp import web

from services.callbacks import CALLBACK_PATH, CallbackInbox, Verdict

if TYPE_CHECKING:
    from bot.factory import App

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY: Final = 4096
_HINT_KEYS: Final = ("sms_id", "request_id", "id")
_STATUS: Final = {
    Verdict.ACCEPTED: 204,
    Verdict.MALFORMED: 404,
    Verdict.LIMITED: 429,
    Verdict.BUSY: 503,
}


def add_delivery_routes(web_app: web.Application, app: App) -> None:
    inbox = app.shared.callbacks
    if inbox is None:
        return  # no PUBLIC_BASE_URL: no send carries a callback URL
    handler = callback_handler(inbox)
    web_app.router.add_route("POST", CALLBACK_PATH + "{token}", handler)
    web_app.router.add_route("GET", CALLBACK_PATH + "{token}", handler)


def callback_handler(inbox: CallbackInbox) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413)
        hint = await _hint(request)
        verdict = inbox.offer(request.match_info["token"], hint)
        return web.Response(status=_STATUS[verdict])

    return handle


async def _hint(request: web.Request) -> str | None:
    """The id the call carries, if any, as a short printable string (for the log only)."""
    values: dict[str, object] = dict(request.query)
    if request.can_read_body:
        body = await request.content.read(MAX_BODY)
        values.update(_parse(body, request.content_type))
    for key in _HINT_KEYS:
        value = values.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)[:64]
            return text if text.isprintable() else None
    return None


def _parse(body: bytes, content_type: str) -> dict[str, object]:
    text = body.decode("utf-8", "replace")
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text))
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting like b"[" * 3000
        return {}
    if isinstance(data, dict):
        nested = data.get("data")
        return {**data, **nested} if isinstance(nested, dict) else data
    return {}
