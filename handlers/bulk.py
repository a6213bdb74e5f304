"""/bulk and /jobs: one text to many numbers from a CSV/XLSX file or a pasted list.

file or list → text (typed or a saved template) → dry-run report → Start → a background job
(services.bulk.BulkRunner) with one progress message → summary and a result file.

The parsed list stays in memory between the steps (`SourceCache`); FSM data keeps only what
finds it again (the Telegram file id, or the pasted text), so after a restart the file is
downloaded and read once more. A list dropped from memory to stay within BULK_CACHE_MB is
asked for again instead. Files are parsed in the upload worker (services.upload_worker).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final

from aiogram import Bot, F, Router, html
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    Message,
)
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import BulkCb, JobCb
from handlers.config import HandlerSettings
from handlers.filters import Accessible, AnyMenuButton
from handlers.keyboards import (
    bulk_review_keyboard,
    bulk_templates_keyboard,
    job_keyboard,
    jobs_keyboard,
    open_job_keyboard,
)
from handlers.render import MISSING, costs_text, count, duration_text, money, not_enough_text
from handlers.send import quote_cut
from handlers.states import BulkForm
from handlers.templates import (
    ACCESSIBLE,
    EXAMPLE_PLACEHOLDER,
    ID_MAX,
    placeholder_list,
    template_buttons,
    template_error_text,
)
from handlers.utils import ContextMiddleware, edit_or_keep
from services.accounts import Accounts
from services.bulk import (
    PAUSE_ACCESS,
    PAUSE_BALANCE,
    PAUSE_ERROR,
    PAUSE_GATEWAY,
    PAUSE_REFUSED,
    PAUSE_TOKEN,
    PAUSE_TOKEN_CHANGED,
    BulkRunner,
    ShortOfBalance,
)
from services.bulk_plan import (
    EMPTY_TEXT,
    LONG_TEXT,
    PASTED,
    NoPhoneColumn,
    Plan,
    Skipped,
    Source,
    SourceCache,
    build_plan,
    parse_source,
    read_upload,
)
from services.devsms import Balance
from services.i18n import N_
from services.phones import PhoneError, normalize_phone
from services.pricing import cost_of, sum_costs
from services.spreadsheet import (
    ResultFormat,
    SpreadsheetError,
    TooManyRows,
    UnsupportedFormat,
    write_result,
)
from services.templating import TemplateError, check_template, placeholders
from services.upload_worker import UploadWorker
from services.user_input import effective_sender
from storage import BulkRepo, JobCounts, JobRow, TemplateRepo, UserRepo

logger = logging.getLogger(__name__)

# Bots may download files of at most 20 MB (https://core.telegram.org/bots/api#getfile).
DOWNLOAD_LIMIT: Final = 20 * 1024 * 1024
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
JOBS_LISTED: Final = 10
BAR_WIDTH: Final = 10
RESULT_HEADER: Final = ("row", "phone", "sms_id", "state", "status", "error")
# Columns of the result file the bot fills in its own normalised form: the row number, the
# phone (digits) and the gateway's numeric id stay as they are; status and error come from
# the gateway and are neutralised like user text (see spreadsheet.neutralise).
RESULT_OWN_COLUMNS: Final = (0, 1, 2)
# A row's state as the result file shows it: 'not_sent' is a conclusion from the history, not
# a refusal, and must not read as certain.
RESULT_STATES: Final = {"not_sent": "probably_not_sent"}

_PHONE_REASONS: Final = {
    PhoneError.EMPTY.value: N_("no number"),
    PhoneError.NOT_A_NUMBER.value: N_("not a phone number"),
    PhoneError.TOO_SHORT.value: N_("number too short"),
    PhoneError.TOO_LONG.value: N_("number too long"),
    PhoneError.INVALID.value: N_("no such number"),
    EMPTY_TEXT: N_("the text is empty for this row"),
}
_STATE_LABELS: Final = {
    "ready": N_("🕓 starting"),
    "running": N_("▶️ sending"),
    "paused": N_("⏸ paused"),
    "done": N_("✅ finished"),
    "cancelled": N_("✖️ cancelled"),
}


def reason_text(skipped: Skipped, max_parts: int) -> str:
    if skipped.reason == LONG_TEXT:
        return _("the text needs {parts} SMS parts, more than {limit}").format(
            parts=skipped.parts, limit=max_parts
        )
    return _(_PHONE_REASONS.get(skipped.reason, N_("not a phone number")))


# --- the dialog's context -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BulkContext:
    bot: Bot
    accounts: Accounts
    users: UserRepo
    bulk: BulkRepo
    templates: TemplateRepo
    runner: BulkRunner
    settings: HandlerSettings
    state: FSMContext
    sources: SourceCache
    uploads: UploadWorker
    user_id: int


def bulk_context(data: dict[str, Any]) -> BulkContext:
    return BulkContext(
        bot=data["bot"],
        accounts=data["accounts"],
        users=data["users"],
        bulk=data["bulk"],
        templates=data["templates"],
        runner=data["bulk_runner"],
        settings=data["settings"],
        state=data["state"],
        sources=data["bulk_sources"],
        uploads=data["uploads"],
        user_id=data["event_from_user"].id,
    )


# --- step 1: the list ----------------------------------------------------------------------------


async def start_bulk(message: Message, ctx: BulkContext) -> None:
    await ctx.state.clear()
    ctx.sources.drop(ctx.user_id)
    await ctx.state.set_state(BulkForm.source)
    await message.answer(
        _("📦 <b>Bulk sending</b>")
        + "\n"
        + _(
            "Send a CSV or Excel (.xlsx) file with a column of phone numbers, up to {limit} "
            "rows, or paste the numbers as a message, one per line."
        ).format(limit=count(ctx.settings.bulk_max_rows))
        + "\n"
        + _(
            "Other columns can fill the text: {example} is replaced with the «name» column."
        ).format(example=EXAMPLE_PLACEHOLDER)
        + "\n"
        + _("/cancel stops.")
    )


async def document_received(message: Message, ctx: BulkContext) -> None:
    document = message.document
    assert document is not None
    if document.file_size is not None and document.file_size > DOWNLOAD_LIMIT:
        await message.answer(too_big_text(document.file_size))
        return
    try:
        downloaded = await ctx.bot.download(document)
    except TelegramBadRequest as exc:
        # file_size may be missing; Telegram then refuses big files only here.
        if "too big" not in exc.message:
            raise
        await message.answer(too_big_text(document.file_size))
        return
    assert downloaded is not None
    name = document.file_name or "file"
    await take_source(message, ctx, downloaded.read(), name, {"file_id": document.file_id})


def too_big_text(size: int | None) -> str:
    return _(
        "This file is {size} MB; Telegram lets bots download files of at most 20 MB. "
        "Save it as CSV or split it into parts."
    ).format(size=f"{(size or 0) / 1024 / 1024:.1f}" if size else "> 20")


async def list_pasted(message: Message, ctx: BulkContext) -> None:
    assert message.text is not None
    # "901234567, 901234568; ..." on one line is a list too: one number per line for the reader.
    text = message.text.replace(",", "\n").replace(";", "\n")
    await take_source(message, ctx, text.encode(), PASTED, {"pasted": text})


async def take_source(
    message: Message, ctx: BulkContext, data: bytes, file_name: str, found_by: dict[str, str]
) -> None:
    key = hashlib.sha256(data).hexdigest()
    try:
        source = await parse(ctx, data, file_name, key)
    except SpreadsheetError as exc:
        await message.answer(spreadsheet_error_text(exc) + "\n" + _("/cancel stops."))
        return
    except NoPhoneColumn as exc:
        await message.answer(
            _(
                "I could not find a column with phone numbers. Columns in the file: {columns}."
            ).format(columns=columns_text(exc.columns))
            + "\n"
            + _("Name the column «phone», or put the numbers in the first column.")
        )
        return
    if not source.recipients.valid:
        lines = [
            _("No valid phone number in column «{column}».").format(
                column=html.quote(source.phone_column)
            )
        ]
        lines += skipped_lines(
            [Skipped(r.row_no, r.value, r.reason.value) for r in source.recipients.invalid],
            ctx.settings.sms_max_parts,
        )
        lines.append(_("Send another file or list, or /cancel."))
        await message.answer("\n".join(lines))
        return
    ctx.sources.put(ctx.user_id, source)
    draft = secrets.randbelow(1_000_000_000)
    await ctx.state.set_state(BulkForm.text)
    await ctx.state.set_data({"src": {"key": key, "name": file_name, **found_by}, "draft": draft})
    await ask_text(message, ctx, source, draft)


async def parse(ctx: BulkContext, data: bytes, file_name: str, key: str) -> Source:
    """A file is read in the upload worker (limits on memory and time); a pasted list is one
    message, small enough for a thread, and starts no process."""
    max_rows = ctx.settings.bulk_max_rows
    if file_name == PASTED:
        return await asyncio.to_thread(parse_source, data, file_name, key, max_rows)
    packed = await ctx.uploads.run(read_upload, data, file_name, key, max_rows)
    return await asyncio.to_thread(packed.unpack)


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


async def ask_text(message: Message, ctx: BulkContext, source: Source, draft: int) -> None:
    name = html.quote(source.file_name) if source.file_name else _("Pasted list")
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
    templates = await ctx.templates.list(ctx.user_id)
    keyboard = None
    if templates:
        lines.append(_("Or pick a saved template:"))
        keyboard = bulk_templates_keyboard(draft, template_buttons(templates))
    lines.append(_("/cancel stops."))
    await message.answer("\n".join(lines), reply_markup=keyboard)


async def source_not_understood(message: Message) -> None:
    await message.answer(
        _("Send a CSV or .xlsx file, or paste the phone numbers as a message.")
        + "\n"
        + _("/cancel stops.")
    )


# --- step 2: the text ---------------------------------------------------------------------------


async def text_not_understood(message: Message) -> None:
    await message.answer(
        _("Send the text of the SMS as a message, or a new file.") + "\n" + _("/cancel stops.")
    )


async def text_received(message: Message, ctx: BulkContext) -> None:
    assert message.text is not None
    await take_template(message, ctx, message.text)


async def template_picked(
    query: CallbackQuery, callback_data: BulkCb, message: Message, ctx: BulkContext
) -> None:
    data = await ctx.state.get_data()
    state = await ctx.state.get_state()
    if (
        state not in (BulkForm.text.state, BulkForm.review.state)
        or data.get("draft") != callback_data.draft
    ):
        await stale(query, message)
        return
    row = await ctx.templates.get(ctx.user_id, callback_data.tpl)
    if row is None:
        await query.answer(_("This template no longer exists."))
        return
    await query.answer()
    await take_template(message, ctx, row.body)


async def take_template(message: Message, ctx: BulkContext, template: str) -> None:
    template = template.strip()
    if not template:
        await message.answer(_("The SMS text cannot be empty. Send the text."))
        return
    data = await ctx.state.get_data()
    source = await load_source(ctx, data)
    if source is None:
        await lost_source(message, ctx, data)
        return
    try:
        unknown = check_template(template, source.columns)
    except TemplateError as exc:
        await message.answer(template_error_text(exc) + "\n" + _("Send the corrected text."))
        return
    if unknown:
        await message.answer(
            _("These placeholders match no column: {names}.").format(
                names=placeholder_list(unknown)
            )
            + "\n"
            + _("Columns in the file: {columns}.").format(columns=columns_text(source.columns))
            + "\n"
            + _("Send the corrected text.")
        )
        return
    max_parts = ctx.settings.sms_max_parts
    plan = await asyncio.to_thread(build_plan, source, template, max_parts)
    balance = await ctx.accounts.recent_balance(ctx.user_id)
    review = secrets.randbelow(1_000_000_000)
    await ctx.state.set_state(BulkForm.review)
    await ctx.state.update_data(template=template, review=review)
    if len(plan.skipped) > INVALID_SHOWN:
        # The whole list as a file, before the report: the report's buttons stay last.
        await message.answer_document(
            BufferedInputFile(
                await asyncio.to_thread(
                    skipped_file, plan.skipped, source.result_format, max_parts
                ),
                filename=f"skipped.{source.result_format}",
            ),
            caption=_("All {n} rows that will be skipped.").format(n=count(len(plan.skipped))),
        )
    text, can_start = review_text(source, template, plan, balance, max_parts)
    await message.answer(text, reply_markup=bulk_review_keyboard(review, can_start=can_start))


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
    source: Source, template: str, plan: Plan, balance: Balance, max_parts: int
) -> tuple[str, bool]:
    """The dry-run report, and whether Start may be offered."""
    lines = [_("📦 <b>Check before sending</b>")]
    if source.file_name:
        lines.append(_("File: {name}").format(name=html.quote(source.file_name)))
    lines.append(_("Rows read: {n}").format(n=count(source.rows_read)))
    lines.append(_("✅ To send: {n}").format(n=count(len(plan.rows))))
    if plan.skipped:
        lines.append(_("❌ Skipped: {n}").format(n=count(len(plan.skipped))))
        lines += ["  " + line for line in skipped_lines(plan.skipped, max_parts)]
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
    cost = cost_of(plan.parts_total, balance)
    lines.append(
        _("SMS parts in total: {parts} · cost: {total}").format(
            parts=count(plan.parts_total), total=money(cost.total)
        )
    )
    lines.append(
        _("Balance: {balance} · after sending: {after}").format(
            balance=money(balance.balance), after=money(cost.after)
        )
    )
    can_start = bool(plan.rows)
    if not plan.rows:
        lines.append(_("⚠️ Nothing to send: no row has both a valid number and a text."))
    if cost.missing is not None:
        can_start = False
        lines.append(not_enough_text(cost.missing))
    return "\n".join(lines), can_start


# --- step 3: Start / Cancel ---------------------------------------------------------------------


async def review_button(
    query: CallbackQuery, callback_data: BulkCb, message: Message, ctx: BulkContext
) -> None:
    data = await ctx.state.get_data()
    current = await ctx.state.get_state() == BulkForm.review.state
    if not current or data.get("review") != callback_data.draft:
        await stale(query, message)
        return
    if callback_data.action != "start":
        await ctx.state.clear()
        ctx.sources.drop(ctx.user_id)
        await query.answer()
        await message.edit_text(_("Cancelled. Nothing was sent."))
        return
    if await ctx.bulk.count_active(ctx.user_id) >= ctx.settings.bulk_jobs_per_user:
        # The draft stays: Start works again once that job is over.
        await query.answer()
        await refuse_second_job(message, ctx)
        return
    source = await load_source(ctx, data)
    if source is None:
        await query.answer()
        await lost_source(message, ctx, data)
        return
    template: str = data["template"]
    plan = await asyncio.to_thread(build_plan, source, template, ctx.settings.sms_max_parts)
    # The report may be minutes old. A gateway error here leaves the draft in place.
    ctx.accounts.forget_balance(ctx.user_id)
    cost = cost_of(plan.parts_total, await ctx.accounts.recent_balance(ctx.user_id))
    if cost.missing is not None or not plan.rows:
        await query.answer()
        refusal = (
            not_enough_text(cost.missing)
            if cost.missing is not None
            else _("⚠️ Nothing to send: no row has both a valid number and a text.")
        )
        await message.answer(refusal)
        return
    # The draft leaves the FSM before the job is created: a second tap (handled after this
    # one, see SimpleEventIsolation) finds nothing to start.
    await ctx.state.clear()
    ctx.sources.drop(ctx.user_id)
    await query.answer(_("Starting…"))
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)
    await start_job(message, ctx, source, template, plan)


async def refuse_second_job(message: Message, ctx: BulkContext) -> None:
    active = [j for j in await ctx.bulk.jobs_of(ctx.user_id) if j.state in ("running", "paused")]
    if not active:
        return
    await message.answer(
        _(
            "Job #{id} is still in progress. Wait until it finishes, or cancel it, "
            "then tap Start again."
        ).format(id=active[0].id),
        reply_markup=open_job_keyboard(active[0].id),
    )


async def start_job(
    message: Message, ctx: BulkContext, source: Source, template: str, plan: Plan
) -> None:
    user = await ctx.users.get(ctx.user_id)
    job_id = await ctx.bulk.create_job(
        ctx.user_id,
        template=template,
        sender=effective_sender(user, ctx.settings.default_sender),
        file_name=source.file_name,
        file_format=source.file_format,
        rows=plan.rows,
    )
    job = await ctx.bulk.get_job(job_id)
    assert job is not None
    # The progress message exists before the runner starts: its first report edits it.
    progress = await message.answer(
        await progress_text(ctx.bulk, ctx.settings, job, await ctx.bulk.counts(job_id)),
        reply_markup=job_keyboard(job_id, "running"),
    )
    await ctx.bulk.set_progress_message(job_id, progress.chat.id, progress.message_id)
    if not await ctx.runner.begin(job_id):
        logger.warning("bulk job %s was not ready to begin", job_id)
    logger.info("user %s started bulk job %s with %s rows", ctx.user_id, job_id, len(plan.rows))


async def load_source(ctx: BulkContext, data: dict[str, Any]) -> Source | None:
    """The parsed list of the dialog: from memory, else read again (after a restart)."""
    found_by = data.get("src")
    if not isinstance(found_by, dict):
        return None
    cached = ctx.sources.get(ctx.user_id, found_by["key"])
    if cached is not None:
        return cached
    if ctx.sources.evicted(ctx.user_id, found_by["key"]):
        return None  # lost_source asks for the file again
    if "pasted" in found_by:
        content = str(found_by["pasted"]).encode()
    else:
        try:
            downloaded = await ctx.bot.download(found_by["file_id"])
        except TelegramAPIError:
            logger.warning("bulk file of user %s cannot be downloaded again", ctx.user_id)
            return None
        assert downloaded is not None
        content = downloaded.read()
    try:
        source = await parse(ctx, content, found_by["name"], found_by["key"])
    except (SpreadsheetError, NoPhoneColumn):
        return None  # BULK_MAX_ROWS was lowered meanwhile
    ctx.sources.put(ctx.user_id, source)
    return source


async def lost_source(message: Message, ctx: BulkContext, data: dict[str, Any]) -> None:
    found_by = data.get("src")
    if isinstance(found_by, dict) and ctx.sources.evicted(ctx.user_id, found_by.get("key", "")):
        # Dropped to keep memory within BULK_CACHE_MB while many lists were being prepared.
        ctx.sources.drop(ctx.user_id)
        await ctx.state.set_state(BulkForm.source)
        await ctx.state.set_data({})
        await message.answer(
            _(
                "Many lists were being prepared at once, and yours was set aside to save "
                "memory. Please send the file or the list again."
            )
            + "\n"
            + _("/cancel stops.")
        )
        return
    await ctx.state.clear()
    await message.answer(_("I no longer have the list. Start again with /bulk."))


async def stale(query: CallbackQuery, message: Message) -> None:
    await query.answer(_("This button is no longer active."))
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)


# --- the job's progress -------------------------------------------------------------------------


def progress_bar(done: int, total: int) -> str:
    share = done / total if total else 1.0
    filled = round(share * BAR_WIDTH)
    return "▓" * filled + "░" * (BAR_WIDTH - filled) + f" {int(share * 100)}%"


async def cost_so_far(bulk: BulkRepo, job_id: int) -> str:
    """What the job's sent rows cost, per currency."""
    return costs_text(sum_costs(await bulk.costs(job_id)))


