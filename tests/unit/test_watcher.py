"""The balance watcher against the fake devsms gateway, a real database and real Accounts."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from bot.notices.digest import AdminDigest
from handlers.callbacks import TokenCb
from services.access import AccessPolicy
from services.health import GatewayHealth
from storage import AlertRepo, WatchTarget
from storage.users import Access
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.watch_env import RecordingNotify, World


async def test_alert_once_per_fall_below_even_across_a_restart(
    world: World, devsms: FakeDevsms
) -> None:
    await world.add_user(1, "tok-ali", balance=20_000, language="ru", first_name="<Ali & Co>")
    account = devsms.accounts["tok-ali"]
    account.today_spent = Decimal(1_000)

    report = await world.watcher().check_all()
    assert (report.checked, report.alerts_sent) == (1, 0)
    assert world.notify.messages == []

    account.balance = Decimal(4_000)
    report = await world.watcher().check_all()
    assert report.alerts_sent == 1
    [alert] = world.notify.to(1)
    # In the user's language (Russian), with the amount, the SMS left and the days left.
    assert "4\u00a0000" in alert.text
    assert "Хватит примерно на 80 SMS" in alert.text
    assert [data for _, data in alert.buttons()] == ["bal"]
    [admin] = world.notify.admin
    assert "&lt;Ali &amp; Co&gt;" in admin.text and "<code>1</code>" in admin.text
    assert "4\u00a0000 so'm" in admin.text  # admins read the default language
    assert "about 4 more days" in admin.text

    # Still low: nothing new, neither in the next round nor after a restart.
    await world.watcher().check_all()
    await world.restart()
    await world.watcher().check_all()
    assert len(world.notify.to(1)) == 1
    assert len(world.notify.admin) == 1

    # Topped up, then low again: a second alert.
    account.balance = Decimal(30_000)
    await world.watcher().check_all()
    assert len(world.notify.to(1)) == 1
    account.balance = Decimal(1_000)
    await world.watcher().check_all()
    assert len(world.notify.to(1)) == 2
    assert len(world.notify.admin) == 2


async def test_threshold_in_sms_follows_the_price(world: World, devsms: FakeDevsms) -> None:
    await world.add_user(2, "tok-bob", balance=6_000)
    await world.alerts.set_threshold(2, "sms", "100")  # 100 × 50 = 5 000 so'm
    await world.watcher().check_all()
    assert world.notify.messages == []

    devsms.accounts["tok-bob"].balance = Decimal(4_950)
    await world.watcher().check_all()
    [alert] = world.notify.to(2)
    assert "Enough for about 99 SMS" in alert.text
    assert "Alert threshold: 5\u00a0000 so'm" in alert.text


async def test_no_alert_when_switched_off_or_not_comparable(
    world: World, devsms: FakeDevsms
) -> None:
    await world.add_user(3, "tok-off", balance=1_000)
    await world.alerts.set_balance_alerts(3, False)
    devsms.add_account(
        "tok-usd", balance=Decimal("0.5"), sms_price=Decimal("0.005"), currency="USD"
    )
    await world.users.upsert_seen(4, "Dollar", None)
    await world.credentials.save(4, world.vault.encrypt(4, "tok-usd"))

    report = await world.watcher().check_all()
    assert (report.checked, report.alerts_sent) == (2, 0)
    assert world.notify.messages == []


async def test_rejected_token_is_reported_once(world: World, devsms: FakeDevsms) -> None:
    await world.add_user(5, "tok-old", first_name="Vali", username="vali")
    del devsms.accounts["tok-old"]  # revoked at devsms

    report = await world.watcher().check_all()
    assert report.invalid == 1
    [notice] = world.notify.to(5)
    assert [data for _, data in notice.buttons()] == [TokenCb().pack()]
    [admin] = world.notify.admin
    assert "Vali (@vali, id <code>5</code>)" in admin.text
    assert not await world.accounts.has_token(5)

    report = await world.watcher().check_all()
    assert report.invalid == 0
    assert len(world.notify.messages) == 2

    # The user connects a working token; when that one is revoked too, they hear again.
    devsms.add_account("tok-new")
    await world.credentials.save(5, world.vault.encrypt(5, "tok-new"))
    await world.watcher().check_all()
    assert len(world.notify.to(5)) == 1
    del devsms.accounts["tok-new"]
    await world.watcher().check_all()
    assert len(world.notify.to(5)) == 2


async def test_one_failing_user_does_not_stop_the_round(world: World, devsms: FakeDevsms) -> None:
    for user_id in range(10, 15):
        await world.add_user(user_id, f"tok-{user_id}", balance=1_000)
    devsms.fail_next(1, status=500, path="/get_balance.php")

    world.digest = AdminDigest(world.notify, world.i18n, language="en", interval=60)
    report = await world.watcher().check_all()
    assert (report.checked, report.failed, report.alerts_sent) == (4, 1, 4)
    assert world.notify.admin == []  # the round did not wait for the admins' notices
    await world.digest.close()  # as at the end of the digest's window
    # Four alerts in one round: admins get them as one digest.
    [digest] = world.notify.admin
    assert digest.text.startswith("⚠️ 4 users have a low balance:")
    assert digest.text.count("\n• ") == 4


async def test_gateway_outage_is_reported_once_and_so_is_the_recovery(
    world: World, devsms: FakeDevsms
) -> None:
    for user_id in range(20, 25):
        await world.add_user(user_id, f"tok-{user_id}")
    watcher = world.watcher(outage_after=3)
    devsms.failure_rate = 1.0

    report = await watcher.check_all()
    assert report.failed == 5
    await watcher.check_all()
    assert [m.text for m in world.notify.admin if "not answering" in m.text] == [
        "🚨 The devsms gateway is not answering: 3 requests in a row failed. "
        "Balance checks and delivery tracking continue and will catch up."
    ]

    devsms.failure_rate = 0.0
    await watcher.check_all()
    await watcher.check_all()
    recovered = [m.text for m in world.notify.admin if "answers again" in m.text]
    assert len(recovered) == 1
    assert len(world.notify.admin) == 2


async def test_two_hundred_users_with_bounded_concurrency(
    world: World, devsms: FakeDevsms
) -> None:
    users = 200
    for user_id in range(1_000, 1_000 + users):
        await world.add_user(user_id, f"tok-{user_id}")
    devsms.latency = 0.05
    watcher = world.watcher(concurrency=10, page_size=64)

    report = await watcher.check_all()
    print(f"\n{users} users, 50 ms latency, concurrency 10: round took {report.elapsed:.2f} s")
    assert report.checked == users
    assert len(devsms.requests_to("/get_balance.php")) == users
    # As the gateway saw it: ten at once while 200 were due, never more.
    assert devsms.max_in_flight == 10


async def test_a_worker_marks_its_alert_told_before_it_asks_for_the_next_user(
    world: World, devsms: FakeDevsms
) -> None:
    """A worker tells its check's alert and marks it told before it asks the gateway for the
    next user, so a kill -9 beside a request in flight finds few alerts out and not yet
    marked (each of those is told again after the restart). With more workers than slots,
    other checks' alerts were out at every request (tests/e2e/test_faults_e2e.py)."""
    for user_id in range(1, 9):
        await world.add_user(user_id, f"tok-{user_id}", balance=1_000)
    asked_when_told: list[int] = []

    class Noting(AlertRepo):
        async def alert_told(self, user_id: int) -> None:
            asked_when_told.append(len(devsms.requests_to("/get_balance.php")))
            await super().alert_told(user_id)

    world.alerts = Noting(world.db)
    report = await world.watcher(concurrency=2).check_all()
    assert report.alerts_sent == 8
    # When the n-th alert is marked, at most the other worker's user was asked beyond it.
    assert all(asked <= told + 2 for told, asked in enumerate(asked_when_told)), asked_when_told
    assert devsms.max_in_flight <= 2


