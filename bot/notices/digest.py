"""Admin notices of one kind that come in a burst go out as one digest per interval.

Telegram lets a bot post about 20 messages a minute into a group. Thirty users connecting a
token at once used to mean thirty notices, the last of them 90 s late, and every other admin
notice (an outage, a low balance) queued behind them. Here a notice opens a window of
`interval` seconds for its kind; when the window closes, whatever came in during it goes out
as one message:

- a lone notice goes out on its own, as it would have without the digest (with its buttons),
  only up to `interval` seconds later. Waiting for the window end, rather than sending the
  first notice at once, is what makes a burst of N one message "N users …" instead of the
  first notice plus a digest of the other N-1; no notice here is urgent to the second;
- two or more become "N users connected a devsms token:" with one line each, clipped to
  Telegram's 4096 characters with "… and M more", and the buttons of the first few notices.

`interval` 0 turns digests off: each notice goes out at once. Adding never waits (handlers
add notices), and `close()` sends what is still collected, before the notifier stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import I18n

from bot.notices.notifier import Clock, Post, RealClock
from handlers.sms_render import TELEGRAM_LIMIT

logger = logging.getLogger(__name__)

# Notices whose buttons a digest carries: more rows would bury the list under buttons.
DIGEST_BUTTON_ROWS: Final = 5
# Notices kept per window; beyond these only the count grows (a flood must not grow memory).
KEEP_PER_WINDOW: Final = 200

Translate = Callable[[str], str]
Plural = Callable[[str, str, int], str]


class NoticeKind(StrEnum):
    TOKEN_CONNECTED = "token_connected"
    ACCESS_REQUEST = "access_request"
    LOW_BALANCE = "low_balance"
    TOKEN_REJECTED = "token_rejected"


# Admins must see these even without an admin group: they go to each admin's private chat.
ACTIONABLE: Final = frozenset({NoticeKind.ACCESS_REQUEST})


@dataclass(frozen=True, slots=True)
class AdminNotice:
    kind: NoticeKind
    text: str
    """HTML: the notice on its own."""
    line: str
    """HTML: its line in a digest."""
    reply_markup: InlineKeyboardMarkup | None = None
    """Under the notice on its own."""
    buttons: tuple[InlineKeyboardButton, ...] = ()
    """Its row of buttons under a digest (the first few notices only)."""


@dataclass(slots=True)
class _Window:
    notices: list[AdminNotice] = field(default_factory=list)
    count: int = 0


class AdminDigest:
    def __init__(
        self,
        notifier: Post,
        i18n: I18n | None,
        *,
        language: str,
        interval: float,
        admin_ids: Iterable[int] = (),
        clock: Clock | None = None,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self._notifier = notifier
        self._i18n = i18n
        self._language = language
        self._interval = interval
        self._admin_ids = tuple(admin_ids)
        self._clock: Clock = clock or RealClock()
        self._windows: dict[NoticeKind, _Window] = {}
        self._timers: dict[NoticeKind, asyncio.Task[None]] = {}
        self._closed = False

    def add(self, notice: AdminNotice) -> None:
        """Collects the notice for its kind's window (opening one); never waits."""
        if self._interval == 0 or self._closed:
            self._send(notice.kind, [notice], 1)
            return
        window = self._windows.setdefault(notice.kind, _Window())
        window.count += 1
        if len(window.notices) < KEEP_PER_WINDOW:
            window.notices.append(notice)
        if notice.kind not in self._timers:
            self._timers[notice.kind] = asyncio.create_task(
                self._close_window(notice.kind), name=f"admin-digest-{notice.kind}"
            )

    async def close(self) -> None:
        """Sends every open window now; later notices go out one by one."""
        self._closed = True
        timers = list(self._timers.values())
        for task in timers:
            task.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        self._timers.clear()
        for kind in list(self._windows):
            self._flush(kind)

    async def _close_window(self, kind: NoticeKind) -> None:
        try:
            await self._clock.sleep(self._interval)
        finally:
            # Also when cancelled: close() flushes right after, and no stale timer may stay.
            if self._timers.get(kind) is asyncio.current_task():
                del self._timers[kind]
        self._flush(kind)

    def _flush(self, kind: NoticeKind) -> None:
        window = self._windows.pop(kind, None)
        if window is not None and window.notices:
            self._send(kind, window.notices, window.count)

    def _send(self, kind: NoticeKind, notices: list[AdminNotice], count: int) -> None:
        logger.info("admin notice: %s × %s", kind, count)
        try:
            if count == 1:
                text, markup = notices[0].text, notices[0].reply_markup
            else:
                text, markup = self._digest(kind, notices, count), _rows(notices)
            if self._notifier.post_to_admins(text, reply_markup=markup) or kind not in ACTIONABLE:
                return
            for admin_id in self._admin_ids:
                self._notifier.post(admin_id, text, reply_markup=markup)
        except Exception:
            # Called from a handler or a timer: one broken notice must not break either.
            logger.exception("could not queue an admin notice")

    def _digest(self, kind: NoticeKind, notices: list[AdminNotice], count: int) -> str:
        _, ngettext = self._texts()
        return clip_lines(
            headline(kind, count, ngettext),
            [notice.line for notice in notices],
            count,
            footnote(kind, _),
            ngettext,
        )

    def _texts(self) -> tuple[Translate, Plural]:
        """gettext and ngettext in the admins' language (DEFAULT_LANGUAGE)."""
        i18n, language = self._i18n, self._language
        if i18n is None:
            return (lambda msgid: msgid), (lambda one, many, n: one if n == 1 else many)
        return (
            lambda msgid: i18n.gettext(msgid, locale=language),
            lambda one, many, n: i18n.gettext(one, many, n, locale=language),
        )


