"""Logging with a filter that masks secrets wherever they would appear."""

from __future__ import annotations

import logging
import re
from typing import Final

# Bot tokens, Authorization headers and token-looking query/form fields.
_PATTERNS: Final = (
    re.compile(r"\d{3,20}:[A-Za-z0-9_-]{30,100}"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?bearer\s+)[^\s'\",}]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"),
    re.compile(r"(?i)(token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"),
)
MASK: Final = "***"


def mask_secrets(text: str, extra: tuple[str, ...] = ()) -> str:
    for secret in extra:
        if secret:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return text


class SecretMaskFilter(logging.Filter):
    """Rewrites each record's final text (arguments and traceback included) with secrets masked."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        masked = mask_secrets(message, self._secrets)
        record.msg, record.args = masked, None
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text, self._secrets)
        return True


class ReplicaFilter(logging.Filter):
    """Names the replica (REPLICA_ID) on every record, for the format's [%(replica)s]: with
    several replicas, one log stream tells which process did what."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self._replica = replica

    def filter(self, record: logging.LogRecord) -> bool:
        record.replica = self._replica
        return True


def setup_logging(
    level: str, secrets: tuple[str, ...] = (), *, log_sql: bool = False, replica: str = ""
) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s [%(replica)s] %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
        )
    )
    handler.addFilter(ReplicaFilter(replica or "-"))
    handler.addFilter(SecretMaskFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log and aiogram's per-update lines are noise at INFO.
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, root.level))
    # aiosqlite logs every statement with its parameters at DEBUG: SMS texts, OTP codes and
    # encrypted tokens would reach the log at LOG_LEVEL=DEBUG, unless LOG_SQL asks for them.
    if not log_sql:
        logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
