"""Composition root: the one place that builds the Bot, the Dispatcher and what they share."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Final

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.utils.i18n import I18n

from bot.background import Background
from bot.commands import set_commands
from bot.config import Settings, handler_settings
from bot.i18n import UserLocaleMiddleware, create_i18n
from bot.middlewares import (
    HandlerServices,
    MetricsMiddleware,
    PinResponseTypes,
    RetryRequestMiddleware,
    UserMiddleware,
)
from bot.notices.digest import AdminDigest
from bot.notices.jobs import JobReports
from bot.notices.notifier import Notifier, Outbox
from bot.notices.presenter import Presenter
from bot.shared_state import DEFAULT_PREFIX, bulk_sources, dialog_state, otp_codes
from bot.telegram_session import JsonSession
from handlers import build_router
from handlers.config import HandlerSettings
from services.access import AccessPolicy
from services.accounts import Accounts
from services.bulk import BulkRunner
from services.callbacks import CallbackInbox, CallbackLinks
from services.chart_desk import ChartDesk
from services.devsms import DevsmsClient
from services.export_desk import ExportDesk
from services.key_rotation import rotate_all
from services.languages import Language
from services.rounds import Rounds
from services.scheduler import Scheduler
from services.sending import SmsSender
from services.tracker import PENDING_STALE
from services.traffic import FirstLooks
from services.upload_worker import UploadWorker
from services.vault import TokenVault, load_generated_keys, parse_keys
from storage import (
    AlertRepo,
    BroadcastRepo,
    BulkRepo,
    CallbackRepo,
    ContactRepo,
    CredentialRepo,
    Database,
    InsightRepo,
    OutboxRepo,
    ScheduleRepo,
    StopListRepo,
    TemplateRepo,
    TrafficRepo,
    UserRepo,
)
from storage.leases import LeaseRepo

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.notices.limiter import RedisLimiter

logger = logging.getLogger(__name__)

# What the upload child imports before its first job (and before its memory limit): the
# parsers, and phonenumbers, which the bot itself loads only with the first number.
UPLOAD_PRELOAD: Final = ("services.bulk_plan", "services.contacts", "phonenumbers", "openpyxl")


@dataclass
class Services:
    """Everything opened once per process and closed on shutdown."""

    settings: Settings
    db: Database
    devsms: DevsmsClient
    vault: TokenVault
    users: UserRepo
    credentials: CredentialRepo
    outbox: OutboxRepo
    alerts: AlertRepo
    accounts: Accounts
    i18n: I18n
    bulk: BulkRepo
    templates: TemplateRepo
    traffic: TrafficRepo
    """The account's whole traffic and balance snapshots (services/traffic.py keeps it)."""
    insights: InsightRepo
    schedule: ScheduleRepo
    stoplist: StopListRepo
    """Numbers no send of their owner may reach (see SmsSender, BulkRunner, make_plan)."""
    contacts: ContactRepo
    broadcasts: BroadcastRepo
    """Admin broadcasts and their targets' fates, resumed after a restart."""
    uploads: UploadWorker
    """Parses uploaded files in a child process, started on the first upload."""
    charts: ChartDesk
    """Draws /stats charts in child processes, started with the first chart."""
    exports: ExportDesk
    """Runs /export's files in the background, a few at once (services/export_desk.py)."""
    redis: Redis | None = None
    """REDIS_URL's client: what the replicas share (bot/replicas.py); None for one process."""
    redis_prefix: str = DEFAULT_PREFIX

    async def close(self) -> None:
        await self.exports.close()
        await self.charts.close()
        await self.uploads.close()
        await self.devsms.close()
        await self.db.close()
        if self.redis is not None:
            await self.redis.aclose()


def shared_stores() -> ModuleType:
    """services/shared_stores.py, imported only for replicas (it needs the Redis client)."""
    import services.shared_stores

    return services.shared_stores


