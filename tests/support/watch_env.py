"""A balance-watcher / delivery-tracker world: the bot's storage and gateway client over one
database file, a fake gateway, and the bot's own presentation of events over a notifier that
records instead of calling Telegram."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n

from bot.notices.digest import AdminDigest
from bot.notices.presenter import Presenter
from services.accounts import Accounts
from services.devsms import DevsmsClient
from services.health import GatewayHealth
from services.vault import TokenVault
from services.watcher import BalanceWatcher
from storage import AlertRepo, CredentialRepo, Database, UserRepo
from tests.fakes.fake_devsms import FakeDevsms

THRESHOLD = Decimal(5_000)
WAIT_LIMIT = 5.0


@dataclass
class Sent:
    chat_id: int | None  # None: the admin group
    text: str
    reply_markup: InlineKeyboardMarkup | None

    def buttons(self) -> list[tuple[str, str | None]]:
        if self.reply_markup is None:
            return []
        return [
            (b.text, b.callback_data) for row in self.reply_markup.inline_keyboard for b in row
        ]


@dataclass
class RecordingNotify:
    """Stands in for bot/notices/notifier.Notifier: records instead of calling Telegram."""

    messages: list[Sent] = field(default_factory=list)
    edits: list[tuple[int, int, str]] = field(default_factory=list)
    """(chat_id, message_id, new text) of every edit."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> str:
        self.messages.append(Sent(chat_id, text, reply_markup))
        async with self.changed:
            self.changed.notify_all()
        return "delivered"

    async def wait_for(self, chat_id: int) -> None:
        """Until a message to `chat_id` was recorded (TimeoutError after WAIT_LIMIT)."""
        async with asyncio.timeout(WAIT_LIMIT), self.changed:
            await self.changed.wait_for(lambda: bool(self.to(chat_id)))

    async def edit(self, chat_id: int, message_id: int, text: str, **_: object) -> str:
        self.edits.append((chat_id, message_id, text))
        return "delivered"

    def post(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        self.messages.append(Sent(chat_id, text, reply_markup))

    def post_to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> bool:
        self.messages.append(Sent(None, text, reply_markup))
        return True

    def to(self, chat_id: int) -> list[Sent]:
        return [m for m in self.messages if m.chat_id == chat_id]

    @property
    def admin(self) -> list[Sent]:
        return self.to(None)  # type: ignore[arg-type]


class World:
    """The bot's storage and gateway client over one database file; reopen = restart."""

    def __init__(
        self, path: Path | str, devsms: FakeDevsms, vault: TokenVault, i18n: I18n
    ) -> None:
        self.path, self.devsms, self.vault, self.i18n = path, devsms, vault, i18n
        self.notify = RecordingNotify()
        # Each admin notice at once; a test that wants digests puts one with an interval here.
        self.digest = self._digest(self.notify)

    async def open(self) -> World:
        self.db = await Database.open(self.path)
        self.users = UserRepo(self.db)
        self.credentials = CredentialRepo(self.db)
        self.alerts = AlertRepo(self.db)
        self.client = DevsmsClient(self.devsms.url, timeout=2.0, get_retries=0, backoff=0.01)
        self.accounts = Accounts(self.credentials, self.vault, self.client)
        return self

    @property
    def notices(self) -> Presenter:
        """Over `notify` and the current `digest` (a test may put one with a window there)."""
        return self.presenter(self.notify)

    def presenter(self, notify: RecordingNotify) -> Presenter:
        """The bot's presentation of events over `notify`, admin notices without a window."""
        digest = self.digest if notify is self.notify else self._digest(notify)
        return Presenter(notify, digest, self.i18n, self.users, default_language="en")

    def _digest(self, notify: RecordingNotify) -> AdminDigest:
        return AdminDigest(notify, self.i18n, language="en", interval=0)

    async def close(self) -> None:
        await self.client.close()
        await self.db.close()

    async def restart(self) -> None:
        await self.close()
        await self.open()

    async def add_user(
        self,
        user_id: int,
        token: str,
        *,
        balance: int = 20_000,
        language: str | None = None,
        first_name: str = "Ali",
        username: str | None = None,
    ) -> None:
        self.devsms.add_account(token, balance=balance, sms_price=50)
        await self.users.upsert_seen(user_id, first_name, username)
        await self.users.set_language(user_id, language)
        await self.credentials.save(user_id, self.vault.encrypt(user_id, token))

    def watcher(
        self, *, concurrency: int = 4, outage_after: int = 3, **kwargs: Any
    ) -> BalanceWatcher:
        self.health = GatewayHealth(outage_after, self.notices)
        return BalanceWatcher(
            self.alerts,
            self.accounts,
            self.notices,
            default_threshold=THRESHOLD,
            interval=kwargs.pop("interval", 600.0),
            concurrency=concurrency,
            health=self.health,
            **kwargs,
        )
