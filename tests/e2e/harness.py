"""End-to-end harness: the bot as a real `python -m bot` process against in-process fakes.

The fakes (tests/fakes) run inside the test's event loop on 127.0.0.1; the bot is a child
process whose environment points at them. Tests talk like a user (``ChatUser``) and read what
the user would see from the fake Telegram, what reached the gateway from the fake devsms, and
what the bot wrote from its log (``BotProcess.log_text``).

Everything here polls with deadlines; nothing sleeps as an assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bot.config import Settings
from tests.fakes.fake_devsms import FakeDevsms, RecordedRequest
from tests.fakes.fake_telegram import ChatMessage, FakeTelegram, JsonDict

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
# What follows the interpreter on the command line: the bot as it is deployed.
BOT_ARGV: Final = ("-m", "bot")

# "<bot id>:<35 url-safe characters>", as @BotFather hands out. The id is kept short on
# purpose (never 8-10 digits, the length of real bot ids and of phone-number look-alikes).
BOT_TOKEN: Final = "123456:" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456_-"
# A fixed Fernet key (urlsafe base64 of 32 bytes), so a failing run can be inspected by hand.
ENCRYPTION_KEY: Final = "ZTJlLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0wMDAwMDA="

START_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 10.0
EXIT_TIMEOUT: Final = 20.0
POLL_INTERVAL: Final = 0.02
REPLY_TIMEOUT: Final = 10.0
# At DEBUG aiosqlite logs two long lines per statement; a failure report shows the rest.
LOG_NOISE: Final = (" DEBUG aiosqlite: ",)

# Every variable Settings reads, so the developer's or CI's own BOT_TOKEN, DATABASE_PATH, ...
# can never leak into a test process.
_SETTINGS_VARS: Final = frozenset(name.upper() for name in Settings.model_fields)
_PR_SET_PDEATHSIG: Final = 1


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when pytest dies, so no bot keeps polling on.

    Linux only; elsewhere fixture teardown is the only guard.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def child_env() -> dict[str, str]:
    """This process's environment for a child run from the repository: without any variable
    Settings reads, and with the repository on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a bot's web server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BotExited(AssertionError):
    """The bot process ended while a test expected it to run."""


