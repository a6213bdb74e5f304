"""The texts and files of /bulk and /jobs, in the user's language.

Every function here is pure: the caller reads what a text shows (counts, costs, the last
refusal, the rows of a result file) and passes it in, so the same job reads the same wherever
it is shown (a button, /jobs, the job's reports in bot/notices/jobs.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final

from aiogram import html
from aiogram.types import BufferedInputFile
from aiogram.utils.i18n import gettext as _

from handlers.bulk.prices import abroad_lines, cheaper_line, cost_lines
from handlers.render import MISSING, costs_text, count, duration_text, money
from handlers.send_texts import quote_cut
from handlers.stoplist_texts import left_out_text
from handlers.templates.render import placeholder_list
from services.bulk import (
    PAUSE_ACCESS,
    PAUSE_BALANCE,
    PAUSE_ERROR,
    PAUSE_GATEWAY,
    PAUSE_QUIET,
    PAUSE_REFUSED,
    PAUSE_TOKEN,
    PAUSE_TOKEN_CHANGED,
)
from services.bulk_plan import EMPTY_TEXT, LONG_TEXT, STOPPED, Plan, Skipped, Source
from services.contacts import GROUP_FORMAT
from services.devsms import Balance
from services.i18n import N_
from services.money import Money
from services.phones import PhoneError, normalize_phone
from services.pricing import Cost, sum_costs
from services.spreadsheet import (
    ResultFormat,
    SpreadsheetError,
    TooManyRows,
    UnsupportedFormat,
    write_result,
)
from services.templating import placeholders
from storage import BulkRow, JobCounts, JobRow

INVALID_SHOWN: Final = 5
EXAMPLES_SHOWN: Final = 3
EXAMPLE_LIMIT: Final = 400
TEMPLATE_SHOWN: Final = 1000
VALUE_SHOWN: Final = 40
# A column name or placeholder quoted in a reply is cut to NAME_SHOWN characters, a list of
# them to LIST_SHOWN: the rest of such a reply is short, so it stays within Telegram's 4096.
NAME_SHOWN: Final = 80
LIST_SHOWN: Final = 1500
REFUSAL_SHOWN: Final = 200
BAR_WIDTH: Final = 10
RESULT_HEADER: Final = ("row", "phone", "sms_id", "state", "status", "error")
# Columns of the result file the bot fills in its own normalised form: the row number, the
# phone (digits) and the gateway's numeric id stay as they are; status and error come from
# the gateway and are neutralised like user text (see spreadsheet.neutralise).
RESULT_OWN_COLUMNS: Final = (0, 1, 2)
# A row's state as the result file shows it: 'not_sent' is a conclusion from the history, not
# a refusal, and must not read as certain.
RESULT_STATES: Final = {"not_sent": "probably_not_sent", "stopped": "stop_list"}

_PHONE_REASONS: Final = {
    PhoneError.EMPTY.value: N_("no number"),
    PhoneError.NOT_A_NUMBER.value: N_("not a phone number"),
    PhoneError.TOO_SHORT.value: N_("number too short"),
    PhoneError.TOO_LONG.value: N_("number too long"),
    PhoneError.INVALID.value: N_("no such number"),
    EMPTY_TEXT: N_("the text is empty for this row"),
    STOPPED: N_("on your stop list"),
}
_STATE_LABELS: Final = {
    "ready": N_("🕓 starting"),
    "scheduled": N_("🕒 scheduled"),
    PAUSE_QUIET: N_("🌙 paused for quiet hours"),
    "running": N_("▶️ sending"),
    "paused": N_("⏸ paused"),
    "done": N_("✅ finished"),
    "cancelled": N_("✖️ cancelled"),
}


# --- the list ------------------------------------------------------------------------------------


def too_big_text(size: int | None) -> str:
    return _(
        "This file is {size} MB; Telegram lets bots download files of at most 20 MB. "
        "Save it as CSV or split it into parts."
    ).format(size=f"{(size or 0) / 1024 / 1024:.1f}" if size else "> 20")


def spreadsheet_error_text(exc: SpreadsheetError) -> str:
    if isinstance(exc, TooManyRows):
        return _(
            "The list has more than {limit} rows (at least {found}). Split it into smaller files."
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
        _("📄 {name}: {rows} rows, {valid} numbers in column «{column}».").format(
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
        return _("the text needs {parts} SMS parts, more than {limit}").format(
            parts=skipped.parts, limit=max_parts
        )
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


# --- the job -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What a job's texts show besides its row, read by the caller (handlers.bulk.jobs)."""

    job: JobRow
    counts: JobCounts
    costs: list[str]  # the stored cost of each sent row (storage BulkRepo.costs)
    refusal: str | None = None  # the gateway's last refusal, for a job paused on refusals


def progress_bar(done: int, total: int) -> str:
    share = done / total if total else 1.0
    filled = round(share * BAR_WIDTH)
    return "▓" * filled + "░" * (BAR_WIDTH - filled) + f" {int(share * 100)}%"


def cost_so_far(costs: Iterable[str | None]) -> str:
    """What the job's sent rows cost, per currency."""
    return costs_text(sum_costs(costs))


