"""Client for the devsms.uz HTTP API (see /work/shared/devsms-api.md).

One :class:`DevsmsClient` holds one aiohttp session for the whole bot; the token travels per
call because every Telegram user has their own. Callers get frozen dataclasses back and only
ever see :class:`DevsmsError` subclasses, never aiohttp exceptions or raw dicts.

Error mapping, by HTTP status because the gateway has no machine-readable error codes:

==========================================  =====================================
what happened                               exception
==========================================  =====================================
401                                         DevsmsUnauthorized
403                                         DevsmsForbidden (a DevsmsBadRequest)
404                                         DevsmsNotFound
400 and any other 4xx                       DevsmsBadRequest
HTTP 200 with ``"success": false``          DevsmsBadRequest: the gateway looked at
                                            the request and refused it, so nothing
                                            was done (and a send was not charged)
5xx, 429 (after retries for GETs)           DevsmsGatewayError / DevsmsRateLimited
2xx with HTML, garbage or non-object JSON   DevsmsGatewayError
no answer: refused, DNS, timeout            DevsmsUnavailable
send_sms that may have reached the gateway  DevsmsSendUnknown
but gave no usable answer
==========================================  =====================================

``send_sms`` is never retried: the gateway has no idempotency key and charges every send, so
a second attempt could send (and bill) the SMS twice. What decides between "not sent"
(DevsmsUnavailable) and "unknown" (DevsmsSendUnknown) is *when* a failure happened, not the
exception's class (aiohttp raises RuntimeError, OSError or TimeoutError on both sides): a
failure before aiohttp handed over a connection (waiting for a slot, DNS, connect, a closed
session) proves nothing was written; anything after may have reached the gateway.

Timing: waiting for a slot and connecting have their own budgets, and the request's
``timeout`` starts only once a connection is in hand. A busy bot therefore reports a send
that waited too long as "not sent", never as "unknown". Slots are shared fairly: at most
``connections`` requests at once, at most ``per_token`` for one devsms account, and an
account's second and later concurrent requests leave a quarter of the slots to accounts that
have none in flight, so one account's bulk job cannot make another's single send queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from types import SimpleNamespace
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiohttp
from yarl import URL

from services import metrics
from services.money import Money, parse_money

logger = logging.getLogger(__name__)

SEND_PATH: Final = "/send_sms.php"
HISTORY_PATH: Final = "/get_history.php"
BALANCE_PATH: Final = "/get_balance.php"
STATUS_PATH: Final = "/get_status.php"

HISTORY_MAX_LIMIT: Final = 200
# The zone of the gateway's wall-clock timestamps ("2024-01-31 12:00:00", no offset): its
# servers are in Uzbekistan. Settings.gateway_timezone overrides it.
DEFAULT_GATEWAY_TIMEZONE: Final = "Asia/Tashkent"
_DEFAULT_ZONE: Final = ZoneInfo(DEFAULT_GATEWAY_TIMEZONE)
FINAL_STATUSES: Final[frozenset[str]] = frozenset(
    {"DELIVERED", "REJECTED", "UNDELIVERABLE", "EXPIRED"}
)

GATEWAY_TEXT_LIMIT: Final = 300
# A misbehaving proxy can answer 429 with "Retry-After: 3600"; the bot would rather report the
# gateway as busy than hold a user's request for an hour.
MAX_RETRY_DELAY: Final = 30.0
# Statuses that say "try again later" rather than "this request is wrong".
_TRANSIENT_4XX: Final[frozenset[int]] = frozenset({408, 429})
_HISTORY_LIST_KEYS: Final = ("sms", "history", "items", "messages", "data", "list", "rows")
_TOTAL_KEYS: Final = ("total", "count", "total_count", "totalCount")
_PAGINATION_KEYS: Final = ("pagination", "meta", "paging")
# How deep parse_history looks for the list: {"data": {"data": {"items": [...]}}} at most.
_HISTORY_MAX_DEPTH: Final = 3
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")
# 40 digits: ids beyond int64 (the gateway's own choice) are still read and shown, while a
# hostile "9" * 10**6 stays cheap.
_INTEGER: Final = re.compile(r"-?[0-9]{1,40}")
_LABEL_MAX: Final = 64
# `type` of a templated verification SMS (devsms-api.md, "Send an SMS").
OTP_TYPE: Final = "universal_otp"


# --- exceptions ------------------------------------------------------------------------------


class DevsmsError(Exception):
    """Base of everything the client raises. ``str()`` never contains the token."""

    def __init__(
        self,
        message: str,
        *,
        gateway_text: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.gateway_text = gateway_text
        """The gateway's own error text (usually Uzbek), trimmed; show it to the user quoted."""
        self.http_status = http_status


