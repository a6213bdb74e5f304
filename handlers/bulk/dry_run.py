"""The texts and files of /bulk before Start, in the user's language: the list as read, what
was wrong with a file or list, and the dry-run report. Pure functions, like handlers.bulk.render
(the job's texts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aiogram import html
from aiogram.utils.i18n import gettext as _

from handlers.bulk.prices import abroad_lines, cheaper_line, cost_lines
from handlers.plural import ngettext
from handlers.render import MISSING, count
from handlers.send_texts import quote_cut
from handlers.stoplist_texts import left_out_text
from handlers.templates.render import placeholder_list
from services.bulk_plan import (
    EMPTY_TEXT,
    LONG_TEXT,
    STOPPED,
    NoPhoneColumn,
    Plan,
    Skipped,
    Source,
)
from services.contacts import GROUP_FORMAT
from services.devsms import Balance
from services.i18n import N_
from services.money import Money
from services.phones import PhoneError, normalize_phone
from services.spreadsheet import (
    ResultFormat,
    SpreadsheetError,
    TooManyRows,
    UnsupportedFormat,
    write_result,
)
from services.templating import placeholders

INVALID_SHOWN: Final = 5
EXAMPLES_SHOWN: Final = 3
EXAMPLE_LIMIT: Final = 400
TEMPLATE_SHOWN: Final = 1000
VALUE_SHOWN: Final = 40
# A column name or placeholder quoted in a reply is cut to NAME_SHOWN characters, a list of
# them to LIST_SHOWN: the rest of such a reply is short, so it stays within Telegram's 4096.
NAME_SHOWN: Final = 80
LIST_SHOWN: Final = 1500

_PHONE_REASONS: Final = {
    PhoneError.EMPTY.value: N_("no number"),
    PhoneError.NOT_A_NUMBER.value: N_("not a phone number"),
    PhoneError.TOO_SHORT.value: N_("number too short"),
    PhoneError.TOO_LONG.value: N_("number too long"),
    PhoneError.INVALID.value: N_("no such number"),
    EMPTY_TEXT: N_("the text is empty for this row"),
    STOPPED: N_("on your stop list"),
}


# --- the list ------------------------------------------------------------------------------------


def spreadsheet_error_text(exc: SpreadsheetError) -> str:
    if isinstance(exc, TooManyRows):
        return ngettext(
            "The list has more than {limit} row (at least {found}). Split it into smaller files.",
            "The list has more than {limit} rows (at least {found}). Split it into smaller files.",
            exc.limit,
        ).format(limit=count(exc.limit), found=count(exc.found_at_least))
    if isinstance(exc, UnsupportedFormat):
        return _("I cannot read {kind} files. Save it as .xlsx or .csv and send it again.").format(
            kind=html.quote(exc.extension or _("such"))
        )
    texts = {
        "empty": _("There are no rows with data in it."),
        "corrupt": _(
            "I could not read this file: it seems damaged. Save it again as .xlsx or .csv."
        ),
        "encoding": _("I could not read the text of this file. Save it as «CSV UTF-8»."),
        "too_large": _(
            "This file unpacks to far more data than a list of numbers needs, so I did not "
            "read it. Copy just the list into a new .xlsx or .csv file and send that."
        ),
        "timeout": _(
            "Reading this file took too long, so I stopped. Copy just the list into a new "
            ".xlsx or .csv file and send that."
        ),
    }
    return texts.get(exc.kind, _("I could not read this file. Save it as .xlsx or .csv."))


def no_phone_column_text(columns: Sequence[str]) -> str:
    return (
        _("I could not find a column with phone numbers. Columns in the file: {columns}.").format(
            columns=columns_text(columns)
        )
        + "\n"
        + _("Name the column «phone», or put the numbers in the first column.")
    )


def unreadable_text(exc: SpreadsheetError | NoPhoneColumn) -> str:
    """Why an uploaded list cannot be used, as every upload dialog says it."""
    if isinstance(exc, NoPhoneColumn):
        return no_phone_column_text(exc.columns)
    return spreadsheet_error_text(exc) + "\n" + _("/cancel stops.")


def no_valid_number_text(source: Source, max_parts: int) -> str:
    lines = [
        _("No valid phone number in column «{column}».").format(
            column=html.quote(source.phone_column)
        )
    ]
    lines += skipped_lines(
        [Skipped(r.row_no, r.value, r.reason.value) for r in source.recipients.invalid],
        max_parts,
    )
    lines.append(_("Send another file or list, or /cancel."))
    return "\n".join(lines)


def unknown_placeholders_text(unknown: list[str], columns: Sequence[str]) -> str:
    return (
        _("These placeholders match no column: {names}.").format(names=placeholder_list(unknown))
        + "\n"
        + _("Columns in the file: {columns}.").format(columns=columns_text(columns))
        + "\n"
        + _("Send the corrected text.")
    )


def columns_text(columns: Sequence[str]) -> str:
    return listed([f"«{quote_cut(name, NAME_SHOWN)}»" for name in columns])


def listed(items: Sequence[str], budget: int = LIST_SHOWN) -> str:
    """Items joined with commas, as many as fit in `budget` characters, then "…": a file may
    have 64 columns and a text hundreds of placeholders, a message only 4096 characters."""
    shown: list[str] = []
    used = 0
    for item in items:
        used += len(item) + 2
        if used > budget:
            shown.append("…")
            break
        shown.append(item)
    return ", ".join(shown) or MISSING


def list_read_text(source: Source, *, offer_templates: bool) -> str:
    """The list as read, and the question for the SMS text."""
    name = html.quote(source.file_name) if source.file_name else _("Pasted list")
    if source.file_format == GROUP_FORMAT:
        name = _("Group «{name}»").format(name=name)
    lines = [
        _("📄 {name}: rows: {rows}, numbers in column «{column}»: {valid}.").format(
            name=name,
            rows=count(source.rows_read),
            valid=count(len(source.recipients.valid)),
            column=html.quote(source.phone_column),
        )
    ]
    if len(source.columns) > 1:
        lines.append(_("Columns: {columns}").format(columns=columns_text(source.columns)))
    lines.append("")
    others = [c for c in source.columns if c != source.phone_column]
    lines.append(_("Now send the text of the SMS."))
    if others:
        lines.append(
            _("Column names in braces are replaced for each row, e.g. {example}.").format(
                example=html.quote("{" + others[0] + "}")
            )
        )
    if offer_templates:
        lines.append(_("Or pick a saved template:"))
    lines.append(_("/cancel stops."))
    return "\n".join(lines)


# --- the report before Start ---------------------------------------------------------------------


def reason_text(skipped: Skipped, max_parts: int) -> str:
    if skipped.reason == LONG_TEXT:
        return ngettext(
            "the text needs {parts} SMS part, more than {limit}",
            "the text needs {parts} SMS parts, more than {limit}",
            skipped.parts,
        ).format(parts=skipped.parts, limit=max_parts)
    return _(_PHONE_REASONS.get(skipped.reason, N_("not a phone number")))


def skipped_file(skipped: list[Skipped], fmt: ResultFormat, max_parts: int) -> bytes:
    header = (_("row"), _("value"), _("reason"))
    rows = [(s.row_no, s.value, reason_text(s, max_parts)) for s in skipped]
    return write_result(fmt, header, rows)


def skipped_lines(skipped: list[Skipped], max_parts: int) -> list[str]:
    lines = [
        _("row {row}: «{value}» — {reason}").format(
            row=s.row_no,
            value=quote_cut(s.value, VALUE_SHOWN),
            reason=reason_text(s, max_parts),
        )
        for s in skipped[:INVALID_SHOWN]
    ]
    if len(skipped) > INVALID_SHOWN:
        lines.append(_("…and {n} more (see the file).").format(n=len(skipped) - INVALID_SHOWN))
    return lines


def review_text(
    source: Source,
    template: str,
    plan: Plan,
    balance: Balance,
    max_parts: int,
    rates: Mapping[str, Money] | None = None,
    cheaper: Plan | None = None,
) -> tuple[str, bool]:
    """The dry-run report, and whether Start may be offered. `rates` are the prices abroad
    (services.pricing.abroad_rates); `cheaper`, the plan with the cheaper spelling, if any."""
    lines = [_("📦 <b>Check before sending</b>")]
    if source.file_format == GROUP_FORMAT and source.file_name:
        lines.append(_("Group: {name}").format(name=html.quote(source.file_name)))
    elif source.file_name:
        lines.append(_("File: {name}").format(name=html.quote(source.file_name)))
    lines.append(_("Rows read: {n}").format(n=count(source.rows_read)))
    lines.append(_("✅ To send: {n}").format(n=count(len(plan.rows))))
    if plan.skipped:
        lines.append(_("❌ Skipped: {n}").format(n=count(len(plan.skipped))))
        lines += ["  " + line for line in skipped_lines(plan.skipped, max_parts)]
    if plan.stopped:
        lines.append(left_out_text(len(plan.stopped)))
    if plan.duplicates:
        lines.append(_("♻️ Duplicates removed: {n}").format(n=count(plan.duplicates)))
    lines.append("")
    lines.append(_("Text:"))
    lines.append(f"<blockquote>{quote_cut(template, TEMPLATE_SHOWN)}</blockquote>")
    if plan.rows and placeholders(template):  # else every SMS is the text above
        lines.append(_("Examples:"))
        for _row_no, phone, text, _parts in plan.rows[:EXAMPLES_SHOWN]:
            lines.append(
                f"{normalize_phone(phone).international}:"
                f"<blockquote>{quote_cut(text, EXAMPLE_LIMIT)}</blockquote>"
            )
    lines.append("")
    lines += abroad_lines(plan, rates or {})
    money_lines, enough = cost_lines(plan, balance, rates or {})
    lines += money_lines
    if offer := cheaper_line(plan, cheaper, balance):
        lines.append(offer)
    if not plan.rows:
        lines.append(nothing_to_send_text())
    return "\n".join(lines), bool(plan.rows) and enough


def nothing_to_send_text() -> str:
    return _("⚠️ Nothing to send: no row has both a valid number and a text.")
