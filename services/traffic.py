"""Keeps the local record of each account's traffic (storage/traffic.py) up to date.

Every `interval` seconds each user with a working token gets one round of at most `max_pages`
history calls (``get_history``, through the one cursor of services/history_pages.py):

1. From the newest entry down, until a page holds an entry already stored and nothing older
   can still change status: no stored SMS of the last OPEN_HORIZON that is not final is older
   than that page. New entries are stored, known ones take the status the history shows now.
2. With the calls left, older history the first rounds could not reach: the round goes on at
   the offset where the last one stopped (moved down by the entries that arrived on top
   since), until the history ends or reaches BACKFILL_DAYS back.

A burst of new SMS larger than one round's calls leaves a gap under them; the round notes
where it stopped, and the next ones read on from there before going deeper.

After its round a user's new SMS are offered to the `after_round` hooks (the failure watch).
Handlers never await any of this; it runs as a background task (bot/background.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from services.access import OPEN, AccessPolicy
from services.accounts import Accounts, NoToken
from services.devsms import (
    HISTORY_MAX_LIMIT,
    DevsmsError,
    DevsmsGatewayError,
    DevsmsUnauthorized,
    DevsmsUnavailable,
    SmsRecord,
    mark_background,
)
from services.health import GatewayHealth
from services.history_pages import HistoryCursor
from services.rounds import Rounds
from storage import yield_to_users
from storage.alerts import AlertRepo, WatchTarget
from storage.traffic import NewRecord, TrafficRepo

logger = logging.getLogger(__name__)

# Statuses stop changing within a day (Eskiz: EXPIRED after 24 h offline); older SMS that are
# still "waiting" are not chased any more.
OPEN_HORIZON: Final = timedelta(days=2)
# The bot's own sends whose answer came after the history showed them are re-matched this long.
REMATCH_WINDOW: Final = timedelta(days=1)
PAGE_SIZE: Final = 500

AfterRound = Callable[[WatchTarget, datetime], Awaitable[None]]
# Users waiting for their first look at most; more (a flood of new tokens within one interval)
# wait for the next ordinary round.
FIRST_LOOKS_MAX: Final = 10_000


class FirstLooks:
    """Users whose account the sync reads before its next round: a token just connected, so
    that /stats and /export have something to show within a minute, not after up to
    TRAFFIC_SYNC_INTERVAL. `ask` never blocks: the token handler only leaves a note."""

    def __init__(self, limit: int = FIRST_LOOKS_MAX) -> None:
        self._limit = limit
        self._users: dict[int, None] = {}  # insertion order: first asked, first read
        self._event: asyncio.Event | None = None

    def ask(self, user_id: int) -> None:
        if user_id not in self._users and len(self._users) >= self._limit:
            logger.warning("first looks: %s waiting; user %s waits a round", self._limit, user_id)
            return
        self._users[user_id] = None
        self._wake().set()

    def take(self) -> list[int]:
        """The users asked for so far, oldest first; the list is emptied."""
        users, self._users = list(self._users), {}
        self._wake().clear()
        return users

    async def wait(self, seconds: float) -> None:
        """Returns once a user is asked for, or after `seconds`."""
        if self._users:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake().wait()

    def _wake(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event


@dataclass(frozen=True, slots=True)
class SyncReport:
    calls: int
    inserted: int
    updated: int
    resume_offset: int | None


def new_record(record: SmsRecord) -> NewRecord:
    """A history entry as the store keeps it: aware UTC time, cost as amount and currency."""
    created = record.created_at if isinstance(record.created_at, datetime) else None
    if created is not None and created.tzinfo is None:
        created = None  # the client gives aware times; a naive one is not trusted
    cost = record.cost
    return NewRecord(
        sms_id=record.sms_id,
        request_id=record.request_id,
        phone=record.phone,
        message=record.message,
        sender=record.sender,
        parts=record.parts_count,
        cost=None if cost is None else cost.amount,
        currency=None if cost is None else cost.currency,
        status=record.status,
        created_at=None if created is None else created.astimezone(UTC),
    )


class TrafficSync:
    def __init__(
        self,
        traffic: TrafficRepo,
        alerts: AlertRepo,
        accounts: Accounts,
        *,
        interval: float,
        max_pages: int,
        concurrency: int,
        backfill_days: int,
        health: GatewayHealth | None = None,
        policy: AccessPolicy = OPEN,
        after_round: Sequence[AfterRound] = (),
        page_limit: int = HISTORY_MAX_LIMIT,
        now: Callable[[], datetime] | None = None,
        clock: Callable[[], float] = time.monotonic,
        first_looks: FirstLooks | None = None,
        rounds: Rounds | None = None,
    ) -> None:
        if interval <= 0 or max_pages < 1 or concurrency < 1 or backfill_days < 1:
            raise ValueError("interval, max_pages, concurrency and backfill_days must be positive")
        self._traffic = traffic
        self._alerts = alerts
        self._accounts = accounts
        self._interval = interval
        self._max_pages = max_pages
        self._concurrency = concurrency
        self._backfill = timedelta(days=backfill_days)
        self._health = health
        self._policy = policy
        self._after_round = tuple(after_round)
        self._page_limit = page_limit
        self._now = now if now is not None else lambda: datetime.now(UTC)
        self._clock = clock
        self._first_looks = first_looks if first_looks is not None else FirstLooks()
        # One replica per round, a round per interval across them (services/rounds.py).
        self._rounds = rounds if rounds is not None else Rounds(None)

    async def run(self) -> None:
        """Rounds forever, `interval` seconds apart, and between them the first look at each
        account whose token was just connected. Cancel the task to stop it."""
        mark_background()  # leaves each token a slot for its owner's taps
        yield_to_users()  # and users' updates go first on the database
        while True:
            started = self._clock()
            wait = self._interval
            try:
                ran, users = await self._rounds.run(
                    "traffic-round", self.sync_all, hold=self._interval
                )
            except Exception:
                logger.exception("traffic round failed; next one in %.0f s", self._interval)
            else:
                if ran:
                    elapsed = self._clock() - started
                    logger.info("traffic round: %s users in %.1f s", users, elapsed)
                else:
                    wait = min(wait, self._rounds.retry_after)  # another replica's round
            await self.serve_first_looks(started + wait)

    async def serve_first_looks(self, until: float) -> None:
        """Until the clock reaches `until`: reads the accounts of users asked for meanwhile.
        In the same task as the rounds, so a user is never read by two at once."""
        while (left := until - self._clock()) > 0:
            await self._first_looks.wait(left)
            for user_id in self._first_looks.take():
                await self.first_look(user_id)

    async def first_look(self, user_id: int) -> bool:
        """One round for one user right away (a token just connected), if the ordinary round
        would read them (a valid token, an active user the access policy admits)."""
        targets = await self._alerts.watch_targets(user_id - 1, 1)
        if not targets or targets[0].user_id != user_id:
            return False
        return await self._sync_target(targets[0])

    async def sync_all(self) -> int:
        """One round over every user with a valid token; returns how many were synced."""
        queue: asyncio.Queue[WatchTarget | None] = asyncio.Queue(maxsize=self._concurrency * 2)
        done = 0

        async def worker() -> None:
            nonlocal done
            while (target := await queue.get()) is not None:
                if await self._sync_target(target):
                    done += 1

        workers = [
            asyncio.create_task(worker(), name=f"traffic-worker-{n}")
            for n in range(self._concurrency)
        ]
        try:
            after = 0
            while True:
                page = await self._alerts.watch_targets(after, PAGE_SIZE)
                for target in page:
                    await queue.put(target)
                if len(page) < PAGE_SIZE:
                    break
                after = page[-1].user_id
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return done

    async def _sync_target(self, target: WatchTarget) -> bool:
        if not self._policy.admits(target.user_id, target.access):
            return False
        try:
            await self.sync_user(target.user_id)
        except Exception:
            # One user's trouble never ends the round for the others.
            logger.exception("traffic sync of user %s failed", target.user_id)
            return False
        for hook in self._after_round:
            try:
                await hook(target, self._now())
            except Exception:
                logger.exception("after-sync work for user %s failed", target.user_id)
        return True

    async def sync_user(self, user_id: int) -> SyncReport:
        """One round for one user: at most `max_pages` history calls."""
        now = self._now()
        # A new token (maybe another account) drops the record; a round that began with the
        # old one must not write its pages afterwards.
        token = await self._accounts.stored_token(user_id)
        if token is None:
            return SyncReport(0, 0, 0, None)
        state = await self._traffic.sync_state(user_id)
        oldest_open = await self._traffic.oldest_open(user_id, now - OPEN_HORIZON)
        budget = self._max_pages
        inserted = updated = 0
        top = HistoryCursor(self._accounts, user_id, limit=self._page_limit)
        reached_known = cut = failed = False
        while True:
            if budget == 0:
                cut = True
                break
            budget -= 1
            items = await self._read(top)
            if items is None:
                cut = failed = True
                break
            if not items:
                break
            if await self._accounts.stored_token(user_id) != token:
                return SyncReport(self._max_pages - budget, inserted, updated, None)
            result = await self._traffic.merge(user_id, [new_record(r) for r in items], now=now)
            inserted += result.inserted
            updated += result.updated
            if result.known:
                reached_known = True
                oldest = _oldest(items)
                if oldest_open is None or (oldest is not None and oldest < oldest_open):
                    break
        resume = state.resume_offset
        if not reached_known:
            # Everything read was new: the history ended there, or what lies below it (older
            # entries, maybe already stored) is read from there on.
            resume = None if top.finished and not cut else top.offset
        elif resume is not None:
            resume += inserted  # the new entries on top moved the older ones down
        if resume is not None and budget > 0 and not failed:
            deep = HistoryCursor(self._accounts, user_id, limit=self._page_limit, offset=resume)
            while budget > 0:
                budget -= 1
                items = await self._read(deep)
                if items is None:
                    break
                if not items:
                    resume = None
                    break
                if await self._accounts.stored_token(user_id) != token:
                    return SyncReport(self._max_pages - budget, inserted, updated, None)
                result = await self._traffic.merge(
                    user_id, [new_record(r) for r in items], now=now
                )
                inserted += result.inserted
                updated += result.updated
                resume = deep.offset
                oldest = _oldest(items)
                if deep.finished or (oldest is not None and oldest < now - self._backfill):
                    resume = None
                    break
        if await self._accounts.stored_token(user_id) != token:
            return SyncReport(self._max_pages - budget, inserted, updated, None)
        await self._traffic.save_sync_state(user_id, resume)
        await self._traffic.rematch(user_id, now - REMATCH_WINDOW)
        calls = self._max_pages - budget
        logger.debug(
            "traffic of user %s: %s calls, %s new, %s changed", user_id, calls, inserted, updated
        )
        return SyncReport(calls, inserted, updated, resume)

    async def _read(self, cursor: HistoryCursor) -> list[SmsRecord] | None:
        """A page's entries ([] once the history ended), or None when the gateway failed."""
        try:
            page = await cursor.read()
        except NoToken:
            return None
        except DevsmsUnauthorized:
            # Accounts marked the token invalid; the watcher tells the user.
            return None
        except (DevsmsGatewayError, DevsmsUnavailable) as exc:
            logger.info("history of user %s: %s", cursor.user_id, type(exc).__name__)
            if self._health is not None:
                await self._health.record_failure()
            return None
        except DevsmsError as exc:
            logger.warning("history of user %s refused: %s", cursor.user_id, type(exc).__name__)
            return None
        if self._health is not None:
            await self._health.record_success()
        return page.items


def _oldest(items: Sequence[SmsRecord]) -> datetime | None:
    times = [r.created_at for r in items if isinstance(r.created_at, datetime)]
    times = [t for t in times if t.tzinfo is not None]
    return min(times) if times else None
