"""``python -m scripts.instructions [--updates N] [--at-once K]``: what one /balance costs the
bot's event loop, counted in instructions: the same on every run, where this machine's timings
drift by up to 1.5x within an hour (README, Performance, sixth round).

The app is built as ``python -m bot`` builds it, with the fake Telegram and devsms on 127.0.0.1
in a thread of their own, and N /balance updates of 200 seeded users (K at a time) go through
``Dispatcher.feed_update`` after a warm-up; polling is left out. The script runs itself under
``valgrind --tool=callgrind`` (Debian: ``apt-get install valgrind``), counting only while the
measured updates run, and prints the instructions per /balance of the event loop's thread and
of the others (aiosqlite's, the fakes'). Without valgrind it prints the loop thread's CPU time
per update instead, which moves with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.bench import BALANCE, LOAD_TOKEN, LOAD_USERS_FROM, SMS_PRICE, seed_users
from tests.e2e.harness import BOT_TOKEN, ENCRYPTION_KEY
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

USERS = 200
# Set in the child that valgrind runs: count only the measured updates.
UNDER_CALLGRIND = "INSTRUCTIONS_UNDER_CALLGRIND"


def start_fakes() -> tuple[FakeTelegram, FakeDevsms]:
    """The fakes on a loop of their own, in a thread: their work is not the bot's loop's."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    fakes: list[Any] = []

    async def start() -> None:
        telegram = FakeTelegram(BOT_TOKEN)
        await telegram.start()
        devsms = FakeDevsms()
        devsms.add_account(LOAD_TOKEN, balance=BALANCE, sms_price=SMS_PRICE)
        await devsms.start()
        fakes.extend((telegram, devsms))

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True, name="fakes").start()
    ready.wait()
    return fakes[0], fakes[1]


def toggle_counting(on: bool) -> None:
    if os.environ.get(UNDER_CALLGRIND):
        flag = "on" if on else "off"
        subprocess.run(["callgrind_control", "-i", flag, str(os.getpid())], check=True)


async def feed(updates: int, at_once: int) -> None:
    telegram, devsms = start_fakes()
    root = Path(tempfile.mkdtemp(prefix="instructions-"))
    users = list(range(LOAD_USERS_FROM, LOAD_USERS_FROM + USERS))
    await seed_users(root / "bot.sqlite3", users, LOAD_TOKEN)
    os.environ.update(
        BOT_TOKEN=BOT_TOKEN,
        ENCRYPTION_KEY=ENCRYPTION_KEY,
        TELEGRAM_API_URL=telegram.url,
        DEVSMS_API_URL=devsms.url,
        DATABASE_PATH=str(root / "bot.sqlite3"),
        KEY_FILE=str(root / "key"),
        LOG_LEVEL="WARNING",
        BALANCE_CHECK_INTERVAL="86400",
        DEVSMS_CONNECTIONS="100",
        DEVSMS_CONNECTIONS_PER_USER="100",
    )
    from aiogram.types import Update

    import handlers.utils
    from bot.__main__ import GC_YOUNG_THRESHOLD, load_settings
    from bot.factory import build_app

    if os.environ.get(UNDER_CALLGRIND):
        # Under valgrind the gateway answers ~50x later: "typing…" would be sent, which a
        # quick /balance never does.
        handlers.utils.SLOW_AFTER = 3600.0  # type: ignore[misc]
    async with build_app(load_settings()) as app:
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        ids = iter(range(1, 10**9))

        def balance(user_id: int) -> Update:
            number = next(ids)
            return Update.model_validate(
                {
                    "update_id": number,
                    "message": {
                        "message_id": number,
                        "date": int(time.time()),
                        "chat": {"id": user_id, "type": "private", "first_name": "U"},
                        "from": {"id": user_id, "is_bot": False, "first_name": "U"},
                        "text": "/balance",
                        "entities": [{"type": "bot_command", "offset": 0, "length": 8}],
                    },
                },
                context={"bot": app.bot},
            )

        async def run(count: int) -> None:
            gate = asyncio.Semaphore(at_once)

            async def one(index: int) -> None:
                async with gate:
                    await app.dp.feed_update(app.bot, balance(users[index % USERS]))

            await asyncio.gather(*(one(index) for index in range(count)))

        await run(2 * updates)  # caches, connections, pydantic's models
        answers = len(telegram.calls_of("sendMessage"))
        started = time.thread_time()
        toggle_counting(True)
        await run(updates)
        toggle_counting(False)
        cpu = time.thread_time() - started
        answered = len(telegram.calls_of("sendMessage")) - answers
        if answered != updates or telegram.calls_of("sendChatAction"):
            raise SystemExit(f"{answered} answers to {updates} /balance: not a clean run")
        if not os.environ.get(UNDER_CALLGRIND):
            print(f"loop thread CPU per /balance: {cpu / updates * 1e6:.0f} µs (timed)")


def counted(out: Path, updates: int, say: Callable[[str], None]) -> None:
    """Reads callgrind's files, one per thread (out-01 is the main thread: the event loop)."""
    totals: dict[int, int] = {}
    for part in sorted(out.parent.glob(out.name + "-*")):
        found = re.search(r"^totals: (\d+)", part.read_text(errors="replace"), re.MULTILINE)
        if found:
            totals[int(part.name.rsplit("-", 1)[1])] = int(found.group(1))
    loop_thread = totals.pop(1, 0)
    say(f"event loop thread: {loop_thread / updates / 1e6:.3f} M instructions per /balance")
    say(f"other threads (aiosqlite, the fakes): {sum(totals.values()) / updates / 1e6:.3f} M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300, help="measured /balance updates")
    parser.add_argument("--at-once", type=int, default=50, help="updates in flight at once")
    args = parser.parse_args()
    valgrind = shutil.which("valgrind")
    if os.environ.get(UNDER_CALLGRIND) or valgrind is None:
        if valgrind is None:
            print("valgrind is not installed: timing instead (noisy)")
        asyncio.run(feed(args.updates, args.at_once))
        return
    with tempfile.TemporaryDirectory(prefix="callgrind-") as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "scripts.instructions",
            f"--updates={args.updates}",
            f"--at-once={args.at_once}",
        ]
        env = {**os.environ, UNDER_CALLGRIND: "1"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stdout + done.stderr)
        counted(out, args.updates, print)


if __name__ == "__main__":
    main()
