"""Times a user types or picks for a scheduled send, and quiet hours, in the user's zone.

Pure logic, no I/O. Every moment handed in or out is an aware UTC datetime; wall-clock times
(what the user types, quiet hours) are read in the user's IANA zone, so the arithmetic holds
whatever zone the machine runs in and across daylight-saving changes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE: Final = "Asia/Tashkent"
# The buttons of /settings → time zone: the region first, a few neighbours after.
ZONE_CHOICES: Final = (
    "Asia/Tashkent",
    "Asia/Almaty",
    "Asia/Bishkek",
    "Asia/Dushanbe",
    "Asia/Ashgabat",
    "Europe/Moscow",
    "Asia/Dubai",
    "Europe/Istanbul",
)
# The furthest ahead a send may be scheduled.
MAX_AHEAD: Final = dt.timedelta(days=60)
_ZONE_SHAPE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$")
_TIME: Final = r"(?P<hh>\d{1,2})[:.](?P<mm>\d{2})"
_FORMATS: Final = (
    re.compile(rf"^(?P<y>\d{{4}})-(?P<mo>\d{{1,2}})-(?P<d>\d{{1,2}})[ T]+{_TIME}$"),
    re.compile(rf"^(?P<d>\d{{1,2}})\.(?P<mo>\d{{1,2}})\.(?P<y>\d{{4}})\s+{_TIME}$"),
    re.compile(rf"^(?P<d>\d{{1,2}})\.(?P<mo>\d{{1,2}})\.?\s+{_TIME}$"),
    re.compile(rf"^{_TIME}$"),
)
_QUIET: Final = re.compile(
    r"^(?P<h1>\d{1,2})(?:[:.](?P<m1>\d{2}))?\s*[-–—]\s*(?P<h2>\d{1,2})(?:[:.](?P<m2>\d{2}))?$"
)
_OFF_WORDS: Final = frozenset(
    {"off", "no", "none", "-", "выкл", "нет", "o'chiq", "oʻchiq", "yo'q", "yoʻq"}
)
# The longest text looked at: anything longer is not a time.
_MAX_INPUT: Final = 40


class WhenProblem(StrEnum):
    FORMAT = "format"  # not one of the accepted shapes
    NO_SUCH_DATE = "no_such_date"  # 31.02, 25:00
    GAP = "gap"  # skipped by a clock change in the user's zone
    PAST = "past"
    TOO_FAR = "too_far"


class InvalidWhen(Exception):
    def __init__(self, problem: WhenProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class InvalidZone(ValueError):
    """Not an IANA time zone name this machine knows."""


class InvalidQuiet(ValueError):
    """Not "HH:MM-HH:MM" (two different times) or "off"."""


def zone_of(name: str | None) -> ZoneInfo:
    """The stored zone of a user, or the default (a name the machine no longer knows too)."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def parse_zone(text: str) -> str:
    """A typed zone name as stored ("Asia/Tashkent"); the case of the letters is forgiven."""
    name = text.strip()
    if len(name) > 64 or not _ZONE_SHAPE.match(name):
        raise InvalidZone(name)
    candidates = [name, "/".join(_title(part) for part in name.split("/"))]
    if name.upper() == "UTC":
        candidates.insert(0, "UTC")
    for candidate in candidates:
        try:
            ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return candidate
    raise InvalidZone(name)


def _title(part: str) -> str:
    # "new_york" → "New_York", "port-au-prince" → "Port-au-Prince" is not needed: exact
    # spelling is tried first, this only forgives an all-lower or all-upper name.
    return "_".join(word.capitalize() for word in part.split("_"))


