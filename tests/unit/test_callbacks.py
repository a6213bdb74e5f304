"""Delivery callbacks: tokens per send, the inbox's rate limits, and the tracker checking the
SMS a callback names, against the fake gateway and a real database."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.factory import callback_links
from services import metrics
from services.bulk_delivery import BulkDeliveryReporter
from services.callbacks import (
    CallbackInbox,
    CallbackLinks,
    CheckResult,
    Verdict,
    _Call,
    token_hash,
)
from services.health import GatewayHealth
from services.otp import OtpRequest
from services.reconcile import parse_stamp
from services.sending import SmsSender
from services.tracker import DeliveryTracker
from storage import AlertRepo, CallbackRepo, CallbackTarget, OutboxRepo, UserRepo
from tests.conftest import BOT_TOKEN
from tests.fakes.fake_devsms import STATUS, FakeDevsms
from tests.support.bulk_env import Env, wait
from tests.support.watch_env import World

PHONE = "998901234567"
BASE = "https://bot.example.com"


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker_of(world: World) -> DeliveryTracker:
    world.watcher()  # sets world.health
    return DeliveryTracker(
        OutboxRepo(world.db),
        world.alerts,
        world.accounts,
        world.notices,
        world.users,
        world.health,
    )


def token_of(url: str | None) -> str:
    assert url is not None and url.startswith(BASE + "/devsms/callback/")
    return url.rsplit("/", 1)[1]


async def sent_with_link(world: World, links: CallbackLinks) -> tuple[int, int, str]:
    """A real send: (outbox id, sms id, the token in its callback URL)."""
    outcome = await SmsSender(world.accounts, OutboxRepo(world.db), links=links).send(
        1, PHONE, "Hello", None
    )
    assert outcome.result is not None and outcome.result.sms_id is not None
    sms = world.devsms.find(outcome.result.sms_id)
    return outcome.outbox_id, sms.sms_id, token_of(sms.callback_url)


async def test_each_send_gets_its_own_token_and_only_its_hash_is_stored(
    world: World, devsms: FakeDevsms
) -> None:
    await world.add_user(1, "tok-1")
    links = CallbackLinks(BASE)
    first_id, _, first = await sent_with_link(world, links)
    second_id, _, second = await sent_with_link(world, links)
    assert first != second and len(first) == 43

    repo = CallbackRepo(world.db)
    target = await repo.find(hashlib.sha256(first.encode()).hexdigest())
    assert target == CallbackTarget(1, first_id, None, None)
    assert (await repo.find(token_hash(second))) == CallbackTarget(1, second_id, None, None)
    assert await repo.find(token_hash("x" * 43)) is None
    dump = "\n".join(str(tuple(row)) for row in await world.db.fetchall("SELECT * FROM outbox"))
    dump += "\n".join(
        str(tuple(row)) for row in await world.db.fetchall("SELECT * FROM delivery_callbacks")
    )
    assert first not in dump and second not in dump


async def test_without_links_no_callback_url_is_sent(world: World, devsms: FakeDevsms) -> None:
    await world.add_user(1, "tok-1")
    await SmsSender(world.accounts, OutboxRepo(world.db)).send(1, PHONE, "Hello", None)
    assert devsms.sent[0].callback_url is None
    assert await world.db.fetchall("SELECT * FROM delivery_callbacks") == []


async def test_a_callback_makes_the_check_due_now_and_the_result_is_told_once(
    world: World, devsms: FakeDevsms
) -> None:
    await world.add_user(1, "tok-1")
    links = CallbackLinks(BASE)
    outbox_id, sms_id, token = await sent_with_link(world, links)
    tracker = tracker_of(world)
    assert await tracker.tick() == 0  # the first poll is 30 s away
    devsms.set_status(sms_id, "REJECTED")
    target = await CallbackRepo(world.db).find(token_hash(token))
    assert target is not None

    assert await tracker.check_now(target) is CheckResult.CHECKING
    assert await tracker.tick() == 1
    [report] = world.notify.to(1)
    assert report.text.startswith("❌ SMS to +998 90 123 45 67: rejected")

    # Replayed: the send is settled, nothing is checked or told again.
    assert await tracker.check_now(target) is CheckResult.NOTHING
    assert await tracker.tick() == 0
    assert len(world.notify.to(1)) == 1
    row = await OutboxRepo(world.db).get(outbox_id)
    assert row is not None and row.next_check_at is None


async def test_a_callback_before_the_answer_is_recorded_waits(world: World) -> None:
    await world.add_user(1, "tok-1")
    outbox = OutboxRepo(world.db)
    outbox_id = await outbox.create_pending(1, PHONE, "Hi", None, callback_hash="h" * 64)
    target = await CallbackRepo(world.db).find("h" * 64)
    assert target is not None and target.outbox_id == outbox_id
    assert await tracker_of(world).check_now(target) is CheckResult.NOT_YET


class Recorder:
    def __init__(self, result: CheckResult = CheckResult.CHECKING) -> None:
        self.targets: list[CallbackTarget] = []
        self.result = result

    async def check_now(self, target: CallbackTarget) -> CheckResult:
        self.targets.append(target)
        return self.result


async def test_inbox_answers_at_once_and_limits_per_token_and_overall(world: World) -> None:
    ticks = Ticks()
    inbox = CallbackInbox(
        CallbackRepo(world.db),
        CallbackLinks(BASE),
        per_token_interval=2.0,
        overall_rate=3.0,
        queue_size=10,
        clock=ticks,
    )
    token = "a" * 43
    assert inbox.offer("short") is Verdict.MALFORMED
    assert inbox.offer("a" * 42 + "!") is Verdict.MALFORMED
    assert inbox.offer(token) is Verdict.ACCEPTED
    assert inbox.offer(token) is Verdict.LIMITED  # the same token within 2 s
    ticks.now += 2.0
    assert inbox.offer(token) is Verdict.ACCEPTED
    # Overall: three a second at most, whatever the tokens.
    ticks.now += 10
    verdicts = [inbox.offer(chr(ord("b") + n) * 43) for n in range(5)]
    assert verdicts.count(Verdict.ACCEPTED) == 3
    assert verdicts[3:] == [Verdict.LIMITED, Verdict.LIMITED]


async def test_inbox_full_says_busy(world: World) -> None:
    inbox = CallbackInbox(CallbackRepo(world.db), CallbackLinks(BASE), queue_size=2)
    assert [inbox.offer(c * 43) for c in "abc"] == [
        Verdict.ACCEPTED,
        Verdict.ACCEPTED,
        Verdict.BUSY,
    ]


async def test_unknown_token_reaches_nothing_and_a_known_one_marks_callbacks_working(
    world: World, devsms: FakeDevsms
) -> None:
    await world.add_user(1, "tok-1")
    ticks = Ticks()
    links = CallbackLinks(BASE, clock=ticks)
    outbox_id, _, token = await sent_with_link(world, links)
    checker = Recorder()
    inbox = CallbackInbox(CallbackRepo(world.db), links, clock=ticks)
    inbox.start(checker)
    try:
        assert inbox.offer("z" * 43) is Verdict.ACCEPTED
        assert await inbox.handle(_call(token_hash("z" * 43))) is None
        assert checker.targets == []
        assert not links.working(1)

        assert await inbox.handle(_call(token_hash(token))) is CheckResult.CHECKING
        assert [t.outbox_id for t in checker.targets] == [outbox_id]
        assert links.working(1)
        # Callbacks work for this account: its next send is first polled later.
        assert links.first_check(1, timedelta(seconds=30)) == timedelta(minutes=5)
        assert links.first_check(2, timedelta(seconds=30)) == timedelta(seconds=30)
        ticks.now += 3601
        assert links.first_check(1, timedelta(seconds=30)) == timedelta(seconds=30)
    finally:
        await inbox.stop()


def _call(hashed: str) -> _Call:
    return _Call(hashed, None)


@pytest.mark.parametrize("kind", ["sms", "otp"])
async def test_first_poll_waits_longer_once_callbacks_work(
    world: World, devsms: FakeDevsms, kind: str
) -> None:
    await world.add_user(1, "tok-1")
    links = CallbackLinks(BASE)
    links.received(1)
    sender = SmsSender(world.accounts, OutboxRepo(world.db), links=links)
    if kind == "sms":
        outcome = await sender.send(1, PHONE, "Hello", None)
    else:
        outcome = await sender.send_otp(1, PHONE, OtpRequest(1, "Shop", "123456"))
    row = await OutboxRepo(world.db).get(outcome.outbox_id)
    assert row is not None and row.next_check_at is not None
    assert devsms.sent[0].callback_url is not None
    created = row.created_at
    first, made = parse_stamp(row.next_check_at), parse_stamp(created)
    assert first is not None and made is not None
    assert first - made >= timedelta(minutes=4, seconds=55)


async def test_every_bulk_row_gets_its_own_token_stored_with_its_claim(env: Env) -> None:
    links = CallbackLinks(BASE)
    metrics_sent = metrics.registry().get_sample_value(
        "devsms_bot_bulk_rows_total", {"state": "sent"}
    )
    job_id = await env.job(5)
    await env.runner(links=links).begin(job_id)
    _, counts = await wait(env.finished)
    assert counts.sent == 5
    tokens = [token_of(sms.callback_url) for sms in env.fake.sent]
    assert len(set(tokens)) == 5
    repo = CallbackRepo(env.db)
    by_sms = {sms.sms_id: token for sms, token in zip(env.fake.sent, tokens, strict=True)}
    for row in await env.bulk.all_rows(job_id):
        assert row.sms_id is not None
        target = await repo.find(token_hash(by_sms[row.sms_id]))
        assert target is not None
        assert (target.job_id, target.row_no, target.row_state) == (job_id, row.row_no, "sent")
    after = metrics.registry().get_sample_value("devsms_bot_bulk_rows_total", {"state": "sent"})
    assert after == (metrics_sent or 0) + 5


async def test_a_bulk_row_callback_wakes_the_job_report_without_a_status_call(env: Env) -> None:
    links = CallbackLinks(BASE)
    job_id = await env.job(1)
    await env.runner(links=links).begin(job_id)
    await wait(env.finished)
    [sms] = env.fake.sent
    target = await CallbackRepo(env.db).find(token_hash(token_of(sms.callback_url)))
    assert target is not None
    woken: list[bool] = []
    health = GatewayHealth(3, env)
    tracker = DeliveryTracker(
        OutboxRepo(env.db),
        AlertRepo(env.db),
        env.accounts,
        env,
        UserRepo(env.db),
        health,
        on_bulk_callback=lambda: woken.append(True),
    )
    assert await tracker.check_now(target) is CheckResult.CHECKING
    assert woken == [True]
    # The report reads the history (200 rows a call), never the status of each row.
    reporter = BulkDeliveryReporter(env.bulk, env.accounts, UserRepo(env.db), env)
    env.fake.set_status(sms.sms_id, "DELIVERED")
    assert await reporter.tick() == 1
    assert env.fake.requests_to(STATUS) == []
    [row] = await env.bulk.all_rows(job_id)
    assert row.status == "DELIVERED"
    # Replayed: the row is final, nothing is woken or asked.
    again = await CallbackRepo(env.db).find(token_hash(token_of(sms.callback_url)))
    assert again is not None
    assert await tracker.check_now(again) is CheckResult.NOTHING
    assert woken == [True]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:9000/bot", True),
        ("http://[::1]:8080", True),
        ("https://bot.example.com", True),
        ("http://bot.example.com", False),
        ("http://10.0.0.5:8080", False),
        ("http://127.0.0.1.evil.example", False),
        ("http://localhost.evil.example", False),
    ],
)
def test_plain_http_public_url_only_for_loopback(url: str, allowed: bool) -> None:
    values = {"bot_token": BOT_TOKEN, "public_base_url": url}
    if allowed:
        assert Settings(_env_file=None, **values).public_base_url == url  # type: ignore[call-arg,arg-type]
    else:
        with pytest.raises(ValidationError, match="PUBLIC_BASE_URL must be an https:// URL"):
            Settings(_env_file=None, **values)  # type: ignore[call-arg,arg-type]


def test_callback_links_need_the_web_server() -> None:
    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, bot_token=BOT_TOKEN, **values)  # type: ignore[call-arg,arg-type]

    assert callback_links(settings()) is None
    assert callback_links(settings(public_base_url="https://bot.example.com")) is None
    assert callback_links(settings(web_port=8099)) is None
    links = callback_links(settings(public_base_url="https://bot.example.com", web_port=8099))
    assert links is not None and links.new().url.startswith(BASE + "/devsms/callback/")
