"""A fake devsms.uz gateway on aiohttp.web, for tests on 127.0.0.1.

It follows /work/shared/devsms-api.md: Bearer tokens per account, Uzbek error texts, charging
parts × price per send, history newest first with limit/offset/status, status by ``sms_id`` or
``request_id``, balance with statistics. Tests steer it with ``fail_next`` (status, body, drop,
hang), ``fail_next_in_mode``, ``hold``/``release``, ``latency``, ``failure_rate``, ``set_status``
and ``history_shape``, and read back ``sent``, ``held`` and ``requests`` (each with the fault
it met and whether it was answered).

A slow or hanging answer is produced *after* the request was processed: a send that "hangs" is
recorded and charged, like a gateway that got the SMS but answered too late. That is how tests
prove the bot never sends twice.

Manual run: ``python -m tests.fakes.fake_devsms --port 8081 --token T``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import random
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

API_PREFIX: Final = "/api"
SEND: Final = "/send_sms.php"
HISTORY: Final = "/get_history.php"
BALANCE: Final = "/get_balance.php"
STATUS: Final = "/get_status.php"

DEFAULT_SENDER: Final = "4546"
# The real gateway most likely keeps Tashkent wall-clock time, without an offset.
GATEWAY_TIMEZONE: Final = "Asia/Tashkent"
# The longest wait_sent/wait_requests wait: a test that waits for something that never comes
# fails in seconds instead of at pytest's global timeout.
WAIT_LIMIT: Final = 10.0
HISTORY_DEFAULT_LIMIT: Final = 50
HISTORY_MAX_LIMIT: Final = 200
HISTORY_SHAPES: Final = ("list", "sms", "items", "history", "messages", "data", "paginated")
# A shape the bot's parser does not know (the list under "result"): a gateway that changed its
# answer must not make the bot read "no entries".
UNKNOWN_HISTORY_SHAPE: Final = "result"
FAILURE_MODES: Final = (
    "500",
    "503",
    "429",
    "html",
    "garbage",
    "success_false",
    "drop",
    "hang",
    "cut",
)

# Texts as the Uzbek gateway writes them.
ERR_TOKEN: Final = "Token noto'g'ri"
ERR_JSON: Final = "So'rov formati noto'g'ri: JSON kutilmoqda"
ERR_PHONE: Final = "Telefon raqami noto'g'ri formatda. Namuna: 998901234567"
ERR_MESSAGE: Final = "Xabar matni bo'sh bo'lishi mumkin emas"
ERR_SENDER: Final = "Yuboruvchi nomi noto'g'ri"
ERR_CALLBACK: Final = "callback_url noto'g'ri"
ERR_BALANCE: Final = "Balans yetarli emas"
ERR_PARAMS: Final = "So'rov parametrlari noto'g'ri"
ERR_ID_NEEDED: Final = "sms_id yoki request_id kiritilishi shart"
ERR_NOT_FOUND: Final = "SMS topilmadi"
ERR_SERVER: Final = "Ichki server xatosi"
ERR_TOO_MANY: Final = "So'rovlar soni juda ko'p"
OK_SENT: Final = "SMS muvaffaqiyatli yuborildi"
ERR_TYPE: Final = "SMS turi noto'g'ri"
ERR_OTP_FIELDS: Final = "template_type, service_name va otp_code kiritilishi shart"
ERR_TEMPLATE_TYPE: Final = "Shablon turi noto'g'ri"
ERR_MODERATION: Final = "Xizmat nomi moderatsiyadan o'tmadi"
OTP_TYPE: Final = "universal_otp"
# What the fake's approved templates read like; the real wording is the gateway's.
OTP_TEMPLATES: Final = {
    1: "{service}: amaliyotni tasdiqlash kodi {code}. Kodni hech kimga bermang.",
    2: "{service}: parolingiz {code}. Uni hech kimga bermang.",
}

_UZ_PHONE: Final = re.compile(r"998[0-9]{9}")
_INTL_PHONE: Final = re.compile(r"[1-9][0-9]{7,14}")
# A handful of prefixes for the "country" the later docs revision returns on international sends.
_COUNTRIES: Final = {"7": ("Russia", "RU"), "1": ("USA", "US"), "44": ("United Kingdom", "GB")}

# Rough GSM-7 alphabet: enough to tell Latin texts from the rest for the fake's billing.
_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION: Final = frozenset("\f^{}\\[~]|€")


def count_parts(text: str) -> int:
    """Billed parts, roughly: GSM-7 160/153, otherwise UCS-2 70/67 UTF-16 units."""
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text):
        units = sum(2 if char in _GSM_EXTENSION else 1 for char in text)
        single, per_part = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, per_part = 70, 67
    return 1 if units <= single else math.ceil(units / per_part)


@dataclass
class SentSms:
    sms_id: int
    request_id: str
    token: str
    phone: str
    message: str
    sender: str
    status: str
    parts_count: int
    cost: Decimal
    created_at: datetime
    """Naive, on the gateway's wall clock (FakeDevsms.timezone), as the answers show it."""
    callback_url: str | None = None
    type: str = "eskiz"
    otp: dict[str, Any] | None = None
    """For type universal_otp: template_type, service_name and otp_code as received."""


