"""One SMS from a confirmed preview to the gateway, recorded before and after the request."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from services.accounts import Accounts
from services.devsms import (
    DevsmsError,
    DevsmsGatewayError,
    DevsmsSendUnknown,
    DevsmsUnauthorized,
    DevsmsUnavailable,
    SendResult,
    is_final_status,
)
from services.phones import mask_phone
from storage import OutboxRepo

logger = logging.getLogger(__name__)

FIRST_CHECK_AFTER: Final = dt.timedelta(seconds=30)


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


@dataclass(frozen=True, slots=True)
class SendOutcome:
    outcome: Outcome
    outbox_id: int
    result: SendResult | None = None
    gateway_text: str | None = None


class SmsSender:
    def __init__(
        self,
        accounts: Accounts,
        outbox: OutboxRepo,
        first_check: dt.timedelta = FIRST_CHECK_AFTER,
    ) -> None:
        self._accounts = accounts
        self._outbox = outbox
        self._first_check = first_check

    async def send(
        self, user_id: int, phone: str, message: str, sender: str | None
    ) -> SendOutcome:
        """Exactly one POST. The outbox row is committed before it, so a crash mid-request
        leaves a 'pending' row to reconcile instead of a forgotten SMS."""
        outbox_id = await self._outbox.create_pending(user_id, phone, message, sender)
        try:
            result = await self._accounts.send(user_id, phone, message, sender)
        except (DevsmsSendUnknown, DevsmsGatewayError) as exc:
            await self._outbox.mark_unknown(outbox_id, type(exc).__name__)
            logger.warning("send %s to %s: outcome unknown", outbox_id, mask_phone(phone))
            return SendOutcome(Outcome.UNKNOWN, outbox_id)
        except DevsmsUnauthorized as exc:
            await self._outbox.mark_failed(outbox_id, "unauthorized")
            return SendOutcome(Outcome.TOKEN_REJECTED, outbox_id, gateway_text=exc.gateway_text)
        except DevsmsUnavailable as exc:
            # On a send this means the connection was never made.
            await self._outbox.mark_failed(outbox_id, type(exc).__name__)
            return SendOutcome(Outcome.NOT_SENT, outbox_id, gateway_text=exc.gateway_text)
        except DevsmsError as exc:
            await self._outbox.mark_failed(outbox_id, exc.gateway_text or type(exc).__name__)
            return SendOutcome(Outcome.REFUSED, outbox_id, gateway_text=exc.gateway_text)
        except BaseException:
            # Cancelled or crashed mid-request: it may have gone out.
            await self._outbox.mark_unknown(outbox_id, "interrupted")
            raise
        await self._outbox.mark_sent(
            outbox_id,
            result.sms_id,
            result.request_id,
            result.status,
            result.parts_count,
            result.total_cost.format() if result.total_cost else None,
        )
        if result.sms_id is not None and not is_final_status(result.status):
            await self._outbox.schedule_check(
                outbox_id, first_check_at(after=self._first_check), checks=0
            )
        logger.info("send %s to %s: sms_id %s", outbox_id, mask_phone(phone), result.sms_id)
        return SendOutcome(Outcome.SENT, outbox_id, result)
