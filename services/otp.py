"""One-off verification codes through the gateway's approved template (``type: universal_otp``).

Pure logic, no I/O, no user-facing text: what a company name and a code may be, a generated
code, and how an OTP send is written into the outbox (services/sending.py) and recognised in
the gateway's history (services/reconcile.py).

The code is a secret for logs: :class:`OtpRequest` never shows it in ``repr``, and nothing
here logs. It is stored in the outbox row's text, as the gateway's history shows it anyway.
Between the dialog's code step and its Send it is held in memory only (:class:`CodeKeeper`),
never in FSM storage, which is a database row an abandoned dialog leaves behind.
"""

from __future__ import annotations

import enum
import re
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

# The gateway names 1 and 2 (devsms-api.md); other values exist and the gateway refuses those
# it does not know, so the dialog offers only these two.
TEMPLATE_CONFIRM: Final = 1
TEMPLATE_PASSWORD: Final = 2
TEMPLATE_TYPES: Final = (TEMPLATE_CONFIRM, TEMPLATE_PASSWORD)
# The company name is shown inside the SMS and moderated letter by letter; a long one costs a
# part more or gets refused (and charged), so it is kept short.
SERVICE_NAME_MAX: Final = 30
SERVICE_NAME_MIN: Final = 2
CODE_MIN: Final = 4
CODE_MAX: Final = 8
GENERATED_LENGTH: Final = 6
# How an OTP send reads in the outbox: "OTP <company>: <code>" (see outbox_text).
_PREFIX: Final = "OTP "
_SEPARATOR: Final = ": "
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_CODE_SEPARATORS: Final = frozenset(" -\u00a0")
# Digit runs in a history entry's text that may be a code: a few more than we send, so a
# gateway that pads or groups differently still matches on the digits themselves.
_DIGIT_RUN: Final = re.compile(r"(?<![0-9])[0-9]{4,10}(?![0-9])")


class NameProblem(enum.Enum):
    EMPTY = "empty"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    CONTROL = "control"
    NO_LETTERS = "no_letters"


class CodeProblem(enum.Enum):
    NOT_DIGITS = "not_digits"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"


class InvalidName(ValueError):
    def __init__(self, problem: NameProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class InvalidCode(ValueError):
    def __init__(self, problem: CodeProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class OtpRequest:
    template_type: int
    service_name: str
    code: str = field(repr=False)


def clean_service_name(raw: str) -> str:
    """The company name as sent: one line, inner spaces collapsed; InvalidName otherwise.
    Looks at no more than a bounded prefix, so a 4096-character message costs nothing."""
    if len(raw) > SERVICE_NAME_MAX * 4:
        raise InvalidName(NameProblem.TOO_LONG)
    if _CONTROL.search(raw.strip()):
        # A newline or an invisible direction mark would reach moderation as it is.
        raise InvalidName(NameProblem.CONTROL)
    text = " ".join(raw.split())
    if not text:
        raise InvalidName(NameProblem.EMPTY)
    if len(text) > SERVICE_NAME_MAX:
        raise InvalidName(NameProblem.TOO_LONG)
    if len(text) < SERVICE_NAME_MIN:
        raise InvalidName(NameProblem.TOO_SHORT)
    if not any(ch.isalnum() for ch in text):
        raise InvalidName(NameProblem.NO_LETTERS)
    return text


def clean_code(raw: str) -> str:
    """A typed code as ASCII digits ("12 34", "١٢٣٤" → "1234"); InvalidCode otherwise."""
    text = raw.strip()
    if len(text) > CODE_MAX * 3:
        digits_only = all(ch.isdecimal() or ch in _CODE_SEPARATORS for ch in text[: CODE_MAX * 3])
        raise InvalidCode(CodeProblem.TOO_LONG if digits_only else CodeProblem.NOT_DIGITS)
    digits: list[str] = []
    for ch in text:
        if ch.isdecimal():
            digits.append(str(unicodedata.decimal(ch)))
        elif ch not in _CODE_SEPARATORS:
            raise InvalidCode(CodeProblem.NOT_DIGITS)
    if not digits:
        raise InvalidCode(CodeProblem.NOT_DIGITS)
    if len(digits) < CODE_MIN:
        raise InvalidCode(CodeProblem.TOO_SHORT)
    if len(digits) > CODE_MAX:
        raise InvalidCode(CodeProblem.TOO_LONG)
    return "".join(digits)


def generate_code(length: int = GENERATED_LENGTH) -> str:
    """A random code from the OS's secure source; leading zeros kept."""
    return f"{secrets.randbelow(10**length):0{length}d}"


def outbox_text(otp: OtpRequest) -> str:
    """What the outbox row of an OTP send says: the gateway writes the SMS from its template,
    so the bot keeps the two parts it chose."""
    return f"{_PREFIX}{otp.service_name}{_SEPARATOR}{otp.code}"


def code_of(outbox_message: str) -> str | None:
    """The code in an OTP send's outbox text, or None when it is not one."""
    if not outbox_message.startswith(_PREFIX):
        return None
    code = outbox_message.rpartition(_SEPARATOR)[2]
    return code if code.isascii() and code.isdigit() else None


def codes_in(text: str) -> set[str]:
    """Every run of digits in a history entry's text that could be a code we sent."""
    return set(_DIGIT_RUN.findall(text[:2000]))


# How long a code waits in memory for its dialog's Send, and how many dialogs at most.
CODE_KEEP_SECONDS: Final = 3600.0
CODES_KEPT_MAX: Final = 10_000


class CodeStore(Protocol):
    """Where a code waits for its dialog's Send: `CodeKeeper` in one process, or
    services.shared_stores.RedisCodeKeeper when replicas share the dialogs (REDIS_URL)."""

    async def put(self, user_id: int, draft: int, code: str) -> None: ...

    async def get(self, user_id: int, draft: int) -> str | None:
        """The code of `user_id`'s dialog `draft`, if still kept."""
        ...

    async def drop(self, user_id: int) -> None: ...


class CodeKeeper:
    """The codes of open /otp dialogs, in this process's memory only: one per user, tied to
    the dialog (`draft`) it was typed or generated in, for `keep` seconds at most and for at
    most `limit` users (the oldest go first). After a restart or past that time the dialog's
    Send finds none and asks for the code again. A `CodeStore` (its methods do no I/O)."""

    def __init__(
        self,
        keep: float = CODE_KEEP_SECONDS,
        limit: int = CODES_KEPT_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keep = keep
        self._limit = limit
        self._clock = clock
        self._codes: OrderedDict[int, tuple[int, str, float]] = OrderedDict()

    async def put(self, user_id: int, draft: int, code: str) -> None:
        now = self._clock()
        self._codes.pop(user_id, None)
        self._codes[user_id] = (draft, code, now + self._keep)
        while self._codes:
            oldest, (_draft, _code, until) = next(iter(self._codes.items()))
            if until > now and len(self._codes) <= self._limit:
                break
            del self._codes[oldest]

    async def get(self, user_id: int, draft: int) -> str | None:
        """The code of `user_id`'s dialog `draft`, if still kept."""
        kept = self._codes.get(user_id)
        if kept is None or kept[0] != draft:
            return None
        if kept[2] <= self._clock():
            del self._codes[user_id]
            return None
        return kept[1]

    async def drop(self, user_id: int) -> None:
        self._codes.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._codes)
