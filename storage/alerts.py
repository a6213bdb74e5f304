"""Alert preferences and the balance watcher's memory, one row per user (created on demand)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from storage.db import Database, Row, Statement
from storage.users import Access

ThresholdUnit = Literal["som", "sms"]
DeliveryNotify = Literal["all", "failures", "off"]
_PREF_COLUMNS: Final = (
    "threshold_unit, threshold_value, balance_alerts, delivery_notify, below, last_balance, "
    "checked_at, alerted_at, invalid_notified"
)

# A balance check of the round is over: nobody takes it up again in this round.
_FINISH: Final = (
    "UPDATE alert_prefs SET lease_until = NULL WHERE user_id = ? AND balance_round = ? "
    "AND lease_owner = ?"
)


@dataclass(frozen=True, slots=True)
class AlertPrefs:
    threshold_unit: ThresholdUnit = "som"
    threshold_value: str | None = None  # None: the configured default
    balance_alerts: bool = True
    delivery_notify: DeliveryNotify = "failures"
    below: bool = False  # below the threshold at the last check (alert already sent)
    last_balance: str | None = None
    checked_at: str | None = None
    alerted_at: str | None = None
    invalid_notified: bool = False

    @classmethod
    def from_row(cls, row: Row | None) -> AlertPrefs:
        if row is None:
            return cls()
        return cls(
            threshold_unit=row["threshold_unit"],
            threshold_value=row["threshold_value"],
            balance_alerts=bool(row["balance_alerts"]),
            delivery_notify=row["delivery_notify"],
            below=bool(row["below"]),
            last_balance=row["last_balance"],
            checked_at=row["checked_at"],
            alerted_at=row["alerted_at"],
            invalid_notified=bool(row["invalid_notified"]),
        )


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """A user whose balance the watcher checks: a valid token and a bot they have not blocked."""

    user_id: int
    token_encrypted: bytes
    language: str | None
    first_name: str | None
    username: str | None
    prefs: AlertPrefs
    access: Access = Access.PENDING  # counts only when ACCESS_MODE=allowlist


class AlertRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        return self._db

    async def get(self, user_id: int) -> AlertPrefs:
        row = await self._db.fetchone(
            f"SELECT {_PREF_COLUMNS} FROM alert_prefs WHERE user_id = ?", (user_id,)
        )
        return AlertPrefs.from_row(row)

    async def _set(self, user_id: int, column: str, value: object) -> None:
        # `column` is one of the literal names below, never user input.
        await self._db.execute(
            f"INSERT INTO alert_prefs (user_id, {column}) VALUES (?, ?) "
            f"ON CONFLICT (user_id) DO UPDATE SET {column} = excluded.{column}",
            (user_id, value),
        )

    async def set_threshold(self, user_id: int, unit: ThresholdUnit, value: str | None) -> None:
        async with self._db.transaction():
            await self._set(user_id, "threshold_unit", unit)
            await self._set(user_id, "threshold_value", value)

    async def set_balance_alerts(self, user_id: int, enabled: bool) -> None:
        await self._set(user_id, "balance_alerts", int(enabled))

    async def set_delivery_notify(self, user_id: int, mode: DeliveryNotify) -> None:
        await self._set(user_id, "delivery_notify", mode)

    async def record_check(
        self,
        user_id: int,
        balance: str | None,
        *,
        below: bool,
        finish: tuple[int, str] | None = None,
        along: Sequence[Statement] = (),
    ) -> bool:
        """Stores what the watcher saw. Returns True when a low-balance alert is due: the
        user just crossed below the threshold, or crossed earlier and was not told yet (the
        replica that saw it died first). The caller tells the user, then `alert_told`; the
        flag is reset once above again. With `finish` (round, owner) and no alert due, the
        check of that round is finished too (`finish_check`). The statements `along` (the
        balance snapshot) run first; all of it commits at once, with the other tasks'
        writes of the moment (Database.write_together: one sync to disk for them all).

        One statement, so a round over many users does not queue four round trips each on the
        shared connection: `alerted_at` takes this check's own timestamp (with microseconds,
        unique per call) only on the crossing.
        """
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        record: Statement = (
            "INSERT INTO alert_prefs (user_id, below, last_balance, checked_at, alerted_at, "
            "alert_owed) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
            "below = excluded.below, last_balance = excluded.last_balance, "
            "checked_at = excluded.checked_at, "
            "alerted_at = CASE WHEN excluded.below = 1 AND alert_prefs.below = 0 "
            "THEN excluded.checked_at ELSE alert_prefs.alerted_at END, "
            "alert_owed = CASE WHEN excluded.below = 0 THEN 0 "
            "WHEN alert_prefs.below = 0 THEN 1 ELSE alert_prefs.alert_owed END "
            "RETURNING alert_owed",
            (user_id, int(below), balance, now, now if below else None, int(below)),
        )
        statements = [*along, record]
        if finish is not None:
            # The claim ends only where no alert is owed after the record.
            round_no, owner = finish
            statements.append((_FINISH + " AND alert_owed = 0", (user_id, round_no, owner)))
        rows = (await self._db.write_together(statements))[len(along)]
        return bool(rows) and bool(rows[0]["alert_owed"])

    async def alert_told(self, user_id: int) -> None:
        """The low-balance alert record_check asked for was handed on: no longer owed."""
        await self._db.execute(
            "UPDATE alert_prefs SET alert_owed = 0 WHERE user_id = ?", (user_id,)
        )

    async def set_invalid_notified(self, user_id: int, notified: bool) -> bool:
        """Returns True when the flag changed (so a 'token invalid' notice goes out once)."""
        async with self._db.transaction():
            before = await self.get(user_id)
            if before.invalid_notified == notified:
                return False
            await self._set(user_id, "invalid_notified", int(notified))
        return True

    async def watch_targets(self, after_user_id: int = 0, limit: int = 500) -> list[WatchTarget]:
        """One page of users to check, in user id order (keyset paging scales to many users)."""
        return await self._targets("AND u.id > ?", (after_user_id,), limit)

    async def _targets(
        self, condition: str, params: tuple[object, ...], limit: int
    ) -> list[WatchTarget]:
        rows = await self._db.fetchall(
            "SELECT u.id, u.language, u.first_name, u.username, u.access, c.token_encrypted, "
            f"{', '.join('p.' + c for c in _PREF_COLUMNS.split(', '))} "
            "FROM users u JOIN credentials c ON c.user_id = u.id "
            "LEFT JOIN alert_prefs p ON p.user_id = u.id "
            f"WHERE c.state = 'valid' AND u.is_active = 1 {condition} "
            "ORDER BY u.id LIMIT ?",
            (*params, limit),
        )
        return [
            WatchTarget(
                user_id=row["id"],
                token_encrypted=row["token_encrypted"],
                language=row["language"],
                first_name=row["first_name"],
                username=row["username"],
                prefs=AlertPrefs.from_row(row)
                if row["threshold_unit"] is not None
                else AlertPrefs(),
                access=Access(row["access"]),
            )
            for row in rows
        ]

    async def expired_checks(self, round_no: int, now: str, limit: int) -> list[WatchTarget]:
        """Users whose check in round `round_no` was claimed and not finished before the claim
        ran out (its replica died): for a replica that walked the round to check them."""
        return await self._targets(
            "AND p.balance_round = ? AND p.lease_until IS NOT NULL AND p.lease_until < ?",
            (round_no, now),
            limit,
        )

    # --- a balance round split across replicas (storage/leases.py) ---------------------------

    async def claim_checks(
        self, user_ids: list[int], round_no: int, owner: str, until: str, now: str
    ) -> set[int]:
        """Claims these users' balance checks of round `round_no` for `owner` until `until`;
        the ids claimed. A user already claimed in this round is skipped, unless the claim
        expired unfinished (its replica died) — one statement, so two replicas never both
        claim a user."""
        if not user_ids:
            return set()
        values = ", ".join("(?, ?, ?, ?)" for _ in user_ids)
        params: list[object] = []
        for user_id in user_ids:
            params += (user_id, round_no, owner, until)
        sql = (
            "INSERT INTO alert_prefs (user_id, balance_round, lease_owner, lease_until) "
            f"VALUES {values} ON CONFLICT (user_id) DO UPDATE SET "
            "balance_round = excluded.balance_round, lease_owner = excluded.lease_owner, "
            "lease_until = excluded.lease_until "
            "WHERE alert_prefs.balance_round IS NULL "
            "OR alert_prefs.balance_round < excluded.balance_round "
            "OR (alert_prefs.lease_until IS NOT NULL AND alert_prefs.lease_until < ?) "
            "RETURNING user_id"
        )
        # Committed with the round's other writes of the moment (one sync to disk).
        [rows] = await self._db.write_together([(sql, (*params, now))])
        return {int(row["user_id"]) for row in rows}

    async def renew_checks(self, round_no: int, owner: str, until: str, now: str) -> int:
        """Moves the end of `owner`'s unfinished, unexpired claims of round `round_no` to
        `until` (one statement for them all); how many."""
        return await self._db.execute(
            "UPDATE alert_prefs SET lease_until = ? WHERE balance_round = ? AND lease_owner = ? "
            "AND lease_until IS NOT NULL AND lease_until >= ?",
            (until, round_no, owner, now),
        )

    async def finish_check(self, user_id: int, round_no: int, owner: str) -> None:
        """The check of this round is done: nobody takes it up again in this round. Committed
        with the other checks' writes of the moment (one sync to disk for them all)."""
        await self._db.write_together([(_FINISH, (user_id, round_no, owner))])