@dataclass
class Account:
    token: str
    balance: Decimal
    sms_price: Decimal
    currency: str = "UZS"
    sent: list[SentSms] = field(default_factory=list)
    total_sms: int = 0
    total_spent: Decimal = Decimal(0)
    today_sms: int = 0
    today_spent: Decimal = Decimal(0)
    month_sms: int = 0
    month_spent: Decimal = Decimal(0)


@dataclass
class RecordedRequest:
    method: str
    path: str
    """Relative to the API root, e.g. "/send_sms.php"."""
    query: dict[str, str]
    json: Any
    """The parsed JSON body, or None when there was none (or it was not JSON)."""
    token: str | None
    """The Bearer token as sent, or None without an Authorization header."""
    fault: str | None = None
    """The fault this request met instead of a plain answer: the failure_mode it was drawn
    for, else "hang", "drop" or the status (and body) of a ``fail_next`` fault."""
    answered: bool = False
    """The fake is done with it: the answer went out (or the connection was dropped), however
    late; a request the bot gave up on is answered into a closed connection."""
    at: float = field(default_factory=time.monotonic)
    """When it arrived (time.monotonic()): the pace of a job's requests, read from the log."""


@dataclass
class _Fault:
    status: int
    body: str | None
    path: str | None
    hang: float | None
    drop: bool
    process: bool
    cut: bool = False
    mode: str | None = None
    """The failure_mode it was drawn for, if it was."""

    def describe(self) -> str:
        if self.mode is not None:
            return self.mode
        if self.cut:
            return "cut"
        if self.hang is not None:
            return "hang"
        if self.drop:
            return "drop"
        return str(self.status) if self.body is None else f"{self.status}: {self.body[:40]}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _relative(path: str) -> str:
    path = "/" + path.lstrip("/")
    return path.removeprefix(API_PREFIX) if path.startswith(API_PREFIX + "/") else path


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"success": False, "error": text}, status=status)


def _raw(status: int, body: str) -> web.Response:
    try:
        json.loads(body)
    except ValueError:
        content_type = "text/html"
    else:
        content_type = "application/json"
    return web.Response(status=status, text=body, content_type=content_type)


