"""The whole account's traffic: every SMS of a user's token as the gateway's history shows it.

Written by services/traffic.py (the sync worker) from ``get_history``, whoever sent the SMS:
the bot (an outbox row), a bulk job (a bulk row) or the owner's own systems ("elsewhere").
Read by /stats, /export, the digest and the failure watch. Also the balance snapshots the
watcher takes, for the forecast.

Times are stored as ISO-8601 UTC text (``storage.db.utc_now``'s form), so comparisons on the
text order them. Costs are stored in millionths (``cost_micros``) with their currency, so sums
in SQL are exact integers: the gateway's dollar prices are fractions of a cent.

The read API (``daily_totals``, ``period_totals``, ``iter_rows``, ``balance_forecast``...) is
used by other features; keep its signatures stable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from storage.db import Database, Row, Statement, sqlite_int, utc_now

MICROS: Final = Decimal(1_000_000)
DELIVERED_STATUSES: Final[frozenset[str]] = frozenset({"DELIVERED", "PARTDELIVERED"})
FAILED_STATUSES: Final[frozenset[str]] = frozenset({"REJECTED", "UNDELIVERABLE", "EXPIRED"})
# Longest period one daily_totals call covers (a year and a bit): bounds the query's size.
MAX_DAYS: Final = 400
# SQLite builds before 3.32 allow 999 bound parameters.
_PARAMS_PER_QUERY: Final = 900
# Rows one transaction of forget() deletes: about 16 ms of the one connection.
FORGET_CHUNK: Final = 5000
# Balance snapshots: at most one per user per this many seconds, kept this long.
SNAPSHOT_SPACING: Final = timedelta(hours=1)
SNAPSHOT_KEEP: Final = timedelta(days=100)

_DELIVERED_SQL: Final = "('DELIVERED', 'PARTDELIVERED')"
_FAILED_SQL: Final = "('REJECTED', 'UNDELIVERABLE', 'EXPIRED')"
# What the failure watch tells about (an SMS that expired was not refused by anyone).
_WATCHED_SQL: Final = "('REJECTED', 'UNDELIVERABLE')"
PASSED_OVER: Final = -1

_ROW_COLUMNS: Final = (
    "id, user_id, sms_id, request_id, phone, message, sender, parts, cost_micros, currency, "
    "status, created_at, origin, outbox_id, job_id, template"
)


class Origin(StrEnum):
    """Who sent an SMS of the account."""

    BOT = "bot"  # a single send from the chat (an outbox row)
    BULK = "bulk"  # a row of a bulk job
    ELSEWHERE = "elsewhere"  # not through this bot: the owner's backend, the web panel...


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    WAITING = "waiting"  # waiting, sent, ACCEPTED, unknown statuses: not settled yet


def outcome_of(status: str | None) -> Outcome:
    """The one rule that sorts a gateway status into delivered / failed / waiting."""
    code = (status or "").strip().upper()
    if code in DELIVERED_STATUSES:
        return Outcome.DELIVERED
    if code in FAILED_STATUSES:
        return Outcome.FAILED
    return Outcome.WAITING


def to_micros(amount: Decimal) -> int:
    return int((amount * MICROS).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).normalize()


def utc_text(moment: datetime) -> str:
    """An aware datetime as stored in the `*_at` columns (UTC, whole seconds)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give an aware one (UTC)")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat(timespec="seconds")


def parse_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _zone(zone: str | tzinfo) -> tzinfo:
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def day_start(day: date, zone: str | tzinfo) -> datetime:
    """The UTC instant a local calendar day begins in `zone`."""
    return datetime.combine(day, time(0), tzinfo=_zone(zone)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class TrafficRow:
    """One SMS of the account."""

    id: int
    user_id: int
    sms_id: int | None
    request_id: str | None
    phone: str | None
    message: str | None
    sender: str | None
    parts: int | None
    cost: Decimal | None
    currency: str | None
    """"UZS" or "USD" with `cost`; services.money.Money(cost, currency)."""
    status: str | None
    """The gateway's status, verbatim."""
    created_at: datetime
    """Aware, UTC."""
    origin: Origin
    outbox_id: int | None
    job_id: int | None
    """The bulk job it was a row of."""
    template: str | None
    """The saved template's name when a single send from the bot was made from one."""

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.status)

    @classmethod
    def from_row(cls, row: Row) -> TrafficRow:
        micros = row["cost_micros"]
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            sms_id=row["sms_id"],
            request_id=row["request_id"],
            phone=row["phone"],
            message=row["message"],
            sender=row["sender"],
            parts=row["parts"],
            cost=None if micros is None else from_micros(micros),
            currency=row["currency"],
            status=row["status"],
            created_at=parse_utc(row["created_at"]),
            origin=Origin(row["origin"]),
            outbox_id=row["outbox_id"],
            job_id=row["job_id"],
            template=row["template"],
        )


