"""Scheduled single sends as a user walks them: «🕒 Send later» under the preview, a quick
choice or a typed time, /scheduled, and the scheduler starting (or holding) the send.

The scheduler runs on a clock the test sets (`Scheduler.now`); the dialog reads the real one,
so times are chosen relative to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from services.scheduler import Scheduler, parse_stamp
from services.sending import SmsSender
from storage import ScheduledRow, ScheduleRepo
from storage.outbox import NotClaimed
from tests.conftest import GOOD_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.notifiers import install
from tests.support.recording import SentMessage

SEND = "/send_sms.php"
PHONE = "998901234567"
TASHKENT = ZoneInfo("Asia/Tashkent")
GRACE = dt.timedelta(minutes=10)


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    return make_settings(tmp_path, devsms.url, schedule_grace=GRACE.total_seconds())


@pytest.fixture
async def sched_app(app: Harness) -> AsyncIterator[Harness]:
    """The app with a notifier that delivers the scheduler's notices at once."""
    install(app.dp, app.bot, None, app.services)
    yield app
    await app.dp["bulk_runner"].stop()


def scheduler(app: Harness) -> Scheduler:
    found: Scheduler = app.dp["scheduler"]
    return found


def repo(app: Harness) -> ScheduleRepo:
    return app.services.schedule


async def tick_at(app: Harness, moment: dt.datetime) -> None:
    """One round of the scheduler at `moment`."""
    scheduler(app).now = lambda: moment
    await scheduler(app).tick()


async def connect(app: Harness, user_id: int = 1) -> None:
    await app.send("/start", user_id)
    await app.send(GOOD_TOKEN, user_id)


async def ask_later(app: Harness, text: str = "See you later") -> SentMessage:
    """A preview of /send, then «🕒 Send later»: the question of when."""
    await connect(app)
    [preview] = await app.send(f"/send {PHONE} {text}")
    sent = await app.tap(preview, "Send later")
    return next(m for m in sent if "When should it go out?" in m.text)


def one(sent: list[SentMessage], containing: str) -> SentMessage:
    [found] = [m for m in sent if containing in m.text]
    return found


def local(moment: dt.datetime) -> str:
    return moment.astimezone(TASHKENT).strftime("%d.%m.%Y %H:%M")


async def only_item(app: Harness) -> ScheduledRow:
    [item] = await repo(app).open_of(1, 10)
    return item


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


