"""Admin digests on virtual time: a burst of notices of one kind becomes one message."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import I18n

from bot.notices.digest import DIGEST_BUTTON_ROWS, AdminDigest, AdminNotice, NoticeKind
from handlers.sms_render import TELEGRAM_LIMIT
from tests.support.virtual_time import FakeClock

GROUP = -100_200
INTERVAL = 60.0


@dataclass
class Posted:
    chat_id: int | None  # None: the admin group
    text: str
    reply_markup: InlineKeyboardMarkup | None
    at: float


@dataclass
class RecordingPost:
    """The notifier's post side: records what was queued, and when (virtual time)."""

    clock: FakeClock
    has_group: bool = True
    posted: list[Posted] = field(default_factory=list)

    def post(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        self.posted.append(Posted(chat_id, text, reply_markup, self.clock.now))

    def post_to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> bool:
        if not self.has_group:
            return False
        self.posted.append(Posted(None, text, reply_markup, self.clock.now))
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink(clock: FakeClock) -> RecordingPost:
    return RecordingPost(clock)


def make_digest(sink: RecordingPost, clock: FakeClock, **options: object) -> AdminDigest:
    values: dict[str, object] = {"language": "en", "interval": INTERVAL, "clock": clock}
    values.update(options)
    return AdminDigest(sink, None, **values)  # type: ignore[arg-type]


async def one_window(
    clock: FakeClock, sink: RecordingPost, notices: list[AdminNotice]
) -> list[Posted]:
    """What the admins get for `notices` added at once, once their window closed."""
    digest = make_digest(sink, clock)
    for notice in notices:
        digest.add(notice)
    await clock.run(clock.sleep(INTERVAL))
    return sink.posted


def token(n: int, name: str = "User") -> AdminNotice:
    label = f"{name} (id <code>{n}</code>)"
    return AdminNotice(
        NoticeKind.TOKEN_CONNECTED, text=f"🔑 {label} connected a devsms token.", line=label
    )


def access(n: int) -> AdminNotice:
    def button(text: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, callback_data=f"pnd:{n}:1")

    return AdminNotice(
        NoticeKind.ACCESS_REQUEST,
        text=f"🙋 A new user asks for access: User {n}",
        line=f"User {n}",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button("✅ Approve")]]),
        buttons=(button(f"✅ {n}"), button(f"⛔ {n}")),
    )


async def test_a_lone_notice_goes_out_on_its_own_at_the_end_of_its_window(
    clock: FakeClock, sink: RecordingPost
) -> None:
    digest = make_digest(sink, clock)
    digest.add(access(7))
    assert sink.posted == []  # add() returned at once and queued nothing yet

    await clock.run(clock.sleep(INTERVAL))

    [notice] = sink.posted
    assert notice.text == "🙋 A new user asks for access: User 7"
    assert notice.reply_markup == access(7).reply_markup  # its own Approve / Deny
    assert notice.at == pytest.approx(INTERVAL)


async def test_a_burst_becomes_one_message_per_window(
    clock: FakeClock, sink: RecordingPost
) -> None:
    digest = make_digest(sink, clock)
    for n in range(30):
        digest.add(token(n))
    await clock.run(clock.sleep(INTERVAL))

    [message] = sink.posted
    lines = message.text.split("\n")
    assert lines[0] == "🔑 30 users connected a devsms token:"
    assert lines[1:] == [f"• User (id <code>{n}</code>)" for n in range(30)]

    # The next one opens a new window: a lone notice again, one interval later.
    await clock.run(clock.sleep(5))
    digest.add(token(99))
    await clock.run(clock.sleep(INTERVAL))
    assert [p.text for p in sink.posted[1:]] == [token(99).text]
    assert sink.posted[1].at == pytest.approx(2 * INTERVAL + 5)