async def pause_text(bulk: BulkRepo, job: JobRow) -> str:
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
        refusal = await bulk.last_failure(job.id)
        return _(
            "⏸ Paused: devsms.uz refused the last SMS one after another, answering: «{text}». "
            "Fix this (for example, the sender name) and tap Resume; only the rows not sent "
            "yet are sent."
        ).format(text=quote_cut(refusal or MISSING, REFUSAL_SHOWN))
    if reason == PAUSE_ACCESS:
        return _("⏸ Paused: an administrator withdrew your access to the bot.")
    if reason == PAUSE_ERROR:
        return _(
            "⏸ Paused: something went wrong on our side (it is logged). SMS whose fate is "
            "unclear are not sent again. Tap Resume to go on."
        )
    return _("⏸ Paused. Tap Resume to go on.")


async def progress_text(
    bulk: BulkRepo, settings: HandlerSettings, job: JobRow, counts: JobCounts
) -> str:
    title = _("📦 <b>Bulk job #{id}</b>").format(id=job.id)
    if job.file_name:
        title += " · " + html.quote(job.file_name)
    total = job.total or counts.done + counts.left
    lines = [title, progress_bar(counts.done, total)]
    if job.state in ("ready", "running"):
        lines.append(_("▶️ Sending…"))
    elif job.state == "paused":
        lines.append(await pause_text(bulk, job))
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
    cost = await cost_so_far(bulk, job.id)
    if job.state in ("done", "cancelled"):
        lines.append(_("Cost: {cost}").format(cost=cost))
    else:
        lines.append(_("Cost so far: {cost}").format(cost=cost))
    if job.state in ("ready", "running") and counts.left:
        lines.append(
            _("Time left: about {time}").format(
                time=duration_text(counts.left / settings.bulk_rate, round_up=True)
            )
        )
    return "\n".join(lines)


