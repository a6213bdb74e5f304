"""ACCESS_MODE=allowlist, the admin commands, bulk pause/resume/cancel, /jobs, an .xlsx upload
and the bulk delivery report, end to end.

One `python -m bot` (allowlist mode, one admin) serves the module; each test is a user of its
own with a devsms account of its own. The delivery-report test restarts it, so it runs last.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import pytest_asyncio
from openpyxl import Workbook, load_workbook

from tests.e2e.conftest import report_logs_of
from tests.e2e.harness import (
    BOT_TOKEN,
    BotLauncher,
    BotProcess,
    ChatUser,
    unanswered_messages,
    unhandled_errors,
)
from tests.fakes.fake_devsms import FakeDevsms, SentSms
from tests.fakes.fake_telegram import ChatMessage, FakeTelegram, UploadedFile

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN: Final = 9000
SEND: Final = "/send_sms.php"
JOB_TIMEOUT: Final = 30.0
ENV: Final = {
    "ACCESS_MODE": "allowlist",
    "ADMIN_IDS": str(ADMIN),
    "DEFAULT_LANGUAGE": "en",
    "BULK_RATE": "20",
    "BULK_CONCURRENCY": "2",
    # A lone admin notice goes out when its digest window closes (60 s by default).
    "ADMIN_DIGEST_INTERVAL": "0.5",
}
POLITE: Final = "This bot is private; your request was sent to the administrators."
UNKNOWN_COMMAND: Final = "I do not know this command. /help lists what I can do."


@dataclass
class World:
    telegram: FakeTelegram
    devsms: FakeDevsms
    bot: BotProcess
    admin: ChatUser

    def user(self, user_id: int) -> ChatUser:
        """A new user with a devsms account of their own (token ``token_of(user_id)``)."""
        self.devsms.add_account(token_of(user_id), balance=100_000, sms_price=50)
        return ChatUser(self.telegram, user_id=user_id, first_name=f"User{user_id}")

    def sent_by(self, user: ChatUser) -> list[SentSms]:
        return [s for s in self.devsms.sent if s.token == token_of(user.user_id)]


def token_of(user_id: int) -> str:
    return f"devsms-admin-bulk-token-{user_id}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    telegram = FakeTelegram(BOT_TOKEN)
    devsms = FakeDevsms()
    await telegram.start()
    await devsms.start()
    launcher = BotLauncher(Path(tmp_path_factory.mktemp("admin_bulk")), telegram, devsms)
    try:
        bot = await launcher.started(extra_env=ENV)
        yield World(telegram, devsms, bot, ChatUser(telegram, user_id=ADMIN, first_name="Boss"))
        assert unhandled_errors(bot) == [], bot.log_tail(120)
    finally:
        await launcher.stop_all()
        await devsms.stop()
        await telegram.stop()


@pytest.fixture(autouse=True)
def _report_logs(request: pytest.FixtureRequest, world: World) -> None:
    report_logs_of(request, world.bot)


def text_of(message: ChatMessage) -> str:
    return message.text or ""


def assert_all_answered(*users: ChatUser) -> None:
    for user in users:
        unanswered = unanswered_messages(user.telegram, user.chat_id)
        assert unanswered == [], user.telegram.dump(user.chat_id)


async def admitted(world: World, user_id: int) -> ChatUser:
    """A user the admin allowed with /allow, with the token connected."""
    user = world.user(user_id)
    await world.admin.ask(f"/allow {user_id}", f"User {user_id} may use the bot.")
    await user.ask("/start", "API token")
    connected = await user.reply_after(user.send(token_of(user_id)), "Token connected")
    await user.reply_after(connected.message_id, "Balance:")
    return user


# --- ACCESS_MODE=allowlist ----------------------------------------------------------------------


async def test_a_new_user_asks_the_admin_approves_the_user_proceeds_and_deny_stops_them(
    world: World,
) -> None:
    user, admin = world.user(3001), world.admin
    asked = await user.ask("/start", POLITE)
    notice = await world.telegram.wait_for_message(ADMIN, containing="asks for access")
    assert "User3001" in text_of(notice) and "3001" in text_of(notice)
    assert notice.button_texts == ["✅ Approve", "⛔ Deny"]
    # Until an admin decides, the user gets the same polite answer; the admin is told once.
    await user.ask("let me in", POLITE)
    assert len([m for m in admin.bot_messages() if "asks for access" in text_of(m)]) == 1

    tap = admin.tap(notice, "Approve")
    decided = await admin.wait_edited(notice, "✅ Allowed by Boss")
    assert decided.button_texts == []
    await admin.answer_to(tap)
    await user.reply_after(asked.message_id, "An administrator gave you access")

    await user.ask("/start", "API token")
    connected = await user.reply_after(user.send(token_of(3001)), "Token connected")
    await user.reply_after(connected.message_id, "Balance:")

    await admin.ask("/deny 3001", "⛔ User 3001 may not use the bot.")
    await user.telegram.wait_for_message(
        user.chat_id, containing="did not allow you to use this bot"
    )
    requests_before = len(world.devsms.requests)
    await user.ask("/balance", "This bot is private, and the administrators did not allow you.")
    assert len(world.devsms.requests) == requests_before
    assert_all_answered(user, admin)


# --- the admin commands -------------------------------------------------------------------------


async def test_admin_summary_users_and_broadcast_and_nothing_for_others(world: World) -> None:
    admin = world.admin
    reader = await admitted(world, 3101)
    outsider = world.user(3102)
    await outsider.ask("/start", POLITE)

    summary = await admin.ask("/admin", "Bot summary")
    assert re.search(r"Users: \d+, of them blocked the bot: 0", text_of(summary)), summary
    assert re.search(r"Valid devsms tokens: [1-9]", text_of(summary)), summary
    assert re.search(r"Access: allowed \d+, waiting [1-9]\d*, denied \d+", text_of(summary))

    listing = await admin.ask("/users", "Users")
    assert "3101 User3101" in text_of(listing)
    assert "3102 User3102" in text_of(listing) and "not approved" in text_of(listing)

    await admin.ask("/broadcast", "Send the text of the broadcast")
    confirm = await admin.ask("News <today> & more", "This will go to")
    assert confirm.button_texts == ["📣 Send", "✖️ Cancel"]
    tap = admin.tap(confirm, "Send")
    assert (await admin.answer_to(tap)).get("text") == "Broadcast started."
    await admin.wait_edited(confirm, "Broadcast finished")
    # Exactly as the admin wrote it (a typed "<" is text, not markup).
    await reader.telegram.wait_for_message(reader.chat_id, containing="News <today> & more")
    assert [m for m in outsider.bot_messages() if "News" in text_of(m)] == []

    # Admin commands are unknown to everybody else, and change nothing.
    for command in ("/admin", "/users", "/broadcast", "/allow 3102"):
        await reader.ask(command, UNKNOWN_COMMAND)
    await outsider.ask("/start", POLITE)
    assert_all_answered(reader, admin)


# --- bulk: pause, resume, cancel, /jobs ---------------------------------------------------------


def job_id_of(progress: ChatMessage) -> int:
    found = re.search(r"Bulk job #(\d+)", text_of(progress))
    assert found is not None, progress
    return int(found.group(1))


def shown_sent(message: ChatMessage) -> int:
    found = re.search(r"Sent: (\d+)", text_of(message))
    assert found is not None, text_of(message)
    return int(found.group(1))


async def resume(user: ChatUser, paused: ChatMessage) -> None:
    """Taps Resume until the job resumes: while the request that was out at the pause has not
    come back, the runner refuses, and says so (a user taps again)."""
    deadline = asyncio.get_running_loop().time() + JOB_TIMEOUT
    while True:
        answer = (await user.answer_to(user.tap(paused, "Resume"))).get("text")
        if answer == "Resuming…":
            return
        assert answer == "This job cannot be resumed now.", answer
        assert asyncio.get_running_loop().time() < deadline, "the job never resumed"
        await asyncio.sleep(0.1)


async def test_bulk_pause_resume_cancel_and_jobs(world: World) -> None:
    user, devsms = await admitted(world, 3201), world.devsms
    count = 40
    numbers = "\n".join(f"90123{n:04d}" for n in range(count))
    await user.ask("/bulk", "Bulk sending")
    await user.ask(numbers, "Now send the text")
    review = await user.ask("Hello from the list", "Check before sending")
    assert f"✅ To send: {count}" in text_of(review)
    tap = user.tap(review, "Start")
    assert (await user.answer_to(tap)).get("text") == "Starting…"
    progress = await user.reply_after(review.message_id, "Bulk job #")
    job_id = job_id_of(progress)

    # A send held at the gateway: the job is provably mid-way when the user pauses it.
    await devsms.wait_sent(len(devsms.sent) + 1)
    devsms.hold(SEND)
    await devsms.wait_held(len(devsms.held) + 1)
    tap = user.tap(user.message(progress.message_id), "Pause")
    assert (await user.answer_to(tap)).get("text") == "Paused."
    devsms.release()
    await user.wait_edited(progress, "⏸ Paused. Tap Resume to go on.")
    # The pause is shown at once; the request that was out then is counted when it comes back.
    sent_paused = await world.telegram.wait_for(
        lambda: (
            len(world.sent_by(user))
            if devsms.held and all(r.answered for r in devsms.held)
            else None
        )
    )

    def shows_it() -> ChatMessage | None:
        shown = user.message(progress.message_id)
        return shown if "⏸ Paused" in text_of(shown) and shown_sent(shown) == sent_paused else None

    paused = await world.telegram.wait_for(shows_it)
    assert paused.button_texts == ["▶️ Resume", "✖️ Cancel"]
    assert 0 < sent_paused < count  # what the user reads is what went out

    await resume(user, paused)
    devsms.hold(SEND)
    await devsms.wait_held(len(devsms.held) + 1)
    assert len(world.sent_by(user)) > sent_paused  # it went on after the resume
    tap = user.tap(user.message(progress.message_id), "Cancel")
    assert (await user.answer_to(tap)).get("text") == "Job cancelled."
    devsms.release()
    await user.wait_edited(progress, "✖️ Cancelled")
    # As with the pause: the request that was out at the cancel is counted when it comes back
    # (the tap's own edit may come first, the job's report after it).
    sent_cancelled = await world.telegram.wait_for(
        lambda: (
            len(world.sent_by(user))
            if devsms.held and all(r.answered for r in devsms.held)
            else None
        )
    )

    def shows_cancel() -> ChatMessage | None:
        shown = user.message(progress.message_id)
        done = "✖️ Cancelled" in text_of(shown) and shown_sent(shown) == sent_cancelled
        return shown if done else None

    cancelled = await world.telegram.wait_for(shows_cancel)
    assert cancelled.button_texts == ["📎 Result file"]

    mine = world.sent_by(user)
    assert len(mine) == sent_cancelled < count
    assert Counter(s.phone for s in mine).most_common(1)[0][1] == 1  # no number twice
    requests = [r for r in devsms.requests_to(SEND) if r.token == token_of(user.user_id)]
    assert len(requests) == len(mine)
    states = Counter(
        state
        for (state,) in world.bot.query("SELECT state FROM bulk_rows WHERE job_id = ?", job_id)
    )
    assert states == Counter({"sent": len(mine), "pending": count - len(mine)})

    listing = await user.ask("/jobs", "Your bulk jobs")
    assert re.search(
        rf"#{job_id} · Pasted list · .*cancelled.* · sent {len(mine)} of {count}, failed 0",
        text_of(listing),
    ), text_of(listing)
    assert listing.button_texts == [f"#{job_id}"]
    user.tap(listing, f"#{job_id}")
    opened = await user.reply_after(listing.message_id, f"Bulk job #{job_id}")
    assert "✖️ Cancelled" in text_of(opened)
    assert opened.button_texts == ["📎 Result file"]
    assert_all_answered(user)


# --- an .xlsx upload, its result file, and the delivery report after a restart ------------------


def debtors_xlsx() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Ism", "Telefon", "Summa"])
    sheet.append(["Aziz", 998901112233, 120000])
    sheet.append(["Dilnoza", "+998 93 444 55 66", 5000])
    sheet.append(["Nobody", "12345", 1])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def test_an_xlsx_upload_is_sent_reported_as_xlsx_and_its_delivery_reported_once(
    world: World,
) -> None:
    user, devsms = await admitted(world, 3301), world.devsms
    await user.ask("/bulk", "Bulk sending")
    uploaded = user.telegram.send_document(
        user.user_id, "debtors.xlsx", debtors_xlsx(), language_code=user.language_code
    )
    ask = await user.reply_after(uploaded, "Now send the text")
    assert "debtors.xlsx: rows: 3" in text_of(ask), text_of(ask)
    review = await user.ask("{Ism}, qarzingiz {Summa} so'm", "Check before sending")
    assert "✅ To send: 2" in text_of(review)
    assert "❌ Skipped: 1" in text_of(review)
    assert "Aziz, qarzingiz 120000 so'm" in text_of(review)
    tap = user.tap(review, "Start")
    await user.answer_to(tap)
    progress = await user.reply_after(review.message_id, "Bulk job #")
    job_id = job_id_of(progress)
    await user.reply_after(progress.message_id, f"Bulk job #{job_id} finished.", JOB_TIMEOUT)

    mine = world.sent_by(user)
    assert sorted((s.phone, s.message) for s in mine) == [
        ("998901112233", "Aziz, qarzingiz 120000 so'm"),
        ("998934445566", "Dilnoza, qarzingiz 5000 so'm"),
    ]
    [upload] = [
        call.params["document"]
        for call in user.telegram.calls_of("sendDocument")
        if isinstance(call.params.get("document"), UploadedFile)
        and f"-result-{job_id}." in call.params["document"].file_name
    ]
    assert upload.file_name.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(upload.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("row", "phone", "sms_id", "state", "status", "error")
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        (2, "998901112233", "sent"),
        (3, "998934445566", "sent"),
    ]

    # The operators settle both; the report comes with the reporter's next round, here the one
    # a restart runs at once.
    by_phone = {s.phone: s for s in mine}
    devsms.set_status(by_phone["998901112233"].sms_id, "DELIVERED")
    devsms.set_status(by_phone["998934445566"].sms_id, "REJECTED")
    await world.bot.restart()
    report = await user.telegram.wait_for_message(
        user.chat_id, containing=f"Bulk job #{job_id}: delivery results", timeout=JOB_TIMEOUT
    )
    assert "Delivered: 1" in text_of(report), text_of(report)
    assert "Not delivered: 1" in text_of(report)
    assert "Still waiting: 0" in text_of(report)
    [(reported,)] = world.bot.query("SELECT delivery_reported FROM bulk_jobs WHERE id = ?", job_id)
    assert reported  # marked before it was sent: later rounds say nothing again
    reports = [m for m in user.bot_messages() if "delivery results" in text_of(m)]
    assert len(reports) == 1
    assert_all_answered(user)
