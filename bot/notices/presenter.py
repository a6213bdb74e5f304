"""services.events.Notices for the running bot: each event becomes a message in its
recipient's language and goes to the paced notifier (admin notices through the digest)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aiogram.utils.i18n import I18n

from bot.notices import insights, texts
from bot.notices.digest import AdminDigest, AdminNotice
from bot.notices.jobs import JobReports
from bot.notices.notifier import Delivery, Outbox
from services.events import (
    AccessDecided,
    AccessRequested,
    BroadcastFinished,
    BroadcastProgress,
    BroadcastReport,
    BulkDeliveryResults,
    DeliveryRateLow,
    DeliveryResult,
    Event,
    FailuresSeen,
    GatewayDown,
    GatewayUp,
    JobFinished,
    JobPaused,
    JobProgress,
    LowBalance,
    Person,
    ScheduledJobStarted,
    ScheduledMissed,
    ScheduledNotStarted,
    ScheduledSmsDone,
    TokenConnected,
    TokenRejected,
    TrafficDigest,
    UnknownSendMissing,
)
from services.languages import LANGUAGES
from storage import JobRow, UserRepo

logger = logging.getLogger(__name__)

E = TypeVar("E")


class Presenter:
    """Renders events and hands them on; see services.events.Notices for what waits."""

    def __init__(
        self,
        outbox: Outbox,
        digest: AdminDigest,
        i18n: I18n,
        users: UserRepo,
        *,
        default_language: str,
        jobs: JobReports | None = None,
    ) -> None:
        self._outbox = outbox
        self._digest = digest
        self._i18n = i18n
        self._users = users
        self._default_language = default_language
        self._jobs = jobs

    async def emit(self, event: Event) -> None:
        match event:
            case LowBalance():
                await self._tell(event.person, texts.low_balance, event)
                self._note(texts.low_balance_note, event)
            case TokenRejected():
                await self._tell(event.person, texts.token_rejected, event)
                self._note(texts.token_rejected_note, event)
            case DeliveryResult():
                await self._tell(event.person, texts.delivery_result, event)
            case UnknownSendMissing():
                await self._tell(event.person, texts.unknown_send_missing, event)
            case BulkDeliveryResults():
                await self._tell(event.person, texts.bulk_delivery_results, event)
            case FailuresSeen():
                await self._tell(event.person, insights.failures_seen, event)
            case DeliveryRateLow():
                await self._tell(event.person, insights.delivery_rate_low, event)
            case TrafficDigest():
                await self._tell(event.person, insights.traffic_digest, event)
            case AccessRequested():
                self._note(texts.access_requested_note, event)
            case TokenConnected():
                self._note(texts.token_connected_note, event)
            case AccessDecided():
                with self._locale(event.person.language):
                    text, markup = texts.access_decided(event)
                self._outbox.post(event.person.user_id, text, reply_markup=markup)
            case GatewayDown():
                with self._locale(None):
                    self._outbox.post_to_admins(texts.gateway_down(event))
            case GatewayUp():
                with self._locale(None):
                    self._outbox.post_to_admins(texts.gateway_up(event))
            case ScheduledSmsDone():
                await self._tell(event.person, texts.scheduled_sms_done, event)
            case ScheduledJobStarted():
                await self._tell(event.person, texts.scheduled_job_started, event)
            case ScheduledNotStarted():
                await self._tell(event.person, texts.scheduled_not_started, event)
            case ScheduledMissed():
                await self._tell(event.person, texts.scheduled_missed, event)
            case JobProgress() | JobPaused() | JobFinished():
                await self._job(event)
            case BroadcastProgress():
                with self._locale(event.language):
                    text = texts.broadcast_progress(event)
                await self._edit_report(event, text)
            case BroadcastFinished():
                with self._locale(event.language):
                    text = texts.broadcast_finished(event)
                await self._edit_report(event, text)
                # An edit makes no sound: the tally also comes as a message of its own.
                self._outbox.post(event.chat_id, text)

    async def _tell(self, person: Person, render: Callable[[E], texts.Message], event: E) -> None:
        with self._locale(person.language):
            text, markup = render(event)
        await self._outbox.send(person.user_id, text, reply_markup=markup)

    def _note(self, render: Callable[[E], AdminNotice], event: E) -> None:
        with self._locale(None):  # admins read the default language
            notice = render(event)
        self._digest.add(notice)

    async def _edit_report(self, event: BroadcastReport, text: str) -> None:
        # The report is a courtesy (the notifier never raises): a failed edit is only logged.
        if await self._outbox.edit(event.chat_id, event.message_id, text) != Delivery.DELIVERED:
            logger.warning("could not update the broadcast report")

    async def _job(self, event: JobProgress | JobPaused | JobFinished) -> None:
        if self._jobs is None:
            logger.warning("bulk job %s: no job reports wired in", event.job.id)
            return
        with self._locale(await self._job_language(event.job)):
            if isinstance(event, JobProgress):
                await self._jobs.progress(event)
            elif isinstance(event, JobPaused):
                await self._jobs.paused(event)
            else:
                await self._jobs.finished(event)

    async def _job_language(self, job: JobRow) -> str:
        user = await self._users.get(job.user_id)
        if user is not None and user.language in LANGUAGES:
            return str(user.language)
        # A job the runner started from a handler inherited that update's locale; one resumed
        # at start-up gets the default.
        return self._i18n.current_locale

    @contextmanager
    def _locale(self, language: str | None) -> Iterator[None]:
        with self._i18n.context(), self._i18n.use_locale(language or self._default_language):
            yield
