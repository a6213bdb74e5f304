"""One paced outbox for everything the bot sends on its own: alerts, delivery results, admin
notices, broadcasts, and the bulk jobs' progress edits and result files.

Telegram's limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this)
are about 30 messages/s overall, about one per second to one chat and 20 per minute to one
group. Going over them earns 429 "Too Many Requests: retry after N", and a bot that keeps
pushing is throttled for longer. So every message goes through one scheduler that

- spaces all sends by 1/`rate` seconds (a token bucket holding one token: no bursts, so no
  one-second window ever sees more than `rate` messages);
- keeps a queue per chat, sends one message of a chat at a time (order is kept) and makes the
  chat wait `per_chat_interval` before its next one, plus a sliding 60 s window of
  `group_per_minute` sends for groups (chat_id < 0);
- picks whichever chat is ready next, so a chat that must wait (flood control, backoff, a slow
  request) never holds back the others.

aiogram never retries by itself; the session's RetryRequestMiddleware may already have retried
a 429/5xx a few times inside one call before the error reaches this module.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final, Protocol

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, LinkPreviewOptions

from bot.notices.limiter import SharedLimit, Wait
from bot.telegram_retry import repeat_is_harmless
from services import metrics
from services.events import Delivery
from storage import UserRepo

logger = logging.getLogger(__name__)

# True inside the notifier's tasks. The Bot session's retry middleware leaves these calls alone:
# the notifier waits out 429s itself and must see them at once to pace every other chat.
SELF_PACED: ContextVar[bool] = ContextVar("notifier_self_paced", default=False)

GROUP_WINDOW: Final = 60.0  # seconds; Telegram's "20 messages per minute" to one group
# Backoff for 5xx and network errors: 1, 2, 4, 8 ... s, capped.
BACKOFF_BASE: Final = 1.0
BACKOFF_MAX: Final = 60.0
# Requests in flight at once. Pacing keeps it near rate × latency; the cap only matters when
# Telegram hangs, or when the session middleware sleeps out a 429 inside a call.
MAX_IN_FLIGHT: Final = 50
# Idle chats' pacing state is dropped after this long, so the table does not grow forever.
PRUNE_EVERY: Final = 60.0
# The scheduler restarts after a bug with this backoff (1, 2, 4 ... s, capped): a bug that
# repeats on every pass must not spin the event loop.
RESTART_BASE: Final = 1.0
RESTART_MAX: Final = 60.0

_NO_PREVIEW: Final = LinkPreviewOptions(is_disabled=True)
# Errors Telegram would repeat word for word: retrying only delays the chat's later messages.
_FINAL_ERRORS: Final = (
    TelegramBadRequest,
    TelegramNotFound,
    TelegramUnauthorizedError,
    TelegramConflictError,
    TelegramEntityTooLarge,
)


__all__ = ["SELF_PACED", "Clock", "Delivery", "Notifier", "Outbox", "Post", "RealClock"]


class Post(Protocol):
    """What the admin digest needs from the Notifier: queue and return."""

    def post(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None: ...

    def post_to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> bool: ...


class Outbox(Post, Protocol):
    """What the presentation needs from the Notifier (tests stand in with an immediate one)."""

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Delivery: ...

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Delivery: ...

    async def send_document(
        self,
        chat_id: int,
        document: BufferedInputFile,
        *,
        caption: str,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Delivery: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(eq=False, slots=True)
class _Job:
    chat_id: int  # where it goes now: follows group → supergroup migrations
    text: str
    reply_markup: InlineKeyboardMarkup | None
    future: asyncio.Future[Delivery]
    seq: int
    enqueued_at: float
    edit_id: int | None = None
    """Edits this message of the chat instead of sending a new one."""
    document: BufferedInputFile | None = None
    """Sent as a document with `text` as its caption."""
    attempts: int = 0
    finished: bool = False


@dataclass(eq=False, slots=True)
class _Chat:
    chat_id: int
    queue: deque[_Job] = field(default_factory=deque)
    # True while its head job is being checked or sent: one message per chat at a time.
    busy: bool = False
    # Earliest time its next message may go (per-chat spacing, group window, 429, backoff).
    next_at: float = -math.inf
    # Send times of the last group_per_minute messages (groups only).
    recent: deque[float] = field(default_factory=deque)
    # Key of its live entry in the ready heap; older entries for the chat are stale.
    key: tuple[float, int] | None = None

    @property
    def is_group(self) -> bool:
        return self.chat_id < 0


class Notifier:
    """Paced delivery of bot-initiated messages; see the module docstring for the rules.

    `send()`, `edit()`, `send_document()` and `to_admins()` wait for the outcome and never
    raise for Telegram errors: for background jobs that want the outcome. `post()` and
    `post_to_admins()` queue and return at once: for handlers, which must never wait on pacing
    (a user's updates are handled one at a time, so a handler that waits freezes that user's
    chat).
    Messages queued before `start()` wait for it.
    """

    def __init__(
        self,
        bot: Bot,
        users: UserRepo,
        *,
        admin_chat_id: int | None = None,
        rate: float = 25.0,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        attempts: int = 5,
        clock: Clock | None = None,
        shared: SharedLimit | None = None,
    ) -> None:
        """`shared`: the limit every replica's notifier takes its slots from (Redis); this
        one's own pacing stays in front of it."""
        if rate <= 0 or per_chat_interval < 0 or group_per_minute < 1 or attempts < 1:
            raise ValueError(
                "rate > 0, per_chat_interval >= 0, group_per_minute >= 1, attempts >= 1"
            )
        self._bot = bot
        self._users = users
        self._admin_chat_id = admin_chat_id
        self._interval = 1.0 / rate
        self._per_chat_interval = per_chat_interval
        self._group_per_minute = group_per_minute
        self._attempts = attempts
        self._clock: Clock = clock or RealClock()
        self._shared = shared

        self._chats: dict[int, _Chat] = {}
        self._ready: list[tuple[float, int, int]] = []  # (eligible_at, head seq, chat_id)
        self._migrated: dict[int, int] = {}
        self._flooded: dict[int, float] = {}  # chat_id → end of its last 429 wait
        self._next_token_at = -math.inf
        self._paused_until = -math.inf  # flood control that looked global
        self._seq = 0
        self._unfinished = 0
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._owned: set[int] = set()  # chats whose head message a send task is sending
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._last_prune = -math.inf
        self._dispatched = 0  # messages handed to a send task: tells a scheduler that works

    @property
    def admin_chat_id(self) -> int | None:
        """The admin chat; follows it when the group is upgraded to a supergroup."""
        return self._admin_chat_id

    # ------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._runner is not None or self._closing:
            return
        metrics.watch_queue(lambda: self._unfinished)
        self._runner = asyncio.create_task(self._run(), name="notifier")

    async def stop(self, drain: float = 5.0) -> None:
        """Delivers what is queued for up to `drain` seconds, then cancels the rest.

        Every message still queued after that resolves FAILED, so no caller waits forever.
        """
        if self._closing and self._runner is None:
            return
        self._closing = True
        if self._runner is not None and not self._idle.is_set() and drain > 0:
            await self._wait(self._idle, drain)
        pending = [task for task in (self._runner, *self._tasks) if task is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._runner = None
        left = self._fail_queued(keep_in_flight=False)
        if left:
            logger.warning("notifier stopped with %s messages not sent", left)

    def _fail_queued(self, *, keep_in_flight: bool) -> int:
        """Resolves queued messages FAILED; returns how many had a caller waiting."""
        left = 0
        for chat in self._chats.values():
            keep = keep_in_flight and chat.busy and chat.queue
            head = [chat.queue.popleft()] if keep else []
            while chat.queue:
                job = chat.queue.popleft()
                if not job.future.done():
                    left += 1
                self._finish(job, Delivery.FAILED)
            chat.queue.extend(head)
        return left

    # ---------------------------------------------------------------------- sending

    def submit(
        self,
        chat_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
        edit_id: int | None = None,
        document: BufferedInputFile | None = None,
    ) -> asyncio.Future[Delivery]:
        """Queues a message (or an edit of message `edit_id`, or a document captioned `text`);
        the future resolves with its Delivery.

        Cancelling the future before the message went out withdraws it.
        """
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        if self._closing:
            logger.warning("notifier is stopping: a message was not queued")
            future.set_result(Delivery.FAILED)
            return future
        target = self._current_id(chat_id)
        self._seq += 1
        job = _Job(
            chat_id=target,
            text=text,
            reply_markup=reply_markup,
            future=future,
            seq=self._seq,
            enqueued_at=self._clock.monotonic(),
            edit_id=edit_id,
            document=document,
        )
        self._unfinished += 1
        self._idle.clear()
        chat = self._chat(target)
        chat.queue.append(job)
        self._schedule(chat)
        logger.debug("queued message %s for chat %s", job.seq, target)
        return future

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Delivery:
        """Queues a message and waits until it is delivered or given up on."""
        # Shielded: a caller that stops waiting does not withdraw a message that may be
        # in flight already.
        return await asyncio.shield(self.submit(chat_id, text, reply_markup=reply_markup))

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Delivery:
        """Edits a message the bot sent, paced like a new one; waits for the outcome.

        An edit that changes nothing ("message is not modified") counts as delivered."""
        return await asyncio.shield(
            self.submit(chat_id, text, reply_markup=reply_markup, edit_id=message_id)
        )

    async def send_document(
        self,
        chat_id: int,
        document: BufferedInputFile,
        *,
        caption: str,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Delivery:
        """Sends a file with an HTML caption; waits for the outcome."""
        return await asyncio.shield(
            self.submit(chat_id, caption, reply_markup=reply_markup, document=document)
        )

    async def to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Delivery:
        if self._admin_chat_id is None:
            return Delivery.SKIPPED
        return await self.send(self._admin_chat_id, text, reply_markup=reply_markup)

    def post(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Queues a message and returns at once; its outcome is only logged.

        Nobody holds the future, so nobody can withdraw the message, and it always resolves
        with a result (never an exception): nothing is left unretrieved.
        """
        self.submit(chat_id, text, reply_markup=reply_markup).add_done_callback(_log_outcome)

    def post_to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> bool:
        """Queues a message for the admin chat; False (nothing queued) when there is none."""
        if self._admin_chat_id is None:
            return False
        self.post(self._admin_chat_id, text, reply_markup=reply_markup)
        return True

    # -------------------------------------------------------------------- scheduler

    async def _run(self) -> None:
        # Every send task starts from this task's context: the session's own retry steps aside.
        SELF_PACED.set(True)
        failures = 0
        while True:
            dispatched = self._dispatched
            try:
                await self._schedule_forever()
            except Exception:
                # A bug must not end every later alert: log it, wait, go on. The queues stay
                # as they are (a message that trips the bug gives up after its attempts).
                failures = 1 if self._dispatched != dispatched else failures + 1
                delay = min(RESTART_BASE * 2 ** (failures - 1), RESTART_MAX)
                logger.exception(
                    "notifier scheduler failed (%s in a row); going on in %.0f s", failures, delay
                )
                await self._clock.sleep(delay)

    async def _schedule_forever(self) -> None:
        while True:
            # Cleared before looking at the state: anything that changes it afterwards sets
            # the event again, so no wake-up is lost.
            self._wake.clear()
            now = self._clock.monotonic()
            self._prune(now)
            if self._in_flight >= MAX_IN_FLIGHT:
                await self._nap(None)
                continue
            top = self._peek()
            if top is None:
                await self._nap(None)
                continue
            ready_at = max(top[0], self._paused_until, self._next_token_at)
            if ready_at > now:
                await self._nap(ready_at - now)
                continue
            heapq.heappop(self._ready)
            chat = self._chats[top[2]]
            chat.key = None
            try:
                await self._dispatch(chat)
            except Exception:
                self._undo_dispatch(chat)
                raise

    def _undo_dispatch(self, chat: _Chat) -> None:
        """After a bug in `_dispatch`: the chat is free again unless a send task owns it, and
        its head message counts one attempt, so a message that trips the bug cannot block
        its chat for ever."""
        if chat.chat_id in self._owned:
            return
        if chat.queue:
            job = chat.queue[0]
            job.attempts += 1
            if job.attempts >= self._attempts:
                chat.queue.popleft()
                logger.warning("message not sent: the scheduler failed on it")
                self._finish(job, Delivery.FAILED)
        self._release(chat)

    def _peek(self) -> tuple[float, int, int] | None:
        """The ready-heap's first live entry; stale ones are dropped on the way."""
        while self._ready:
            eligible_at, seq, chat_id = self._ready[0]
            chat = self._chats.get(chat_id)
            if chat is not None and chat.key == (eligible_at, seq):
                return self._ready[0]
            heapq.heappop(self._ready)
        return None

    async def _dispatch(self, chat: _Chat) -> None:
        chat.busy = True
        while chat.queue and chat.queue[0].future.done():
            self._finish(chat.queue.popleft(), Delivery.SKIPPED)  # withdrawn by the caller
        if not chat.queue:
            self._release(chat)
            return
        job = chat.queue[0]
        if not chat.is_group and not await self._is_active(job.chat_id):
            chat.queue.popleft()
            logger.debug("chat %s is inactive: message %s skipped", job.chat_id, job.seq)
            self._finish(job, Delivery.SKIPPED)
            self._release(chat)
            return
        now = self._clock.monotonic()
        if now < self._paused_until:
            # A 429 elsewhere paused everything while the user row was being read.
            self._release(chat)
            return
        if self._shared is not None and not await self._shared_slot(chat):
            return
        now = self._clock.monotonic()
        self._next_token_at = max(now, self._next_token_at) + self._interval
        chat.next_at = now + self._per_chat_interval
        if chat.is_group:
            chat.recent.append(now)
            while len(chat.recent) > self._group_per_minute:
                chat.recent.popleft()
            if len(chat.recent) == self._group_per_minute:
                chat.next_at = max(chat.next_at, chat.recent[0] + GROUP_WINDOW)
        task = asyncio.create_task(self._deliver(chat, job), name=f"notifier-send-{job.seq}")
        self._in_flight += 1
        self._dispatched += 1
        self._owned.add(chat.chat_id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shared_slot(self, chat: _Chat) -> bool:
        """Takes the send's slot from the replicas' shared limit; when it must wait, the chat
        (or, when another replica took the bot's slot, every chat) waits and is released."""
        assert self._shared is not None
        group_limit = self._group_per_minute if chat.is_group else 0
        slot = await self._shared.take(chat.chat_id, group_limit=group_limit)
        if slot.wait is Wait.NONE:
            return True
        until = self._clock.monotonic() + slot.seconds
        if slot.wait is Wait.BOT:
            self._next_token_at = max(self._next_token_at, until)
        else:
            chat.next_at = max(chat.next_at, until)
        self._release(chat)
        return False

    async def _deliver(self, chat: _Chat, job: _Job) -> None:
        try:
            await self._attempt(chat, job)
        finally:
            self._in_flight -= 1
            self._owned.discard(chat.chat_id)
            self._release(chat)

    async def _attempt(self, chat: _Chat, job: _Job) -> None:
        """One request for the chat's head job; resolves it, or leaves it queued for a retry."""
        logger.debug("sending message %s to chat %s", job.seq, job.chat_id)
        try:
            await self._request(job)
        except TelegramRetryAfter as exc:
            metrics.NOTIFIER_429.inc()
            self._flood_control(chat, float(exc.retry_after))
            self._retry_or_give_up(chat, job, "flood control")
        except TelegramMigrateToChat as exc:
            self._migrate(chat, job, exc.migrate_to_chat_id)
        except TelegramForbiddenError as exc:
            await self._blocked(chat, job, exc.message)
        except _FINAL_ERRORS as exc:
            chat.queue.popleft()
            logger.warning("message not sent (%s): %s", type(exc).__name__, exc.message)
            logger.debug("message %s to chat %s failed for good", job.seq, job.chat_id)
            self._finish(job, Delivery.FAILED)
        except (TelegramAPIError, ClientDecodeError) as exc:
            # 5xx, network errors, timeouts, garbled answers: the message may have been posted
            # before the error (a lost answer). Edits are repeated; a new message only when the
            # request provably never reached Telegram, so that nobody reads an alert twice.
            if not repeat_is_harmless(job.edit_id is None, exc):
                chat.queue.popleft()
                logger.warning(
                    "message may have been delivered (%s): not repeated", type(exc).__name__
                )
                logger.debug("message %s to chat %s: outcome unknown", job.seq, job.chat_id)
                self._finish(job, Delivery.FAILED)
                return
            delay = min(BACKOFF_BASE * 2**job.attempts, BACKOFF_MAX)
            chat.next_at = max(chat.next_at, self._clock.monotonic() + delay)
            self._retry_or_give_up(chat, job, type(exc).__name__)
        except Exception:
            chat.queue.popleft()
            logger.exception("unexpected error sending a message")
            self._finish(job, Delivery.FAILED)
        else:
            chat.queue.popleft()
            self._finish(job, Delivery.DELIVERED)

    async def _request(self, job: _Job) -> None:
        if job.document is not None:
            await self._bot.send_document(
                chat_id=job.chat_id,
                document=job.document,
                caption=job.text,
                reply_markup=job.reply_markup,
                parse_mode=ParseMode.HTML,
            )
        elif job.edit_id is not None:
            try:
                await self._bot.edit_message_text(
                    text=job.text,
                    chat_id=job.chat_id,
                    message_id=job.edit_id,
                    reply_markup=job.reply_markup,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=_NO_PREVIEW,
                )
            except TelegramBadRequest as exc:
                # A progress report without news: the message already says this.
                if "message is not modified" not in exc.message:
                    raise
        else:
            await self._bot.send_message(
                chat_id=job.chat_id,
                text=job.text,
                reply_markup=job.reply_markup,
                parse_mode=ParseMode.HTML,
                link_preview_options=_NO_PREVIEW,
            )

    def _retry_or_give_up(self, chat: _Chat, job: _Job, reason: str) -> None:
        job.attempts += 1
        if job.attempts < self._attempts:
            logger.debug(
                "message %s to chat %s: %s, retry at %.2f",
                job.seq,
                job.chat_id,
                reason,
                chat.next_at,
            )
            return
        chat.queue.popleft()
        logger.warning("message not sent: %s after %s attempts", reason, job.attempts)
        logger.debug("gave up on message %s to chat %s", job.seq, job.chat_id)
        self._finish(job, Delivery.FAILED)

    def _flood_control(self, chat: _Chat, retry_after: float) -> None:
        """Holds the chat for `retry_after`; holds every chat when it looks global.

        Telegram does not say whether a 429 is about the chat or the bot as a whole. A 429 on
        a second chat while another one is still waiting out its own means the bot is over
        the overall limit (other traffic shares it: handlers' replies), so everything pauses.
        """
        now = self._clock.monotonic()
        until = now + retry_after
        self._flooded = {cid: end for cid, end in self._flooded.items() if end > now}
        looks_global = any(cid != chat.chat_id for cid in self._flooded)
        self._flooded[chat.chat_id] = max(until, self._flooded.get(chat.chat_id, until))
        chat.next_at = max(chat.next_at, until)
        if looks_global:
            self._paused_until = max(self._paused_until, until)
            logger.warning(
                "flood control on several chats: pausing all sends for %s s", retry_after
            )
        else:
            logger.warning("flood control: one chat waits %s s", retry_after)
            logger.debug("flood control on chat %s", chat.chat_id)

    def _migrate(self, chat: _Chat, job: _Job, new_id: int) -> None:
        """A group became a supergroup: its queued messages go to the new id, the failed one
        first. https://core.telegram.org/bots/api#responseparameters"""
        old_id = job.chat_id
        self._migrated[old_id] = new_id
        if self._admin_chat_id == old_id:
            self._admin_chat_id = new_id
            logger.warning(
                "admin chat %s became supergroup %s: notices go there now", old_id, new_id
            )
        else:
            logger.info("group %s became supergroup %s", old_id, new_id)
        job.attempts += 1
        if job.attempts >= self._attempts:  # a chain of migrations cannot loop forever
            chat.queue.popleft()
            self._finish(job, Delivery.FAILED)
        moved = list(chat.queue)
        chat.queue.clear()
        for moved_job in moved:
            moved_job.chat_id = new_id
        target = self._chat(new_id)
        # The target may be sending a message queued straight to the new id: that one stays
        # first, the rest go in submission order.
        head = [target.queue.popleft()] if target.busy and target.queue else []
        target.queue = deque([*head, *sorted([*target.queue, *moved], key=lambda j: j.seq)])
        self._schedule(target)

    async def _blocked(self, chat: _Chat, job: _Job, description: str) -> None:
        chat.queue.popleft()
        self._finish(job, Delivery.BLOCKED)
        if not chat.is_group:
            # Nothing was delivered, so there is nothing to space from: the next message is
            # skipped at once (or sent at once, should the user have come back).
            chat.next_at = -math.inf
        # Messages queued before the 403 would only fail the same way.
        while chat.queue:
            self._finish(chat.queue.popleft(), Delivery.SKIPPED)
        if chat.is_group:
            logger.warning("bot cannot write to group %s: %s", job.chat_id, description)
            return
        logger.info("a user blocked the bot or was deactivated: marking them inactive")
        logger.debug("chat %s: %s", job.chat_id, description)
        try:
            await self._users.set_active(job.chat_id, False)
        except Exception:
            logger.exception("could not mark a user inactive")

    # ---------------------------------------------------------------------- helpers

    async def _is_active(self, user_id: int) -> bool:
        try:
            row = await self._users.get(user_id)
        except Exception:
            logger.exception("could not read a user row; sending anyway")
            return True
        # No row (an admin who never wrote to the bot, say): nothing says they blocked it.
        return row is None or row.is_active

    def _current_id(self, chat_id: int) -> int:
        seen = {chat_id}
        while chat_id in self._migrated:
            chat_id = self._migrated[chat_id]
            if chat_id in seen:
                break
            seen.add(chat_id)
        return chat_id

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id)
        return chat

    def _release(self, chat: _Chat) -> None:
        chat.busy = False
        self._schedule(chat)
        self._wake.set()

    def _schedule(self, chat: _Chat) -> None:
        """Puts the chat on the ready heap when it has a message and nothing in flight."""
        if chat.busy or not chat.queue:
            chat.key = None
            return
        head = chat.queue[0]
        # Ready chats go in the order they became ready: fair between a broadcast and an alert.
        key = (max(chat.next_at, head.enqueued_at), head.seq)
        if key == chat.key:
            return
        chat.key = key
        heapq.heappush(self._ready, (key[0], key[1], chat.chat_id))
        self._wake.set()

    def _finish(self, job: _Job, outcome: Delivery) -> None:
        if job.finished:
            return
        job.finished = True
        if not job.future.done():
            job.future.set_result(outcome)
        logger.debug("message %s to chat %s: %s", job.seq, job.chat_id, outcome)
        self._unfinished -= 1
        if self._unfinished == 0:
            self._idle.set()

    def _prune(self, now: float) -> None:
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        stale = [
            chat_id
            for chat_id, chat in self._chats.items()
            if not chat.queue
            and not chat.busy
            and chat.next_at <= now
            and (not chat.recent or chat.recent[-1] + GROUP_WINDOW <= now)
        ]
        for chat_id in stale:
            del self._chats[chat_id]

    async def _nap(self, seconds: float | None) -> None:
        """Sleeps until `seconds` pass (None: indefinitely) or the state changes."""
        if seconds is None:
            await self._wake.wait()
        else:
            await self._wait(self._wake, seconds)

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        """Until the event is set or `seconds` of the notifier's clock pass."""
        waiters = [
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._clock.sleep(seconds)),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _log_outcome(future: asyncio.Future[Delivery]) -> None:
    if not future.cancelled():
        logger.debug("posted message: %s", future.result())