class DevsmsUnauthorized(DevsmsError):
    """401: the token is wrong or revoked."""


class DevsmsBadRequest(DevsmsError):
    """400 or another 4xx, or ``success: false``: the gateway refused; nothing was done."""


class DevsmsForbidden(DevsmsBadRequest):
    """403: the token may not do this."""


class DevsmsNotFound(DevsmsError):
    """404: no such SMS for this token."""


class DevsmsGatewayError(DevsmsError):
    """The gateway answered, but with a 5xx or something that is not its JSON."""


class DevsmsRateLimited(DevsmsGatewayError):
    """429 that outlasted the retries."""


class DevsmsUnavailable(DevsmsError):
    """No answer at all: connection refused, DNS failure, timeout. A send did not go out."""


class DevsmsSendUnknown(DevsmsError):
    """A send may have reached the gateway but no usable answer came: it may or may not have
    gone out (and been charged). Never resend automatically; reconcile through the history."""


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statistics:
    total_sms: int | None = None
    total_spent: Money | None = None
    today_sms: int | None = None
    today_spent: Money | None = None
    month_sms: int | None = None
    month_spent: Money | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    balance: Money | None
    sms_price: Money | None
    statistics: Statistics = field(default_factory=Statistics)


@dataclass(frozen=True, slots=True)
class SendResult:
    sms_id: int | None
    request_id: str | None
    status: str | None
    parts_count: int | None
    total_cost: Money | None
    balance: Money | None
    country: str | None = None
    """International sends (later docs revision): the country's name, as the gateway says."""
    country_code: str | None = None
    """International sends: the country's code, as the gateway says (e.g. "RU")."""


@dataclass(frozen=True, slots=True)
class SmsRecord:
    sms_id: int | None = None
    request_id: str | None = None
    phone: str | None = None
    message: str | None = None
    sender: str | None = None
    status: str | None = None
    parts_count: int | None = None
    cost: Money | None = None
    created_at: datetime | str | None = None
    """An aware datetime when the gateway's text parses (a time without an offset is read in
    the gateway's zone, see DevsmsClient), else the text as given."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[SmsRecord]
    total: int | None = None
    listed: bool = True
    """The answer held a list of entries, however short. False when none was found in it:
    an answer in a shape we do not know says nothing about the history, not that it ended."""


def is_final_status(status: str | None) -> bool:
    """DELIVERED, REJECTED, UNDELIVERABLE and EXPIRED never change again; unknown ones might."""
    return status is not None and status.strip().upper() in FINAL_STATUSES


# --- tolerant parsing ------------------------------------------------------------------------


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
    return None


def _as_str(value: object) -> str | None:
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int) and not isinstance(value, bool):
        # Some gateways send ids and phones as JSON numbers.
        return str(value)
    return None


def _as_datetime(value: object, zone: tzinfo) -> datetime | str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    text = _as_str(value)
    if text is None:
        return None
    try:
        # Python 3.11 reads both ISO 8601 and the MySQL style "2024-01-31 12:00:00".
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    # Without an offset it is the gateway's wall clock: made aware here, at the edge, so no
    # caller compares it with our UTC times as if it were UTC (or the machine's local time).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _first(obj: Mapping[str, Any], *keys: str) -> object:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def parse_sms_record(obj: object, zone: tzinfo = _DEFAULT_ZONE) -> SmsRecord | None:
    """One SMS object from history or status; None when ``obj`` is not a JSON object.
    Times without an offset are read in ``zone``, the gateway's."""
    if not isinstance(obj, dict):
        return None
    return SmsRecord(
        sms_id=_as_int(_first(obj, "sms_id", "id")),
        request_id=_as_str(obj.get("request_id")),
        phone=_as_str(obj.get("phone")),
        message=_as_str(obj.get("message")),
        sender=_as_str(_first(obj, "from", "sender")),
        status=_as_str(obj.get("status")),
        parts_count=_as_int(_first(obj, "parts_count", "parts")),
        cost=parse_money(_first(obj, "total_cost", "cost", "price")),
        created_at=_as_datetime(_first(obj, "created_at", "date", "sent_at"), zone),
    )


