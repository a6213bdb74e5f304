"""What each user wants of the insights (failure watch, delivery-rate warning, digest) and what
was last told, so that nothing is said twice for the same window or period, across restarts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from storage.db import Database, Row, utc_now

DigestMode = Literal["off", "daily", "weekly"]
DIGEST_MODES: Final[tuple[DigestMode, ...]] = ("off", "daily", "weekly")
DEFAULT_DIGEST_HOUR: Final = 9

_COLUMNS: Final = (
    "failure_watch, rate_threshold, rate_window_sent, failure_sent_at, digest, digest_hour, "
    "digest_last_period"
)


@dataclass(frozen=True, slots=True)
class InsightPrefs:
    failure_watch: bool = False
    rate_threshold: int | None = None
    """Percent; None: no delivery-rate warning."""
    rate_window_sent: str | None = None
    failure_sent_at: str | None = None
    digest: DigestMode = "off"
    digest_hour: int = DEFAULT_DIGEST_HOUR
    """In the user's time zone."""
    digest_last_period: str | None = None
    """The first local day (ISO date) of the last period a digest went out for."""

    @classmethod
    def from_row(cls, row: Row | None) -> InsightPrefs:
        if row is None:
            return cls()
        return cls(
            failure_watch=bool(row["failure_watch"]),
            rate_threshold=row["rate_threshold"],
            rate_window_sent=row["rate_window_sent"],
            failure_sent_at=row["failure_sent_at"],
            digest=row["digest"],
            digest_hour=row["digest_hour"],
            digest_last_period=row["digest_last_period"],
        )


@dataclass(frozen=True, slots=True)
class DigestTarget:
    user_id: int
    language: str | None
    first_name: str | None
    username: str | None
    prefs: InsightPrefs
    timezone: str | None
    """The user's IANA zone (users.timezone); None: the default."""


class InsightRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> InsightPrefs:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM insight_prefs WHERE user_id = ?", (user_id,)
        )
        return InsightPrefs.from_row(row)

    async def _set(self, user_id: int, column: str, value: object) -> None:
        await self._db.execute(
            f"INSERT INTO insight_prefs (user_id, {column}, updated_at) VALUES (?, ?, ?) "
            f"ON CONFLICT (user_id) DO UPDATE SET {column} = excluded.{column}, "
            "updated_at = excluded.updated_at",
            (user_id, value, utc_now()),
        )

    async def set_failure_watch(self, user_id: int, enabled: bool) -> None:
        await self._set(user_id, "failure_watch", int(enabled))

    async def set_rate_threshold(self, user_id: int, percent: int | None) -> None:
        await self._set(user_id, "rate_threshold", percent)

    async def set_digest(self, user_id: int, mode: DigestMode) -> None:
        await self._set(user_id, "digest", mode)

    async def set_digest_hour(self, user_id: int, hour: int) -> None:
        if not 0 <= hour <= 23:
            raise ValueError("hour must be 0..23")
        await self._set(user_id, "digest_hour", hour)

    async def claim_rate_window(self, user_id: int, window: str) -> bool:
        """Records that the rate warning of `window` goes out; False when it already did."""
        changed = await self._db.execute(
            "UPDATE insight_prefs SET rate_window_sent = ? WHERE user_id = ? "
            "AND (rate_window_sent IS NULL OR rate_window_sent <> ?)",
            (window, user_id, window),
        )
        return changed > 0

    async def claim_digest_period(self, user_id: int, period: str) -> bool:
        """Records that the digest of the period starting `period` goes out; False when it
        already did (or a later one did)."""
        changed = await self._db.execute(
            "UPDATE insight_prefs SET digest_last_period = ? WHERE user_id = ? "
            "AND (digest_last_period IS NULL OR digest_last_period < ?)",
            (period, user_id, period),
        )
        return changed > 0

    async def set_failure_sent(self, user_id: int, at: str) -> None:
        await self._set(user_id, "failure_sent_at", at)

    async def digest_targets(self, after_user_id: int, limit: int) -> list[DigestTarget]:
        """Users with a digest on, a valid token and a bot they did not block (keyset paging)."""
        rows = await self._db.fetchall(
            f"SELECT u.id, u.language, u.first_name, u.username, u.timezone, "
            f"{', '.join('p.' + c for c in _COLUMNS.split(', '))} "
            "FROM insight_prefs p JOIN users u ON u.id = p.user_id "
            "JOIN credentials c ON c.user_id = u.id "
            "WHERE p.digest <> 'off' AND c.state = 'valid' AND u.is_active = 1 AND u.id > ? "
            "ORDER BY u.id LIMIT ?",
            (after_user_id, limit),
        )
        return [
            DigestTarget(
                row["id"],
                row["language"],
                row["first_name"],
                row["username"],
                InsightPrefs.from_row(row),
                row["timezone"],
            )
            for row in rows
        ]
