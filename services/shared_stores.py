"""What one process keeps in memory between a user's updates, kept in Redis instead when
several replicas take the updates (REDIS_URL; bot/replicas.py chooses). A load balancer may
hand each step of a dialog to another replica, so each of these must be readable from all:

- `RedisCodeKeeper`: the /otp code between the code step and Send (services.otp.CodeKeeper in
  one process). Never FSM data, which outlives an abandoned dialog: a key with a TTL of an
  hour, encrypted with the user's vault key, so neither Redis nor its dumps show a code.
- `RedisLists`: the parsed bulk list between the dialog's steps (services.bulk_plan.SourceCache
  in one process): one list per user, in the worker's packed form (no pickle: a Redis value
  must never be able to run code), for an hour, and within a byte budget (BULK_CACHE_MB) kept
  by one Lua script that drops the least recently stored lists first.
- `RedisTaps`: each user's chart taps numbered across replicas (services/chart_desk.py), so a
  chart drawn for an older tap on one replica does not replace the newer tap's.
- `RedisRuns`: each user's one /export at a time, across replicas (services/export_desk.py).
- `RedisBalances`: the balance a preview shows without a gateway call, for a minute
  (services.accounts.Accounts keeps it in a dict in one process); a send on one replica drops
  it for all, so the next preview anywhere reads the gateway again.

Every method is one or two round trips; none waits for anything else.
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
import sys
from array import array
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.bulk_plan import PackedSource, Source
from services.devsms import Balance
from services.otp import CODE_KEEP_SECONDS
from services.spreadsheet import Recipients
from services.vault import TokenVault, VaultError

logger = logging.getLogger(__name__)

LIST_SECONDS: Final = 3600
BALANCE_SECONDS: Final = 60
# A list alone larger than this share of the budget is not stored: another replica reads the
# file again from Telegram (as after a restart) rather than push every other list out.
LIST_SHARE_OF_BUDGET: Final = 4

_BALANCE: Final = TypeAdapter(Balance)
_HEADER_LENGTH: Final = struct.Struct(">I")
_BUFFERS: Final = ("valid_rows", "valid", "valid_ends", "invalid_rows", "invalid", "invalid_ends")

# KEYS: the index (user → when stored), the sizes (user → bytes), this user's list.
# ARGV: user id, the packed list, ttl in ms, budget in bytes, the key prefix of lists.
# Redis's own clock decides what expired, so replicas with skewed clocks agree.
_STORE_LIST: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)) do
  redis.call('ZREM', KEYS[1], old)
  redis.call('HDEL', KEYS[2], old)
end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], string.len(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local total = 0
for _, size in ipairs(redis.call('HVALS', KEYS[2])) do total = total + tonumber(size) end
local budget = tonumber(ARGV[4])
local dropped = 0
while total > budget and redis.call('ZCARD', KEYS[1]) > 1 do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if oldest == ARGV[1] then break end
  total = total - tonumber(redis.call('HGET', KEYS[2], oldest) or '0')
  redis.call('ZREM', KEYS[1], oldest)
  redis.call('HDEL', KEYS[2], oldest)
  redis.call('DEL', ARGV[5] .. oldest)
  dropped = dropped + 1
end
return dropped
"""


class UnreadablePack(ValueError):
    """A stored list that is not what pack_list writes."""


def pack_list(packed: PackedSource) -> bytes:
    """A PackedSource as bytes: a JSON header (the Source's fields, the buffers' lengths)
    and the buffers. Plain data only: reading it back runs no code, unlike pickle."""
    source = packed.source
    buffers = [bytes(getattr(packed, name)) for name in _BUFFERS]
    header = {
        "key": source.key,
        "file_name": source.file_name,
        "file_format": source.file_format,
        "columns": source.columns,
        "phone_column": source.phone_column,
        "rows_read": source.rows_read,
        "approx_bytes": source.approx_bytes,
        "duplicates": source.recipients.duplicates,
        "byteorder": sys.byteorder,
        "lengths": [len(buffer) for buffer in buffers],
    }
    head = json.dumps(header, ensure_ascii=False).encode()
    return b"".join([_HEADER_LENGTH.pack(len(head)), head, *buffers])


def unpack_list(blob: bytes) -> PackedSource:
    try:
        (head_length,) = _HEADER_LENGTH.unpack_from(blob)
        start = _HEADER_LENGTH.size + head_length
        header: dict[str, Any] = json.loads(blob[_HEADER_LENGTH.size : start])
        parts: dict[str, Any] = {}
        for name, length in zip(_BUFFERS, header["lengths"], strict=True):
            chunk = blob[start : start + int(length)]
            start += int(length)
            if name in ("valid", "invalid"):
                parts[name] = chunk
                continue
            numbers = array("q")
            numbers.frombytes(chunk)
            if header["byteorder"] != sys.byteorder:
                numbers.byteswap()
            parts[name] = numbers
        if start != len(blob):
            raise ValueError("trailing bytes")
        source = Source(
            key=str(header["key"]),
            file_name=header["file_name"],
            file_format=str(header["file_format"]),
            columns=[str(column) for column in header["columns"]],
            phone_column=str(header["phone_column"]),
            rows_read=int(header["rows_read"]),
            recipients=Recipients(duplicates=int(header["duplicates"])),
            approx_bytes=int(header["approx_bytes"]),
        )
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise UnreadablePack(str(exc)) from None
    return PackedSource(source=source, **parts)