def _total_of(node: Mapping[str, Any]) -> int | None:
    for key in _TOTAL_KEYS:
        total = _as_int(node.get(key))
        if total is not None and total >= 0:
            return total
    for key in _PAGINATION_KEYS:
        nested = node.get(key)
        if isinstance(nested, dict):
            total = _total_of(nested)
            if total is not None:
                return total
    return None


def _find_list(node: object, depth: int) -> tuple[list[Any], int | None] | None:
    if isinstance(node, list):
        return node, None
    if not isinstance(node, dict) or depth > _HISTORY_MAX_DEPTH:
        return None
    for key in _HISTORY_LIST_KEYS:
        found = _find_list(node.get(key), depth + 1)
        if found is not None:
            items, total = found
            return items, total if total is not None else _total_of(node)
    return None


def parse_history(payload: object, zone: tzinfo = _DEFAULT_ZONE) -> HistoryPage:
    """The history answer, whatever its shape; never raises on any JSON value.

    The docs do not show it, so this accepts the whole answer or its ``data``, where the list is
    either ``data`` itself or sits under sms/history/items/messages/data/list/rows, with a
    ``total`` (or ``count``, or ``pagination.total``) beside it. Entries that are not objects
    are skipped. Times without an offset are read in ``zone``, the gateway's. No list found:
    an empty page with ``listed`` False.
    """
    found = _find_list(payload, 0)
    if found is None:
        return HistoryPage(items=[], total=None, listed=False)
    entries, total = found
    items = [record for entry in entries if (record := parse_sms_record(entry, zone)) is not None]
    return HistoryPage(items=items, total=total)


def _parse_statistics(obj: object) -> Statistics:
    if not isinstance(obj, dict):
        return Statistics()
    return Statistics(
        total_sms=_as_int(obj.get("total_sms")),
        total_spent=parse_money(obj.get("total_spent")),
        today_sms=_as_int(obj.get("today_sms")),
        today_spent=parse_money(obj.get("today_spent")),
        month_sms=_as_int(obj.get("month_sms")),
        month_spent=parse_money(obj.get("month_spent")),
    )


def _parse_balance(data: object) -> Balance:
    if not isinstance(data, dict):
        return Balance(balance=None, sms_price=None)
    return Balance(
        balance=parse_money(data.get("balance")),
        sms_price=parse_money(data.get("sms_price")),
        statistics=_parse_statistics(data.get("statistics")),
    )


def _parse_send_result(data: object) -> SendResult:
    # A success without data still means "sent": report what is known, not an error.
    obj: Mapping[str, Any] = data if isinstance(data, dict) else {}
    return SendResult(
        sms_id=_as_int(_first(obj, "sms_id", "id")),
        request_id=_as_str(obj.get("request_id")),
        status=_as_str(obj.get("status")),
        parts_count=_as_int(obj.get("parts_count")),
        total_cost=parse_money(_first(obj, "total_cost", "cost")),
        balance=parse_money(obj.get("balance")),
        country=_short_text(obj.get("country")),
        country_code=_short_text(obj.get("country_code")),
    )


def _short_text(value: object) -> str | None:
    """A short label from an answer (a country's name or code): one line, bounded."""
    text = _as_str(value)
    if text is None:
        return None
    text = " ".join(_CONTROL_CHARS.sub(" ", text).split())
    return text[:_LABEL_MAX] or None


