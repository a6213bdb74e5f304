"""Delivery results: following each sent SMS until the gateway reports a final status.

A sent SMS gets its first status check 30 s after the send (services/sending.py), then at
growing intervals (services/alert_rules.next_check_delay) for at most 24 hours. The final
status is reported to the user once (OutboxRepo.mark_result_notified), if their
delivery_notify preference asks for it.

Sends whose answer was lost ("unknown": single sends, storage/outbox.py, and bulk rows,
storage/bulk.py) are settled here too: each round reads a few more pages of the user's history
back (services/reconcile.HistoryWalk), until it passes the oldest unknown send, and hands them
to the one matcher. A send still unmatched when a walk has passed it, 24 hours after it was
made, is probably not sent (a single send's owner is told); a walk that could not finish
(gateway errors, the page bound) concludes nothing.

A delivery callback from the gateway (services/callbacks.py) does not report anything itself:
`check_now` makes its SMS's next check due at once and wakes the loop, so the result reaches
the user by the same path as a polled one, and only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from services.access import OPEN, AccessPolicy
from services.accounts import Accounts, NoToken
from services.alert_rules import TRACK_FOR, next_check_delay, worth_telling
from services.callbacks import CheckResult
from services.devsms import (
    DevsmsError,
    DevsmsGatewayError,
    DevsmsUnauthorized,
    DevsmsUnavailable,
    is_final_status,
    mark_background,
)
from services.events import DeliveryResult, Notices, Person, UnknownSendMissing
from services.health import GatewayHealth
from services.reconcile import (
    HistoryWalk,
    conclude_not_sent,
    parse_stamp,
    settle,
    wanted_keys,
)
from services.rounds import Rounds
from storage import yield_to_users
from storage.alerts import AlertRepo
from storage.bulk import BulkRepo
from storage.callbacks import CallbackTarget
from storage.outbox import OutboxRepo, OutboxRow, OutboxState
from storage.users import UserRepo

logger = logging.getLogger(__name__)

BATCH: Final = 100
CONCURRENCY: Final = 5
# A send that timed out is often still being processed: give the gateway's history a moment.
RECONCILE_AFTER: Final = timedelta(minutes=2)
RECONCILE_EVERY: Final = 60.0
# A single send is one request with a timeout of seconds: 'pending' this long, its replica died.
PENDING_STALE: Final = timedelta(minutes=10)
# History pages read per user per round: a busy account's walk back to an old unknown send goes
# on over several rounds instead of holding the loop (each page may cost a few retried GETs).
HISTORY_PAGES_PER_ROUND: Final = 5

TokenRejected = Callable[[Person], Awaitable[object]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The format of every `*_at` column (storage.db.utc_now), so string comparison works."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class DeliveryTracker:
    def __init__(
        self,
        outbox: OutboxRepo,
        alerts: AlertRepo,
        accounts: Accounts,
        notices: Notices,
        users: UserRepo,
        health: GatewayHealth,
        *,
        now: Callable[[], datetime] = utc_now,
        on_token_rejected: TokenRejected | None = None,
        policy: AccessPolicy = OPEN,
        batch: int = BATCH,
        concurrency: int = CONCURRENCY,
        reconcile_every: float = RECONCILE_EVERY,
        bulk: BulkRepo | None = None,
        history_pages: int = HISTORY_PAGES_PER_ROUND,
        on_bulk_callback: Callable[[], object] | None = None,
        claim_for: timedelta = timedelta(seconds=30),
        rounds: Rounds | None = None,
    ) -> None:
        if batch < 1 or concurrency < 1 or history_pages < 1:
            raise ValueError("batch, concurrency and history_pages must be positive")
        self._outbox = outbox
        # The bulk rows take part in matching, so neither kind of send takes the other's SMS.
        self._bulk = bulk if bulk is not None else BulkRepo(outbox.db)
        self._alerts = alerts
        self._accounts = accounts
        self._notices = notices
        self._users = users
        self._health = health
        self._now = now
        self._on_token_rejected = on_token_rejected
        self._policy = policy
        self._batch = batch
        self._concurrency = concurrency
        self._reconcile_every = reconcile_every
        # A due check is claimed by moving its time this far ahead (several replicas): the
        # check reschedules it; a replica that dies mid-check leaves it due again after this.
        self._claim_for = claim_for
        # The reconciliation of unknown sends: one replica per period (services/rounds.py).
        self._rounds = rounds if rounds is not None else Rounds(None)
        self._history_pages = history_pages
        # Per user, the history walk under way: it goes on where the last round stopped.
        self._walks: dict[int, _Walk] = {}
        self._wake = asyncio.Event()  # set by check_now: a check became due before `poll`
        self._on_bulk_callback = on_bulk_callback

    # --- the loop --------------------------------------------------------------------------

    async def run(self, poll: float = 5.0) -> None:
        """Checks due SMS every `poll` seconds and reconciles 'unknown' sends every minute.
        Cancel the task to stop it."""
        mark_background()  # leaves each token a slot for its owner's taps
        yield_to_users()  # and users' updates go first on the database
        last_reconcile = float("-inf")
        while True:
            processed = 0
            self._wake.clear()
            try:
                processed = await self.tick()
            except Exception:
                logger.exception("delivery tracking failed; retrying in %.0f s", poll)
            if time.monotonic() - last_reconcile >= self._reconcile_every:
                last_reconcile = time.monotonic()
                try:
                    await self._rounds.run(
                        "reconcile-unknown",
                        self.reconcile_unknown_rows,
                        hold=self._reconcile_every,
                    )
                except Exception:
                    logger.exception("reconciling unknown sends failed")
            # A full batch means more may be due right now.
            if processed >= self._batch:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()

    async def tick(self) -> int:
        """Checks the SMS whose next check is due (one batch); returns how many."""
        now = self._now()
        rows = await self._outbox.claim_due_checks(
            stamp(now), stamp(now + self._claim_for), self._batch
        )
        if not rows:
            return 0
        gate = asyncio.Semaphore(self._concurrency)

        async def check(row: OutboxRow) -> None:
            async with gate:
                await self._check_one(row, now)

        await asyncio.gather(*(check(row) for row in rows))
        return len(rows)

    # --- a delivery callback ---------------------------------------------------------------

    async def check_now(self, target: CallbackTarget) -> CheckResult:
        """The gateway said something changed for this send: its status check is due now.
        A send already settled (a replayed callback) or not tracked is left alone."""
        if target.outbox_id is None:
            return await self._check_bulk_row(target)
        row = await self._outbox.get(target.outbox_id)
        if row is None:
            return CheckResult.NOTHING
        if row.state is OutboxState.PENDING:
            return CheckResult.NOT_YET
        if (
            row.state is not OutboxState.SENT
            or row.sms_id is None
            or row.next_check_at is None
            or row.result_notified
        ):
            return CheckResult.NOTHING
        await self._outbox.schedule_check(row.id, stamp(self._now()), row.checks)
        self._wake.set()
        return CheckResult.CHECKING

    async def _check_bulk_row(self, target: CallbackTarget) -> CheckResult:
        """A bulk job's rows are not asked one by one (10,000 status calls where the history
        answers 200 at a time, services/bulk_delivery.py): the callback wakes the job's
        delivery report, which reads the history (at most once per WAKE_GAP) and tells the
        job's result once."""
        if target.row_state == "sending":
            return CheckResult.NOT_YET
        if (
            target.row_state != "sent"
            or target.row_sms_id is None
            or is_final_status(target.row_status)
        ):
            return CheckResult.NOTHING
        if self._on_bulk_callback is not None:
            self._on_bulk_callback()
        return CheckResult.CHECKING

    # --- one SMS ---------------------------------------------------------------------------

    async def _check_one(self, row: OutboxRow, now: datetime) -> None:
        try:
            await self._check(row, now)
        except Exception:
            logger.exception("status check of outbox %s failed", row.id)
            # Rescheduled, so the row is neither lost nor retried in a tight loop.
            await self._advance(row, now)

    async def _check(self, row: OutboxRow, now: datetime) -> None:
        if row.sms_id is None:
            await self._outbox.schedule_check(row.id, None, row.checks)
            return
        try:
            record = await self._accounts.status(row.user_id, sms_id=row.sms_id)
        except DevsmsUnauthorized:
            await self._outbox.schedule_check(row.id, None, row.checks)
            await self._token_rejected(row.user_id)
            return
        except NoToken:
            # Logged out or the token is invalid: nothing to ask the gateway with.
            await self._outbox.schedule_check(row.id, None, row.checks)
            return
        except (DevsmsGatewayError, DevsmsUnavailable) as exc:
            logger.info("status of outbox %s: %s", row.id, type(exc).__name__)
            await self._health.record_failure()
            await self._advance(row, now)
            return
        except DevsmsError as exc:
            # 404 included: a fresh SMS may not be in the gateway's records yet.
            logger.info("status of outbox %s refused: %s", row.id, type(exc).__name__)
            await self._advance(row, now)
            return
        await self._health.record_success()
        status = record.status
        if status is not None and status != row.status:
            await self._outbox.update_status(row.id, status)
        if is_final_status(status):
            await self._outbox.schedule_check(row.id, None, row.checks + 1)
            await self._report(row, status)
        else:
            await self._advance(row, now)

    async def _advance(self, row: OutboxRow, now: datetime) -> None:
        checks = row.checks + 1
        delay = next_check_delay(checks, now - _created(row))
        if delay is None:
            logger.info("outbox %s: no final status within %s; tracking stops", row.id, TRACK_FOR)
        at = None if delay is None else stamp(now + delay)
        await self._outbox.schedule_check(row.id, at, checks)

    async def _report(self, row: OutboxRow, status: str | None) -> None:
        if not await self._outbox.mark_result_notified(row.id):
            return
        prefs = await self._alerts.get(row.user_id)
        if not worth_telling(prefs.delivery_notify, status):
            return
        person = await self._recipient(row.user_id)
        if person is not None:
            await self._notices.emit(DeliveryResult(person, row.phone, status, row.sms_id))

    # --- unknown sends ---------------------------------------------------------------------

    async def reconcile_unknown_rows(self) -> int:
        """Settles 'unknown' sends older than two minutes, single sends and bulk rows alike;
        returns how many were settled."""
        now = self._now()
        # A replica that died mid-send left its row 'pending': long past any request's
        # timeout, it is 'unknown' and looked for like the others.
        stale = stamp(now - PENDING_STALE)
        if orphans := await self._outbox.orphans_to_unknown(mine=False, older_than=stale):
            logger.warning("%s sends left mid-request by a stopped replica are unknown", orphans)
        cutoff = stamp(now - RECONCILE_AFTER)
        rows = await self._outbox.unknown_older_than(cutoff)
        by_user: defaultdict[int, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            by_user[row.user_id].append(row)
        # A bulk job settles only the matches it finds when it ends; its rows not found yet
        # are looked for here, with the same rule.
        for user_id in await self._bulk.unknown_users_older_than(cutoff):
            by_user.setdefault(user_id, [])
        for user_id in self._walks.keys() - by_user.keys():
            # Nothing left to look for (settled elsewhere, e.g. from /history).
            del self._walks[user_id]
        settled = 0
        for user_id, user_rows in by_user.items():
            try:
                settled += await self._reconcile_user(user_id, user_rows, now)
            except Exception:
                logger.exception("reconciling the sends of user %s failed", user_id)
        return settled

    async def _reconcile_user(self, user_id: int, rows: Sequence[OutboxRow], now: datetime) -> int:
        cutoff = stamp(now - RECONCILE_AFTER)
        # (job id, row number) -> (earliest the gateway can have made it, when it became unknown)
        bulk_rows = {
            (row.job_id, row.row_no): (
                parse_stamp(started) or utc_now(),
                parse_stamp(row.updated_at) or utc_now(),
            )
            for row, started in await self._bulk.open_rows_of_user(user_id)
            if row.state == "unknown" and (row.updated_at or "") <= cutoff
        }
        walk = self._walks.get(user_id)
        if walk is None:
            if not rows and not bulk_rows:
                return 0
            oldest = min(
                [_created(row) for row in rows] + [start for start, _ in bulk_rows.values()]
            )
            walk = _Walk(
                HistoryWalk(since=oldest),
                frozenset(r.id for r in rows),
                frozenset(bulk_rows),
            )
            self._walks[user_id] = walk
        try:
            await walk.history.advance(
                self._accounts,
                user_id,
                pages=self._history_pages,
                wanted=await wanted_keys(self._outbox, self._bulk, user_id),
            )
        except DevsmsUnauthorized:
            self._walks.pop(user_id, None)
            await self._token_rejected(user_id)
            return 0
        except NoToken:
            self._walks.pop(user_id, None)
            return 0
        except (DevsmsGatewayError, DevsmsUnavailable) as exc:
            # The walk stays where it got to and goes on next round.
            logger.info("history of user %s: %s", user_id, type(exc).__name__)
            await self._health.record_failure()
            return 0
        except DevsmsError as exc:
            logger.warning("history of user %s refused: %s", user_id, type(exc).__name__)
            return 0
        await self._health.record_success()

        found = await settle(self._outbox, self._bulk, user_id, walk.history.records)
        resolved = found.outbox_ids
        for row_id in resolved:
            row = await self._outbox.get(row_id)
            if row is None:
                continue
            if is_final_status(row.status):
                await self._report(row, row.status)
                continue
            delay = next_check_delay(0, now - _created(row))
            if row.sms_id is not None and delay is not None:
                await self._outbox.schedule_check(row.id, stamp(now + delay), 0)
        settled = len(resolved) + len(found.bulk_rows)
        if not walk.history.finished:
            return settled  # the bound was hit: on next round

        self._walks.pop(user_id, None)
        if not walk.history.complete:
            return settled  # a history that does not page proves nothing
        # Only a walk that reached back past the send may say it is not there, only for the
        # sends it was started for (a newer one may sit before where it began), and only a
        # day after the send: a slow gateway may list it late.
        old_rows = {
            row.id: row
            for row in rows
            if row.id not in resolved
            and row.id in walk.for_ids
            and now - _created(row) >= TRACK_FOR
        }
        old_bulk = [
            key
            for key, (_start, unknown_since) in bulk_rows.items()
            if key in walk.for_rows
            and key not in found.bulk_rows
            and now - unknown_since >= TRACK_FOR
        ]
        concluded = await conclude_not_sent(
            self._outbox, self._bulk, user_id, list(old_rows), old_bulk
        )
        for row_id in concluded.outbox_ids:
            logger.info("outbox %s of user %s: no trace after 24 h, not sent", row_id, user_id)
            await self._report_not_sent(old_rows[row_id])
        for job_id, row_no in concluded.bulk_rows:
            logger.info(
                "bulk row %s/%s of user %s: no trace after 24 h, not sent", job_id, row_no, user_id
            )
        return settled + len(concluded.outbox_ids) + len(concluded.bulk_rows)

    async def _report_not_sent(self, row: OutboxRow) -> None:
        if not await self._outbox.mark_result_notified(row.id):
            return
        prefs = await self._alerts.get(row.user_id)
        if prefs.delivery_notify == "off":
            return
        person = await self._recipient(row.user_id)
        if person is not None:
            await self._notices.emit(UnknownSendMissing(person, row.phone))

    # --- helpers ---------------------------------------------------------------------------

    async def _recipient(self, user_id: int) -> Person | None:
        """The user, or None when they are gone, blocked the bot or were denied."""
        user = await self._users.get(user_id)
        if user is None or not user.is_active or not self._policy.admits(user.id, user.access):
            return None
        return Person.of(user)

    async def _token_rejected(self, user_id: int) -> None:
        if self._on_token_rejected is None:
            return
        user = await self._users.get(user_id)
        if user is None or not self._policy.admits(user.id, user.access):
            return
        await self._on_token_rejected(Person.of(user))


@dataclass(frozen=True, slots=True)
class _Walk:
    history: HistoryWalk
    for_ids: frozenset[int]
    """The unknown single sends it was started for: only these can it find missing."""
    for_rows: frozenset[tuple[int, int]] = frozenset()
    """The same for bulk rows: (job id, row number)."""


def _created(row: OutboxRow) -> datetime:
    # Unreadable: treat it as brand new, so it is tracked rather than dropped.
    return parse_stamp(row.created_at) or utc_now()