def redis_limiter() -> type[RedisLimiter]:
    """The notifier's shared limit, imported only for replicas."""
    from bot.notices.limiter import RedisLimiter

    return RedisLimiter


def load_vault(settings: Settings) -> TokenVault:
    if settings.encryption_key is not None:
        return TokenVault(parse_keys(settings.encryption_key.get_secret_value()))
    keys, created = load_generated_keys(settings.key_file, settings.old_key_file)
    if created:
        logger.warning(
            "ENCRYPTION_KEY is not set: generated one into %s. Back it up, apart from the "
            "database: without it the stored tokens cannot be read.",
            settings.key_file,
        )
    return TokenVault(keys)


async def open_services(settings: Settings, *, redis_prefix: str = DEFAULT_PREFIX) -> Services:
    vault = load_vault(settings)
    redis = None
    if settings.redis_url is not None:
        # Redis and what replicas share are imported only for replicas (bot/shared_state.py).
        from bot.replicas import open_redis

        redis = await open_redis(settings.redis_url.get_secret_value())
        logger.info("replica %s shares its state through Redis", settings.replica_id)
    try:
        db = await Database.open(settings.database_target)
    except BaseException:
        if redis is not None:
            await redis.aclose()
        raise
    if redis is not None:
        # Other replicas write the same rows: no row cache may answer for them.
        db.stop_caching()
    devsms = DevsmsClient(
        settings.devsms_api_url,
        timeout=settings.devsms_timeout,
        get_retries=settings.devsms_retries,
        backoff=settings.devsms_retry_backoff,
        connections=settings.devsms_connections,
        per_token=settings.devsms_connections_per_user,
        timezone=settings.gateway_zone,
    )
    users, credentials = UserRepo(db), CredentialRepo(db)
    outbox = OutboxRepo(db, owner=settings.replica_id)
    stale = (datetime.now(UTC) - PENDING_STALE).isoformat(timespec="seconds")
    if orphans := await outbox.orphans_to_unknown(older_than=stale):
        logger.warning("%s sends were mid-request when the bot stopped: unknown", orphans)
    if vault.key_count > 1:
        # A new key stands first: re-encrypt every token under it before any update arrives,
        # so the old key can be dropped from ENCRYPTION_KEY afterwards.
        await rotate_all(credentials, vault)
    return Services(
        settings=settings,
        db=db,
        devsms=devsms,
        vault=vault,
        users=users,
        credentials=credentials,
        outbox=outbox,
        alerts=AlertRepo(db),
        accounts=Accounts(
            credentials,
            vault,
            devsms,
            shared=None if redis is None else shared_stores().RedisBalances(redis, redis_prefix),
        ),
        i18n=create_i18n(settings.default_language),
        bulk=BulkRepo(db),
        templates=TemplateRepo(db),
        traffic=TrafficRepo(db),
        insights=InsightRepo(db),
        schedule=ScheduleRepo(db),
        stoplist=StopListRepo(db),
        contacts=ContactRepo(db),
        broadcasts=BroadcastRepo(db),
        uploads=UploadWorker(
            memory_limit=settings.upload_memory_mb * 1024 * 1024,
            time_limit=settings.upload_time_limit,
            preload=UPLOAD_PRELOAD,
        ),
        charts=ChartDesk(
            workers=settings.chart_workers,
            memory_limit=settings.chart_memory_mb * 1024 * 1024,
            time_limit=settings.chart_time_limit,
            latest=None if redis is None else shared_stores().RedisTaps(redis, redis_prefix),
        ),
        exports=ExportDesk(
            settings.exports_at_once,
            shared=None if redis is None else shared_stores().RedisRuns(redis, redis_prefix),
        ),
        redis=redis,
        redis_prefix=redis_prefix,
    )


def create_bot(settings: Settings) -> Bot:
    session = JsonSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(PinResponseTypes())
    session.middleware(RetryRequestMiddleware())
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