class FakeDevsms:
    def __init__(self, *, seed: int = 0) -> None:
        self.accounts: dict[str, Account] = {}
        self.sent: list[SentSms] = []
        self.requests: list[RecordedRequest] = []
        self.latency: float = 0.0
        self.failure_rate: float = 0.0
        self.failure_mode: str = "500"
        self.failure_hang: float = 30.0
        self.history_shape: str = "sms"
        self.country_prices: dict[str, Decimal] = {}
        """Price per part by dialling prefix ("7", "44"): sends abroad cost this instead of
        the account's sms_price, as the gateway bills international SMS by country."""
        self.refused_service_names: set[str] = set()
        """Company names moderation refuses (case-insensitive): such an OTP is not sent, the
        balance is charged all the same (the gateway's documented warning), and the answer is
        a refusal; the history lists it as REJECTED."""
        # Its clock, never the machine's: a test must not pass or fail by the machine's zone.
        self.timezone: tzinfo = ZoneInfo(GATEWAY_TIMEZONE)
        self.random = random.Random(seed)
        self._faults: list[_Fault] = []
        self.held: list[RecordedRequest] = []
        self.in_flight = 0
        """Requests being answered now; ``max_in_flight`` is the most there were at once."""
        self.max_in_flight = 0
        self._hold_path: str | None = None
        self._holding = False
        self._released = asyncio.Event()
        self._next_id = 1001
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Condition()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeDevsms is not started")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping.clear()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(API_PREFIX + SEND, self._send)
        app.router.add_get(API_PREFIX + HISTORY, self._history)
        app.router.add_get(API_PREFIX + BALANCE, self._balance)
        app.router.add_get(API_PREFIX + STATUS, self._status)
        # Hanging handlers end as soon as stop() is called, so a short shutdown suffices.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._url = f"http://{bound_host}:{bound_port}{API_PREFIX}"
        return self._url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDevsms:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- steering ----------------------------------------------------------------------------

    def add_account(
        self,
        token: str,
        *,
        balance: int | Decimal | str = 10000,
        sms_price: int | Decimal | str = 50,
        currency: str = "UZS",
    ) -> Account:
        """Money in so'm, or in dollars with currency="USD" (pass Decimal("0.005") or "0.005");
        USD accounts answer with strings like "$0.005" as in the English docs."""
        if currency not in ("UZS", "USD"):
            raise ValueError(currency)
        account = Account(token, Decimal(balance), Decimal(sms_price), currency)
        self.accounts[token] = account
        return account

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        body: str | None = None,
        path: str | None = None,
        hang: float | None = None,
        drop: bool = False,
        process: bool = False,
        cut: bool = False,
    ) -> None:
        """The next ``n`` requests (to ``path`` only, if given) fail.

        - default: answered with ``status`` and ``body`` (a JSON error when body is None),
          without being processed, unless ``process`` (then a send is recorded and charged
          first, like a gateway that failed after doing the work);
        - ``hang``: processed normally, answered ``hang`` seconds later;
        - ``drop``: processed when ``process``, then the connection is closed unanswered;
        - ``cut``: processed, then the answer's status line, headers and half its body are
          written and the connection is closed (a proxy or gateway dying mid-answer).
        """
        fault = _Fault(status, body, _relative(path) if path else None, hang, drop, process, cut)
        self._faults.extend([fault] * n)

    def now(self) -> datetime:
        """The gateway's wall-clock time, naive as in its answers."""
        return datetime.now(self.timezone).replace(tzinfo=None, microsecond=0)

    def clear_faults(self) -> None:
        """Drops the faults fail_next queued and not used yet: the gateway works again."""
        self._faults.clear()

    def fail_next_in_mode(self, n: int = 1, *, path: str | None = None) -> None:
        """The next ``n`` requests (to ``path`` only, if given) meet the fault ``failure_mode``
        draws at random, for sure: a test proves that mode hit, say, a send."""
        fault = self._random_fault()
        fault.path, fault.mode = (_relative(path) if path else None), self.failure_mode
        self._faults.extend([fault] * n)

    def hold(self, path: str | None = None) -> None:
        """From now on requests (to ``path`` only, if given) are processed as usual, but their
        answers wait until :meth:`release`: a send provably in flight, for as long as a test
        needs (:meth:`wait_held` tells when one is)."""
        self._hold_path = _relative(path) if path else None
        self._holding = True
        self._released.clear()

    def release(self) -> None:
        """Answers every held request, and holds no more."""
        self._holding = False
        self._released.set()

    async def wait_held(self, count: int = 1) -> list[RecordedRequest]:
        """Waits until at least ``count`` requests are held (same deadline as wait_sent)."""
        async with asyncio.timeout(WAIT_LIMIT), self._changed:
            await self._changed.wait_for(lambda: len(self.held) >= count)
        return list(self.held)

    def sent_elsewhere(
        self,
        token: str,
        phone: str,
        message: str,
        *,
        status: str = "waiting",
        at: datetime | None = None,
    ) -> SentSms:
        """An SMS of the account that did not come through the bot (the owner's backend, the
        web panel): it shows in the history only. Change its ``status`` on the returned object.
        """
        account = self.accounts[token]
        parts = count_parts(message)
        sms = SentSms(
            sms_id=self._next_id,
            request_id=str(uuid.uuid4()),
            token=token,
            phone=phone,
            message=message,
            sender=DEFAULT_SENDER,
            status=status,
            parts_count=parts,
            cost=account.sms_price * parts,
            created_at=at if at is not None else self.now(),
        )
        self._next_id += 1
        account.balance -= sms.cost
        account.sent.append(sms)
        return sms

    def set_status(self, sms_id: int, status: str) -> None:
        self.find(sms_id).status = status

    async def call_back(
        self, sms_id: int, *, url: str | None = None, body: Any = None, method: str = "POST"
    ) -> int:
        """Calls the SMS's callback_url as the gateway would on a status change (the body is
        undocumented: by default JSON with sms_id, request_id and status); `url` replaces
        the recorded one (a forged or replayed call). Returns the bot's HTTP status."""
        sms = self.find(sms_id)
        target = url or sms.callback_url
        if target is None:
            raise AssertionError(f"SMS {sms_id} was sent without a callback_url")
        payload = body
        if payload is None:
            payload = {"sms_id": sms.sms_id, "request_id": sms.request_id, "status": sms.status}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, target, json=payload) as answer,
        ):
            return answer.status

    def find(self, sms_id: int) -> SentSms:
        for sms in self.sent:
            if sms.sms_id == sms_id:
                return sms
        raise KeyError(sms_id)

    async def wait_sent(self, count: int = 1) -> list[SentSms]:
        """Wait until at least ``count`` SMS were accepted.

        Gives up with TimeoutError after WAIT_LIMIT seconds; wrap the call in
        ``asyncio.timeout()`` for a shorter deadline.
        """
        async with asyncio.timeout(WAIT_LIMIT), self._changed:
            await self._changed.wait_for(lambda: len(self.sent) >= count)
        return list(self.sent)

    async def wait_requests(
        self, count: int = 1, *, path: str | None = None
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests (to ``path``, if given) arrived; same deadline
        as :meth:`wait_sent`."""

        def matching() -> list[RecordedRequest]:
            return self.requests if path is None else self.requests_to(path)

        async with asyncio.timeout(WAIT_LIMIT), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return list(matching())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        path = _relative(path)
        return [request for request in self.requests if request.path == path]

    # --- request pipeline ----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = _relative(request.path)
        record = await self._record(request, path)
        self.requests.append(record)
        await self._notify()
        fault = self._take_fault(path)
        record.fault = None if fault is None else fault.describe()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, handler, path, record, fault)
        finally:
            self.in_flight -= 1
            record.answered = True
            await self._notify()

    async def _answer(
        self,
        request: web.Request,
        handler: Handler,
        path: str,
        record: RecordedRequest,
        fault: _Fault | None,
    ) -> web.StreamResponse:
        if fault is not None and fault.cut:
            return await self._cut(request, await handler(request))
        if fault is not None and fault.hang is None and not fault.drop:
            if fault.process:
                await handler(request)
            return self._fault_response(fault)
        if fault is not None and fault.drop:
            if fault.process:
                await handler(request)
            return self._drop(request)
        response = await handler(request)
        if self._holding and self._hold_path in (None, path):
            self.held.append(record)
            await self._notify()
            await self._wait_release()
        delay = self.latency + (fault.hang if fault is not None and fault.hang else 0.0)
        if delay > 0:
            await self._sleep(delay)
        return response

    async def _record(self, request: web.Request, path: str) -> RecordedRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        auth = request.headers.get("Authorization")
        token = auth[7:] if auth is not None and auth[:7].lower() == "bearer " else None
        return RecordedRequest(request.method, path, dict(request.query), body, token)

    def _take_fault(self, path: str) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.path is None or fault.path == path:
                return self._faults.pop(index)
        if self.failure_rate > 0 and self.random.random() < self.failure_rate:
            fault = self._random_fault()
            fault.mode = self.failure_mode
            return fault
        return None

    def _random_fault(self) -> _Fault:
        mode = self.failure_mode
        if mode == "hang":
            return _Fault(200, None, None, self.failure_hang, drop=False, process=False)
        if mode == "drop":
            return _Fault(200, None, None, None, drop=True, process=False)
        if mode == "cut":
            return _Fault(200, None, None, None, drop=False, process=True, cut=True)
        bodies = {
            "html": (200, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
            "garbage": (200, '{"success": tru'),
            "success_false": (200, json.dumps({"success": False, "error": ERR_SERVER})),
        }
        status, body = bodies[mode] if mode in bodies else (int(mode), None)
        return _Fault(status, body, None, None, drop=False, process=False)

    @staticmethod
    def _fault_response(fault: _Fault) -> web.Response:
        if fault.body is not None:
            return _raw(fault.status, fault.body)
        text = ERR_TOO_MANY if fault.status == 429 else ERR_SERVER
        return _error(fault.status, text)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        # Close the socket with nothing written: the client sees the connection die mid-request.
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=200)

    @staticmethod
    async def _cut(request: web.Request, answer: web.StreamResponse) -> web.StreamResponse:
        body = answer.body if isinstance(answer, web.Response) else None
        payload = body if isinstance(body, bytes) else b'{"success": true}'
        cut = web.StreamResponse(status=answer.status)
        cut.content_type = "application/json"
        cut.content_length = len(payload)
        await cut.prepare(request)
        await cut.write(payload[: len(payload) // 2])
        if request.transport is not None:
            request.transport.close()
        return cut

    async def _wait_release(self) -> None:
        stopping = asyncio.ensure_future(self._stopping.wait())
        released = asyncio.ensure_future(self._released.wait())
        try:
            await asyncio.wait((stopping, released), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            released.cancel()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _account(self, request: web.Request) -> Account | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() != "bearer ":
            return None
        return self.accounts.get(auth[7:].strip())

    # --- money in answers ----------------------------------------------------------------------

    @staticmethod
    def _money(account: Account, amount: Decimal) -> int | str:
        if account.currency == "USD":
            text = format(abs(amount).normalize(), "f")
            return f"{'-' if amount < 0 else ''}${text}"
        return int(amount) if amount == amount.to_integral_value() else str(amount)

    def _sms_json(self, account: Account, sms: SentSms, *, id_key: str, cost_key: str) -> Any:
        extra = {} if sms.type == "eskiz" else {"type": sms.type}
        return extra | {
            id_key: sms.sms_id,
            "request_id": sms.request_id,
            "phone": sms.phone,
            "message": sms.message,
            "from": sms.sender,
            "status": sms.status,
            "parts_count": sms.parts_count,
            cost_key: self._money(account, sms.cost),
            "created_at": sms.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        }

    # --- endpoints -----------------------------------------------------------------------------

    async def _send(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if account is None:
            return _error(401, ERR_TOKEN)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, ERR_JSON)
        phone, kind = body.get("phone"), body.get("type", "eskiz")
        sender, callback_url = body.get("from", DEFAULT_SENDER), body.get("callback_url")
        if not isinstance(phone, str) or not (
            _UZ_PHONE.fullmatch(phone)
            or (not phone.startswith("998") and _INTL_PHONE.fullmatch(phone))
        ):
            return _error(400, ERR_PHONE)
        if kind not in ("eskiz", "simple", OTP_TYPE):
            return _error(400, ERR_TYPE)
        otp: dict[str, Any] | None = None
        if kind == OTP_TYPE:
            otp_or_error = self._otp_fields(body)
            if isinstance(otp_or_error, web.Response):
                return otp_or_error
            otp = otp_or_error
            message = OTP_TEMPLATES[otp["template_type"]].format(
                service=otp["service_name"], code=otp["otp_code"]
            )
        else:
            message = body.get("message")
            if not isinstance(message, str) or not message.strip():
                return _error(400, ERR_MESSAGE)
        if not isinstance(sender, str) or not sender.strip():
            return _error(400, ERR_SENDER)
        if callback_url is not None and not (
            isinstance(callback_url, str) and callback_url.startswith(("http://", "https://"))
        ):
            return _error(400, ERR_CALLBACK)
        parts = count_parts(message)
        cost = self._price(account, phone) * parts
        if account.balance < cost:
            return _error(400, ERR_BALANCE)
        refused = otp is not None and otp["service_name"].casefold() in {
            name.casefold() for name in self.refused_service_names
        }
        sms = self._charge(account, phone, message, sender, parts, cost, callback_url)
        sms.type, sms.otp = kind, otp
        await self._notify()
        if refused:
            # Documented: a company name moderation refuses is not sent, but charged.
            sms.status = "REJECTED"
            return _error(400, ERR_MODERATION)
        return web.json_response({"success": True, "message": OK_SENT, "data": self._sent(sms)})

    def _sent(self, sms: SentSms) -> dict[str, Any]:
        """A send answer's data; sends abroad name the country (the later docs revision)."""
        account = self.accounts[sms.token]
        data: dict[str, Any] = {
            "sms_id": sms.sms_id,
            "request_id": sms.request_id,
            "status": sms.status,
            "parts_count": sms.parts_count,
            "total_cost": self._money(account, sms.cost),
            "balance": self._money(account, account.balance),
        }
        if sms.type != "eskiz":
            data["type"] = sms.type
        if not sms.phone.startswith("998"):
            country, code = _COUNTRIES.get(self._prefix(sms.phone) or "", ("Unknown", "XX"))
            data |= {"country": country, "country_code": code}
        return data

    @staticmethod
    def _otp_fields(body: dict[str, Any]) -> dict[str, Any] | web.Response:
        template_type, service_name = body.get("template_type"), body.get("service_name")
        code = body.get("otp_code")
        if not (
            isinstance(service_name, str)
            and service_name.strip()
            and isinstance(code, str | int)
            and str(code).strip()
            and template_type is not None
        ):
            return _error(400, ERR_OTP_FIELDS)
        if not isinstance(template_type, int) or template_type not in OTP_TEMPLATES:
            return _error(400, ERR_TEMPLATE_TYPE)
        return {"template_type": template_type, "service_name": service_name, "otp_code": code}

    @staticmethod
    def _prefix(phone: str) -> str | None:
        return next((p for p in ("44", "7", "1") if phone.startswith(p)), None)

    def _price(self, account: Account, phone: str) -> Decimal:
        if phone.startswith("998"):
            return account.sms_price
        for prefix, price in sorted(self.country_prices.items(), key=lambda kv: -len(kv[0])):
            if phone.startswith(prefix):
                return Decimal(price)
        return account.sms_price

    def _charge(
        self,
        account: Account,
        phone: str,
        message: str,
        sender: str,
        parts: int,
        cost: Decimal,
        callback_url: str | None,
    ) -> SentSms:
        account.balance -= cost
        for counter in ("total", "today", "month"):
            setattr(account, f"{counter}_sms", getattr(account, f"{counter}_sms") + 1)
            setattr(account, f"{counter}_spent", getattr(account, f"{counter}_spent") + cost)
        sms = SentSms(
            sms_id=self._next_id,
            request_id=str(uuid.uuid4()),
            token=account.token,
            phone=phone,
            message=message,
            sender=sender,
            status="waiting",
            parts_count=parts,
            cost=cost,
            created_at=self.now(),
            callback_url=callback_url,
        )
        self._next_id += 1
        account.sent.append(sms)
        self.sent.append(sms)
        return sms

    async def _history(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if account is None:
            return _error(401, ERR_TOKEN)
        try:
            limit = int(request.query.get("limit", HISTORY_DEFAULT_LIMIT))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            return _error(400, ERR_PARAMS)
        if limit < 1 or offset < 0:
            return _error(400, ERR_PARAMS)
        limit = min(limit, HISTORY_MAX_LIMIT)
        wanted = request.query.get("status")
        matching = [
            sms
            for sms in reversed(account.sent)
            if wanted is None or sms.status.lower() == wanted.lower()
        ]
        page = matching[offset : offset + limit]
        shape = self.history_shape
        id_key, cost_key = ("id", "cost") if shape == "list" else ("sms_id", "total_cost")
        items = [self._sms_json(account, sms, id_key=id_key, cost_key=cost_key) for sms in page]
        data: Any
        if shape == "list":
            data = items
        elif shape == "paginated":
            pagination = {"total": len(matching), "limit": limit, "offset": offset}
            data = {"items": items, "pagination": pagination}
        elif shape == "history":
            data = {"history": items, "count": len(matching)}
        elif shape in HISTORY_SHAPES or shape == UNKNOWN_HISTORY_SHAPE:
            data = {shape: items, "total": len(matching)}
        else:
            raise ValueError(f"unknown history_shape {shape!r}")
        return web.json_response({"success": True, "data": data})

    async def _balance(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if account is None:
            return _error(401, ERR_TOKEN)
        statistics = {
            "total_sms": account.total_sms,
            "total_spent": self._money(account, account.total_spent),
            "today_sms": account.today_sms,
            "today_spent": self._money(account, account.today_spent),
            "month_sms": account.month_sms,
            "month_spent": self._money(account, account.month_spent),
        }
        data = {
            "balance": self._money(account, account.balance),
            "sms_price": self._money(account, account.sms_price),
            "statistics": statistics,
        }
        return web.json_response({"success": True, "data": data})

    async def _status(self, request: web.Request) -> web.Response:
        account = self._account(request)
        if account is None:
            return _error(401, ERR_TOKEN)
        sms_id, request_id = request.query.get("sms_id"), request.query.get("request_id")
        if sms_id is None and request_id is None:
            return _error(400, ERR_ID_NEEDED)
        if sms_id is not None and not sms_id.isdigit():
            return _error(400, ERR_PARAMS)
        for sms in account.sent:  # only this account's SMS: another's is "not found"
            if (sms_id is not None and str(sms.sms_id) == sms_id) or (
                sms_id is None and sms.request_id == request_id
            ):
                data = self._sms_json(account, sms, id_key="sms_id", cost_key="total_cost")
                return web.json_response({"success": True, "data": data})
        return _error(404, ERR_NOT_FOUND)


async def _serve(host: str, port: int, tokens: list[str], balance: int, price: int) -> None:
    fake = FakeDevsms()
    for token in tokens:
        fake.add_account(token, balance=balance, sms_price=price)
    url = await fake.start(host, port)
    print(f"fake devsms on {url}; tokens: {', '.join(tokens) or '(none)'}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake devsms.uz gateway for manual testing.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[], help="account token (repeat)")
    parser.add_argument("--balance", type=int, default=10000, help="so'm per account")
    parser.add_argument("--price", type=int, default=50, help="so'm per SMS part")
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port, args.token, args.balance, args.price))


if __name__ == "__main__":
    main()
