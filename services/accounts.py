"""A user's devsms connection: the encrypted token and the calls made with it."""

from __future__ import annotations

import enum
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from services.devsms import (
    Balance,
    DevsmsClient,
    DevsmsUnauthorized,
    HistoryPage,
    SendResult,
    SmsRecord,
)
from services.otp import OtpRequest
from services.vault import TokenVault, VaultError
from storage import CredentialRepo

logger = logging.getLogger(__name__)
T = TypeVar("T")


class NoToken(Exception):
    """The user has no working devsms token: lead them to connect one."""


class SharedBalances(Protocol):
    """Recent balances every replica reads (services.shared_stores.RedisBalances): a send
    through one replica must not leave another one's preview on the old balance."""

    async def put(self, user_id: int, balance: Balance) -> None: ...

    async def get(self, user_id: int) -> Balance | None: ...

    async def drop(self, user_id: int) -> None: ...


class Accounts:
    def __init__(
        self,
        credentials: CredentialRepo,
        vault: TokenVault,
        devsms: DevsmsClient,
        shared: SharedBalances | None = None,
        shared_for: float = 60.0,
    ) -> None:
        self._credentials = credentials
        self._vault = vault
        self.devsms = devsms
        # One process: the balances seen, by user. Replicas: `shared` answers recent_balance
        # (it keeps each for `shared_for` seconds); the dict still serves last_balance, the
        # fallback a preview shows when the gateway does not answer.
        self._balances: dict[int, tuple[float, Balance]] = {}
        self._shared = shared
        self._shared_for = shared_for

    async def connect(self, user_id: int, token: str) -> Balance:
        """Checks the token against the gateway, then stores it encrypted.

        Nothing is stored unless the gateway accepted the token; its errors propagate.
        """
        balance = await self.devsms.get_balance(token)
        await self._credentials.save(user_id, self._vault.encrypt(user_id, token))
        logger.info("user %s connected a devsms token", user_id)
        return balance

    async def is_stored(self, user_id: int, token: str) -> bool:
        """Whether `token` is the one stored for the user (valid or not): then it is the same
        devsms account, whose record stays. The gateway names no account, so the token is
        the account's identity; it is compared in memory, nothing else is kept of it."""
        row = await self._credentials.get(user_id)
        if row is None:
            return False
        try:
            stored = self._vault.decrypt(user_id, row.token_encrypted)
        except VaultError:
            return False
        return hmac.compare_digest(stored.encode(), token.encode())

    async def has_token(self, user_id: int) -> bool:
        row = await self._credentials.get(user_id)
        return row is not None and row.state == "valid"

    async def stored_token(self, user_id: int) -> bytes | None:
        """The user's token as stored (encrypted) while it is valid, else None: comparing it
        is cheaper than decrypting it again (a bulk job checks it before every row)."""
        row = await self._credentials.get(user_id)
        return row.token_encrypted if row is not None and row.state == "valid" else None

    async def token_for(self, user_id: int, encrypted: bytes | None = None) -> str:
        """The user's token; pass `encrypted` when it was already read with a page of users
        (the balance watcher), which saves a database round trip per user."""
        if encrypted is None:
            row = await self._credentials.get(user_id)
            if row is None or row.state != "valid":
                raise NoToken
            encrypted = row.token_encrypted
        try:
            return self._vault.decrypt(user_id, encrypted)
        except VaultError:
            # A key was removed from ENCRYPTION_KEY or the row was tampered with.
            logger.error("stored token of user %s cannot be decrypted", user_id)
            await self._credentials.mark_invalid(user_id)
            raise NoToken from None

    async def session(self, user_id: int, encrypted: bytes | None = None) -> AccountSession:
        """The user's token decrypted for a series of calls; NoToken when there is none that
        works. Pass `encrypted` when it was already read (see token_for)."""
        if encrypted is None:
            encrypted = await self.stored_token(user_id)
            if encrypted is None:
                raise NoToken
        return AccountSession(self, user_id, await self.token_for(user_id, encrypted), encrypted)

    async def _call(
        self, user_id: int, call: Callable[[str], Awaitable[T]], encrypted: bytes | None = None
    ) -> T:
        """Runs one gateway call with the user's token; a 401 marks the token invalid."""
        return await (await self.session(user_id, encrypted)).call(call)

    async def balance(self, user_id: int, encrypted: bytes | None = None) -> Balance:
        balance = await self._call(user_id, self.devsms.get_balance, encrypted)
        self._balances[user_id] = (time.monotonic(), balance)
        if self._shared is not None:
            await self._shared.put(user_id, balance)
        return balance

    async def recent_balance(self, user_id: int, max_age: float = 60.0) -> Balance:
        """The balance seen at most `max_age` seconds ago: previews need the price, and a user
        editing a draft should not cost a gateway call per keystroke."""
        if self._shared is not None:
            if max_age >= self._shared_for and (kept := await self._shared.get(user_id)):
                return kept
            return await self.balance(user_id)
        cached = self._balances.get(user_id)
        if cached is not None and time.monotonic() - cached[0] <= max_age:
            return cached[1]
        return await self.balance(user_id)

    def last_balance(self, user_id: int) -> Balance | None:
        """The last balance seen, however old, without a gateway call."""
        cached = self._balances.get(user_id)
        return None if cached is None else cached[1]

    async def forget_balance(self, user_id: int) -> None:
        """The balance changed, or may have: the next recent_balance asks the gateway."""
        self._balances.pop(user_id, None)
        if self._shared is not None:
            await self._shared.drop(user_id)

    async def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> HistoryPage:
        return await self._call(
            user_id,
            lambda token: self.devsms.get_history(
                token, limit=limit, offset=offset, status=status
            ),
        )

    async def status(
        self, user_id: int, *, sms_id: int | None = None, request_id: str | None = None
    ) -> SmsRecord:
        return await self._call(
            user_id,
            lambda token: self.devsms.get_status(token, sms_id=sms_id, request_id=request_id),
        )

    async def send(
        self,
        user_id: int,
        phone: str,
        message: str,
        sender: str | None,
        *,
        callback_url: str | None = None,
    ) -> SendResult:
        """One POST, never retried: see DevsmsClient.send_sms."""
        session = await self.session(user_id)
        return await session.send(phone, message, sender, callback_url=callback_url)

    async def send_otp(
        self, user_id: int, phone: str, otp: OtpRequest, *, callback_url: str | None = None
    ) -> SendResult:
        """One universal_otp POST, never retried: see DevsmsClient.send_otp."""
        session = await self.session(user_id)
        return await session.send_otp(phone, otp, callback_url=callback_url)

    async def token_rejected(self, user_id: int) -> None:
        logger.info("devsms rejected the token of user %s; marked invalid", user_id)
        await self._credentials.mark_invalid(user_id)


