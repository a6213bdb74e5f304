"""How long the bot's event loop stands still while the largest list comes back from the
upload worker: by default 50,000 rows × 20 short columns (MAX_ROWS × MAX_CELLS / MAX_ROWS,
the largest list the reader accepts), as a CSV.

    python -m scripts.upload_stall [--rows 50000] [--columns 20]

Prints, for the Source sent back whole (as before) and packed (services.bulk_plan.PackedSource,
what the bot does now), the time the round trip took and the loop's longest stall: the
largest gap between ticks of a task that sleeps 1 ms, over the whole round trip. Section 7
of scripts/bench.py runs the same.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from services.bulk_plan import Source, parse_source, read_upload
from services.spreadsheet import MAX_CELLS, MAX_ROWS, SpreadsheetError
from services.upload_worker import UploadWorker

TICK: Final = 0.001


def wide_csv(rows: int, columns: int) -> bytes:
    header = ",".join(["phone", *(f"c{n}" for n in range(1, columns))])
    lines = [header]
    for row in range(rows):
        cells = (f"v{(row + n) % 1000}" for n in range(1, columns))
        lines.append(",".join([f"99890{row:07d}", *cells]))
    return ("\n".join(lines) + "\n").encode()


async def longest_stall(work: Callable[[], Awaitable[Source]]) -> tuple[float, float, int]:
    """(seconds the work took, the loop's longest stall, recipients read)."""
    loop = asyncio.get_running_loop()
    longest = 0.0
    running = True

    async def tick() -> None:
        nonlocal longest
        while running:
            before = loop.time()
            await asyncio.sleep(TICK)
            longest = max(longest, loop.time() - before - TICK)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    source = await work()
    took = time.perf_counter() - started
    running = False
    await ticker
    return took, longest, len(source.recipients.valid)


async def measure(rows: int, columns: int) -> dict[str, tuple[float, float]]:
    """{"whole": (seconds, longest stall), "packed": (...)} for a rows × columns CSV."""
    data = wide_csv(rows, columns)
    worker = UploadWorker(preload=("services.bulk_plan",), time_limit=600.0)

    async def whole() -> Source:
        return await worker.run(parse_source, data, "list.csv", "key", rows)

    async def packed() -> Source:
        result = await worker.run(read_upload, data, "list.csv", "key", rows)
        return await asyncio.to_thread(result.unpack)

    results: dict[str, tuple[float, float]] = {}
    try:
        await worker.run(parse_source, b"phone\n998901234567\n", "list.csv", "key", 1)  # warm
        for name, work in (("whole", whole), ("packed", packed)):
            took, stall, valid = await longest_stall(work)
            assert valid == rows, f"{valid} of {rows} rows read"
            results[name] = (took, stall)
    finally:
        await worker.close()
    return results


async def main(rows: int, columns: int) -> None:
    print(f"{rows} rows × {columns} columns, as CSV")
    try:
        results = await measure(rows, columns)
    except SpreadsheetError as exc:
        print(f"refused by the reader ({exc.kind}): {exc}")
        return
    for name, (took, stall) in results.items():
        print(f"{name:>7}: round trip {took:.2f} s, longest stall {stall * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=MAX_ROWS)
    parser.add_argument("--columns", type=int, default=MAX_CELLS // MAX_ROWS)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.columns))