class BotProcess:
    """One bot installation (working directory, database, log) run as `python -m bot`, or as
    another module given by ``argv`` (the bench's echo bot, the bot under cProfile).

    The same object can be started, stopped and started again: the database, key file and
    log persist in ``workdir`` across restarts, as on a server.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        telegram: FakeTelegram,
        devsms_url: str,
        bot_token: str | None = BOT_TOKEN,
        encryption_key: str | None = ENCRYPTION_KEY,
        extra_env: Mapping[str, str] | None = None,
        name: str = "bot",
        argv: Sequence[str] = BOT_ARGV,
    ) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.workdir = workdir
        self.telegram = telegram
        self.devsms_url = devsms_url
        self.bot_token = bot_token
        self.encryption_key = encryption_key
        self.extra_env = dict(extra_env or {})
        self.database_path = workdir / "data" / "bot.sqlite3"
        self.log_path = workdir / f"{name}.log"
        self.startup_seconds: list[float] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._launches = 0
        workdir.mkdir(parents=True, exist_ok=True)

    # --- configuration ------------------------------------------------------------------------

    @property
    def key_file(self) -> Path:
        """Where the bot generates its key when ENCRYPTION_KEY is not set (KEY_FILE): in the
        installation's own folder, never the real user's ~/.config, and not beside the
        database."""
        return self.workdir / "config" / "encryption.key"

    @property
    def old_key_file(self) -> Path:
        """Where earlier versions generated the key: beside the database."""
        return self.database_path.parent / "encryption.key"

    @property
    def env(self) -> dict[str, str]:
        env = child_env()
        env.update(
            # Log lines must reach the file before a SIGKILL, not sit in a buffer.
            PYTHONUNBUFFERED="1",
            TELEGRAM_API_URL=self.telegram.url,
            DEVSMS_API_URL=self.devsms_url,
            DATABASE_PATH=str(self.database_path),
            KEY_FILE=str(self.key_file),
            LOG_LEVEL="DEBUG",
            DEVSMS_TIMEOUT="2",
            DEVSMS_RETRIES="1",
            DEVSMS_RETRY_BACKOFF="0.05",
            # Bulk jobs must not wait for morning because of when the suite runs.
            QUIET_HOURS="off",
        )
        if self.bot_token is not None:
            env["BOT_TOKEN"] = self.bot_token
        if self.encryption_key is not None:
            env["ENCRYPTION_KEY"] = self.encryption_key
        env.update(self.extra_env)
        return env

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def launch(self) -> None:
        """Spawns the process and returns at once; ``start()`` also waits until it polls."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._launches += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- harness: launch #{self._launches} ---\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, *self.argv],
                # An empty cwd: the bot reads `.env` from there, and there is none.
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Ctrl+C in the terminal goes to pytest only; teardown stops the bot itself.
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )

    async def start(self, timeout: float = START_TIMEOUT) -> float:  # noqa: ASYNC109
        """Launches the bot and waits until it takes updates: its first getUpdates, or in
        webhook mode its setWebhook (it listens by then); returns the seconds it took."""
        webhook = self.env.get("TELEGRAM_MODE") == "webhook"
        ready_call = "setWebhook" if webhook else "getUpdates"
        polls_before = len(self.telegram.calls_of(ready_call))
        started = time.monotonic()
        self.launch()

        def polling() -> bool:
            if not self.running:
                raise BotExited(
                    f"{self.name} exited with code {self.returncode} before polling:\n"
                    + self.log_tail()
                )
            calls = self.telegram.calls_of(ready_call)[polls_before:]
            return any(call.status == 200 for call in calls) if webhook else bool(calls)

        try:
            await self.telegram.wait_for(polling, timeout)
        except BotExited:
            raise
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.name} log:\n{self.log_tail()}") from None
        elapsed = time.monotonic() - started
        self.startup_seconds.append(elapsed)
        return elapsed

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int:  # noqa: ASYNC109
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        process = self._process
        if process is None:
            raise RuntimeError(f"{self.name} was never started")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            code = await self._wait(timeout)
            if code is not None:
                return code
            self.kill()
        return process.wait()

    def kill(self) -> None:
        """SIGKILL: the crash case, no shutdown hooks run."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            # Reaping a SIGKILLed child is immediate; this never blocks the loop for long.
            process.wait(timeout=5)

    async def restart(self) -> float:
        code = await self.stop()
        assert code == 0, (
            f"{self.name} did not stop cleanly (exit code {code}):\n{self.log_tail()}"
        )
        return await self.start()

    async def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:  # noqa: ASYNC109
        """Waits for the process to end by itself (e.g. a configuration error)."""
        code = await self._wait(timeout)
        if code is None:
            self.kill()
            raise AssertionError(f"{self.name} still ran after {timeout} s:\n{self.log_tail()}")
        return code

    async def run_to_exit(self, timeout: float = EXIT_TIMEOUT) -> int:  # noqa: ASYNC109
        """Launches the bot and waits for it to exit by itself; returns the exit code."""
        self.launch()
        return await self.wait_exit(timeout)

    async def _wait(self, timeout: float) -> int | None:  # noqa: ASYNC109
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout
        # Popen has no awaitable wait; polling keeps BotProcess independent of any event loop
        # (kill() and running work from plain sync code too).
        while (code := process.poll()) is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_INTERVAL)
        return code

    # --- what the bot left behind -------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the bot wrote to stdout and stderr, over all its launches."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        """What the most recent launch wrote (the log without earlier launches)."""
        marker = f"--- harness: launch #{self._launches} ---\n"
        return self.log_text().rpartition(marker)[2]

    def log_tail(self, lines: int = 60, *, skip: tuple[str, ...] = LOG_NOISE) -> str:
        """The last ``lines`` log lines, without those containing any of ``skip``."""
        kept = [line for line in self.log_text().splitlines() if not any(s in line for s in skip)]
        return "\n".join(kept[-lines:]) or "(empty log)"

    def database_files(self) -> list[Path]:
        """The SQLite database and its -wal/-shm companions, those that exist."""
        candidates = [
            self.database_path.with_name(self.database_path.name + s) for s in ("", "-wal", "-shm")
        ]
        return [path for path in candidates if path.exists()]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Reads the bot's database read-only (WAL lets this run beside the bot's writes)."""
        uri = f"{self.database_path.as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            return conn.execute(sql, params).fetchall()