@dataclass
class Shared:
    """What the bot's own work and the handlers share, built before any update arrives."""

    policy: AccessPolicy
    for_handlers: HandlerSettings
    notifier: Notifier
    notices: Presenter
    sender: SmsSender
    runner: BulkRunner
    scheduler: Scheduler
    first_looks: FirstLooks
    """Users whose account the traffic sync reads before its next round (a new token)."""
    callbacks: CallbackInbox | None = None
    """Delivery callbacks from the gateway (PUBLIC_BASE_URL set and the web server on)."""


def callback_links(settings: Settings) -> CallbackLinks | None:
    """Per-send callback URLs, when the gateway can reach the bot's web server."""
    if not settings.public_base_url or settings.web_port_in_use is None:
        return None
    return CallbackLinks(settings.public_base_url)


@dataclass
class App:
    """The whole process: closing the stack it was built in closes everything once."""

    bot: Bot
    dp: Dispatcher
    services: Services
    shared: Shared


@asynccontextmanager
async def build_app(
    settings: Settings, *, bot: Bot | None = None, redis_prefix: str = DEFAULT_PREFIX
) -> AsyncIterator[App]:
    """Builds every shared object up front; leaving the block closes them in reverse order.

    `bot` replaces the Bot that would talk to Telegram (tests record what it sends);
    `redis_prefix` starts every Redis key (tests give each test its own).
    """
    async with AsyncExitStack() as stack:
        stack.callback(logger.info, "bot stopped")  # the last thing done on the way out
        services = await open_services(settings, redis_prefix=redis_prefix)
        if services.redis is not None:
            stack.push_async_callback(services.redis.aclose)
        stack.push_async_callback(services.db.close)
        stack.push_async_callback(services.devsms.close)
        stack.push_async_callback(services.uploads.close)
        stack.push_async_callback(services.charts.close)
        if bot is None:
            bot = create_bot(settings)
        stack.push_async_callback(bot.session.close)
        # Before the bot's session and the database: a running export is cancelled first.
        stack.push_async_callback(services.exports.close)
        policy = AccessPolicy(settings.access_mode == "allowlist", frozenset(settings.admin_ids))
        for_handlers = handler_settings(settings, policy)
        notifier = Notifier(
            bot,
            services.users,
            admin_chat_id=settings.admin_chat_id,
            rate=settings.notify_rate,
            # Replicas: one limit for all of them (in-process pacing alone would multiply it).
            shared=None
            if services.redis is None
            else redis_limiter()(
                services.redis, services.redis_prefix, bot.id, rate=settings.notify_rate
            ),
        )
        # Stopped after the background work that posts through it.
        stack.push_async_callback(notifier.stop)
        language = settings.default_language
        digest = AdminDigest(
            notifier,
            services.i18n,
            language=language,
            interval=settings.admin_digest_interval,
            admin_ids=settings.admin_ids,
        )
        notices = present(notifier, digest, services, for_handlers, language)
        links = callback_links(settings)
        inbox = None if links is None else CallbackInbox(CallbackRepo(services.db), links)
        first_looks = FirstLooks()
        leases = LeaseRepo(services.db, settings.replica_id, settings.lease_seconds)
        background = Background(
            settings,
            first_looks=first_looks,
            notifier=notifier,
            digest=digest,
            notices=notices,
            users=services.users,
            alerts=services.alerts,
            outbox=services.outbox,
            bulk=services.bulk,
            accounts=services.accounts,
            i18n=services.i18n,
            policy=policy,
            traffic=services.traffic,
            insights=services.insights,
            callbacks=inbox,
            leases=leases,
        )
        stack.push_async_callback(background.stop)
        sender = SmsSender(
            services.accounts,
            services.outbox,
            first_check=timedelta(seconds=settings.delivery_first_check),
            stoplist=services.stoplist,
            links=links,
        )
        # Outcomes of sends whose recording is being retried, before the database closes.
        stack.push_async_callback(sender.close)
        runner = BulkRunner(
            services.bulk,
            services.accounts,
            rate=settings.bulk_rate,
            concurrency=settings.bulk_concurrency,
            notices=notices,
            users=services.users,
            policy=policy,
            stoplist=services.stoplist,
            links=links,
            replica_id=settings.replica_id,
            lease_seconds=settings.lease_seconds,
        )
        # Rows in flight settle while the database and the notices are still there.
        stack.push_async_callback(runner.stop)
        scheduler = Scheduler(
            services.schedule,
            services.users,
            services.bulk,
            services.accounts,
            sender,
            runner,
            notices,
            grace=timedelta(seconds=settings.schedule_grace),
            poll=settings.schedule_poll,
            quiet_default=settings.quiet_default,
            jobs_per_user=settings.bulk_jobs_per_user,
            policy=policy,
            rounds=Rounds(leases),
        )
        # Stopped first: it starts sends and jobs.
        stack.push_async_callback(scheduler.stop)
        shared = Shared(
            policy,
            for_handlers,
            notifier,
            notices,
            sender,
            runner,
            scheduler,
            first_looks,
            callbacks=inbox,
        )
        dp = create_dispatcher(services, shared)

        async def on_startup(bot: Bot) -> None:
            await set_commands(bot, services.i18n, settings.default_language)
            await background.start()
            # Jobs left running inside their owners' quiet hours are paused before they resume.
            await scheduler.hold_quiet_jobs()
            await runner.start()  # resumes the jobs a previous process left running
            scheduler.start()
            # bot.me() keeps the answer: aiogram's polling asks for it next, without a request.
            me = await bot.me()
            logger.info("bot @%s started", me.username)

        dp.startup.register(on_startup)
        yield App(bot, dp, services, shared)


