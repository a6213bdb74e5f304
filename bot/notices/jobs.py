"""A bulk job's reports to its owner: the progress message edited in place, a short message
when the runner pauses the job (an edit makes no sound), and the summary with the result file.

They run outside any update, in the job owner's language (services/bulk.BulkRunner emits the
events), and go through the notifier like every other message the bot sends on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.utils.i18n import gettext as _

from bot.notices.notifier import Delivery, Outbox
from handlers.bulk import (
    JobFacts,
    cost_so_far,
    job_facts,
    load_result_file,
    not_sent_text,
    pause_text,
    progress_text,
)
from handlers.config import HandlerSettings
from handlers.keyboards import job_keyboard, open_job_keyboard
from handlers.render import count
from handlers.stoplist_texts import left_out_text
from services.events import JobFinished, JobPaused, JobProgress
from storage import BulkRepo


@dataclass(frozen=True, slots=True)
class JobReports:
    """Renders in the locale the caller set; `outbox` is the notifier."""

    outbox: Outbox
    bulk: BulkRepo
    settings: HandlerSettings

    async def progress(self, event: JobProgress) -> None:
        await self._edit(await job_facts(self.bulk, event.job, event.counts))

    async def paused(self, event: JobPaused) -> None:
        job = event.job
        facts = await job_facts(self.bulk, job, event.counts)
        await self._edit(facts)
        # An edit makes no sound: a short new message tells the user the sending stopped.
        await self.outbox.send(
            job.chat_id or job.user_id,
            _("Bulk job #{id}: {reason}").format(id=job.id, reason=pause_text(job, facts.refusal)),
            reply_markup=open_job_keyboard(job.id),
        )

    async def finished(self, event: JobFinished) -> None:
        job, counts = event.job, event.counts
        facts = await job_facts(self.bulk, job, counts)
        await self._edit(facts)
        if not await self.bulk.mark_summary_sent(job.id):
            return
        text = "\n".join(
            [
                _("✅ <b>Bulk job #{id} finished.</b>").format(id=job.id),
                _("Sent: {sent} · failed: {failed} · unclear: {unknown}").format(
                    sent=count(counts.sent),
                    failed=count(counts.failed),
                    unknown=count(counts.unknown),
                ),
                *([not_sent_text(counts)] if counts.not_sent else []),
                *([left_out_text(counts.stopped)] if counts.stopped else []),
                _("Cost: {cost}").format(cost=cost_so_far(facts.costs)),
                _("The file has the result of every row."),
            ]
        )
        await self.outbox.send_document(
            job.chat_id or job.user_id, await load_result_file(self.bulk, job), caption=text
        )

    async def _edit(self, facts: JobFacts) -> Delivery | None:
        job = facts.job
        if job.chat_id is None or job.progress_message_id is None:
            return None
        text = progress_text(facts, self.settings.bulk_rate)
        return await self.outbox.edit(
            job.chat_id,
            job.progress_message_id,
            text,
            reply_markup=job_keyboard(job.id, job.state),
        )