async def test_quick_choice_schedules_and_it_goes_out_once_at_its_time(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    ask = await ask_later(app, "Meeting & <room> 5")
    assert "Your time zone: Asia/Tashkent" in ask.text
    assert labels(ask)[0].startswith("In 1 hour (")
    assert "Tomorrow at 09:00" in labels(ask) and labels(ask)[-1] == "✖️ Cancel"
    before = dt.datetime.now(dt.UTC)
    done = one(await app.tap(ask, "In 1 hour"), "Scheduled for")
    item = await only_item(app)
    due = parse_stamp(item.due_at)
    assert before + dt.timedelta(hours=1) - dt.timedelta(seconds=1) <= due
    assert due <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert f"Scheduled for {local(due)} (Asia/Tashkent)" in done.text
    assert "SMS to +998 90 123 45 67: «Meeting &amp; &lt;room&gt; 5»" in done.text
    assert labels(done) == ["▶️ Send now", "✖️ Cancel", "🕒 All scheduled"]
    assert await app.state_of() is None
    [listing] = await app.tap(done, "All scheduled")  # the same as /scheduled
    assert f"#{item.id}" in listing.text and local(due) in listing.text

    await tick_at(app, due - dt.timedelta(seconds=1))
    assert devsms.sent == []  # not before its time
    await tick_at(app, due + dt.timedelta(seconds=2))
    [sms] = devsms.sent
    assert (sms.phone, sms.message) == (PHONE, "Meeting & <room> 5")
    notice = app.last()
    assert f"⏰ Scheduled for {local(due)} (Asia/Tashkent):" in notice.text
    assert "✅ <b>Sent.</b>" in notice.text and f"SMS id: {sms.sms_id}" in notice.text
    assert labels(notice) == ["🔄 Refresh status"]

    await tick_at(app, due + dt.timedelta(seconds=30))
    assert len(devsms.requests_to(SEND)) == 1  # never twice
    [empty] = await app.send("/scheduled")
    assert "Nothing is scheduled." in empty.text
    row = await repo(app).get(item.id)
    assert row is not None and row.state == "started" and row.outbox_id is not None


async def test_typed_times_are_checked_and_explained(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await ask_later(app)
    [bad] = await app.send("next friday")
    assert "I could not read this as a date and time." in bad.text
    assert "<code>24.12 09:30</code>" in bad.text
    [past] = await app.send("2020-01-01 10:00")
    assert "This time has already passed." in past.text
    far = dt.datetime.now(TASHKENT) + dt.timedelta(days=61)
    [too_far] = await app.send(far.strftime("%Y-%m-%d %H:%M"))
    assert "at most 60 days ahead" in too_far.text
    [no_date] = await app.send("31.02 10:00")
    assert "There is no such date or time." in no_date.text
    [sticker] = await app.send_sticker()
    assert "Send the date and time as a message" in sticker.text
    assert await repo(app).open_of(1, 10) == []  # nothing half-saved
    assert await app.state_of() == "ScheduleForm:when"

    wanted = (dt.datetime.now(TASHKENT) + dt.timedelta(days=2)).replace(hour=9, minute=30)
    [done] = await app.send(wanted.strftime("%d.%m %H:%M"))
    assert f"Scheduled for {wanted.strftime('%d.%m.%Y')} 09:30 (Asia/Tashkent)" in done.text
    item = await only_item(app)
    assert parse_stamp(item.due_at) == wanted.replace(second=0, microsecond=0)
    assert devsms.sent == []


async def test_cancel_while_choosing_and_from_the_list(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    ask = await ask_later(app)
    pick = button_data(ask, "In 1 hour")
    [cancelled] = await app.tap(ask, "✖️ Cancel")
    assert "Cancelled. Nothing was scheduled." in cancelled.text
    assert await app.state_of() is None
    # The quick choices of that question are gone with it.
    stale = await app.tap_data(ask, pick)
    assert app.answers()[-1].text == "This button is no longer active."
    assert all("Scheduled for" not in m.text for m in stale)

    ask = await ask_later(app)
    await app.tap(ask, "Tomorrow at 09:00")
    item = await only_item(app)
    [listing] = await app.send("/scheduled")
    send_now = button_data(listing, f"▶️ #{item.id}")
    [redrawn] = await app.tap(listing, f"✖️ #{item.id}")
    assert app.answers()[-1].text == "Cancelled. Nothing was sent."
    assert "Nothing is scheduled." in redrawn.text
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    assert devsms.requests_to(SEND) == []
    # A second tap on the old list changes nothing.
    await app.tap_data(listing, send_now)
    assert app.answers()[-1].text == "This scheduled send is no longer waiting."
    assert devsms.requests_to(SEND) == []


async def test_late_within_grace_goes_out_beyond_it_waits_for_the_owner(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await app.tap(await ask_later(app, "first"), "In 1 hour")
    await app.tap(await ask_later(app, "second"), "In 3 hours")
    first, second = await repo(app).open_of(1, 10)
    # The bot comes back 5 minutes after the first one's time: within the grace.
    await tick_at(app, parse_stamp(first.due_at) + dt.timedelta(minutes=5))
    assert [s.message for s in devsms.sent] == ["first"]
    # ... and 20 minutes after the second one's: beyond it, the owner decides.
    await tick_at(app, parse_stamp(second.due_at) + dt.timedelta(minutes=20))
    assert [s.message for s in devsms.sent] == ["first"]
    missed = app.last()
    assert "A scheduled send for" in missed.text and "did not go out" in missed.text
    assert "It could not go out at its time" in missed.text
    assert labels(missed) == ["▶️ Send now", "✖️ Cancel", "🕒 All scheduled"]
    [listing] = await app.send("/scheduled")
    assert "waits for your decision" in listing.text

    now_data = button_data(missed, "Send now")
    await app.tap(missed, "Send now")
    assert app.answers()[-1].text == "Sending now…"
    # The tap made it due at once (the dialog's clock is the real one).
    await tick_at(app, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert [s.message for s in devsms.sent] == ["first", "second"]
    # A second tap on the notice, and more rounds: still one SMS each.
    await app.tap_data(missed, now_data)
    assert app.answers()[-1].text == "This scheduled send is no longer waiting."
    await tick_at(app, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))
    assert len(devsms.requests_to(SEND)) == 2


async def test_balance_is_checked_again_at_send_time(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await app.tap(await ask_later(app), "In 1 hour")
    item = await only_item(app)
    devsms.accounts[GOOD_TOKEN].balance = Decimal(20)  # one part costs 50
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    assert devsms.requests_to(SEND) == []
    notice = app.last()
    assert "was not started" in notice.text
    assert "The balance does not cover it now (30 so'm more is needed)" in notice.text
    assert "Nothing was sent." in notice.text
    row = await repo(app).get(item.id)
    assert row is not None and row.state == "failed"


async def test_scheduled_sms_inside_quiet_hours_waits_for_their_end(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    await app.services.users.set_quiet(1, "21:00-09:00")
    [preview] = await app.send(f"/send {PHONE} at night")
    ask = one(await app.tap(preview, "Send later"), "When should it go out?")
    night = (dt.datetime.now(TASHKENT) + dt.timedelta(days=1)).replace(hour=23, minute=0)
    [done] = await app.send(night.strftime("%Y-%m-%d %H:%M"))
    assert ask.text and "inside your quiet hours (21:00–09:00)" in done.text
    morning = (night + dt.timedelta(days=1)).replace(hour=9, minute=0)
    assert f"it will go out at {local(morning)}" in done.text
    await tick_at(app, night + dt.timedelta(minutes=1))
    await tick_at(app, morning - dt.timedelta(minutes=1))
    assert devsms.sent == []
    # Ten hours after its time, but only seconds after quiet hours ended: not late.
    await tick_at(app, morning + dt.timedelta(seconds=5))
    assert [s.message for s in devsms.sent] == ["at night"]


async def test_a_claim_that_fails_sends_and_records_nothing(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    sender: SmsSender = app.dp["sms_sender"]

    async def taken(_outbox_id: int) -> bool:
        return False

    with pytest.raises(NotClaimed):
        await sender.send(1, PHONE, "never", None, claim=taken)
    assert devsms.requests_to(SEND) == []
    assert await app.services.outbox.recent(1, 10) == []


async def test_an_item_claimed_before_a_crash_is_never_started_again(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await app.tap(await ask_later(app), "In 1 hour")
    item = await only_item(app)
    # What a crash right after the claim leaves: the item started, its outbox row pending.
    outbox_id = await app.services.outbox.create_claimed(
        1, PHONE, "See you later", "4546", lambda oid: repo(app).claim(item.id, oid)
    )
    assert await app.services.outbox.orphans_to_unknown() == 1  # what the next start does
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    assert devsms.requests_to(SEND) == []
    row = await repo(app).get(item.id)
    assert row is not None and (row.state, row.outbox_id) == ("started", outbox_id)


async def test_a_scheduled_send_from_a_template_keeps_its_name(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    [listing] = await app.send("/templates")
    await app.tap(listing, "New template")
    await app.send("Hours")
    [saved] = await app.send("We are open 9-18")
    await app.tap(saved, "Send with this text")
    [preview] = await app.send(PHONE)
    ask = one(await app.tap(preview, "Send later"), "When should it go out?")
    await app.tap(ask, "In 1 hour")
    item = await only_item(app)
    assert item.template == "Hours"
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    [sms] = devsms.sent
    [row] = await app.services.outbox.recent(1, 10)
    assert (row.sms_id, row.message, row.template) == (sms.sms_id, "We are open 9-18", "Hours")
