"""The process's Prometheus metrics: every metric defined here, recorded from the start.

Served as text by GET /metrics (bot/web/metrics.py). Labels are small fixed sets (an update
type, a gateway endpoint, an outcome): never a user id, a phone number, a token or a text, so
neither the series count nor what a scrape shows grows with the users.

The values live in the small classes below, not in prometheus_client's: its import is about
1.4 MB of the idle process (with the wsgiref server it brings), and only a scrape reads them.
`registry()` imports it at the first scrape (or when the web server starts, bot/web) and
builds one registry whose collector reads these values, so what was counted before is all
there. The text is what prometheus_client's own Counter, Gauge and Histogram would write:
`_total` and `_created` for counters, cumulative `_bucket`s, `_count`, `_sum` and `_created`
for histograms (tests/unit/test_metrics.py compares the two).

Recording is cheap on purpose (a float add, or a bucket search and two adds): the update
middleware (bot/middlewares.MetricsMiddleware) binds its label children once and adds about a
microsecond or two per update (see scripts/bench.py, "metrics middleware"). Every recording
runs on the event loop's thread; a scrape reads on it too (the web server's handler).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final, Generic, TypeVar

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

logger = logging.getLogger(__name__)

_FAST: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# prometheus_client's switch for the `_created` series, read the same way.
_CREATED: Final = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() != "true"


class Value:
    """One series of a counter or a gauge."""

    __slots__ = ("created", "read", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()
        self.read: Callable[[], float] | None = None

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def set_function(self, read: Callable[[], float]) -> None:
        """From now on the value is read at scrape time."""
        self.read = read

    def current(self) -> float:
        return self.value if self.read is None else float(self.read())


class Counts:
    """One series of a histogram: observations per bucket (not cumulative) and their sum."""

    __slots__ = ("bounds", "counts", "created", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0.0] * len(bounds)
        self.total = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.total += amount
        if amount != amount:  # NaN: in no bucket, as prometheus_client counts it
            return
        # The first bucket whose upper bound is at least the amount (the last one is +Inf).
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1.0


S = TypeVar("S", Value, Counts)


class Family(Generic[S]):
    """A metric and its series by label values; without label names it has its one series."""

    kind: str

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.series: dict[tuple[str, ...], S] = {}
        if not labelnames:
            self.series[()] = self.new_series()
        FAMILIES.append(self)

    def new_series(self) -> S:
        raise NotImplementedError

    def labels(self, *given: object) -> S:
        values = tuple(str(value) for value in given)  # as prometheus_client keeps them
        found = self.series.get(values)
        if found is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} has the labels {self.labelnames}, not {values}")
            found = self.series[values] = self.new_series()
        return found

    def one(self) -> S:
        """The series of a metric without labels."""
        return self.series[()]

    def samples(self, metric: Metric) -> None:
        raise NotImplementedError


class Counter(Family[Value]):
    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> None:
        super().__init__(name, documentation, labelnames)

    def new_series(self) -> Value:
        return Value()

    def inc(self, amount: float = 1.0) -> None:
        self.one().inc(amount)

    def samples(self, metric: Metric) -> None:
        for values, series in list(self.series.items()):
            labels = dict(zip(self.labelnames, values, strict=True))
            metric.add_sample(self.name + "_total", labels, series.value)
            if _CREATED:
                metric.add_sample(self.name + "_created", labels, series.created)


class Gauge(Family[Value]):
    kind = "gauge"

    def __init__(self, name: str, documentation: str) -> None:
        super().__init__(name, documentation, ())

    def new_series(self) -> Value:
        return Value()

    def set(self, value: float) -> None:
        self.one().set(value)

    def set_function(self, read: Callable[[], float]) -> None:
        self.one().set_function(read)

    def samples(self, metric: Metric) -> None:
        metric.add_sample(self.name, {}, self.one().current())


class Histogram(Family[Counts]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...] = (),
        *,
        buckets: tuple[float, ...],
    ) -> None:
        self.bounds = (*buckets, math.inf)
        super().__init__(name, documentation, labelnames)

    def new_series(self) -> Counts:
        return Counts(self.bounds)

    def observe(self, amount: float) -> None:
        self.one().observe(amount)

    def samples(self, metric: Metric) -> None:
        from prometheus_client.utils import floatToGoString

        for values, series in list(self.series.items()):
            labels = dict(zip(self.labelnames, values, strict=True))
            seen = 0.0
            for bound, count in zip(self.bounds, series.counts, strict=True):
                seen += count
                le = floatToGoString(bound)  # type: ignore[no-untyped-call]
                metric.add_sample(self.name + "_bucket", {**labels, "le": le}, seen)
            metric.add_sample(self.name + "_count", labels, seen)
            metric.add_sample(self.name + "_sum", labels, series.total)
            if _CREATED:
                metric.add_sample(self.name + "_created", labels, series.created)


FAMILIES: Final[list[Family[Value] | Family[Counts]]] = []

UPDATES: Final = Counter(
    "devsms_bot_updates",
    "Telegram updates handled, by update type and outcome (handled, unhandled, error).",
    ("type", "outcome"),
)
HANDLER_SECONDS: Final = Histogram(
    "devsms_bot_handler_seconds",
    "Time from an update entering the dispatcher to its handler returning.",
    ("type",),
    buckets=_FAST,
)
GATEWAY_CALLS: Final = Counter(
    "devsms_bot_gateway_calls",
    "devsms requests by endpoint and result (2xx, 4xx, 5xx, no_answer).",
    ("endpoint", "result"),
)
GATEWAY_SECONDS: Final = Histogram(
    "devsms_bot_gateway_seconds",
    "devsms request latency by endpoint (each attempt of a retried GET apart).",
    ("endpoint",),
    buckets=_FAST,
)
SMS: Final = Counter(
    "devsms_bot_sms",
    "SMS requests made, by kind (single, otp, bulk) and outcome (sent, unknown, refused, "
    "not_sent).",
    ("kind", "outcome"),
)
BULK_ROWS: Final = Counter(
    "devsms_bot_bulk_rows",
    "Bulk rows finished by the runner, by the state they ended in.",
    ("state",),
)
NOTIFIER_QUEUE: Final = Gauge(
    "devsms_bot_notifier_queue_length",
    "Messages waiting in the paced notifier.",
)
NOTIFIER_429: Final = Counter(
    "devsms_bot_notifier_429",
    "Bot API 429 answers (flood control) met by the notifier.",
)
BALANCE_ROUND_SECONDS: Final = Histogram(
    "devsms_bot_balance_round_seconds",
    "Duration of one balance watcher round over every connected account.",
    buckets=_SLOW,
)
LOOP_LAG_SECONDS: Final = Gauge(
    "devsms_bot_event_loop_lag_seconds",
    "How late the last event-loop probe woke up (the loop was busy that long).",
)
LOOP_LAG: Final = Histogram(
    "devsms_bot_event_loop_lag",
    "Event-loop lag probes, in seconds.",
    buckets=_FAST,
)
CALLBACKS: Final = Counter(
    "devsms_bot_delivery_callbacks",
    "Delivery callbacks from the gateway: as answered (accepted, malformed, limited, busy), "
    "then as worked off (unknown token, checking, nothing to do, not_yet recorded).",
    ("result",),
)


class _Collector:
    """Hands prometheus_client the families above, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        for family in FAMILIES:
            metric = Metric(family.name, family.documentation, family.kind)
            family.samples(metric)
            yield metric


@functools.cache
def registry() -> CollectorRegistry:
    """The registry a scrape reads: this process's CPU, memory and open files, then every
    metric above with what it counted since the start."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    found = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=found)
    found.register(_Collector())
    return found


def content_type() -> str:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return CONTENT_TYPE_LATEST


def exposition() -> bytes:
    """Every metric in the Prometheus text format."""
    from prometheus_client import generate_latest

    return generate_latest(registry())


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
