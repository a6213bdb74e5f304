"""Texts and buttons of /stats and /export, in the user's language. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Final

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import ExportAction, ExportCb, StatsCb
from handlers.plural import ngettext
from handlers.render import count, money
from services.charts import ChartLabels, Summary
from services.export import ExportTexts, Period, RangeProblem
from services.money import SOM_MSGID, USD, Money, grouped
from storage.traffic import Totals

STATS_DAYS: Final = (7, 30, 90)
DEFAULT_DAYS: Final = 7
ACTIVE_MARK: Final = "• "


def currency_unit(currency: str) -> str:
    """The unit on the spending axis: "so'm" / "сум", or "$"."""
    if currency == USD:
        return "$"
    return _(SOM_MSGID).format(amount="").strip()


def chart_labels(days: int, currency: str) -> ChartLabels:
    return ChartLabels(
        title=ngettext(
            "SMS and spending, last {n} day", "SMS and spending, last {n} days", days
        ).format(n=days),
        sms_axis=_("SMS a day"),
        spent_axis=_("Spent a day, {unit}").format(unit=currency_unit(currency)),
        delivered=_("Delivered"),
        failed=_("Not delivered"),
        waiting=_("Waiting"),
        empty=_("No SMS in these days"),
    )


def _percent(value: Decimal) -> str:
    return f"{value:.1f}%"


def _per_day(amount: Decimal, currency: str) -> Decimal:
    """So'm to the tiyin; dollars keep their fractions of a cent (Money.format rounds them)."""
    return amount if currency == USD else amount.quantize(Decimal("0.01"))


def stats_caption(days: int, summary: Summary, currency: str, balance: Money | None) -> str:
    """The caption under the chart (Telegram: at most 1024 characters; this is ~400)."""
    title = ngettext("📊 <b>Last {n} day</b>", "📊 <b>Last {n} days</b>", days).format(n=days)
    lines = [title]
    if not summary.sms:
        lines.append(_("No SMS in these days."))
    else:
        lines.append(
            _(
                "SMS: {sms} · delivered {delivered}, not delivered {failed}, waiting {waiting}"
            ).format(
                sms=count(summary.sms),
                delivered=count(summary.delivered),
                failed=count(summary.failed),
                waiting=count(summary.waiting),
            )
        )
        rate = summary.delivery_rate
        lines.append(
            _("Delivery rate: {rate}").format(rate=_percent(rate))
            if rate is not None
            else _("Delivery rate: no results yet")
        )
    lines.append(
        _("Spent: {spent} · {per_day} a day · {sms_per_day} SMS a day").format(
            spent=money(Money(summary.spent, currency)),
            per_day=money(Money(_per_day(summary.spent_per_day, currency), currency)),
            sms_per_day=grouped(summary.sms_per_day),
        )
    )
    if balance is not None:
        left = summary.days_left(balance.amount if balance.currency == currency else None)
        if left is None:
            lines.append(_("Balance: {balance}").format(balance=money(balance)))
        else:
            lines.append(
                ngettext(
                    "Balance: {balance} · lasts ≈ {n} day at this pace",
                    "Balance: {balance} · lasts ≈ {n} days at this pace",
                    left,
                ).format(balance=money(balance), n=grouped(Decimal(left)))
            )
    return "\n".join(lines)


def stats_keyboard(active: int) -> InlineKeyboardMarkup:
    # One row built as it is: InlineKeyboardBuilder deep-copies its buttons, ~0.4 ms of the
    # event loop per chart against ~0.08 ms this way.
    row = [
        InlineKeyboardButton(
            text=(ACTIVE_MARK if days == active else "")
            + ngettext("{n} day", "{n} days", days).format(n=days),
            callback_data=StatsCb(days=days).pack(),
        )
        for days in STATS_DAYS
    ]
    return InlineKeyboardMarkup(inline_keyboard=[row])


def first_look_text() -> str:
    """/stats or /export before the first read of a newly connected account's history."""
    return _(
        "⏳ The first look at your account is under way: I am reading its SMS history. "
        "Try again in a minute."
    )


def chart_failed_text() -> str:
    return _("Could not draw the chart right now. Try /stats again in a minute.")


# --- /export -------------------------------------------------------------------------------


def period_text(period: Period) -> str:
    if period.first == period.last:
        return period.first.isoformat()
    return f"{period.first.isoformat()} – {period.last.isoformat()}"


def export_start_text(zone: str) -> str:
    return _(
        "📤 <b>Export SMS</b>\n"
        "Every SMS of your account in a period, with cost and status, as a CSV or Excel "
        "file. Days are counted in your time zone ({zone}).\nChoose the period:"
    ).format(zone=zone)


