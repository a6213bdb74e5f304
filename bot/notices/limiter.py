"""Telegram's limits for the bot as a whole, shared by every replica (REDIS_URL set).

Each replica's Notifier paces its own sends (bot/notices/notifier.py); N replicas pacing at
NOTIFY_RATE each would send N times that. So before each send the notifier takes a slot here:
one Redis script checks and books, atomically,

- the bot's next free moment: slots `1/rate` apart for all replicas together (one token, no
  bursts, as in the notifier), so no second ever sees more than `rate` messages;
- the chat's next free moment: `per_chat_interval` after its last message from any replica;
- for groups, the last minute's sends (at most `group_per_minute`).

It answers "go" or how long to wait and whether the whole bot or only this chat must wait.
Times come from Redis's own clock (TIME), so replicas with skewed clocks agree; tests pass
their own `now`.

Written here, not taken from a library: aiogram has no limiter for sending (its throttling
examples drop incoming updates), and the Redis rate limiters on PyPI count requests in
windows per key, which lets two windows' worth through at their border; this spacing is the
notifier's own rule, kept across processes in a few lines of Lua.
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

GROUP_WINDOW_MS: Final = 60_000
# While Redis does not answer, the bot waits this long before asking again (sending without
# the shared limit could break it for every replica).
UNREACHABLE_WAIT: Final = 1.0

# KEYS: the bot's next free moment, the chat's, the group's recent sends (a sorted set).
# ARGV: ms between the bot's sends, ms between one chat's sends, sends per group per window
# (0: not a group), the window in ms, now in ms ('' : Redis's clock), a unique member.
# Returns {0, 0} for go, else {ms to wait, 1 when the whole bot waits, 2 when the chat does}.
_TAKE: Final = """
local now
if ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local bot_next = tonumber(redis.call('GET', KEYS[1]) or '0')
if bot_next > now then return {bot_next - now, 1} end
local chat_wait = tonumber(redis.call('GET', KEYS[2]) or '0') - now
local group_limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
if group_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  if redis.call('ZCARD', KEYS[3]) >= group_limit then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    chat_wait = math.max(chat_wait, tonumber(oldest[2]) + window - now)
  end
end
if chat_wait > 0 then return {chat_wait, 2} end
local interval = tonumber(ARGV[1])
local per_chat = tonumber(ARGV[2])
redis.call('SET', KEYS[1], now + interval, 'PX', interval + 1000)
if per_chat > 0 then
  redis.call('SET', KEYS[2], now + per_chat, 'PX', per_chat + 1000)
end
if group_limit > 0 then
  redis.call('ZADD', KEYS[3], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[3], window)
end
return {0, 0}
"""


class Wait(enum.Enum):
    NONE = 0
    BOT = 1
    """Every chat waits: another replica took the bot's slot."""
    CHAT = 2
    """Only this chat waits (its own spacing, or the group's minute)."""


@dataclass(frozen=True, slots=True)
class Slot:
    wait: Wait
    seconds: float = 0.0


GO: Final = Slot(Wait.NONE)


class SharedLimit(Protocol):
    async def take(self, chat_id: int, *, group_limit: int = 0) -> Slot: ...


class RedisLimiter:
    """The shared limit in Redis; `take` books a slot or says how long to wait."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        bot_id: int,
        *,
        rate: float,
        per_chat_interval: float = 1.0,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        """`clock_ms`: for tests, the time in ms the script takes instead of Redis's."""
        if rate <= 0 or per_chat_interval < 0:
            raise ValueError("rate > 0, per_chat_interval >= 0")
        self._redis = redis
        self._prefix = f"{prefix}:limit:{bot_id}"
        self._interval_ms = max(1, math.ceil(1000 / rate))
        self._per_chat_ms = math.ceil(per_chat_interval * 1000)
        self._script = redis.register_script(_TAKE)
        # Imported with the client: the notifier of one process never loads Redis.
        from redis.exceptions import RedisError

        self._unreachable = RedisError
        self._failing = False
        self._clock_ms = clock_ms

    async def take(self, chat_id: int, *, group_limit: int = 0, now_ms: int | None = None) -> Slot:
        """`group_limit` > 0 for a group chat (its sends per minute); `now_ms` for tests."""
        keys = [f"{self._prefix}:bot", f"{self._prefix}:chat:{chat_id}"]
        keys.append(f"{self._prefix}:group:{chat_id}")
        args = [
            self._interval_ms,
            self._per_chat_ms,
            group_limit,
            GROUP_WINDOW_MS,
            now_ms if now_ms is not None else self._clock_ms() if self._clock_ms else "",
            secrets.token_hex(8),
        ]
        try:
            wait_ms, kind = await self._script(keys=keys, args=args)
        except self._unreachable as exc:
            if not self._failing:
                logger.warning("shared send limit unreachable, holding sends: %s", exc)
            self._failing = True
            return Slot(Wait.BOT, UNREACHABLE_WAIT)
        if self._failing:
            logger.info("shared send limit reachable again")
            self._failing = False
        return GO if int(kind) == 0 else Slot(Wait(int(kind)), int(wait_ms) / 1000)