def not_sent_text(counts: JobCounts) -> str:
    """Rows whose fate was unclear and that devsms.uz showed no trace of a day later: not
    refused ("failed"), and not certain either."""
    return _("Probably not sent: {n} (no trace at devsms.uz a day later)").format(
        n=count(counts.not_sent)
    )


async def result_file(bulk: BulkRepo, job: JobRow) -> BufferedInputFile:
    rows = [
        (
            row.row_no,
            row.phone,
            row.sms_id,
            RESULT_STATES.get(row.state, row.state),
            row.status,
            row.error,
        )
        for row in await bulk.all_rows(job.id)
    ]
    fmt: ResultFormat = "xlsx" if job.file_format == "xlsx" else "csv"
    data = await asyncio.to_thread(
        write_result, fmt, RESULT_HEADER, rows, own_columns=RESULT_OWN_COLUMNS
    )
    stem = PurePosixPath(job.file_name).stem if job.file_name else "numbers"
    return BufferedInputFile(data, filename=f"{stem}-result-{job.id}.{fmt}")


# --- the job's buttons and /jobs ---------------------------------------------------------------


async def job_button(
    query: CallbackQuery, callback_data: JobCb, message: Message, ctx: BulkContext
) -> None:
    # The owner is checked: callback data can be forged.
    job = await ctx.bulk.get_job(callback_data.job_id, user_id=ctx.user_id)
    if job is None:
        await query.answer(_("This job was not found."), show_alert=True)
        return
    action = callback_data.action
    if action == "open":
        await query.answer()
        await show_job(message, ctx, job)
        return
    if action == "file":
        await query.answer()
        await message.answer_document(
            await result_file(ctx.bulk, job),
            caption=_("Bulk job #{id}: the result of every row.").format(id=job.id),
        )
        return
    if action == "pause":
        changed = await ctx.runner.pause(job.id)
        note = _("Paused.") if changed else _("This job is not running.")
    elif action == "resume":
        try:
            changed = await ctx.runner.resume(job.id)
        except ShortOfBalance as exc:
            await query.answer()
            await message.answer(
                _(
                    "⚠️ Not enough balance for the rest of job #{id}: it costs {total}, "
                    "{missing} more is needed. Top up at devsms.uz, then tap Resume."
                ).format(id=job.id, total=money(exc.cost.total), missing=money(exc.cost.missing))
            )
            return
        note = _("Resuming…") if changed else _("This job cannot be resumed now.")
    elif action == "cancel":
        changed = await ctx.runner.cancel(job.id)
        note = _("Job cancelled.") if changed else _("This job is already over.")
    else:
        await query.answer()
        return
    await query.answer(note)
    fresh = await ctx.bulk.get_job(job.id)
    assert fresh is not None
    text = await progress_text(ctx.bulk, ctx.settings, fresh, await ctx.bulk.counts(job.id))
    with suppress(TelegramBadRequest):
        await edit_or_keep(message, text, job_keyboard(job.id, fresh.state))


