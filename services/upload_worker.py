"""Uploaded files are parsed in a child process with a memory and a time limit.

An upload is hostile input: a zip bomb inflates to gigabytes, a crafted sheet keeps a parser
busy for minutes. Parsed in the bot's own process either would freeze every chat (the GIL)
or kill the bot. In the child, RLIMIT_AS turns a runaway allocation into MemoryError there,
and a parse that outlives its time limit is killed; the next upload gets a fresh child.

One child, started on the first upload (idle bots pay nothing) and reused, parses one upload
at a time. An upload that arrives while it is busy is refused at once (WorkerBusy: the user is
asked to send the file again in a minute) rather than queued: a queued upload would hold its
user's chat (updates of one user are handled in order) and its downloaded file (up to 20 MB)
behind other users' parses of up to the time limit each, so a burst of uploads would freeze
chats for minutes and grow memory with the number of uploaders. A pool of children would
multiply the memory limit and, on a small machine, only share the same CPU. A real list
parses in a second or two, so the refusal is rare and the retry soon succeeds.
The bot waits for its own parse in a thread, so the event loop serves everyone meanwhile.
The child is started by forkserver (or spawn): it never inherits the bot's sockets, threads
or event loop, and it imports only the module of the function it runs. Under `python -m bot`
the main module is not imported again; a script that runs the bot in its own process needs
the usual `if __name__ == "__main__":` guard, as every script in scripts/ has.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Final, Literal, TypeVar, cast

from services.spreadsheet import TooLarge, TooSlow

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MEMORY_LIMIT: Final = 1024 * 1024 * 1024
DEFAULT_TIME_LIMIT: Final = 120.0

_OK: Final = "ok"
_RAISED: Final = "raised"
_OUT_OF_MEMORY: Final = "memory"
_READY: Final = "ready"


class WorkerBusy(Exception):
    """Another upload is being parsed; nothing was done with this one."""


class UploadWorker:
    def __init__(
        self,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        time_limit: float = DEFAULT_TIME_LIMIT,
        start_method: Literal["forkserver", "spawn"] = "forkserver",
        preload: tuple[str, ...] = (),
        nice: int = 0,
        idle_class: bool = False,
        name: str = "upload worker",
    ) -> None:
        self._name = name  # in the log lines and the child's process name
        self._memory_limit = memory_limit
        # Added to the child's niceness: work nobody waits on interactively (charts) yields
        # the CPU to the bot's event loop on a small machine.
        self._nice = nice
        # Also Linux's SCHED_IDLE class (see _idle_class): the child runs when no ordinary
        # process wants the core, and the bot's event loop, waking, takes it back at once.
        self._idle_class = idle_class
        # Modules the child imports when it starts, so that the time limit measures parsing
        # rather than importing openpyxl on a busy machine.
        self._preload = preload
        self._time_limit = time_limit
        self._context: ForkServerContext | SpawnContext = (
            multiprocessing.get_context("spawn")
            if start_method == "spawn"
            else multiprocessing.get_context("forkserver")
        )
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        # One parse at a time: the child is single-threaded, and a second child per upload
        # would multiply the memory a burst of uploads can take. Never waited for: see run.
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id; None until the first upload and after close."""
        return self._process.pid if self._process is not None else None

    @property
    def busy(self) -> bool:
        """A parse is in progress: run refuses another one until it ends."""
        return self._lock.locked()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """function(*args) in the child; function must be importable by name (module level).

        Raises WorkerBusy at once while another call runs (the caller never waits behind
        another user's upload), TooSlow past the time limit and TooLarge when the child ran
        out of memory; whatever function raises is raised here (it must be picklable).
        """
        if self._lock.locked():
            raise WorkerBusy("another upload is being parsed")
        # Acquiring a free asyncio.Lock does not yield, so nothing can slip in between.
        async with self._lock:
            if self._closed:
                raise RuntimeError("upload worker closed")
            process, conn = await self._child()
            # Not wait_for on the thread alone: on timeout the thread stays in recv() until
            # the child is killed, and only then may the connection be closed.
            exchange = asyncio.ensure_future(asyncio.to_thread(_exchange, conn, function, args))
            try:
                status, value = await asyncio.wait_for(asyncio.shield(exchange), self._time_limit)
            except TimeoutError:
                logger.warning(
                    "%s: a job ran past %ss, child %s killed",
                    self._name,
                    self._time_limit,
                    process.pid,
                )
                await self._discard(exchange)
                raise TooSlow(f"over {self._time_limit}s") from None
            except (EOFError, OSError) as exc:
                # The child died: the kernel's OOM killer, or a crash inside a C parser.
                logger.warning("%s %s died: %r", self._name, process.pid, exc)
                await self._discard(exchange)
                raise TooLarge("worker died") from None
            except asyncio.CancelledError:
                # The bot is stopping, or the handler was cancelled: the child may be mid-parse.
                await asyncio.shield(self._discard(exchange))
                raise
            if status == _OUT_OF_MEMORY:
                logger.warning("%s: a job ran out of its memory limit", self._name)
                # MemoryError can leave a process half broken: the next upload gets a new one.
                await self._discard(exchange)
                raise TooLarge("out of memory")
        if status == _RAISED:
            raise cast(BaseException, value)
        return cast(T, value)

    async def close(self) -> None:
        """Stops the child, if one was started. Runs at shutdown."""
        self._closed = True
        if self._process is not None:
            await self._discard(None)

    async def _child(self) -> tuple[BaseProcess, Connection]:
        if self._process is not None and self._conn is not None and self._process.is_alive():
            return self._process, self._conn
        if self._process is not None:
            await self._discard(None)
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(theirs, self._memory_limit, self._preload, self._nice, self._idle_class),
            name=self._name.replace(" ", "-"),
            daemon=True,
        )
        # Starting asks the fork server for a child (and starts that server the first time).
        await asyncio.to_thread(process.start)
        # Only the child holds its end now: when it dies, recv() here ends with EOFError.
        theirs.close()
        self._process, self._conn = process, ours
        ready = asyncio.ensure_future(asyncio.to_thread(ours.recv))
        try:
            await asyncio.wait_for(asyncio.shield(ready), self._time_limit)
        except (TimeoutError, EOFError, OSError) as exc:
            logger.error("%s did not start: %r", self._name, exc)
            await self._discard(ready)
            raise TooSlow("worker did not start") from None
        logger.info("%s %s started", self._name, process.pid)
        return process, ours

    async def _discard(self, exchange: asyncio.Future[Any] | None) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is not None:
            process.kill()
            await asyncio.to_thread(process.join)
        if exchange is not None:
            # The thread in recv() returns (EOFError) now that the child is gone.
            await asyncio.gather(exchange, return_exceptions=True)
        if conn is not None:
            conn.close()