def headline(kind: NoticeKind, n: int, ngettext: Plural) -> str:
    if kind is NoticeKind.TOKEN_CONNECTED:
        text = ngettext(
            "🔑 {n} user connected a devsms token:", "🔑 {n} users connected a devsms token:", n
        )
    elif kind is NoticeKind.ACCESS_REQUEST:
        text = ngettext("🙋 {n} new user asks for access:", "🙋 {n} new users ask for access:", n)
    elif kind is NoticeKind.LOW_BALANCE:
        text = ngettext("⚠️ {n} user has a low balance:", "⚠️ {n} users have a low balance:", n)
    else:
        text = ngettext(
            "🔑 devsms rejected the token of {n} user:",
            "🔑 devsms rejected the tokens of {n} users:",
            n,
        )
    return text.format(n=n)


def footnote(kind: NoticeKind, _: Translate) -> str | None:
    if kind is NoticeKind.ACCESS_REQUEST:
        return _("/pending lists every waiting request.")
    return None


def clip_lines(
    header: str,
    lines: list[str],
    count: int,
    footer: str | None,
    ngettext: Plural,
    limit: int = TELEGRAM_LIMIT,
) -> str:
    """The header, as many lines as fit under `limit`, "… and M more", then the footer.

    `count` may exceed len(lines) (notices beyond KEEP_PER_WINDOW). Lengths are counted on
    the HTML, which is never shorter than the text Telegram counts.
    """
    tail = [footer] if footer else []
    # Room for the longest "… and M more" there can be, so the last line always fits.
    size = len(header) + sum(1 + len(text) for text in tail) + 1 + len(more_text(count, ngettext))
    body = [header]
    for line in lines:
        item = f"• {line}"
        if size + 1 + len(item) > limit:
            break
        body.append(item)
        size += 1 + len(item)
    shown = len(body) - 1
    if shown < count:
        body.append(more_text(count - shown, ngettext))
    return "\n".join([*body, *tail])


def more_text(n: int, ngettext: Plural) -> str:
    return ngettext("… and {n} more", "… and {n} more", n).format(n=n)


def _rows(notices: list[AdminNotice]) -> InlineKeyboardMarkup | None:
    rows = [list(notice.buttons) for notice in notices if notice.buttons][:DIGEST_BUTTON_ROWS]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
