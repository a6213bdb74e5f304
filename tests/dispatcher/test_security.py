"""Secrets stay secret and users stay apart: tokens at rest, in logs and on screen, key
rotation, copied ciphertext, admin commands from non-admins, and the log masking filter."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendDocument, SendMessage
from aiogram.types import BufferedInputFile, CallbackQuery, Chat, Message

from bot.factory import open_services
from bot.logging_setup import MASK, SecretMaskFilter
from services.key_rotation import rotate_all
from services.vault import TokenVault, VaultError
from storage.users import Access
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import BOT_TOKEN, Harness
from tests.support.notifiers import immediate_app
from tests.support.recording import BOT_USER

ALI, BOB, CARL = 1, 2, 3
ADMIN = 999_000
ADMIN_GROUP = -100_500
OTHER_GROUP = -100_777
THIRD_TOKEN: Final = "devsms-third-token-0003"
TOKENS: Final = {ALI: GOOD_TOKEN, BOB: OTHER_TOKEN, CARL: THIRD_TOKEN}
UNKNOWN_COMMAND = "I do not know this command. /help lists what I can do."
ADMIN_COMMANDS: Final = ("/admin", "/users", "/broadcast", "/allow 1", "/deny 1")

AppFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def make_app(tmp_path: Path, devsms: FakeDevsms) -> AppFactory:
    """The app over the test's one database file; settings overridable per instance."""
    devsms.add_account(THIRD_TOKEN, balance=3_000, sms_price=50)
    key = TokenVault.generate_key()

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[Harness]:
        values: dict[str, Any] = {
            "admin_ids": (ADMIN,),
            "admin_chat_id": ADMIN_GROUP,
            "encryption_key": key,
        }
        values.update(overrides)
        async with immediate_app(make_settings(tmp_path, devsms.url, **values)) as (app, _):
            yield app

    return build


@pytest.fixture
async def app(make_app: AppFactory) -> AsyncIterator[Harness]:
    async with make_app() as built:
        yield built


async def connect(app: Harness, user_id: int) -> None:
    await app.send("/start", user_id)
    replies = await app.send(TOKENS[user_id], user_id)
    assert any("Token connected" in m.text for m in replies if m.chat_id == user_id)
    await app.dp["notifier"].settle()  # the admin notice goes out after the handler returned


def everything_sent(app: Harness) -> str:
    """Every text the bot sent, edited in, answered with or attached, in one string."""
    parts: list[str] = []
    for call in app.session.calls:
        if isinstance(call, SendMessage | EditMessageText | AnswerCallbackQuery):
            parts.append(call.text or "")
        elif isinstance(call, SendDocument):
            parts.append(call.caption or "")
            if isinstance(call.document, BufferedInputFile):
                parts.append(call.document.data.decode("utf-8", errors="replace"))
    return "\n".join(parts)


def formatted_logs(records: list[logging.LogRecord], *, masked: bool) -> str:
    """The log lines as the bot's handler writes them, tracebacks included."""
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    mask = SecretMaskFilter((BOT_TOKEN,))
    lines = []
    for record in records:
        copy = logging.makeLogRecord(record.__dict__)
        if masked:
            mask.filter(copy)
        lines.append(formatter.format(copy))
    return "\n".join(lines)


def database_bytes(folder: Path) -> bytes:
    """The database with its WAL and shared-memory files: rows may sit in any of them."""
    return b"".join(path.read_bytes() for path in folder.glob("bot.sqlite3*"))


# --- no plaintext devsms token anywhere -----------------------------------------------------


