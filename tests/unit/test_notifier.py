"""The paced notifier on virtual time (tests/support/virtual_time.py) and a fake bot that
records each request: minutes of pacing run instantly and always the same way.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import ConnectionTimeoutError

from bot.notices.notifier import Delivery, Notifier
from storage import UserRepo, UserRow
from tests.support.virtual_time import FakeClock

# Comparisons of virtual times tolerate float rounding of repeated 1/rate steps.
EPS: Final = 1e-9


@dataclass(frozen=True)
class Call:
    chat_id: int
    text: str
    at: float  # virtual time the request was made
    ok: bool
    kwargs: dict[str, Any]


ErrorFactory = Callable[[SendMessage], Exception]


def retry_after(seconds: int) -> ErrorFactory:
    return lambda m: TelegramRetryAfter(m, f"Too Many Requests: retry after {seconds}", seconds)


def bad_request(description: str) -> ErrorFactory:
    return lambda m: TelegramBadRequest(m, description)


def server_error(m: SendMessage) -> Exception:
    return TelegramServerError(m, "Internal Server Error")


def network_error(m: SendMessage) -> Exception:
    """The connection itself failed: the request never reached Telegram."""
    error = TelegramNetworkError(m, "ConnectionTimeoutError: connect timed out")
    error.__cause__ = ConnectionTimeoutError()
    return error


def lost_answer(m: SendMessage) -> Exception:
    """The request went out, the answer never came: the message may be posted."""
    return TelegramNetworkError(m, "Request timeout error")


class FakeBot:
    """Records send_message calls with virtual timestamps; answers with scripted errors."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[Call] = []
        self.errors: dict[int, list[ErrorFactory]] = defaultdict(list)
        self.blocked: set[int] = set()
        self.migrated: dict[int, int] = {}
        self.latency: dict[int, float] = {}

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> object:
        at = self.clock.monotonic()
        if chat_id in self.latency:
            await self.clock.sleep(self.latency[chat_id])
        method = SendMessage(chat_id=chat_id, text=text)
        error: Exception | None = None
        if self.errors[chat_id]:
            error = self.errors[chat_id].pop(0)(method)
        elif chat_id in self.blocked:
            error = TelegramForbiddenError(method, "Forbidden: bot was blocked by the user")
        elif chat_id in self.migrated:
            error = TelegramMigrateToChat(
                method,
                "Bad Request: group chat was upgraded to a supergroup chat",
                self.migrated[chat_id],
            )
        self.calls.append(Call(chat_id, text, at, error is None, kwargs))
        if error is not None:
            raise error
        return object()

    def to(self, chat_id: int) -> list[Call]:
        return [call for call in self.calls if call.chat_id == chat_id]

    def delivered(self, chat_id: int) -> list[str]:
        return [call.text for call in self.to(chat_id) if call.ok]


class FakeUsers:
    """UserRepo's get/set_active over a dict."""

    def __init__(self, *user_ids: int) -> None:
        self.active = dict.fromkeys(user_ids, True)
        self.set_active_calls: list[tuple[int, bool]] = []

    async def get(self, user_id: int) -> UserRow | None:
        if user_id not in self.active:
            return None
        return UserRow(
            id=user_id,
            language="en",
            first_name="User",
            username=None,
            sender=None,
            is_active=self.active[user_id],
            created_at="2026-01-01T00:00:00+00:00",
            last_seen_at="2026-01-01T00:00:00+00:00",
        )

    async def set_active(self, user_id: int, active: bool) -> bool:
        self.set_active_calls.append((user_id, active))
        if user_id not in self.active:
            return False
        self.active[user_id] = active
        return True


