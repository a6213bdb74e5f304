"""Admin commands, broadcasts, ACCESS_MODE=allowlist and foreign groups, through the Dispatcher."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import LeaveChat
from aiogram.types import (
    CallbackQuery,
    Chat,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberUpdated,
    ForceReply,
    Message,
    User,
)

from bot.factory import create_dispatcher
from bot.notices.digest import AdminDigest
from bot.notices.notifier import Notifier
from handlers.access import announce_token
from handlers.admin import period_starts, total_cost
from services.bulk import BulkRunner
from tests.conftest import GOOD_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.notifiers import ImmediateNotifier, immediate_app, install, wire
from tests.support.recording import BOT_USER, SentMessage

ADMIN = 999_000  # above the seeded users' ids: the admin's row sorts after them
GROUP = -100_500  # ADMIN_CHAT_ID
FOREIGN = -100_777
UNKNOWN_COMMAND = "I do not know this command. /help lists what I can do."
POLITE = "This bot is private; your request was sent to the administrators."


@dataclass
class AdminApp:
    app: Harness
    notifier: ImmediateNotifier

    async def group(
        self, text: str, user_id: int = ADMIN, chat_id: int = GROUP
    ) -> list[SentMessage]:
        message = Message(
            message_id=next(self.app._ids),
            date=dt.datetime.now(dt.UTC),
            chat=Chat(id=chat_id, type="supergroup", title="Some group"),
            from_user=self.app.user(user_id, "en"),
            text=text,
        )
        return await self.app.feed(message=message)

    async def tap_in_group(self, sent: SentMessage, label: str, user_id: int) -> list[SentMessage]:
        # The harness's taps come from private chats; this one comes from the group.
        message = Message(
            message_id=sent.message_id,
            date=dt.datetime.now(dt.UTC),
            chat=Chat(id=sent.chat_id, type="supergroup", title="Admins"),
            from_user=BOT_USER,
            text=sent.text,
            reply_markup=sent.reply_markup,
        )
        query = CallbackQuery(
            id=f"q{next(self.app._ids)}",
            from_user=self.app.user(user_id, "en"),
            chat_instance="ci",
            data=button_data(sent, label),
            message=message,
        )
        return await self.app.feed(callback_query=query)

    async def settled(self, update: Awaitable[object]) -> list[SentMessage]:
        """What the bot sent or edited for an update, with the messages it posted meanwhile
        (they go out after the handler returned)."""
        session = self.app.session
        before = {key: (m.text, m.edits) for key, m in session.messages.items()}
        await update
        await self.notifier.settle()
        return [m for key, m in session.messages.items() if before.get(key) != (m.text, m.edits)]

    async def send(self, text: str, user_id: int) -> list[SentMessage]:
        return await self.settled(self.app.send(text, user_id))

    async def connect(self, user_id: int) -> None:
        await self.app.send("/start", user_id)
        await self.app.send(GOOD_TOKEN, user_id)
        await self.notifier.settle()  # the admin notice, sent after the handler returned


AppFactory = Callable[..., AbstractAsyncContextManager[AdminApp]]


@pytest.fixture
def make_app(tmp_path: Path, devsms: FakeDevsms) -> AppFactory:
    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[AdminApp]:
        # Admin notices speak DEFAULT_LANGUAGE; English keeps these assertions readable.
        values: dict[str, Any] = {
            "admin_ids": (ADMIN,),
            "admin_chat_id": GROUP,
            "default_language": "en",
        }
        values.update(overrides)
        settings = make_settings(tmp_path, devsms.url, **values)
        async with immediate_app(settings) as (app, notifier):
            yield AdminApp(app, notifier)

    return build


@pytest.fixture
async def admin(make_app: AppFactory) -> AsyncIterator[AdminApp]:
    async with make_app() as built:
        yield built


@pytest.fixture
async def closed(make_app: AppFactory) -> AsyncIterator[AdminApp]:
    async with make_app(access_mode="allowlist") as built:
        yield built


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


# --- Pure helpers -------------------------------------------------------------------------


def test_costs_are_summed_per_currency_and_garbage_is_left_out() -> None:
    assert total_cost([]) == "0 so'm"
    assert total_cost(["50", "1 200", "$0.005", "$0.010", "n/a"]) == "1 250 so'm + $0.015"
    assert total_cost(["$0.005"]) == "$0.005"


def test_periods_start_at_tashkent_midnight_and_the_first_of_the_month() -> None:
    # 02:30 on May 17 in Tashkent is still May 16 in UTC: the day is Tashkent's.
    now = dt.datetime(2024, 5, 16, 21, 30, tzinfo=dt.UTC)
    assert period_starts(now) == ("2024-05-16T19:00:00+00:00", "2024-04-30T19:00:00+00:00")
    # 23:59 on June 1 in Tashkent: June's first day, its month began on May 31 in UTC.
    late = dt.datetime(2024, 6, 1, 18, 59, tzinfo=dt.UTC)
    assert period_starts(late) == ("2024-05-31T19:00:00+00:00", "2024-05-31T19:00:00+00:00")


# --- Who may use admin commands -----------------------------------------------------------


async def test_summary_for_an_admin_in_private_and_in_the_admin_group(admin: AdminApp) -> None:
    app = admin.app
    await admin.connect(1)
    await app.send("/start", user_id=2)
    await app.services.users.set_active(2, False)
    outbox = app.services.outbox
    for cost in ("50", "100", "$0.005"):
        row_id = await outbox.create_pending(1, "998901234567", "Hi", None)
        await outbox.mark_sent(row_id, 1, None, "DELIVERED", 1, cost)
    await outbox.mark_failed(await outbox.create_pending(1, "998901234567", "x", None), "no")
    # A bulk job's rows count too: two sent (1 and 2 parts), one failed.
    bulk = app.services.bulk
    rows = [(n, "998901234567", "Hi", n) for n in (1, 2, 3)]
    job = await bulk.create_job(
        1, template="Hi", sender=None, file_name="a.csv", file_format="csv", rows=rows
    )
    await bulk.finish_row(job, 1, "sent", sms_id=71, status="waiting", cost="50")
    await bulk.finish_row(job, 2, "sent", sms_id=72, status="waiting", cost="100")
    await bulk.finish_row(job, 3, "failed", error="no")

    [private] = await app.send("/admin", user_id=ADMIN)
    assert private.chat_id == ADMIN
    assert "Users: 3, of them blocked the bot: 1" in private.text  # 1, 2 and the admin
    assert "Valid devsms tokens: 1" in private.text
    assert "bulk jobs included (days in Tashkent time)" in private.text
    assert "today: SMS 5, parts 6, cost 300 so'm + $0.005" in private.text
    assert "this month: SMS 5, parts 6, cost 300 so'm + $0.005" in private.text
    assert "Access:" not in private.text  # open mode

    [in_group] = await admin.group("/admin@test_bot")
    assert in_group.chat_id == GROUP
    assert in_group.text == private.text

    [prompt] = await admin.group("/broadcast")
    # Privacy mode hides plain group messages from bots, but not replies to them.
    assert isinstance(prompt.reply_markup, ForceReply)


async def test_non_admins_get_the_unknown_command_answer_and_foreign_groups_nothing(
    admin: AdminApp,
) -> None:
    app = admin.app
    await admin.connect(1)
    for command in ("/admin", "/users", "/broadcast", "/allow 5", "/deny 5"):
        [reply] = await app.send(command, user_id=1)
        assert reply.text == UNKNOWN_COMMAND, command
        [reply] = await admin.group(command, user_id=1)
        assert (reply.chat_id, reply.text) == (GROUP, UNKNOWN_COMMAND)
        assert await admin.group(command, user_id=1, chat_id=FOREIGN) == []
        assert await admin.group(command, user_id=ADMIN, chat_id=FOREIGN) == []
    assert await app.services.users.get_access(5) is None  # /allow did nothing
    # Not left in a broadcast dialog either: a plain text gets the usual answer.
    [reply] = await app.send("hello", user_id=1)
    assert "Use the menu below" in reply.text


# --- /users -------------------------------------------------------------------------------


async def test_users_are_listed_twenty_per_page(admin: AdminApp) -> None:
    app = admin.app
    users = app.services.users
    await users.upsert_seen(1000, "<b>Bold</b> & co", "bold_one")
    for user_id in range(1001, 1044):
        await users.upsert_seen(user_id, f"Name{user_id}", None)
    await app.services.accounts.connect(1000, GOOD_TOKEN)
    await users.set_active(1001, False)
    await users.set_language(1000, "ru")

    [page] = await app.send("/users", user_id=ADMIN)
    assert page.text.startswith("<b>Users</b> 1–20 of 45")
    lines = page.text.split("\n")[2:]
    assert len(lines) == 20
    assert lines[0] == (
        "<code>1000</code> &lt;b&gt;Bold&lt;/b&gt; &amp; co @bold_one · ru · token valid · active"
    )
    assert lines[1] == "<code>1001</code> Name1001 · — · no token · blocked the bot"
    assert labels(page) == ["▶"]

    [page] = await app.tap(page, "▶", user_id=ADMIN)
    assert page.text.startswith("<b>Users</b> 21–40 of 45")
    assert "<code>1020</code>" in page.text and "<code>1019</code>" not in page.text
    assert labels(page) == ["◀", "▶"]

    [page] = await app.tap(page, "▶", user_id=ADMIN)
    assert page.text.startswith("<b>Users</b> 41–45 of 45")
    assert page.text.endswith(f"<code>{ADMIN}</code> User&lt;{ADMIN}&gt; · en · no token · active")
    assert labels(page) == ["◀"]

    [page] = await app.tap(page, "◀", user_id=ADMIN)
    assert page.text.startswith("<b>Users</b> 21–40 of 45")
    # Somebody else cannot page the admins' list.
    assert await app.tap(page, "▶", user_id=1000) == []
    # ... and is told so in the language they chose.
    assert app.answers()[-1].text == "Этой кнопкой могут пользоваться только администраторы."


# --- /broadcast ---------------------------------------------------------------------------


async def test_broadcast_preview_send_report_and_no_second_start(admin: AdminApp) -> None:
    app, notifier = admin.app, admin.notifier
    for user_id in (1, 2, 3):
        await admin.connect(user_id)
    # Each connected token was announced to the admin group once.
    notices = [text for chat, text in notifier.sent if chat == GROUP]
    assert len(notices) == 3 and all("connected a devsms token" in t for t in notices)
    notifier.sent.clear()
    await app.send("/start", user_id=4)  # no token: not a recipient
    await app.services.users.set_active(3, False)  # blocked the bot earlier
    app.session.blocked_chats.add(2)  # blocks it now

    [ask] = await app.send("/broadcast", user_id=ADMIN)
    assert "Send the text of the broadcast" in ask.text
    copy, confirm = await app.send("News & updates", user_id=ADMIN)
    assert copy.text == "News &amp; updates"  # exactly what users will get
    assert "This will go to 2 users" in confirm.text
    assert labels(confirm) == ["📣 Send", "✖️ Cancel"]
    assert notifier.sent == []

    send = button_data(confirm, "Send")
    notifier.gate.clear()  # hold the sends: the tap must return while they wait
    await asyncio.wait_for(app.tap_data(confirm, send, user_id=ADMIN), timeout=5)
    assert app.answers()[-1].text == "Broadcast started."
    report = app.session.messages[(ADMIN, confirm.message_id)]
    assert report.text.startswith("📣 Broadcast in progress: 0 of 2")
    assert report.buttons() == []

    notifier.gate.set()
    await eventually(lambda: "finished" in report.text)
    tally = "📣 Broadcast finished. Recipients: 2\nDelivered: 1, blocked the bot: 1, failed: 0"
    assert report.text == tally
    # The edit makes no sound: the tally also comes as a message, through the notifier.
    await notifier.settle()
    assert sorted(notifier.sent) == [
        (1, "News &amp; updates"),
        (2, "News &amp; updates"),
        (ADMIN, tally),
    ]

    await app.tap_data(confirm, send, user_id=ADMIN)
    assert app.answers()[-1].text == "This button is no longer active."
    # A broadcast shows "in progress" in the handler itself, before any send is scheduled.
    again = app.session.messages[(ADMIN, confirm.message_id)]
    assert again.text.startswith("📣 Broadcast finished. Recipients: 2")
    await notifier.settle()
    assert len(notifier.sent) == 3  # the two messages and the tally: nothing sent again


async def test_a_broadcast_cut_by_a_restart_goes_on_and_sends_nobody_twice(
    admin: AdminApp,
) -> None:
    """A broadcast lived only in memory: a restart at 3,000 of 10,000 lost the rest with no
    record. Now each target is claimed on disk before its message goes out."""
    app = admin.app
    for user_id in (1, 2, 3, 4):
        await admin.connect(user_id)
    await app.send("/broadcast", user_id=ADMIN)
    _copy, confirm = await app.send("News", user_id=ADMIN)
    # What the process that stopped left: user 1 done, user 2 in flight (maybe sent), 3 and
    # 4 not reached yet.
    log = app.services.broadcasts
    broadcast_id = await log.create(
        ADMIN, "News", [1, 2, 3, 4], report=(ADMIN, confirm.message_id), language="en"
    )
    assert await log.claim(broadcast_id) == 1
    await log.settle(broadcast_id, 1, "delivered")
    assert await log.claim(broadcast_id) == 2

    restarted = create_dispatcher(app.services, app.shared)
    notifier = install(restarted, app.bot, GROUP, app.services, admin_ids=(ADMIN,))
    await restarted.emit_startup(bot=app.bot, **restarted.workflow_data)
    report = app.session.messages[(ADMIN, confirm.message_id)]
    await eventually(lambda: "finished" in report.text)
    assert "Recipients: 4" in report.text
    assert "Delivered: 3, blocked the bot: 0, failed: 1" in report.text
    await notifier.settle()
    assert sorted(chat for chat, _ in notifier.sent) == [3, 4, ADMIN]
    # Started again: nothing left to resume, nothing sent.
    await restarted.emit_startup(bot=app.bot, **restarted.workflow_data)
    await notifier.settle()
    assert len(notifier.sent) == 3
    await restarted.emit_shutdown(bot=app.bot)


async def test_broadcast_can_be_cancelled_at_both_steps(admin: AdminApp) -> None:
    app, notifier = admin.app, admin.notifier
    await admin.connect(1)
    notifier.sent.clear()  # the admin notice of the new token
    await app.send("/broadcast", user_id=ADMIN)
    [cancelled] = await app.send("/cancel", user_id=ADMIN)
    assert cancelled.text == "Broadcast cancelled."

    await app.send("/broadcast", user_id=ADMIN)
    _, confirm = await app.send("Never mind", user_id=ADMIN)
    send = button_data(confirm, "Send")
    [edited] = await app.tap(confirm, "Cancel", user_id=ADMIN)
    assert edited.text == "Broadcast cancelled."
    await app.tap_data(confirm, send, user_id=ADMIN)
    assert app.answers()[-1].text == "This button is no longer active."
    assert notifier.sent == []


# --- ACCESS_MODE=allowlist ----------------------------------------------------------------


async def test_unknown_user_is_told_politely_admins_hear_once_and_allow_lets_in(
    closed: AdminApp,
) -> None:
    app = closed.app
    reply, notice = await closed.send("/start", user_id=7)
    assert reply.text.startswith(POLITE)
    assert notice.chat_id == GROUP
    assert "A new user asks for access: User&lt;7&gt; (id <code>7</code>)" in notice.text
    assert labels(notice) == ["✅ Approve", "⛔ Deny"]

    [again] = await app.send("let me in", user_id=7)
    assert again.text.startswith(POLITE)
    assert len(app.session.chat(GROUP)) == 1  # admins are told once

    # Admins need no approval.
    [hello] = await app.send("/start", user_id=ADMIN)
    assert "Hello, User&lt;999000&gt;!" in hello.text

    done, told = await closed.send("/allow 7", user_id=ADMIN)
    assert (told.chat_id, told.text) == (
        7,
        "✅ An administrator gave you access. Send /start to begin.",
    )
    assert (done.chat_id, done.text) == (ADMIN, "✅ User 7 may use the bot.")
    # Allowing again tells nobody anything new.
    [done] = await closed.send("/allow 7", user_id=ADMIN)
    assert done.chat_id == ADMIN
    [welcome] = await app.send("/start", user_id=7)
    assert "Hello, User&lt;7&gt;!" in welcome.text


async def test_broadcast_in_allowlist_mode_reaches_allowed_users_and_admins_only(
    closed: AdminApp,
) -> None:
    app, notifier = closed.app, closed.notifier
    for user_id in (1, 2):
        await app.send("/start", user_id)  # asks for access
        await closed.send(f"/allow {user_id}", user_id=ADMIN)
        await closed.connect(user_id)
    await closed.connect(ADMIN)
    await closed.send("/deny 2", user_id=ADMIN)  # keeps the token, loses access
    notifier.sent.clear()

    await app.send("/broadcast", user_id=ADMIN)
    _, confirm = await app.send("News", user_id=ADMIN)
    assert "This will go to 2 users" in confirm.text
    await app.tap(confirm, "Send", user_id=ADMIN)
    report = app.session.messages[(ADMIN, confirm.message_id)]
    await eventually(lambda: "finished" in report.text)
    await notifier.settle()
    assert sorted(chat for chat, text in notifier.sent if text == "News") == [1, ADMIN]


async def test_approve_button_in_the_admin_group(closed: AdminApp) -> None:
    app = closed.app
    _, notice = await closed.send("/start", user_id=8)

    assert await closed.tap_in_group(notice, "Approve", user_id=9) == []
    assert app.answers()[-1].text == "Only administrators can use this button."
    assert (await app.send("/start", user_id=8))[0].text.startswith(POLITE)

    edited, told = await closed.settled(closed.tap_in_group(notice, "Approve", user_id=ADMIN))
    assert (told.chat_id, edited.message_id) == (8, notice.message_id)
    assert "gave you access" in told.text
    assert edited.text.endswith("✅ Allowed by User&lt;999000&gt;")
    assert edited.buttons() == []
    [welcome] = await app.send("/start", user_id=8)
    assert "Hello, User&lt;8&gt;!" in welcome.text


async def test_denied_user_stays_out(closed: AdminApp) -> None:
    app = closed.app
    first, notice = await closed.send("/start", user_id=10)
    edited, told = await closed.settled(closed.tap_in_group(notice, "Deny", user_id=ADMIN))
    assert edited.text.endswith("⛔ Denied by User&lt;999000&gt;")
    assert (told.chat_id, told.text) == (
        10,
        "Sorry, the administrators did not allow you to use this bot.",
    )

    [reply] = await app.send("/start", user_id=10)
    assert reply.text == "This bot is private, and the administrators did not allow you."
    # Old buttons do nothing for them either.
    await app.tap_data(first, "lng:en", user_id=10)
    assert app.answers()[-1].text == "This bot is private."
    assert len(app.session.chat(GROUP)) == 1

    done, _ = await closed.settled(closed.group("/allow 10"))
    assert (done.chat_id, done.text) == (GROUP, "✅ User 10 may use the bot.")
    [welcome] = await app.send("/start", user_id=10)
    assert "Hello, User&lt;10&gt;!" in welcome.text


async def test_without_an_admin_group_requests_go_to_each_admin(make_app: AppFactory) -> None:
    async with make_app(access_mode="allowlist", admin_chat_id=None, admin_ids=(ADMIN, 55)) as a:
        await a.send("/start", user_id=7)
        assert [chat for chat, _ in a.notifier.sent] == [ADMIN, 55]
        [notice] = a.app.session.chat(55)
        assert labels(notice) == ["✅ Approve", "⛔ Deny"]


async def test_token_connection_notice_goes_to_the_admin_group(admin: AdminApp) -> None:
    user = User(id=5, is_bot=False, first_name="Ann & Bo", username="annbo")
    await announce_token(admin.app.dp["notices"], user)
    await admin.notifier.settle()
    [notice] = admin.app.session.chat(GROUP)
    assert notice.text == ("🔑 Ann &amp; Bo (@annbo, id <code>5</code>) connected a devsms token.")


# --- Nobody waits on the admins' pace -------------------------------------------------------


class FrozenClock:
    """Time that never moves: whatever the notifier must space out never goes out."""

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


async def test_users_are_answered_while_their_admin_notices_wait_for_the_groups_pace(
    admin: AdminApp,
) -> None:
    app = admin.app
    # The real paced notifier, on a clock that never lets a second message into the group.
    notifier = Notifier(app.bot, app.services.users, admin_chat_id=GROUP, clock=FrozenClock())
    await notifier.start()
    # No window either: every notice goes straight into the notifier's queue.
    wire(app.dp, notifier, app.services)
    users = range(1, 31)
    try:
        for user_id in users:
            await app.send("/start", user_id)
            async with asyncio.timeout(5):
                replies = await app.send(GOOD_TOKEN, user_id)
            connected, balance = [m for m in replies if m.chat_id == user_id]
            assert connected.text.startswith("✅ Token connected")
        for user_id in users:
            async with asyncio.timeout(5):
                [reply] = await app.send("/balance", user_id)
            assert reply.text == balance.text
        # Meanwhile the group got the first notice; the other 29 still wait in the queue.
        [notice] = app.session.chat(GROUP)
        assert "User&lt;1&gt;" in notice.text and "connected a devsms token" in notice.text
    finally:
        await notifier.stop(drain=0)


async def test_a_burst_of_access_requests_is_one_notice_whose_buttons_act_per_user(
    make_app: AppFactory,
) -> None:
    async with make_app(access_mode="allowlist") as closed:
        app, notifier = closed.app, closed.notifier
        # A window that only closes when the test says so.
        digest = AdminDigest(notifier, app.services.i18n, language="en", interval=3600)
        wire(app.dp, notifier, app.services, digest=digest)
        for user_id in (21, 22, 23):
            [reply] = await app.send("/start", user_id)
            assert reply.text.startswith(POLITE)
        assert app.session.chat(GROUP) == []
        await digest.close()  # the window's end
        await notifier.settle()

        [notice] = app.session.chat(GROUP)
        assert notice.text.split("\n") == [
            "🙋 3 new users ask for access:",
            "• User&lt;21&gt; (id <code>21</code>)",
            "• User&lt;22&gt; (id <code>22</code>)",
            "• User&lt;23&gt; (id <code>23</code>)",
            "/pending lists every waiting request.",
        ]
        assert labels(notice) == [
            "✅ User<21>",
            "⛔ User<21>",
            "✅ User<22>",
            "⛔ User<22>",
            "✅ User<23>",
            "⛔ User<23>",
        ]

        edited, told = await closed.settled(closed.tap_in_group(notice, "✅ User<22>", ADMIN))
        assert app.answers()[-1].text == "✅ User 22 may use the bot."
        assert (told.chat_id, told.text) == (
            22,
            "✅ An administrator gave you access. Send /start to begin.",
        )
        # Only that user's buttons are gone: the others can still be decided on.
        assert edited.message_id == notice.message_id
        assert labels(edited) == ["✅ User<21>", "⛔ User<21>", "✅ User<23>", "⛔ User<23>"]
        [welcome] = await app.send("/start", user_id=22)
        assert "Hello, User&lt;22&gt;!" in welcome.text

        [pending] = await closed.group("/pending")
        assert pending.text.split("\n")[0] == "🙋 2 access requests are waiting:"
        assert "id <code>22</code>" not in pending.text
        assert labels(pending) == ["✅ User<21>", "⛔ User<21>", "✅ User<23>", "⛔ User<23>"]
        await closed.settled(closed.tap_in_group(pending, "⛔ User<23>", ADMIN))
        [reply] = await app.send("/start", user_id=23)
        assert reply.text == "This bot is private, and the administrators did not allow you."


async def test_pending_with_nothing_waiting_and_for_non_admins(closed: AdminApp) -> None:
    [empty] = await closed.group("/pending")
    assert empty.text == "No access requests are waiting."
    [reply] = await closed.app.send("/pending", user_id=5)
    assert reply.text == UNKNOWN_COMMAND


# --- Groups -------------------------------------------------------------------------------


def added(chat: Chat, new: Any, old: Any | None = None) -> ChatMemberUpdated:
    return ChatMemberUpdated(
        chat=chat,
        from_user=User(id=ADMIN, is_bot=False, first_name="Admin"),
        date=dt.datetime.now(dt.UTC),
        old_chat_member=old or ChatMemberLeft(user=BOT_USER),
        new_chat_member=new,
    )


async def test_bot_leaves_foreign_groups_and_channels_but_not_the_admin_group(
    admin: AdminApp,
) -> None:
    app = admin.app
    member = ChatMemberMember(user=BOT_USER)
    channel_admin = ChatMemberAdministrator(
        user=BOT_USER,
        can_be_edited=False,
        is_anonymous=False,
        can_manage_chat=True,
        can_delete_messages=True,
        can_manage_video_chats=False,
        can_restrict_members=False,
        can_promote_members=False,
        can_change_info=False,
        can_invite_users=False,
        can_post_stories=False,
        can_edit_stories=False,
        can_delete_stories=False,
        can_send_welcome_messages=False,
    )
    await app.feed(my_chat_member=added(Chat(id=GROUP, type="supergroup"), member))
    await app.feed(my_chat_member=added(Chat(id=FOREIGN, type="supergroup"), member))
    await app.feed(my_chat_member=added(Chat(id=-42, type="group"), member))
    await app.feed(my_chat_member=added(Chat(id=-100_900, type="channel"), channel_admin))
    # A user blocking the bot is a my_chat_member update in a private chat: nothing to leave.
    blocked = ChatMemberBanned(user=BOT_USER, until_date=0)
    await app.feed(my_chat_member=added(Chat(id=1, type="private"), blocked, member))

    left = [call.chat_id for call in app.session.of(LeaveChat)]
    assert left == [FOREIGN, -42, -100_900]


async def test_deny_pauses_the_users_bulk_sending(closed: AdminApp, devsms: FakeDevsms) -> None:
    app = closed.app
    runner: BulkRunner = app.dp["bulk_runner"]
    await app.send("/start", user_id=11)
    await app.send("/allow 11", user_id=ADMIN)
    await closed.connect(11)
    devsms.latency = 0.05
    await app.send("/bulk", user_id=11)
    await app.send("".join(f"90123{n:04d}\n" for n in range(40)), user_id=11)
    [review] = (await app.send("Sale!", user_id=11))[-1:]
    await app.tap(review, "Start", user_id=11)
    await devsms.wait_sent(1)

    replies = await closed.send("/deny 11", user_id=ADMIN)
    [told] = [m for m in replies if m.chat_id == 11]
    [done] = [m for m in replies if m.chat_id == ADMIN]
    assert told.text == "Sorry, the administrators did not allow you to use this bot."
    assert done.text == "⛔ User 11 may not use the bot.\nTheir bulk sending was paused: #1."
    await eventually(lambda: not runner.is_running(1))
    job = await app.services.bulk.get_job(1)
    assert job is not None and (job.state, job.pause_reason) == ("paused", "access")
    counts = await app.services.bulk.counts(1)
    assert counts.pending > 30 and counts.sending == 0
    assert len(devsms.requests_to("/send_sms.php")) == counts.sent
    # Denying again pauses nothing more.
    [again] = await closed.send("/deny 11", user_id=ADMIN)
    assert again.text == "⛔ User 11 may not use the bot."
