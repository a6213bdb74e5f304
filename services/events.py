"""What the bot must say on its own, as small domain events; services own this protocol.

A service decides *that* something must be said (a balance fell below its threshold, an SMS
reached a final status, a bulk job paused) and emits one of these through `Notices`. It builds
no text, button or callback string and imports no aiogram: the presentation package
(bot/notices/) turns each event into a message in the recipient's language and hands it to the
one paced notifier.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from services.money import Money
from services.sending import SendOutcome
from storage import JobCounts, JobRow, ScheduledRow, Totals, UserRow


class Delivery(StrEnum):
    """What became of one message the bot sent on its own."""

    DELIVERED = "delivered"
    BLOCKED = "blocked"  # 403: the user blocked the bot / was deactivated, or the bot was kicked
    FAILED = "failed"  # gave up: chat not found, bad request, retries used up, shutting down
    SKIPPED = "skipped"  # not attempted: the user is marked inactive (blocked the bot earlier)


@dataclass(frozen=True, slots=True)
class Person:
    """Who a notice is for, or about (admins see the name)."""

    user_id: int
    language: str | None
    first_name: str | None
    username: str | None

    @classmethod
    def of(cls, user: UserRow) -> Person:
        return cls(user.id, user.language, user.first_name, user.username)


# --- balance watcher -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LowBalance:
    """The balance fell below the user's threshold: told to the user and to the admins."""

    person: Person
    balance: Money
    threshold: Money
    sms_left: int | None
    days_left: int | None
    """Whole days at the current pace; None when nothing is being spent."""


@dataclass(frozen=True, slots=True)
class TokenRejected:
    """devsms answered 401 for the user's token: told once, to the user and to the admins."""

    person: Person


# --- delivery tracking ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """A single SMS reached a final status."""

    person: Person
    phone: str
    status: str | None
    sms_id: int | None


@dataclass(frozen=True, slots=True)
class UnknownSendMissing:
    """A send whose answer was lost left no trace in the history a day later."""

    person: Person
    phone: str


@dataclass(frozen=True, slots=True)
class BulkDeliveryResults:
    """Delivery results of a finished bulk job, once."""

    person: Person
    job_id: int
    delivered: int
    failed: int
    waiting: int


# --- insights: the account's whole traffic (opt-in, to the owner) ---------------------------


@dataclass(frozen=True, slots=True)
class FailuresSeen:
    """SMS sent outside the bot ended REJECTED or UNDELIVERABLE (the failure watch), grouped:
    at most one such notice an hour."""

    person: Person
    total: int
    operators: tuple[tuple[str, int], ...]
    """(operator or prefix, how many), most first; "" for numbers of no known operator."""
    statuses: tuple[tuple[str, int], ...]
    """(status, how many), most first."""
    batch: int
    """Finds these SMS again (the "Show them" button)."""


@dataclass(frozen=True, slots=True)
class DeliveryRateLow:
    """The delivery rate of the last hour fell below the owner's threshold (once an hour)."""

    person: Person
    rate: int
    """Percent of the settled SMS that were delivered."""
    threshold: int
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class TrafficDigest:
    """The daily or weekly digest of the account's traffic."""

    person: Person
    weekly: bool
    first_day: date
    last_day: date
    """The period's local days, both included."""
    current: Totals
    previous: Totals
    balance: Money | None
    days_left: int | None
    """At the period's average spending per day; None when nothing was spent."""
    jobs: int
    """Bulk jobs started in the period."""


# --- gateway health (to the admins) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayDown:
    failures: int
    """Requests in a row that failed."""


@dataclass(frozen=True, slots=True)
class GatewayUp:
    down_for: float
    """Seconds."""


# --- bulk jobs (to the job's owner) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobReport:
    job: JobRow
    counts: JobCounts


@dataclass(frozen=True, slots=True)
class JobProgress(JobReport):
    """The job moved on (or the owner paused or cancelled it): its progress message changes."""


@dataclass(frozen=True, slots=True)
class JobPaused(JobReport):
    """The runner paused the job; `job.pause_reason` says why."""


@dataclass(frozen=True, slots=True)
class JobFinished(JobReport):
    """Every row is settled; the summary and the result file go out once."""


# --- scheduled sends (to their owner) ------------------------------------------------------


