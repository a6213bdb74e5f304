"""The user's clock as handlers show it: times in the user's zone, and their quiet hours."""

from __future__ import annotations

import datetime as dt

from aiogram.utils.i18n import gettext as _

from handlers.config import HandlerSettings
from services.schedule_time import (
    QuietHours,
    clock_text,
    is_quiet,
    local_text,
    quiet_end,
    user_quiet,
    zone_of,
)
from storage.users import UserRow


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def user_zone(user: UserRow) -> str:
    """The user's IANA zone name (Asia/Tashkent unless they chose another)."""
    return zone_of(user.timezone).key


def quiet_for(user: UserRow, settings: HandlerSettings) -> QuietHours | None:
    return user_quiet(user.quiet_hours, settings.quiet_default)


def quiet_until(user: UserRow, settings: HandlerSettings, now: dt.datetime) -> dt.datetime | None:
    """When the user's quiet hours end, if `now` is inside them; else None."""
    quiet, zone = quiet_for(user, settings), zone_of(user.timezone)
    if not is_quiet(now, quiet, zone):
        return None
    return quiet_end(now, quiet, zone)


def when_text(moment: dt.datetime | str, zone: str) -> str:
    """ "24.12.2026 09:30 (Asia/Tashkent)"."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return f"{local_text(moment, zone_of(zone))} ({zone_of(zone).key})"


def hour_text(moment: dt.datetime, zone: str) -> str:
    """ "09:30" in the zone."""
    return local_text(moment, zone_of(zone))[-5:]


def quiet_label(quiet: QuietHours | None) -> str:
    if quiet is None:
        return _("off")
    return f"{clock_text(quiet.start)}–{clock_text(quiet.end)}"
