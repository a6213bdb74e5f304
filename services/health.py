"""Is the devsms gateway answering? One admin notice when it stops, one when it is back.

Background jobs (services/watcher.py, services/tracker.py) call the gateway for many users in
a row; a single failed call says little, N failures in a row across users say the gateway
(or the network to it) is down. Admins hear about it once per outage, not once per user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from services.events import GatewayDown, GatewayUp, Notices

logger = logging.getLogger(__name__)


class GatewayHealth:
    """Counts consecutive gateway failures across users.

    State changes happen before the notice is queued, so concurrent workers that fail (or
    succeed) at the same moment still produce exactly one notice.
    """

    def __init__(
        self,
        outage_after: int,
        notices: Notices,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if outage_after < 1:
            raise ValueError("outage_after must be at least 1")
        self._outage_after = outage_after
        self._notices = notices
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
        await self._notices.emit(GatewayUp(down_for))

    async def record_failure(self) -> None:
        self._failures += 1
        if self._down_since is not None or self._failures < self._outage_after:
            return
        self._down_since = self._clock()
        logger.warning("devsms gateway: %s failures in a row, reporting an outage", self._failures)
        await self._notices.emit(GatewayDown(self._failures))