class TokenState(enum.Enum):
    CURRENT = "current"
    """The token stored now is the one the session holds."""
    GONE = "gone"
    """No working token is stored any more (/logout, a 401, a key that no longer decrypts)."""
    CHANGED = "changed"
    """The user connected another token: the old one must not be used again."""


class AccountSession:
    """One user's connection over a series of calls (a bulk job's run): the token decrypted
    once, every call made with it through the gateway client, a 401 handled in one place (the
    stored token is marked invalid), and whether the token stored now is still this one.

    Holds a decrypted token: it is never logged, pickled into FSM data, or shown (see repr).
    """

    __slots__ = ("_accounts", "_encrypted", "_token", "user_id")

    def __init__(self, accounts: Accounts, user_id: int, token: str, encrypted: bytes) -> None:
        self._accounts = accounts
        self.user_id = user_id
        self._token = token
        self._encrypted = encrypted

    def __repr__(self) -> str:
        return f"AccountSession(user_id={self.user_id})"

    async def call(self, call: Callable[[str], Awaitable[T]]) -> T:
        try:
            return await call(self._token)
        except DevsmsUnauthorized:
            await self._accounts.token_rejected(self.user_id)
            raise

    async def send(
        self, phone: str, message: str, sender: str | None, *, callback_url: str | None = None
    ) -> SendResult:
        """One POST, never retried: see DevsmsClient.send_sms. A 401 marks the token invalid
        and propagates: the request was refused, nothing went out."""
        devsms = self._accounts.devsms
        return await self.call(
            lambda token: devsms.send_sms(
                token, phone, message, sender=sender, callback_url=callback_url
            )
        )

    async def send_otp(
        self, phone: str, otp: OtpRequest, *, callback_url: str | None = None
    ) -> SendResult:
        """One universal_otp POST, never retried; a 401 marks the token invalid."""
        devsms = self._accounts.devsms
        return await self.call(
            lambda token: devsms.send_otp(
                token,
                phone,
                template_type=otp.template_type,
                service_name=otp.service_name,
                otp_code=otp.code,
                callback_url=callback_url,
            )
        )

    async def check(self) -> TokenState:
        """Whether the stored token is still this session's: after /token or /logout the old
        one must not send another SMS. Comparing the stored ciphertext is cheap (a bulk job
        asks before every row); it is decrypted only when it changed, since the same token
        saved again is encrypted anew and is no change."""
        stored = await self._accounts.stored_token(self.user_id)
        if stored is None:
            return TokenState.GONE
        if stored == self._encrypted:
            return TokenState.CURRENT
        try:
            token = await self._accounts.token_for(self.user_id, stored)
        except NoToken:  # no longer decrypts: marked invalid
            return TokenState.GONE
        if token != self._token:
            return TokenState.CHANGED
        self._encrypted = stored
        return TokenState.CURRENT
