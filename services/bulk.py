"""Bulk jobs in the background: paced, bounded, resumable, and never sending a row twice.

Each row is claimed ('sending', committed) immediately before its one request and settled
right after it. A process killed in between leaves the row 'sending'; at the next start it
becomes 'unknown' and is matched against the gateway's history, never resent blindly.

A job never stays 'running' without a task behind it: whatever stops a run (the balance, a
refusal repeated on every row, a new token, a bug or a broken database) pauses the job with a
reason its owner is shown, and rows that may have gone out stay 'unknown'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Final

from services import metrics
from services.access import OPEN, AccessPolicy
from services.accounts import Accounts, AccountSession, NoToken, TokenState
from services.callbacks import CallbackLinks
from services.devsms import (
    DevsmsBadRequest,
    DevsmsError,
    DevsmsNotFound,
    DevsmsSendUnknown,
    DevsmsUnauthorized,
    DevsmsUnavailable,
    mark_background,
)
from services.events import JobFinished, JobPaused, JobProgress, Notices
from services.job_lease import JobLease, JobPacer
from services.phones import UZ_DIGITS
from services.pricing import Cost, cost_of, stored_cost
from services.reconcile import (
    HistoryWalk,
    SmsKey,
    parse_stamp,
    settle,
    wanted_keys,
)
from storage import BulkRepo, BulkRow, JobRow, OutboxRepo, StopListRepo, UserRepo, yield_to_users
from storage.bulk import STOP_LIST
from storage.leases import Clock, JobLeaseRepo, utc_clock

logger = logging.getLogger(__name__)

# The gateway has no error codes (see devsms-api.md): an exhausted balance is recognised by
# its text, in the languages it answers in.
_NO_BALANCE: Final = re.compile(
    r"balans|balance|yetarli emas|недостат|insufficient|mablag", re.IGNORECASE
)
PAUSE_BALANCE: Final = "balance"
PAUSE_GATEWAY: Final = "gateway"
PAUSE_TOKEN: Final = "token"
PAUSE_USER: Final = "user"
# The gateway gave the same refusal for several rows in a row (an unapproved sender, say).
PAUSE_REFUSED: Final = "refused"
# The owner connected another token (or none) while the job ran: it must not go on with the old.
PAUSE_TOKEN_CHANGED: Final = "token_changed"
# An administrator withdrew the owner's access (/deny).
PAUSE_ACCESS: Final = "access"
# The owner's quiet hours began; the scheduler resumes the job when they end.
PAUSE_QUIET: Final = "quiet"
# The bot itself failed (a database error, a bug): logged, and the owner may try again.
PAUSE_ERROR: Final = "error"
# The same refusal on this many rows in a row stops the job: a refusal that repeats is about
# the account or the sender, not about the numbers, and would fail the whole list otherwise.
REFUSALS_TO_PAUSE: Final = 5
HISTORY_PAGES_MAX: Final = 60


class RateLimiter:
    """Spaces calls `1/rate` seconds apart (no bursts: the gateway publishes no limits)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        now = self._clock()
        delay = self._next - now
        self._next = max(now, self._next) + self._interval
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class _JobControl:
    task: asyncio.Task[None]
    stop: asyncio.Event


class ShortOfBalance(Exception):
    """The balance does not cover the rows a job has left: it is not resumed."""

    def __init__(self, cost: Cost) -> None:
        super().__init__("the balance does not cover the rest of the job")
        self.cost = cost


