"""A few thousand hostile updates through the app's own Dispatcher.

Several users (some connected, each with SMS, a template and a bulk job whose texts carry the
user's own marker), then random texts, commands, stale and forged buttons, files, contacts,
edited and group messages, and sends the gateway charges but never answers (dropped connection
or timeout) followed by a tap on the old preview or the same dialog again. Afterwards: nothing
crashed, nobody saw another user's marker, every message the bot sent is HTML Telegram accepts
(the recording session applies Telegram's rules to every call), and no (phone, text) reached
the gateway more often than a user confirmed it. The random source is seeded: a failure names
the update number and its content, and the same seed replays it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import re
import string
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from aiogram.client.default import Default
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    SendDocument,
    SendMessage,
)
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    Chat,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberUpdated,
    Contact,
    Document,
    InaccessibleMessage,
    Location,
    Message,
    PhotoSize,
    User,
    Voice,
)

from bot.commands import COMMANDS
from bot.config import Settings
from handlers.admin import ADMIN_COMMANDS
from handlers.callbacks import (
    BulkCb,
    ContactCb,
    GroupCb,
    HistoryCb,
    JobCb,
    LanguageCb,
    LogoutCb,
    SendCb,
    SettingsCb,
    SmsCb,
    StopCb,
    TemplateCb,
)
from handlers.keyboards import MENU_BUTTONS
from handlers.sms_render import TELEGRAM_LIMIT
from handlers.states import SendForm
from services.bulk import BulkRunner
from services.languages import LANGUAGES
from storage.bulk import JobState
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN, make_settings
from tests.fakes.fake_devsms import SEND, FakeDevsms
from tests.support.harness import Harness, a_sticker
from tests.support.notifiers import install
from tests.support.recording import BOT_USER, SentMessage
from tests.support.telegram_rules import TelegramRefusal, parse_html, visible_length

SEED: Final = 1234
UPDATES: Final = 2500

ALI, BOB, CARL, DANA, EVE, ADMIN = 101, 102, 103, 104, 105, 900
USERS: Final = (ALI, BOB, CARL, DANA, EVE, ADMIN)
# Carl connects only if the fuzz happens to paste his token; Eve never has one.
TOKENS: Final = {
    ALI: GOOD_TOKEN,
    BOB: OTHER_TOKEN,
    CARL: "devsms-carl-token-0003",
    DANA: "devsms-dana-token-0004",
}
SEEDED: Final = (ALI, BOB, DANA)
PHONES: Final = {ALI: "+998 90 111 22 01", BOB: "+998 90 111 22 02", DANA: "+998 90 111 22 04"}
ADMIN_GROUP: Final = -100_500
FOREIGN_GROUP: Final = -100_777
# Each seeded user's texts carry MRK<id>X; random input never contains "MRK".
MARKER: Final = re.compile(r"MRK(\d+)X")
WENT_WRONG: Final = "Something went wrong on our side. It is logged; please try again."
HOSTILE: Final = "<script>&"

HTML_BITS: Final = (
    HOSTILE,
    "<b>bold</b>",
    "</code>",
    "</blockquote>",
    "&amp;",
    "&lt;",
    "&",
    "<a href='javascript:x'>",
    "<<>>",
    "&#0;",
    "<tg-spoiler>",
    "{name}",
    "{{",
    "}",
    "%s",
    "%(x)s",
    "\\",
    "'",
    '"',
)
UNICODE_BITS: Final = (
    "😀",
    "🇺🇿",
    "👨‍👩‍👧",
    "Ўзбекистон",
    "ғалла",
    "oʻzbek",
    "so‘m",
    "\u200f",
    "\u202e",
    "\u200b",
    "\u00a0",
    "ﷺ",
    "𝕏",
    "é",
    "e\u0301",
    "\t",
    "\n",
    "   ",
)
NUMBER_BITS: Final = (
    "0",
    "-1",
    "1",
    "10",
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "9" * 30,
    "1e9",
    "1,5",
    "1 000",
    "$0.005",
    "NaN",
    "inf",
    "0f8fad5b-d9cb-469f-a165-70867728950e",
)
PHONE_BITS: Final = (
    "+998901234567",
    "901234567",
    "+998 (90) 123-45-67",
    "8 916 123-45-67",
    "+1 202 555 0143",
    "12345",
    "+",
    "+998 90 111 22 01",
    "998900000000000000",
)


def random_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.03:
        return rng.choice(string.ascii_letters) * rng.choice((300, 1000, 4096))
    if kind < 0.06:
        return "".join(rng.choice(HTML_BITS) for _ in range(rng.randint(50, 600)))[:4096]
    pools = (HTML_BITS, UNICODE_BITS, NUMBER_BITS, PHONE_BITS)
    words = [
        rng.choice(rng.choice(pools))
        if rng.random() < 0.5
        else "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 8)))
        for _ in range(rng.randint(1, 6))
    ]
    return rng.choice((" ", "", "\n", ", ")).join(words)


# A send the gateway records and charges, then answers too late: the client gives up first.
GATEWAY_TIMEOUT: Final = 1.0
LATE_ANSWER: Final = 2.0


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms) -> Settings:
    devsms.add_account(TOKENS[CARL], balance=3_000, sms_price=50)
    devsms.add_account(TOKENS[DANA], balance=7_000, sms_price=50)
    return make_settings(
        tmp_path,
        devsms.url,
        admin_ids=(ADMIN,),
        admin_chat_id=ADMIN_GROUP,
        bulk_rate=500,
        bulk_max_rows=20,
        devsms_timeout=GATEWAY_TIMEOUT,
    )


Confirmed = tuple[str, str]  # (phone digits, text) as the gateway receives them


@dataclass
class ConfirmingHarness(Harness):
    """The harness that counts what users confirmed, on the dispatcher side: the first tap on
    Send under a preview confirms the (phone, text) of the draft it shows, once (a second tap
    on the same button confirms nothing new); a bulk job confirms its rows when Start creates
    it. The gateway must never see a pair more often."""

    confirmed: Counter[Confirmed] = field(default_factory=Counter)
    buttons_used: set[tuple[int, int, str]] = field(default_factory=set)
    jobs_seen: set[int] = field(default_factory=set)

    async def feed(self, **update: Any) -> list[SentMessage]:
        query = update.get("callback_query")
        if isinstance(query, CallbackQuery):
            pair = await self.confirms(query)
            if pair is not None:
                self.buttons_used.add(_button_key(query))
                self.confirmed[pair] += 1
        replies = await super().feed(**update)
        await self.note_new_jobs()
        return replies

    async def confirms(self, query: CallbackQuery) -> Confirmed | None:
        """The pair this tap confirms: the first tap on Send under the preview of the draft
        the user's dialog holds now."""
        try:
            data = SendCb.unpack(query.data or "")
        except (ValueError, TypeError):
            return None
        if _button_key(query) in self.buttons_used:
            return None
        user_id = query.from_user.id
        context = self.dp.fsm.get_context(self.bot, chat_id=user_id, user_id=user_id)
        draft = await context.get_data()
        live = await context.get_state() == SendForm.preview.state
        if data.action != "send" or not live or draft.get("draft") != data.draft:
            return None
        return str(draft["phone"]), str(draft["text"])

    async def note_new_jobs(self) -> None:
        bulk = self.services.bulk
        states: tuple[JobState, ...] = ("ready", "running", "paused", "cancelled", "done")
        for job in await bulk.jobs_in(states):
            if job.id not in self.jobs_seen:
                self.jobs_seen.add(job.id)
                self.confirmed.update(
                    (row.phone, row.message) for row in await bulk.all_rows(job.id)
                )