async def test_kinds_are_digested_apart(clock: FakeClock, sink: RecordingPost) -> None:
    posted = await one_window(clock, sink, [token(1), access(2), token(3)])
    texts = sorted(p.text.split("\n")[0] for p in posted)
    assert texts == [
        "🔑 2 users connected a devsms token:",
        "🙋 A new user asks for access: User 2",
    ]


async def test_a_flood_is_clipped_to_telegrams_limit_with_the_rest_counted(
    clock: FakeClock, sink: RecordingPost
) -> None:
    # More than a window keeps, with long names.
    [message] = await one_window(clock, sink, [token(n, name="N" * 100) for n in range(1000)])
    assert len(message.text) <= TELEGRAM_LIMIT
    lines = message.text.split("\n")
    assert lines[0] == "🔑 1000 users connected a devsms token:"
    shown = len([line for line in lines if line.startswith("• ")])
    assert 30 < shown < 1000
    assert lines[-1] == f"… and {1000 - shown} more"


async def test_access_requests_in_a_digest_keep_buttons_for_the_first_few(
    clock: FakeClock, sink: RecordingPost
) -> None:
    [message] = await one_window(clock, sink, [access(n) for n in range(8)])
    assert message.text.startswith("🙋 8 new users ask for access:\n• User 0\n")
    assert message.text.endswith("\n/pending lists every waiting request.")
    assert message.reply_markup is not None
    rows = message.reply_markup.inline_keyboard
    assert len(rows) == DIGEST_BUTTON_ROWS
    assert [[b.text for b in row] for row in rows[:2]] == [["✅ 0", "⛔ 0"], ["✅ 1", "⛔ 1"]]


async def test_without_an_admin_group_access_requests_go_to_each_admin_and_the_rest_nowhere(
    clock: FakeClock,
) -> None:
    sink = RecordingPost(clock, has_group=False)
    digest = make_digest(sink, clock, admin_ids=(11, 12))
    digest.add(access(5))
    digest.add(token(6))
    await clock.run(clock.sleep(INTERVAL))

    assert [(p.chat_id, p.text) for p in sink.posted] == [
        (11, access(5).text),
        (12, access(5).text),
    ]


async def test_interval_zero_sends_each_notice_at_once(
    clock: FakeClock, sink: RecordingPost
) -> None:
    digest = make_digest(sink, clock, interval=0)
    digest.add(token(1))
    digest.add(token(2))
    assert [p.text for p in sink.posted] == [token(1).text, token(2).text]


async def test_close_sends_what_is_collected_and_later_notices_at_once(
    clock: FakeClock, sink: RecordingPost
) -> None:
    digest = make_digest(sink, clock)
    digest.add(token(1))
    digest.add(token(2))
    await clock.run(digest.close())
    assert [p.text.split("\n")[0] for p in sink.posted] == ["🔑 2 users connected a devsms token:"]
    assert clock.now == 0  # did not wait for the window

    digest.add(token(3))  # during shutdown: straight to the notifier, which drains
    assert sink.posted[-1].text == token(3).text


@pytest.mark.parametrize(
    ("language", "n", "expected"),
    [
        ("ru", 2, "🔑 2 пользователя подключили токен devsms:"),
        ("ru", 5, "🔑 5 пользователей подключили токен devsms:"),
        ("ru", 21, "🔑 21 пользователь подключил токен devsms:"),
        ("uz", 5, "🔑 5 foydalanuvchi devsms tokenini uladi:"),
        ("en", 21, "🔑 21 users connected a devsms token:"),
    ],
)
async def test_digests_speak_the_admins_language_with_plurals(
    clock: FakeClock, sink: RecordingPost, i18n: I18n, language: str, n: int, expected: str
) -> None:
    digest = AdminDigest(sink, i18n, language=language, interval=INTERVAL, clock=clock)
    for user in range(n):
        digest.add(token(user))
    await clock.run(clock.sleep(INTERVAL))
    assert sink.posted[0].text.split("\n")[0] == expected
