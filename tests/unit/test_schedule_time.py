"""Typed times and quiet hours in the user's zone: the answers never depend on the machine's
own zone (CI runs this under TZ=America/Los_Angeles, a server in Asia/Tashkent)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from services.schedule_time import (
    MAX_AHEAD,
    InvalidQuiet,
    InvalidWhen,
    InvalidZone,
    Quick,
    QuietHours,
    WhenProblem,
    is_quiet,
    parse_quiet,
    parse_when,
    parse_zone,
    quick_choices,
    quick_time,
    quiet_end,
    quiet_text,
    release_at,
    user_quiet,
    zone_of,
)

TASHKENT = ZoneInfo("Asia/Tashkent")  # UTC+5, no daylight saving
LA = ZoneInfo("America/Los_Angeles")  # UTC-8 / UTC-7
# 1 December 2026, 10:00 in Tashkent.
NOW = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
NIGHT = QuietHours(21 * 60, 9 * 60)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-24 09:30", utc(2026, 12, 24, 4, 30)),
        ("2026-12-24T09:30", utc(2026, 12, 24, 4, 30)),
        ("24.12.2026 09:30", utc(2026, 12, 24, 4, 30)),
        ("24.12 09:30", utc(2026, 12, 24, 4, 30)),
        ("  24.12   9.30 ", utc(2026, 12, 24, 4, 30)),
        # The next occurrence: still ahead today, or tomorrow.
        ("18:00", utc(2026, 12, 1, 13, 0)),
        ("09:59", utc(2026, 12, 2, 4, 59)),
        ("10:00", utc(2026, 12, 2, 5, 0)),  # exactly now is not ahead
        # A day and month already past this year mean next year's (within 60 days: January).
        ("05.01 08:00", utc(2027, 1, 5, 3, 0)),
    ],
)
def test_accepted_forms_read_in_the_users_zone(text: str, expected: dt.datetime) -> None:
    assert parse_when(text, NOW, TASHKENT) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tomorrow", WhenProblem.FORMAT),
        ("", WhenProblem.FORMAT),
        ("24/12 09:30", WhenProblem.FORMAT),
        ("9" * 1000, WhenProblem.FORMAT),
        ("31.02 10:00", WhenProblem.NO_SUCH_DATE),
        ("25:00", WhenProblem.NO_SUCH_DATE),
        ("12:60", WhenProblem.NO_SUCH_DATE),
        ("2026-12-01 09:59", WhenProblem.PAST),
        ("2025-12-24 09:30", WhenProblem.PAST),
        ("2027-03-01 09:30", WhenProblem.TOO_FAR),
        ("10.11 09:00", WhenProblem.TOO_FAR),  # the next 10 November is almost a year away
    ],
)
def test_refused_times_say_why(text: str, problem: WhenProblem) -> None:
    with pytest.raises(InvalidWhen) as caught:
        parse_when(text, NOW, TASHKENT)
    assert caught.value.problem is problem


def test_sixty_days_is_the_limit() -> None:
    edge = NOW + MAX_AHEAD
    assert parse_when(edge.astimezone(TASHKENT).strftime("%Y-%m-%d %H:%M"), NOW, TASHKENT) == edge
    with pytest.raises(InvalidWhen):
        later = edge + dt.timedelta(minutes=1)
        parse_when(later.astimezone(TASHKENT).strftime("%Y-%m-%d %H:%M"), NOW, TASHKENT)


def test_daylight_saving_gap_and_overlap_in_los_angeles() -> None:
    now = utc(2027, 3, 1, 12, 0)
    # 14 March 2027: clocks jump from 02:00 to 03:00; 02:30 does not exist there.
    with pytest.raises(InvalidWhen) as caught:
        parse_when("2027-03-14 02:30", now, LA)
    assert caught.value.problem is WhenProblem.GAP
    assert parse_when("2027-03-14 03:30", now, LA) == utc(2027, 3, 14, 10, 30)  # PDT, UTC-7
    assert parse_when("2027-03-13 03:30", now, LA) == utc(2027, 3, 13, 11, 30)  # PST, UTC-8


def test_quick_choices_follow_the_clock() -> None:
    assert quick_time(Quick.HOUR, NOW, TASHKENT) == utc(2026, 12, 1, 6, 0)
    assert quick_time(Quick.TODAY_18, NOW, TASHKENT) == utc(2026, 12, 1, 13, 0)
    assert quick_time(Quick.TOMORROW_9, NOW, TASHKENT) == utc(2026, 12, 2, 4, 0)
    evening = utc(2026, 12, 1, 14, 0)  # 19:00 in Tashkent: "today 18:00" is gone
    assert quick_time(Quick.TODAY_18, evening, TASHKENT) is None
    assert Quick.TODAY_18 not in quick_choices(evening, TASHKENT)
    assert Quick.TODAY_18 in quick_choices(NOW, TASHKENT)
    # The same moment is 21:00 the day before in Los Angeles: "tomorrow" is 1 December there.
    assert quick_time(Quick.TOMORROW_9, NOW, LA) == utc(2026, 12, 1, 17, 0)


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        ("20:59", False),
        ("21:00", True),
        ("23:59", True),
        ("00:00", True),
        ("08:59", True),
        ("09:00", False),
        ("12:00", False),
    ],
)
def test_quiet_hours_across_midnight(local: str, quiet: bool) -> None:
    hour, minute = map(int, local.split(":"))
    moment = dt.datetime(2026, 12, 1, hour, minute, tzinfo=TASHKENT)
    assert is_quiet(moment, NIGHT, TASHKENT) is quiet
    assert is_quiet(moment, None, TASHKENT) is False


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(13 * 60, 14 * 60)
    assert is_quiet(dt.datetime(2026, 12, 1, 13, 30, tzinfo=TASHKENT), lunch, TASHKENT)
    assert not is_quiet(dt.datetime(2026, 12, 1, 14, 0, tzinfo=TASHKENT), lunch, TASHKENT)


def test_quiet_end_and_release() -> None:
    late = dt.datetime(2026, 12, 1, 22, 15, tzinfo=TASHKENT)
    morning = dt.datetime(2026, 12, 2, 9, 0, tzinfo=TASHKENT)
    assert quiet_end(late, NIGHT, TASHKENT) == morning
    early = dt.datetime(2026, 12, 2, 3, 0, tzinfo=TASHKENT)
    assert quiet_end(early, NIGHT, TASHKENT) == morning
    noon = dt.datetime(2026, 12, 2, 12, 0, tzinfo=TASHKENT)
    assert release_at(noon, NIGHT, TASHKENT) == noon
    assert release_at(late, None, TASHKENT) == late
    # The same instant is 09:15 in Tashkent but 20:15 the evening before in Los Angeles.
    assert not is_quiet(utc(2026, 12, 1, 4, 15), NIGHT, TASHKENT)
    assert not is_quiet(utc(2026, 12, 1, 4, 15), NIGHT, LA)
    assert is_quiet(utc(2026, 12, 1, 5, 15), NIGHT, LA)  # 21:15 there
    assert quiet_end(utc(2026, 12, 1, 5, 15), NIGHT, LA) == utc(2026, 12, 1, 17, 0)


def test_quiet_end_on_a_daylight_saving_night() -> None:
    # The night the clocks spring forward in Los Angeles is an hour shorter: 09:00 PDT.
    night = dt.datetime(2027, 3, 13, 23, 0, tzinfo=LA)
    assert quiet_end(night, NIGHT, LA) == utc(2027, 3, 14, 16, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21:00-09:00", QuietHours(1260, 540)),
        ("22-8", QuietHours(1320, 480)),
        ("22.30 – 7.15", QuietHours(1350, 435)),
        ("off", None),
        ("OFF", None),
        ("выкл", None),
    ],
)
def test_quiet_hours_typed(text: str, expected: QuietHours | None) -> None:
    assert parse_quiet(text) == expected


@pytest.mark.parametrize("text", ["21:00", "25-8", "21:00-21:00", "9:61-10", "evening", "1" * 500])
def test_quiet_hours_refused(text: str) -> None:
    with pytest.raises(InvalidQuiet):
        parse_quiet(text)


def test_stored_quiet_hours() -> None:
    assert quiet_text(NIGHT) == "21:00-09:00"
    assert quiet_text(None) == "off"
    assert user_quiet(None, NIGHT) == NIGHT
    assert user_quiet("off", NIGHT) is None
    assert user_quiet("22:00-06:00", None) == QuietHours(1320, 360)


def test_zone_names() -> None:
    assert parse_zone(" Europe/Berlin ") == "Europe/Berlin"
    assert parse_zone("asia/tashkent") == "Asia/Tashkent"
    assert parse_zone("utc") == "UTC"
    for bad in ["Mars/Olympus", "../../etc/passwd", "Asia/", "", "x" * 100, "Asia Tashkent"]:
        with pytest.raises(InvalidZone):
            parse_zone(bad)
    assert zone_of(None).key == "Asia/Tashkent"
    assert zone_of("No/Such").key == "Asia/Tashkent"
