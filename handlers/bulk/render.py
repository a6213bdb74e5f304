"""The texts and files of /bulk's jobs and /jobs, in the user's language (the texts before
Start are in handlers.bulk.dry_run).

Every function here is pure: the caller reads what a text shows (counts, costs, the last
refusal, the rows of a result file) and passes it in, so the same job reads the same wherever
it is shown (a button, /jobs, the job's reports in bot/notices/jobs.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final

from aiogram import html
from aiogram.types import BufferedInputFile
from aiogram.utils.i18n import gettext as _

from handlers.plural import ngettext
from handlers.render import MISSING, costs_text, count, duration_text, money
from handlers.send_texts import quote_cut
from handlers.stoplist_texts import left_out_text
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
from services.i18n import N_
from services.pricing import Cost, sum_costs
from services.spreadsheet import ResultFormat, write_result
from storage import BulkRow, JobCounts, JobRow

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

_STATE_LABELS: Final = {
    "ready": N_("🕓 starting"),
    "scheduled": N_("🕒 scheduled"),
    PAUSE_QUIET: N_("🌙 paused for quiet hours"),
    "running": N_("▶️ sending"),
    "paused": N_("⏸ paused"),
    "done": N_("✅ finished"),
    "cancelled": N_("✖️ cancelled"),
}


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
        lines.append(
            ngettext(
                "✖️ Cancelled: {n} SMS was not sent.",
                "✖️ Cancelled: {n} SMS were not sent.",
                counts.left,
            ).format(n=count(counts.left))
        )
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