class BotLauncher:
    """Makes BotProcess objects wired to this test's fakes; ``stop_all()`` (the ``bots``
    fixture's teardown) stops every one of them."""

    def __init__(self, root: Path, telegram: FakeTelegram, devsms: FakeDevsms) -> None:
        self._root = root
        self._telegram = telegram
        self._devsms = devsms
        self.processes: list[BotProcess] = []

    def new(self, name: str = "bot", **options: Any) -> BotProcess:
        """A BotProcess, not yet started; ``options`` are BotProcess keyword arguments."""
        process = BotProcess(
            self._root / name,
            telegram=self._telegram,
            devsms_url=self._devsms.url,
            name=name,
            **options,
        )
        self.processes.append(process)
        return process

    async def started(self, name: str = "bot", **options: Any) -> BotProcess:
        process = self.new(name, **options)
        await process.start()
        return process

    async def stop_all(self) -> None:
        try:
            for process in self.processes:
                if process.running:
                    await process.stop()
        finally:
            # Whatever went wrong above (a stop that raised, a cancelled teardown), no bot may
            # outlive its test; kill() does nothing to a process that has already ended.
            for process in self.processes:
                process.kill()


@dataclass
class ChatUser:
    """A Telegram user in a private chat with the bot, driven through the fake Telegram."""

    telegram: FakeTelegram
    user_id: int = 1001
    first_name: str = "Alice"
    language_code: str | None = "en"

    @property
    def chat_id(self) -> int:
        return self.user_id

    def send(self, text: str) -> int:
        """Types ``text`` into the chat; returns the message id."""
        return self.telegram.send_text(
            self.user_id, text, first_name=self.first_name, language_code=self.language_code
        )

    async def ask(
        self,
        text: str,
        containing: str | None = None,
        timeout: float = REPLY_TIMEOUT,  # noqa: ASYNC109
    ) -> ChatMessage:
        """Sends ``text`` and returns the first bot reply to it containing ``containing``."""
        message_id = self.send(text)
        return await self.reply_after(message_id, containing, timeout)

    async def reply_after(
        self,
        message_id: int,
        containing: str | None = None,
        timeout: float = REPLY_TIMEOUT,  # noqa: ASYNC109
    ) -> ChatMessage:
        return await self.telegram.wait_for_message(
            self.chat_id, containing=containing, after_message_id=message_id, timeout=timeout
        )

    def bot_messages(self) -> list[ChatMessage]:
        return self.telegram.chat_messages(self.chat_id)

    def message(self, message_id: int) -> ChatMessage:
        """The message as the user sees it now (after edits and deletions)."""
        current = self.telegram.message(self.chat_id, message_id)
        assert current is not None, f"no message {message_id}\n{self.telegram.dump(self.chat_id)}"
        return current

    def tap(self, message: ChatMessage, label: str) -> str:
        """Taps the inline button whose label contains ``label``; returns the query id."""
        return self.telegram.press_button_with_text(
            self.user_id,
            message.message_id,
            label,
            first_name=self.first_name,
            language_code=self.language_code,
        )

    async def answer_to(self, query_id: str, timeout: float = REPLY_TIMEOUT) -> JsonDict:  # noqa: ASYNC109
        """The bot's answerCallbackQuery for the tap (what the user sees as a toast)."""
        return await self.telegram.wait_for(
            lambda: self.telegram.callback_answer(query_id), timeout
        )

    async def wait_edited(
        self,
        message: ChatMessage,
        containing: str | None = None,
        timeout: float = REPLY_TIMEOUT,  # noqa: ASYNC109
    ) -> ChatMessage:
        """Waits until ``message`` was edited (again), and its text contains ``containing``."""

        def edited() -> ChatMessage | None:
            current = self.telegram.message(self.chat_id, message.message_id)
            if current is None or current.edits <= message.edits:
                return None
            if containing is not None and containing not in (current.text or ""):
                return None
            return current

        return await self.telegram.wait_for(edited, timeout)


