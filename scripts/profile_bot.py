"""``python -m scripts.profile_bot OUT``: the bot exactly as ``python -m bot``, under cProfile.

Profiling starts after the imports (aiogram builds its pydantic models at import time, which
would drown the per-update costs) and the stats are written to OUT when the bot stops (SIGTERM
stops aiogram's polling cleanly). Read them with ``python -m pstats OUT``. Only the event loop's
thread is profiled: aiosqlite's worker thread is not.
"""

from __future__ import annotations

import asyncio
import cProfile
import sys

from bot.__main__ import main


def run(out: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(main())
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    run(sys.argv[1])
