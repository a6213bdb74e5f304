"""The /stats chart as pure functions: a real PNG, the caption's numbers, empty days."""

from __future__ import annotations

import datetime as dt
import io
import struct
from decimal import Decimal
from typing import Any

import pytest

from services.charts import (
    PNG_MAGIC,
    ChartLabels,
    ChartSpec,
    DayPoint,
    draw_chart,
    fill_days,
    summarise,
    tick_positions,
)
from tests.support.lazy_probe import loaded_lazy_modules

FIRST = dt.date(2026, 11, 2)
RU = ChartLabels(
    title="Расходы и SMS · 30 дней",
    sms_axis="SMS в день",
    spent_axis="Расход, сум",
    delivered="Доставлено",
    failed="Не доставлено",
    waiting="Ожидают",
    empty="За эти дни SMS не было",
)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def days(n: int) -> tuple[DayPoint, ...]:
    points = [
        DayPoint(FIRST + dt.timedelta(days=i), i % 5, i % 2, i % 3, Decimal(50 * (i % 5)))
        for i in range(n)
    ]
    return fill_days(points, FIRST, FIRST + dt.timedelta(days=n - 1))


@pytest.mark.parametrize("n", [7, 30, 90])
def test_chart_is_a_png_of_sane_size(n: int) -> None:
    png = draw_chart(ChartSpec(days(n), RU))
    assert png_size(png) == (1000, 600)
    # Small enough for a photo (Telegram: 10 MB), not a blank picture either.
    assert 10_000 < len(png) < 500_000