def _button_key(query: CallbackQuery) -> tuple[int, int, str]:
    message = query.message
    chat_id = message.chat.id if message is not None else 0
    return chat_id, message.message_id if message is not None else 0, query.data or ""


def gateway_sends(devsms: FakeDevsms) -> Counter[Confirmed]:
    """Every send request that reached the gateway, answered or not."""
    return Counter(
        (str(request.json.get("phone")), str(request.json.get("message")))
        for request in devsms.requests_to(SEND)
        if isinstance(request.json, dict)
    )


@pytest.fixture
async def fuzz_app(app: Harness) -> AsyncIterator[ConfirmingHarness]:
    """The app as start-up leaves it: bulk progress reported, a notifier in place."""
    app = ConfirmingHarness(
        dp=app.dp, bot=app.bot, session=app.session, services=app.services, shared=app.shared
    )
    runner: BulkRunner = app.dp["bulk_runner"]
    install(app.dp, app.bot, ADMIN_GROUP, app.services)
    yield app
    await runner.stop()


async def seed_user(app: Harness, user_id: int) -> None:
    """Connects the user and leaves their marker in an SMS, a template and a bulk job."""
    await app.send("/start", user_id)
    await app.send(TOKENS[user_id], user_id)
    await app.send("/send", user_id)
    await app.send(PHONES[user_id], user_id)
    [preview] = await app.send(f"MRK{user_id}X single {HOSTILE}", user_id)
    await app.tap(preview, "Send", user_id)

    [templates] = await app.send("/templates", user_id)
    await app.tap(templates, "New template", user_id)
    await app.send(f"MRK{user_id}X tpl", user_id)
    await app.send(f"MRK{user_id}X template {{name}}", user_id)

    [book] = await app.send("/contacts", user_id)
    await app.tap(book, "Add", user_id)
    await app.send(f"MRK{user_id}X contact, +998 93 000 00 {user_id % 100:02}", user_id)
    [book] = await app.send("/contacts", user_id)
    [groups] = await app.tap(book, "Groups", user_id)
    await app.tap(groups, "New group", user_id)
    await app.send(f"MRK{user_id}X", user_id)

    await app.send("/bulk", user_id)
    rows = f"name,phone\nMRK{user_id}X one,+998 91 000 00 {user_id % 100:02}\nx,12\n"
    await app.send_document("list.csv", rows.encode(), user_id)
    [*_, review] = await app.send(f"MRK{user_id}X bulk {{name}}", user_id)
    await app.tap(review, "Start", user_id)
    # The job's reports would land among the next user's replies: let it finish first.
    runner: BulkRunner = app.dp["bulk_runner"]
    [job] = await app.services.bulk.jobs_of(user_id)
    deadline = asyncio.get_running_loop().time() + 10
    while runner.is_running(job.id):
        assert asyncio.get_running_loop().time() < deadline, "the seeded job did not finish"
        await asyncio.sleep(0.01)


