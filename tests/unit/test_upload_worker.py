"""The child process that parses uploads: results, errors, and the limits that end a runaway."""

from __future__ import annotations

import asyncio
import pickle
import pickletools
from collections.abc import AsyncIterator

import pytest

from bot.factory import UPLOAD_PRELOAD
from services.bulk_plan import NoPhoneColumn, parse_source, read_upload
from services.spreadsheet import MAX_COLUMNS, TooLarge, TooManyRows, TooSlow
from services.upload_worker import UploadWorker, WorkerBusy
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


async def test_a_second_parse_while_one_runs_is_refused_at_once(worker: UploadWorker) -> None:
    first = asyncio.create_task(worker.run(parse_slowly, 1.0))
    await asyncio.sleep(0)  # the first call has taken the worker
    assert worker.busy

    with pytest.raises(WorkerBusy):
        await worker.run(parse_slowly, 0)  # not queued behind the first
    assert not first.done()

    assert await first == "done"
    assert not worker.busy
    assert await worker.run(parse_slowly, 0) == "done"


def wide_list(rows: int) -> bytes:
    """rows × MAX_COLUMNS, Cyrillic and quoted newlines included, with invalid and repeated
    numbers."""
    header = ",".join(["phone", *(f"c{n}" for n in range(1, MAX_COLUMNS))])
    lines = [header]
    for row in range(rows):
        phone = "12345" if row % 10 == 3 else f"99890{row % (rows - 5):07d}"
        cells = [f"Алишер {row}", '"two\nlines"', "", *(f"v{n}" for n in range(4, MAX_COLUMNS))]
        lines.append(",".join([phone, *cells]))
    return ("\n".join(lines) + "\n").encode()


async def test_a_list_comes_back_whole_as_a_few_objects(worker: UploadWorker) -> None:
    data = wide_list(2_000)
    expected = parse_source(data, "list.csv", "key", 2_000)
    assert expected.recipients.invalid and expected.recipients.duplicates

    packed = await worker.run(read_upload, data, "list.csv", "key", 2_000)
    assert await asyncio.to_thread(packed.unpack) == expected
    # Unpickling is one C call that holds the GIL: what comes back must not be an object per
    # cell (128,000 here) but a fixed few, whatever the size of the list.
    opcodes = sum(1 for _ in pickletools.genops(pickle.dumps(packed, pickle.HIGHEST_PROTOCOL)))
    assert opcodes < 4 * MAX_COLUMNS + 100


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
    worker = UploadWorker(preload=UPLOAD_PRELOAD)
    try:
        packages = await worker.run(loaded_packages)
    finally:
        await worker.close()

    assert {"openpyxl", "phonenumbers", "services"} <= packages
    assert not packages & {"aiogram", "aiohttp", "aiosqlite", "bot", "handlers", "storage"}