def present(
    notifier: Outbox,
    digest: AdminDigest,
    services: Services,
    for_handlers: HandlerSettings,
    language: Language,
) -> Presenter:
    """The bot's presentation of events over `notifier`."""
    return Presenter(
        notifier,
        digest,
        services.i18n,
        services.users,
        default_language=language,
        jobs=JobReports(notifier, services.bulk, for_handlers),
    )


def create_dispatcher(services: Services, shared: Shared) -> Dispatcher:
    """A Dispatcher over what `build_app` opened (a second one stands for a restart in tests)."""
    settings = services.settings
    storage, isolation = dialog_state(
        services.db,
        services.redis,
        services.redis_prefix,
        settings.upload_time_limit,
        settings.lease_seconds,
    )
    dp = Dispatcher(
        storage=storage,
        # One update at a time per user: a double tap is handled after the first, never beside it
        # (across replicas: a Redis lock per user).
        events_isolation=isolation,
        settings=shared.for_handlers,
        accounts=services.accounts,
        users=services.users,
        outbox=services.outbox,
        alerts=services.alerts,
        sms_sender=shared.sender,
        bulk=services.bulk,
        templates=services.templates,
        traffic=services.traffic,
        insights=services.insights,
        stoplist=services.stoplist,
        contacts=services.contacts,
        broadcast_log=services.broadcasts,
        leases=LeaseRepo(services.db, settings.replica_id, settings.lease_seconds),
        uploads=services.uploads,
        charts=services.charts,
        exports=services.exports,
        bulk_sources=bulk_sources(
            settings.bulk_cache_mb * 1024 * 1024, services.redis, services.redis_prefix
        ),
        access_policy=shared.policy,
        bulk_runner=shared.runner,
        schedule=services.schedule,
        scheduler=shared.scheduler,
        notifier=shared.notifier,
        notices=shared.notices,
        first_looks=shared.first_looks,
        otp_codes=otp_codes(services.vault, services.redis, services.redis_prefix),
    )
    dp.update.outer_middleware(MetricsMiddleware())  # first: it times the others too
    dp.update.outer_middleware(UserMiddleware(services.users, settings))
    UserLocaleMiddleware(services.i18n, settings).setup(dp)
    dp.include_router(build_router(allowlist=shared.policy.allowlist))
    HandlerServices.for_dispatcher(dp)
    return dp
