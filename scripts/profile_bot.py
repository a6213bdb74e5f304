"""``python -m scripts.profile_bot OUT [--cpu]``: the bot as ``python -m bot``, under cProfile.

Profiling starts after the imports (aiogram builds its pydantic models at import time, which
would drown the per-update costs) and the stats are written to OUT when the bot stops (SIGTERM
stops aiogram's polling cleanly). Read them with ``python -m pstats OUT``. Only the event loop's
thread is profiled: aiosqlite's worker thread is not.

By default the profile counts wall time: a coroutine's figures then include the time the loop
spent waiting (epoll) or the thread waited for the GIL. With ``--cpu`` it counts the loop
thread's own CPU time (time.thread_time): where the event loop's CPU goes, which is what
delays other users' updates. The Python timer makes the profile slower still.
"""

from __future__ import annotations

import asyncio
import cProfile
import sys
import time

from bot.__main__ import main


def run(out: str, *, cpu: bool = False) -> None:
    profiler = cProfile.Profile(time.thread_time) if cpu else cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(main())
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    run(sys.argv[1], cpu="--cpu" in sys.argv[2:])
