"""Is the devsms gateway answering? One admin notice when it stops, one when it is back.

Background jobs (services/watcher.py, services/tracker.py) call the gateway for many users in
a row; a single failed call says little, N failures in a row across users say the gateway
(or the network to it) is down. Admins hear about it once per outage, not once per user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, Protocol

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n

from services.alert_rules import Translate, translator

logger = logging.getLogger(__name__)

_SECONDS_PER_MINUTE: Final = 60
_MINUTES_PER_HOUR: Final = 60


class Notify(Protocol):
    """What background jobs need from the paced notifier (services/notifier.py).

    `send` waits for the paced delivery (a user's notices keep their order and pace the job);
    `post_to_admins` queues and returns: a worker must not wait behind the admin group's
    20 messages a minute. Neither raises for Telegram errors.
    """

    async def send(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> object: ...

    def post_to_admins(
        self, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> bool: ...


class GatewayHealth:
    """Counts consecutive gateway failures across users.

    State changes happen before the notice is queued, so concurrent workers that fail (or
    succeed) at the same moment still produce exactly one notice.
    """

    def __init__(
        self,
        outage_after: int,
        notify: Notify,
        *,
        i18n: I18n | None = None,
        language: str = "en",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if outage_after < 1:
            raise ValueError("outage_after must be at least 1")
        self._outage_after = outage_after
        self._notify = notify
        self._ = translator(i18n, language) if i18n is not None else _untranslated
        self._clock = clock
        self._failures = 0
        self._down_since: float | None = None

    async def record_success(self) -> None:
        self._failures = 0
        if self._down_since is None:
            return
        down_for = self._clock() - self._down_since
        self._down_since = None
        logger.warning("devsms gateway answers again after %.0f s", down_for)
        _ = self._
        self._notify.post_to_admins(
            _("✅ The devsms gateway answers again. It was down for about {duration}.").format(
                duration=duration_text(down_for, _)
            )
        )

    async def record_failure(self) -> None:
        self._failures += 1
        if self._down_since is not None or self._failures < self._outage_after:
            return
        self._down_since = self._clock()
        logger.warning("devsms gateway: %s failures in a row, reporting an outage", self._failures)
        _ = self._
        self._notify.post_to_admins(
            _(
                "🚨 The devsms gateway is not answering: {n} requests in a row failed. "
                "Balance checks and delivery tracking continue and will catch up."
            ).format(n=self._failures)
        )


def duration_text(seconds: float, _: Translate) -> str:
    """'45 s', '12 min', '3 h 5 min'."""
    if seconds < _SECONDS_PER_MINUTE:
        return _("{seconds} s").format(seconds=max(int(seconds), 0))
    minutes = int(seconds // _SECONDS_PER_MINUTE)
    if minutes < _MINUTES_PER_HOUR:
        return _("{minutes} min").format(minutes=minutes)
    hours, minutes = divmod(minutes, _MINUTES_PER_HOUR)
    return _("{hours} h {minutes} min").format(hours=hours, minutes=minutes)


def _untranslated(msgid: str) -> str:
    return msgid
