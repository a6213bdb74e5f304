"""/bulk and /jobs: one text to many numbers from a CSV/XLSX file or a pasted list.

- `dialog`: upload or paste → text → dry-run report;
- `start`: the report's Start and Cancel, and the job Start creates;
- `jobs`: /jobs and a job's buttons, and reading a job's facts and result file;
- `render`: the jobs' texts and files, pure functions of what the callers read;
- `dry_run`: the texts before Start (the list as read, the dry-run report);
- `prices`: the dry run's parts per row, rows abroad and the cheaper spelling's saving;
- `abroad`: the rates of the list's countries and the checks Start makes with them;
- `spelling`: the dry run's "cheaper spelling" button.

bot/notices/jobs.py (the job's reports) uses the names exported here.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter

from handlers.bulk.dialog import (
    document_received,
    list_pasted,
    source_not_understood,
    start_bulk,
    template_picked,
    text_not_understood,
    text_received,
)
from handlers.bulk.dry_run import review_text
from handlers.bulk.jobs import (
    cancel_job,
    job_facts,
    job_file,
    list_jobs,
    load_result_file,
    open_job,
    pause_job,
    resume_job,
)
from handlers.bulk.render import (
    JobFacts,
    cost_so_far,
    not_sent_text,
    pause_text,
    progress_text,
    result_file,
)
from handlers.bulk.spelling import cheaper_button
from handlers.bulk.start import cancel_button, start_button
from handlers.callbacks import ID_MAX, BulkAction, BulkCb, JobAction, JobCb
from handlers.filters import Accessible, AnyMenuButton
from handlers.states import BulkForm
from handlers.templates import ACCESSIBLE
from handlers.utils import AnswerCallbacks

__all__ = [
    "JobFacts",
    "cost_so_far",
    "create_router",
    "job_facts",
    "load_result_file",
    "not_sent_text",
    "pause_text",
    "progress_text",
    "result_file",
    "review_text",
]


def create_router() -> Router:
    router = Router(name="bulk")
    # Every button is answered once, after its handler; a handler sets the text, if any.
    router.callback_query.middleware(AnswerCallbacks())
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
        BulkCb.filter((F.action == BulkAction.TEMPLATE) & (F.tpl >= 0) & (F.tpl <= ID_MAX)),
        *on_message,
    )
    router.callback_query.register(
        cheaper_button, BulkCb.filter(F.action == BulkAction.CHEAP), *on_message
    )
    router.callback_query.register(
        # Start; Start under the question about rows abroad (handlers/bulk/abroad.py); and
        # "Start anyway" under the one about quiet hours (handlers/bulk/quiet.py).
        start_button,
        BulkCb.filter(F.action.in_({BulkAction.START, BulkAction.INTL, BulkAction.FORCE})),
        *on_message,
    )
    router.callback_query.register(
        cancel_button, BulkCb.filter(F.action == BulkAction.CANCEL), *on_message
    )
    job_buttons = (
        (JobAction.OPEN, open_job),
        (JobAction.FILE, job_file),
        (JobAction.PAUSE, pause_job),
        (JobAction.RESUME, resume_job),
        (JobAction.CANCEL, cancel_job),
    )
    for action, button in job_buttons:
        job_id_fits = (F.job_id > 0) & (F.job_id <= ID_MAX)
        router.callback_query.register(
            button, JobCb.filter((F.action == action) & job_id_fits), *on_message
        )
    return router
