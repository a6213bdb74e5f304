"""The digest (opt-in, daily or weekly at the owner's hour in their time zone) and the zone rule.

Every `poll` seconds, each user with a digest on whose period is due gets one message: SMS and
spending of the period against the one before, delivery rate, balance and how long it lasts at
the period's pace, bulk jobs run. The period is claimed in the database (InsightRepo.
claim_digest_period) before the message goes out, so it is never sent twice, across restarts.

Periods are local calendar days of the user's zone, turned into UTC instants through local
midnights, so a day of a daylight-saving change has its 23 or 25 hours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Literal

from services.events import Notices, Person, TrafficDigest
from services.money import CURRENCIES, Money
from services.schedule_time import zone_of
from storage.bulk import BulkRepo
from storage.insights import DigestTarget, InsightRepo
from storage.traffic import TrafficRepo, day_start, forecast_days, utc_text
from storage.users import UserRow

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 500


def user_zone_name(user: UserRow | None) -> str:
    """The IANA name of a user's zone (set in /settings), else the default."""
    return zone_of(None if user is None else user.timezone).key


@dataclass(frozen=True, slots=True)
class DigestPeriod:
    first_day: date
    last_day: date
    """Local days, both included."""
    since: datetime
    until: datetime
    previous_since: datetime
    """The period before: [previous_since, since)."""

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


def period_of(first: date, days: int, zone: tzinfo) -> DigestPeriod:
    return DigestPeriod(
        first_day=first,
        last_day=first + timedelta(days=days - 1),
        since=day_start(first, zone),
        until=day_start(first + timedelta(days=days), zone),
        previous_since=day_start(first - timedelta(days=days), zone),
    )


def due_period(
    now: datetime, zone: tzinfo, mode: Literal["daily", "weekly"], hour: int
) -> DigestPeriod | None:
    """The period whose digest is due at `now`, or None before the hour of the day it is due.

    Daily: from `hour` on, yesterday (local). Weekly: from Monday's `hour` on (and through the
    rest of the week, for a bot that was down on Monday), the week Monday-Sunday before.
    """
    local = now.astimezone(zone)
    today = local.date()
    if mode == "daily":
        if local.hour < hour:
            return None
        return period_of(today - timedelta(days=1), 1, zone)
    monday = today - timedelta(days=today.weekday())
    if today == monday and local.hour < hour:
        return None
    return period_of(monday - timedelta(days=7), 7, zone)


class DigestSender:
    def __init__(
        self,
        insights: InsightRepo,
        traffic: TrafficRepo,
        bulk: BulkRepo,
        notices: Notices,
        *,
        poll: float,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if poll <= 0:
            raise ValueError("poll must be positive")
        self._insights = insights
        self._traffic = traffic
        self._bulk = bulk
        self._notices = notices
        self._poll = poll
        self._now = now if now is not None else lambda: datetime.now(UTC)

    async def run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except Exception:
                logger.exception("digest round failed; next one in %.0f s", self._poll)
            else:
                if sent:
                    logger.info("digests sent: %s", sent)
            await asyncio.sleep(self._poll)

    async def send_due(self) -> int:
        """One look over every user with a digest on; returns how many digests went out."""
        sent = 0
        after = 0
        while True:
            page = await self._insights.digest_targets(after, PAGE_SIZE)
            for target in page:
                try:
                    sent += await self._one(target)
                except Exception:
                    logger.exception("digest of user %s failed", target.user_id)
            if len(page) < PAGE_SIZE:
                return sent
            after = page[-1].user_id

    async def _one(self, target: DigestTarget) -> int:
        prefs = target.prefs
        if prefs.digest == "off":
            return 0
        now = self._now()
        zone = zone_of(target.timezone)
        period = due_period(now, zone, prefs.digest, prefs.digest_hour)
        if period is None:
            return 0
        key = period.first_day.isoformat()
        if prefs.digest_last_period is not None and prefs.digest_last_period >= key:
            return 0
        # Claimed before the message goes out: a crash in between loses one digest, and no
        # restart ever sends a period twice.
        if not await self._insights.claim_digest_period(target.user_id, key):
            return 0
        event = await self.digest(target, period, weekly=prefs.digest == "weekly")
        await self._notices.emit(event)
        return 1

    async def digest(
        self, target: DigestTarget, period: DigestPeriod, *, weekly: bool
    ) -> TrafficDigest:
        user_id = target.user_id
        current = await self._traffic.period_totals(user_id, period.since, period.until)
        previous = await self._traffic.period_totals(user_id, period.previous_since, period.since)
        snapshot = await self._traffic.latest_balance(user_id)
        balance = days_left = None
        if snapshot is not None and snapshot.currency in CURRENCIES:
            balance = Money(snapshot.amount, snapshot.currency)
            spent = current.cost_by_currency.get(snapshot.currency)
            if spent is not None:
                days_left = forecast_days(snapshot.amount, spent / period.days)
        jobs = await self._bulk.started_between(
            user_id, utc_text(period.since), utc_text(period.until)
        )
        person = Person(user_id, target.language, target.first_name, target.username)
        return TrafficDigest(
            person,
            weekly,
            period.first_day,
            period.last_day,
            current,
            previous,
            balance,
            days_left,
            jobs,
        )
