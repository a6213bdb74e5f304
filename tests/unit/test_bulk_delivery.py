"""Bulk delivery results: statuses come from the history, one report per job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiogram.utils.i18n import I18n

from bot.i18n import create_i18n
from bot.notices.digest import AdminDigest
from bot.notices.presenter import Presenter
from services.accounts import Accounts
from services.bulk_delivery import BulkDeliveryReporter
from services.devsms import HistoryPage
from storage import UserRepo
from tests.support.bulk_env import USER, Env, wait


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def send(self, chat_id: int, text: str, **_: object) -> object:
        self.sent.append((chat_id, text))
        return "delivered"

    def post_to_admins(self, text: str, **_: object) -> bool:
        return False

    def post(self, chat_id: int, text: str, **_: object) -> None:
        self.sent.append((chat_id, text))


def reporter(env: Env, notifier: Recorder, i18n: I18n, now: datetime) -> BulkDeliveryReporter:
    users = UserRepo(env.db)
    digest = AdminDigest(notifier, i18n, language="en", interval=0)
    notices = Presenter(notifier, digest, i18n, users, default_language="en")
    return BulkDeliveryReporter(env.bulk, env.accounts, users, notices, now=lambda: now)


async def test_one_report_when_every_sms_is_final(env: Env) -> None:
    job_id = await env.job(5)
    await env.runner().begin(job_id)
    await wait(env.finished)
    notifier, i18n = Recorder(), create_i18n("en")
    now = datetime.now(UTC)

    # Not final yet, not 24 h old: nothing to report.
    assert await reporter(env, notifier, i18n, now).tick() == 0
    for i, sms in enumerate(env.fake.sent):
        env.fake.set_status(sms.sms_id, "DELIVERED" if i < 4 else "REJECTED")
    assert await reporter(env, notifier, i18n, now).tick() == 1
    [(chat, text)] = notifier.sent
    assert chat == USER
    assert "Delivered: 4\nNot delivered: 1\nStill waiting: 0" in text
    # Reported once, also by a new reporter after a restart.
    assert await reporter(env, notifier, i18n, now).tick() == 0
    assert len(notifier.sent) == 1


async def test_after_a_day_the_report_goes_out_with_what_is_known(env: Env) -> None:
    job_id = await env.job(3)
    await env.runner().begin(job_id)
    await wait(env.finished)
    env.fake.set_status(env.fake.sent[0].sms_id, "DELIVERED")
    notifier = Recorder()
    later = datetime.now(UTC) + timedelta(hours=25)
    assert await reporter(env, notifier, create_i18n("en"), later).tick() == 1
    assert "Delivered: 1\nNot delivered: 0\nStill waiting: 2" in notifier.sent[0][1]


class SmallPages:
    """The same gateway, answering at most `cap` entries a page whatever the limit asked."""

    def __init__(self, accounts: Accounts, cap: int) -> None:
        self.accounts, self.cap = accounts, cap

    async def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> HistoryPage:
        return await self.accounts.history(
            user_id, limit=min(limit, self.cap), offset=offset, status=status
        )


async def test_results_are_found_past_a_short_page(env: Env) -> None:
    """A page shorter than asked is not the end of the history (the same rule as /history
    and the reconciliation walk): the older SMS of the job are read on the next pages."""
    job_id = await env.job(5)
    await env.runner().begin(job_id)
    await wait(env.finished)
    for sms in env.fake.sent:
        env.fake.set_status(sms.sms_id, "DELIVERED")
    notifier, i18n = Recorder(), create_i18n("en")
    users = UserRepo(env.db)
    digest = AdminDigest(notifier, i18n, language="en", interval=0)
    notices = Presenter(notifier, digest, i18n, users, default_language="en")
    delivery = BulkDeliveryReporter(
        env.bulk,
        SmallPages(env.accounts, cap=2),  # type: ignore[arg-type]
        users,
        notices,
        now=lambda: datetime.now(UTC),
    )
    assert await delivery.tick() == 1
    assert "Delivered: 5\nNot delivered: 0\nStill waiting: 0" in notifier.sent[0][1]
