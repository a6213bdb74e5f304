"""Composition root: the one place that builds the Bot, the Dispatcher and what they share."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.utils.i18n import I18n

from bot.background import Background
from bot.commands import set_commands
from bot.config import Settings, handler_settings
from bot.i18n import UserLocaleMiddleware, create_i18n
from bot.middlewares import RetryRequestMiddleware, UserMiddleware
from handlers import build_router
from services.access import AccessPolicy
from services.accounts import Accounts
from services.bulk import BulkRunner
from services.bulk_plan import SourceCache
from services.devsms import DevsmsClient
from services.key_rotation import rotate_all
from services.sending import SmsSender
from services.upload_worker import UploadWorker
from services.vault import TokenVault, load_generated_keys, parse_keys
from storage import (
    AlertRepo,
    BulkRepo,
    CredentialRepo,
    Database,
    OutboxRepo,
    SQLiteStorage,
    TemplateRepo,
    UserRepo,
)

logger = logging.getLogger(__name__)


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
    uploads: UploadWorker
    """Parses uploaded files in a child process, started on the first upload."""

    async def close(self) -> None:
        await self.uploads.close()
        await self.devsms.close()
        await self.db.close()


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


async def open_services(settings: Settings) -> Services:
    vault = load_vault(settings)
    db = await Database.open(settings.database_path)
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
    outbox = OutboxRepo(db)
    if orphans := await outbox.orphans_to_unknown():
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
        accounts=Accounts(credentials, vault, devsms),
        i18n=create_i18n(settings.default_language),
        bulk=BulkRepo(db),
        templates=TemplateRepo(db),
        uploads=UploadWorker(
            memory_limit=settings.upload_memory_mb * 1024 * 1024,
            time_limit=settings.upload_time_limit,
            preload=("services.bulk_plan",),
        ),
    )


def create_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(RetryRequestMiddleware())
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_dispatcher(services: Services) -> Dispatcher:
    settings = services.settings
    policy = AccessPolicy(settings.access_mode == "allowlist", frozenset(settings.admin_ids))
    for_handlers = handler_settings(settings, policy)
    dp = Dispatcher(
        storage=SQLiteStorage(services.db),
        # One update at a time per user: a double tap is handled after the first, never beside it.
        events_isolation=SimpleEventIsolation(),
        settings=for_handlers,
        accounts=services.accounts,
        users=services.users,
        outbox=services.outbox,
        alerts=services.alerts,
        devsms=services.devsms,
        sms_sender=SmsSender(
            services.accounts,
            services.outbox,
            first_check=timedelta(seconds=settings.delivery_first_check),
        ),
        bulk=services.bulk,
        templates=services.templates,
        uploads=services.uploads,
        bulk_sources=SourceCache(settings.bulk_cache_mb * 1024 * 1024),
        access_policy=policy,
        # Exists before start-up so handlers (and tests) have it; the notices it emits need
        # the Bot, which only start-up knows.
        bulk_runner=BulkRunner(
            services.bulk,
            services.accounts,
            rate=settings.bulk_rate,
            concurrency=settings.bulk_concurrency,
            users=services.users,
            policy=policy,
        ),
    )
    dp.update.outer_middleware(UserMiddleware(services.users, settings))
    UserLocaleMiddleware(services.i18n, settings).setup(dp)
    dp.include_router(build_router())
    background = Background(
        settings,
        users=services.users,
        alerts=services.alerts,
        outbox=services.outbox,
        bulk=services.bulk,
        accounts=services.accounts,
        i18n=services.i18n,
        policy=policy,
    )

    async def on_startup(bot: Bot) -> None:
        await set_commands(bot, services.i18n, settings.default_language)
        dp["notifier"], dp["notices"] = await background.start(bot)
        me = await bot.get_me()
        logger.info("bot @%s started", me.username)

    async def on_shutdown() -> None:
        # Runs last (see `closing` below): feature routers stop their work while the
        # database and the notifier are still there.
        await background.stop()
        await services.close()
        logger.info("bot stopped")

    async def start_bulk(bot: Bot) -> None:
        runner: BulkRunner = dp["bulk_runner"]
        runner.notices = dp["notices"]
        await runner.start()  # resumes the jobs a previous process left running

    async def stop_bulk() -> None:
        # Before the database closes (the closing router runs last): rows in flight settle.
        await dp["bulk_runner"].stop()

    async def stop_sending() -> None:
        # Outcomes of sends whose recording is being retried, before the database closes.
        await dp["sms_sender"].close()

    dp.startup.register(on_startup)
    dp.startup.register(start_bulk)
    dp.shutdown.register(stop_bulk)
    dp.shutdown.register(stop_sending)
    closing = Router(name="closing")
    closing.shutdown.register(on_shutdown)
    dp.include_router(closing)
    return dp
