"""The /stats chart: daily SMS and spending as a PNG, and the numbers of its caption.

Pure functions over plain dataclasses. matplotlib is imported inside `draw_chart` only, so
importing this module (the bot does at start-up) costs nothing: the chart is drawn in a child
process (services.chart_desk) that imports matplotlib once. Texts arrive translated
(`ChartLabels`): the child has no gettext context.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

# 1000 × 600 px: sharp on a phone, about 40–70 kB as PNG.
_WIDTH_IN: Final = 10.0
_HEIGHT_IN: Final = 6.0
_DPI: Final = 100
# Dates on the x axis: at most this many labels, the others are skipped.
_MAX_TICKS: Final = 15
_DELIVERED: Final = "#2e9e5b"
_FAILED: Final = "#d64545"
_WAITING: Final = "#b8bec6"
_SPENT: Final = "#3f6fb5"
_BAR_WIDTH: Final = 0.8
# Around the axes (_fit): the margin at the figure's edges; the space under the title and
# between the two axes, where half a sum above an axes' top sticks out.
_PAD_IN: Final = 0.06
_GAP_IN: Final = 0.16
_TITLE_TOP: Final = 0.04
PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
# Modules the chart process imports when it starts, before its first chart.
PRELOAD: Final = ("matplotlib.figure", "matplotlib.backends.backend_agg")


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One day in the user's zone: SMS by outcome and what they cost."""

    day: dt.date
    delivered: int = 0
    failed: int = 0
    waiting: int = 0
    spent: Decimal = Decimal(0)

    @property
    def sms(self) -> int:
        return self.delivered + self.failed + self.waiting


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """Every text on the image, already in the user's language."""

    title: str
    sms_axis: str
    spent_axis: str
    delivered: str
    failed: str
    waiting: str
    empty: str
    """Written across an empty chart ("No SMS in these days")."""


@dataclass(frozen=True, slots=True)
class ChartSpec:
    days: tuple[DayPoint, ...]
    labels: ChartLabels

    def __reduce__(self) -> tuple[Any, ...]:
        # On its way to the chart process the days travel as columns of plain values: 90
        # DayPoints with their dates and Decimals pickle in ~0.5 ms on the bot's side (under
        # the GIL, so on the event loop's time), the columns in a tenth of that.
        days = self.days
        return (
            _spec_of_columns,
            (
                [p.day.toordinal() for p in days],
                [(p.delivered, p.failed, p.waiting, str(p.spent)) for p in days],
                self.labels,
            ),
        )


def _spec_of_columns(
    ordinals: list[int], values: list[tuple[int, int, int, str]], labels: ChartLabels
) -> ChartSpec:
    """ChartSpec.__reduce__'s way back: the same days, rebuilt in the chart process."""
    return ChartSpec(
        tuple(
            DayPoint(dt.date.fromordinal(o), d, f, w, Decimal(spent))
            for o, (d, f, w, spent) in zip(ordinals, values, strict=True)
        ),
        labels,
    )


def fill_days(points: list[DayPoint], first: dt.date, last: dt.date) -> tuple[DayPoint, ...]:
    """Every day from `first` to `last`, with zeros on days that had no SMS; points outside
    the span are left out."""
    by_day = {p.day: p for p in points if first <= p.day <= last}
    span = (last - first).days + 1
    return tuple(
        by_day.get(day, DayPoint(day))
        for day in (first + dt.timedelta(days=n) for n in range(max(span, 0)))
    )


@dataclass(frozen=True, slots=True)
class Summary:
    """The caption's numbers over the chart's days."""

    days: int
    sms: int
    delivered: int
    failed: int
    waiting: int
    spent: Decimal

    @property
    def delivery_rate(self) -> Decimal | None:
        """Delivered among the SMS whose outcome is known, in per cent; None with none."""
        settled = self.delivered + self.failed
        if not settled:
            return None
        return (Decimal(100) * self.delivered / settled).quantize(Decimal("0.1"), ROUND_HALF_UP)

    @property
    def spent_per_day(self) -> Decimal:
        return self.spent / self.days if self.days else Decimal(0)

    @property
    def sms_per_day(self) -> Decimal:
        return (
            (Decimal(self.sms) / self.days).quantize(Decimal("0.1"), ROUND_HALF_UP)
            if (self.days)
            else Decimal(0)
        )

    def days_left(self, balance: Decimal | None) -> int | None:
        """≈ whole days the balance lasts at this pace; None with no spending or no balance."""
        per_day = self.spent_per_day
        if balance is None or per_day <= 0:
            return None
        return max(int(balance / per_day), 0)


def summarise(days: tuple[DayPoint, ...]) -> Summary:
    return Summary(
        days=len(days),
        sms=sum(p.sms for p in days),
        delivered=sum(p.delivered for p in days),
        failed=sum(p.failed for p in days),
        waiting=sum(p.waiting for p in days),
        spent=sum((p.spent for p in days), Decimal(0)),
    )


