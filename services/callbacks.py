"""Delivery reports pushed by the gateway, as hints that make the tracker look now.

When PUBLIC_BASE_URL is set, every send (single, OTP, bulk row, and so scheduled ones, which go
through the same senders) passes `callback_url` = PUBLIC_BASE_URL + /devsms/callback/<token>,
the token fresh from `secrets.token_urlsafe` for that one send. Only its SHA-256 is stored, in
the transaction that records the send (storage/callbacks.py), so neither the database nor a
log line holds a usable URL.

The body of the gateway's call is undocumented (shared/devsms-api.md): it is a hint only. The
token says which send it is about; whatever id the body carries is logged, never trusted, and
the truth comes from `get_status` through the delivery tracker, which reports a final status
exactly as a polled one (DeliveryTracker.check_now), once. A bulk row's callback wakes its
job's delivery report instead, which reads the history (services/bulk_delivery.py). Polling
stays the fallback: an account whose callbacks arrived lately gets its first poll later
(`first_check`). A callback for a send whose answer was lost ('unknown') changes nothing: the
history reconciliation settles it as before.

The web endpoint (bot/web/delivery.py) only calls :meth:`CallbackInbox.offer`, which answers
at once: the lookup and the gateway call happen in the inbox's task. An unknown token, or one
whose send is already settled (a replay), changes nothing; the endpoint answers both alike.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from services import metrics
from services.devsms import mark_background
from storage.callbacks import CallbackRepo, CallbackTarget

logger = logging.getLogger(__name__)

CALLBACK_PATH: Final = "/devsms/callback/"
TOKEN_BYTES: Final = 32
TOKEN_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)
# Once a callback came for an account within CALLBACKS_TRUSTED_FOR, its sends' first poll
# waits FIRST_CHECK_WITH_CALLBACKS instead of DELIVERY_FIRST_CHECK: the push usually comes first.
CALLBACKS_TRUSTED_FOR: Final = 3600.0
FIRST_CHECK_WITH_CALLBACKS: Final = timedelta(minutes=5)
PER_TOKEN_INTERVAL: Final = 2.0  # one accepted callback per token per 2 s
OVERALL_RATE: Final = 50.0  # callbacks a second over all tokens (burst: one second's worth)
QUEUE_SIZE: Final = 1000
# A callback may overtake the recording of the send's answer: looked at again this often.
NOT_YET_RETRIES: Final = (0.5, 1.0, 2.0, 5.0)
# A token outlives tracking (24 h after the send, or after a bulk job's end) by a margin.
KEEP_TOKENS_FOR: Final = timedelta(days=3)
PRUNE_EVERY: Final = 3600.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class CallbackLink:
    url: str
    token_hash: str

    def __repr__(self) -> str:  # the URL holds the token
        return "CallbackLink(...)"


class CallbackLinks:
    """Makes per-send callback URLs and remembers which accounts' callbacks work."""

    def __init__(
        self,
        base_url: str,
        *,
        trusted_for: float = CALLBACKS_TRUSTED_FOR,
        first_check_with_callbacks: timedelta = FIRST_CHECK_WITH_CALLBACKS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prefix = base_url.rstrip("/") + CALLBACK_PATH
        self._trusted_for = trusted_for
        self._first_check = first_check_with_callbacks
        self._clock = clock
        self._seen: dict[int, float] = {}  # user id -> when their last real callback came

    def new(self) -> CallbackLink:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        return CallbackLink(self._prefix + token, token_hash(token))

    def received(self, user_id: int) -> None:
        self._seen[user_id] = self._clock()

    def working(self, user_id: int) -> bool:
        seen = self._seen.get(user_id)
        return seen is not None and self._clock() - seen < self._trusted_for

    def first_check(self, user_id: int, default: timedelta) -> timedelta:
        """When a fresh SMS of the user is first polled."""
        return max(default, self._first_check) if self.working(user_id) else default


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    MALFORMED = "malformed"  # not a token this bot could have made
    LIMITED = "limited"  # too many for this token, or overall
    BUSY = "busy"  # the queue is full: polling will find the result


class CheckResult(enum.Enum):
    CHECKING = "checking"  # a status check was made due now
    NOTHING = "nothing"  # settled already, or not tracked: a replay changes nothing
    NOT_YET = "not_yet"  # the send's answer is not recorded yet


class Checker(Protocol):
    """What the inbox needs from the delivery tracker (services/tracker.py)."""

    async def check_now(self, target: CallbackTarget) -> CheckResult: ...


@dataclass(frozen=True, slots=True)
class _Call:
    token_hash: str
    hint: str | None
    tries: int = 0


class CallbackInbox:
    """Takes callbacks from the endpoint without waiting, and works them off in one task."""

    def __init__(
        self,
        repo: CallbackRepo,
        links: CallbackLinks,
        *,
        per_token_interval: float = PER_TOKEN_INTERVAL,
        overall_rate: float = OVERALL_RATE,
        queue_size: int = QUEUE_SIZE,
        retries: tuple[float, ...] = NOT_YET_RETRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repo = repo
        self._links = links
        self._per_token = per_token_interval
        self._rate = overall_rate
        self._retries = retries
        self._clock = clock
        self._queue: asyncio.Queue[_Call] = asyncio.Queue(maxsize=queue_size)
        self._last: dict[str, float] = {}  # token hash -> when it was last accepted
        self._allowance = overall_rate
        self._allowance_at = clock()
        self._checker: Checker | None = None
        self._task: asyncio.Task[None] | None = None
        self._later: set[asyncio.TimerHandle] = set()

    # --- the endpoint's side: synchronous, no I/O -----------------------------------------

    def offer(self, token: str, hint: str | None = None) -> Verdict:
        verdict = self._take(token, hint)
        metrics.CALLBACKS.labels(verdict.value).inc()
        return verdict

    def _take(self, token: str, hint: str | None) -> Verdict:
        if TOKEN_SHAPE.fullmatch(token) is None:
            return Verdict.MALFORMED
        now = self._clock()
        if not self._overall_allows(now):
            return Verdict.LIMITED
        hashed = token_hash(token)
        last = self._last.get(hashed)
        if last is not None and now - last < self._per_token:
            return Verdict.LIMITED
        try:
            self._queue.put_nowait(_Call(hashed, hint))
        except asyncio.QueueFull:
            return Verdict.BUSY
        self._last[hashed] = now
        if len(self._last) > 4 * self._queue.maxsize:
            self._forget_before(now - self._per_token)
        return Verdict.ACCEPTED

    def _overall_allows(self, now: float) -> bool:
        # A token bucket holding at most one second's worth.
        self._allowance = min(
            self._rate, self._allowance + (now - self._allowance_at) * self._rate
        )
        self._allowance_at = now
        if self._allowance < 1.0:
            return False
        self._allowance -= 1.0
        return True

    def _forget_before(self, moment: float) -> None:
        self._last = {key: at for key, at in self._last.items() if at >= moment}

    # --- the worker ------------------------------------------------------------------------

    def start(self, checker: Checker) -> None:
        """Starts working off the queue (callbacks offered before wait for this)."""
        self._checker = checker
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="delivery-callbacks")

    async def stop(self) -> None:
        for handle in self._later:
            handle.cancel()
        self._later.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        mark_background()  # the status calls leave each token a slot for its owner's taps
        pruned = -PRUNE_EVERY
        while True:
            if self._clock() - pruned >= PRUNE_EVERY:
                pruned = self._clock()
                await self._prune()
            call = await self._queue.get()
            try:
                await self.handle(call)
            except Exception:
                logger.exception("a delivery callback could not be handled")

    async def _prune(self) -> None:
        before = (datetime.now(UTC) - KEEP_TOKENS_FOR).isoformat(timespec="seconds")
        try:
            if gone := await self._repo.prune(before):
                logger.info("%s old delivery-callback tokens forgotten", gone)
        except Exception:
            logger.exception("old delivery-callback tokens not pruned")

    async def handle(self, call: _Call) -> CheckResult | None:
        """Looks the token up and has the tracker check its send now; None for an unknown
        token (nothing happens)."""
        assert self._checker is not None
        target = await self._repo.find(call.token_hash)
        if target is None:
            metrics.CALLBACKS.labels("unknown").inc()
            logger.info("delivery callback with an unknown token: ignored")
            return None
        if call.tries == 0:
            self._links.received(target.user_id)
            logger.debug("delivery callback of user %s (hint %s)", target.user_id, call.hint)
        result = await self._checker.check_now(target)
        metrics.CALLBACKS.labels(result.value).inc()
        if result is CheckResult.NOT_YET and call.tries < len(self._retries):
            self._retry(call)
        return result

    def _retry(self, call: _Call) -> None:
        again = _Call(call.token_hash, call.hint, call.tries + 1)

        def put() -> None:
            self._later.discard(handle)
            try:
                self._queue.put_nowait(again)
            except asyncio.QueueFull:
                logger.info("delivery callback dropped (queue full); polling will find it")

        handle = asyncio.get_running_loop().call_later(self._retries[call.tries], put)
        self._later.add(handle)