async def show_job(message: Message, ctx: BulkContext, job: JobRow) -> None:
    """Shows the job's progress message anew; the runner edits this one from now on."""
    text = await progress_text(ctx.bulk, ctx.settings, job, await ctx.bulk.counts(job.id))
    shown = await message.answer(text, reply_markup=job_keyboard(job.id, job.state))
    await ctx.bulk.set_progress_message(job.id, shown.chat.id, shown.message_id)


async def list_jobs(message: Message, ctx: BulkContext) -> None:
    jobs = await ctx.bulk.jobs_of(ctx.user_id, limit=JOBS_LISTED)
    if not jobs:
        await message.answer(_("No bulk jobs yet. Start one with /bulk."))
        return
    lines = [_("📦 <b>Your bulk jobs</b>"), ""]
    for job in jobs:
        counts = await ctx.bulk.counts(job.id)
        name = html.quote(job.file_name) if job.file_name else _("Pasted list")
        line = _("#{id} · {name} · {state} · sent {sent} of {total}, failed {failed}").format(
            id=job.id,
            name=name,
            state=_(_STATE_LABELS.get(job.state, job.state)),
            sent=count(counts.sent),
            total=count(job.total),
            failed=count(counts.failed),
        )
        if counts.unknown:
            line += ", " + _("unclear {n}").format(n=count(counts.unknown))
        if counts.not_sent:
            line += ", " + _("probably not sent {n}").format(n=count(counts.not_sent))
        lines.append(line)
    lines.append("")
    lines.append(_("Tap a job to open it."))
    await message.answer("\n".join(lines), reply_markup=jobs_keyboard([job.id for job in jobs]))