def tick_positions(count: int, most: int = _MAX_TICKS) -> list[int]:
    """Indexes of the days that get a date label: every k-th, the last day always."""
    if count <= 0:
        return []
    step = max(1, -(-count // most))
    ticks = list(range(count - 1, -1, -step))
    return sorted(ticks)


def _amount_tick(value: float, _position: int | None = None) -> str:
    """An axis label for a sum: whole units, thousands apart by a space (2 decimals below 10)."""
    text = f"{value:,.0f}" if abs(value) >= 10 or value == 0 else f"{value:,.2f}"
    return text.replace(",", "\u202f")


def draw_chart(spec: ChartSpec) -> bytes:
    """The chart as PNG bytes: SMS per day stacked by outcome above, spending per day below."""
    # Lazy on purpose: matplotlib (with numpy) is tens of MB and a second of start-up that
    # a bot that never draws should not pay. Figure + the Agg canvas need no pyplot and no
    # global backend: nothing here touches a display or shared state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    days, labels = spec.days, spec.labels
    # No layout engine: constrained layout lays the figure out twice before it draws it, a
    # third of a chart's CPU (make bench, section 8); _fit places the axes in one measure.
    figure = Figure(figsize=(_WIDTH_IN, _HEIGHT_IN), dpi=_DPI)
    canvas = FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    title = figure.suptitle(labels.title, fontsize=14, y=1 - _TITLE_TOP / _HEIGHT_IN, va="top")
    delivered = [p.delivered for p in days]
    failed = [p.failed for p in days]
    waiting = [p.waiting for p in days]
    under = [d + f for d, f in zip(delivered, failed, strict=True)]
    _bars(top, delivered, [0] * len(days), _DELIVERED)
    _bars(top, failed, delivered, _FAILED)
    _bars(top, waiting, under, _WAITING)
    top.set_ylabel(labels.sms_axis)
    # The bars are one collection per colour, so the legend gets its keys by hand.
    keys = [
        Patch(color=colour, label=text)
        for colour, text in (
            (_DELIVERED, labels.delivered),
            (_FAILED, labels.failed),
            (_WAITING, labels.waiting),
        )
    ]
    top.legend(handles=keys, loc="upper left", fontsize=9, frameon=False, ncols=3)
    spent = [float(p.spent) for p in days]
    _bars(bottom, spent, [0] * len(days), _SPENT)
    bottom.set_ylabel(labels.spent_axis)
    # Sums in full with a space between thousands ("1 250 000"), as uz/ru write them: not
    # matplotlib's "1e6" above the axis, which an owner reads as a formula.
    bottom.yaxis.set_major_formatter(FuncFormatter(_amount_tick))
    for axes in (top, bottom):
        axes.grid(axis="y", alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
        axes.yaxis.get_major_locator().set_params(integer=True)
    top_peak = max((p.sms for p in days), default=0)
    # Headroom above the tallest bar for the legend; an empty chart still gets an axis.
    top.set_ylim(0, max(top_peak, 1) * 1.25)
    spent_peak = max(spent, default=0.0)
    # Bars' own margin above the tallest one, as matplotlib's autoscaling leaves it.
    bottom.set_ylim(0, spent_peak * 1.05 if spent_peak > 0 else 1)
    ticks = tick_positions(len(days))
    bottom.set_xticks(ticks, [days[i].day.strftime("%d.%m") for i in ticks])
    bottom.tick_params(axis="x", labelsize=8)
    bottom.set_xlim(-0.6, max(len(days), 1) - 0.4)
    if top_peak == 0:
        top.text(
            0.5, 0.5, labels.empty, transform=top.transAxes, ha="center", va="center",
            fontsize=13, color="#666666",
        )  # fmt: skip
    _fit(figure, canvas.get_renderer(), top, bottom, title)  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _bars(axes: Any, heights: list[float] | list[int], bases: list[int], colour: str) -> None:
    """One bar a day, `heights` standing on `bases`: one collection of rectangles.

    Not Axes.bar: that makes a Rectangle artist per bar, each set up, laid out and drawn on
    its own, ~80 ms of a 30-day chart's CPU against ~5 ms for one collection of all of them.
    """
    from matplotlib.collections import PolyCollection

    half = _BAR_WIDTH / 2
    boxes = [
        ((x - half, base), (x - half, base + height), (x + half, base + height), (x + half, base))
        for x, (height, base) in enumerate(zip(heights, bases, strict=True))
        if height
    ]
    axes.add_collection(
        PolyCollection(boxes, facecolors=colour, edgecolors="none", linewidths=0),
        autolim=False,
    )


def _fit(figure: Any, renderer: Any, top: Any, bottom: Any, title: Any) -> None:
    """Places the two axes as large as the texts around them allow.

    What a layout engine does, measured once: constrained layout measures every artist of
    the figure twice before the figure is drawn, a third of a chart's CPU. Only four things
    stick out of the axes: the title above, the dates below, the sums on the left (as wide
    as the largest one) with the axis names, and the last date on the right. Heights first:
    the title and the dates do not depend on the axes' width, while how many sums the left
    axes get depends on their heights.
    """
    width, height = figure.bbox.width, figure.bbox.height
    pad, gap = _PAD_IN * figure.dpi, _GAP_IN * figure.dpi
    ceiling = title.get_window_extent(renderer).y0 - gap
    # An axis without ticks (a chart of no days) has no box: it takes no room.
    dates = bottom.xaxis.get_tightbbox(renderer) or bottom.bbox
    floor = bottom.bbox.y0 - dates.y0 + pad
    # The space between the axes: hspace is a share of the axes' average height.
    figure.subplots_adjust(
        top=ceiling / height, bottom=floor / height, hspace=2 * gap / (ceiling - floor - gap)
    )
    left = max(
        axes.bbox.x0 - (axes.yaxis.get_tightbbox(renderer) or axes.bbox).x0
        for axes in (top, bottom)
    )
    right = max(dates.x1 - bottom.bbox.x1, 0)
    figure.subplots_adjust(left=(left + pad) / width, right=1 - (right + pad) / width)