def pause_text(job: JobRow, refusal: str | None) -> str:
    """Why the job is paused and what the owner can do about it."""
    reason = job.pause_reason
    if reason == PAUSE_BALANCE:
        return _("⏸ Paused: the balance ran out. Top up at devsms.uz, then tap Resume.")
    if reason == PAUSE_GATEWAY:
        return _("⏸ Paused: devsms.uz is not answering. Tap Resume to try again.")
    if reason == PAUSE_TOKEN:
        return _(
            "⏸ Paused: devsms.uz no longer accepts your token. Connect a new one with /token, "
            "then tap Resume."
        )
    if reason == PAUSE_TOKEN_CHANGED:
        return _(
            "⏸ Paused: you connected another devsms token. Tap Resume to go on with it "
            "(the balance is checked first)."
        )
    if reason == PAUSE_REFUSED:
        return _(
            "⏸ Paused: devsms.uz refused the last SMS one after another, answering: «{text}». "
            "Fix this (for example, the sender name) and tap Resume; only the rows not sent "
            "yet are sent."
        ).format(text=quote_cut(refusal or MISSING, REFUSAL_SHOWN))
    if reason == PAUSE_QUIET:
        return _(
            "🌙 Paused for your quiet hours; it goes on by itself when they end. "
            "Tap Resume to send now anyway."
        )
    if reason == PAUSE_ACCESS:
        return _("⏸ Paused: an administrator withdrew your access to the bot.")
    if reason == PAUSE_ERROR:
        return _(
            "⏸ Paused: something went wrong on our side (it is logged). SMS whose fate is "
            "unclear are not sent again. Tap Resume to go on."
        )
    return _("⏸ Paused. Tap Resume to go on.")


def progress_text(facts: JobFacts, rate: float) -> str:
    """The job's progress message; `rate` is SMS per second (BULK_RATE), for the time left."""
    job, counts = facts.job, facts.counts
    title = _("📦 <b>Bulk job #{id}</b>").format(id=job.id)
    if job.file_name:
        title += " · " + html.quote(job.file_name)
    total = job.total or counts.done + counts.left
    lines = [title, progress_bar(counts.done, total)]
    if job.state in ("ready", "running"):
        lines.append(_("▶️ Sending…"))
    elif job.state == "paused":
        lines.append(pause_text(job, facts.refusal))
    elif job.state == "cancelled":
        lines.append(_("✖️ Cancelled: {n} SMS were not sent.").format(n=count(counts.left)))
    else:
        lines.append(_("✅ Finished."))
    lines.append(
        _("Sent: {sent} · failed: {failed} · left: {left}").format(
            sent=count(counts.sent),
            failed=count(counts.failed),
            left=count(counts.left),
        )
    )
    if counts.unknown:
        lines.append(
            _("Unclear: {n} (devsms.uz did not answer; checked against the history)").format(
                n=count(counts.unknown)
            )
        )
    if counts.not_sent:
        lines.append(not_sent_text(counts))
    if counts.stopped:
        lines.append(left_out_text(counts.stopped))
    cost = cost_so_far(facts.costs)
    if job.state in ("done", "cancelled"):
        lines.append(_("Cost: {cost}").format(cost=cost))
    else:
        lines.append(_("Cost so far: {cost}").format(cost=cost))
    if job.state in ("ready", "running") and counts.left:
        lines.append(
            _("Time left: about {time}").format(
                time=duration_text(counts.left / rate, round_up=True)
            )
        )
    return "\n".join(lines)


def not_sent_text(counts: JobCounts) -> str:
    """Rows whose fate was unclear and that devsms.uz showed no trace of a day later: not
    refused ("failed"), and not certain either."""
    return _("Probably not sent: {n} (no trace at devsms.uz a day later)").format(
        n=count(counts.not_sent)
    )


def short_of_balance_text(job_id: int, cost: Cost) -> str:
    return _(
        "⚠️ Not enough balance for the rest of job #{id}: it costs {total}, "
        "{missing} more is needed. Top up at devsms.uz, then tap Resume."
    ).format(id=job_id, total=money(cost.total), missing=money(cost.missing))


def state_key(job: JobRow, scheduled: Collection[int]) -> str:
    """The label of a job in /jobs: its state, or why it waits."""
    if job.id in scheduled:
        return "scheduled"
    if job.state == "paused" and job.pause_reason == PAUSE_QUIET:
        return PAUSE_QUIET
    return job.state


def jobs_text(jobs: Sequence[tuple[JobRow, JobCounts]], scheduled: Collection[int] = ()) -> str:
    """/jobs: the user's recent jobs, newest first; `scheduled` are ids of jobs that wait for
    their time (see /scheduled)."""
    lines = [_("📦 <b>Your bulk jobs</b>"), ""]
    for job, counts in jobs:
        name = html.quote(job.file_name) if job.file_name else _("Pasted list")
        line = _("#{id} · {name} · {state} · sent {sent} of {total}, failed {failed}").format(
            id=job.id,
            name=name,
            state=_(_STATE_LABELS[state_key(job, scheduled)]),
            sent=count(counts.sent),
            total=count(job.total),
            failed=count(counts.failed),
        )
        if counts.unknown:
            line += ", " + _("unclear {n}").format(n=count(counts.unknown))
        if counts.not_sent:
            line += ", " + _("probably not sent {n}").format(n=count(counts.not_sent))
        if counts.stopped:
            line += ", " + _("on the stop list {n}").format(n=count(counts.stopped))
        lines.append(line)
    lines.append("")
    lines.append(_("Tap a job to open it."))
    return "\n".join(lines)


def result_file(job: JobRow, rows: Iterable[BulkRow]) -> BufferedInputFile:
    """The result of every row, in the format of the uploaded file. CPU-bound for big jobs:
    callers run it in a thread."""
    cells = [
        (
            row.row_no,
            row.phone,
            row.sms_id,
            RESULT_STATES.get(row.state, row.state),
            row.status,
            row.error,
        )
        for row in rows
    ]
    fmt: ResultFormat = "xlsx" if job.file_format == "xlsx" else "csv"
    data = write_result(fmt, RESULT_HEADER, cells, own_columns=RESULT_OWN_COLUMNS)
    stem = PurePosixPath(job.file_name).stem if job.file_name else "numbers"
    return BufferedInputFile(data, filename=f"{stem}-result-{job.id}.{fmt}")
