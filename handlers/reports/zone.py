"""The user's time zone (chosen in /settings, services.schedule_time) and today in it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from services.schedule_time import zone_of
from storage.users import UserRow


def zone_name(user: UserRow) -> str:
    """The IANA name of the user's zone: theirs, or Asia/Tashkent (also for a name this
    machine no longer knows), as services.schedule_time.zone_of reads it."""
    return zone_of(user.timezone).key


def today_in(zone: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(zone).date()
