"""A round-robin load balancer on 127.0.0.1 in front of several replicas' web servers, as
Caddy's `reverse_proxy` over the replicas is in compose.yaml: the fake Telegram posts each
webhook update to it, and it hands them to the replicas in turn. It counts what each replica
got, so a test or the bench can tell that every replica took a share. The fake Telegram resends
an update after a 502 (tests/fakes/telegram/webhook.py), as Telegram does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final

import aiohttp
from aiohttp import web

from tests.e2e.harness import free_port

# Hop-by-hop and per-connection headers: aiohttp sets its own for the forwarded request.
_NOT_FORWARDED: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class Balancer:
    """POSTs on any path go to the next target, with their body and headers (the webhook's
    secret header among them); the target's status and body come back."""

    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = list(targets)
        self.port = free_port()
        self.handed: dict[str, int] = dict.fromkeys(self.targets, 0)
        # Connections a target refused (the request went to the next one instead).
        self.refused: dict[str, int] = dict.fromkeys(self.targets, 0)
        self._turn = itertools.cycle(self.targets)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        # A replica that does not accept connections (starting, stopped) is passed over for
        # the next one, as Caddy's lb_try_duration does; nothing reached it, so nothing is
        # repeated.
        for _ in self.targets:
            target = next(self._turn)
            try:
                async with self._session.post(
                    target + request.path_qs, data=body, headers=headers
                ) as answer:
                    self.handed[target] += 1
                    return web.Response(status=answer.status, body=await answer.read())
            except aiohttp.ClientConnectorError:
                self.refused[target] += 1
                continue
            except aiohttp.ClientError:
                # It went away while answering (killed, stopping): it may have taken the
                # update, so no other replica gets it now. Telegram resends it after the 502,
                # and a replica drops an update one of them took already (bot/web/webhook.py).
                return web.Response(status=502, text="the replica did not answer")
        return web.Response(status=502, text="no replica accepts connections")

    async def start(self) -> None:
        # No per-host connection cap: the fake Telegram bounds what is in flight (40).
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