@dataclass
class Fuzzer:
    app: ConfirmingHarness
    devsms: FakeDevsms
    rng: random.Random
    languages: tuple[str | None, ...] = ("en", "ru", "uz", None, "de", "kk")
    menu_labels: list[str] = field(default_factory=list)
    fed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    query_owner: dict[str, int] = field(default_factory=dict)
    # Private-chat taps: query id → what was tapped, for the "answered once" check.
    taps: dict[str, str] = field(default_factory=dict)
    # Sends the gateway charged without answering: (dropped, timed out), for the final check.
    lost_answers: list[str] = field(default_factory=list)
    _next_id: int = 1_000_000

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- building blocks --------------------------------------------------------------------

    def user(self, user_id: int) -> User:
        return User(
            id=user_id,
            is_bot=False,
            first_name=self.rng.choice([f"User{user_id}", "<b>Bold</b> & co", "Ўзбек 😀"]),
            language_code=self.rng.choice(self.languages),
        )

    def chat_for(self, user_id: int) -> Chat:
        return Chat(id=user_id, type="private")

    def message(self, user_id: int, chat: Chat | None = None, **fields: Any) -> Message:
        chat = chat or self.chat_for(user_id)
        return Message(
            message_id=self.next_id(),
            date=dt.datetime.now(dt.UTC),
            chat=chat,
            from_user=self.user(user_id),
            **fields,
        )

    def command(self) -> str:
        names = [name for name, _ in COMMANDS] + list(ADMIN_COMMANDS) + ["start", "nosuch"]
        text = "/" + self.rng.choice(names)
        if self.rng.random() < 0.1:
            text += self.rng.choice(["@test_bot", "@other_bot", "@"])
        if self.rng.random() < 0.6:
            argument = self.rng.choice(
                [
                    random_text(self.rng),
                    self.rng.choice(NUMBER_BITS),
                    f"{self.rng.choice(PHONE_BITS)} {random_text(self.rng)}",
                    str(self.rng.choice(self.sms_ids() or [1])),
                ]
            )
            text += " " + argument
        return text

    def sms_ids(self) -> list[int]:
        return [sms.sms_id for sms in self.devsms.sent]

    async def private_text(self, user_id: int) -> str:
        roll = self.rng.random()
        if user_id in TOKENS and (
            roll < 0.01 or (roll < 0.3 and not await self.app.services.accounts.has_token(user_id))
        ):
            return TOKENS[user_id]  # only ever their own: a shared token would share data
        state = await self.app.state_of(user_id) or ""
        if roll < 0.5 and state.endswith((":phone", ":source")):
            # Get dialogs past the number step now and then.
            return "\n".join(self.rng.choices(PHONE_BITS, k=self.rng.randint(1, 4)))
        if roll < 0.5 and state.endswith((":threshold", ":sender")):
            return self.rng.choice([*NUMBER_BITS, "4546", "MyShop", "ab"])
        if roll < 0.15:
            return self.rng.choice(self.menu_labels)
        if roll < 0.25:
            return self.rng.choice(PHONE_BITS)
        if roll < 0.35:
            return self.rng.choice(NUMBER_BITS)
        return random_text(self.rng)

    def seen_callback_data(self) -> list[str]:
        return [
            data
            for sent in self.app.session.messages.values()
            for _, data in sent.buttons()
            if data is not None
        ]

    def forged_callback_data(self) -> str:
        rng = self.rng
        other_ids = [rng.choice(self.sms_ids() or [1]), rng.randint(-3, 40), 2**63 - 1, 2**64]
        some_id = rng.choice(other_ids)
        # model_construct: a forged button is not bound by the fields' limits.
        makers: list[Callable[[], str]] = [
            lambda: SmsCb.model_construct(sms_id=some_id, refresh=rng.random() < 0.5).pack(),
            lambda: SmsCb.model_construct(outbox_id=some_id, refresh=rng.random() < 0.5).pack(),
            lambda: JobCb.model_construct(
                action=rng.choice(["open", "pause", "resume", "cancel", "file", "x"]),
                job_id=some_id,
            ).pack(),
            lambda: TemplateCb.model_construct(
                action=rng.choice(["list", "new", "open", "send", "rename", "edit", "delete"])
                if rng.random() < 0.9
                else "drop",
                tpl=some_id,
            ).pack(),
            lambda: BulkCb.model_construct(
                action=rng.choice(["tpl", "start", "cancel", "?"]), draft=some_id, tpl=some_id
            ).pack(),
            lambda: SendCb.model_construct(
                action=rng.choice(["send", "cheap", "text", "phone", "cancel", ""]), draft=some_id
            ).pack(),
            lambda: ContactCb.model_construct(
                action=rng.choice(["list", "open", "rename", "fields", "groups", "drop", "x"]),
                id=some_id,
                page=rng.choice([0, 1, some_id]),
            ).pack(),
            lambda: GroupCb.model_construct(
                action=rng.choice(["list", "open", "members", "send", "toggle", "drop", "x"]),
                id=some_id,
                page=rng.choice([0, 1, -2, 999_999]),
                contact=rng.choice(other_ids[:2]),
            ).pack(),
            lambda: HistoryCb.model_construct(
                page=some_id, flt=rng.choice(["a", "d", "w", "r", "z"])
            ).pack(),
            lambda: LanguageCb.model_construct(code=rng.choice([*LANGUAGES, "de", ""])).pack(),
            lambda: SettingsCb.model_construct(
                action=rng.choice(["sender", "threshold", "x", "lang"])
            ).pack(),
            lambda: LogoutCb(confirm=rng.random() < 0.3).pack(),
            lambda: StopCb.model_construct(
                action=rng.choice(["open", "page", "drop", "unstop", "export", "add", "?"]),
                entry=some_id,
                page=rng.choice([some_id, -1, 0, 1]),
            ).pack(),
            lambda: f"usr:{some_id}",
            lambda: f"bc:send:{some_id}",
            lambda: f"acc:{rng.choice(USERS)}:{rng.choice('01')}",
            lambda: rng.choice(["bal", "tok", "sms:", "sms:::", ":", "", "x" * 64]),
            lambda: "".join(rng.choices(string.printable, k=rng.randint(0, 64))),
        ]
        return rng.choice(makers)()

    def callback_message(self, user_id: int) -> Message | InaccessibleMessage:
        mine = [m for m in self.app.session.chat(user_id) if not m.deleted]
        if mine and self.rng.random() < 0.95:
            # Mostly one of the last few: those are the buttons a user still sees.
            sent: SentMessage = self.rng.choice(mine[-4:] if self.rng.random() < 0.7 else mine)
            return self.app.session._as_message(sent)
        # A message older than 48 hours: Telegram sends only its id.
        return InaccessibleMessage(
            chat=self.chat_for(user_id), message_id=self.rng.randint(1, 10**6), date=0
        )

    def gateway_fault(self) -> None:
        """The next gateway request fails, in one of the ways devsms.uz has been seen to."""
        rng = self.rng
        status = rng.choice([500, 502, 429, 400, 401, 403, 404, 200])
        body = rng.choice(
            [
                None,
                "<html><h1>502 Bad Gateway</h1></html>",
                '{"success": tru',
                json.dumps({"success": False, "error": f"{HOSTILE} <b>no</b> & {'x' * 300}"}),
                json.dumps({"success": True, "data": rng.choice([None, [], "x", {"sms": 5}])}),
            ]
        )
        if rng.random() < 0.15:
            # Dropped after the gateway did the work: a send that may or may not have gone out.
            self.devsms.fail_next(1, drop=True, process=rng.random() < 0.5)
        else:
            self.devsms.fail_next(1, status=status, body=body)

    # --- updates --------------------------------------------------------------------------

    def lose_next_answer(self) -> None:
        """The next send reaches the gateway, is recorded and charged, and its answer never
        arrives: the connection drops, or the answer comes after the client gave up."""
        if self.rng.random() < 0.5:
            self.devsms.fail_next(1, path=SEND, drop=True, process=True)
            self.lost_answers.append("dropped")
        else:
            self.devsms.fail_next(1, path=SEND, hang=LATE_ANSWER)
            self.lost_answers.append("timed out")

    async def feed(self, description: str, **update: Any) -> list[SentMessage]:
        self.fed.append(description)
        try:
            return await self.app.feed(**update)
        except Exception as exc:  # reported with the input that caused it, after the run
            self.failures.append(f"update #{len(self.fed)} {description}: {exc!r}")
            return []

    def blame(self, records: list[logging.LogRecord]) -> str:
        """ERROR records with the update being fed when each was logged."""
        lines = []
        for record in records:
            cause = record.exc_info[1] if record.exc_info else None
            during = getattr(record, "fuzz_update", "?")
            lines.append(f"{during}: {record.getMessage()} {cause!r}")
        return "\n".join(lines)

    async def burst(self) -> None:
        """A few updates in a row from one user, so dialogs get past their first step."""
        user_id = self.rng.choice(USERS)
        if self.rng.random() < 0.05:
            self.gateway_fault()
        if user_id in SEEDED and self.rng.random() < 0.1:
            await self.send_dialog(user_id)
            return
        for _ in range(self.rng.randint(1, 6)):
            await self.one(user_id)

    async def one(self, user_id: int) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.33:
            text = await self.private_text(user_id)
            await self.feed(f"text {user_id} {text!r}", message=self.message(user_id, text=text))
        elif roll < 0.53:
            text = self.command()
            await self.feed(f"cmd {user_id} {text!r}", message=self.message(user_id, text=text))
        elif roll < 0.78:
            await self.callback(user_id)
        elif roll < 0.88:
            await self.media(user_id)
        elif roll < 0.92:
            text = await self.private_text(user_id)
            await self.feed(
                f"edited {user_id} {text!r}", edited_message=self.message(user_id, text=text)
            )
        elif roll < 0.98:
            await self.group(user_id)
        else:
            await self.odd(user_id)

    async def callback(self, user_id: int) -> None:
        rng = self.rng
        message = self.callback_message(user_id)
        roll = rng.random()
        own = message.reply_markup if isinstance(message, Message) else None
        if isinstance(message, Message) and message.document is not None:
            # Telegram delivers only a button the message has (or had): a file's buttons
            # never carry the data of a text message's, which would edit it as text.
            roll = 0.0
        if own is not None and roll < 0.45:
            # What users do most: tap a button of a message in their own chat.
            data = rng.choice([b.callback_data for row in own.inline_keyboard for b in row])
        elif isinstance(message, Message) and message.document is not None:
            return
        elif roll < 0.7 and (seen := self.seen_callback_data()):
            data = rng.choice(seen)  # any chat's: a stale button, or someone else's
        else:
            data = self.forged_callback_data()
        await self.confirm(user_id, data, message)

    async def confirm(
        self,
        user_id: int,
        data: str | None,
        message: Message | InaccessibleMessage,
        repeats: int = 0,
    ) -> None:
        """A tap that may confirm a send; then, as users do after "did not answer in time",
        maybe the old preview's Send once more, maybe the same SMS through the dialog again."""
        rng = self.rng
        confirms = await self.app.confirms(self.query(user_id, data, message))
        if (confirms or (data or "").startswith("blk:start:")) and rng.random() < 0.5:
            self.lose_next_answer()
        await self.tap(user_id, data, message)
        if confirms is None:
            return
        if rng.random() < 0.4:
            await self.tap(user_id, data, message)
        if repeats < 2 and rng.random() < 0.3:
            await self.repeat_dialog(user_id, *confirms, repeats=repeats + 1)

    def query(
        self, user_id: int, data: str | None, message: Message | InaccessibleMessage
    ) -> CallbackQuery:
        return CallbackQuery(
            id=f"fq{self.next_id()}",
            from_user=self.user(user_id),
            chat_instance="ci",
            data=data,
            message=message,
        )

    async def tap(
        self, user_id: int, data: str | None, message: Message | InaccessibleMessage
    ) -> list[SentMessage]:
        query = self.query(user_id, data, message)
        self.query_owner[query.id] = user_id
        description = f"tap {user_id} {data!r}"
        self.taps[query.id] = f"update #{len(self.fed) + 1} {description}"
        return await self.feed(description, callback_query=query)

    async def send_dialog(self, user_id: int) -> None:
        """A whole /send dialog up to the Send tap, so confirmed sends (and lost answers to
        them) are frequent enough to matter."""
        phone = self.rng.choice(["+998901234567", "901234567", "+998 90 111 22 01"])
        text = random_text(self.rng) or "x"
        await self.repeat_dialog(user_id, phone, f"{text} {self.next_id()}")

    async def repeat_dialog(self, user_id: int, phone: str, text: str, repeats: int = 0) -> None:
        """An SMS through the whole dialog, then Send on its preview."""
        for step in ("/send", phone, text):
            replies = await self.feed(
                f"repeat {user_id} {step!r}", message=self.message(user_id, text=step)
            )
        sends = [
            (m, d) for m in replies for _, d in m.buttons() if d and d.startswith("snd:send:")
        ]
        if sends:
            preview, data = sends[-1]
            await self.confirm(user_id, data, self.app.session._as_message(preview), repeats)

    async def media(self, user_id: int) -> None:
        rng = self.rng
        kind = rng.choice(["contact", "sticker", "photo", "document", "location", "voice"])
        fields: dict[str, Any]
        if kind == "contact":
            phone = rng.choice([*PHONE_BITS, "998901234567", "+998 90 111 22 0"])
            owner = user_id if rng.random() < 0.5 else rng.choice(USERS)
            fields = {"contact": Contact(phone_number=phone, first_name="<i>F</i>", user_id=owner)}
        elif kind == "sticker":
            fields = {"sticker": a_sticker()}
        elif kind == "photo":
            fields = {
                "photo": [PhotoSize(file_id="p", file_unique_id="p", width=1, height=1)],
                "caption": random_text(rng),
            }
        elif kind == "document":
            file_id = f"doc{self.next_id()}"
            content = self.document_content()
            self.app.session.upload(file_id, content)
            name = rng.choice(["a.csv", "b.xlsx", "c.txt", "noext", "<b>.csv", "😀.CSV", ""])
            size = len(content) if rng.random() < 0.9 else 50 * 1024 * 1024
            fields = {
                "document": Document(
                    file_id=file_id, file_unique_id=file_id, file_name=name, file_size=size
                ),
                "caption": random_text(rng) if rng.random() < 0.3 else None,
            }
        elif kind == "location":
            fields = {"location": Location(latitude=41.3, longitude=69.2)}
        else:
            fields = {"voice": Voice(file_id="v", file_unique_id="v", duration=1)}
        await self.feed(f"{kind} {user_id}", message=self.message(user_id, **fields))

    def document_content(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            lines = ["name,phone"] + [
                f"{random_text(rng).replace(',', ' ')},{rng.choice(PHONE_BITS)}"
                for _ in range(rng.randint(0, 25))
            ]
            return "\n".join(lines).encode(rng.choice(["utf-8", "utf-16"]))
        if roll < 0.7:
            return b"PK\x03\x04" + rng.randbytes(rng.randint(0, 300))
        return rng.randbytes(rng.randint(0, 500))

    async def group(self, user_id: int) -> None:
        rng = self.rng
        chat = Chat(
            id=rng.choice([ADMIN_GROUP, FOREIGN_GROUP, -4_000_123]),
            type=rng.choice(["group", "supergroup"]),
            title="Group",
        )
        text = self.command() if rng.random() < 0.6 else random_text(rng)
        message = self.message(user_id, chat=chat, text=text)
        if rng.random() < 0.1:
            # An anonymous admin or a linked channel: no user, only a sender chat.
            message = Message(
                message_id=self.next_id(),
                date=dt.datetime.now(dt.UTC),
                chat=chat,
                sender_chat=Chat(id=-100_999, type="channel", title="C"),
                text=text,
            )
        await self.feed(f"group {chat.id} {user_id} {text!r}", message=message)

    async def odd(self, user_id: int) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            post = Message(
                message_id=self.next_id(),
                date=dt.datetime.now(dt.UTC),
                chat=Chat(id=-100_999, type="channel", title="C"),
                text=random_text(rng),
            )
            await self.feed("channel post", channel_post=post)
        elif roll < 0.6:
            now = dt.datetime.now(dt.UTC)
            update = ChatMemberUpdated(
                chat=Chat(id=FOREIGN_GROUP, type="supergroup", title="Foreign"),
                from_user=self.user(user_id),
                date=now,
                old_chat_member=ChatMemberLeft(user=BOT_USER),
                new_chat_member=ChatMemberMember(user=BOT_USER),
            )
            await self.feed(f"bot added by {user_id}", my_chat_member=update)
        else:
            # A button under an inline-mode message: no message at all, only its id.
            query = CallbackQuery(
                id=f"fq{self.next_id()}",
                from_user=self.user(user_id),
                chat_instance="ci",
                data=self.forged_callback_data(),
                inline_message_id="inline",
            )
            await self.feed(f"inline tap {user_id}", callback_query=query)


# --- what the bot sent -------------------------------------------------------------------------


@dataclass
class Outgoing:
    chat_id: int
    text: str
    html: bool
    message: bool = False  # a message text (not a caption, file or callback answer)


def outgoing(fuzzer: Fuzzer) -> list[Outgoing]:
    """Every text the bot sent or edited in, with its chat; callback answers and files too."""
    found: list[Outgoing] = []
    for call in fuzzer.app.session.calls:
        if isinstance(call, SendMessage | EditMessageText):
            parse_mode = call.parse_mode
            is_html = isinstance(parse_mode, Default) or (parse_mode or "").lower() == "html"
            found.append(Outgoing(int(call.chat_id or 0), call.text or "", is_html, True))
        elif isinstance(call, SendDocument):
            found.append(Outgoing(int(call.chat_id), call.caption or "", True))
            document = call.document
            if isinstance(document, BufferedInputFile):
                data = document.data.decode("utf-8", errors="replace")
                found.append(Outgoing(int(call.chat_id), data, False))
        elif isinstance(call, AnswerCallbackQuery) and call.text:
            owner = fuzzer.query_owner.get(call.callback_query_id, 0)
            found.append(Outgoing(owner, call.text, False))
    return found


async def test_thousands_of_hostile_updates(
    fuzz_app: ConfirmingHarness, devsms: FakeDevsms, caplog: pytest.LogCaptureFixture
) -> None:
    app = fuzz_app
    caplog.set_level(logging.WARNING)
    for user_id in SEEDED:
        await seed_user(app, user_id)
    async with asyncio.timeout(10):
        await devsms.wait_sent(2 * len(SEEDED))
    # The markers are really there to leak: each user's SMS texts hold them.
    owners = {found[1] for sms in devsms.sent if (found := MARKER.search(sms.message))}
    assert owners == {str(user_id) for user_id in SEEDED}

    fuzzer = Fuzzer(app, devsms, random.Random(SEED))
    fuzzer.menu_labels = [
        app.services.i18n.gettext(label, locale=language)
        for label in MENU_BUTTONS
        for language in LANGUAGES
    ]

    def tag(record: logging.LogRecord) -> bool:
        record.fuzz_update = f"update #{len(fuzzer.fed)} {(fuzzer.fed or ['seed'])[-1]!r}"
        return True

    caplog.handler.addFilter(tag)
    while len(fuzzer.fed) < UPDATES:
        await fuzzer.burst()
    await app.dp["bulk_runner"].stop()  # jobs the fuzz started report before the checks

    # The money check: no SMS went out more often than its sender confirmed it, though some
    # sends were charged without an answer and then tapped again or repeated.
    sent_more_than_confirmed = {
        pair: (count, app.confirmed[pair])
        for pair, count in gateway_sends(devsms).items()
        if count > app.confirmed[pair]
    }
    assert sent_more_than_confirmed == {}
    # A loss is scoped to the send path, so it waits for a send: the ones used up hit one.
    waiting = [fault for fault in devsms._faults if fault.path == SEND]

    assert len(fuzzer.lost_answers) - len(waiting) >= 10, fuzzer.lost_answers

    assert fuzzer.failures == [], "\n".join(fuzzer.failures[:20])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], fuzzer.blame(errors)

    sent = outgoing(fuzzer)
    assert len(sent) > UPDATES // 2  # the fuzz reached the handlers, not only the filters
    went_wrong = {app.services.i18n.gettext(WENT_WRONG, locale=lang) for lang in LANGUAGES}
    assert not [o.text for o in sent if any(text in o.text for text in went_wrong)]

    leaks: dict[int, set[str]] = defaultdict(set)
    for out in sent:
        owners = {int(owner) for owner in MARKER.findall(out.text)}
        for owner in owners - {out.chat_id}:
            leaks[out.chat_id].add(f"MRK{owner}X in {out.text[:200]!r}")
    assert not leaks, dict(leaks)

    bad_html = []
    for out in (out for out in sent if out.html):
        try:
            parse_html(out.text)
        except TelegramRefusal as refusal:
            bad_html.append((out.chat_id, refusal.description, out.text[:300]))
    assert bad_html == []
    # Telegram refuses an empty text and one over 4096 characters once the tags are gone.
    assert [
        out.text[:100]
        for out in sent
        if out.html
        and out.message
        and not 0 < visible_length(parse_html(out.text)[0]) <= TELEGRAM_LIMIT
    ] == []
    assert not [out.text for out in sent if HOSTILE in out.text and out.html]
    # User text with HTML in it did reach the screen, escaped.
    assert any("&lt;script&gt;&amp;" in out.text for out in sent if out.html)

    # Every button in a private chat is answered exactly once (the spinner stops, and a
    # second answer would be refused by Telegram).
    answers: dict[str, int] = defaultdict(int)
    for call in app.session.of(AnswerCallbackQuery):
        answers[call.callback_query_id] += 1
    unanswered = [fuzzer.taps[q] for q in fuzzer.taps if answers[q] == 0]
    twice = [fuzzer.taps[q] for q in fuzzer.taps if answers[q] > 1]
    assert (unanswered[:10], twice[:10]) == ([], [])


