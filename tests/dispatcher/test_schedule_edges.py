"""The less travelled branches of scheduled sends and quiet hours: limits, a token or access
gone by the due time, a gateway down at it, a job no longer ready, forged buttons, and a job
that cannot go on after quiet hours."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from handlers.callbacks import ScheduleAction, ScheduleCb, ZoneCb
from handlers.schedule.later import SCHEDULED_MAX
from services.access import AccessPolicy
from services.scheduler import Scheduler, parse_stamp
from services.sending import Outcome, SendOutcome
from storage import ScheduleRepo
from storage.outbox import Claim
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.notifiers import install
from tests.support.recording import SentMessage

SEND = "/send_sms.php"
BALANCE = "/get_balance.php"
PHONE = "998901234567"
TASHKENT = ZoneInfo("Asia/Tashkent")


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
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


async def connect(app: Harness) -> None:
    await app.send("/start")
    await app.send(GOOD_TOKEN)


async def scheduled_sms(app: Harness, text: str = "Later") -> dt.datetime:
    """An SMS scheduled an hour ahead; its due time."""
    [preview] = await app.send(f"/send {PHONE} {text}")
    [ask] = [m for m in await app.tap(preview, "Send later") if "When" in m.text]
    await app.tap(ask, "In 1 hour")
    items = await repo(app).open_of(1, 100)
    return parse_stamp(items[-1].due_at)


def quiet_around_now() -> str:
    now = dt.datetime.now(TASHKENT)
    return f"{now - dt.timedelta(hours=1):%H:%M}-{now + dt.timedelta(hours=1):%H:%M}"


async def dry_run(app: Harness) -> SentMessage:
    await app.send("/bulk")
    await app.send("901234501\n901234502\n901234503\n")
    [review] = await app.send("Sale")
    return review


async def test_the_number_of_waiting_sends_is_limited(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    for n in range(SCHEDULED_MAX):
        await repo(app).add_sms(1, PHONE, f"n{n}", None, "2030-01-01T00:00:00+00:00")
    [preview] = await app.send(f"/send {PHONE} one more")
    await app.tap(preview, "Send later")
    answer = app.answers()[-1]
    assert answer.text == "20 sends are already scheduled; cancel one in /scheduled first."
    assert answer.show_alert
    assert await app.state_of() == "SendForm:preview"  # the preview still works


async def test_token_gone_or_access_withdrawn_by_the_due_time(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    due = await scheduled_sms(app, "access")
    policy = scheduler(app)._policy
    scheduler(app)._policy = AccessPolicy(True, frozenset())  # allowlist; user 1 not allowed
    await tick_at(app, due + dt.timedelta(seconds=1))
    assert "An administrator withdrew your access to the bot" in app.last().text
    assert devsms.requests_to(SEND) == []

    scheduler(app)._policy = policy
    due = await scheduled_sms(app, "token")
    devsms.accounts.pop(GOOD_TOKEN)  # devsms no longer knows the token: 401
    await tick_at(app, due + dt.timedelta(seconds=1))
    assert "devsms.uz does not accept your token" in app.last().text
    assert devsms.requests_to(SEND) == []


async def test_gateway_down_at_the_due_time_tries_again_next_round(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    due = await scheduled_sms(app)
    devsms.fail_next(10, status=503, path=BALANCE)
    await tick_at(app, due + dt.timedelta(seconds=1))
    assert devsms.requests_to(SEND) == []
    [item] = await repo(app).open_of(1, 10)
    assert item.state == "waiting"  # nothing said yet: it is tried again
    devsms.clear_faults()
    await tick_at(app, due + dt.timedelta(seconds=10))
    assert [s.message for s in devsms.sent] == ["Later"]


async def test_a_prepared_job_no_longer_ready_is_not_started(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    review = await dry_run(app)
    [ask] = [m for m in await app.tap(review, "Send later") if "When" in m.text]
    await app.tap(ask, "In 1 hour")
    [item] = await repo(app).open_of(1, 10)
    assert item.job_id is not None
    # What /deny does to a user's ready jobs.
    await app.dp["bulk_runner"].pause_jobs_of(1, "access")
    await tick_at(app, parse_stamp(item.due_at) + dt.timedelta(seconds=1))
    assert "Its bulk job is no longer waiting to start (see /jobs)" in app.last().text
    assert devsms.requests_to(SEND) == []


async def test_forged_schedule_buttons(sched_app: Harness, devsms: FakeDevsms) -> None:
    app = sched_app
    await connect(app)
    [preview] = await app.send(f"/send {PHONE} forged")
    [ask] = [m for m in await app.tap(preview, "Send later") if "When" in m.text]
    draft = ScheduleCb.unpack(button_data(ask, "In 1 hour")).draft
    forged = ScheduleCb(action=ScheduleAction.PICK, draft=draft, choice="y1").pack()
    await app.tap_data(ask, forged)
    assert app.answers()[-1].text == "This button is no longer active."
    await app.tap_data(ask, ZoneCb(index=49).pack())
    assert app.answers()[-1].text == "This button is no longer active."
    not_mine = ScheduleCb(action=ScheduleAction.NOW, item=12345).pack()
    await app.tap_data(ask, not_mine)
    assert app.answers()[-1].text == "This scheduled send is no longer waiting."
    assert await repo(app).open_of(1, 10) == []
    assert devsms.requests_to(SEND) == []


async def test_settings_dialogs_take_only_text(sched_app: Harness) -> None:
    app = sched_app
    await connect(app)
    [shown] = await app.send("/settings")
    await app.tap(shown, "Time zone")
    [answer] = await app.send_sticker()
    assert "Please send it as a text message." in answer.text
    [shown] = await app.send("/settings")
    await app.tap(shown, "Quiet hours")
    [answer] = await app.send_sticker()
    assert "Please send it as a text message." in answer.text
    assert await app.state_of() == "SettingsForm:quiet"


async def test_start_at_after_quiet_hours_ended_meanwhile(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    review = await dry_run(app)
    await app.services.users.set_quiet(1, quiet_around_now())
    [question] = await app.tap(review, "🚀 Start")
    await app.services.users.set_quiet(1, "off")
    await app.tap(question, "Start at")
    assert app.answers()[-1].text == "Quiet hours are over: tap Start."
    assert await repo(app).open_of(1, 10) == []


async def test_quiet_pause_resume_paths(sched_app: Harness, devsms: FakeDevsms) -> None:
    app = sched_app
    await connect(app)
    devsms.hold(SEND)
    await app.tap(await dry_run(app), "🚀 Start")
    await devsms.wait_held()
    await app.services.users.set_quiet(1, quiet_around_now())
    await tick_at(app, dt.datetime.now(dt.UTC))
    devsms.release()
    progress = next(m for m in app.session.chat(1) if "Bulk job #1" in m.text)
    await until(lambda: "Paused for your quiet hours" in progress.text)
    # After quiet hours the balance no longer covers the rest: paused for that, and told.
    devsms.accounts[GOOD_TOKEN].balance = Decimal(10)
    await tick_at(app, dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    await until(lambda: "the balance ran out" in app.last().text)
    job = await app.services.bulk.get_job(1)
    assert job is not None and (job.state, job.pause_reason) == ("paused", "balance")

    # Resumed by hand inside quiet hours: it runs on, the rounds do not pause it again.
    devsms.accounts[GOOD_TOKEN].balance = Decimal(10_000)
    await app.tap(progress, "Resume")
    await tick_at(app, dt.datetime.now(dt.UTC))
    await until(lambda: any("finished." in m.text for m in app.session.chat(1)))
    assert len(devsms.requests_to(SEND)) == 3


class _SenderStub:
    """Stands for the send path's rarer answers: the request never left (NOT_SENT), or the
    path refused before recording anything (as a stop-list check would)."""

    def __init__(self, app: Harness, outcome: Outcome, *, claims: bool) -> None:
        self.app, self.outcome, self.claims = app, outcome, claims

    async def send(
        self,
        user_id: int,
        phone: str,
        message: str,
        sender: str | None,
        *,
        claim: Claim,
        template: str | None = None,
    ) -> SendOutcome:
        outbox = self.app.services.outbox
        if not self.claims:
            return SendOutcome(self.outcome, 0)
        outbox_id = await outbox.create_claimed(
            user_id, phone, message, sender, claim, template=template
        )
        await outbox.mark_failed(outbox_id, "DevsmsUnavailable")
        return SendOutcome(self.outcome, outbox_id)


@pytest.mark.parametrize(
    ("outcome", "claims", "told", "state"),
    [
        (
            Outcome.NOT_SENT,
            True,
            "Could not reach devsms.uz: the SMS was <b>not</b> sent.",
            "started",
        ),
        (Outcome.REFUSED, False, "It was refused before sending. Nothing was sent.", "failed"),
    ],
)
async def test_send_path_answers_that_send_nothing(
    sched_app: Harness, outcome: Outcome, claims: bool, told: str, state: str
) -> None:
    app = sched_app
    await connect(app)
    due = await scheduled_sms(app)
    [item] = await repo(app).open_of(1, 10)
    scheduler(app)._sender = _SenderStub(app, outcome, claims=claims)  # type: ignore[assignment]
    await tick_at(app, due + dt.timedelta(seconds=1))
    assert told in app.last().text
    row = await repo(app).get(item.id)
    assert row is not None and row.state == state
    await tick_at(app, due + dt.timedelta(seconds=5))
    assert len([m for m in app.session.chat(1) if m.text.startswith("⏰")]) == 1


async def test_two_jobs_due_together_start_one_at_a_time(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    app = sched_app
    await connect(app)
    for _ in range(2):
        review = await dry_run(app)
        [ask] = [m for m in await app.tap(review, "Send later") if "When" in m.text]
        await app.tap(ask, "Tomorrow at 09:00")
    first, second = await repo(app).open_of(1, 10)
    assert first.due_at == second.due_at
    devsms.hold(SEND)
    await tick_at(app, parse_stamp(first.due_at) + dt.timedelta(seconds=1))
    await devsms.wait_held()
    busy = app.last()
    assert "Bulk job #1 is still in progress, so this one did not start." in busy.text
    states = [(await app.services.bulk.get_job(n)) for n in (1, 2)]
    assert [job.state for job in states if job] == ["running", "ready"]
    devsms.release()
    await until(lambda: any("#1 finished." in m.text for m in app.session.chat(1)))


async def test_items_waiting_for_quiet_hours_do_not_hold_back_others(
    sched_app: Harness, devsms: FakeDevsms
) -> None:
    """A round looked at the 200 longest-due items only: a user's items held by their quiet
    hours filled it every round, and other users' sends waited until those hours ended."""
    app = sched_app
    await connect(app)
    await app.send("/start", user_id=2)
    await app.send(OTHER_TOKEN, user_id=2)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await app.services.users.set_quiet(1, quiet_around_now())
    await app.services.users.set_quiet(2, "off")
    held_due = now - dt.timedelta(minutes=30)
    for n in range(200):
        await repo(app).add_sms(1, PHONE, f"held {n}", None, held_due.isoformat())
    other_due = now - dt.timedelta(minutes=1)
    await repo(app).add_sms(2, PHONE, "not held", None, other_due.isoformat())
    await tick_at(app, now)
    await tick_at(app, now + dt.timedelta(seconds=5))
    assert await repo(app).open_of(2, 10) == []  # started: no longer waiting
    assert [r.json["message"] for r in devsms.requests_to(SEND)] == ["not held"]
    assert await repo(app).count_open(1) == 200  # still waiting for the end of quiet hours
    # Quiet hours turned off: the held items are looked at again at once, not at their end.
    await app.services.users.set_quiet(1, "off")
    await tick_at(app, now + dt.timedelta(seconds=10))
    assert await repo(app).count_open(1) == 0
    assert len(devsms.requests_to(SEND)) == 201


async def test_one_jobs_failure_does_not_end_the_round(
    sched_app: Harness, devsms: FakeDevsms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holding and resuming jobs ran before the due items with no try per job: one job's
    exception ended every round, and no scheduled send went out again."""
    app = sched_app
    await connect(app)
    await app.send("/start", user_id=2)
    await app.send(OTHER_TOKEN, user_id=2)
    await app.services.users.set_quiet(1, "off")
    await app.services.users.set_quiet(2, "off")
    bulk = app.services.bulk
    job_id = await bulk.create_job(
        1, template="Sale", sender=None, file_name=None, file_format="csv",
        rows=[(1, PHONE, "Sale", 1)],
    )  # fmt: skip
    assert await bulk.set_job_state(job_id, "paused", allowed_from=("ready",), reason="quiet")

    async def broken(job_id: int) -> bool:
        raise RuntimeError("resume broke")

    monkeypatch.setattr(scheduler(app)._runner, "resume", broken)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await repo(app).add_sms(2, PHONE, "still sent", None, now.isoformat())
    await tick_at(app, now + dt.timedelta(seconds=1))
    assert [r.json["message"] for r in devsms.requests_to(SEND)] == ["still sent"]
    assert await repo(app).open_of(2, 10) == []
