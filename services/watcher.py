"""Low-balance alerts: every few minutes, the balance of every user with a working token.

A user hears once when their balance falls below their threshold, and again only after it
rose above it and fell again: the "below" flag lives in alert_prefs (AlertRepo.record_check),
so a restart does not repeat an alert. A token the gateway rejects is reported once, to the
user and to the admins. Admin notices go through services/admin_digest.py, which turns a
round's many low balances into one message.

Thousands of users are walked page by page (keyset paging) and checked by a fixed pool of
`concurrency` workers, so the gateway never sees more than that many requests at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Final, Protocol

from aiogram import html
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import I18n

from services.access import OPEN, AccessPolicy
from services.accounts import Accounts, NoToken
from services.admin_digest import AdminNotice, NoticeKind
from services.alert_rules import (
    Translate,
    count_text,
    days_left,
    is_below,
    money_text,
    sms_left,
    threshold_money,
    translator,
)
from services.devsms import (
    Balance,
    DevsmsError,
    DevsmsGatewayError,
    DevsmsUnauthorized,
    DevsmsUnavailable,
)
from services.health import GatewayHealth, Notify
from services.money import Money
from storage.alerts import AlertRepo, WatchTarget

logger = logging.getLogger(__name__)

# callback_data of the buttons under background messages. "bal" is what
# handlers.callbacks.BalanceCb().pack() gives; "tok" must be handled outside the HasToken gate,
# since the user it is sent to has no valid token any more.
BALANCE_CALLBACK: Final = "bal"
TOKEN_CALLBACK: Final = "tok"

PAGE_SIZE: Final = 500
# devsms counts "today" and "this month" on Tashkent time (UTC+5, no daylight saving); the
# client's zone (GATEWAY_TIMEZONE) is used when the watcher is given none.
GATEWAY_TZ: Final = timezone(timedelta(hours=5))


def gateway_today(zone: tzinfo = GATEWAY_TZ) -> date:
    return datetime.now(UTC).astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class RoundReport:
    checked: int
    """Users whose balance the gateway returned."""
    alerts_sent: int
    invalid: int
    """Tokens the gateway rejected during this round."""
    failed: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class Person:
    """Who a background notice is about."""

    user_id: int
    language: str | None
    first_name: str | None
    username: str | None


class _Result(Enum):
    CHECKED = "checked"
    ALERTED = "alerted"
    INVALID = "invalid"
    FAILED = "failed"
    SKIPPED = "skipped"  # the token went away since the page was read


class AdminNotices(Protocol):
    """services/admin_digest.AdminDigest: takes a notice and returns at once."""

    def add(self, notice: AdminNotice) -> None: ...


def button(label: str, callback_data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=label, callback_data=callback_data)]]
    )


def user_label(person: Person) -> str:
    """HTML for admins: 'Ali (@ali, id 42)'. Names are user-chosen, hence escaped."""
    name = html.quote(person.first_name) if person.first_name else "—"
    handle = f"@{html.quote(person.username)}, " if person.username else ""
    return f"{name} ({handle}id <code>{person.user_id}</code>)"


class BalanceWatcher:
    def __init__(
        self,
        alerts: AlertRepo,
        accounts: Accounts,
        notifier: Notify,
        i18n: I18n,
        *,
        admin: AdminNotices,
        default_language: str,
        default_threshold: Decimal,
        interval: float,
        concurrency: int,
        health: GatewayHealth,
        policy: AccessPolicy = OPEN,
        balance_callback: str = BALANCE_CALLBACK,
        token_callback: str = TOKEN_CALLBACK,
        page_size: int = PAGE_SIZE,
        today: Callable[[], date] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1 or page_size < 1 or interval <= 0:
            raise ValueError("concurrency and page_size must be positive, interval too")
        self._alerts = alerts
        self._accounts = accounts
        self._notifier = notifier
        self._admin = admin
        self._i18n = i18n
        self._default_language = default_language
        self._default_threshold = default_threshold
        self._interval = interval
        self._concurrency = concurrency
        self._health = health
        self._policy = policy
        self._balance_callback = balance_callback
        self._token_callback = token_callback
        self._page_size = page_size
        zone = accounts.devsms.timezone
        self._today = today if today is not None else lambda: gateway_today(zone)
        self._clock = clock

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Rounds forever, `interval` seconds apart. Cancel the task to stop it."""
        while True:
            try:
                report = await self.check_all()
            except Exception:
                # The database or the notifier broke mid-round; the next round starts afresh.
                logger.exception("balance round failed; next one in %.0f s", self._interval)
            else:
                logger.info(
                    "balance round: %s checked, %s alerts, %s invalid, %s failed in %.1f s",
                    report.checked,
                    report.alerts_sent,
                    report.invalid,
                    report.failed,
                    report.elapsed,
                )
            await asyncio.sleep(self._interval)

    async def check_all(self) -> RoundReport:
        """One round over every user with a valid token."""
        started = self._clock()
        results: Counter[_Result] = Counter()
        # Bounded, so paging only runs ahead of the workers by a little.
        queue: asyncio.Queue[WatchTarget | None] = asyncio.Queue(maxsize=self._concurrency * 2)

        async def worker() -> None:
            while (target := await queue.get()) is not None:
                results[await self._check_one(target)] += 1

        workers = [
            asyncio.create_task(worker(), name=f"balance-worker-{n}")
            for n in range(self._concurrency)
        ]
        try:
            after = 0
            while True:
                page = await self._alerts.watch_targets(after, self._page_size)
                for target in page:
                    await queue.put(target)
                if len(page) < self._page_size:
                    break
                after = page[-1].user_id
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return RoundReport(
            checked=results[_Result.CHECKED] + results[_Result.ALERTED],
            alerts_sent=results[_Result.ALERTED],
            invalid=results[_Result.INVALID],
            failed=results[_Result.FAILED],
            elapsed=self._clock() - started,
        )

    # --- one user --------------------------------------------------------------------------

    async def _check_one(self, target: WatchTarget) -> _Result:
        try:
            return await self._check(target)
        except Exception:
            # One user's trouble never ends the round for the others.
            logger.exception("balance check of user %s failed", target.user_id)
            return _Result.FAILED

    async def _check(self, target: WatchTarget) -> _Result:
        user_id = target.user_id
        if not self._policy.admits(user_id, target.access):
            return _Result.SKIPPED  # denied by an administrator: no more alerts
        try:
            balance = await self._accounts.balance(user_id, target.token_encrypted)
        except DevsmsUnauthorized:
            # Accounts has marked the token invalid; the next rounds skip this user.
            await self.token_rejected(_person(target))
            return _Result.INVALID
        except NoToken:
            return _Result.SKIPPED
        except (DevsmsGatewayError, DevsmsUnavailable) as exc:
            logger.info("balance of user %s: %s", user_id, type(exc).__name__)
            await self._health.record_failure()
            return _Result.FAILED
        except DevsmsError as exc:
            logger.warning("balance of user %s refused: %s", user_id, type(exc).__name__)
            return _Result.FAILED
        await self._health.record_success()

        prefs = target.prefs
        if prefs.invalid_notified:
            # The token works (a new one, or the gateway changed its mind): a later rejection
            # deserves a notice again.
            await self._alerts.set_invalid_notified(user_id, False)
        if balance.balance is None:
            logger.info("balance answer for user %s has no balance", user_id)
            return _Result.CHECKED
        threshold = threshold_money(prefs, self._default_threshold, balance.sms_price)
        crossed = await self._alerts.record_check(
            user_id, balance.balance.format(), below=is_below(balance.balance, threshold)
        )
        if not crossed or not prefs.balance_alerts or threshold is None:
            return _Result.CHECKED
        await self._low_balance(_person(target), balance, balance.balance, threshold)
        return _Result.ALERTED

    async def _low_balance(
        self, person: Person, balance: Balance, amount: Money, threshold: Money
    ) -> None:
        logger.info("user %s fell below the balance threshold", person.user_id)
        _ = self._translate(person.language)
        text = "\n".join(
            [
                _("⚠️ <b>Low balance: {balance}</b>").format(balance=money_text(amount, _)),
                *self._details(balance, amount, threshold, _),
                "",
                _("Top up your devsms account to keep sending SMS."),
            ]
        )
        await self._notifier.send(
            person.user_id, text, reply_markup=button(_("💰 Balance"), self._balance_callback)
        )
        self._admin.add(self._low_balance_note(person, balance, amount, threshold))

    def _low_balance_note(
        self, person: Person, balance: Balance, amount: Money, threshold: Money
    ) -> AdminNotice:
        _ = self._translate(None)  # admins read the default language
        summary = _("⚠️ Low balance of {user}: {balance}").format(
            user=user_label(person), balance=money_text(amount, _)
        )
        full = "\n".join([summary, *self._details(balance, amount, threshold, _)])
        line = f"{user_label(person)}: {money_text(amount, _)}"
        return AdminNotice(NoticeKind.LOW_BALANCE, text=full, line=line)

    def _details(
        self, balance: Balance, amount: Money, threshold: Money, _: Translate
    ) -> list[str]:
        lines: list[str] = []
        sms = sms_left(amount, balance.sms_price)
        if sms is not None:
            lines.append(_("Enough for about {n} SMS").format(n=count_text(sms)))
        days = days_left(amount, balance.statistics, self._today())
        if days == 0:
            lines.append(_("At the current pace it runs out today."))
        elif days is not None:
            lines.append(
                _("At the current pace it lasts about {days} more days.").format(days=days)
            )
        lines.append(_("Alert threshold: {threshold}").format(threshold=money_text(threshold, _)))
        return lines

    async def token_rejected(self, person: Person) -> bool:
        """Tells the user (and the admins) once that the gateway rejects their token.

        Also for services/tracker.py, which may be the first to meet the 401. Returns whether
        a notice went out.
        """
        if not await self._alerts.set_invalid_notified(person.user_id, True):
            return False
        logger.info("telling user %s that their token was rejected", person.user_id)
        _ = self._translate(person.language)
        await self._notifier.send(
            person.user_id,
            _(
                "🔑 devsms no longer accepts your token, so balance alerts and delivery "
                "reports have stopped. Connect a new token to continue."
            ),
            reply_markup=button(_("🔑 Connect a new token"), self._token_callback),
        )
        self._admin.add(self._token_note(person))
        return True

    def _token_note(self, person: Person) -> AdminNotice:
        _ = self._translate(None)
        text = _("🔑 devsms rejected the token of {user}.").format(user=user_label(person))
        return AdminNotice(NoticeKind.TOKEN_REJECTED, text=text, line=user_label(person))

    def _translate(self, language: str | None) -> Translate:
        return translator(self._i18n, language or self._default_language)


def _person(target: WatchTarget) -> Person:
    return Person(target.user_id, target.language, target.first_name, target.username)
