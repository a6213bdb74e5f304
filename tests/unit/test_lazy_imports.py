"""An idle bot loads only what it uses: what the bench's idle RSS and start-up rows measure.

Each module below is loaded on first need: matplotlib and numpy in the chart process, openpyxl
where a sheet is read or written, Babel's catalogue compiler only for a stale catalogue,
aiohttp's server side only when the web server runs (WEB_PORT, or webhook mode), the Redis
client only for replicas (REDIS_URL), cryptography with the first token used, phonenumbers
with the first number parsed, and prometheus_client with the web server that serves /metrics.
"""

from __future__ import annotations

from tests.support.lazy_probe import loaded_lazy_modules


def test_importing_the_bot_loads_none_of_them() -> None:
    assert loaded_lazy_modules()["after import"] == []


def test_the_catalogues_when_fresh_need_no_compiler() -> None:
    # `make` compiled them (the .mo files are newer than the .po files).
    assert loaded_lazy_modules()["after catalogue"] == []