async def test_tokens_never_reach_the_database_the_logs_or_any_message(
    app: Harness, devsms: FakeDevsms, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for user_id in (ALI, BOB):
        await connect(app, user_id)
        [preview] = await app.send("/send +998 90 123 45 67 Salom", user_id)
        [result] = await app.tap(preview, "Send", user_id)
        assert "Sent." in result.text
        [balance] = await app.send("/balance", user_id)
        await app.tap(balance, "Refresh", user_id)
        [history] = await app.send("/history", user_id)
        [card] = await app.tap(history, "1", user_id)
        await app.tap(card, "Refresh", user_id)
    # A token the gateway refuses, and the gateway failing while a token is checked.
    await app.send("/token", CARL)
    await app.send("devsms-refused-token-9999", CARL)
    devsms.fail_next(2, status=502, body="<html>Bad Gateway</html>")
    await app.send(THIRD_TOKEN, CARL)
    [confirm] = await app.send("/logout", ALI)
    await app.tap(confirm, "Yes, delete everything", ALI)
    assert len(devsms.sent) == 2

    secrets = [*TOKENS.values(), "devsms-refused-token-9999"]
    stored = database_bytes(tmp_path)
    for secret in secrets:
        assert secret.encode("utf-8") not in stored
        assert secret.encode("utf-16-le") not in stored
    # Even without the masking filter: it knows the bot token, not the users' tokens.
    raw_logs = formatted_logs(caplog.records, masked=False)
    assert "connected a devsms token" in raw_logs  # the logs did capture the flow
    for secret in secrets:
        assert secret not in raw_logs
    assert BOT_TOKEN not in formatted_logs(caplog.records, masked=True)
    shown = everything_sent(app)
    for secret in secrets:
        assert secret not in shown


# --- key rotation ---------------------------------------------------------------------------


async def test_rotation_moves_every_row_to_the_new_key_and_the_bot_runs_on_it_alone(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    old_key, new_key = TokenVault.generate_key(), TokenVault.generate_key()
    async with make_app(encryption_key=old_key) as app:
        for user_id in TOKENS:
            await connect(app, user_id)
        before = await app.services.credentials.all_encrypted()
        rotated = await rotate_all(app.services.credentials, TokenVault([new_key, old_key]))
        after = await app.services.credentials.all_encrypted()

    assert rotated == len(TOKENS)
    assert [user_id for user_id, _ in after] == sorted(TOKENS)
    for (user_id, old_blob), (_, new_blob) in zip(before, after, strict=True):
        assert new_blob != old_blob
        assert TokenVault([new_key]).decrypt(user_id, new_blob) == TOKENS[user_id]
        with pytest.raises(VaultError):
            TokenVault([old_key]).decrypt(user_id, new_blob)
    assert "now use the first key" in caplog.text

    # The old key can go: the bot started with the new key alone still works for everyone.
    async with make_app(encryption_key=new_key) as app:
        for user_id, expected in ((ALI, "10\u00a0000"), (BOB, "500"), (CARL, "3\u00a0000")):
            [balance] = await app.send("/balance", user_id)
            assert f"Balance: {expected} so'm" in balance.text


async def test_rotation_leaves_rows_no_key_opens_and_names_their_users(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    old_key, lost_key, new_key = (TokenVault.generate_key() for _ in range(3))
    async with make_app(encryption_key=old_key) as app:
        await connect(app, ALI)
        await connect(app, BOB)
        lost = TokenVault([lost_key]).encrypt(BOB, OTHER_TOKEN)
        await app.services.credentials.save(BOB, lost)

        rotated = await rotate_all(app.services.credentials, TokenVault([new_key, old_key]))

        assert rotated == 1
        rows = dict(await app.services.credentials.all_encrypted())
        assert TokenVault([new_key]).decrypt(ALI, rows[ALI]) == GOOD_TOKEN
        assert rows[BOB] == lost  # untouched: whoever holds the lost key can still read it
        assert "1 of 2 stored tokens do not decrypt with any configured key (users 2)" in (
            caplog.text
        )
        assert OTHER_TOKEN not in caplog.text and GOOD_TOKEN not in caplog.text


async def test_rotating_again_is_harmless(
    make_app: AppFactory,
) -> None:
    old_key, new_key = TokenVault.generate_key(), TokenVault.generate_key()
    async with make_app(encryption_key=old_key) as app:
        await connect(app, ALI)
        vault = TokenVault([new_key, old_key])
        assert await rotate_all(app.services.credentials, vault) == 1
        [(_, once)] = await app.services.credentials.all_encrypted()
        assert await rotate_all(app.services.credentials, vault) == 1
        [(_, twice)] = await app.services.credentials.all_encrypted()
    assert twice != once  # Fernet takes a fresh IV each time
    assert TokenVault([new_key]).decrypt(ALI, twice) == GOOD_TOKEN


# --- ciphertext copied between users ----------------------------------------------------------


async def test_a_copied_credential_row_does_not_open_another_users_account(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await connect(app, ALI)
    await connect(app, BOB)
    await app.services.db.execute(
        "UPDATE credentials SET token_encrypted = "
        "(SELECT token_encrypted FROM credentials WHERE user_id = ?) WHERE user_id = ?",
        (ALI, BOB),
    )

    [reply] = await app.send("/balance", BOB)
    assert reply.text == "First connect your devsms token: /start"
    assert "cannot be decrypted" in caplog.text  # the operator learns why
    # From now on Bob is a user without a token, led to connect one; never Ali's account.
    [reply] = await app.send("/history", BOB)
    assert "First connect your devsms token." in reply.text
    assert not await app.services.accounts.has_token(BOB)
    bob_saw = "\n".join(m.text for m in app.session.chat(BOB))
    assert "10\u00a0000" not in bob_saw  # Ali's balance
    # Ali is not affected.
    [balance] = await app.send("/balance", ALI)
    assert "Balance: 10\u00a0000 so'm" in balance.text


# --- admin commands from non-admins ---------------------------------------------------------


def message_in(app: Harness, chat: Chat, user_id: int, text: str) -> Message:
    return Message(
        message_id=next(app._ids),
        date=dt.datetime.now(dt.UTC),
        chat=chat,
        from_user=app.user(user_id, "en"),
        text=text,
    )


@pytest.mark.parametrize("chat_type", ["group", "supergroup"])
async def test_admin_commands_from_non_admins_are_refused_in_every_chat(
    app: Harness, chat_type: str
) -> None:
    await connect(app, ALI)  # one non-admin with a token, one (Bob) without
    await app.send("/start", BOB)
    access_before = await app.services.users.get_access(ALI)
    admin_group = Chat(id=ADMIN_GROUP, type=chat_type, title="Admins")
    other_group = Chat(id=OTHER_GROUP, type=chat_type, title="Elsewhere")
    for user_id in (ALI, BOB):
        for command in (*ADMIN_COMMANDS, "/admin@test_bot", "/broadcast hello all"):
            [reply] = await app.send(command, user_id)
            assert reply.text == UNKNOWN_COMMAND, (user_id, command)
            replies = await app.feed(message=message_in(app, other_group, user_id, command))
            assert replies == [], (user_id, command)
            [reply] = await app.feed(message=message_in(app, admin_group, user_id, command))
            assert (reply.chat_id, reply.text) == (ADMIN_GROUP, UNKNOWN_COMMAND)
        # Nothing happened: no broadcast dialog, no access decision, no admin screens.
        assert await app.state_of(user_id) in (None, "TokenForm:token")
    assert await app.services.users.get_access(ALI) == access_before  # /allow 1, /deny 1
    sent = everything_sent(app)
    assert "Bot summary" not in sent and "<b>Users</b>" not in sent
    assert app.session.chat(ADMIN) == []
    [reply] = await app.send("hello", ALI)
    assert "Use the menu below" in reply.text
    # The same commands work for the admin: the refusal is about who asks.
    [summary] = await app.send("/admin", ADMIN)
    assert "Bot summary" in summary.text


async def test_admin_buttons_forged_by_a_non_admin_do_nothing(
    make_app: AppFactory,
) -> None:
    async with make_app(access_mode="allowlist") as app:
        [polite] = await app.send("/start", 7)
        for data in ("acc:7:1", "pnd:7:1", "usr:0", "bc:send:1"):
            await app.tap_data(polite, data, user_id=7)
            assert app.answers()[-1].text == "Only administrators can use this button."
        assert await app.services.users.get_access(7) in (None, Access.PENDING)
        [reply] = await app.send("/start", 7)
        assert reply.text.startswith("This bot is private")
        [reply] = await app.send("/allow 7", 7)
        assert reply.text == UNKNOWN_COMMAND
        assert await app.services.users.get_access(7) in (None, Access.PENDING)


async def test_admin_buttons_in_another_group_get_no_reply_at_all(app: Harness) -> None:
    group = Chat(id=OTHER_GROUP, type="supergroup", title="Elsewhere")
    under = Message(
        message_id=77, date=dt.datetime.now(dt.UTC), chat=group, from_user=BOT_USER, text="x"
    )
    for user_id, data in ((BOB, "usr:0"), (BOB, "acc:2:1"), (ADMIN, "usr:0")):
        query = CallbackQuery(
            id=f"q{next(app._ids)}",
            from_user=app.user(user_id, "en"),
            chat_instance="ci",
            data=data,
            message=under,
        )
        assert await app.feed(callback_query=query) == []
    assert [a.text for a in app.answers() if a.text] == []
    assert await app.services.users.get_access(BOB) != Access.ALLOWED


# --- the log masking filter -----------------------------------------------------------------

DEVSMS_SECRET: Final = "dsms_live_6f1c2a9e0b7d4e3f"


def masked(record: logging.LogRecord, secrets: tuple[str, ...] = ()) -> str:
    SecretMaskFilter(secrets).filter(record)
    return logging.Formatter("%(message)s").format(record)


def record(msg: str, *args: object, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("test", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_mask_filter_hides_a_bot_token_in_the_arguments() -> None:
    text = masked(record("POST %s failed", f"https://api.telegram.org/bot{BOT_TOKEN}/getMe"))
    assert BOT_TOKEN not in text
    assert text == f"POST https://api.telegram.org/bot{MASK}/getMe failed"


@pytest.mark.parametrize(
    ("template", "secret"),
    [
        ("headers: {'Authorization': 'Bearer %s'}", "xyz.secret-1"),
        ("Authorization: Bearer %s", "xyz.secret-2"),
        ("GET /balance.php?token=%s&page=2", "abcdef123456"),
        ('{"token": "%s"}', "json-secret-77"),
        ("form token=%s", DEVSMS_SECRET),
    ],
)
def test_mask_filter_hides_bearer_headers_and_token_fields(template: str, secret: str) -> None:
    text = masked(record(template, secret))
    assert secret not in text
    assert MASK in text


def test_mask_filter_hides_secrets_in_the_traceback_too() -> None:
    try:
        raise RuntimeError(
            f"request to /bot{BOT_TOKEN}/x with Authorization: Bearer xyz "
            f"and token={DEVSMS_SECRET}"
        )
    except RuntimeError:
        rec = record("call failed for %s", "Bearer xyz", exc_info=sys.exc_info())
    mask = SecretMaskFilter((DEVSMS_SECRET,))
    mask.filter(rec)
    text = logging.Formatter("%(message)s").format(rec)
    assert "RuntimeError" in text  # the traceback is still there, only masked
    for secret in (BOT_TOKEN, "xyz", DEVSMS_SECRET):
        assert secret not in text


def test_mask_filter_hides_listed_secrets_wherever_they_stand() -> None:
    # A devsms token has no telltale shape; the bot passes the ones it must hide.
    text = masked(record("user pasted %s", DEVSMS_SECRET), secrets=(DEVSMS_SECRET,))
    assert text == f"user pasted {MASK}"


def test_mask_filter_keeps_ordinary_messages() -> None:
    text = masked(record("user %s sent %s SMS to %s", 42, 3, "+998 90 *** ** 67"))
    assert text == "user 42 sent 3 SMS to +998 90 *** ** 67"


async def test_starting_with_a_new_key_first_re_encrypts_every_token(tmp_path: Path) -> None:
    """ENCRYPTION_KEY=new,old at start-up: afterwards the old key can be dropped."""
    old, new = TokenVault.generate_key(), TokenVault.generate_key()
    fake = FakeDevsms()
    fake.add_account(GOOD_TOKEN)
    await fake.start()
    try:
        first = await open_services(make_settings(tmp_path, fake.url, encryption_key=old))
        await first.users.upsert_seen(5, "Ann", None)
        await first.accounts.connect(5, GOOD_TOKEN)
        await first.close()
        rotated = await open_services(
            make_settings(tmp_path, fake.url, encryption_key=f"{new},{old}")
        )
        await rotated.close()
        only_new = await open_services(make_settings(tmp_path, fake.url, encryption_key=new))
        assert await only_new.accounts.token_for(5) == GOOD_TOKEN
        await only_new.close()
    finally:
        await fake.stop()