def test_labels_reach_the_picture_in_the_users_language() -> None:
    """The translated texts are what the figure draws (no English fallback on the axes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure

    drawn: list[str] = []
    original = Figure.savefig

    def capture(self: Figure, *args: object, **kwargs: object) -> None:
        drawn.extend(t.get_text() for t in self.findobj(lambda o: hasattr(o, "get_text")))
        original(self, *args, **kwargs)

    Figure.savefig = capture  # type: ignore[method-assign]
    try:
        draw_chart(ChartSpec(days(7), RU))
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
    for text in (RU.title, RU.sms_axis, RU.spent_axis, RU.delivered, RU.failed, RU.waiting):
        assert text in drawn
    assert "02.11" in drawn and "08.11" in drawn
    assert RU.empty not in drawn


def test_days_without_sms_still_draw_a_chart_that_says_so() -> None:
    empty = fill_days([], FIRST, FIRST + dt.timedelta(days=29))
    assert len(empty) == 30 and all(p.sms == 0 and p.spent == 0 for p in empty)
    png = draw_chart(ChartSpec(empty, RU))
    assert png_size(png) == (1000, 600)
    assert summarise(empty).delivery_rate is None
    assert summarise(empty).days_left(Decimal(1000)) is None


def test_fill_days_puts_zeros_between_known_days_and_drops_outside_ones() -> None:
    points = [
        DayPoint(FIRST, delivered=2),
        DayPoint(FIRST + dt.timedelta(days=3), failed=1),
        DayPoint(FIRST - dt.timedelta(days=1), delivered=9),
    ]
    filled = fill_days(points, FIRST, FIRST + dt.timedelta(days=4))
    assert [p.day.day for p in filled] == [2, 3, 4, 5, 6]
    assert [p.sms for p in filled] == [2, 0, 0, 1, 0]


def test_summary_numbers() -> None:
    points = (
        DayPoint(FIRST, delivered=8, failed=2, waiting=5, spent=Decimal(750)),
        DayPoint(FIRST + dt.timedelta(days=1), delivered=1, failed=0, spent=Decimal(50)),
    )
    summary = summarise(points)
    assert (summary.sms, summary.delivered, summary.failed, summary.waiting) == (16, 9, 2, 5)
    assert summary.spent == Decimal(800)
    # Waiting SMS have no outcome yet: the rate is over delivered + failed.
    assert summary.delivery_rate == Decimal("81.8")
    assert summary.spent_per_day == Decimal(400)
    assert summary.sms_per_day == Decimal("8.0")
    assert summary.days_left(Decimal(10_000)) == 25
    assert summary.days_left(None) is None


def test_ticks_never_crowd_and_keep_the_last_day() -> None:
    assert tick_positions(7) == list(range(7))
    ninety = tick_positions(90)
    assert len(ninety) <= 15 and ninety[-1] == 89
    assert tick_positions(0) == []


def test_importing_the_bot_does_not_import_matplotlib() -> None:
    """Idle memory and start-up stay as they were: matplotlib is loaded only in the chart
    process, when the first chart is drawn."""
    loaded = loaded_lazy_modules()["after import"]
    assert [m for m in loaded if m.split(".")[0] in ("matplotlib", "numpy")] == []


def test_spending_axis_writes_sums_in_full_with_thousands_apart() -> None:
    """An owner reads "15 000 000", not matplotlib's "1.5" under a "1e7" above the axis."""
    from matplotlib.figure import Figure

    drawn: list[str] = []
    original = Figure.savefig

    def capture(self: Figure, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # tick labels are formatted while drawing
        drawn.extend(t.get_text() for t in self.findobj(lambda o: hasattr(o, "get_text")))

    first = dt.date(2026, 11, 2)
    spent = [
        DayPoint(first + dt.timedelta(days=n), delivered=900, spent=Decimal(12_000_000 + n))
        for n in range(7)
    ]
    Figure.savefig = capture  # type: ignore[method-assign]
    try:
        draw_chart(ChartSpec(tuple(spent), RU))
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
    assert "10\u202f000\u202f000" in drawn
    assert not [text for text in drawn if "e" in text.lower() and text[:1].isdigit()]


def drawn_texts(spec: ChartSpec, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every text the chart puts on the picture, with its box in pixels."""
    from matplotlib.text import Text

    drawn: dict[tuple[str, tuple[float, ...]], Any] = {}
    original = Text.draw

    def record(self: Text, renderer: Any) -> None:
        original(self, renderer)
        if self.get_visible() and self.get_text():
            box = self.get_window_extent(renderer)
            # Keyed by place too: a layout engine's measuring pass draws each text once more.
            drawn[self.get_text(), tuple(box.bounds)] = box

    monkeypatch.setattr(Text, "draw", record)
    draw_chart(spec)
    return [(text, box) for (text, _bounds), box in drawn.items()]


@pytest.mark.parametrize(
    ("n", "per_day", "spent_per_day"),
    [(7, 3, Decimal("0.75")), (30, 120, Decimal(1500)), (90, 250_000, Decimal(987_654_321))],
)
def test_no_text_is_cut_off_or_drawn_over_another(
    n: int, per_day: int, spent_per_day: Decimal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The axes are placed around their texts: the widest sums, the axis names, the title and
    the last date all stay inside the picture and apart from each other."""
    points = [
        DayPoint(FIRST + dt.timedelta(days=i), per_day, i % 3, 1, spent_per_day * (i + 1))
        for i in range(n)
    ]
    spec = ChartSpec(fill_days(points, FIRST, FIRST + dt.timedelta(days=n - 1)), RU)
    texts = drawn_texts(spec, monkeypatch)
    assert {RU.title, RU.sms_axis, RU.spent_axis} <= {text for text, _box in texts}
    for text, box in texts:
        assert 0 <= box.x0 <= box.x1 <= 1000 and 0 <= box.y0 <= box.y1 <= 600, text
    for i, (text, box) in enumerate(texts):
        for other, other_box in texts[i + 1 :]:
            assert not box.overlaps(other_box), (text, other)


def test_bars_stack_by_outcome_with_their_areas_in_proportion() -> None:
    """Delivered, failed and waiting stand on each other: 3:1:1 SMS show as 3:1:1 of colour
    (each colour also marks its legend key, the same size for all three)."""
    from matplotlib.image import imread

    points = [DayPoint(FIRST + dt.timedelta(days=i), 60, 20, 20, Decimal(100)) for i in range(30)]
    spec = ChartSpec(fill_days(points, FIRST, FIRST + dt.timedelta(days=29)), RU)
    pixels = (imread(io.BytesIO(draw_chart(spec)), format="png")[:, :, :3] * 255).round()

    def area(colour: str) -> int:
        rgb = [int(colour[k : k + 2], 16) for k in (1, 3, 5)]
        return int((abs(pixels - rgb).max(axis=2) <= 2).sum())

    delivered, failed, waiting = area("#2e9e5b"), area("#d64545"), area("#b8bec6")
    key = 20 * 7  # a legend key: about 2 em × 0.7 em at 9 pt, 100 dpi
    assert failed > key and waiting > key and area("#3f6fb5") > 10_000
    assert (delivered - key) / (failed - key) == pytest.approx(3, rel=0.1)
    assert (waiting - key) / (failed - key) == pytest.approx(1, rel=0.1)


def test_a_chart_of_no_days_is_still_a_picture() -> None:
    # No dates on the axis: the layout must not need their box.
    assert png_size(draw_chart(ChartSpec((), RU))) == (1000, 600)