class BulkRunner:
    def __init__(
        self,
        bulk: BulkRepo,
        accounts: Accounts,
        *,
        rate: float = 5.0,
        concurrency: int = 4,
        pause_after_errors: int = 3,
        pause_after_refusals: int = REFUSALS_TO_PAUSE,
        progress_every: float = 3.0,
        notices: Notices | None = None,
        users: UserRepo | None = None,
        policy: AccessPolicy = OPEN,
        stoplist: StopListRepo | None = None,
        links: CallbackLinks | None = None,
        replica_id: str | None = None,
        lease_seconds: float = 30.0,
        lease_clock: Clock = utc_clock,
    ) -> None:
        self._bulk = bulk
        # A running job is sent by the one replica holding its lease (services/job_lease.py).
        self.lease = JobLease(JobLeaseRepo(bulk.db), replica_id, lease_seconds, lease_clock)
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._accounts = accounts
        self.links = links  # each row's own delivery-callback URL (PUBLIC_BASE_URL set)
        # Every bulk row passes the runner: a number added to the owner's stop list after the
        # dry run is caught here, right before its request (default: the same database).
        self._stoplist = stoplist or StopListRepo(bulk.db)
        # Who may send: asked again whenever a run starts (see _run_job).
        self._users = users
        self._policy = policy
        self.rate = rate
        self.concurrency = concurrency
        self.pause_after_errors = pause_after_errors
        self.pause_after_refusals = pause_after_refusals
        self.progress_every = progress_every
        # Progress, pauses and the end of a job are told through it (None: not told).
        self.notices = notices
        self._jobs: dict[int, _JobControl] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Settles what a previous process left behind, then resumes running jobs; from then
        on, takes over the running jobs of replicas whose leases expired."""
        self._stopping = False
        orphans = await self._bulk.orphans_to_unknown(self.lease.owner, self.lease.stamp())
        if orphans:
            logger.warning("%s bulk rows were mid-request when the bot stopped: unknown", orphans)
        for job in await self._bulk.jobs_in(("running",)):
            logger.info("resuming bulk job %s", job.id)
            self._spawn(job.id)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="bulk-takeover")

    async def _sweep(self) -> None:
        """Every third of a lease: running jobs that no replica holds are taken over here."""
        while True:
            await asyncio.sleep(self.lease.seconds / 3)
            try:
                await self.take_over()
            except Exception:
                logger.exception("looking for bulk jobs to take over failed")

    async def take_over(self) -> list[int]:
        """Starts a run of every running job no replica holds (its lease expired); the run
        takes the lease or gives up quietly. Returns the jobs a run was started for."""
        started = []
        for job_id in await self.lease.unleased():
            if not self.is_running(job_id):
                logger.info("bulk job %s has no live replica: continuing it here", job_id)
                self._spawn(job_id)
                started.append(job_id)
        return started

    async def stop(self, grace: float = 10.0) -> None:
        """Lets requests in flight finish (up to `grace` s) so their rows are settled."""
        # Runs that end now leave their jobs 'running' (not done: rows are still pending), for
        # this replica's next start or, once the lease is released, for another replica.
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for control in self._jobs.values():
            control.stop.set()
        tasks = [control.task for control in self._jobs.values()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._jobs.clear()

    def is_running(self, job_id: int) -> bool:
        control = self._jobs.get(job_id)
        return control is not None and not control.task.done()

    # --- commands ----------------------------------------------------------------------------

    async def begin(
        self, job_id: int, *, claim: Callable[[], Awaitable[bool]] | None = None
    ) -> bool:
        """ready → running; False if the job was not ready (a double tap on Start).

        `claim` (a scheduled start) is committed in one transaction with the state change."""
        if claim is not None:
            if not await self._bulk.begin_claimed(job_id, claim):
                return False
        elif not await self._bulk.set_job_state(job_id, "running", allowed_from=("ready",)):
            return False
        self._spawn(job_id)
        return True

    async def pause(self, job_id: int, reason: str = PAUSE_USER) -> bool:
        changed = await self._bulk.set_job_state(
            job_id, "paused", allowed_from=("running",), reason=reason
        )
        self._signal_stop(job_id)
        return changed

    async def resume(self, job_id: int) -> bool:
        """paused → running with the owner's current token; False if the job was not paused.

        Raises ShortOfBalance when the balance does not cover the rows left (the same check as
        the dry run before Start), and the gateway's errors when the balance cannot be read.
        """
        control = self._jobs.get(job_id)
        if control is not None and not control.task.done() and not control.stop.is_set():
            return False
        # A run still winding down (its pause is being told) is fenced out by the new run's
        # lease: it claims no row after that, and its rows in flight settle as they would.
        job = await self._bulk.get_job(job_id)
        if job is None or job.state != "paused":
            return False
        # A pause may be hours old and the token another one: the balance is read afresh.
        await self._accounts.forget_balance(job.user_id)
        balance = await self._accounts.recent_balance(job.user_id)
        # Rows abroad are billed at their countries' rates, never at sms_price (see
        # services/pricing.py): the check covers the parts priced in Uzbekistan.
        local = await self._bulk.parts_left(job_id, phone_prefix=UZ_DIGITS)
        cost = cost_of(local, balance)
        if not cost.enough:
            raise ShortOfBalance(cost)
        if not await self._bulk.set_job_state(job_id, "running", allowed_from=("paused",)):
            return False
        self._spawn(job_id)
        return True

    async def cancel(self, job_id: int) -> bool:
        changed = await self._bulk.set_job_state(
            job_id, "cancelled", allowed_from=("ready", "running", "paused")
        )
        self._signal_stop(job_id)
        return changed

    async def pause_jobs_of(self, user_id: int, reason: str) -> list[int]:
        """Pauses every running job of the user (their access was withdrawn); returns their
        ids. Rows in flight settle; the progress message shows the reason. A job just created
        and not begun yet is paused too, so that its Start cannot slip past."""
        paused = []
        for job in await self._bulk.jobs_in(("ready", "running"), user_id=user_id):
            if await self._bulk.set_job_state(
                job.id, "paused", allowed_from=("ready", "running"), reason=reason
            ):
                self._signal_stop(job.id)
                logger.info("bulk job %s of user %s paused: %s", job.id, user_id, reason)
                paused.append(job.id)
        return paused

    def _signal_stop(self, job_id: int) -> None:
        control = self._jobs.get(job_id)
        if control is not None:
            control.stop.set()

    def _spawn(self, job_id: int) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._run(job_id, stop), name=f"bulk-{job_id}")
        self._jobs[job_id] = _JobControl(task, stop)
        task.add_done_callback(lambda _t: self._forget(job_id, task))

    def _forget(self, job_id: int, task: asyncio.Task[None]) -> None:
        control = self._jobs.get(job_id)
        if control is not None and control.task is task:
            del self._jobs[job_id]
        if not task.cancelled() and task.exception() is not None:
            logger.error("bulk job %s crashed", job_id, exc_info=task.exception())

    # --- the job -------------------------------------------------------------------------------

    async def _run(self, job_id: int, stop: asyncio.Event) -> None:
        mark_background()  # leaves the owner's token a slot for their taps
        yield_to_users()  # and users' updates go first on the database
        try:
            fence = await self.lease.acquire(job_id)
        except Exception:
            logger.exception("bulk job %s: lease not taken; another look soon", job_id)
            return
        if fence is None:
            logger.info("bulk job %s is sent by another replica (or no longer running)", job_id)
            return
        lost = asyncio.Event()
        keeper = asyncio.create_task(self.lease.keep(job_id, fence, stop, lost), name="lease")
        # The run's last word (paused, finished) is told once the lease is released, so that
        # a Resume right after it finds the job free.
        last: list[tuple[type[JobProgress | JobPaused | JobFinished], JobRow]] = []
        try:
            await self._run_job(job_id, stop, fence, lost, last)
        except Exception:
            # Without this the job would stay 'running' with no task behind it, its owner
            # never told. Rows caught mid-request may have gone out: 'unknown', not 'pending'.
            logger.exception("bulk job %s failed; pausing it", job_id)
            try:
                await self._bulk.unsettled_to_unknown(job_id, fence)
                if not lost.is_set():
                    await self._pause(job_id, PAUSE_ERROR, last)
            except Exception:
                logger.exception("bulk job %s could not be paused", job_id)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        # Not in `finally`: a run cancelled mid-request (a replica stopping past its grace)
        # leaves its lease to expire rather than hand the job over while a request may be out.
        with contextlib.suppress(Exception):
            await self.lease.release(job_id, fence)
        for event, job in last:
            await self._report(event, job)

    async def _run_job(
        self,
        job_id: int,
        stop: asyncio.Event,
        fence: int,
        lost: asyncio.Event,
        last: list[tuple[type[JobProgress | JobPaused | JobFinished], JobRow]],
    ) -> None:
        job = await self._bulk.get_job(job_id)
        if job is None:
            return
        if not await self._admitted(job.user_id):
            # /deny pauses only jobs that are running or ready; a Resume that was awaiting the
            # balance meanwhile set its job running after that, so the run asks once more.
            await self._pause(job_id, PAUSE_ACCESS, last)
            return
        try:
            session = await self._accounts.session(job.user_id)
        except NoToken:
            await self._pause(job_id, PAUSE_TOKEN, last)
            return
        run = _Run(self._bulk, session, job, stop, self._limits(), self._progress, self._stoplist)
        run.links = self.links
        run.lease = (self.lease.owner, fence)
        run.pacer = self.lease.pacer(job_id, self.rate)
        await run.send_all()
        # Every worker is done: a row still 'sending' lost its settlement to an error.
        if orphans := await self._bulk.unsettled_to_unknown(job_id, fence):
            logger.warning("bulk job %s: %s rows left mid-request are unknown", job_id, orphans)
        if lost.is_set() or self._stopping:
            # The job goes on elsewhere (its new holder pauses, finishes and tells), or after
            # this replica's restart: a shutdown is no end of the job.
            return
        job = await self._bulk.get_job(job_id)
        if job is None:
            return
        if run.claim_refused and job.state == "running":
            # A claim was refused under a running job: our lease was taken over, or the job
            # was paused and resumed on another replica meanwhile. Released (by _run), the
            # job is taken up again by whichever replica looks first (take_over).
            logger.info("bulk job %s: a row claim was refused; handing the job back", job_id)
            return
        if run.pause_reason is not None:
            await self._pause(job_id, run.pause_reason, last)
            return
        if job.state != "running":
            last.append((JobProgress, job))  # paused or cancelled by the user
            return
        try:
            await self.reconcile(job)
        except NoToken:
            # The history needs the owner's token, gone since the last row: the unknown rows
            # wait for a new one rather than the job calling itself done or broken.
            await self._pause(job_id, PAUSE_TOKEN, last)
            return
        if await self._bulk.set_job_state(job_id, "done", allowed_from=("running",)):
            job = await self._bulk.get_job(job_id)
            assert job is not None
            last.append((JobFinished, job))

    async def _admitted(self, user_id: int) -> bool:
        if self._users is None:
            return True
        return self._policy.admits(user_id, await self._users.get_access(user_id))

    async def _pause(
        self,
        job_id: int,
        reason: str,
        last: list[tuple[type[JobProgress | JobPaused | JobFinished], JobRow]],
    ) -> None:
        if await self._bulk.set_job_state(
            job_id, "paused", allowed_from=("running",), reason=reason
        ):
            logger.warning("bulk job %s paused: %s", job_id, reason)
            paused = await self._bulk.get_job(job_id)
            if paused is not None:
                last.append((JobPaused, paused))

    def _limits(self) -> _Limits:
        return _Limits(
            rate=self.rate,
            concurrency=self.concurrency,
            pause_after_errors=self.pause_after_errors,
            pause_after_refusals=self.pause_after_refusals,
            progress_every=self.progress_every,
        )

    async def _progress(self, job: JobRow) -> None:
        await self._report(JobProgress, job)

    async def _report(
        self, event: type[JobProgress | JobPaused | JobFinished], job: JobRow
    ) -> None:
        if self.notices is None:
            return
        try:
            await self.notices.emit(event(job, await self._bulk.counts(job.id)))
        except Exception:
            # A failed progress edit must never stop the sending.
            logger.exception("bulk job %s: progress report failed", job.id)

    # --- reconciliation ------------------------------------------------------------------------

    async def reconcile(self, job: JobRow) -> int:
        """Settles the job's 'unknown' rows from the gateway's history with the one matcher
        (services/reconcile.py), which weighs every open send of the user, single or bulk, and
        never takes an SMS another send holds.

        Only matches are settled here: a slow gateway may list an SMS minutes after its answer
        was lost, so a row not found stays 'unknown' and the delivery tracker goes on looking,
        with the rule single sends follow (no trace a day later: probably not sent)."""
        unknown = await self._bulk.rows_in(job.id, ("unknown",))
        if not unknown:
            return 0
        # A stateless view of the same database: the single sends compete for the same SMS.
        outbox = OutboxRepo(self._bulk.db)
        wanted = await wanted_keys(outbox, self._bulk, job.user_id)
        try:
            walk = await self._history_since(job, wanted)
        except DevsmsError as exc:
            # NoToken goes up: the job pauses for a token instead of calling itself done.
            logger.warning("bulk job %s: history unavailable (%s)", job.id, type(exc).__name__)
            return 0
        found = await settle(outbox, self._bulk, job.user_id, walk.records)
        return sum(1 for job_id, _row_no in found.bulk_rows if job_id == job.id)

    async def _history_since(self, job: JobRow, wanted: Collection[SmsKey]) -> HistoryWalk:
        """The history back to the job's start (at most HISTORY_PAGES_MAX pages)."""
        since = parse_stamp(job.started_at or job.created_at)
        walk = HistoryWalk(since=since)
        await walk.advance(self._accounts, job.user_id, pages=HISTORY_PAGES_MAX, wanted=wanted)
        return walk


