"""The failure watch and the delivery-rate warning (opt-in per user, in /settings).

Runs after each user's traffic round (services/traffic.TrafficSync's `after_round`), over what
the round stored:

- SMS sent outside the bot (an OTP from the owner's backend) that ended REJECTED or
  UNDELIVERABLE are told grouped, by operator and status, at most one notice an hour; each SMS
  is marked with the notice that told it BEFORE the notice goes out, so none is told twice.
  Failures from before the watch was on, or older than FAILURE_LOOKBACK (older history read
  later), are passed over.
- When the delivery rate of the last hour (the whole account, at least RATE_MIN_SETTLED
  settled SMS) is below the owner's threshold, a warning, once per clock hour.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Final

from services.events import DeliveryRateLow, FailuresSeen, Notices, Person
from services.phones import operator_of
from storage.alerts import WatchTarget
from storage.insights import InsightRepo
from storage.traffic import PASSED_OVER, TrafficRepo, TrafficRow

logger = logging.getLogger(__name__)

FAILURE_WINDOW: Final = timedelta(hours=1)
FAILURE_LOOKBACK: Final = timedelta(days=1)
RATE_WINDOW: Final = timedelta(hours=1)
RATE_MIN_SETTLED: Final = 10


def group_failures(rows: list[TrafficRow]) -> tuple[tuple[tuple[str, int], ...], ...]:
    """(operators, statuses) of failed SMS, each as (name, count) most first."""
    operators = Counter(operator_of(row.phone) or "" for row in rows)
    statuses = Counter((row.status or "").strip().upper() for row in rows)
    return tuple(operators.most_common()), tuple(statuses.most_common())


def hour_window(now: datetime) -> str:
    """The clock hour (UTC) `now` falls in: one rate warning per such window."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H")


class FailureWatch:
    def __init__(self, traffic: TrafficRepo, insights: InsightRepo, notices: Notices) -> None:
        self._traffic = traffic
        self._insights = insights
        self._notices = notices

    async def after_round(self, target: WatchTarget, now: datetime) -> None:
        person = Person(target.user_id, target.language, target.first_name, target.username)
        prefs = await self._insights.get(target.user_id)
        await self._failures(person, prefs.failure_watch, prefs.failure_sent_at, now)
        if prefs.rate_threshold is not None:
            await self._rate(person, prefs.rate_threshold, now)

    async def _failures(
        self, person: Person, watching: bool, last_sent: str | None, now: datetime
    ) -> None:
        rows = await self._traffic.unnoticed_failures(person.user_id)
        if not rows:
            return
        old = [r.id for r in rows if not watching or r.created_at < now - FAILURE_LOOKBACK]
        if old:
            await self._traffic.mark_failures(old, PASSED_OVER)
        passed = set(old)
        fresh = [r for r in rows if r.id not in passed]
        if not fresh:
            return
        if last_sent is not None and now - datetime.fromisoformat(last_sent) < FAILURE_WINDOW:
            return  # grouped into the next notice, once the hour is over
        batch = int(now.timestamp())
        # Marked before the notice goes out: a crash in between loses a notice, never repeats.
        await self._traffic.mark_failures([r.id for r in fresh], batch)
        await self._insights.set_failure_sent(person.user_id, now.isoformat(timespec="seconds"))
        operators, statuses = group_failures(fresh)
        logger.info("telling user %s of %s failed SMS", person.user_id, len(fresh))
        await self._notices.emit(FailuresSeen(person, len(fresh), operators, statuses, batch))

    async def _rate(self, person: Person, threshold: int, now: datetime) -> None:
        totals = await self._traffic.period_totals(person.user_id, now - RATE_WINDOW, now)
        settled = totals.delivered + totals.failed
        if settled < RATE_MIN_SETTLED:
            return
        rate = totals.delivered * 100 // settled
        if rate >= threshold:
            return
        if not await self._insights.claim_rate_window(person.user_id, hour_window(now)):
            return
        await self._notices.emit(
            DeliveryRateLow(person, rate, threshold, totals.delivered, totals.failed)
        )
