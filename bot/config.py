"""One typed Settings object: environment first, then `.env` (read through python-dotenv)."""

from __future__ import annotations

import re
import socket
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from handlers.config import HandlerSettings
from services.access import AccessPolicy
from services.devsms import DEFAULT_GATEWAY_TIMEZONE
from services.languages import Language
from services.schedule_time import InvalidQuiet, QuietHours, parse_quiet, quiet_text
from services.user_input import InvalidSender, parse_sender

DEFAULT_DEVSMS_URL: Final = "https://devsms.uz/api"
TELEGRAM_API_URL: Final = "https://api.telegram.org"
# Where earlier versions generated the key: beside the database, so that one backup of the data
# folder was enough to read every stored token. Still read there; see services/vault.py.
OLD_KEY_FILE_NAME: Final = "encryption.key"


def default_key_file() -> Path:
    """The per-user configuration folder: outside the data folder and its backups."""
    return Path.home() / ".config" / "devsms-bot" / "encryption.key"


# What @BotFather hands out: "<bot id>:<35 url-safe characters>".
BOT_TOKEN_RE: Final = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,100}$")
# Telegram's rule for setWebhook's secret_token: https://core.telegram.org/bots/api#setwebhook
WEBHOOK_SECRET_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
WEBHOOK_PATH_RE: Final = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
PUBLIC_URL_RE: Final = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
# Plain http only to this machine's loopback (tests, a local fake gateway); never over a network.
LOOPBACK_URL_RE: Final = re.compile(
    r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$"
)
# The bot's own web server listens here in webhook mode when WEB_PORT is not set.
WEBHOOK_DEFAULT_PORT: Final = 8080


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Telegram
    bot_token: SecretStr
    telegram_api_url: str = TELEGRAM_API_URL
    # How updates arrive: the bot asks (polling) or Telegram posts them (webhook).
    telegram_mode: Literal["polling", "webhook"] = "polling"
    webhook_path: str = "/telegram"
    webhook_secret: SecretStr | None = None
    # Webhook mode's stop leaves the webhook set (a restart or another replica takes over);
    # true deletes it, e.g. before the bot moves to another address for good.
    webhook_delete_on_stop: bool = False

    # The bot's own web server (bot/web/): webhook, /healthz, /readyz and what others add
    public_base_url: str = ""
    web_host: str = "127.0.0.1"
    web_port: int | None = Field(default=None, ge=1, le=65535)
    # When set, GET /metrics wants "Authorization: Bearer <it>".
    metrics_token: SecretStr | None = None

    # devsms gateway
    devsms_api_url: str = DEFAULT_DEVSMS_URL
    devsms_timeout: float = Field(default=15.0, gt=0)
    devsms_retries: int = Field(default=3, ge=0, le=10)
    devsms_retry_backoff: float = Field(default=0.5, ge=0)
    devsms_connections: int = Field(default=20, ge=1, le=1000)
    devsms_connections_per_user: int = Field(default=4, ge=1, le=1000)
    # The zone of the gateway's timestamps, which carry no offset (IANA name).
    gateway_timezone: str = DEFAULT_GATEWAY_TIMEZONE

    # Storage and secrets
    database_path: Path = Path("data/bot.sqlite3")
    # postgresql://user:password@host:port/db (a password is a secret); None: SQLite.
    database_url: SecretStr | None = None
    encryption_key: SecretStr | None = None
    key_file: Path = Field(default_factory=default_key_file)
    require_encryption_key: bool = False

    # Scaling out (README "Scaling out"): several replicas share FSM state, per-user event
    # isolation, the short-lived dialog stores and the notifier's limit through Redis. Empty:
    # one process keeps all of that in memory and SQLite.
    redis_url: SecretStr | None = None
    # This process's name in logs, metrics and work leases (one per replica).
    replica_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64)

    # Administration
    admin_ids: Annotated[tuple[int, ...], NoDecode] = ()
    admin_chat_id: int | None = None
    admin_digest_interval: float = Field(default=60.0, ge=0)

    # Background work
    low_balance_threshold: Decimal = Field(default=Decimal(10_000), ge=0)
    balance_check_interval: float = Field(default=600.0, gt=0)
    balance_check_concurrency: int = Field(default=10, ge=1, le=200)
    gateway_outage_after: int = Field(default=5, ge=1)
    notify_rate: float = Field(default=25.0, gt=0)
    delivery_first_check: float = Field(default=30.0, ge=0)
    delivery_poll: float = Field(default=5.0, gt=0)
    # The account's traffic (services/traffic.py): a round per user every interval, at most
    # this many history calls each.
    traffic_sync_interval: float = Field(default=300.0, gt=0)
    traffic_sync_pages: int = Field(default=5, ge=1, le=100)
    traffic_sync_concurrency: int = Field(default=4, ge=1, le=100)
    traffic_backfill_days: int = Field(default=92, ge=1, le=400)
    # Insights notices: how often the failure watch and the digest look for something to say.
    insights_poll: float = Field(default=60.0, gt=0)
    # Several replicas on one database (services/rounds.py, storage/leases.py): how long a
    # lease of background work holds without renewal (renewed every third); REPLICA_ID names it.
    lease_seconds: float = Field(default=30.0, ge=1, le=3600)

    # Bulk sending
    bulk_max_rows: int = Field(default=50_000, ge=1)
    bulk_rate: float = Field(default=5.0, gt=0)
    bulk_concurrency: int = Field(default=4, ge=1, le=50)
    bulk_jobs_per_user: int = Field(default=1, ge=1)
    bulk_cache_mb: int = Field(default=256, ge=1)
    upload_memory_mb: int = Field(default=1024, ge=256)
    upload_time_limit: float = Field(default=120.0, gt=0)

    # /stats and /export
    # Charts are drawn in child processes with these limits (services/chart_desk.py).
    chart_workers: int = Field(default=1, ge=1, le=8)
    chart_memory_mb: int = Field(default=768, ge=256)
    chart_time_limit: float = Field(default=30.0, gt=0)
    # Export files past this size are split into numbered parts (Telegram: 50 MB for bots).
    export_part_mb: float = Field(default=50.0, gt=0, le=50)
    # Exports written at once; one more is refused with "try again in a minute".
    exports_at_once: int = Field(default=2, ge=1, le=20)

    # Scheduled sends and quiet hours
    schedule_grace: float = Field(default=3600.0, ge=0)
    schedule_poll: float = Field(default=5.0, gt=0)
    quiet_hours: str = "21:00-09:00"
    # Stop list
    stoplist_limit: int = Field(default=10_000, ge=1, le=1_000_000)
    # Contacts
    contacts_limit: int = Field(default=10_000, ge=1, le=1_000_000)
    contact_groups_limit: int = Field(default=100, ge=1, le=10_000)

    # Access
    access_mode: Literal["open", "allowlist"] = "open"

    # Behaviour
    default_language: Language = "uz"
    log_level: str = "INFO"
    # Every SQL statement with its values at DEBUG: for debugging only (SMS texts, OTP codes).
    log_sql: bool = False
    sms_max_parts: int = Field(default=10, ge=1, le=50)
    default_sender: str = "4546"

    @field_validator("bot_token")
    @classmethod
    def _check_bot_token(cls, value: SecretStr) -> SecretStr:
        if not BOT_TOKEN_RE.match(value.get_secret_value().strip()):
            # The message never repeats the value: it may be a real token with a typo.
            raise ValueError(
                "BOT_TOKEN does not look like a token from @BotFather (123456:ABC...)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_RE.match(value.get_secret_value()):
            # Never the value itself: it is a secret.
            raise ValueError("WEBHOOK_SECRET must be 1-256 of A-Z, a-z, 0-9, '_' and '-'")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        if url and not (PUBLIC_URL_RE.match(url) or LOOPBACK_URL_RE.match(url)):
            # Telegram posts updates to https only (ports 443, 80, 88, 8443).
            raise ValueError(
                "PUBLIC_BASE_URL must be an https:// URL without query, e.g. "
                "https://bot.example.com"
            )
        return url

    @field_validator("webhook_path")
    @classmethod
    def _check_webhook_path(cls, value: str) -> str:
        path = value.strip()
        if not WEBHOOK_PATH_RE.match(path):
            raise ValueError("WEBHOOK_PATH must be a path like /telegram (letters, digits, ._~-)")
        return path

    @model_validator(mode="after")
    def _check_webhook_mode(self) -> Settings:
        if self.telegram_mode != "webhook":
            return self
        missing = [
            name
            for name, value in (
                ("PUBLIC_BASE_URL", self.public_base_url),
                ("WEBHOOK_SECRET", self.webhook_secret),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"TELEGRAM_MODE=webhook needs {' and '.join(missing)} to be set")
        return self

    @property
    def web_port_in_use(self) -> int | None:
        """The web server's port, or None when it does not run (polling without WEB_PORT)."""
        if self.web_port is None and self.telegram_mode == "webhook":
            return WEBHOOK_DEFAULT_PORT
        return self.web_port

    @property
    def webhook_url(self) -> str:
        return self.public_base_url + self.webhook_path

    @field_validator("key_file", mode="before")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        if isinstance(value, str):
            return default_key_file() if not value.strip() else Path(value.strip()).expanduser()
        return value.expanduser() if isinstance(value, Path) else value

    @model_validator(mode="after")
    def _check_key_location(self) -> Settings:
        if self.encryption_key is not None:
            return self
        if self.require_encryption_key:
            # Set in the container image: a key generated inside the container would sit on
            # the data volume or vanish with the container.
            raise ValueError(
                "ENCRYPTION_KEY is not set, and this installation requires it "
                "(REQUIRE_ENCRYPTION_KEY=1): generate one with "
                '`python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"` and keep a copy outside the data volume'
            )
        database_folder = self.database_path.parent.resolve()
        key_folder = self.key_file.resolve().parent
        # A database kept straight in the home folder (or above it) holds ~/.config too: only
        # the database's own folder is refused then, not the whole home.
        holds_home = Path.home().resolve().is_relative_to(database_folder)
        if key_folder == database_folder or (
            key_folder.is_relative_to(database_folder) and not holds_home
        ):
            raise ValueError(
                f"KEY_FILE must not be inside the database's folder ({database_folder}): "
                "a backup of that folder would be enough to read every stored token"
            )
        return self

    @property
    def old_key_file(self) -> Path:
        return self.database_path.parent / OLD_KEY_FILE_NAME

    @model_validator(mode="after")
    def _per_user_within_total(self) -> Settings:
        if self.devsms_connections_per_user > self.devsms_connections:
            raise ValueError("DEVSMS_CONNECTIONS_PER_USER cannot exceed DEVSMS_CONNECTIONS")
        return self

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in re.split(r"[,\s]+", value.strip()) if part)
        return value

    @field_validator(
        "admin_chat_id",
        "database_url",
        "encryption_key",
        "webhook_secret",
        "web_port",
        "metrics_token",
        "redis_url",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("DATABASE_URL must start with postgresql:// (or be empty: SQLite)")
        return value

    @property
    def database_target(self) -> str | Path:
        """What storage.Database.open connects to: DATABASE_URL, else the SQLite file."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return self.database_path

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        if not url.startswith(("redis://", "rediss://", "unix://")):
            # Never the value itself: it may hold a password.
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return SecretStr(url)

    @field_validator("replica_id", mode="before")
    @classmethod
    def _default_replica(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip() or socket.gethostname()
        return value

    @field_validator("default_sender")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        # The same rule as a sender typed in /settings: the gateway gets nothing else.
        try:
            return parse_sender(value)
        except InvalidSender:
            raise ValueError(
                "DEFAULT_SENDER must be 3-15 digits or 2-11 Latin letters, digits, spaces, "
                "'.', '_' or '-'"
            ) from None

    @field_validator("gateway_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        name = value.strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "GATEWAY_TIMEZONE must be an IANA time zone name such as Asia/Tashkent"
            ) from None
        return name

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet(cls, value: str) -> str:
        try:
            return quiet_text(parse_quiet(value))
        except InvalidQuiet:
            raise ValueError('QUIET_HOURS must be like 21:00-09:00, or "off"') from None

    @property
    def quiet_default(self) -> QuietHours | None:
        return parse_quiet(self.quiet_hours)

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @property
    def default_language_is_explicit(self) -> bool:
        return "default_language" in self.model_fields_set

    @property
    def gateway_zone(self) -> ZoneInfo:
        return ZoneInfo(self.gateway_timezone)


def handler_settings(settings: Settings, policy: AccessPolicy) -> HandlerSettings:
    """The values the feature routers read, as data: handlers/ never imports bot/."""
    return HandlerSettings(
        access=policy,
        admin_chat_id=settings.admin_chat_id,
        default_sender=settings.default_sender,
        low_balance_threshold=settings.low_balance_threshold,
        sms_max_parts=settings.sms_max_parts,
        bulk_max_rows=settings.bulk_max_rows,
        bulk_jobs_per_user=settings.bulk_jobs_per_user,
        bulk_rate=settings.bulk_rate,
        export_part_bytes=int(settings.export_part_mb * 1024 * 1024),
        quiet_default=settings.quiet_default,
        stoplist_limit=settings.stoplist_limit,
        contacts_limit=settings.contacts_limit,
        contact_groups_limit=settings.contact_groups_limit,
    )
