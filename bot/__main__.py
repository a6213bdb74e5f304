"""`python -m bot`: read settings, open what the bot shares, take updates until stopped
(polling, or webhook mode with the web server: bot/runner.py)."""

from __future__ import annotations

import gc

if __name__ == "__main__":
    # The imports below build aiogram's thousands of long-lived objects (its pydantic models);
    # the collector's passes over them while they are built were about 0.3 s of the start-up.
    # main() freezes them out of its reach and turns it on again.
    gc.disable()

import asyncio
import logging
import sys
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot.config import Settings
from bot.factory import build_app
from bot.logging_setup import setup_logging
from bot.runner import run

logger = logging.getLogger("bot")
SECRETS_DIR: Final = Path("/run/secrets")


def load_settings() -> Settings:
    try:
        # Docker and compose secrets: a file per setting, e.g. /run/secrets/encryption_key;
        # the environment and .env win over them.
        secrets_dir = SECRETS_DIR if SECRETS_DIR.is_dir() else None
        return Settings(_secrets_dir=secrets_dir)  # type: ignore[call-arg]  # BOT_TOKEN: env
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]).upper()
            if error["type"] == "missing":
                reason = "is not set"
            else:
                reason = error["msg"].removeprefix("Value error, ").removeprefix(f"{field} ")
            # A rule across settings has no field of its own; its message names them.
            problem = f"{field} {reason}" if field else reason
            print(
                f"Configuration error: {problem}. "
                "Set it in the environment or in .env (see .env.example).",
                file=sys.stderr,
            )
        raise SystemExit(2) from None


def redis_secrets(settings: Settings) -> tuple[str, ...]:
    """REDIS_URL's password, should the URL reach a log line (redis-py's errors name it)."""
    if settings.redis_url is None:
        return ()
    password = urlsplit(settings.redis_url.get_secret_value()).password
    return (password,) if password else ()


async def main() -> None:
    settings = load_settings()
    setup_logging(
        settings.log_level,
        secrets=(settings.bot_token.get_secret_value(),)
        + ((settings.webhook_secret.get_secret_value(),) if settings.webhook_secret else ())
        + redis_secrets(settings),
        log_sql=settings.log_sql,
        replica=settings.replica_id,
    )
    async with build_app(settings) as app:
        # aiogram's types are thousands of long-lived objects: keeping them out of the garbage
        # collector's full passes removes its pauses of a few hundred ms from the event loop.
        # No collection first: the little garbage of the start-up is not worth 0.2 s.
        gc.freeze()
        gc.enable()
        await run(app)


if __name__ == "__main__":
    asyncio.run(main())
