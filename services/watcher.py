"""Low-balance alerts: every few minutes, the balance of every user with a working token.

A user hears once when their balance falls below their threshold, and again only after it
rose above it and fell again: the "below" flag lives in alert_prefs (AlertRepo.record_check),
so a restart does not repeat an alert; the alert stays owed there until it was handed on, so
a replica that dies in between does not lose it either. A token the gateway rejects is
reported once, to the user and to the admins. Both are events (services/events.py): the
presentation tells the user and the admins (whose digest turns a round's many low balances
into one message).

Thousands of users are walked page by page (keyset paging) and checked by `concurrency`
workers, so the gateway never sees more than that many requests at once; each worker writes
what it saw and tells its alert before it asks for the next user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Final

from services import metrics
from services.access import OPEN, AccessPolicy
from services.accounts import Accounts, NoToken
from services.alert_rules import days_left, is_below, sms_left, threshold_money
from services.devsms import (
    Balance,
    DevsmsError,
    DevsmsGatewayError,
    DevsmsUnauthorized,
    DevsmsUnavailable,
    mark_background,
)
from services.events import LowBalance, Notices, Person, TokenRejected
from services.health import GatewayHealth
from services.money import Money
from storage import yield_to_users
from storage.alerts import AlertRepo, WatchTarget
from storage.leases import LeaseRepo
from storage.traffic import TrafficRepo

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 500
# The numbered rounds every replica reads (storage/leases.py): each user's check of a round is
# claimed by one replica, so replicas split a round instead of repeating it.
ROUND_LEASE: Final = "balance-round"
# devsms counts "today" and "this month" on Tashkent time (UTC+5, no daylight saving); the
# client's zone (GATEWAY_TIMEZONE) is used when the watcher is given none.
GATEWAY_TZ: Final = timezone(timedelta(hours=5))


def gateway_today(zone: tzinfo = GATEWAY_TZ) -> date:
    return datetime.now(UTC).astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class RoundReport:
    checked: int
    """Users whose balance the gateway returned."""
    alerts_sent: int
    invalid: int
    """Tokens the gateway rejected during this round."""
    failed: int
    elapsed: float


class _Result(Enum):
    CHECKED = "checked"
    SETTLED = "settled"  # checked, nothing owed: the round's claim ended in the same commit
    ALERTED = "alerted"
    INVALID = "invalid"
    FAILED = "failed"
    SKIPPED = "skipped"  # the token went away since the page was read


class BalanceWatcher:
    def __init__(
        self,
        alerts: AlertRepo,
        accounts: Accounts,
        notices: Notices,
        *,
        default_threshold: Decimal,
        interval: float,
        concurrency: int,
        health: GatewayHealth,
        policy: AccessPolicy = OPEN,
        page_size: int = PAGE_SIZE,
        today: Callable[[], date] | None = None,
        clock: Callable[[], float] = time.monotonic,
        snapshots: TrafficRepo | None = None,
        leases: LeaseRepo | None = None,
    ) -> None:
        if concurrency < 1 or page_size < 1 or interval <= 0:
            raise ValueError("concurrency and page_size must be positive, interval too")
        self._alerts = alerts
        self._accounts = accounts
        self._notices = notices
        self._default_threshold = default_threshold
        self._interval = interval
        self._concurrency = concurrency
        self._health = health
        self._policy = policy
        self._page_size = page_size
        zone = accounts.devsms.timezone
        self._today = today if today is not None else lambda: gateway_today(zone)
        self._clock = clock
        self._snapshots = snapshots
        self._leases = leases
        self._walked = 0  # the last round this replica walked

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Rounds forever, `interval` seconds apart. Cancel the task to stop it."""
        mark_background()  # leaves each token a slot for its owner's taps
        yield_to_users()  # and users' updates go first on the database
        # With leases a replica looks often (a lease's third) and joins a round another one
        # started; the rounds themselves still come `interval` apart.
        pause = self._interval
        if self._leases is not None:
            pause = min(self._interval, max(self._leases.seconds / 3, 0.01))
        while True:
            try:
                report = await self.tick()
            except Exception:
                # The database or the notifier broke mid-round; the next round starts afresh.
                logger.exception("balance round failed; next one in %.0f s", self._interval)
            else:
                if report is None:
                    await asyncio.sleep(pause)
                    continue
                metrics.BALANCE_ROUND_SECONDS.observe(report.elapsed)
                logger.info(
                    "balance round: %s checked, %s alerts, %s invalid, %s failed in %.1f s",
                    report.checked,
                    report.alerts_sent,
                    report.invalid,
                    report.failed,
                    report.elapsed,
                )
            await asyncio.sleep(pause)

    async def tick(self) -> RoundReport | None:
        """A new round when one is due, or this replica's share of the round another replica
        started; None when there is nothing for this replica to do."""
        if self._leases is None:
            return await self.check_all()
        # Read first: most looks find the round running and walked already (no write then).
        holder = await self._leases.holder(ROUND_LEASE)
        running = holder is not None and (holder.until or "") >= self._leases.now()
        round_no = None if running else await self._leases.next_term(ROUND_LEASE, self._interval)
        if round_no is None:
            holder = holder if running else await self._leases.holder(ROUND_LEASE)
            if holder is None or holder.fence < self._walked:
                return None
            if holder.fence == self._walked:
                # Walked already; the checks a replica claimed and died with come back once
                # their claims run out, and whoever walked the round takes them up.
                expired = await self._alerts.expired_checks(
                    holder.fence, self._leases.now(), self._page_size
                )
                if not expired:
                    return None
                logger.info(
                    "balance round %s: taking up %s unfinished checks", holder.fence, len(expired)
                )
                return await self._round(holder.fence, expired)
            round_no = holder.fence
        self._walked = round_no
        return await self._round(round_no)

    async def check_all(self) -> RoundReport:
        """One round over every user with a valid token, now (a new round number when
        leases are used: users claimed in an earlier round are checked again)."""
        if self._leases is None:
            return await self._round(None)
        self._walked = await self._leases.advance(ROUND_LEASE)
        return await self._round(self._walked)

    async def _round(
        self, round_no: int | None, only: list[WatchTarget] | None = None
    ) -> RoundReport:
        """Checks the users of round `round_no` this replica claims (None: every user), or
        of `only` those."""
        started = self._clock()
        results: Counter[_Result] = Counter()
        # Bounded, so paging only runs ahead of the workers by a little.
        queue: asyncio.Queue[WatchTarget | None] = asyncio.Queue(maxsize=self._concurrency * 2)
        # At most `concurrency` requests at the gateway, one per worker. A worker tells its
        # check's alert and marks it told before it asks for the next user: with more workers
        # than slots (tried: the round 1.08x ideal instead of 1.15x) a kill -9 landed while
        # other checks' alerts were out but not yet marked, and those users heard them twice
        # after the restart (tests/e2e/test_faults_e2e.py, once in three full runs).
        gateway = asyncio.Semaphore(self._concurrency)
        # This replica's claim on the round's checks: (round, owner).
        claim = (
            None if round_no is None or self._leases is None else (round_no, self._leases.owner)
        )

        async def worker() -> None:
            while (target := await queue.get()) is not None:
                result = await self._check_one(target, gateway, claim)
                results[result] += 1
                if claim is not None and result is not _Result.SETTLED:
                    await self._alerts.finish_check(target.user_id, *claim)

        checkers = [
            asyncio.create_task(worker(), name=f"balance-worker-{n}")
            for n in range(self._concurrency)
        ]
        workers = list(checkers)
        if claim is not None:
            workers.append(asyncio.create_task(self._keep_claims(claim[0]), name="balance-claims"))
        try:
            after = 0
            while True:
                page = (
                    only
                    if only is not None
                    else await self._alerts.watch_targets(after, self._page_size)
                )
                # Claimed a few at a time, just before their turn: a claim's lease covers
                # the wait in the queue, not the whole page's.
                step = self._concurrency * 2
                for start in range(0, len(page), step):
                    for target in await self._claimed(page[start : start + step], round_no):
                        await queue.put(target)
                if only is not None or len(page) < self._page_size:
                    break
                after = page[-1].user_id
            for _ in checkers:
                await queue.put(None)
            await asyncio.gather(*checkers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return RoundReport(
            checked=results[_Result.CHECKED] + results[_Result.SETTLED] + results[_Result.ALERTED],
            alerts_sent=results[_Result.ALERTED],
            invalid=results[_Result.INVALID],
            failed=results[_Result.FAILED],
            elapsed=self._clock() - started,
        )

    async def _keep_claims(self, round_no: int) -> None:
        """Renews this replica's unfinished claims of the round every third of a lease while
        its checks run: a check slower than a lease (an alert waiting for the notifier's turn)
        is not taken for a dead replica's, checked again elsewhere and its alert told twice."""
        leases = self._leases
        assert leases is not None
        while True:
            await asyncio.sleep(max(leases.seconds / 3, 0.01))
            await self._alerts.renew_checks(round_no, leases.owner, leases.until(), leases.now())

    async def _claimed(
        self, targets: list[WatchTarget], round_no: int | None
    ) -> list[WatchTarget]:
        leases = self._leases
        if round_no is None or leases is None:
            return targets
        claimed = await self._alerts.claim_checks(
            [t.user_id for t in targets], round_no, leases.owner, leases.until(), leases.now()
        )
        return [t for t in targets if t.user_id in claimed]

    # --- one user --------------------------------------------------------------------------

    async def _check_one(
        self, target: WatchTarget, gateway: asyncio.Semaphore, claim: tuple[int, str] | None
    ) -> _Result:
        try:
            return await self._check(target, gateway, claim)
        except Exception:
            # One user's trouble never ends the round for the others.
            logger.exception("balance check of user %s failed", target.user_id)
            return _Result.FAILED

    async def _check(
        self, target: WatchTarget, gateway: asyncio.Semaphore, claim: tuple[int, str] | None
    ) -> _Result:
        user_id = target.user_id
        if not self._policy.admits(user_id, target.access):
            return _Result.SKIPPED  # denied by an administrator: no more alerts
        try:
            async with gateway:
                balance = await self._accounts.balance(user_id, target.token_encrypted)
        except DevsmsUnauthorized:
            # Accounts has marked the token invalid; the next rounds skip this user.
            await self.token_rejected(_person(target))
            return _Result.INVALID
        except NoToken:
            return _Result.SKIPPED
        except (DevsmsGatewayError, DevsmsUnavailable) as exc:
            logger.info("balance of user %s: %s", user_id, type(exc).__name__)
            await self._health.record_failure()
            return _Result.FAILED
        except DevsmsError as exc:
            logger.warning("balance of user %s refused: %s", user_id, type(exc).__name__)
            return _Result.FAILED
        await self._health.record_success()

        prefs = target.prefs
        if prefs.invalid_notified:
            # The token works (a new one, or the gateway changed its mind): a later rejection
            # deserves a notice again.
            await self._alerts.set_invalid_notified(user_id, False)
        amount = balance.balance
        if amount is None:
            logger.info("balance answer for user %s has no balance", user_id)
            return _Result.CHECKED
        threshold = threshold_money(prefs, self._default_threshold, balance.sms_price)
        # One commit with the other workers' writes of the moment (one sync to disk): the
        # balance snapshot (kept for the forecast of /stats and the digest), the record,
        # and with nothing owed the end of the round's claim; a claim left open while an
        # alert is owed lets another replica tell it if this one dies.
        due = await self._alerts.record_check(
            user_id,
            amount.format(),
            below=is_below(amount, threshold),
            finish=claim,
            along=()
            if self._snapshots is None
            else self._snapshots.balance_snapshot(user_id, amount.amount, amount.currency),
        )
        if not due:
            return _Result.SETTLED
        result = _Result.CHECKED
        if prefs.balance_alerts and threshold is not None:
            try:
                await self._low_balance(_person(target), balance, amount, threshold)
            except asyncio.CancelledError:
                # Stopped while the alert waited for its turn: the notifier queued it before
                # its first wait and sends its queue at the stop, so it is told; left owed,
                # the next start told it again.
                await asyncio.shield(self._alerts.alert_told(user_id))
                raise
            result = _Result.ALERTED
        # Told (or not wanted): owed no more. A replica that dies before this line leaves the
        # alert owed, and the user's next check tells it.
        await self._alerts.alert_told(user_id)
        return result

    async def _low_balance(
        self, person: Person, balance: Balance, amount: Money, threshold: Money
    ) -> None:
        logger.info("user %s fell below the balance threshold", person.user_id)
        await self._notices.emit(
            LowBalance(
                person,
                amount,
                threshold,
                sms_left=sms_left(amount, balance.sms_price),
                days_left=days_left(amount, balance.statistics, self._today()),
            )
        )

    async def token_rejected(self, person: Person) -> bool:
        """Tells the user (and the admins) once that the gateway rejects their token.

        Also for services/tracker.py, which may be the first to meet the 401. Returns whether
        a notice went out.
        """
        if not await self._alerts.set_invalid_notified(person.user_id, True):
            return False
        logger.info("telling user %s that their token was rejected", person.user_id)
        await self._notices.emit(TokenRejected(person))
        return True


def _person(target: WatchTarget) -> Person:
    return Person(target.user_id, target.language, target.first_name, target.username)
