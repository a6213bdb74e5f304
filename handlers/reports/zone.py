"""The user's time zone and today in it."""

from __future__ import annotations

import datetime as dt
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.users import UserRow

DEFAULT_ZONE: Final = "Asia/Tashkent"


def zone_name(user: UserRow) -> str:
    """The IANA zone the user chose in /settings, or Asia/Tashkent (also for a name this
    machine no longer knows). Read by attribute: the zone column comes with scheduled sends."""
    name = getattr(user, "timezone", None)
    if isinstance(name, str) and name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return DEFAULT_ZONE
        return name
    return DEFAULT_ZONE


def today_in(zone: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(zone).date()
