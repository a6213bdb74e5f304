"""Everything the bot does on its own: the paced notifier and the presentation of events
(bot/notices/), the balance watcher, the delivery trackers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

from aiogram.utils.i18n import I18n

from bot.config import Settings
from bot.notices.digest import AdminDigest
from bot.notices.notifier import Notifier
from bot.notices.presenter import Presenter
from services import metrics
from services.access import AccessPolicy
from services.accounts import Accounts
from services.bulk_delivery import BulkDeliveryReporter
from services.callbacks import CallbackInbox
from services.failure_watch import FailureWatch
from services.health import GatewayHealth
from services.insights import DigestSender
from services.rounds import Rounds
from services.tracker import DeliveryTracker
from services.traffic import FirstLooks, TrafficSync
from services.watcher import BalanceWatcher
from storage import AlertRepo, BulkRepo, InsightRepo, OutboxRepo, TrafficRepo, UserRepo
from storage.leases import LeaseRepo

logger = logging.getLogger(__name__)


def app_version() -> str:
    try:
        return version("devsms-bot")
    except PackageNotFoundError:
        return "0.1.0"


class Background:
    """Starts with polling; stopping it leaves the notifier to whoever built it."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifier: Notifier,
        digest: AdminDigest,
        notices: Presenter,
        users: UserRepo,
        alerts: AlertRepo,
        outbox: OutboxRepo,
        bulk: BulkRepo,
        accounts: Accounts,
        i18n: I18n,
        policy: AccessPolicy,
        traffic: TrafficRepo,
        insights: InsightRepo,
        first_looks: FirstLooks,
        callbacks: CallbackInbox | None = None,
        leases: LeaseRepo | None = None,
    ) -> None:
        self._settings = settings
        # Several replicas on one database: each due item or round is done by one of them.
        self._leases = leases
        self._first_looks = first_looks
        self._callbacks = callbacks
        self._traffic = traffic
        self._insights = insights
        self._policy = policy
        self._bulk = bulk
        self._users = users
        self._alerts = alerts
        self._outbox = outbox
        self._accounts = accounts
        self._i18n = i18n
        self._notifier = notifier
        self._digest = digest
        self._notices = notices
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    async def start(self) -> None:
        settings = self._settings
        notifier, notices, policy = self._notifier, self._notices, self._policy
        await notifier.start()
        self._started = True
        health = GatewayHealth(settings.gateway_outage_after, notices)
        rounds = Rounds(self._leases)
        watcher = BalanceWatcher(
            self._alerts,
            self._accounts,
            notices,
            default_threshold=settings.low_balance_threshold,
            interval=settings.balance_check_interval,
            concurrency=settings.balance_check_concurrency,
            health=health,
            policy=policy,
            snapshots=self._traffic,
            leases=self._leases,
        )
        traffic = TrafficSync(
            self._traffic,
            self._alerts,
            self._accounts,
            interval=settings.traffic_sync_interval,
            max_pages=settings.traffic_sync_pages,
            concurrency=settings.traffic_sync_concurrency,
            backfill_days=settings.traffic_backfill_days,
            health=health,
            policy=policy,
            after_round=[FailureWatch(self._traffic, self._insights, notices).after_round],
            first_looks=self._first_looks,
            rounds=rounds,
        )
        digests = DigestSender(
            self._insights, self._traffic, self._bulk, notices, poll=settings.insights_poll
        )
        bulk_delivery = BulkDeliveryReporter(
            self._bulk,
            self._accounts,
            self._users,
            notices,
            policy=policy,
            rounds=rounds,
        )
        tracker = DeliveryTracker(
            self._outbox,
            self._alerts,
            self._accounts,
            notices,
            self._users,
            health,
            on_token_rejected=watcher.token_rejected,
            bulk=self._bulk,
            policy=policy,
            on_bulk_callback=bulk_delivery.wake,
            claim_for=timedelta(seconds=settings.lease_seconds),
            rounds=rounds,
        )
        if self._callbacks is not None:
            self._callbacks.start(tracker)
        self._tasks = [
            asyncio.create_task(watcher.run(), name="balance-watcher"),
            asyncio.create_task(bulk_delivery.run(), name="bulk-delivery"),
            asyncio.create_task(tracker.run(settings.delivery_poll), name="delivery-tracker"),
            asyncio.create_task(traffic.run(), name="traffic-sync"),
            asyncio.create_task(digests.run(), name="digests"),
            asyncio.create_task(metrics.probe_loop_lag(), name="loop-lag"),
        ]
        language = settings.default_language
        # Queued, not awaited: polling must not wait for the admin chat's pacing, Telegram's
        # flood control or a round trip; it is the first message in the queue all the same.
        notifier.post_to_admins(
            self._i18n.gettext("🟢 Bot started, version {version}.", locale=language).format(
                version=app_version()
            )
        )

    async def stop(self) -> None:
        if self._callbacks is not None:
            await self._callbacks.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # What the digest still collects goes into the notifier's queue, drained when the
        # notifier stops (after this).
        await self._digest.close()
        if not self._started:
            return
        self._started = False
        language = self._settings.default_language
        await self._notifier.to_admins(self._i18n.gettext("🔴 Bot stopped.", locale=language))