def parse_when(text: str, now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A typed date and time in `zone`, as UTC. Accepted: "2026-12-24 09:30",
    "24.12.2026 09:30", "24.12 09:30" (the next 24 December), "09:30" (the next 09:30).

    Raises InvalidWhen: the time must lie ahead of `now`, and at most MAX_AHEAD ahead."""
    text = " ".join(text.split())
    if len(text) > _MAX_INPUT:
        raise InvalidWhen(WhenProblem.FORMAT)
    for pattern in _FORMATS:
        found = pattern.match(text)
        if found is not None:
            break
    else:
        raise InvalidWhen(WhenProblem.FORMAT)
    parts = {key: int(value) for key, value in found.groupdict().items() if value is not None}
    local_now = now.astimezone(zone)
    try:
        clock = dt.time(parts["hh"], parts["mm"])
        if "d" not in parts:
            moment = _next_at(local_now, clock, zone)
        elif "y" in parts:
            moment = _local(dt.date(parts["y"], parts["mo"], parts["d"]), clock, zone)
        else:
            moment = _next_date(local_now, parts["mo"], parts["d"], clock, zone)
    except ValueError:
        raise InvalidWhen(WhenProblem.NO_SUCH_DATE) from None
    return check_ahead(moment, now)


def check_ahead(moment: dt.datetime, now: dt.datetime) -> dt.datetime:
    """`moment` in UTC if it lies ahead of `now` and not too far; else InvalidWhen."""
    if moment <= now:
        raise InvalidWhen(WhenProblem.PAST)
    if moment - now > MAX_AHEAD:
        raise InvalidWhen(WhenProblem.TOO_FAR)
    return moment.astimezone(dt.UTC)


def _local(day: dt.date, clock: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The wall-clock `day clock` in `zone`, as UTC; InvalidWhen(GAP) when a clock change
    skips it (it does not exist there)."""
    moment = dt.datetime.combine(day, clock, tzinfo=zone)
    back = moment.astimezone(dt.UTC).astimezone(zone)
    if (back.date(), back.time()) != (day, clock):
        raise InvalidWhen(WhenProblem.GAP)
    return moment.astimezone(dt.UTC)


def _next_at(local_now: dt.datetime, clock: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The next `clock` after `local_now`: today if still ahead, else tomorrow."""
    day = local_now.date()
    moment = _local(day, clock, zone)
    if moment <= local_now:
        moment = _local(day + dt.timedelta(days=1), clock, zone)
    return moment


def _next_date(
    local_now: dt.datetime, month: int, day: int, clock: dt.time, zone: ZoneInfo
) -> dt.datetime:
    year = local_now.year
    try:
        moment = _local(dt.date(year, month, day), clock, zone)
    except ValueError:
        moment = None  # 29.02 in a year without it: the next year that has one may
    if moment is None or moment <= local_now:
        moment = _local(dt.date(year + 1, month, day), clock, zone)
    return moment


# --- quick choices -------------------------------------------------------------------------


class Quick(StrEnum):
    """The buttons offered before a typed time; each is computed when tapped."""

    HOUR = "h1"
    THREE_HOURS = "h3"
    TODAY_18 = "t18"
    TOMORROW_9 = "m9"
    TOMORROW_14 = "m14"


def quick_time(choice: Quick, now: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    """The moment a quick choice means now, or None when it is no longer ahead."""
    if choice is Quick.HOUR:
        return (now + dt.timedelta(hours=1)).astimezone(dt.UTC)
    if choice is Quick.THREE_HOURS:
        return (now + dt.timedelta(hours=3)).astimezone(dt.UTC)
    today = now.astimezone(zone).date()
    if choice is Quick.TODAY_18:
        day, clock = today, dt.time(18)
    else:
        day = today + dt.timedelta(days=1)
        clock = dt.time(9) if choice is Quick.TOMORROW_9 else dt.time(14)
    moment = dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)
    return moment if moment > now else None


def quick_choices(now: dt.datetime, zone: ZoneInfo) -> list[Quick]:
    """The quick choices still ahead of `now` ("today 18:00" only before 18:00)."""
    return [choice for choice in Quick if quick_time(choice, now, zone) is not None]


# --- quiet hours ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietHours:
    """From `start` to `end`, minutes after local midnight; start > end spans midnight."""

    start: int
    end: int

    def covers(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


OFF: Final = "off"


def quiet_text(quiet: QuietHours | None) -> str:
    """As stored: "21:00-09:00", or "off"."""
    if quiet is None:
        return OFF
    return f"{clock_text(quiet.start)}-{clock_text(quiet.end)}"


def user_quiet(stored: str | None, default: QuietHours | None) -> QuietHours | None:
    """A user's quiet hours: their own ("off" included), else the configured default."""
    if stored is None:
        return default
    try:
        return parse_quiet(stored)
    except InvalidQuiet:
        return default


def parse_quiet(text: str) -> QuietHours | None:
    """ "21:00-09:00", "22-8" or "off" (None). Raises InvalidQuiet."""
    text = text.strip().lower()
    if text in _OFF_WORDS:
        return None
    found = _QUIET.match(text) if len(text) <= _MAX_INPUT else None
    if found is None:
        raise InvalidQuiet(text)
    values = []
    for hour, minute in (("h1", "m1"), ("h2", "m2")):
        h, m = int(found[hour]), int(found[minute] or 0)
        if h > 23 or m > 59:
            raise InvalidQuiet(text)
        values.append(h * 60 + m)
    if values[0] == values[1]:
        raise InvalidQuiet(text)
    return QuietHours(values[0], values[1])


def is_quiet(moment: dt.datetime, quiet: QuietHours | None, zone: ZoneInfo) -> bool:
    if quiet is None:
        return False
    local = moment.astimezone(zone)
    return quiet.covers(local.hour * 60 + local.minute)


def quiet_end(moment: dt.datetime, quiet: QuietHours | None, zone: ZoneInfo) -> dt.datetime:
    """The first moment at or after `moment` outside quiet hours (UTC)."""
    if quiet is None or not is_quiet(moment, quiet, zone):
        return moment.astimezone(dt.UTC)
    local = moment.astimezone(zone)
    hour, minute = divmod(quiet.end, 60)
    day = local.date()
    for _ in range(3):
        end = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
        if end > local:
            # A wall clock skipped by a clock change lands after it: still outside quiet.
            return end.astimezone(dt.UTC)
        day += dt.timedelta(days=1)
    raise AssertionError("quiet hours never end")  # pragma: no cover: at most a day away


def release_at(due: dt.datetime, quiet: QuietHours | None, zone: ZoneInfo) -> dt.datetime:
    """When a scheduled send due at `due` may start: at once, or when quiet hours end."""
    return quiet_end(due, quiet, zone)


def clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def local_text(moment: dt.datetime, zone: ZoneInfo) -> str:
    """ "24.12.2026 09:30", in the zone."""
    return moment.astimezone(zone).strftime("%d.%m.%Y %H:%M")
