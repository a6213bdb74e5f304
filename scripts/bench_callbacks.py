"""`make bench` section 9: delivery callbacks and the metrics middleware.

- the cost of the metrics middleware per update, in this process (a micro benchmark: the same
  no-op handler called through it and directly), against the bot's CPU per update;
- the time from the gateway's delivery callback to the user's notification: the bot runs as a
  real process with its web server and PUBLIC_BASE_URL on 127.0.0.1; each of N users sends one
  SMS through the dialog, then the fake gateway marks it REJECTED and calls its callback URL,
  and the time is taken until the fake Telegram receives the result message. Users differ so
  that the notifier's 1 message a second per chat does not enter the figure. Polling would
  have told the same result 30 s after the send at the earliest (DELIVERY_FIRST_CHECK).

Kept apart from scripts/bench.py (already long); it is handed what it needs from there.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiogram.types import Update

from bot.middlewares import MetricsMiddleware
from tests.e2e.harness import ChatUser

if TYPE_CHECKING:
    from scripts.bench import Bench

Seed = Callable[[Path, Iterable[int], str], Awaitable[None]]
Env = Callable[..., dict[str, str]]

CALLBACK_TOKEN: Final = "bench-callback-token-0000004"
CALLBACK_USERS_FROM: Final = 9_800_001
PHONE: Final = "998901234567"
MIDDLEWARE_ITERATIONS: Final = 100_000
MIDDLEWARE_TARGET: Final = 50e-6  # 1 % of the ~5 ms of CPU an update costs (README)
NOTIFY_P95_TARGET: Final = 1.0
WAIT: Final = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def middleware_cost(iterations: int = MIDDLEWARE_ITERATIONS) -> float:
    """Seconds the metrics middleware adds to one update (best of three runs)."""
    update = Update.model_validate(
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 1, "type": "private"},
                "text": "/balance",
            },
        }
    )
    middleware = MetricsMiddleware()

    async def handler(event: Any, data: dict[str, Any]) -> None:
        return None

    async def direct() -> float:
        started = time.perf_counter()
        for _ in range(iterations):
            await handler(update, {})
        return time.perf_counter() - started

    async def through() -> float:
        started = time.perf_counter()
        for _ in range(iterations):
            await middleware(handler, update, {})
        return time.perf_counter() - started

    best = min([await through() - await direct() for _ in range(3)])
    return max(best, 0.0) / iterations


async def measure_callbacks(bench: Bench, *, seed: Seed, env: Env) -> None:
    n = 20 if bench.profile.users >= 200 else 8
    bench.say(f"9. delivery callbacks: {n} users, one SMS each; metrics middleware cost")
    cost = await middleware_cost()
    bench.add(
        "9",
        "metrics middleware per update (in-process)",
        f"{cost * 1e6:.1f} µs",
        f"< {MIDDLEWARE_TARGET * 1e6:.0f} µs (1 % of ~5 ms CPU per update)",
        "ok" if cost < MIDDLEWARE_TARGET else "MISSED",
        seconds=cost,
    )
    telegram, devsms = await bench.fakes()
    devsms.add_account(CALLBACK_TOKEN, balance=1_000_000, sms_price=50)
    database = bench.root / "callbacks-seed" / "bot.sqlite3"
    ids = [CALLBACK_USERS_FROM + k for k in range(n)]
    await seed(database, ids, CALLBACK_TOKEN)
    port = free_port()
    extra: Mapping[str, str] = {
        "WEB_PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DELIVERY_FIRST_CHECK": "3600",  # polling must not find the result first
        "DEFAULT_LANGUAGE": "en",
    }
    notified: list[float] = []
    answered: list[float] = []
    try:
        await bench.start_process(
            "callbacks", telegram, devsms, database=database, env=env(**extra)
        )
        sms_ids = [await _send_one(ChatUser(telegram, user_id=uid), devsms) for uid in ids]
        for uid, sms_id in zip(ids, sms_ids, strict=True):
            devsms.set_status(sms_id, "REJECTED")
            future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
            telegram.waiters[uid] = future
            started = time.monotonic()
            status = await devsms.call_back(sms_id)
            answered.append(time.monotonic() - started)
            if status != 204:
                raise AssertionError(f"callback answered {status}")
            arrived, text = await asyncio.wait_for(future, WAIT)
            if "rejected" not in text:
                raise AssertionError(f"unexpected notification: {text!r}")
            notified.append(arrived - started)
    finally:
        await bench.stop_all()
        await telegram.stop()
        await devsms.stop()
    notified.sort()
    answered.sort()
    p50, p95 = _pct(notified, 50), _pct(notified, 95)
    bench.add(
        "9",
        "callback → user's notification p50 / p95",
        f"{p50 * 1000:.0f} / {p95 * 1000:.0f} ms",
        f"p95 < {NOTIFY_P95_TARGET * 1000:.0f} ms (polling: ≥ 30 s after the send)",
        "ok" if p95 < NOTIFY_P95_TARGET else "MISSED",
        samples=notified,
    )
    bench.add(
        "9",
        "callback endpoint's answer p50 / max",
        f"{_pct(answered, 50) * 1000:.1f} / {answered[-1] * 1000:.1f} ms",
        "answers before any gateway call",
        "—",
        samples=answered,
    )


async def _send_one(user: ChatUser, devsms: Any) -> int:
    text = f"bench callback {user.user_id}"
    preview = await user.ask(f"/send {PHONE} {text}", "Check before sending")
    user.tap(preview, "✅ Send")
    await user.wait_edited(preview, "Sent.")
    return int(next(sms.sms_id for sms in devsms.sent if sms.message == text))


def _pct(values: list[float], pct: float) -> float:
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values)) - 1))
    return values[index]
