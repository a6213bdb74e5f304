"""Settling outbox rows left 'unknown' by a send that timed out, from what the gateway shows.

devsms has no idempotency key (see /work/shared/devsms-api.md, "Send an SMS"), so a send whose
answer was lost is never retried; its row waits in state 'unknown' until the gateway's history
or status shows an SMS that must be it: the same phone, the same text, sent no earlier than the
row was written. Each gateway SMS settles at most one row, so two identical sends that both
timed out need two SMS in the history.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from services.devsms import SmsRecord
from services.money import USD, Money
from services.sending import first_check_at
from storage.outbox import OutboxRepo, OutboxRow

logger = logging.getLogger(__name__)

# Our clock and the gateway's need not agree to the second.
CLOCK_SKEW: Final = timedelta(minutes=5)
_NOT_DIGITS: Final = re.compile(r"[^0-9]")


async def reconcile_unknown(
    outbox: OutboxRepo, user_id: int, records: Sequence[SmsRecord]
) -> list[int]:
    """Marks the user's 'unknown' outbox rows sent when ``records`` show them; returns their ids.

    Rows are taken oldest first and each gets the oldest fitting record, so identical sends pair
    up in order. A record already tied to an outbox row (by its sms_id) is never reused.
    """
    rows = await outbox.unknown_for_user(user_id)
    if not rows or not records:
        return []
    candidates = [
        record for record in _oldest_first(records) if any(_same_sms(row, record) for row in rows)
    ]
    # Checked against the database too: an SMS the bot sent successfully earlier with the same
    # text to the same phone is that earlier row's, not this one's.
    free: list[SmsRecord] = []
    for record in candidates:
        if record.sms_id is None or await outbox.by_sms_id(user_id, record.sms_id) is None:
            free.append(record)

    resolved: list[int] = []
    for row in rows:
        match = next((record for record in free if _is_this_send(row, record)), None)
        if match is None:
            continue
        free.remove(match)
        settled = await outbox.mark_sent(
            row.id,
            sms_id=match.sms_id,
            request_id=match.request_id,
            status=match.status,
            parts_count=match.parts_count,
            total_cost=cost_text(match.cost),
        )
        if settled:
            logger.info(
                "outbox %s of user %s reconciled with sms %s", row.id, user_id, match.sms_id
            )
            resolved.append(row.id)
            if match.sms_id is not None:
                # From here it is tracked like any sent SMS, its delivery result reported once.
                await outbox.schedule_check(row.id, first_check_at(after=timedelta(0)), 0)
    return resolved


def cost_text(cost: Money | None) -> str | None:
    """The cost as the gateway writes it ("50", "$0.005"), for the outbox's verbatim column."""
    if cost is None:
        return None
    amount = format(cost.amount.normalize(), "f") if cost.amount != 0 else "0"
    return f"${amount}" if cost.currency == USD else amount


def _oldest_first(records: Sequence[SmsRecord]) -> list[SmsRecord]:
    # The gateway's ids grow with time and, unlike its timestamps, carry no zone question.
    # History comes newest first; records without an id keep their relative order, last.
    return sorted(records, key=lambda r: (r.sms_id is None, r.sms_id or 0))


def _is_this_send(row: OutboxRow, record: SmsRecord) -> bool:
    return _same_sms(row, record) and _not_older(row, record)


def _same_sms(row: OutboxRow, record: SmsRecord) -> bool:
    if record.phone is None or record.message is None:
        return False
    return _digits(row.phone) == _digits(record.phone) and _text(row.message) == _text(
        record.message
    )


def _not_older(row: OutboxRow, record: SmsRecord) -> bool:
    """False only when the record was provably created before the row (minus clock skew)."""
    sent_at = record.created_at
    if not isinstance(sent_at, datetime):
        return True  # no usable time: phone and text decide
    try:
        row_at = datetime.fromisoformat(row.created_at)
    except ValueError:
        return True
    if row_at.tzinfo is None:
        row_at = row_at.replace(tzinfo=UTC)
    if sent_at.tzinfo is None:
        # The gateway gives local wall-clock time without a zone. Read as UTC, a time from a
        # zone east of UTC (devsms.uz: Tashkent, UTC+5) only looks later, so a real match is
        # never refused; the phone, the text and the unused-record rule do the rest.
        sent_at = sent_at.replace(tzinfo=UTC)
    return sent_at >= row_at - CLOCK_SKEW


def _digits(phone: str) -> str:
    return _NOT_DIGITS.sub("", phone)


def _text(message: str) -> str:
    # Line endings and outer whitespace may be normalised by the gateway or its database.
    return message.replace("\r\n", "\n").strip()