def create_router() -> Router:
    router = Router(name="bulk")
    middleware = ContextMiddleware(bulk_context)
    router.message.middleware(middleware)
    router.callback_query.middleware(middleware)
    router.message.register(start_bulk, Command("bulk"))
    router.message.register(list_jobs, Command("jobs"))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(document_received, StateFilter(BulkForm), F.document)
    router.message.register(list_pasted, BulkForm.source, *free_text)
    router.message.register(source_not_understood, BulkForm.source, ~F.text)
    router.message.register(text_received, BulkForm.text, *free_text)
    # A new text while the report is shown: a new report for the same list.
    router.message.register(text_received, BulkForm.review, *free_text)
    router.message.register(text_not_understood, BulkForm.text, ~F.text)
    router.message.register(text_not_understood, BulkForm.review, ~F.text)
    on_message = (ACCESSIBLE, Accessible())
    router.callback_query.register(
        template_picked,
        BulkCb.filter((F.action == "tpl") & (F.tpl >= 0) & (F.tpl <= ID_MAX)),
        *on_message,
    )
    router.callback_query.register(review_button, BulkCb.filter(F.action != "tpl"), *on_message)
    router.callback_query.register(
        job_button, JobCb.filter((F.job_id > 0) & (F.job_id <= ID_MAX)), *on_message
    )
    return router
