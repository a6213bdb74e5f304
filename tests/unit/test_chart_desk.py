"""The chart desk: one job per user at a time, the newest waiting one wins, turns shared."""

from __future__ import annotations

import asyncio
import os

from services.chart_desk import CHART_NICE, ChartDesk


async def test_a_users_later_request_replaces_the_waiting_one() -> None:
    desk = ChartDesk(workers=1)
    release = asyncio.Event()
    ran: list[str] = []

    def job(name: str) -> object:
        async def run() -> None:
            ran.append(name)
            if name == "first":
                await release.wait()

        return run

    assert desk.submit(1, job("first")) is True  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert desk.submit(1, job("second")) is False  # type: ignore[arg-type]
    assert desk.submit(1, job("third")) is False  # type: ignore[arg-type]
    assert desk.pending(1) == 2
    release.set()
    await desk.idle()
    assert ran == ["first", "third"]
    assert desk.pending(1) == 0
    await desk.close()


async def test_users_take_turns_on_the_children() -> None:
    desk = ChartDesk(workers=1)
    running = 0
    most = 0

    async def job() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1

    for user in range(5):
        assert desk.submit(user, job)
    await desk.idle()
    assert most == 1
    await desk.close()


async def test_a_failing_job_frees_the_user_and_close_stops_the_rest() -> None:
    desk = ChartDesk(workers=1)

    async def broken() -> None:
        raise RuntimeError("bug")

    desk.submit(1, broken)
    await desk.idle()
    assert desk.pending(1) == 0
    forever = asyncio.Event()
    desk.submit(2, forever.wait)
    await asyncio.sleep(0)
    await desk.close()
    assert desk.pending(2) == 0


async def test_charts_are_drawn_in_a_nicer_child_process() -> None:
    import datetime as dt

    from services.charts import ChartLabels, ChartSpec, fill_days

    desk = ChartDesk(workers=1)
    labels = ChartLabels("t", "s", "c", "d", "f", "w", "e")
    day = dt.date(2026, 11, 1)
    try:
        png = await desk.draw(ChartSpec(fill_days([], day, day), labels))
        assert png.startswith(b"\x89PNG")
        [pid] = desk.pids
        assert pid != os.getpid()
        child_nice = os.getpriority(os.PRIO_PROCESS, pid)
        assert child_nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + CHART_NICE)
        if hasattr(os, "SCHED_IDLE"):
            # Linux: the idle class, so the bot's loop preempts a chart the moment it wakes.
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    finally:
        await desk.close()
