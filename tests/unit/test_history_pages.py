"""Paging the gateway's history: one cursor for /history, the walk and the delivery results."""

from __future__ import annotations

from services.devsms import HistoryPage, SmsRecord
from services.history_pages import HistoryCursor


class Gateway:
    """``count`` SMS newest first; pages of at most ``cap``; a total when ``totals``."""

    def __init__(self, count: int, *, cap: int = 200, totals: bool = False) -> None:
        self.entries = [SmsRecord(sms_id=count - n) for n in range(count)]
        self.cap, self.totals = cap, totals
        self.asked: list[tuple[int, int, str | None]] = []

    async def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> HistoryPage:
        self.asked.append((limit, offset, status))
        items = self.entries[offset : offset + min(limit, self.cap)]
        return HistoryPage(items=items, total=len(self.entries) if self.totals else None)


async def test_a_short_page_is_not_the_end_an_empty_one_is() -> None:
    gateway = Gateway(5, cap=2)
    cursor = HistoryCursor(gateway, 1, limit=10, status="DELIVERED")
    ids = [[r.sms_id for r in page.items] async for page in cursor.pages(10)]
    assert ids == [[5, 4], [3, 2], [1]]
    assert gateway.asked == [(10, o, "DELIVERED") for o in (0, 2, 4, 5)]
    assert cursor.ended and not cursor.stuck
    assert (await cursor.read()).items == []  # nothing more is asked
    assert len(gateway.asked) == 4


async def test_the_total_ends_the_history_without_asking_for_an_empty_page() -> None:
    gateway = Gateway(4, cap=2, totals=True)
    cursor = HistoryCursor(gateway, 1)
    assert len([page async for page in cursor.pages(10)]) == 2
    assert [offset for _limit, offset, _status in gateway.asked] == [0, 2]


async def test_pages_stop_at_the_bound_and_go_on_from_there() -> None:
    gateway = Gateway(10, cap=3)
    cursor = HistoryCursor(gateway, 1)
    assert len([page async for page in cursor.pages(2)]) == 2
    assert cursor.offset == 6 and not cursor.finished
    [rest] = [[r.sms_id for r in page.items] async for page in cursor.pages(1)]
    assert rest == [4, 3, 2]
