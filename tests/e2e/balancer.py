"""A round-robin load balancer on 127.0.0.1 in front of several bot replicas' web servers.

The fake Telegram posts each webhook update to it, and it hands them to the replicas in turn,
as a load balancer would. A replica that refuses the connection (stopped, killed) is skipped:
the next one answers. When none takes the request, or one dies while answering it, the answer
is 502, and Telegram (the fake too: tests/fakes/telegram/webhook.py) sends the update again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Final

import aiohttp
from aiohttp import web

from tests.e2e.harness import free_port

# Headers that belong to one hop, not to the request the replica should see.
_HOP_HEADERS: Final = frozenset({"host", "content-length", "connection", "transfer-encoding"})


@dataclass
class Balancer:
    """Round robin over the replicas' web servers; counts what each one answered, and the
    requests none of them did (``failed``)."""

    targets: list[str]
    port: int = field(default_factory=free_port)
    handed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        turn = itertools.cycle(range(len(self.targets)))
        session = aiohttp.ClientSession()

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            first = next(turn)
            for offset in range(len(self.targets)):
                target = self.targets[(first + offset) % len(self.targets)]
                try:
                    async with session.post(
                        target + request.path, data=body, headers=headers
                    ) as answer:
                        self.handed[target] = self.handed.get(target, 0) + 1
                        return web.Response(status=answer.status, body=await answer.read())
                except aiohttp.ClientConnectorError:
                    # Refused: nothing listens there (a stopped replica); the request never
                    # reached it, so the next one may take it.
                    self.skipped[target] = self.skipped.get(target, 0) + 1
                except aiohttp.ClientError:
                    # It died while answering: it may have taken the update. Telegram resends
                    # it, and the replicas drop an update they took already.
                    break
            self.failed += 1
            return web.Response(status=502, text="no replica answered")

        async def close_session(_: web.Application) -> None:
            await session.close()

        app = web.Application()
        app.router.add_post("/{tail:.*}", forward)
        app.on_cleanup.append(close_session)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"