@dataclass(frozen=True, slots=True)
class _Limits:
    """The runner's pacing and patience, fixed for one run."""

    rate: float
    concurrency: int
    pause_after_errors: int
    pause_after_refusals: int
    progress_every: float


class _Run:
    """One pass over a job's pending rows: a paced producer and `concurrency` workers.

    Its collaborators come in explicitly: the job's rows (`bulk`), the owner's gateway session
    (the token, the sends, a 401) and where progress goes.
    """

    def __init__(
        self,
        bulk: BulkRepo,
        session: AccountSession,
        job: JobRow,
        stop: asyncio.Event,
        limits: _Limits,
        progress: Callable[[JobRow], Awaitable[None]],
        stoplist: StopListRepo,
    ) -> None:
        self.bulk = bulk
        self.stoplist = stoplist
        self.session = session
        self.job = job
        self.stop = stop
        self.limits = limits
        self.progress = progress
        self.pause_reason: str | None = None
        self.links: CallbackLinks | None = None
        self.errors_in_row = 0
        # (replica, fence): rows are claimed only under the job's lease (see BulkRepo.claim).
        self.lease: tuple[str, int] | None = None
        self.pacer: JobPacer | None = None  # the job's rate across replicas
        self.claim_refused = False
        # Rows' outcomes being written: a worker goes on to its next row meanwhile, so the
        # outcomes of several workers share one commit (BulkRepo.finish_row is batched).
        self.settling: set[asyncio.Future[None]] = set()
        # Each worker's last outcome being written: awaited before its next request.
        self.last_outcome: dict[asyncio.Task[Any] | None, asyncio.Future[None]] = {}
        self.refusal: str | None = None
        self.refusals_in_row = 0
        self.last_progress = 0.0

    def halt(self, reason: str) -> None:
        if self.pause_reason is None:
            self.pause_reason = reason
        self.stop.set()

    async def send_all(self) -> None:
        queue: asyncio.Queue[BulkRow | None] = asyncio.Queue(maxsize=self.limits.concurrency)
        workers = [asyncio.create_task(self.worker(queue)) for _ in range(self.limits.concurrency)]
        limiter = self.pacer or RateLimiter(self.limits.rate)
        try:
            while not self.stop.is_set():
                batch = await self.bulk.next_pending(self.job.id, limit=100)
                if not batch:
                    break
                for row in batch:
                    await limiter.wait()
                    if self.stop.is_set():
                        break
                    await queue.put(row)
                # Rows handed out must be settled before the next batch is read.
                await queue.join()
                await self.settled()
        except BaseException:
            # Rows still queued are not claimed yet: they stay pending.
            self.stop.set()
            raise
        finally:
            for _ in workers:
                await queue.put(None)
            for result in await asyncio.gather(*workers, return_exceptions=True):
                if isinstance(result, Exception):
                    logger.error("bulk job %s: a worker died", self.job.id, exc_info=result)
            await self.settled()

    def settle(self, write: Awaitable[None]) -> None:
        """Writes a row's outcome without waiting for its commit (see `settling`)."""
        task = asyncio.ensure_future(write)
        self.settling.add(task)
        self.last_outcome[asyncio.current_task()] = task
        task.add_done_callback(self._settled_one)

    def _settled_one(self, task: asyncio.Future[None]) -> None:
        self.settling.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The row stays 'sending' and becomes 'unknown' once the run is over.
            logger.error("bulk job %s: a row's outcome not written", self.job.id, exc_info=exc)
            self.halt(PAUSE_ERROR)

    async def settled(self) -> None:
        """Every outcome handed to `settle` is committed (or failed, and the run halted)."""
        while self.settling:
            await asyncio.gather(*self.settling, return_exceptions=True)

    async def worker(self, queue: asyncio.Queue[BulkRow | None]) -> None:
        while True:
            row = await queue.get()
            try:
                if row is None:
                    return
                if not self.stop.is_set():
                    await self.send_row(row)
                    await self.maybe_progress()
            except Exception:
                # A worker that died would leave the producer waiting for it forever. The row
                # it held stays 'sending' and becomes 'unknown' once the run is over.
                logger.exception("bulk job %s: row %s failed", self.job.id, row and row.row_no)
                self.halt(PAUSE_ERROR)
            finally:
                queue.task_done()

    async def token_current(self) -> bool:
        """Whether the owner's token is still the one this run started with: after /token
        or /logout the old one must not send another SMS."""
        state = await self.session.check()
        if state is TokenState.GONE:
            self.halt(PAUSE_TOKEN)
        elif state is TokenState.CHANGED:
            self.halt(PAUSE_TOKEN_CHANGED)
        return state is TokenState.CURRENT

    async def send_row(self, row: BulkRow) -> None:
        if not await self.token_current():
            return
        link = None if self.links is None else self.links.new()
        callback = None if link is None else (link.token_hash, self.job.user_id)
        if not await self.bulk.claim(self.job.id, row.row_no, callback=callback, lease=self.lease):
            # Paused or cancelled (maybe on another replica), or the lease was taken over:
            # this run claims nothing more.
            self.claim_refused = True
            self.stop.set()
            return
        # This worker's previous outcome was only handed to the commit groups (it may commit
        # after this claim): awaited here, so when it failed the run halts and this row
        # never leaves.
        if (previous := self.last_outcome.pop(asyncio.current_task(), None)) is not None:
            await asyncio.gather(previous, return_exceptions=True)
            if self.pause_reason is not None:
                await self.bulk.release(self.job.id, row.row_no)
                return
        # Read after the claim is committed: a number stopped before this row was claimed is
        # caught, and the row ends 'stopped' (not a failure of the gateway, never sent).
        if await self.stoplist.entry(self.job.user_id, row.phone) is not None:
            await self.bulk.finish_row(self.job.id, row.row_no, "stopped", error=STOP_LIST)
            metrics.bulk_row("stopped")
            return
        state = await self.request_row(row, None if link is None else link.url)
        if state is not None:
            metrics.bulk_row(state)
            metrics.sms("bulk", "refused" if state == "failed" else state)

    async def request_row(self, row: BulkRow, callback_url: str | None) -> str | None:
        """The one request of a claimed row; the state it ended in (None: released)."""
        try:
            result = await self.session.send(
                row.phone, row.message, self.job.sender, callback_url=callback_url
            )
        except DevsmsUnauthorized:
            # Refused before sending; the session has marked the token invalid.
            self.settle(self.bulk.release(self.job.id, row.row_no))
            self.halt(PAUSE_TOKEN)
            return None
        except DevsmsUnavailable:
            # The connection was never made: the row goes back, untouched.
            self.settle(self.bulk.release(self.job.id, row.row_no))
            self.count_error()
            return None
        except DevsmsSendUnknown as exc:
            self.settle(
                self.bulk.finish_row(
                    self.job.id,
                    row.row_no,
                    "unknown",
                    error=exc.gateway_text or type(exc).__name__,
                )
            )
            self.count_error()
            return "unknown"
        except (DevsmsBadRequest, DevsmsNotFound) as exc:
            if exc.gateway_text and _NO_BALANCE.search(exc.gateway_text):
                self.settle(self.bulk.release(self.job.id, row.row_no))
                self.halt(PAUSE_BALANCE)
                return None
            error = exc.gateway_text or "refused"
            self.settle(self.bulk.finish_row(self.job.id, row.row_no, "failed", error=error))
            self.errors_in_row = 0
            self.count_refusal(error)
            return "failed"
        except DevsmsError as exc:
            self.settle(
                self.bulk.finish_row(
                    self.job.id, row.row_no, "failed", error=exc.gateway_text or type(exc).__name__
                )
            )
            return "failed"
        except BaseException:
            # Cancelled mid-request: it may have gone out.
            await asyncio.shield(
                self.bulk.finish_row(self.job.id, row.row_no, "unknown", error="interrupted")
            )
            raise
        else:
            self.errors_in_row = 0
            self.refusals_in_row = 0
            self.settle(
                self.bulk.finish_row(
                    self.job.id,
                    row.row_no,
                    "sent",
                    sms_id=result.sms_id,
                    request_id=result.request_id,
                    status=result.status,
                    cost=stored_cost(result.total_cost),
                )
            )
            return "sent"

    def count_error(self) -> None:
        self.errors_in_row += 1
        if self.errors_in_row >= self.limits.pause_after_errors:
            self.halt(PAUSE_GATEWAY)

    def count_refusal(self, text: str) -> None:
        """The same refusal on row after row pauses the job; the failed rows keep their text
        and the last one tells the owner why (BulkRepo.last_failure)."""
        if text == self.refusal:
            self.refusals_in_row += 1
        else:
            self.refusal, self.refusals_in_row = text, 1
        if self.refusals_in_row >= self.limits.pause_after_refusals:
            self.halt(PAUSE_REFUSED)

    async def maybe_progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress < self.limits.progress_every:
            return
        self.last_progress = now
        try:
            job = await self.bulk.get_job(self.job.id)
        except Exception:
            # A progress report is a courtesy: it never stops the sending.
            logger.exception("bulk job %s: progress not read", self.job.id)
            return
        if job is not None:
            await self.progress(job)
