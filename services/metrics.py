"""The process's Prometheus metrics: one registry, every metric defined here.

Served as text by GET /metrics (bot/web/metrics.py). Labels are small fixed sets (an update
type, a gateway endpoint, an outcome): never a user id, a phone number, a token or a text, so
neither the series count nor what a scrape shows grows with the users.

Recording is cheap on purpose (a counter is a locked float add): the update middleware
(bot/middlewares.MetricsMiddleware) binds its label children once and adds about a microsecond
or two per update (see scripts/bench.py, "metrics middleware").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
REGISTRY: Final = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # CPU seconds, memory, open files of this process

_FAST: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

UPDATES: Final = Counter(
    "devsms_bot_updates",
    "Telegram updates handled, by update type and outcome (handled, unhandled, error).",
    ("type", "outcome"),
    registry=REGISTRY,
)
HANDLER_SECONDS: Final = Histogram(
    "devsms_bot_handler_seconds",
    "Time from an update entering the dispatcher to its handler returning.",
    ("type",),
    buckets=_FAST,
    registry=REGISTRY,
)
GATEWAY_CALLS: Final = Counter(
    "devsms_bot_gateway_calls",
    "devsms requests by endpoint and result (2xx, 4xx, 5xx, no_answer).",
    ("endpoint", "result"),
    registry=REGISTRY,
)
GATEWAY_SECONDS: Final = Histogram(
    "devsms_bot_gateway_seconds",
    "devsms request latency by endpoint (each attempt of a retried GET apart).",
    ("endpoint",),
    buckets=_FAST,
    registry=REGISTRY,
)
SMS: Final = Counter(
    "devsms_bot_sms",
    "SMS requests made, by kind (single, otp, bulk) and outcome (sent, unknown, refused, "
    "not_sent).",
    ("kind", "outcome"),
    registry=REGISTRY,
)
BULK_ROWS: Final = Counter(
    "devsms_bot_bulk_rows",
    "Bulk rows finished by the runner, by the state they ended in.",
    ("state",),
    registry=REGISTRY,
)
NOTIFIER_QUEUE: Final = Gauge(
    "devsms_bot_notifier_queue_length",
    "Messages waiting in the paced notifier.",
    registry=REGISTRY,
)
NOTIFIER_429: Final = Counter(
    "devsms_bot_notifier_429",
    "Bot API 429 answers (flood control) met by the notifier.",
    registry=REGISTRY,
)
BALANCE_ROUND_SECONDS: Final = Histogram(
    "devsms_bot_balance_round_seconds",
    "Duration of one balance watcher round over every connected account.",
    buckets=_SLOW,
    registry=REGISTRY,
)
LOOP_LAG_SECONDS: Final = Gauge(
    "devsms_bot_event_loop_lag_seconds",
    "How late the last event-loop probe woke up (the loop was busy that long).",
    registry=REGISTRY,
)
LOOP_LAG: Final = Histogram(
    "devsms_bot_event_loop_lag",
    "Event-loop lag probes, in seconds.",
    buckets=_FAST,
    registry=REGISTRY,
)
CALLBACKS: Final = Counter(
    "devsms_bot_delivery_callbacks",
    "Delivery callbacks from the gateway: as answered (accepted, malformed, limited, busy), "
    "then as worked off (unknown token, checking, nothing to do, not_yet recorded).",
    ("result",),
    registry=REGISTRY,
)


def exposition() -> bytes:
    """Every metric in the Prometheus text format."""
    return generate_latest(REGISTRY)


def gateway_call(endpoint: str, status: int | None, seconds: float) -> None:
    """One devsms request: `status` is the HTTP status, None when no answer came."""
    result = "no_answer" if status is None else f"{status // 100}xx"
    GATEWAY_CALLS.labels(endpoint, result).inc()
    GATEWAY_SECONDS.labels(endpoint).observe(seconds)


def sms(kind: str, outcome: str) -> None:
    SMS.labels(kind, outcome).inc()


def bulk_row(state: str) -> None:
    BULK_ROWS.labels(state).inc()


def watch_queue(length: Callable[[], float]) -> None:
    """The notifier's queue length, read at scrape time (the last notifier built wins)."""
    NOTIFIER_QUEUE.set_function(length)


async def probe_loop_lag(every: float = 1.0) -> None:
    """Sleeps `every` seconds and records how much later than asked it woke up; cancel to
    stop. A busy loop (a handler holding the CPU) shows up here before anything else."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(every)
        lag = max(loop.time() - started - every, 0.0)
        LOOP_LAG_SECONDS.set(lag)
        LOOP_LAG.observe(lag)
