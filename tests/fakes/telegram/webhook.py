"""Webhooks: setWebhook/deleteWebhook/getWebhookInfo, and the pusher that POSTs queued updates
to the bot's webhook as Telegram does (the secret header, retries after a failed answer).

The bot sets a public https URL; ``route_webhook`` tells the fake which local address that
URL reaches (no TLS, no DNS here). ``post_to_webhook`` sends one raw body with any secret,
for tests of what the bot refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Final

import aiohttp

from tests.fakes.telegram.model import MAX_UPDATES_LIMIT, WebhookPost
from tests.fakes.telegram.polling import Polling
from tests.support.telegram_rules import JsonDict, bad_request

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Telegram waits longer and backs off; a test wants the retry soon.
RETRY_PAUSE: Final = 0.2
# The pusher's own look at the queue, besides the signal of a new update.
PUSH_TICK: Final = 0.05
_USE_SET_SECRET: Final = "\0set"


class Webhooks(Polling):
    """Telegram's side of webhook mode."""

    def route_webhook(self, public_base: str, local_base: str) -> None:
        """A webhook URL under ``public_base`` is reached at ``local_base`` instead."""
        self._webhook_routes[public_base.rstrip("/")] = local_base.rstrip("/")

    @property
    def webhook_url(self) -> str:
        """The URL the bot set ("" when none is set)."""
        return self._webhook_url

    def webhook_target(self) -> str | None:
        """The local address the set webhook reaches, when it is routed."""
        for public, local in self._webhook_routes.items():
            if self._webhook_url == public or self._webhook_url.startswith(public + "/"):
                return local + self._webhook_url[len(public) :]
        return None

    async def post_to_webhook(
        self, body: JsonDict | bytes, *, secret: str | None = _USE_SET_SECRET
    ) -> tuple[int, str]:
        """POSTs ``body`` (an update, or raw bytes) to the webhook once, outside the queue, with
        the secret the bot set (default), another one, or none (``secret=None``)."""
        target = self.webhook_target()
        assert target is not None, f"no routed webhook is set ({self._webhook_url!r})"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        secret = self._webhook_secret if secret == _USE_SET_SECRET else secret
        if secret is not None:
            headers[SECRET_HEADER] = secret
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=data, headers=headers) as response,
        ):
            return response.status, await response.text()

    def _set_webhook(self, params: JsonDict) -> bool:
        url = str(params.get("url") or "")
        if url and not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        self._webhook_url = url
        self._webhook_secret = None if secret is None else str(secret)
        self._webhook_error = None
        connections = params.get("max_connections")
        self._webhook_connections = connections if isinstance(connections, int) else 40
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = params["allowed_updates"]
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if url and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.create_task(self._push_updates())
        self._signal_update()
        return True

    def _delete_webhook(self, params: JsonDict) -> bool:
        self._webhook_url = ""
        self._webhook_secret = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._signal_update()
        return True

    def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url:
            info["max_connections"] = self._webhook_connections
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    async def stop_pushing(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _push_updates(self) -> None:
        in_flight: dict[int, asyncio.Task[None]] = {}
        async with aiohttp.ClientSession() as session:
            try:
                while not self._stopping:
                    signal = self._update_signal
                    target = self.webhook_target() if self._webhook_url else None
                    for update in self._deliverable(MAX_UPDATES_LIMIT) if target else []:
                        update_id = int(update["update_id"])
                        # At most max_connections posts at once, as Telegram does.
                        if len(in_flight) >= self._webhook_connections:
                            break
                        if update_id not in in_flight:
                            task = asyncio.create_task(self._push_one(session, target, update))
                            in_flight[update_id] = task
                            task.add_done_callback(lambda _, uid=update_id: in_flight.pop(uid))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(signal.wait(), PUSH_TICK)
            finally:
                for task in list(in_flight.values()):
                    task.cancel()
                await asyncio.gather(*in_flight.values(), return_exceptions=True)

    async def _push_one(
        self, session: aiohttp.ClientSession, target: str, update: JsonDict
    ) -> None:
        update_id = int(update["update_id"])
        headers = {SECRET_HEADER: self._webhook_secret} if self._webhook_secret else {}
        try:
            async with session.post(target, json=update, headers=headers) as response:
                status = response.status
                await response.read()
        except aiohttp.ClientError as exc:
            status, error = -1, f"Connection failed: {exc.__class__.__name__}"
        else:
            error = f"Wrong response from the webhook: {status} {response.reason}"
        self.webhook_posts.append(WebhookPost(update_id, status))
        if 200 <= status < 300:
            self._updates = [u for u in self._updates if u["update_id"] != update_id]
            self._signal_change()
            return
        self._webhook_error = (int(time.time()), error)
        self._signal_change()
        await asyncio.sleep(RETRY_PAUSE)  # then the pusher offers it again