def export_start_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("This month"), callback_data=ExportCb(action=ExportAction.THIS_MONTH))
    builder.button(text=_("Last month"), callback_data=ExportCb(action=ExportAction.LAST_MONTH))
    builder.button(text=_("Type the dates"), callback_data=ExportCb(action=ExportAction.TYPE))
    builder.button(text=_("✖️ Cancel"), callback_data=ExportCb(action=ExportAction.CANCEL))
    builder.adjust(2, 1, 1)
    return builder.as_markup()


def ask_range_text(today: dt.date) -> str:
    month = dt.date(today.year, today.month, 1)
    return _(
        "Send the first and the last day of the period, for example:\n"
        "<code>{first} {last}</code>\n"
        "At most a year. /cancel to stop."
    ).format(first=month.isoformat(), last=today.isoformat())


def range_problem_text(problem: RangeProblem, today: dt.date) -> str:
    example = f"<code>{dt.date(today.year, today.month, 1).isoformat()} {today.isoformat()}</code>"
    if problem is RangeProblem.BACKWARDS:
        text = _("The last day is before the first one. Send the earlier date first.")
    elif problem is RangeProblem.TOO_LONG:
        text = _("That is more than a year. Send a period of at most 366 days.")
    elif problem is RangeProblem.FUTURE:
        text = _("That period starts after today. Send days up to today.")
    else:
        text = _("I could not read two dates there. Send them as year-month-day.")
    return (
        text
        + "\n"
        + _("For example: {example}").format(example=example)
        + "\n"
        + _("/cancel to stop.")
    )


def choose_format_text(period: Period) -> str:
    return _("📤 Period: {period}\nChoose the file format:").format(period=period_text(period))


def format_keyboard(period: Period) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    first, last = period.first.toordinal(), period.last.toordinal()
    for fmt, label in (("csv", "CSV"), ("xlsx", _("Excel (XLSX)"))):
        builder.button(
            text=label,
            callback_data=ExportCb(
                action=ExportAction.FORMAT,
                fmt=fmt,  # type: ignore[arg-type]
                first=first,
                last=last,
            ),
        )
    builder.button(text=_("✖️ Cancel"), callback_data=ExportCb(action=ExportAction.CANCEL))
    builder.adjust(2, 1)
    return builder.as_markup()


def export_texts() -> ExportTexts:
    return ExportTexts(
        columns=(
            _("Time"),
            _("Phone"),
            _("Text"),
            _("Parts"),
            _("Cost"),
            _("Status"),
            _("Sent from"),
            _("Bulk job"),
            _("Template"),
        ),
        from_bot=_("this bot"),
        elsewhere=_("elsewhere"),
    )


def sheet_names() -> tuple[str, str]:
    return _("SMS"), _("Summary")


def preparing_text(period: Period) -> str:
    return _("⏳ Preparing the file for {period}…").format(period=period_text(period))


def empty_period_text(period: Period) -> str:
    return _(
        "There are no SMS from {period} in your account. Nothing to export: choose another "
        "period with /export."
    ).format(period=period_text(period))


def export_caption(period: Period, rows: int, part: int, parts: int) -> str:
    text = ngettext("📤 {period} · {n} SMS", "📤 {period} · {n} SMS", rows).format(
        period=period_text(period), n=grouped(Decimal(rows))
    )
    if parts > 1:
        text += "\n" + _("Part {part} of {parts}").format(part=part, parts=parts)
    return text


def export_done_text(period: Period, rows: int, parts: int) -> str:
    return ngettext(
        "✅ Exported {n} SMS from {period} in {files} file.",
        "✅ Exported {n} SMS from {period} in {files} files.",
        parts,
    ).format(n=grouped(Decimal(rows)), period=period_text(period), files=parts)


def export_busy_text(own: bool = False) -> str:
    if own:
        return _("Your previous export is still being prepared: its files come to this chat.")
    return _("Several exports are being prepared right now. Try again in a minute.")


def export_failed_text() -> str:
    return _("Something went wrong while preparing the export. It is logged; please try again.")


def summary_rows(period: Period, zone: str, totals: Totals) -> list[tuple[str, object]]:
    """The XLSX summary sheet: the whole period's totals (every part gets the same)."""
    rows: list[tuple[str, object]] = [
        (_("Period"), period_text(period)),
        (_("Time zone"), zone),
        (_("SMS"), totals.sms),
        (_("Parts"), totals.parts),
        (_("Delivered"), totals.delivered),
        (_("Not delivered"), totals.failed),
        (_("Waiting"), totals.waiting),
    ]
    for currency, amount in sorted(totals.cost_by_currency.items()):
        spent = int(amount) if amount == amount.to_integral_value() else float(amount)
        rows.append((_("Spent, {unit}").format(unit=currency_unit(currency)), spent))
    return rows
