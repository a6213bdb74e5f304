"""Starts scheduled sends when they are due, and holds bulk jobs during their owners' quiet
hours.

Scheduled items live in the database (storage/schedule.py), so a restart loses none. An item
whose time passed while the bot was down starts when the bot is back if it is at most `grace`
late; later than that it waits for its owner ("Send now" / "Cancel"). Lateness counts from
the moment the item could start: an item due inside its owner's quiet hours waits for their
end, which is not lateness.

An item is started at most once: the claim (waiting → started) is committed in the same
transaction that records the send (the outbox row, or the job going 'running'), before any
request. A crash after the claim is settled as any other send is (an outbox row left
'pending' becomes 'unknown' and is reconciled; a 'running' job resumes at start-up), never
by starting the item again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Final

from services.access import OPEN, AccessPolicy
from services.accounts import Accounts, NoToken
from services.bulk import PAUSE_BALANCE, PAUSE_QUIET, PAUSE_TOKEN, BulkRunner, ShortOfBalance
from services.devsms import Balance, DevsmsError, DevsmsUnauthorized, mark_background
from services.events import (
    JobPaused,
    Missed,
    Notices,
    NotStarted,
    Person,
    ScheduledEvent,
    ScheduledJobStarted,
    ScheduledMissed,
    ScheduledNotStarted,
    ScheduledSmsDone,
)
from services.pricing import Cost, cost_of
from services.rounds import Rounds
from services.schedule_time import QuietHours, is_quiet, quiet_end, user_quiet, zone_of
from services.sending import Outcome, SmsSender
from services.sms_parts import count_sms
from storage import BulkRepo, ScheduledRow, ScheduleRepo, UserRepo, UserRow, yield_to_users
from storage.outbox import NotClaimed

logger = logging.getLogger(__name__)

DEFAULT_GRACE: Final = dt.timedelta(hours=1)
# Items started side by side in one round: one slow gateway answer must not hold the rest.
PARALLEL: Final = 8


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    """As the database keeps times: ISO-8601 UTC, whole seconds."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def parse_stamp(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class _Skip(Exception):
    """The item's start is put off to a later round (the balance could not be read)."""