def _status_record(data: object, zone: tzinfo) -> SmsRecord | None:
    if isinstance(data, list):
        data = next((entry for entry in data if isinstance(entry, dict)), None)
    if isinstance(data, dict) and "status" not in data:
        # Tolerate {"data": {"sms": {...}}} as well as {"data": {...}}.
        for key in ("sms", "message", "item"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    return parse_sms_record(data, zone)


# --- transport -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    retry_after: float | None


class _NoAnswer(Exception):
    """Internal: the exchange failed before a complete answer arrived."""

    def __init__(self, reason: str, *, may_have_arrived: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.may_have_arrived = may_have_arrived


class _Busy(_NoAnswer):
    """Internal: no request slot came free in time; nothing was sent."""

    def __init__(self) -> None:
        super().__init__("busy", may_have_arrived=False)


class _Progress:
    """How far one request got. aiohttp reports (through a trace hook) the moment it has a
    connection for the request; nothing of the request is written before that moment."""

    __slots__ = ("connected", "deadline", "read_budget")

    def __init__(self, deadline: asyncio.Timeout, read_budget: float) -> None:
        self.connected = False
        self.deadline = deadline
        self.read_budget = read_budget

    def mark_connected(self) -> None:
        if not self.connected:
            self.connected = True
            # The request's own timeout starts now: time spent connecting is not its time.
            self.deadline.reschedule(asyncio.get_running_loop().time() + self.read_budget)


async def _on_connection(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    progress = context.trace_request_ctx
    if isinstance(progress, _Progress):
        progress.mark_connected()


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_create_end.append(_on_connection)
    config.on_connection_reuseconn.append(_on_connection)
    return config


_BACKGROUND: ContextVar[bool] = ContextVar("devsms_background", default=False)


def mark_background() -> None:
    """Marks the calling task's requests (and those of tasks it starts) as background work:
    they leave one of their token's slots to the user's own taps (see _Slots)."""
    _BACKGROUND.set(True)


class _Slots:
    """Request slots: ``total`` at once, ``per_key`` for one key (a devsms token).

    A key's first request may take any free slot; its further ones only while more than
    ``total // 4`` are free. Background requests (mark_background: bulk jobs, the watchers,
    the scheduler) hold at most ``per_key - 1`` of a key's slots, so a user's /send or /otp
    never waits for a slot behind their own bulk job. Waiters are woken in arrival order and
    re-check.
    """

    def __init__(self, total: int, per_key: int) -> None:
        self._total = total
        self._per_key = per_key
        self._reserve = total // 4
        self._used = 0
        self._held: dict[str, int] = {}
        self._held_background: dict[str, int] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def _can_take(self, key: str, background: bool) -> bool:
        held = self._held.get(key, 0)
        if held >= self._per_key:
            return False
        if background and self._held_background.get(key, 0) >= max(1, self._per_key - 1):
            return False
        free = self._total - self._used
        return free > (0 if held == 0 else self._reserve)

    async def acquire(self, key: str, wait: float, background: bool = False) -> None:
        """Takes a slot for ``key``; TimeoutError after ``wait`` seconds without one."""
        if not self._can_take(key, background):  # no timer where none is needed
            async with asyncio.timeout(wait):
                while not self._can_take(key, background):
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    finally:
                        self._waiters.remove(waiter)
        self._used += 1
        self._held[key] = self._held.get(key, 0) + 1
        if background:
            self._held_background[key] = self._held_background.get(key, 0) + 1

    def release(self, key: str, background: bool = False) -> None:
        # Synchronous, so a cancelled request can never leak its slot.
        self._used -= 1
        _drop(self._held, key)
        if background:
            _drop(self._held_background, key)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


def _drop(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class DevsmsClient:
    """Typed calls to the devsms.uz API over one aiohttp session.

    GETs are retried ``get_retries`` times (so up to ``get_retries + 1`` requests) after
    connection errors, timeouts, 5xx and 429, waiting ``backoff``, ``2 × backoff``, ... (or the
    gateway's Retry-After, if longer); never after other 4xx. ``send_sms`` is never retried.

    ``timezone`` is the zone of the gateway's clock: its timestamps come without an offset and
    are returned as aware datetimes in that zone.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        get_retries: int = 3,
        backoff: float = 0.5,
        connections: int = 20,
        per_token: int = 4,
        connect_timeout: float | None = None,
        slot_wait: float | None = None,
        timezone: tzinfo = _DEFAULT_ZONE,
    ) -> None:
        """``timeout`` runs from the moment a connection is in hand to the end of the answer;
        ``connect_timeout`` (default: half of it) bounds DNS and connecting, ``slot_wait``
        (default: ``timeout``) the wait for a free slot. See the module docstring."""
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("devsms base URL must be an absolute http(s) URL")
        if timeout <= 0 or get_retries < 0 or backoff < 0:
            raise ValueError("timeout must be positive, get_retries and backoff not negative")
        if not 1 <= per_token <= connections:
            raise ValueError("need 1 <= per_token <= connections")
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._connect_timeout = connect_timeout if connect_timeout is not None else timeout / 2
        self._slot_wait = slot_wait if slot_wait is not None else timeout
        self._connections = connections
        self._slots = _Slots(connections, per_token)
        self._get_retries = get_retries
        self._backoff = backoff
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.timezone = timezone

    async def __aenter__(self) -> DevsmsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._session is not None and not self._session.closed:
            await self._session.close()

    # --- public calls ----------------------------------------------------------------------

    async def get_balance(self, token: str) -> Balance:
        """Balance, SMS price and statistics; also the cheapest check that a token works."""
        answer = await self._get(token, BALANCE_PATH, {})
        return _parse_balance(answer.get("data"))

    async def send_sms(
        self,
        token: str,
        phone: str,
        message: str,
        sender: str | None = None,
        *,
        callback_url: str | None = None,
    ) -> SendResult:
        """Send one SMS. Raises DevsmsSendUnknown when it may or may not have gone out.
        `callback_url`: where the gateway reports its status changes (services/callbacks.py)."""
        body: dict[str, str | int] = {"phone": phone, "message": message}
        if sender is not None:
            body["from"] = sender
        if callback_url is not None:
            body["callback_url"] = callback_url
        return await self._send(token, body)

    async def send_otp(
        self,
        token: str,
        phone: str,
        *,
        template_type: int,
        service_name: str,
        otp_code: str,
        callback_url: str | None = None,
    ) -> SendResult:
        """Send one verification code through the gateway's approved template
        (``type: universal_otp``). Same rules as :meth:`send_sms`: never retried,
        DevsmsSendUnknown when it may have gone out. The gateway warns that a company name
        its moderation refuses is not sent but charged: a refusal here may have cost money.

        ``otp_code`` never reaches a log line from here (only the path and the outcome do).
        """
        body: dict[str, str | int] = {
            "phone": phone,
            "type": OTP_TYPE,
            "template_type": template_type,
            "service_name": service_name,
            "otp_code": otp_code,
        }
        if callback_url is not None:
            body["callback_url"] = callback_url
        return await self._send(token, body)

    async def _send(self, token: str, body: Mapping[str, str | int]) -> SendResult:
        """The one POST of a send, and what its outcome means; never retried."""
        headers = self._headers(token)
        try:
            reply = await self._exchange("POST", SEND_PATH, headers, json_body=body)
        except _NoAnswer as exc:
            if exc.may_have_arrived:
                raise DevsmsSendUnknown(
                    f"devsms: no answer to {SEND_PATH} ({exc.reason}); the SMS may have been sent"
                ) from None
            raise DevsmsUnavailable(f"devsms: {SEND_PATH} not reached ({exc.reason})") from None
        if reply.status >= 500 or reply.status in _TRANSIENT_4XX or reply.status < 200:
            raise DevsmsSendUnknown(
                f"devsms: HTTP {reply.status} on {SEND_PATH}; the SMS may have been sent",
                gateway_text=_gateway_text(_decode(reply.body), token),
                http_status=reply.status,
            )
        try:
            answer = _check(reply, SEND_PATH, token)
        except DevsmsGatewayError as exc:
            # A 2xx/3xx we cannot read: the gateway did something, we do not know what.
            raise DevsmsSendUnknown(
                f"devsms: unreadable answer to {SEND_PATH}; the SMS may have been sent",
                gateway_text=exc.gateway_text,
                http_status=reply.status,
            ) from None
        return _parse_send_result(answer.get("data"))

    async def get_history(
        self, token: str, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> HistoryPage:
        params: dict[str, str | int] = {
            "limit": min(max(limit, 1), HISTORY_MAX_LIMIT),
            "offset": max(offset, 0),
        }
        if status is not None:
            params["status"] = status
        answer = await self._get(token, HISTORY_PATH, params)
        return parse_history(answer.get("data"), self.timezone)

    async def get_status(
        self, token: str, *, sms_id: int | None = None, request_id: str | None = None
    ) -> SmsRecord:
        """One SMS by devsms id or Eskiz request id (exactly one). 404 -> DevsmsNotFound."""
        if (sms_id is None) == (request_id is None):
            raise ValueError("pass exactly one of sms_id and request_id")
        params: dict[str, str | int] = (
            {"sms_id": sms_id} if sms_id is not None else {"request_id": str(request_id)}
        )
        answer = await self._get(token, STATUS_PATH, params)
        record = _status_record(answer.get("data"), self.timezone)
        if record is None:
            raise DevsmsGatewayError(f"devsms: no SMS object in the answer to {STATUS_PATH}")
        return record

    # --- plumbing --------------------------------------------------------------------------

    def _headers(self, token: str) -> dict[str, str]:
        token = token.strip()
        # aiohttp would raise ValueError on a header with a newline, and a non-latin-1 token
        # cannot be a devsms token anyway: refuse before anything leaves the machine.
        if not token or _CONTROL_CHARS.search(token) or not token.isascii():
            raise DevsmsUnauthorized("devsms: the token is empty or malformed")
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _session_for_call(self) -> aiohttp.ClientSession:
        if self._closed:
            raise _NoAnswer("client closed", may_have_arrived=False)
        if self._session is None:
            # Created on first use: aiohttp wants a running event loop. The pool is as large
            # as the slots, so a request holding a slot never waits inside aiohttp.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                trace_configs=[_trace_config()],
                # No aiohttp timers: _exchange runs its own, phase by phase.
                timeout=aiohttp.ClientTimeout(),
            )
        return self._session

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Mapping[str, str | int] | None = None,
    ) -> _Reply:
        session = self._session_for_call()
        key = headers["Authorization"]
        background = _BACKGROUND.get()
        try:
            await self._slots.acquire(key, self._slot_wait, background)
        except TimeoutError:
            logger.warning(
                "devsms %s %s: no free request slot in %.1f s", method, path, self._slot_wait
            )
            raise _Busy from None
        try:
            return await self._request(session, method, path, headers, params, json_body)
        finally:
            self._slots.release(key, background)

    async def _request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str | int] | None,
        json_body: Mapping[str, str | int] | None,
    ) -> _Reply:
        started = time.monotonic()
        progress: _Progress | None = None
        try:
            # Until the connection is in hand the deadline is the connect budget; then
            # _Progress moves it to `timeout` from that moment.
            async with asyncio.timeout(self._connect_timeout) as deadline:
                progress = _Progress(deadline, self._timeout)
                async with session.request(
                    method,
                    self._base_url + path,
                    headers=headers,
                    params=params,
                    json=json_body,
                    # A redirected POST turns into a GET without the body: never follow blindly.
                    allow_redirects=method == "GET",
                    trace_request_ctx=progress,
                ) as response:
                    body = await response.read()
                    reply = _Reply(response.status, body, _retry_after(response.headers))
        except (TimeoutError, aiohttp.ClientError, OSError, RuntimeError) as exc:
            # aiohttp raises RuntimeError both before anything is sent ("Session is closed")
            # and after ("Connection closed." while reading the answer): the class says
            # nothing, the phase does.
            self._log_failure(method, path, started, exc)
            metrics.gateway_call(path, None, time.monotonic() - started)
            arrived = progress is not None and progress.connected
            raise _NoAnswer(_reason(exc), may_have_arrived=arrived) from None
        elapsed = time.monotonic() - started
        metrics.gateway_call(path, reply.status, elapsed)
        logger.debug("devsms %s %s -> %s in %.0f ms", method, path, reply.status, elapsed * 1000)
        return reply

    @staticmethod
    def _log_failure(method: str, path: str, started: float, exc: BaseException) -> None:
        logger.debug(
            "devsms %s %s -> %s after %.0f ms",
            method,
            path,
            type(exc).__name__,
            (time.monotonic() - started) * 1000,
        )

    async def _get(self, token: str, path: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        headers = self._headers(token)
        attempts = self._get_retries + 1
        for attempt in range(1, attempts + 1):
            error: DevsmsError
            retry_after: float | None = None
            try:
                reply = await self._exchange("GET", path, headers, params=params)
            except _Busy:
                # It already waited a full slot_wait: another round would only wait again.
                raise DevsmsUnavailable(f"devsms: {path} not reached (busy)") from None
            except _NoAnswer as exc:
                error = DevsmsUnavailable(f"devsms: no answer from {path} ({exc.reason})")
            else:
                if reply.status < 500 and reply.status not in _TRANSIENT_4XX:
                    return _check(reply, path, token)
                error = _http_error(reply, path, token)
                retry_after = reply.retry_after
            if attempt == attempts:
                raise error
            delay = min(max(self._backoff * 2 ** (attempt - 1), retry_after or 0), MAX_RETRY_DELAY)
            logger.info(
                "devsms GET %s failed (%s), retry %d/%d in %.2f s",
                path,
                type(error).__name__,
                attempt,
                attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises


def _reason(exc: BaseException) -> str:
    # Only the class name: aiohttp's messages carry URLs, and a misconfigured base URL could
    # carry credentials.
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


def _decode(body: bytes) -> object:
    """The JSON in ``body``, or None when there is none."""
    try:
        # bytes in: json detects UTF-8 (with or without the BOM PHP likes to add), -16 and -32.
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _gateway_text(answer: object, token: str) -> str | None:
    if not isinstance(answer, dict):
        return None
    raw = answer.get("error")
    if not isinstance(raw, str) or not raw.strip():
        raw = answer.get("message")
    if not isinstance(raw, str):
        return None
    text = " ".join(raw.split())
    if token:
        # Some gateways echo what they were given; the token must not reach logs or users.
        text = text.replace(token, "***")
    if len(text) > GATEWAY_TEXT_LIMIT:
        text = text[: GATEWAY_TEXT_LIMIT - 1].rstrip() + "…"
    return text or None


def _http_error(reply: _Reply, path: str, token: str) -> DevsmsError:
    """The exception for a non-2xx answer."""
    text = _gateway_text(_decode(reply.body), token)
    status = reply.status
    kind: type[DevsmsError]
    if status == 401:
        kind, what = DevsmsUnauthorized, "rejected the token"
    elif status == 403:
        kind, what = DevsmsForbidden, "forbade the request"
    elif status == 404:
        kind, what = DevsmsNotFound, "found nothing"
    elif status == 429:
        kind, what = DevsmsRateLimited, "is rate limiting"
    elif 400 <= status < 500:
        kind, what = DevsmsBadRequest, "refused the request"
    else:
        kind, what = DevsmsGatewayError, "failed"
    message = f"devsms {what} (HTTP {status} on {path})"
    if text:
        message += f": {text}"
    return kind(message, gateway_text=text, http_status=status)


def _check(reply: _Reply, path: str, token: str) -> dict[str, Any]:
    """The answer object of a reply, or the exception it stands for."""
    if not 200 <= reply.status < 300:
        raise _http_error(reply, path, token)
    answer = _decode(reply.body)
    if not isinstance(answer, dict):
        raise DevsmsGatewayError(
            f"devsms answered {path} with something that is not its JSON (HTTP {reply.status})",
            http_status=reply.status,
        )
    success = answer.get("success", True)
    if success is False or (isinstance(success, str) and success.lower() == "false"):
        # HTTP 200 with success:false: the gateway read the request and said no, so nothing
        # happened (and a send was not charged); that is a refusal, not a gateway fault.
        text = _gateway_text(answer, token)
        message = f"devsms refused the request (HTTP {reply.status} on {path})"
        if text:
            message += f": {text}"
        raise DevsmsBadRequest(message, gateway_text=text, http_status=reply.status)
    return answer