class RedisCodeKeeper:
    """services.otp.CodeStore in Redis: one code per user, for its dialog (`draft`), an hour."""

    def __init__(
        self, redis: Redis, prefix: str, vault: TokenVault, keep: float = CODE_KEEP_SECONDS
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:otp:"
        self._vault = vault
        self._keep_ms = int(keep * 1000)

    async def put(self, user_id: int, draft: int, code: str) -> None:
        sealed = self._vault.encrypt(user_id, f"{draft}:{code}")
        await self._redis.set(self._prefix + str(user_id), sealed, px=self._keep_ms)

    async def get(self, user_id: int, draft: int) -> str | None:
        sealed = await self._redis.get(self._prefix + str(user_id))
        if sealed is None:
            return None
        try:
            kept_draft, _, code = self._vault.decrypt(user_id, sealed).partition(":")
        except VaultError:
            return None  # the keys changed meanwhile: the dialog asks for the code again
        return code if kept_draft == str(draft) else None

    async def drop(self, user_id: int) -> None:
        await self._redis.delete(self._prefix + str(user_id))


class RedisLists:
    """Parsed bulk lists shared by the replicas; see the module docstring."""

    def __init__(self, redis: Redis, prefix: str, budget: int) -> None:
        self._redis = redis
        self._index = f"{prefix}:lists:index"
        self._sizes = f"{prefix}:lists:sizes"
        self._prefix = f"{prefix}:lists:user:"
        self._budget = budget
        self._store = redis.register_script(_STORE_LIST)

    async def save(self, user_id: int, packed: PackedSource) -> None:
        """Keeps the list for the user's next step on any replica. A failure is logged, not
        raised: the next step then reads the file again, as after a restart."""
        blob = pack_list(packed)
        if len(blob) * LIST_SHARE_OF_BUDGET > self._budget:
            await self.forget(user_id)
            return
        try:
            dropped = await self._store(
                keys=[self._index, self._sizes, self._prefix + str(user_id)],
                args=[user_id, blob, LIST_SECONDS * 1000, self._budget, self._prefix],
            )
        except RedisError as exc:
            logger.warning("bulk list of user %s not shared: %s", user_id, exc)
            return
        if dropped:
            logger.info("%s shared bulk lists dropped to stay within the budget", dropped)

    async def load(self, user_id: int, key: str) -> PackedSource | None:
        """The user's list if it is the one the dialog read (`key`, the file's hash)."""
        try:
            blob = await self._redis.get(self._prefix + str(user_id))
        except RedisError as exc:
            logger.warning("shared bulk list of user %s not read: %s", user_id, exc)
            return None
        if blob is None:
            return None
        try:
            packed = unpack_list(blob)
        except UnreadablePack:
            logger.warning("shared bulk list of user %s unreadable: dropped", user_id)
            await self.forget(user_id)
            return None
        return packed if packed.source.key == key else None

    async def forget(self, user_id: int) -> None:
        try:
            await self._redis.delete(self._prefix + str(user_id))
        except RedisError as exc:
            logger.warning("shared bulk list of user %s not dropped: %s", user_id, exc)


class RedisBalances:
    """The balances previews show, for a minute, the same on every replica. Redis errors are
    logged, never raised: a balance not found is read from the gateway, and dropping one is
    done after a send, whose outcome the user must be told whatever happens here."""

    def __init__(self, redis: Redis, prefix: str, keep: float = BALANCE_SECONDS) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:balance:"
        self._keep_ms = int(keep * 1000)

    async def put(self, user_id: int, balance: Balance) -> None:
        try:
            await self._redis.set(
                self._prefix + str(user_id), _BALANCE.dump_json(balance), px=self._keep_ms
            )
        except RedisError as exc:
            logger.warning("balance of user %s not shared: %s", user_id, exc)

    async def get(self, user_id: int) -> Balance | None:
        try:
            raw = await self._redis.get(self._prefix + str(user_id))
        except RedisError as exc:
            logger.warning("shared balance of user %s not read: %s", user_id, exc)
            return None
        if raw is None:
            return None
        try:
            return _BALANCE.validate_json(raw)
        except ValidationError:
            return None

    async def drop(self, user_id: int) -> None:
        try:
            await self._redis.delete(self._prefix + str(user_id))
        except RedisError as exc:
            # It expires within BALANCE_SECONDS anyway.
            logger.warning("shared balance of user %s not dropped: %s", user_id, exc)


class RedisTaps:
    """services.chart_desk.LatestTaps in Redis: one counter per user, for an hour."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:chart-tap:"

    async def take(self, user_id: int) -> int:
        key = self._prefix + str(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            number, _ = await pipe.execute()
        return int(number)

    async def newest(self, user_id: int) -> int | None:
        try:
            found = await self._redis.get(self._prefix + str(user_id))
        except RedisError as exc:
            # Not known: the chart is shown (at worst an older one, as without replicas).
            logger.warning("chart taps of user %s not read: %s", user_id, exc)
            return None
        return None if found is None else int(found)


# KEYS: the user's export slot; ARGV: this claim's ticket, ms to keep ('' : let go).
_KEEP_OR_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
# A running export renews its claim every minute (services/export_desk.KEEP_ALIVE); one whose
# replica died frees the user's slot after this long.
EXPORT_CLAIM_MS: Final = 180_000


class RedisRuns:
    """services.export_desk.SharedRuns in Redis: one export per user across replicas."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:export:"
        self._script = redis.register_script(_KEEP_OR_RELEASE)

    async def claim(self, user_id: int) -> str | None:
        ticket = secrets.token_hex(8)
        taken = await self._redis.set(
            self._prefix + str(user_id), ticket, nx=True, px=EXPORT_CLAIM_MS
        )
        return ticket if taken else None

    async def keep(self, user_id: int, ticket: str) -> None:
        await self._script(keys=[self._prefix + str(user_id)], args=[ticket, EXPORT_CLAIM_MS])

    async def release(self, user_id: int, ticket: str) -> None:
        await self._script(keys=[self._prefix + str(user_id)], args=[ticket, ""])
