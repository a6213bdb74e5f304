"""Scheduled bulk jobs, quiet hours of bulk jobs, and the time zone and quiet hours in
/settings, as a user walks them."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from services.scheduler import Scheduler, parse_stamp
from storage import ScheduleRepo
from tests.conftest import GOOD_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.notifiers import install
from tests.support.recording import SentMessage

SEND = "/send_sms.php"
TASHKENT = ZoneInfo("Asia/Tashkent")
NUMBERS = "901234501\n901234502\n901234503\n"


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    # One request at a time: a job held at its first row has sent nothing else yet.
    return make_settings(tmp_path, devsms.url, bulk_rate=200, bulk_concurrency=1)


@pytest.fixture
async def sched_app(app: Harness) -> AsyncIterator[Harness]:
    install(app.dp, app.bot, None, app.services)
    yield app
    await app.dp["bulk_runner"].stop()


def scheduler(app: Harness) -> Scheduler:
    found: Scheduler = app.dp["scheduler"]
    return found


def repo(app: Harness) -> ScheduleRepo:
    return app.services.schedule


async def tick_at(app: Harness, moment: dt.datetime) -> None:
    scheduler(app).now = lambda: moment
    await scheduler(app).tick()


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


def one(sent: list[SentMessage], containing: str) -> SentMessage:
    [found] = [m for m in sent if containing in m.text]
    return found


def quiet_around_now(hours: int = 1) -> str:
    """Quiet hours that hold now (Tashkent time), ending `hours` from now."""
    now = dt.datetime.now(TASHKENT)
    start, end = now - dt.timedelta(hours=hours), now + dt.timedelta(hours=hours)
    return f"{start:%H:%M}-{end:%H:%M}"


async def dry_run(app: Harness, text: str = "Sale today") -> SentMessage:
    await app.send("/start")
    await app.send(GOOD_TOKEN)
    await app.send("/bulk")
    await app.send(NUMBERS)
    [review] = await app.send(text)
    return review


async def test_bulk_send_later_keeps_the_job_ready_until_its_time(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    review = await dry_run(app)
    ask = one(await app.tap(review, "Send later"), "When should it go out?")
    done = one(await app.tap(ask, "Tomorrow at 09:00"), "Scheduled for")
    assert "bulk job #1" in done.text
    [item] = await repo(app).open_of(1, 10)
    assert item.kind == "bulk" and item.job_id == 1
    job = await app.services.bulk.get_job(1)
    assert job is not None and (job.state, job.total) == ("ready", 3)
    # Opening the waiting job says so instead of a progress it does not have.
    [jobs] = await app.send("/jobs")
    assert "#1 · Pasted list · 🕒 scheduled · sent 0 of 3" in jobs.text
    await app.tap(jobs, "#1")
    assert app.answers()[-1].text == "Job #1 waits for its scheduled time; see /scheduled."

    due = parse_stamp(item.due_at)
    await tick_at(app, due - dt.timedelta(seconds=1))
    assert devsms.sent == []
    await tick_at(app, due + dt.timedelta(seconds=1))
    started = next(m for m in app.session.chat(1) if "has started" in m.text)
    assert "Scheduled bulk job #1 has started" in started.text
    assert labels(started) == ["📦 Open job #1"]
    async with asyncio.timeout(5):
        await devsms.wait_sent(3)
    await until(lambda: any("finished." in m.text for m in app.session.chat(1)))
    await tick_at(app, due + dt.timedelta(seconds=30))
    assert len(devsms.requests_to(SEND)) == 3


async def test_scheduled_job_does_not_start_when_the_balance_is_short(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    review = await dry_run(app)
    ask = one(await app.tap(review, "Send later"), "When should it go out?")
    await app.tap(ask, "In 1 hour")
    [item] = await repo(app).open_of(1, 10)
    devsms.accounts[GOOD_TOKEN].balance = Decimal(100)  # three parts cost 150
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    assert "The balance does not cover it now (50 so'm more is needed)" in app.last().text
    assert devsms.requests_to(SEND) == []
    # The prepared job will not start any more: /jobs shows it cancelled.
    job = await app.services.bulk.get_job(1)
    assert job is not None and job.state == "cancelled"


async def test_scheduled_job_waits_while_another_job_runs(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    review = await dry_run(app, "later one")
    await app.tap(one(await app.tap(review, "Send later"), "When"), "In 1 hour")
    [item] = await repo(app).open_of(1, 10)
    devsms.hold(SEND)
    review = await dry_run(app, "now one")
    await app.tap(review, "Start")
    await devsms.wait_held()
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    busy = app.last()
    assert "Bulk job #2 is still in progress, so this one did not start." in busy.text
    assert labels(busy) == ["▶️ Send now", "✖️ Cancel", "🕒 All scheduled"]
    devsms.release()
    await until(lambda: any("#2 finished." in m.text for m in app.session.chat(1)))
    # Once that one is over, "Send now" starts it.
    await app.tap(busy, "✖️ Cancel")
    job = await app.services.bulk.get_job(1)
    assert job is not None and job.state == "cancelled"
    assert {s.message for s in devsms.sent} == {"now one"}


async def test_start_inside_quiet_hours_asks_and_start_anyway_runs_through(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    review = await dry_run(app)
    await app.services.users.set_quiet(1, quiet_around_now())
    [question] = await app.tap(review, "🚀 Start")
    assert "It is now within your quiet hours" in question.text
    assert labels(question)[0] == "🚀 Start anyway"
    assert labels(question)[1].startswith("🌅 Start at ")
    assert devsms.sent == []
    sent = await app.tap(question, "Start anyway")
    assert any("Bulk job #1" in m.text for m in sent)
    # The scheduler's rounds leave it running: its owner chose to.
    await tick_at(app, dt.datetime.now(dt.UTC))
    async with asyncio.timeout(5):
        await devsms.wait_sent(3)


async def test_start_at_the_end_of_quiet_hours_schedules_it_then(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    review = await dry_run(app)
    await app.services.users.set_quiet(1, quiet_around_now())
    [question] = await app.tap(review, "🚀 Start")
    done = one(await app.tap(question, "Start at"), "Scheduled for")
    assert "bulk job #1" in done.text
    [item] = await repo(app).open_of(1, 10)
    end = parse_stamp(item.due_at)
    assert dt.timedelta(minutes=55) < end - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    await tick_at(app, end - dt.timedelta(minutes=1))
    assert devsms.sent == []
    await tick_at(app, end + dt.timedelta(seconds=1))
    async with asyncio.timeout(5):
        await devsms.wait_sent(3)


async def test_running_job_pauses_for_quiet_hours_and_resumes_after(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    review = await dry_run(app)
    devsms.hold(SEND)
    await app.tap(review, "🚀 Start")
    await devsms.wait_held()
    await app.services.users.set_quiet(1, quiet_around_now())
    await tick_at(app, dt.datetime.now(dt.UTC))
    devsms.release()  # the row in flight settles; no other starts
    progress = next(m for m in app.session.chat(1) if "Bulk job #1" in m.text)
    await until(lambda: "Paused for your quiet hours" in progress.text)
    assert labels(progress) == ["▶️ Resume", "✖️ Cancel"]
    [jobs] = await app.send("/jobs")
    assert "#1 · Pasted list · 🌙 paused for quiet hours · sent " in jobs.text
    sent_before = len(devsms.requests_to(SEND))
    assert sent_before < 3
    await tick_at(app, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30))
    assert len(devsms.requests_to(SEND)) == sent_before  # still quiet
    await tick_at(app, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1, minutes=1))
    await until(lambda: any("finished." in m.text for m in app.session.chat(1)))
    assert len(devsms.requests_to(SEND)) == 3


async def test_time_zone_and_quiet_hours_in_settings(sched_app: Harness) -> None:
    app = sched_app
    await app.send("/start")
    await app.send(GOOD_TOKEN)
    [shown] = await app.send("/settings")
    assert "Time zone: Asia/Tashkent" in shown.text
    assert "Quiet hours: off" in shown.text  # the tests' QUIET_HOURS
    await app.tap(shown, "Time zone")
    zones = app.last()
    assert "Asia/Almaty" in labels(zones)
    [saved, redrawn] = await app.tap(zones, "Asia/Almaty")
    assert "Saved: time zone Asia/Almaty." in saved.text
    assert "Time zone: Asia/Almaty" in redrawn.text

    await app.tap(redrawn, "Time zone")
    [bad] = await app.send("Mars/Olympus")
    assert "I do not know this time zone." in bad.text
    [saved, _] = await app.send("europe/berlin")
    assert "Saved: time zone Europe/Berlin." in saved.text
    assert await app.state_of() is None

    [shown] = await app.send("/settings")
    await app.tap(shown, "Quiet hours")
    ask = app.last()
    assert "Single SMS you send yourself are not held back." in ask.text
    [bad] = await app.send("late evening")
    assert "e.g. 21:00-09:00 or 22-8" in bad.text
    [saved, redrawn] = await app.send("22-7:30")
    assert "Saved: quiet hours 22:00–07:30." in saved.text
    assert "Quiet hours: 22:00–07:30" in redrawn.text
    user = await app.services.users.get(1)
    assert user is not None and (user.timezone, user.quiet_hours) == (
        "Europe/Berlin",
        "22:00-07:30",
    )
    await app.tap(redrawn, "Quiet hours")
    [saved, _] = await app.tap(app.last(), "No quiet hours")
    assert "Saved: quiet hours off." in saved.text
    await app.tap(app.last(), "Quiet hours")
    [saved, _] = await app.tap(app.last(), "Default")
    user = await app.services.users.get(1)
    assert user is not None and user.quiet_hours is None


async def test_forged_and_stale_schedule_buttons_change_nothing(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    review = await dry_run(app)
    later = button_data(review, "Send later")
    ask = one(await app.tap(review, "Send later"), "When")
    await app.tap(ask, "In 1 hour")
    [item] = await repo(app).open_of(1, 10)
    # Another user's taps on this user's item: "no longer waiting", nothing changes.
    await app.send("/start", user_id=2)
    await app.send(GOOD_TOKEN, user_id=2)
    [listing] = await app.send("/scheduled")
    await app.tap(listing, f"✖️ #{item.id}", user_id=2)
    assert app.answers()[-1].text == "This scheduled send is no longer waiting."
    assert (await repo(app).open_of(1, 10))[0].state == "waiting"
    # The dry run's Send later after it was used: stale.
    await app.tap_data(review, later)
    assert app.answers()[-1].text == "This button is no longer active."