async def test_run_survives_a_broken_round_and_stops_when_cancelled(
    world: World, devsms: FakeDevsms, caplog: pytest.LogCaptureFixture
) -> None:
    await world.add_user(30, "tok-30", balance=1_000)
    rounds = 0
    real_page = world.alerts.watch_targets

    async def flaky_page(after_user_id: int = 0, limit: int = 500) -> list[WatchTarget]:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("database is locked")
        return await real_page(after_user_id, limit)

    world.alerts.watch_targets = flaky_page  # type: ignore[method-assign]
    task = asyncio.create_task(world.watcher(interval=0.01).run())
    await world.notify.wait_for(30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failed and failed[0].exc_info is not None
    assert len(world.notify.to(30)) == 1


async def test_health_tells_admins_once_per_outage_with_its_length(world: World) -> None:
    notify = world.notify
    now = [1_000.0]
    health = GatewayHealth(2, world.notices, clock=lambda: now[0])

    await health.record_failure()
    await health.record_success()  # one failure alone is no outage
    for _ in range(4):
        await health.record_failure()
    assert [m.text.split(":")[0] for m in notify.admin] == [
        "🚨 The devsms gateway is not answering"
    ]
    now[0] += 125
    await health.record_success()
    await health.record_success()

    assert [m.text.split(":")[0] for m in notify.admin] == [
        "🚨 The devsms gateway is not answering",
        "✅ The devsms gateway answers again. It was down for about 2 min.",
    ]


class PacedAdmins(RecordingNotify):
    """An admin group whose pace never lets a message through: waiting for it is forever."""

    async def to_admins(self, text: str, **_: object) -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_outage_notices_do_not_hold_up_the_worker_that_reports_them(world: World) -> None:
    notify = PacedAdmins()
    health = GatewayHealth(2, world.presenter(notify))

    async with asyncio.timeout(1):  # the balance round's worker goes on at once
        for _ in range(2):
            await health.record_failure()
        await health.record_success()

    assert [m.text[:2] for m in notify.admin] == ["🚨 ", "✅ "]


async def test_users_the_bot_no_longer_serves_are_not_watched(
    world: World, devsms: FakeDevsms
) -> None:
    # ACCESS_MODE=allowlist: an approved user, a denied one, one nobody decided on, an admin.
    for user_id, access in ((1, Access.ALLOWED), (2, Access.DENIED), (3, Access.PENDING)):
        await world.add_user(user_id, f"tok-{user_id}", balance=1_000)
        await world.users.set_access(user_id, access)
    await world.add_user(4, "tok-4", balance=1_000)
    policy = AccessPolicy(allowlist=True, admin_ids=frozenset({4}))

    report = await world.watcher(policy=policy).check_all()
    assert report.alerts_sent == 2
    assert sorted(m.chat_id for m in world.notify.messages if m.chat_id) == [1, 4]
    # The denied user's token is not even used.
    assert sorted(r.token or "" for r in devsms.requests) == ["tok-1", "tok-4"]