# --- what the fuzz found, one input each -----------------------------------------------------


def answers_to(app: Harness, query_id: str) -> list[AnswerCallbackQuery]:
    return [a for a in app.session.of(AnswerCallbackQuery) if a.callback_query_id == query_id]


async def tap_as(
    app: Harness, user_id: int, data: str, message: Message | InaccessibleMessage
) -> tuple[str, list[SentMessage]]:
    query_id = f"q{next(app._ids)}"
    query = CallbackQuery(
        id=query_id,
        from_user=app.user(user_id, "en"),
        chat_instance="ci",
        data=data,
        message=message,
    )
    return query_id, await app.feed(callback_query=query)


def assert_handled_quietly(
    app: Harness, query_id: str, replies: list[SentMessage], caplog: pytest.LogCaptureFixture
) -> None:
    """Answered once, no "something went wrong", nothing logged as an unhandled error."""
    assert len(answers_to(app, query_id)) == 1
    assert not [m.text for m in replies if WENT_WRONG in m.text]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


TOO_BIG: Final = 2**64  # SQLite and the gateway hold int64; a forged button can hold more


@pytest.mark.parametrize(
    "data",
    [
        f"sms:0:{TOO_BIG}:0",
        f"sms:0:{TOO_BIG}:1",
        f"sms:{TOO_BIG}:0:0",
        f"job:open:{TOO_BIG}",
        f"job:cancel:{TOO_BIG}",
        f"tpl:open:{TOO_BIG}",
        f"tpl:drop:{TOO_BIG}",
        f"blk:tpl:0:{TOO_BIG}",
        f"hst:{TOO_BIG}:a",
    ],
)
async def test_forged_ids_beyond_int64_are_stale_buttons(
    fuzz_app: Harness, caplog: pytest.LogCaptureFixture, data: str
) -> None:
    app = fuzz_app
    await seed_user(app, ALI)  # has an SMS, a template and a bulk job, so the ids are looked up
    caplog.set_level(logging.WARNING)
    caplog.clear()
    query_id, replies = await tap_as(app, ALI, data, app.session._as_message(app.last(ALI)))
    assert_handled_quietly(app, query_id, replies, caplog)


