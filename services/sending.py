"""One SMS from a confirmed preview to the gateway, recorded before and after the request."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from services import metrics
from services.accounts import Accounts, NoToken
from services.callbacks import CallbackLink, CallbackLinks
from services.devsms import (
    DevsmsError,
    DevsmsGatewayError,
    DevsmsSendUnknown,
    DevsmsUnauthorized,
    DevsmsUnavailable,
    SendResult,
    is_final_status,
)
from services.otp import OtpRequest, outbox_text
from services.phones import foreign_region, mask_phone
from services.pricing import stored_cost
from storage import OutboxKind, OutboxRepo, StopEntry, StopListRepo
from storage.outbox import Claim

logger = logging.getLogger(__name__)

FIRST_CHECK_AFTER: Final = dt.timedelta(seconds=30)
# Pauses between attempts to write down the outcome of a request that was already made
# (a locked or full database). After the last one the row stays 'pending', which the next
# start turns into 'unknown' for reconciliation through the history.
RECORD_RETRY_DELAYS: Final = (0.2, 1.0, 5.0, 15.0, 60.0)


def first_check_at(now: dt.datetime | None = None, after: dt.timedelta = FIRST_CHECK_AFTER) -> str:
    """When delivery tracking first looks at a fresh SMS (see services/tracker.py)."""
    moment = (now or dt.datetime.now(dt.UTC)) + after
    return moment.isoformat(timespec="seconds")


class Outcome(StrEnum):
    SENT = "sent"
    REFUSED = "refused"  # the gateway said no: nothing was sent or charged
    NOT_SENT = "not_sent"  # the request never reached the gateway
    UNKNOWN = "unknown"  # it may have gone out: never resend, reconcile through history
    TOKEN_REJECTED = "token_rejected"
    NO_TOKEN = "no_token"  # the token was gone (logout, undecryptable) before the request
    STOPPED = "stopped"  # the number is on the user's stop list: no request, no outbox row


@dataclass(frozen=True, slots=True)
class SendOutcome:
    outcome: Outcome
    outbox_id: int
    result: SendResult | None = None
    gateway_text: str | None = None
    stopped: StopEntry | None = None
    """For STOPPED: the stop-list entry that held the SMS back (outbox_id is 0 then)."""


class SmsSender:
    def __init__(
        self,
        accounts: Accounts,
        outbox: OutboxRepo,
        first_check: dt.timedelta = FIRST_CHECK_AFTER,
        record_retry: Sequence[float] = RECORD_RETRY_DELAYS,
        stoplist: StopListRepo | None = None,
        links: CallbackLinks | None = None,
    ) -> None:
        self._accounts = accounts
        # Set when PUBLIC_BASE_URL is: every send then carries its own callback URL.
        self._links = links
        self._outbox = outbox
        # Every single send passes here, so the stop list is checked here and nowhere later;
        # by default it is read from the outbox's own database, so no sender can go without.
        self._stoplist = stoplist or StopListRepo(outbox.db)
        self._first_check = first_check
        self._record_retry = tuple(record_retry)
        self._recording: set[asyncio.Task[None]] = set()

    async def send(
        self,
        user_id: int,
        phone: str,
        message: str,
        sender: str | None,
        *,
        claim: Claim | None = None,
        template: str | None = None,
    ) -> SendOutcome:
        """Exactly one POST. The outbox row is committed before it, so a crash mid-request
        leaves a 'pending' row to reconcile instead of a forgotten SMS.

        Once the request was made, the outcome is returned whatever happens to the record of
        it: a write that fails is retried in the background (see :meth:`close`), because
        "something went wrong, try again" after an SMS went out would have it sent twice.

        `claim` (a scheduled send) is committed together with the outbox row; when it says no,
        storage.outbox.NotClaimed is raised and nothing is recorded or sent. `template`: the
        name of the saved template the text came from, kept in the row for /export.

        A number on the user's stop list gets no request at all (Outcome.STOPPED), whatever
        the preview showed: it may have been added since.
        """
        held = await self._held_back(user_id, phone)
        if held is not None:
            return held
        country = foreign_region(phone)
        link = self._new_link()
        hashed = None if link is None else link.token_hash
        if claim is None:
            outbox_id = await self._outbox.create_pending(
                user_id,
                phone,
                message,
                sender,
                country=country,
                template=template,
                callback_hash=hashed,
            )
        else:
            outbox_id = await self._outbox.create_claimed(
                user_id,
                phone,
                message,
                sender,
                claim,
                country=country,
                template=template,
                callback_hash=hashed,
            )
        url = None if link is None else link.url
        outcome = await self._deliver(
            outbox_id,
            phone,
            lambda: self._accounts.send(user_id, phone, message, sender, callback_url=url),
            self._first_check_of(user_id),
        )
        metrics.sms("single", outcome.outcome.value)
        return outcome

    async def send_otp(self, user_id: int, phone: str, otp: OtpRequest) -> SendOutcome:
        """One verification code (type universal_otp), under the same rules as :meth:`send`.
        The outbox row keeps the company name and the code (services/otp.outbox_text), which
        the history is matched on; the code goes into no log line."""
        held = await self._held_back(user_id, phone)
        if held is not None:
            return held
        link = self._new_link()
        outbox_id = await self._outbox.create_pending(
            user_id,
            phone,
            outbox_text(otp),
            None,
            kind=OutboxKind.OTP,
            country=foreign_region(phone),
            callback_hash=None if link is None else link.token_hash,
        )
        url = None if link is None else link.url
        outcome = await self._deliver(
            outbox_id,
            phone,
            lambda: self._accounts.send_otp(user_id, phone, otp, callback_url=url),
            self._first_check_of(user_id),
        )
        metrics.sms("otp", outcome.outcome.value)
        return outcome

    def _new_link(self) -> CallbackLink | None:
        return None if self._links is None else self._links.new()

    def _first_check_of(self, user_id: int) -> dt.timedelta:
        """Later when the account's delivery callbacks have been arriving: polling is then
        only the fallback for a report that never comes."""
        if self._links is None:
            return self._first_check
        return self._links.first_check(user_id, self._first_check)

    async def _held_back(self, user_id: int, phone: str) -> SendOutcome | None:
        """STOPPED for a number on the user's stop list, before anything is recorded."""
        stopped = await self._stoplist.entry(user_id, phone)
        if stopped is None:
            return None
        logger.info("send to %s: on the stop list of user %s", mask_phone(phone), user_id)
        return SendOutcome(Outcome.STOPPED, 0, stopped=stopped)

    async def _deliver(
        self,
        outbox_id: int,
        phone: str,
        request: Callable[[], Awaitable[SendResult]],
        first_check: dt.timedelta,
    ) -> SendOutcome:
        """Makes the one request of a recorded send and writes down what came of it."""
        try:
            result = await request()
        except NoToken:
            # Raised before any request: the token was removed (/logout elsewhere) or cannot
            # be read any more since the preview.
            await self._record(outbox_id, lambda: self._outbox.mark_failed(outbox_id, "no token"))
            return SendOutcome(Outcome.NO_TOKEN, outbox_id)
        except (DevsmsSendUnknown, DevsmsGatewayError) as exc:
            reason = type(exc).__name__
            await self._record(outbox_id, lambda: self._outbox.mark_unknown(outbox_id, reason))
            logger.warning("send %s to %s: outcome unknown", outbox_id, mask_phone(phone))
            return SendOutcome(Outcome.UNKNOWN, outbox_id)
        except DevsmsUnauthorized as exc:
            await self._record(
                outbox_id, lambda: self._outbox.mark_failed(outbox_id, "unauthorized")
            )
            return SendOutcome(Outcome.TOKEN_REJECTED, outbox_id, gateway_text=exc.gateway_text)
        except DevsmsUnavailable as exc:
            # On a send this means the request was never written.
            reason = type(exc).__name__
            await self._record(outbox_id, lambda: self._outbox.mark_failed(outbox_id, reason))
            return SendOutcome(Outcome.NOT_SENT, outbox_id, gateway_text=exc.gateway_text)
        except DevsmsError as exc:
            reason = exc.gateway_text or type(exc).__name__
            await self._record(outbox_id, lambda: self._outbox.mark_failed(outbox_id, reason))
            return SendOutcome(Outcome.REFUSED, outbox_id, gateway_text=exc.gateway_text)
        except BaseException:
            # Cancelled or crashed mid-request: it may have gone out.
            await self._outbox.mark_unknown(outbox_id, "interrupted")
            raise
        await self._record(outbox_id, lambda: self._record_sent(outbox_id, result, first_check))
        logger.info("send %s to %s: sms_id %s", outbox_id, mask_phone(phone), result.sms_id)
        return SendOutcome(Outcome.SENT, outbox_id, result)

    async def _record_sent(
        self, outbox_id: int, result: SendResult, first_check: dt.timedelta
    ) -> None:
        await self._outbox.mark_sent(
            outbox_id,
            result.sms_id,
            result.request_id,
            result.status,
            result.parts_count,
            stored_cost(result.total_cost),
        )
        if result.sms_id is not None and not is_final_status(result.status):
            await self._outbox.schedule_check(
                outbox_id, first_check_at(after=first_check), checks=0
            )

    async def _record(self, outbox_id: int, write: Callable[[], Awaitable[object]]) -> None:
        """Writes an outcome now, or keeps trying in the background; never raises."""
        try:
            await write()
        except Exception:
            logger.exception("outbox %s: could not record the outcome; retrying", outbox_id)
            task = asyncio.create_task(self._retry(outbox_id, write))
            self._recording.add(task)
            task.add_done_callback(self._recording.discard)

    async def _retry(self, outbox_id: int, write: Callable[[], Awaitable[object]]) -> None:
        for delay in self._record_retry:
            await asyncio.sleep(delay)
            try:
                await write()
            except Exception as exc:
                logger.warning("outbox %s: recording failed again (%s)", outbox_id, exc)
            else:
                logger.info("outbox %s: outcome recorded after a retry", outbox_id)
                return
        # Left 'pending': the next start makes it 'unknown' and reconciles it.
        logger.error("outbox %s: outcome not recorded; settled at the next start", outbox_id)

    async def close(self) -> None:
        """At shutdown, before the database closes: lets pending records finish briefly."""
        if not self._recording:
            return
        _, late = await asyncio.wait(set(self._recording), timeout=5.0)
        for task in late:
            task.cancel()