class Scheduler:
    def __init__(
        self,
        schedule: ScheduleRepo,
        users: UserRepo,
        bulk: BulkRepo,
        accounts: Accounts,
        sender: SmsSender,
        runner: BulkRunner,
        notices: Notices,
        *,
        grace: dt.timedelta = DEFAULT_GRACE,
        poll: float = 5.0,
        quiet_default: QuietHours | None = None,
        jobs_per_user: int = 1,
        policy: AccessPolicy = OPEN,
        now: Callable[[], dt.datetime] = utc_now,
        rounds: Rounds | None = None,
    ) -> None:
        self._schedule = schedule
        # Quiet hours of running jobs: one replica per round (a scheduled item needs no lease:
        # it is claimed in the transaction that records its send, see ScheduleRepo.claim).
        self._rounds = rounds if rounds is not None else Rounds(None)
        self._users = users
        self._bulk = bulk
        self._accounts = accounts
        self._sender = sender
        self._runner = runner
        self.notices = notices
        self.grace = grace
        self.poll = poll
        self.quiet_default = quiet_default
        self.jobs_per_user = jobs_per_user
        self._policy = policy
        self.now = now
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def wake(self) -> None:
        """A handler changed an item ("Send now"): the next round starts at once."""
        self._wake.set()

    async def run(self) -> None:
        mark_background()  # leaves each token a slot for its owner's taps
        yield_to_users()  # and users' updates go first on the database
        try:
            # Held items were held by the quiet hours of the last run's configuration.
            await self._schedule.release_held()
        except Exception:
            logger.exception("scheduler: held items not released")
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("scheduler round failed")
            # Not wait_for: on Python 3.11 it returns the wake-up and swallows a stop that
            # lands in the same turn, and stop() then waits for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            self._wake.clear()

    async def tick(self) -> None:
        """One round: quiet hours of running jobs, then every item whose time has come. Each
        part fails alone: a broken job must not keep every scheduled send from starting."""
        for part in (self._quiet_round, self._start_due):
            try:
                await part()
            except Exception:
                logger.exception("scheduler round: %s failed", part.__name__)

    async def _start_due(self) -> None:
        by_user: dict[int, list[ScheduledRow]] = {}
        for item in await self._schedule.due(stamp(self.now())):
            by_user.setdefault(item.user_id, []).append(item)
        slots = asyncio.Semaphore(PARALLEL)

        async def of_user(items: list[ScheduledRow]) -> None:
            # One user's items one after another: two jobs due together must not both pass
            # the check of BULK_JOBS_PER_USER before either starts.
            async with slots:
                for item in items:
                    try:
                        await self._consider(item)
                    except Exception:
                        logger.exception("scheduled item %s failed", item.id)

        await asyncio.gather(*(of_user(items) for items in by_user.values()))

    async def _quiet_round(self) -> None:
        """Quiet hours of running jobs, on one replica per round (services/rounds.py)."""
        if not await self._bulk.jobs_in(("running", "paused")):
            return  # nothing to hold or resume: no lease taken, no write
        await self._rounds.run("quiet-hours", self._quiet_parts)

    async def _quiet_parts(self) -> None:
        for part in (self.hold_quiet_jobs, self.resume_quiet_jobs):
            try:
                await part()
            except Exception:
                logger.exception("scheduler round: %s failed", part.__name__)

    # --- the user's clock ------------------------------------------------------------------

    def quiet_of(self, user: UserRow) -> QuietHours | None:
        return user_quiet(user.quiet_hours, self.quiet_default)

    def in_quiet(self, user: UserRow, moment: dt.datetime | None = None) -> bool:
        return is_quiet(moment or self.now(), self.quiet_of(user), zone_of(user.timezone))

    def quiet_end(self, user: UserRow) -> dt.datetime:
        return quiet_end(self.now(), self.quiet_of(user), zone_of(user.timezone))

    # --- scheduled items -------------------------------------------------------------------

    async def _consider(self, item: ScheduledRow) -> None:
        user = await self._users.get(item.user_id)
        if user is None:
            await self._schedule.mark_failed(item.id, "no user")
            return
        now = self.now()
        due = parse_stamp(item.due_at)
        if not item.ignore_quiet:
            due = quiet_end(due, self.quiet_of(user), zone_of(user.timezone))
        if now < due:
            # Inside quiet hours: it waits for their end, out of the rounds until then.
            await self._schedule.hold(item.id, stamp(due))
            return
        if now - due > self.grace:
            if await self._schedule.mark_missed(item.id, Missed.LATE):
                logger.info("scheduled item %s is %s late: asking its owner", item.id, now - due)
                await self._tell(ScheduledMissed, user, item, reason=Missed.LATE)
            return
        if not self._policy.admits(user.id, user.access):
            await self._fail(user, item, NotStarted.ACCESS)
            return
        try:
            if item.kind == "sms":
                await self._send_sms(user, item)
            else:
                await self._start_job(user, item)
        except _Skip:
            return

    async def _cost(self, user: UserRow, item: ScheduledRow, parts: int) -> Cost | None:
        """The cost against the balance read now; None when the item was failed for it."""
        await self._accounts.forget_balance(user.id)  # the balance may be hours old
        try:
            balance: Balance = await self._accounts.recent_balance(user.id)
        except (NoToken, DevsmsUnauthorized):
            await self._fail(user, item, NotStarted.TOKEN)
            return None
        except DevsmsError as exc:
            # Tried again next round; past the grace the item waits for its owner.
            logger.warning("scheduled item %s: balance unreadable (%s)", item.id, exc)
            raise _Skip from exc
        cost = cost_of(parts, balance)
        if not cost.enough:
            await self._fail(user, item, NotStarted.BALANCE, missing=cost.missing)
            return None
        return cost

    async def _send_sms(self, user: UserRow, item: ScheduledRow) -> None:
        assert item.phone is not None and item.message is not None
        if await self._cost(user, item, count_sms(item.message).parts) is None:
            return

        async def claim(outbox_id: int) -> bool:
            return await self._schedule.claim(item.id, outbox_id)

        try:
            outcome = await self._sender.send(
                user.id, item.phone, item.message, item.sender, claim=claim, template=item.template
            )
        except NotClaimed:
            return  # cancelled (or taken) meanwhile: nothing was recorded or sent
        await self._accounts.forget_balance(user.id)
        if await self._schedule.mark_failed(item.id, outcome.outcome.value):
            # Still waiting: the send path refused it before recording anything.
            stopped = outcome.outcome is Outcome.STOPPED
            reason = NotStarted.STOPPED if stopped else NotStarted.REFUSED
            await self._tell(ScheduledNotStarted, user, item, reason=reason)
            return
        logger.info("scheduled item %s sent: %s", item.id, outcome.outcome)
        await self._tell(ScheduledSmsDone, user, item, outcome=outcome)

    async def _start_job(self, user: UserRow, item: ScheduledRow) -> None:
        assert item.job_id is not None
        job = await self._bulk.get_job(item.job_id)
        if job is None or job.state != "ready":
            await self._fail(user, item, NotStarted.JOB)
            return
        active = await self._bulk.jobs_in(("running", "paused"), user_id=user.id)
        if len(active) >= self.jobs_per_user:
            if await self._schedule.mark_missed(item.id, Missed.BUSY):
                await self._tell(
                    ScheduledMissed, user, item, reason=Missed.BUSY, other_job=active[0].id
                )
            return
        if await self._cost(user, item, await self._bulk.parts_left(job.id)) is None:
            return
        if item.ignore_quiet and self.in_quiet(user):
            # "Send now" inside quiet hours: the job runs on until they end tonight.
            await self._schedule.set_job_quiet_until(job.id, stamp(self.quiet_end(user)))

        async def claim() -> bool:
            return await self._schedule.claim(item.id)

        if not await self._runner.begin(job.id, claim=claim):
            return  # cancelled meanwhile
        logger.info("scheduled item %s started bulk job %s", item.id, job.id)
        await self._tell(ScheduledJobStarted, user, item)

    async def _fail(
        self, user: UserRow, item: ScheduledRow, reason: NotStarted, **extra: object
    ) -> None:
        if await self._schedule.mark_failed(item.id, reason.value):
            logger.info("scheduled item %s not started: %s", item.id, reason)
            if item.job_id is not None:
                # Its prepared job will never start now: /jobs shows it cancelled.
                await self._bulk.set_job_state(item.job_id, "cancelled", allowed_from=("ready",))
            await self._tell(ScheduledNotStarted, user, item, reason=reason, **extra)

    async def _tell(
        self, event: type[ScheduledEvent], user: UserRow, item: ScheduledRow, **extra: object
    ) -> None:
        fresh = await self._schedule.get(item.id) or item
        zone = zone_of(user.timezone).key
        try:
            await self.notices.emit(event(Person.of(user), fresh, zone, **extra))  # type: ignore[arg-type]
        except Exception:
            logger.exception("scheduled item %s: notice failed", item.id)

    # --- quiet hours of running jobs -------------------------------------------------------

    async def hold_quiet_jobs(self) -> None:
        """Pauses running jobs whose owners' quiet hours began (unless started anyway)."""
        now = self.now()
        for job in await self._bulk.jobs_in(("running",)):
            try:
                await self._hold_job(job.id, job.user_id, now)
            except Exception:
                logger.exception("bulk job %s: quiet-hours check failed", job.id)

    async def _hold_job(self, job_id: int, user_id: int, now: dt.datetime) -> None:
        user = await self._users.get(user_id)
        if user is None or not self.in_quiet(user, now):
            return
        until = await self._schedule.job_quiet_until(job_id)
        if until is not None and parse_stamp(until) > now:
            return
        if await self._runner.pause(job_id, PAUSE_QUIET):
            logger.info("bulk job %s paused for quiet hours", job_id)

    async def resume_quiet_jobs(self) -> None:
        """Resumes jobs paused for quiet hours that have ended."""
        for job in await self._bulk.jobs_in(("paused",)):
            if job.pause_reason != PAUSE_QUIET:
                continue
            try:
                await self._resume_job(job.id, job.user_id)
            except Exception:
                logger.exception("bulk job %s: resume after quiet hours failed", job.id)

    async def _resume_job(self, job_id: int, user_id: int) -> None:
        user = await self._users.get(user_id)
        if user is None or self.in_quiet(user):
            return
        reason = None
        try:
            resumed = await self._runner.resume(job_id)
        except ShortOfBalance:
            reason = PAUSE_BALANCE
        except (NoToken, DevsmsUnauthorized):
            reason = PAUSE_TOKEN
        except DevsmsError as exc:
            logger.warning("bulk job %s: not resumed yet (%s)", job_id, exc)
            return
        else:
            if resumed:
                logger.info("bulk job %s resumed: quiet hours are over", job_id)
            return
        await self._repause(job_id, reason)

    async def _repause(self, job_id: int, reason: str) -> None:
        """A job that could not go on after quiet hours says why, as any paused job does."""
        if not await self._bulk.set_job_state(
            job_id, "paused", allowed_from=("paused",), reason=reason
        ):
            return
        job = await self._bulk.get_job(job_id)
        if job is None:
            return
        try:
            await self.notices.emit(JobPaused(job, await self._bulk.counts(job_id)))
        except Exception:
            logger.exception("bulk job %s: pause notice failed", job_id)
