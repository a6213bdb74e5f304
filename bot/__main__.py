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
# The collector's first threshold (allocations of containers between young collections;
# CPython's default is 700). Every getUpdates answer is up to 100 updates of pydantic models
# alive until handled, so at 700 the collector ran ~50 times a second under load, traversing
# them again and again and promoting them: 0.6 s of CPU in a 20 s quick bench run (a tenth of
# the bot's CPU per /balance) and pauses of up to 14 ms (a full collection). At 10,000: 0.12 s,
# pauses of up to 8 ms (`make bench`, section 1, 2026-12-01). Most garbage here has no cycles
# and goes by reference counting anyway.
GC_YOUNG_THRESHOLD: Final = 10_000


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


def log_secrets(settings: Settings) -> tuple[str, ...]:
    """What the log masks: the bot token, the webhook secret, and the passwords of
    DATABASE_URL and REDIS_URL, should a URL reach a log line (redis-py's errors name it)."""
    found = [settings.bot_token.get_secret_value()]
    if settings.webhook_secret is not None:
        found.append(settings.webhook_secret.get_secret_value())
    for url in (settings.database_url, settings.redis_url):
        if url is not None and (password := urlsplit(url.get_secret_value()).password):
            found.append(password)
    return tuple(found)


async def main() -> None:
    settings = load_settings()
    setup_logging(
        settings.log_level,
        secrets=log_secrets(settings),
        log_sql=settings.log_sql,
        replica=settings.replica_id,
    )
    async with build_app(settings) as app:
        # aiogram's types are thousands of long-lived objects: keeping them out of the garbage
        # collector's full passes removes its pauses of a few hundred ms from the event loop.
        # No collection first: the little garbage of the start-up is not worth 0.2 s.
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        gc.enable()
        await run(app)


def migrate_to_postgres() -> int:
    """`python -m bot migrate-to-postgres`: DATABASE_PATH's SQLite rows into DATABASE_URL."""
    settings = load_settings()
    setup_logging(settings.log_level, secrets=log_secrets(settings))
    if settings.database_url is None:
        print(
            "migrate-to-postgres: set DATABASE_URL to the (empty) PostgreSQL database to fill; "
            "DATABASE_PATH names the SQLite file to copy",
            file=sys.stderr,
        )
        return 2
    # Imported here: the bot itself does not need the copy's code.
    import asyncpg

    from storage.migrations import MigrationError
    from storage.pg_copy import CopyError, copy_to_postgres

    try:
        copied = asyncio.run(
            copy_to_postgres(settings.database_path, settings.database_url.get_secret_value())
        )
    except (CopyError, MigrationError, OSError, asyncpg.PostgresError) as exc:
        print(f"migrate-to-postgres failed: {exc}", file=sys.stderr)
        return 1
    for item in copied:
        print(f"{item.table}: {item.rows} rows")
    total = sum(item.rows for item in copied)
    print(
        f"copied {total} rows of {len(copied)} tables from {settings.database_path}; counts match"
    )
    return 0


COMMANDS: Final = {"migrate-to-postgres": migrate_to_postgres}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        command = COMMANDS.get(sys.argv[1])
        if command is None or len(sys.argv) > 2:
            print(f"usage: python -m bot [{' | '.join(COMMANDS)}]", file=sys.stderr)
            sys.exit(2)
        sys.exit(command())
    asyncio.run(main())