def max_in_window(times: list[float], window: float) -> int:
    """The most sends in any half-open window [t, t + window)."""
    ordered = sorted(times)
    return max(
        (
            sum(1 for other in ordered if start <= other < start + window - EPS)
            for start in ordered
        ),
        default=0,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bot(clock: FakeClock) -> FakeBot:
    return FakeBot(clock)


@pytest.fixture
def users() -> FakeUsers:
    return FakeUsers(*range(1, 200))


MakeNotifier = Callable[..., Awaitable[Notifier]]


@pytest.fixture
async def make_notifier(
    clock: FakeClock, bot: FakeBot, users: FakeUsers
) -> AsyncIterator[MakeNotifier]:
    created: list[Notifier] = []

    async def make(**options: Any) -> Notifier:
        notifier = Notifier(cast(Bot, bot), cast(UserRepo, users), clock=clock, **options)
        await notifier.start()
        created.append(notifier)
        return notifier

    yield make
    for notifier in created:
        await clock.run(notifier.stop(drain=0))


@pytest.fixture
async def notifier(make_notifier: MakeNotifier) -> Notifier:
    return await make_notifier(admin_chat_id=-4001)


async def send_all(
    clock: FakeClock, notifier: Notifier, messages: list[tuple[int, str]]
) -> list[Delivery]:
    futures = [notifier.submit(chat_id, text) for chat_id, text in messages]
    return list(await clock.run(asyncio.gather(*futures)))


# --------------------------------------------------------------------------- pacing


async def test_a_broadcast_to_100_chats_goes_out_at_25_per_second(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    results = await send_all(clock, notifier, [(chat, f"news {chat}") for chat in range(1, 101)])

    assert results == [Delivery.DELIVERED] * 100
    assert sorted(call.chat_id for call in bot.calls) == list(range(1, 101))
    times = [call.at for call in bot.calls]
    assert max_in_window(times, 1.0) <= 25
    # 100 messages, one every 40 ms: the last one leaves just under 4 s in, not in a burst.
    assert 3.8 <= times[-1] <= 4.1
    assert clock.now == pytest.approx(times[-1])


async def test_messages_to_one_chat_keep_order_one_second_apart(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    results = await send_all(clock, notifier, [(7, f"step {n}") for n in range(5)])

    assert results == [Delivery.DELIVERED] * 5
    assert bot.delivered(7) == [f"step {n}" for n in range(5)]
    times = [call.at for call in bot.to(7)]
    assert all(later - earlier >= 1.0 - EPS for earlier, later in itertools.pairwise(times))


async def test_a_group_gets_at_most_20_messages_a_minute(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    group = -1001234
    results = await send_all(clock, notifier, [(group, f"alert {n}") for n in range(45)])

    assert results == [Delivery.DELIVERED] * 45
    assert bot.delivered(group) == [f"alert {n}" for n in range(45)]
    times = [call.at for call in bot.to(group)]
    assert max_in_window(times, 60.0) <= 20
    assert times[20] - times[0] >= 60.0 - EPS
    # Not slower than needed either: the third batch starts two minutes in.
    assert times[40] == pytest.approx(120.0, abs=1.0)


async def test_a_chat_under_flood_control_does_not_hold_back_others(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.errors[1] = [retry_after(30)]
    messages = [(1, f"first {n}") for n in range(3)] + [(chat, "hi") for chat in range(2, 12)]

    results = await send_all(clock, notifier, messages)

    assert results == [Delivery.DELIVERED] * 13
    assert max(call.at for call in bot.calls if call.chat_id != 1) < 1.0
    assert bot.delivered(1) == ["first 0", "first 1", "first 2"]
    assert min(call.at for call in bot.to(1) if call.ok) >= 30.0


async def test_a_slow_request_does_not_hold_back_other_chats(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.latency[1] = 20.0

    results = await send_all(clock, notifier, [(1, "a"), (1, "b"), (2, "c"), (3, "d")])

    assert results == [Delivery.DELIVERED] * 4
    assert bot.to(2)[0].at < 1.0
    assert bot.to(3)[0].at < 1.0
    # The chat's next message waits for the slow one: order over speed.
    assert [call.text for call in bot.to(1)] == ["a", "b"]
    assert bot.to(1)[1].at >= 20.0


# ----------------------------------------------------------------------- Telegram errors


async def test_retry_after_waits_that_long_then_delivers_exactly_once(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.errors[5] = [retry_after(3)]

    result = await clock.run(notifier.send(5, "your SMS was delivered"))

    assert result == Delivery.DELIVERED
    first, second = bot.to(5)
    assert not first.ok and second.ok
    assert second.at - first.at == pytest.approx(3.0, abs=0.05)
    assert bot.delivered(5) == ["your SMS was delivered"]


async def test_flood_control_on_two_chats_pauses_every_chat(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.errors[1] = [retry_after(5)]
    bot.errors[2] = [retry_after(5)]

    results = await send_all(clock, notifier, [(1, "a"), (2, "b"), (3, "c")])

    assert results == [Delivery.DELIVERED] * 3
    # Chat 3 never got a 429 itself, yet it waited: the limit looked bot-wide.
    assert bot.to(3)[0].at >= 5.0
    assert [bot.delivered(chat) for chat in (1, 2, 3)] == [["a"], ["b"], ["c"]]


async def test_flood_control_that_never_ends_fails_after_the_attempts(
    clock: FakeClock, bot: FakeBot, make_notifier: MakeNotifier
) -> None:
    notifier = await make_notifier(attempts=3)
    bot.errors[5] = [retry_after(2)] * 10

    assert await clock.run(notifier.send(5, "x")) == Delivery.FAILED
    assert len(bot.to(5)) == 3


async def test_a_user_who_blocked_the_bot_is_marked_inactive_and_skipped_later(
    clock: FakeClock, bot: FakeBot, users: FakeUsers, notifier: Notifier
) -> None:
    bot.blocked.add(42)

    results = await send_all(clock, notifier, [(42, "one"), (42, "two"), (43, "other")])
    later = await clock.run(notifier.send(42, "three"))

    assert results == [Delivery.BLOCKED, Delivery.SKIPPED, Delivery.DELIVERED]
    assert later == Delivery.SKIPPED
    assert clock.now < 0.5  # skipped at once, not after the chat's one-second spacing
    assert len(bot.to(42)) == 1  # the skipped ones never reached Telegram
    assert users.set_active_calls == [(42, False)]
    assert users.active[42] is False


async def test_a_user_who_came_back_gets_messages_again(
    clock: FakeClock, bot: FakeBot, users: FakeUsers, notifier: Notifier
) -> None:
    bot.blocked.add(42)
    assert await clock.run(notifier.send(42, "one")) == Delivery.BLOCKED
    # They unblocked the bot and wrote to it: the user middleware marks them active again.
    bot.blocked.clear()
    users.active[42] = True

    assert await clock.run(notifier.send(42, "two")) == Delivery.DELIVERED
    assert bot.delivered(42) == ["two"]


async def test_admin_notices_follow_a_group_migrated_to_a_supergroup(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.migrated[-4001] = -1004001

    results = await send_all(clock, notifier, [(-4001, "gateway down"), (-4001, "still down")])

    assert results == [Delivery.DELIVERED, Delivery.DELIVERED]
    assert notifier.admin_chat_id == -1004001
    assert bot.delivered(-1004001) == ["gateway down", "still down"]
    assert len(bot.to(-4001)) == 1

    assert await clock.run(notifier.to_admins("back up")) == Delivery.DELIVERED
    assert bot.delivered(-1004001)[-1] == "back up"
    assert len(bot.to(-4001)) == 1  # straight to the new id now


async def test_admin_notices_without_an_admin_chat_are_skipped(
    clock: FakeClock, bot: FakeBot, make_notifier: MakeNotifier
) -> None:
    notifier = await make_notifier()

    assert notifier.admin_chat_id is None
    assert await clock.run(notifier.to_admins("hello")) == Delivery.SKIPPED
    assert bot.calls == []


async def test_chat_not_found_fails_at_once_without_retries(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.errors[-777] = [bad_request("Bad Request: chat not found")]

    results = await send_all(clock, notifier, [(-777, "x"), (8, "y")])

    assert results == [Delivery.FAILED, Delivery.DELIVERED]
    assert len(bot.to(-777)) == 1


async def test_requests_that_never_reached_telegram_are_retried_with_growing_pauses(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.errors[9] = [network_error, network_error]

    assert await clock.run(notifier.send(9, "balance is low")) == Delivery.DELIVERED
    times = [call.at for call in bot.to(9)]
    assert [call.ok for call in bot.to(9)] == [False, False, True]
    assert times[2] - times[1] > times[1] - times[0] >= 1.0 - EPS


async def test_a_message_that_may_have_been_posted_is_not_sent_again(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.errors[9] = [server_error]
    bot.errors[10] = [lost_answer]

    assert await clock.run(notifier.send(9, "balance is low")) == Delivery.FAILED
    assert await clock.run(notifier.send(10, "balance is low")) == Delivery.FAILED
    assert len(bot.to(9)) == len(bot.to(10)) == 1


async def test_network_errors_fail_after_the_attempts(
    clock: FakeClock, bot: FakeBot, make_notifier: MakeNotifier
) -> None:
    notifier = await make_notifier(attempts=3)
    bot.errors[9] = [network_error] * 10

    assert await clock.run(notifier.send(9, "x")) == Delivery.FAILED
    assert len(bot.to(9)) == 3


# ------------------------------------------------------------------ format and lifecycle


async def test_messages_go_as_html_without_link_previews_with_their_buttons(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Open", callback_data="h:1")]]
    )

    await clock.run(notifier.send(3, "<b>Sent</b> https://devsms.uz", reply_markup=markup))

    (call,) = bot.calls
    assert call.kwargs["parse_mode"] == "HTML"
    assert call.kwargs["link_preview_options"].is_disabled is True
    assert call.kwargs["reply_markup"] is markup


async def test_a_withdrawn_message_is_not_sent(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    first = notifier.submit(3, "first")
    withdrawn = notifier.submit(3, "second")
    withdrawn.cancel()
    last = notifier.submit(3, "third")

    await clock.run(asyncio.gather(first, last))

    assert bot.delivered(3) == ["first", "third"]


async def test_a_caller_that_stops_waiting_does_not_withdraw_the_message(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    await clock.run(notifier.send(3, "first"))
    waiting = asyncio.ensure_future(notifier.send(3, "second"))
    await asyncio.sleep(0)
    waiting.cancel()

    await clock.run(notifier.send(4, "to someone else"))  # lets virtual time pass
    await clock.run(notifier.send(3, "third"))

    assert bot.delivered(3) == ["first", "second", "third"]


async def test_stop_delivers_what_is_queued(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    futures = [notifier.submit(3, f"m{n}") for n in range(3)]

    await clock.run(notifier.stop(drain=5.0))

    assert [future.result() for future in futures] == [Delivery.DELIVERED] * 3
    assert bot.delivered(3) == ["m0", "m1", "m2"]
    assert clock.now == pytest.approx(2.0)  # returned as soon as the queue was empty


async def test_stop_gives_up_after_the_drain_time_and_resolves_every_caller(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    futures = [notifier.submit(3, f"m{n}") for n in range(10)]

    await clock.run(notifier.stop(drain=3.5))

    assert clock.now == pytest.approx(3.5)
    results = [future.result() for future in futures]
    assert results == [Delivery.DELIVERED] * 4 + [Delivery.FAILED] * 6
    assert bot.delivered(3) == ["m0", "m1", "m2", "m3"]
    # After stop nothing is sent, and nobody waits forever.
    assert await clock.run(notifier.send(3, "late")) == Delivery.FAILED
    assert len(bot.calls) == 4


async def test_stop_without_drain_fails_a_request_in_flight_instead_of_hanging(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    bot.latency[3] = 30.0
    future = notifier.submit(3, "slow")
    await clock.run(clock.sleep(1.0))  # the request is on its way now

    await clock.run(notifier.stop(drain=0))

    assert future.result() == Delivery.FAILED
    assert clock.now == pytest.approx(1.0)


# ------------------------------------------------------------- fire and forget, faults


async def test_post_returns_at_once_and_the_message_still_goes_out(
    clock: FakeClock, bot: FakeBot, notifier: Notifier
) -> None:
    for n in range(3):
        notifier.post(-4001, f"notice {n}")  # returns without waiting for the group's pace
    assert notifier.post_to_admins("to the admins")
    assert bot.calls == []

    await clock.run(notifier.stop(drain=600))

    assert bot.delivered(-4001) == ["notice 0", "notice 1", "notice 2", "to the admins"]


async def test_post_to_admins_without_an_admin_chat_queues_nothing(
    clock: FakeClock, bot: FakeBot, make_notifier: MakeNotifier
) -> None:
    notifier = await make_notifier()
    assert not notifier.post_to_admins("nobody reads this")
    await clock.run(notifier.stop(drain=5))
    assert bot.calls == []


async def test_a_bug_in_the_scheduler_is_logged_and_later_messages_still_go_out(
    clock: FakeClock,
    bot: FakeBot,
    notifier: Notifier,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    peek = notifier._peek
    faults = 0

    def faulty() -> tuple[float, int, int] | None:
        nonlocal faults
        if faults == 0:
            faults += 1
            raise RuntimeError("injected scheduler bug")
        return peek()

    monkeypatch.setattr(notifier, "_peek", faulty)
    assert (
        await send_all(clock, notifier, [(1, "first"), (2, "second")]) == [Delivery.DELIVERED] * 2
    )
    assert "injected scheduler bug" in caplog.text
    # Not only what was queued when it happened: everything afterwards too.
    assert await clock.run(notifier.send(3, "later")) == Delivery.DELIVERED
    assert bot.delivered(3) == ["later"]


async def test_a_scheduler_bug_that_repeats_backs_off_instead_of_spinning(
    clock: FakeClock, bot: FakeBot, notifier: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    peek = notifier._peek
    faults = 0

    def faulty() -> tuple[float, int, int] | None:
        nonlocal faults
        if clock.now < 100.0:  # broken for the first 100 s of (virtual) time
            faults += 1
            raise RuntimeError("injected scheduler bug")
        return peek()

    monkeypatch.setattr(notifier, "_peek", faulty)
    assert await clock.run(notifier.send(1, "after the bug")) == Delivery.DELIVERED
    # 1 + 2 + 4 + ... s between tries, capped at a minute: a handful, not thousands.
    assert 3 <= faults <= 10
    assert bot.calls[0].at < 100.0 + 60.0 + EPS


async def test_a_message_that_trips_a_scheduler_bug_fails_alone(
    clock: FakeClock, bot: FakeBot, notifier: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    is_active = notifier._is_active

    async def faulty(user_id: int) -> bool:
        if user_id == 5:
            raise RuntimeError("injected: this chat breaks the scheduler")
        return await is_active(user_id)

    monkeypatch.setattr(notifier, "_is_active", faulty)
    results = await send_all(clock, notifier, [(5, "poison"), (6, "fine"), (5, "poison 2")])

    assert results == [Delivery.FAILED, Delivery.DELIVERED, Delivery.FAILED]
    assert bot.delivered(6) == ["fine"]


async def test_posts_before_start_wait_for_it_and_leave_nothing_unretrieved(
    clock: FakeClock, bot: FakeBot, users: FakeUsers, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(cast(Bot, bot), cast(UserRepo, users), clock=clock, admin_chat_id=-4001)
    notifier.post(1, "early")  # a handler during start-up
    notifier.post_to_admins("early notice")
    await notifier.start()
    await clock.run(notifier.stop(drain=10))
    notifier.post(2, "after stop")  # resolved FAILED at once, with a warning

    assert bot.delivered(1) == ["early"]
    assert bot.delivered(-4001) == ["early notice"]
    assert bot.to(2) == []
    assert "a message was not queued" in caplog.text
    assert "never retrieved" not in caplog.text
