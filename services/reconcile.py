"""Settling sends left 'unknown' by a lost answer, from what the gateway's history shows.

devsms has no idempotency key (see /work/shared/devsms-api.md, "Send an SMS"), so a send whose
answer was lost is never retried; it waits in state 'unknown' until the history shows an SMS
that must be it. This module is the one place that decides which gateway SMS is which send,
for single sends (storage/outbox.py) and bulk rows (storage/bulk.py) alike:

- :func:`pair` is the matcher: the same phone (digits), the same text (line endings and outer
  spaces aside), created while the request could have been in flight (give or take the clock
  skew), and an SMS already held by any send of the user (single or bulk) is never taken; an
  OTP send, whose text the gateway writes from its template, by its phone and its code;
- :class:`HistoryWalk` reads the history back page by page (services/history_pages.py) until
  it passes a moment;
- :func:`settle` runs the matcher over every open send of the user at once, so an unknown
  single send never takes a bulk row's SMS nor the other way round, and writes the results.

Only a walk that reached back past a send may conclude that it is not in the history, and only
a day after the send (a slow gateway may list it late): services/tracker.py decides that, for
single sends and bulk rows alike, and :func:`conclude_not_sent` writes it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from services.devsms import SmsRecord
from services.history_pages import HistoryCursor, HistorySource, record_identity
from services.otp import code_of, codes_in
from services.pricing import stored_cost
from services.sending import first_check_at
from storage.bulk import BulkRepo, BulkRow
from storage.outbox import OutboxKind, OutboxRepo, OutboxRow, OutboxState

logger = logging.getLogger(__name__)

# Our clock and the gateway's need not agree to the second.
CLOCK_SKEW: Final = timedelta(minutes=5)
_NOT_DIGITS: Final = re.compile(r"[^0-9]")
_NEVER: Final = datetime.max.replace(tzinfo=UTC)
# Starts an OTP send's key: no SMS text begins with a NUL, so it never meets a text's key.
_OTP_MARK: Final = "\x00otp:"

SmsKey = tuple[str, str]


class SendKind(StrEnum):
    OUTBOX = "outbox"
    BULK = "bulk"


@dataclass(frozen=True, slots=True)
class OpenSend:
    """An SMS the bot asked for whose gateway record is not known: an outbox row or a bulk row.

    ``earliest`` and ``latest`` bound when the gateway can have created it (our clock, UTC;
    None when unknown). A send still in flight takes part only to keep its own SMS from the
    others: its answer, not the history, settles it.
    """

    kind: SendKind
    id: int
    """The outbox id, or the bulk job id."""
    row_no: int
    phone: str
    message: str
    earliest: datetime | None
    latest: datetime | None
    in_flight: bool

    otp_code: str | None = None
    """For an OTP send: its code. The gateway writes the text from its template, so such a
    send is known in the history by its phone and the code within the text."""

    @property
    def key(self) -> SmsKey:
        if self.otp_code is not None:
            return _digits(self.phone), _OTP_MARK + self.otp_code
        return _digits(self.phone), _text(self.message)

    @classmethod
    def of_outbox(cls, row: OutboxRow) -> OpenSend:
        in_flight = row.state is OutboxState.PENDING
        return cls(
            SendKind.OUTBOX,
            row.id,
            0,
            row.phone,
            row.message,
            otp_code=code_of(row.message) if row.kind is OutboxKind.OTP else None,
            earliest=parse_stamp(row.created_at),
            # Marked unknown when the request was over: the gateway had it by then, if ever.
            latest=None if in_flight else parse_stamp(row.updated_at),
            in_flight=in_flight,
        )

    @classmethod
    def of_bulk(cls, row: BulkRow, job_started: str | None) -> OpenSend:
        in_flight = row.state == "sending"
        return cls(
            SendKind.BULK,
            row.job_id,
            row.row_no,
            row.phone,
            row.message,
            # A row in flight was claimed at updated_at; an unknown one, some time after the
            # job started.
            earliest=parse_stamp(row.updated_at if in_flight else job_started),
            latest=None if in_flight else parse_stamp(row.updated_at),
            in_flight=in_flight,
        )


@dataclass(slots=True)
class Settled:
    outbox_ids: list[int] = field(default_factory=list)
    bulk_rows: list[tuple[int, int]] = field(default_factory=list)
    """(job id, row number) of each bulk row settled."""


# --- the matcher -------------------------------------------------------------------------------


def sms_keys(record: SmsRecord) -> set[SmsKey]:
    """Every key of a send this record could be: its phone and text, and its phone with each
    code in the text (an OTP send's key); empty without a phone or a text."""
    if record.phone is None or record.message is None:
        return set()
    phone = _digits(record.phone)
    keys = {(phone, _text(record.message))}
    keys.update((phone, _OTP_MARK + code) for code in codes_in(record.message))
    return keys


def pair(
    sends: Iterable[OpenSend], records: Iterable[SmsRecord], taken: Collection[int] = ()
) -> list[tuple[OpenSend, SmsRecord]]:
    """Which record is which send. Each record serves at most one send, and none in ``taken``
    (SMS already held by a send) serves any.

    Sends are served in the order their window closes, each taking the oldest record that fits
    it; that pairs identical sends up in order and gives each send the most records it can.
    A send still in flight is never paired (its answer settles it), but every record that fits
    it may be its own and is given to no other send until it is over: its window has no end,
    so served in that order it would come last and an older send could take its SMS.
    """
    pools: dict[SmsKey, list[SmsRecord]] = {}
    for record in _oldest_first(records):
        if record.sms_id is not None and record.sms_id in taken:
            continue
        for key in sms_keys(record):
            pools.setdefault(key, []).append(record)
    # A record sits in a pool per key it has (its text, the codes in it): used once in all.
    used: set[int] = set()
    in_flight: dict[SmsKey, list[OpenSend]] = {}
    settling: list[OpenSend] = []
    for send in sends:
        if send.in_flight:
            in_flight.setdefault(send.key, []).append(send)
        else:
            settling.append(send)
    ordered = sorted(
        settling,
        key=lambda s: (s.latest or _NEVER, s.earliest or _NEVER, s.kind, s.id, s.row_no),
    )
    pairs: list[tuple[OpenSend, SmsRecord]] = []
    for send in ordered:
        pool = pools.get(send.key)
        if not pool:
            continue
        holders = in_flight.get(send.key, ())
        index = next(
            (
                i
                for i, record in enumerate(pool)
                if id(record) not in used
                and _fits(send, record)
                and not any(_fits(h, record) for h in holders)
            ),
            None,
        )
        if index is not None:
            record = pool.pop(index)
            used.add(id(record))
            pairs.append((send, record))
    return pairs


def _fits(send: OpenSend, record: SmsRecord) -> bool:
    """False only when the record was provably created outside the send's window."""
    created = record.created_at
    if not isinstance(created, datetime):
        return True  # no usable time: phone and text decide
    if created.tzinfo is None:
        # The client makes the gateway's times aware (services/devsms.py); a naive one comes
        # from our own records, which are UTC.
        created = created.replace(tzinfo=UTC)
    if send.earliest is not None and created < send.earliest - CLOCK_SKEW:
        return False
    return send.latest is None or created <= send.latest + CLOCK_SKEW


def _oldest_first(records: Iterable[SmsRecord]) -> list[SmsRecord]:
    # The gateway's ids grow with time. History comes newest first; records without an id
    # keep their relative order, last.
    return sorted(records, key=lambda r: (r.sms_id is None, r.sms_id or 0))


# --- the history walk --------------------------------------------------------------------------


@dataclass(slots=True)
class HistoryWalk:
    """A user's history read back, newest first, a few pages at a time, until it passes
    ``since`` (less the clock skew) or ends; ``since=None`` reads to the end.

    The pages come from :class:`~services.history_pages.HistoryCursor`. New SMS sent meanwhile
    push entries to later offsets, which only makes a page repeat some entries, never skip one:
    entries are kept once. Only entries some send could be (their phone and text among
    ``wanted``) are kept, so a long walk stays small.
    """

    since: datetime | None
    passed: bool = False
    """A page reached back past ``since``."""
    _cursor: HistoryCursor | None = None
    _kept: dict[object, SmsRecord] = field(default_factory=dict)

    @property
    def records(self) -> list[SmsRecord]:
        return list(self._kept.values())

    @property
    def complete(self) -> bool:
        """The walk got back past ``since``, or to the end of the history."""
        return self.passed or (self._cursor is not None and self._cursor.ended)

    @property
    def stuck(self) -> bool:
        """The gateway ignores the offset: nothing can be concluded from this walk."""
        return self._cursor is not None and self._cursor.stuck

    @property
    def finished(self) -> bool:
        return self.complete or self.stuck

    async def advance(
        self, accounts: HistorySource, user_id: int, *, pages: int, wanted: Collection[SmsKey]
    ) -> bool:
        """Reads up to ``pages`` more pages; True once the walk is complete. Gateway errors
        propagate: the walk stays where it was, to go on later."""
        if self._cursor is None:
            self._cursor = HistoryCursor(accounts, user_id)
        for _ in range(pages):
            if self.finished:
                break
            items = (await self._cursor.read()).items
            for record in items:
                if not sms_keys(record).isdisjoint(wanted):
                    self._kept.setdefault(record_identity(record), record)
            if self._passed(items):
                self.passed = True
        return self.complete

    def _passed(self, items: Sequence[SmsRecord]) -> bool:
        """Every entry of the page is older than the bound. Pages come newest first, but the
        order within a page is the gateway's: one old entry proves nothing about the rest,
        and an entry without a readable time could be any age."""
        if self.since is None or not items:
            return False
        bound = self.since - CLOCK_SKEW
        for record in items:
            created = record.created_at
            if not isinstance(created, datetime):
                return False
            aware = created if created.tzinfo is not None else created.replace(tzinfo=UTC)
            if aware >= bound:
                return False
        return True


# --- settling ----------------------------------------------------------------------------------


async def open_sends(outbox: OutboxRepo, bulk: BulkRepo, user_id: int) -> list[OpenSend]:
    """Every send of the user in flight or of unknown fate, single and bulk."""
    sends = [OpenSend.of_outbox(row) for row in await outbox.open_for_user(user_id)]
    sends.extend(
        OpenSend.of_bulk(row, started) for row, started in await bulk.open_rows_of_user(user_id)
    )
    return sends


async def wanted_keys(outbox: OutboxRepo, bulk: BulkRepo, user_id: int) -> set[SmsKey]:
    return {send.key for send in await open_sends(outbox, bulk, user_id)}


async def settle(
    outbox: OutboxRepo, bulk: BulkRepo, user_id: int, records: Sequence[SmsRecord]
) -> Settled:
    """Marks sent every unknown send of the user (single or bulk) that ``records`` show."""
    settled = Settled()
    if not records:
        return settled
    # One at a time per user: two settlements reading the same "free" SMS would both take it.
    async with _user_lock(user_id):
        sends = await open_sends(outbox, bulk, user_id)
        if all(send.in_flight for send in sends):
            return settled
        keys = {send.key for send in sends}
        candidates = [record for record in records if not sms_keys(record).isdisjoint(keys)]
        ids = sorted({record.sms_id for record in candidates if record.sms_id is not None})
        taken = await outbox.sms_ids_taken(user_id, ids)
        for send, record in pair(sends, candidates, taken):
            if send.kind is SendKind.OUTBOX:
                if await _settle_outbox(outbox, send.id, record):
                    settled.outbox_ids.append(send.id)
            elif await bulk.settle_unknown(
                send.id,
                send.row_no,
                sms_id=record.sms_id,
                request_id=record.request_id,
                status=record.status,
                cost=stored_cost(record.cost),
            ):
                settled.bulk_rows.append((send.id, send.row_no))
            else:
                continue
            logger.info(
                "%s %s/%s of user %s reconciled with sms %s",
                send.kind,
                send.id,
                send.row_no,
                user_id,
                record.sms_id,
            )
    return settled


async def conclude_not_sent(
    outbox: OutboxRepo,
    bulk: BulkRepo,
    user_id: int,
    outbox_ids: Iterable[int] = (),
    bulk_rows: Iterable[tuple[int, int]] = (),
) -> Settled:
    """Marks 'not_sent' the given sends still 'unknown': a finished walk back past them found
    no trace a day later (the caller's rule). Under the same lock as :func:`settle`, and only
    from 'unknown', so a send a match settled meanwhile stays sent."""
    concluded = Settled()
    async with _user_lock(user_id):
        for row_id in outbox_ids:
            if await outbox.mark_not_sent(row_id):
                concluded.outbox_ids.append(row_id)
        for job_id, row_no in bulk_rows:
            if await bulk.mark_not_sent(job_id, row_no):
                concluded.bulk_rows.append((job_id, row_no))
    return concluded


async def reconcile_unknown(
    outbox: OutboxRepo,
    user_id: int,
    records: Sequence[SmsRecord],
    bulk: BulkRepo | None = None,
) -> list[int]:
    """:func:`settle`, for callers that show single sends: the outbox ids it settled. The bulk
    rows take part whether or not ``bulk`` is given (both live in the same database)."""
    bulk = bulk if bulk is not None else BulkRepo(outbox.db)
    return (await settle(outbox, bulk, user_id, records)).outbox_ids


async def _settle_outbox(outbox: OutboxRepo, row_id: int, record: SmsRecord) -> bool:
    if not await outbox.mark_sent(
        row_id,
        sms_id=record.sms_id,
        request_id=record.request_id,
        status=record.status,
        parts_count=record.parts_count,
        total_cost=stored_cost(record.cost),
    ):
        return False
    if record.sms_id is not None:
        # From here it is tracked like any sent SMS, its delivery result reported once.
        await outbox.schedule_check(row_id, first_check_at(after=timedelta(0)), 0)
    return True


_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


@asynccontextmanager
async def _user_lock(user_id: int) -> AsyncIterator[None]:
    lock = _locks.get(user_id)
    if lock is None:
        lock = _locks[user_id] = asyncio.Lock()
    async with lock:
        yield


# --- small helpers -----------------------------------------------------------------------------


def parse_stamp(value: str | None) -> datetime | None:
    """One of our `*_at` columns (UTC ISO 8601, storage.db.utc_now) as an aware datetime."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _digits(phone: str) -> str:
    return _NOT_DIGITS.sub("", phone)


def _text(message: str) -> str:
    # Line endings and outer whitespace may be normalised by the gateway or its database.
    return message.replace("\r\n", "\n").strip()