@dataclass(frozen=True, slots=True)
class Totals:
    sms: int = 0
    parts: int = 0
    delivered: int = 0
    failed: int = 0
    waiting: int = 0
    cost_by_currency: dict[str, Decimal] = field(default_factory=dict)

    @property
    def delivery_rate(self) -> float | None:
        """Delivered among the settled ones (0..1); None when none settled."""
        settled = self.delivered + self.failed
        return None if settled == 0 else self.delivered / settled


@dataclass(frozen=True, slots=True)
class DayTotals(Totals):
    day: date = date.min
    """The local calendar day in the zone asked for."""


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    taken_at: datetime
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Forecast:
    """How long the balance lasts at the average spend of the last `days` days."""

    balance: Decimal
    currency: str
    taken_at: datetime
    daily_spend: Decimal
    """Average per day over the window, in `currency`."""
    days: int
    """The window's length."""
    days_left: int | None
    """Whole days; None when nothing was spent in the window."""

    @classmethod
    def at_pace(cls, snapshot: BalanceSnapshot, spent: Decimal, days: int) -> Forecast:
        """The forecast for `snapshot` when `spent` (in its currency) went in `days` days."""
        daily = spent / days
        return cls(
            balance=snapshot.amount,
            currency=snapshot.currency,
            taken_at=snapshot.taken_at,
            daily_spend=daily,
            days=days,
            days_left=forecast_days(snapshot.amount, daily),
        )


@dataclass(frozen=True, slots=True)
class NewRecord:
    """One history entry as the sync hands it in (already parsed, UTC)."""

    sms_id: int | None
    request_id: str | None
    phone: str | None
    message: str | None
    sender: str | None
    parts: int | None
    cost: Decimal | None
    currency: str | None
    status: str | None
    created_at: datetime | None
    """None when the gateway gave no time it could parse: the time it was first seen."""


@dataclass(frozen=True, slots=True)
class SyncState:
    user_id: int
    resume_offset: int | None
    """Where reading older history goes on next round; None: nothing older to read."""
    synced_at: str | None
    rounds: int


@dataclass(frozen=True, slots=True)
class MergeResult:
    inserted: int
    updated: int
    """Known rows whose status (or cost, parts) changed."""
    known: int
    """Entries that were already stored, changed or not."""


def _totals_from(values: dict[str, Any], costs: dict[str, Decimal]) -> dict[str, Any]:
    return {
        "sms": int(values.get("sms") or 0),
        "parts": int(values.get("parts") or 0),
        "delivered": int(values.get("delivered") or 0),
        "failed": int(values.get("failed") or 0),
        "waiting": int(values.get("waiting") or 0),
        "cost_by_currency": costs,
    }


# The columns of _AGGREGATES, in order.
_COUNTED: Final = ("sms", "parts", "delivered", "failed")
_AGGREGATES: Final = (
    "COUNT(*) AS sms, SUM(COALESCE(t.parts, 0)) AS parts, "
    f"COUNT(*) FILTER (WHERE UPPER(COALESCE(t.status, '')) IN {_DELIVERED_SQL}) AS delivered, "
    f"COUNT(*) FILTER (WHERE UPPER(COALESCE(t.status, '')) IN {_FAILED_SQL}) AS failed"
)