def first_button(app: Harness, user_id: int, prefix: str) -> str:
    return next(
        data
        for sent in app.session.chat(user_id)
        for _, data in sent.buttons()
        if data is not None and data.startswith(prefix)
    )


@pytest.mark.parametrize(
    "prefix", ["bal", "hst:", "set:notify", "tpl:open:", "snd:", "sms:", "job:"]
)
async def test_buttons_under_a_message_the_bot_can_no_longer_read(
    fuzz_app: Harness, caplog: pytest.LogCaptureFixture, prefix: str
) -> None:
    """Telegram sends an InaccessibleMessage (date 0, no text) for a message that was deleted
    or is otherwise inaccessible to the bot; its buttons can still be tapped."""
    app = fuzz_app
    await seed_user(app, ALI)
    await app.send("/balance", ALI)
    await app.send("/history", ALI)
    await app.send("/settings", ALI)
    await app.send("/templates", ALI)
    await app.send("/jobs", ALI)
    await app.send("/send +998 90 123 45 67 hello", ALI)  # a live preview: snd:...
    data = first_button(app, ALI, prefix)
    old = InaccessibleMessage(chat=Chat(id=ALI, type="private"), message_id=1, date=0)
    caplog.set_level(logging.WARNING)
    caplog.clear()
    query_id, replies = await tap_as(app, ALI, data, old)
    assert_handled_quietly(app, query_id, replies, caplog)


@pytest.mark.parametrize("argument", ["9" * 30, "²", "-5"])
async def test_allow_with_a_number_that_is_no_user_id_is_answered_not_crashed(
    fuzz_app: Harness, caplog: pytest.LogCaptureFixture, argument: str
) -> None:
    caplog.set_level(logging.WARNING)
    [reply] = await fuzz_app.send(f"/allow {argument}", ADMIN)
    assert WENT_WRONG not in reply.text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
