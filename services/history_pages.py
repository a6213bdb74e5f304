"""The one way the bot pages through a user's gateway history (``get_history.php``).

The history's answer shape is undocumented (devsms-api.md, "History"): a page may hold fewer
entries than asked for (a gateway that caps its pages lower), a ``total`` may come or not, and
a gateway may ignore the offset altogether. Everything that reads history with offsets, the
/history pages, the reconciliation walk and the bulk delivery results, reads it through
:class:`HistoryCursor`, so that each of those answers is handled once:

- the next offset is where the last page ended, so a short page skips nothing;
- only an empty list, or an offset that reached the ``total``, ends the history; an answer
  with no list in it (a shape the parser does not know) is a gateway error, never the end;
- the same first entry again at a new offset means the gateway does not page: the cursor
  stops (``stuck``) instead of reading the same page forever.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from services.devsms import HISTORY_MAX_LIMIT, DevsmsGatewayError, HistoryPage, SmsRecord

logger = logging.getLogger(__name__)


class HistorySource(Protocol):
    """services.accounts.Accounts: one page of a user's history with their token."""

    async def history(
        self, user_id: int, *, limit: int = ..., offset: int = ..., status: str | None = ...
    ) -> HistoryPage: ...


def record_identity(record: SmsRecord) -> object:
    """What tells two history entries apart: the gateway's id, else what the entry shows."""
    if record.sms_id is not None:
        return ("id", record.sms_id)
    if record.request_id is not None:
        return ("request", record.request_id)
    return ("entry", record.phone, record.message, str(record.created_at))


@dataclass(slots=True)
class HistoryCursor:
    """A user's history read forward from ``offset``, newest first, one page per call.

    Gateway errors propagate from :meth:`read` and leave the cursor where it was, so a caller
    may go on later from the same place; an answer without a list of entries is one of them
    (DevsmsGatewayError).
    """

    source: HistorySource
    user_id: int
    limit: int = HISTORY_MAX_LIMIT
    status: str | None = None
    offset: int = 0
    ended: bool = False
    """The history has no more entries (an empty page, or the offset reached the total)."""
    stuck: bool = False
    """The gateway answered the same page for another offset: nothing after it is known."""
    _last_first: object = None

    @property
    def finished(self) -> bool:
        return self.ended or self.stuck

    async def read(self) -> HistoryPage:
        """The next page; an empty one once the history ended or does not page."""
        if self.finished:
            return HistoryPage(items=[])
        page = await self.source.history(
            self.user_id, limit=self.limit, offset=self.offset, status=self.status
        )
        if not page.listed:
            # Read as "no entries", it would end a reconciliation walk after its first page
            # and let it conclude that an SMS which went out is not there.
            raise DevsmsGatewayError("devsms: history answer without a list of entries")
        items = page.items
        if not items:
            self.ended = True
            return page
        first = record_identity(items[0])
        if first == self._last_first:
            logger.warning("history of user %s does not page; reading stopped", self.user_id)
            self.stuck = True
            return HistoryPage(items=[], total=page.total)
        self._last_first = first
        self.offset += len(items)
        if page.total is not None and self.offset >= page.total:
            self.ended = True
        return page

    async def pages(self, most: int) -> AsyncIterator[HistoryPage]:
        """Up to ``most`` more pages, none of them empty, until the history ends."""
        for _ in range(most):
            page = await self.read()
            if not page.items:
                return
            yield page