_INSERT: Final = (
    "INSERT INTO traffic (user_id, sms_id, request_id, phone, message, sender, parts, "
    "cost_micros, currency, status, created_at, origin, outbox_id, job_id, first_seen_at, "
    "updated_at, template) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    # The saved template a single send was made from comes with the outbox row it matched.
    "(SELECT o.template FROM outbox o WHERE o.id = ?))"
)


@dataclass(slots=True)
class _Known:
    """Stored rows of a page's entries, by the id that found them."""

    by_sms: dict[object, Row] = field(default_factory=dict)
    by_request: dict[object, Row] = field(default_factory=dict)
    by_entry: dict[object, Row] = field(default_factory=dict)


def _identity(record: NewRecord) -> object:
    if record.sms_id is not None:
        return ("id", record.sms_id)
    if record.request_id is not None:
        return ("request", record.request_id)
    created = None if record.created_at is None else utc_text(record.created_at)
    return ("entry", record.phone, record.message, created)


def _pick(known: _Known, record: NewRecord) -> Row | None:
    sms_id = sqlite_int(record.sms_id)
    if sms_id is not None and sms_id in known.by_sms:
        return known.by_sms[sms_id]
    if record.request_id is not None and record.request_id in known.by_request:
        return known.by_request[record.request_id]
    return known.by_entry.get(_identity(record))


def _change(existing: Row, record: NewRecord) -> tuple[Any, ...] | None:
    """The UPDATE parameters when the history shows something new, else None."""
    micros = None if record.cost is None else to_micros(record.cost)
    status = record.status if record.status is not None else existing["status"]
    parts = record.parts if record.parts is not None else existing["parts"]
    cost = micros if micros is not None else existing["cost_micros"]
    if (status, parts, cost) == (existing["status"], existing["parts"], existing["cost_micros"]):
        return None
    return (status, parts, cost, record.currency if micros is not None else None, existing["id"])


def _insert_params(
    user_id: int,
    record: NewRecord,
    origin: tuple[Origin, int | None, int | None],
    seen_at: datetime,
    stamp: str,
) -> tuple[Any, ...]:
    kind, outbox_id, job_id = origin
    created = record.created_at if record.created_at is not None else seen_at
    return (
        user_id,
        sqlite_int(record.sms_id),
        record.request_id,
        record.phone,
        record.message,
        record.sender,
        record.parts,
        None if record.cost is None else to_micros(record.cost),
        record.currency if record.cost is not None else None,
        record.status,
        utc_text(created),
        kind.value,
        outbox_id,
        job_id,
        stamp,
        stamp,
        outbox_id,
    )


class TrafficRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- read API (used by /stats, /export, the digest) -----------------------------------

    async def daily_totals(
        self, user_id: int, since_utc: datetime, until_utc: datetime, zone: str | tzinfo
    ) -> list[DayTotals]:
        """One entry per local calendar day of `zone` from the day holding `since_utc` to the
        day holding the instant before `until_utc`, days without SMS included (zeros); each
        day counts the SMS created within it and inside [since_utc, until_utc)."""
        tz = _zone(zone)
        first = since_utc.astimezone(tz).date()
        last = (until_utc - timedelta(microseconds=1)).astimezone(tz).date()
        if last < first:
            return []
        if (last - first).days >= MAX_DAYS:
            raise ValueError(f"at most {MAX_DAYS} days at once")
        bounds: list[tuple[date, str, str]] = []
        day = first
        while day <= last:
            lo = max(day_start(day, tz), since_utc.astimezone(UTC))
            hi = min(day_start(day + timedelta(days=1), tz), until_utc.astimezone(UTC))
            bounds.append((day, utc_text(lo), utc_text(hi)))
            day += timedelta(days=1)
        counts: dict[str, dict[str, Any]] = {}
        costs: dict[str, dict[str, Decimal]] = {}
        for start in range(0, len(bounds), _PARAMS_PER_QUERY // 3):
            chunk = bounds[start : start + _PARAMS_PER_QUERY // 3]
            values = ", ".join("(?, ?, ?)" for _ in chunk)
            params: list[Any] = []
            for day_, lo_text, hi_text in chunk:
                params.extend((day_.isoformat(), lo_text, hi_text))
            # One query, per day and currency (SMS without a known cost under NULL): the
            # counts of a day are the sum over its currencies. On the read-only connection:
            # a chart (/stats, the digest) never queues behind a background round's writes,
            # nor an update's writes behind it.
            rows = await self._db.read_all(
                f"WITH days(day, lo, hi) AS (VALUES {values}) "
                f"SELECT days.day AS day, t.currency AS currency, {_AGGREGATES}, "
                "SUM(t.cost_micros) AS micros FROM days "
                "JOIN traffic t ON t.user_id = ? AND t.created_at >= days.lo "
                "AND t.created_at < days.hi GROUP BY days.day, t.currency",
                (*params, user_id),
            )
            for row in rows:
                day_counts = counts.setdefault(row["day"], dict.fromkeys(_COUNTED, 0))
                for name in _COUNTED:
                    day_counts[name] += row[name] or 0
                if row["currency"] is not None and row["micros"] is not None:
                    costs.setdefault(row["day"], {})[row["currency"]] = from_micros(row["micros"])
        result = []
        for day_, _lo, _hi in bounds:
            key = day_.isoformat()
            values_ = counts.get(key, {})
            totals = _totals_from(values_, costs.get(key, {}))
            totals["waiting"] = totals["sms"] - totals["delivered"] - totals["failed"]
            result.append(DayTotals(day=day_, **totals))
        return result

    async def period_totals(
        self,
        user_id: int,
        since_utc: datetime,
        until_utc: datetime,
        *,
        origin: Origin | None = None,
    ) -> Totals:
        """Everything created in [since_utc, until_utc), of one origin or all."""
        where = "t.user_id = ? AND t.created_at >= ? AND t.created_at < ?"
        params: list[Any] = [user_id, utc_text(since_utc), utc_text(until_utc)]
        if origin is not None:
            where += " AND t.origin = ?"
            params.append(origin.value)
        row = await self._db.fetchone(f"SELECT {_AGGREGATES} FROM traffic t WHERE {where}", params)
        values = {} if row is None else dict(zip(row.keys(), tuple(row), strict=True))
        cost_rows = await self._db.fetchall(
            f"SELECT t.currency AS currency, SUM(t.cost_micros) AS micros FROM traffic t "
            f"WHERE {where} AND t.cost_micros IS NOT NULL AND t.currency IS NOT NULL "
            "GROUP BY t.currency",
            params,
        )
        costs = {r["currency"]: from_micros(r["micros"]) for r in cost_rows}
        totals = _totals_from(values, costs)
        totals["waiting"] = totals["sms"] - totals["delivered"] - totals["failed"]
        return Totals(**totals)

    async def spent(
        self, user_id: int, since_utc: datetime, until_utc: datetime, *, currency: str
    ) -> Decimal:
        """What the SMS created in [since_utc, until_utc) cost in `currency`."""
        return (await self.spending(user_id, since_utc, until_utc)).get(currency, Decimal(0))

    async def spending(
        self, user_id: int, since_utc: datetime, until_utc: datetime
    ) -> dict[str, Decimal]:
        """What the SMS created in [since_utc, until_utc) cost, by currency: one query on
        the read-only connection (/balance asks this, before the gateway has told the
        balance's currency; a balance round's writes do not delay it)."""
        rows = await self._db.read_all(
            "SELECT currency, SUM(cost_micros) AS micros FROM traffic WHERE user_id = ? "
            "AND created_at >= ? AND created_at < ? AND currency IS NOT NULL GROUP BY currency",
            (user_id, utc_text(since_utc), utc_text(until_utc)),
        )
        return {
            row["currency"]: from_micros(row["micros"])
            for row in rows
            if row["micros"] is not None  # every cost of the currency unknown
        }

    async def iter_rows(
        self, user_id: int, since_utc: datetime, until_utc: datetime, batch: int = 500
    ) -> AsyncIterator[TrafficRow]:
        """Every SMS created in [since_utc, until_utc), oldest first, read `batch` rows at a
        time (keyset paging: memory stays bounded whatever the period holds)."""
        if batch < 1:
            raise ValueError("batch must be positive")
        since, until = utc_text(since_utc), utc_text(until_utc)
        after_at, after_id = since, 0
        while True:
            # The index range starts at the last row read: with `since` as its lower bound
            # batch k stepped over every earlier row again (k × batch index entries). Past
            # that bound, "created_at > ? OR id > ?" only skips the rows of the last moment.
            rows = await self._db.fetchall(
                f"SELECT {_ROW_COLUMNS} FROM traffic WHERE user_id = ? "
                "AND created_at >= ? AND created_at < ? AND (created_at > ? OR id > ?) "
                "ORDER BY created_at, id LIMIT ?",
                (user_id, after_at, until, after_at, after_id, batch),
            )
            for row in rows:
                yield TrafficRow.from_row(row)
            if len(rows) < batch:
                return
            after_at, after_id = rows[-1]["created_at"], rows[-1]["id"]

    async def get_rows(self, user_id: int, ids: Sequence[int]) -> list[TrafficRow]:
        """The given rows of this user (others' ids are ignored), newest first."""
        found: list[TrafficRow] = []
        for start in range(0, len(ids), _PARAMS_PER_QUERY):
            chunk = list(ids[start : start + _PARAMS_PER_QUERY])
            marks = ", ".join("?" for _ in chunk)
            rows = await self._db.fetchall(
                f"SELECT {_ROW_COLUMNS} FROM traffic WHERE user_id = ? AND id IN ({marks})",
                (user_id, *chunk),
            )
            found.extend(TrafficRow.from_row(row) for row in rows)
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found

    async def by_phone(self, user_id: int, phones: Sequence[str], limit: int) -> list[TrafficRow]:
        """The newest `limit` SMS to any of `phones` (the spellings the gateway may use)."""
        marks = ", ".join("?" for _ in phones)
        rows = await self._db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM traffic WHERE user_id = ? AND phone IN ({marks}) "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, *phones, limit),
        )
        return [TrafficRow.from_row(row) for row in rows]

    async def latest_balance(self, user_id: int) -> BalanceSnapshot | None:
        """The newest snapshot, read on the read-only connection (/balance, /stats)."""
        row = await self._db.read_one(
            "SELECT taken_at, amount_micros, currency FROM balance_snapshots "
            "WHERE user_id = ? ORDER BY taken_at DESC LIMIT 1",
            (user_id,),
        )
        if row is None:
            return None
        return BalanceSnapshot(
            parse_utc(row["taken_at"]), from_micros(row["amount_micros"]), row["currency"]
        )

    async def balance_forecast(
        self,
        user_id: int,
        now_utc: datetime,
        *,
        days: int = 7,
        balance: BalanceSnapshot | None = None,
    ) -> Forecast | None:
        """Days the balance lasts at the average spend per day of the `days` days before
        `now_utc` (the account's whole traffic, in the balance's currency). `balance` is the
        latest snapshot unless given; None when there is no balance to forecast."""
        if days < 1:
            raise ValueError("days must be positive")
        snapshot = balance if balance is not None else await self.latest_balance(user_id)
        if snapshot is None:
            return None
        total = await self.spent(
            user_id, now_utc - timedelta(days=days), now_utc, currency=snapshot.currency
        )
        return Forecast.at_pace(snapshot, total, days)

    # --- writes (the sync worker and the watcher) ------------------------------------------

    async def record_balance(
        self, user_id: int, amount: Decimal, currency: str, *, now: datetime | None = None
    ) -> None:
        """Keeps the balance the watcher saw: one snapshot per user per hour (a later one in
        the same hour replaces it), none older than SNAPSHOT_KEEP."""
        await self._db.run_together(self.balance_snapshot(user_id, amount, currency, now=now))

    @staticmethod
    def balance_snapshot(
        user_id: int, amount: Decimal, currency: str, *, now: datetime | None = None
    ) -> list[Statement]:
        """record_balance's statements, for a caller that commits them with its own writes
        (the balance watcher's record of a check)."""
        taken = now if now is not None else datetime.now(UTC)
        return [
            (
                "DELETE FROM balance_snapshots WHERE user_id = ? AND (taken_at > ? "
                "OR taken_at < ?)",
                (user_id, utc_text(taken - SNAPSHOT_SPACING), utc_text(taken - SNAPSHOT_KEEP)),
            ),
            (
                "INSERT INTO balance_snapshots (user_id, taken_at, amount_micros, currency) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, taken_at) DO UPDATE SET "
                "amount_micros = excluded.amount_micros, currency = excluded.currency",
                (user_id, utc_text(taken), to_micros(amount), currency),
            ),
        ]

    async def forget(self, user_id: int, chunk: int = FORGET_CHUNK) -> None:
        """Drops the record of the user's account: a new token may be another account.

        The rows go `chunk` at a time, each chunk its own transaction: one transaction over a
        long record held the one connection for seconds (3.2 s at 1M rows) while every
        user's taps waited. Rows stored meanwhile (the new token's, ids past the last one
        there was) stay."""
        async with self._db.transaction():
            row = await self._db.fetchone("SELECT MAX(id) AS last FROM traffic")
            for table in ("traffic_sync", "balance_snapshots"):
                await self._db.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
        last = None if row is None else row["last"]
        if last is None:
            return
        deleted = chunk
        while deleted >= chunk:
            deleted = await self._db.execute(
                "DELETE FROM traffic WHERE id IN (SELECT id FROM traffic WHERE user_id = ? "
                "AND id <= ? LIMIT ?)",
                (user_id, last, chunk),
            )

    async def sync_state(self, user_id: int) -> SyncState:
        row = await self._db.fetchone(
            "SELECT resume_offset, synced_at, rounds FROM traffic_sync WHERE user_id = ?",
            (user_id,),
        )
        if row is None:
            return SyncState(user_id, 0, None, 0)
        return SyncState(user_id, row["resume_offset"], row["synced_at"], row["rounds"])

    async def never_synced(self, user_id: int) -> bool:
        """True until the first sync round of the user's current token has been stored.

        Read on the read-only connection: /stats and /export ask it before anything else."""
        row = await self._db.read_one(
            "SELECT synced_at FROM traffic_sync WHERE user_id = ?", (user_id,)
        )
        return row is None or row["synced_at"] is None

    async def save_sync_state(self, user_id: int, resume_offset: int | None) -> None:
        now = utc_now()
        await self._db.execute(
            "INSERT INTO traffic_sync (user_id, resume_offset, synced_at, rounds) "
            "VALUES (?, ?, ?, 1) ON CONFLICT (user_id) DO UPDATE SET "
            "resume_offset = excluded.resume_offset, synced_at = excluded.synced_at, "
            "rounds = traffic_sync.rounds + 1",
            (user_id, resume_offset, now),
        )

    async def oldest_open(self, user_id: int, since_utc: datetime) -> datetime | None:
        """The oldest SMS created after `since_utc` whose status may still change."""
        row = await self._db.fetchone(
            "SELECT MIN(created_at) AS oldest FROM traffic WHERE user_id = ? AND created_at >= ? "
            f"AND UPPER(COALESCE(status, '')) NOT IN {_DELIVERED_SQL} "
            f"AND UPPER(COALESCE(status, '')) NOT IN {_FAILED_SQL}",
            (user_id, utc_text(since_utc)),
        )
        if row is None or row["oldest"] is None:
            return None
        return parse_utc(row["oldest"])

    async def merge(
        self, user_id: int, records: Sequence[NewRecord], *, now: datetime | None = None
    ) -> MergeResult:
        """Stores a page of history: new entries are inserted (matched to the bot's outbox and
        bulk rows by sms id or request id), known ones take the status the history shows.

        The lookups are a few IN queries per page, read before the write transaction, so the
        one database connection is held for the writes only (a page is one commit)."""
        seen_at = now if now is not None else datetime.now(UTC)
        known_rows = await self._known(user_id, records)
        fresh: list[NewRecord] = []
        updates: list[tuple[Any, ...]] = []
        known = 0
        taken: set[object] = set()
        for record in records:
            key = _identity(record)
            if key in taken:
                continue  # the same entry twice on one page (a gateway that repeats itself)
            taken.add(key)
            existing = _pick(known_rows, record)
            if existing is None:
                fresh.append(record)
                continue
            known += 1
            change = _change(existing, record)
            if change is not None:
                updates.append(change)
        origins = await self._origins(user_id, fresh)
        stamp = utc_now()
        rows = [
            _insert_params(user_id, record, origins[n], seen_at, stamp)
            for n, record in enumerate(fresh)
        ]
        if rows or updates:
            async with self._db.transaction():
                if rows:
                    await self._db.executemany(_INSERT, rows)
                if updates:
                    await self._db.executemany(
                        "UPDATE traffic SET status = ?, parts = ?, cost_micros = ?, "
                        f"currency = COALESCE(?, currency), updated_at = '{stamp}' WHERE id = ?",
                        updates,
                    )
        return MergeResult(len(rows), len(updates), known)

    async def _known(self, user_id: int, records: Sequence[NewRecord]) -> _Known:
        found = _Known()
        for column, values, into in (
            ("sms_id", [sqlite_int(r.sms_id) for r in records], found.by_sms),
            ("request_id", [r.request_id for r in records], found.by_request),
        ):
            wanted = sorted({v for v in values if v is not None}, key=str)
            for row in await self._in(
                f"SELECT id, sms_id, request_id, status, parts, cost_micros FROM traffic "
                f"WHERE user_id = ? AND {column} IN",
                (user_id,),
                wanted,
            ):
                into[row[column]] = row
        for record in records:
            if record.sms_id is None and record.request_id is None and record.created_at:
                match = await self._db.fetchone(
                    "SELECT id, sms_id, request_id, status, parts, cost_micros FROM traffic "
                    "WHERE user_id = ? AND sms_id IS NULL AND request_id IS NULL "
                    "AND created_at = ? AND phone IS ? AND message IS ?",
                    (user_id, utc_text(record.created_at), record.phone, record.message),
                )
                if match is not None:
                    found.by_entry[_identity(record)] = match
        return found

    async def _in(self, sql: str, params: tuple[Any, ...], values: Sequence[Any]) -> list[Row]:
        """`sql` ending in "... IN", run over `values` in chunks."""
        rows: list[Row] = []
        for start in range(0, len(values), _PARAMS_PER_QUERY):
            chunk = list(values[start : start + _PARAMS_PER_QUERY])
            marks = ", ".join("?" for _ in chunk)
            rows.extend(await self._db.fetchall(f"{sql} ({marks})", (*params, *chunk)))
        return rows

    async def _origins(
        self, user_id: int, records: Sequence[NewRecord]
    ) -> list[tuple[Origin, int | None, int | None]]:
        """Whether the bot sent each: an outbox row or a bulk row with its sms id or request
        id, else (an answer not recorded yet) an open outbox row to the same phone with the
        same text."""
        if not records:
            return []
        outbox: dict[tuple[str, object], int] = {}
        bulk: dict[tuple[str, object], int] = {}
        for column in ("sms_id", "request_id"):
            values = sorted(
                {
                    v
                    for r in records
                    if (v := sqlite_int(r.sms_id) if column == "sms_id" else r.request_id)
                    is not None
                },
                key=str,
            )
            if not values:
                continue
            for row in await self._in(
                f"SELECT id, {column} AS v FROM outbox WHERE user_id = ? AND {column} IN",
                (user_id,),
                values,
            ):
                outbox.setdefault((column, row["v"]), row["id"])
            for row in await self._in(
                f"SELECT r.job_id AS job_id, r.{column} AS v FROM bulk_rows r "
                f"JOIN bulk_jobs j ON j.id = r.job_id WHERE j.user_id = ? AND r.{column} IN",
                (user_id,),
                values,
            ):
                bulk.setdefault((column, row["v"]), row["job_id"])
        open_rows = await self._db.fetchall(
            "SELECT id, phone, message FROM outbox WHERE user_id = ? "
            "AND state IN ('pending', 'unknown') ORDER BY id DESC LIMIT 1000",
            (user_id,),
        )
        pending: dict[tuple[str | None, str | None], int] = {}
        for row in open_rows:
            pending.setdefault((row["phone"], row["message"]), row["id"])
        result: list[tuple[Origin, int | None, int | None]] = []
        for record in records:
            keys = [("sms_id", sqlite_int(record.sms_id)), ("request_id", record.request_id)]
            keys = [k for k in keys if k[1] is not None]
            outbox_id = next((outbox[k] for k in keys if k in outbox), None)
            job_id = next((bulk[k] for k in keys if k in bulk), None)
            if outbox_id is not None:
                result.append((Origin.BOT, outbox_id, None))
            elif job_id is not None:
                result.append((Origin.BULK, None, job_id))
            elif (record.phone, record.message) in pending:
                result.append((Origin.BOT, pending[(record.phone, record.message)], None))
            else:
                result.append((Origin.ELSEWHERE, None, None))
        return result

    async def rematch(self, user_id: int, since_utc: datetime) -> int:
        """Rows stored as "elsewhere" since `since_utc` that the bot's outbox or a bulk job now
        claims (the send's answer was recorded after the history showed it) change origin.

        Set-based: a few statements per round whatever the traffic, each probing the indexes
        on outbox and bulk_rows ids once per recent "elsewhere" row."""
        changed = 0
        for column in ("sms_id", "request_id"):
            outbox = (
                f"SELECT o.id FROM outbox o WHERE o.user_id = traffic.user_id "
                f"AND o.{column} = traffic.{column} LIMIT 1"
            )
            bulk = (
                f"SELECT r.job_id FROM bulk_rows r JOIN bulk_jobs j ON j.id = r.job_id "
                f"WHERE r.{column} = traffic.{column} AND j.user_id = traffic.user_id LIMIT 1"
            )
            recent = (
                f"user_id = ? AND origin = 'elsewhere' AND created_at >= ? "
                f"AND failure_noticed = 0 AND {column} IS NOT NULL"
            )
            params = (user_id, utc_text(since_utc))
            template = outbox.replace("SELECT o.id", "SELECT o.template", 1)
            changed += await self._db.execute(
                f"UPDATE traffic SET origin = 'bot', outbox_id = ({outbox}), "
                f"template = ({template}) WHERE {recent} AND EXISTS ({outbox})",
                params,
            )
            changed += await self._db.execute(
                f"UPDATE traffic SET origin = 'bulk', job_id = ({bulk}) "
                f"WHERE {recent} AND EXISTS ({bulk})",
                params,
            )
        return changed

    # --- failure watch -----------------------------------------------------------------------

    async def unnoticed_failures(self, user_id: int, limit: int = 1000) -> list[TrafficRow]:
        """SMS sent elsewhere that ended REJECTED or UNDELIVERABLE and were not reported (nor
        passed over) yet, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM traffic WHERE user_id = ? AND origin = 'elsewhere' "
            f"AND failure_noticed = 0 AND UPPER(COALESCE(status, '')) IN {_WATCHED_SQL} "
            "ORDER BY created_at, id LIMIT ?",
            (user_id, limit),
        )
        return [TrafficRow.from_row(row) for row in rows]

    async def mark_failures(self, ids: Sequence[int], batch: int) -> None:
        """`batch` > 0: told in that notice; PASSED_OVER: not to be told (the watch was off,
        or the failure is old news)."""
        for start in range(0, len(ids), _PARAMS_PER_QUERY):
            chunk = list(ids[start : start + _PARAMS_PER_QUERY])
            marks = ", ".join("?" for _ in chunk)
            await self._db.execute(
                f"UPDATE traffic SET failure_noticed = ? WHERE id IN ({marks})", (batch, *chunk)
            )

    async def failures_of(self, user_id: int, batch: int, limit: int) -> list[TrafficRow]:
        """The SMS one failure notice told about, newest first."""
        if batch <= 0:
            return []
        rows = await self._db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM traffic WHERE user_id = ? AND failure_noticed = ? "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, batch, limit),
        )
        return [TrafficRow.from_row(row) for row in rows]


def forecast_days(balance: Decimal, daily_spend: Decimal) -> int | None:
    """Whole days `balance` lasts at `daily_spend` a day; None when nothing is spent."""
    if daily_spend <= 0:
        return None
    if balance <= 0:
        return 0
    return int(balance / daily_spend)