# --- helpers shared by the e2e test modules ---------------------------------------------------


async def connect_token(user: ChatUser, token: str) -> ChatMessage:
    """/start and the devsms token, as a new user does; returns the balance shown after it."""
    await user.ask("/start", "API token")
    token_message = user.send(token)
    connected = await user.reply_after(token_message, "Token connected")
    return await user.reply_after(connected.message_id, "Balance:")


def messages_containing(telegram: FakeTelegram, chat_id: int, text: str) -> list[ChatMessage]:
    """The bot's messages in the chat whose current text contains ``text``."""
    return [m for m in telegram.chat_messages(chat_id) if text in (m.text or "")]


def gateway_requests(
    devsms: FakeDevsms, path: str, token: str | None = None
) -> list[RecordedRequest]:
    """Requests that reached the fake gateway at ``path``, made with ``token`` if given."""
    return [r for r in devsms.requests_to(path) if token is None or r.token == token]


async def wait_gateway_requests(
    devsms: FakeDevsms,
    count: int,
    *,
    path: str,
    token: str | None = None,
    timeout: float = REPLY_TIMEOUT,  # noqa: ASYNC109
) -> list[RecordedRequest]:
    """Waits until at least ``count`` such requests arrived (e.g. one per balance round of a
    background loop); fails after ``timeout`` s with what did arrive."""
    deadline = time.monotonic() + timeout
    while len(found := gateway_requests(devsms, path, token)) < count:
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{len(found)} of {count} requests to {path} arrived within {timeout} s"
            )
        await asyncio.sleep(POLL_INTERVAL)
    return found


# --- fault tests: did every user get an answer, did anything go out twice ----------------------

# A traceback, or the errors router's catch-all (handlers/errors.py: "unhandled error in
# update ..."): an error no handler was written for.
UNHANDLED_MARKERS: Final = ("Traceback", "unhandled error")


def unhandled_errors(bot: BotProcess) -> list[str]:
    """The bot's log lines that show an error nobody handled, over all its launches."""
    return [
        line
        for line in bot.log_text().splitlines()
        if any(marker in line for marker in UNHANDLED_MARKERS)
    ]


def unanswered_messages(telegram: FakeTelegram, chat_id: int) -> list[ChatMessage]:
    """The user's messages in the chat that no bot message followed before the user's next one.

    Meant for users who wait for an answer before they write again, as the fault tests' users
    do; deleted messages (a token the bot removed) count too.
    """
    messages = telegram.chat_messages(chat_id, include_user=True)
    return [
        message
        for message, following in zip(messages, [*messages[1:], None], strict=True)
        if not message.from_bot and (following is None or not following.from_bot)
    ]


def repeated_texts(telegram: FakeTelegram, chat_id: int) -> dict[str, int]:
    """Texts the bot posted into the chat more than once, with how often."""
    counts = Counter(message.text or "" for message in telegram.chat_messages(chat_id))
    return {text: n for text, n in counts.items() if n > 1}


def repeated_sends(devsms: FakeDevsms) -> dict[tuple[str, str], int]:
    """(phone, text) pairs the gateway was asked to send more than once, with how often.

    Counts requests, not accepted SMS: a second POST is a resend even when it failed.
    """
    counts = Counter(
        (str(request.json.get("phone")), str(request.json.get("message")))
        for request in devsms.requests_to("/send_sms.php")
        if isinstance(request.json, dict)
    )
    return {pair: n for pair, n in counts.items() if n > 1}
