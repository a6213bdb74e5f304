"""The child process that parses uploads: results, errors, and the limits that end a runaway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.bulk_plan import NoPhoneColumn, parse_source
from services.spreadsheet import TooLarge, TooManyRows, TooSlow
from services.upload_worker import UploadWorker
from tests.support.uploads import (
    allocate_forever,
    loaded_packages,
    parse_forever,
    parse_slowly,
)

CSV = b"name,phone\nAli,998901234567\nVali,901234568\n"


@pytest.fixture
async def worker() -> AsyncIterator[UploadWorker]:
    worker = UploadWorker(memory_limit=512 * 1024 * 1024, time_limit=3.0)
    yield worker
    await worker.close()


async def test_a_file_is_parsed_in_the_child_and_its_errors_come_back(
    worker: UploadWorker,
) -> None:
    source = await worker.run(parse_source, CSV, "list.csv", "key", 100)
    assert [r.phone for r in source.recipients.valid] == ["998901234567", "998901234568"]

    with pytest.raises(TooManyRows) as too_many:
        await worker.run(parse_source, CSV, "list.csv", "key", 1)
    assert (too_many.value.limit, too_many.value.found_at_least) == (1, 2)
    with pytest.raises(NoPhoneColumn) as no_phone:
        await worker.run(parse_source, b"name,city\nAli,X\nVali,Y\n", "list.csv", "key", 100)
    assert no_phone.value.columns == ["name", "city"]


async def test_a_parse_past_the_time_limit_is_stopped_and_the_next_one_works(
    worker: UploadWorker,
) -> None:
    started = asyncio.get_running_loop().time()
    with pytest.raises(TooSlow):
        await worker.run(parse_forever)
    assert asyncio.get_running_loop().time() - started < 10

    assert await worker.run(parse_slowly, 0) == "done"


async def test_a_parse_past_the_memory_limit_is_refused_and_the_next_one_works() -> None:
    # Time enough to reach the memory limit on a busy machine: this is about memory.
    worker = UploadWorker(memory_limit=320 * 1024 * 1024, time_limit=60.0)
    try:
        with pytest.raises(TooLarge):
            await worker.run(allocate_forever)

        assert await worker.run(parse_slowly, 0) == "done"
    finally:
        await worker.close()


async def test_the_event_loop_runs_while_the_child_parses(worker: UploadWorker) -> None:
    parse = asyncio.create_task(worker.run(parse_slowly, 1.0))
    ticks = 0
    while not parse.done():
        await asyncio.sleep(0.01)
        ticks += 1
    assert await parse == "done"
    assert ticks > 20  # the loop kept turning while the child worked


async def test_close_stops_the_child_and_nothing_starts_before_the_first_upload() -> None:
    worker = UploadWorker()
    assert worker.pid is None  # idle bots pay for no process
    assert await worker.run(parse_slowly, 0) == "done"
    pid = worker.pid
    assert pid is not None
    assert await worker.run(parse_slowly, 0) == "done"
    assert worker.pid == pid  # reused
    await worker.close()
    assert worker.pid is None


async def test_the_child_imports_what_parsing_needs_and_not_the_bot() -> None:
    worker = UploadWorker(preload=("services.bulk_plan",))
    try:
        packages = await worker.run(loaded_packages)
    finally:
        await worker.close()

    assert {"openpyxl", "phonenumbers", "services"} <= packages
    assert not packages & {"aiogram", "aiohttp", "aiosqlite", "bot", "handlers", "storage"}
