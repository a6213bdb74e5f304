"""One typed Settings object: environment first, then `.env` (read through python-dotenv)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.devsms import DEFAULT_GATEWAY_TIMEZONE

Language = Literal["uz", "ru", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("uz", "ru", "en")
DEFAULT_DEVSMS_URL: Final = "https://devsms.uz/api"
TELEGRAM_API_URL: Final = "https://api.telegram.org"

# What @BotFather hands out: "<bot id>:<35 url-safe characters>".
BOT_TOKEN_RE: Final = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,100}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Telegram
    bot_token: SecretStr
    telegram_api_url: str = TELEGRAM_API_URL

    # devsms gateway
    devsms_api_url: str = DEFAULT_DEVSMS_URL
    devsms_timeout: float = Field(default=15.0, gt=0)
    devsms_retries: int = Field(default=3, ge=0, le=10)
    devsms_retry_backoff: float = Field(default=0.5, ge=0)
    # The zone of the gateway's timestamps, which carry no offset (IANA name).
    gateway_timezone: str = DEFAULT_GATEWAY_TIMEZONE

    # Storage and secrets
    database_path: Path = Path("data/bot.sqlite3")
    encryption_key: SecretStr | None = None

    # Administration
    admin_ids: Annotated[tuple[int, ...], NoDecode] = ()
    admin_chat_id: int | None = None

    # Background work
    low_balance_threshold: Decimal = Field(default=Decimal(10_000), ge=0)
    balance_check_interval: float = Field(default=600.0, gt=0)
    balance_check_concurrency: int = Field(default=10, ge=1, le=200)
    gateway_outage_after: int = Field(default=5, ge=1)
    notify_rate: float = Field(default=25.0, gt=0)
    delivery_first_check: float = Field(default=30.0, ge=0)
    delivery_poll: float = Field(default=5.0, gt=0)

    # Bulk sending
    bulk_max_rows: int = Field(default=50_000, ge=1)
    bulk_rate: float = Field(default=5.0, gt=0)
    bulk_concurrency: int = Field(default=4, ge=1, le=50)
    bulk_jobs_per_user: int = Field(default=1, ge=1)

    # Access
    access_mode: Literal["open", "allowlist"] = "open"

    # Behaviour
    default_language: Language = "uz"
    log_level: str = "INFO"
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

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in re.split(r"[,\s]+", value.strip()) if part)
        return value

    @field_validator("admin_chat_id", "encryption_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

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

    @property
    def key_file(self) -> Path:
        return self.database_path.parent / "encryption.key"