class NotStarted(StrEnum):
    """Why a scheduled send whose time came did not go out."""

    BALANCE = "balance"  # the balance does not cover it now
    TOKEN = "token"  # no token, or devsms refuses it
    ACCESS = "access"  # an administrator withdrew the owner's access
    JOB = "job"  # the prepared bulk job is no longer waiting (cancelled, paused by /deny)
    REFUSED = "refused"  # the send path refused it before any request
    STOPPED = "stopped"  # the number was put on the owner's stop list after it was scheduled


class Missed(StrEnum):
    """Why a scheduled send waits for its owner's decision instead of going out."""

    LATE = "late"  # its time passed while the bot was down, by more than SCHEDULE_GRACE
    BUSY = "busy"  # another bulk job of the owner is still in progress


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    person: Person
    item: ScheduledRow
    zone: str
    """The owner's time zone, in which times are shown."""


@dataclass(frozen=True, slots=True)
class ScheduledJobStarted(ScheduledEvent):
    """A scheduled bulk job began; its summary follows when it is done."""


@dataclass(frozen=True, slots=True)
class ScheduledSmsDone(ScheduledEvent):
    """A scheduled SMS went through the send path; `outcome` is what became of it."""

    outcome: SendOutcome


@dataclass(frozen=True, slots=True)
class ScheduledNotStarted(ScheduledEvent):
    reason: NotStarted
    missing: Money | None = None
    """How much the balance lacks (reason BALANCE), when known."""


@dataclass(frozen=True, slots=True)
class ScheduledMissed(ScheduledEvent):
    """Waits for "Send now" or "Cancel" from its owner."""

    reason: Missed
    other_job: int | None = None


# --- broadcasts (to the admin who started one) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """What became of a broadcast's messages so far."""

    delivered: int = 0
    blocked: int = 0
    """Blocked the bot: now (403), or earlier (marked inactive, so not even tried)."""
    failed: int = 0

    @classmethod
    def of(cls, outcomes: Counter[Delivery]) -> Tally:
        return cls(
            delivered=outcomes[Delivery.DELIVERED],
            blocked=outcomes[Delivery.BLOCKED] + outcomes[Delivery.SKIPPED],
            failed=outcomes[Delivery.FAILED],
        )

    @property
    def done(self) -> int:
        return self.delivered + self.blocked + self.failed


@dataclass(frozen=True, slots=True)
class BroadcastReport:
    chat_id: int
    message_id: int
    """The admin's report message, edited in place."""
    language: str
    """The admin's, as when they started it."""
    total: int
    tally: Tally


@dataclass(frozen=True, slots=True)
class BroadcastProgress(BroadcastReport):
    pass


@dataclass(frozen=True, slots=True)
class BroadcastFinished(BroadcastReport):
    stopped: bool = False
    """An error ended it before every message was sent (it is logged)."""


# --- access (from handlers, to the admins or the user decided on) -----------------------


@dataclass(frozen=True, slots=True)
class AccessRequested:
    person: Person


@dataclass(frozen=True, slots=True)
class TokenConnected:
    person: Person


@dataclass(frozen=True, slots=True)
class AccessDecided:
    """An administrator allowed or denied the user (told only when it changed for them)."""

    person: Person
    allowed: bool


Event = (
    LowBalance
    | TokenRejected
    | DeliveryResult
    | UnknownSendMissing
    | BulkDeliveryResults
    | GatewayDown
    | GatewayUp
    | JobProgress
    | JobPaused
    | JobFinished
    | ScheduledJobStarted
    | ScheduledSmsDone
    | ScheduledNotStarted
    | ScheduledMissed
    | BroadcastProgress
    | BroadcastFinished
    | AccessRequested
    | TokenConnected
    | AccessDecided
    | FailuresSeen
    | DeliveryRateLow
    | TrafficDigest
)


class Notices(Protocol):
    """Says what an event means to whom it concerns (bot/notices.Presenter).

    A message to a user is awaited until it is delivered or given up on, so a background job
    is paced by its own notices and a user's notices keep their order. Admin notices and
    the events handlers emit (AccessRequested, TokenConnected, AccessDecided) are only
    queued: a handler never waits on pacing. Never raises for Telegram errors.
    """

    async def emit(self, event: Event) -> None: ...
