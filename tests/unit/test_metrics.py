"""The /metrics text: counters that move with what the bot does, labels that never carry a
user, a number or a token, and the bearer check of METRICS_TOKEN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.web.metrics import METRICS_PATH, metrics_handler
from services import metrics
from services.sending import SmsSender
from storage import OutboxRepo
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.watch_env import World

PHONE = "998901234567"
ALLOWED_LABELS = {"type", "outcome", "endpoint", "result", "kind", "state", "le"}


def value(name: str, **labels: str) -> float:
    return metrics.registry().get_sample_value(name, labels) or 0.0


async def client_for(token: str | None) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics_handler(token))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def guarded() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await client_for("s3cret-Token")
    yield client
    await client.close()


async def test_a_send_moves_the_sms_and_gateway_counters(world: World, devsms: FakeDevsms) -> None:
    await world.add_user(1, "tok-1")
    sent = value("devsms_bot_sms_total", kind="single", outcome="sent")
    calls = value("devsms_bot_gateway_calls_total", endpoint="/send_sms.php", result="2xx")
    timed = value("devsms_bot_gateway_seconds_count", endpoint="/send_sms.php")

    await SmsSender(world.accounts, OutboxRepo(world.db)).send(1, PHONE, "Hello", None)
    devsms.fail_next(status=400, path="/send_sms.php")
    await SmsSender(world.accounts, OutboxRepo(world.db)).send(1, PHONE, "Hello", None)

    assert value("devsms_bot_sms_total", kind="single", outcome="sent") == sent + 1
    assert value("devsms_bot_sms_total", kind="single", outcome="refused") >= 1
    assert (
        value("devsms_bot_gateway_calls_total", endpoint="/send_sms.php", result="2xx")
        == calls + 1
    )
    assert value("devsms_bot_gateway_calls_total", endpoint="/send_sms.php", result="4xx") >= 1
    assert value("devsms_bot_gateway_seconds_count", endpoint="/send_sms.php") == timed + 2


async def test_no_user_number_or_token_in_any_label(world: World, devsms: FakeDevsms) -> None:
    await world.add_user(424242, "tok-secret-1")
    await SmsSender(world.accounts, OutboxRepo(world.db)).send(424242, PHONE, "Hello", None)
    text = metrics.exposition().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
            for label_value in sample.labels.values():
                assert not re.search(r"\d{5,}", label_value), sample
    assert PHONE not in text and "424242" not in text and "tok-secret" not in text


async def test_metrics_want_the_bearer_token_when_one_is_set(
    guarded: TestClient[web.Request, web.Application],
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-Token"}):
        answer = await guarded.get(METRICS_PATH, headers=headers)
        assert answer.status == 401
        assert "devsms_bot" not in await answer.text()
    answer = await guarded.get(METRICS_PATH, headers={"Authorization": "Bearer s3cret-Token"})
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE devsms_bot_sms_total counter" in await answer.text()


async def test_metrics_are_open_without_a_token() -> None:
    client = await client_for(None)
    try:
        answer = await client.get(METRICS_PATH)
        assert answer.status == 200
        text = await answer.text()
        assert "# TYPE devsms_bot_sms_total counter" in text
        assert "process_cpu_seconds_total" in text
    finally:
        await client.close()


def test_the_text_is_what_prometheus_clients_own_metrics_write() -> None:
    # The same recordings in metrics of ours and in prometheus_client's Counter, Gauge and
    # Histogram give the same text (the `_created` times aside: each notes its own).
    import prometheus_client as prom

    theirs = prom.CollectorRegistry()
    calls = metrics.Counter("parity_calls", "Calls.", ("endpoint", "result"))
    their_calls = prom.Counter("parity_calls", "Calls.", ("endpoint", "result"), registry=theirs)
    plain = metrics.Counter("parity_plain", "Plain.")
    their_plain = prom.Counter("parity_plain", "Plain.", registry=theirs)
    seconds = metrics.Histogram("parity_seconds", "Seconds.", ("endpoint",), buckets=(0.1, 1.0))
    their_seconds = prom.Histogram(
        "parity_seconds", "Seconds.", ("endpoint",), buckets=(0.1, 1.0), registry=theirs
    )
    round_ = metrics.Histogram("parity_round", "Round.", buckets=(0.5, 5.0))
    their_round = prom.Histogram("parity_round", "Round.", buckets=(0.5, 5.0), registry=theirs)
    queue = metrics.Gauge("parity_queue", "Queue.")
    their_queue = prom.Gauge("parity_queue", "Queue.", registry=theirs)
    read = metrics.Gauge("parity_read", "Read.")
    their_read = prom.Gauge("parity_read", "Read.", registry=theirs)
    ours: list[metrics.Family[metrics.Value] | metrics.Family[metrics.Counts]] = [
        calls,
        plain,
        seconds,
        round_,
        queue,
        read,
    ]
    try:
        for counter in (calls, their_calls):
            counter.labels("/send", "2xx").inc()
            counter.labels("/send", "2xx").inc(2)
            counter.labels("/balance", "no_answer").inc()
            counter.labels(404, "4xx").inc()  # kept as the text "404"
        plain.inc()
        their_plain.inc()
        for histogram in (seconds, their_seconds):
            for amount in (0.05, 0.1, 0.4, 1.0, 7.0):
                histogram.labels("/send").observe(amount)
            histogram.labels("/balance").observe(0.0)
            histogram.labels("/nan").observe(float("nan"))  # in the sum, in no bucket
        round_.observe(12.5)
        their_round.observe(12.5)
        queue.set(3)
        their_queue.set(3)
        read.set_function(lambda: 42)
        their_read.set_function(lambda: 42)

        def text(registry: prom.CollectorRegistry) -> list[str]:
            lines = prom.generate_latest(registry).decode().splitlines()
            return [
                re.sub(r"_created(\{.*\})? \S+$", r"_created\1 T", line)
                for line in lines
                if "parity_" in line
            ]

        mine = text(metrics.registry())
        assert mine == text(theirs)
        assert 'parity_seconds_bucket{endpoint="/send",le="1.0"} 4.0' in mine
        assert "parity_plain_created T" in mine
    finally:
        for family in ours:
            metrics.FAMILIES.remove(family)