def _exchange(conn: Connection, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    conn.send((function, args))
    return conn.recv()


def _idle_class() -> bool:
    """Puts this process in the SCHED_IDLE scheduling class, if the system has it.

    Unprivileged processes may enter it (Linux ≥ 2.6.39, sched(7)). Unlike a nice value, it
    also lets any ordinary process that wakes up (the bot's event loop on an update) preempt
    this one at once instead of at the next scheduler tick. Elsewhere, or where a seccomp
    profile forbids the call, the nice value alone stays: returns False.
    """
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError:
        return False
    return True


def _serve(
    conn: Connection,
    memory_limit: int,
    preload: tuple[str, ...],
    nice: int = 0,
    idle_class: bool = False,
) -> None:
    """The child's loop: one job at a time until the bot closes the connection."""
    if nice:
        os.nice(nice)
    if idle_class:
        _idle_class()
    for module in preload:
        importlib.import_module(module)
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    conn.send(_READY)
    while True:
        try:
            function, args = conn.recv()
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = (_OK, function(*args))
        except MemoryError:
            reply = (_OUT_OF_MEMORY, None)
        except Exception as exc:
            reply = (_RAISED, exc)
        try:
            conn.send(reply)
        except MemoryError:
            conn.send((_OUT_OF_MEMORY, None))
        except Exception as exc:
            # An unpicklable result or exception: say what it was rather than hang the bot.
            conn.send((_RAISED, RuntimeError(f"unpicklable reply: {exc!r}")))
