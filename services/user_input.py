"""Parsers of short values users type: a sender id, an alert threshold, a Telegram user id.

Each one caps the length first and then reads the text in one pass: no regular expression
that could backtrack, so no message (Telegram allows 4096 characters) can hold up the event
loop that every user shares. Each raises its own error; handlers translate the reason.
Pure logic, no I/O, no user-facing text. Other parsers of user text live beside their rule:
phone numbers in services/phones.py, template texts and names in services/templating.py.
"""

from __future__ import annotations

import enum
import string
import unicodedata
from dataclasses import dataclass
from typing import Final

from storage.alerts import ThresholdUnit
from storage.db import SQLITE_INT_MAX
from storage.users import UserRow

# --- sender id ------------------------------------------------------------------------------

# A numeric short code, or an alphanumeric sender id: at most 11 characters fit in the SMS
# header. ASCII only: str.isdigit()/isalnum() (and regex \d, \w) accept "٤٥٤٦" or "Магазин",
# which the SMS network cannot carry as a sender.
SENDER_DIGITS_MIN: Final = 3
SENDER_DIGITS_MAX: Final = 15
SENDER_NAME_MIN: Final = 2
SENDER_NAME_MAX: Final = 11
_ASCII_ALNUM: Final[frozenset[str]] = frozenset(string.ascii_letters + string.digits)
_SENDER_CHARS: Final[frozenset[str]] = _ASCII_ALNUM | frozenset(" ._-")


class SenderProblem(enum.Enum):
    NOT_LATIN = "not_latin"
    """A character outside ASCII: a Cyrillic letter, an Arabic-Indic digit, an emoji..."""
    SHAPE = "shape"
    """Empty, too long, too short, or a character other than letters, digits and " ._-"."""


class InvalidSender(ValueError):
    def __init__(self, problem: SenderProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def parse_sender(text: str) -> str:
    """The sender id in `text` (surrounding spaces dropped); InvalidSender otherwise."""
    sender = text.strip()
    if not sender or len(sender) > SENDER_DIGITS_MAX:
        raise InvalidSender(SenderProblem.SHAPE)
    if not sender.isascii():
        raise InvalidSender(SenderProblem.NOT_LATIN)
    if sender.isdigit() and len(sender) >= SENDER_DIGITS_MIN:
        return sender
    if (
        SENDER_NAME_MIN <= len(sender) <= SENDER_NAME_MAX
        and sender[0] in _ASCII_ALNUM
        and set(sender) <= _SENDER_CHARS
    ):
        return sender
    raise InvalidSender(SenderProblem.SHAPE)


def is_valid_sender(sender: str) -> bool:
    try:
        return parse_sender(sender) == sender
    except InvalidSender:
        return False


def own_sender(user: UserRow | None) -> str | None:
    """The user's own sender id when it can be used, else None (the default applies).

    An own sender saved before the rules got stricter (e.g. with Arabic-Indic digits) is
    not used: the gateway would refuse every SMS.
    """
    own = user.sender if user is not None else None
    return own if own is not None and is_valid_sender(own) else None


def effective_sender(user: UserRow | None, default: str) -> str:
    """The sender an SMS of this user goes out from: a single send, a bulk job and /settings
    all show and use this one. The preview shows which one applies."""
    return own_sender(user) or default


# --- low-balance threshold ------------------------------------------------------------------

# "1 000 000 000 so'm" is 17 characters; anything much longer is not a threshold.
THRESHOLD_TEXT_MAX: Final = 64
THRESHOLD_MAX: Final = 10**12
# Units after the number, compared with all whitespace removed and case folded:
# "100 sms", "100 ta SMS", "50 смс"; "20 000", "20 000 so'm" (with any apostrophe), "5000 сум".
_SMS_UNITS: Final[frozenset[str]] = frozenset({"sms", "смс", "tasms", "taсмс"})
_SOM_UNITS: Final[frozenset[str]] = frozenset(
    {"", "som", "sum", "uzs", "сум", "сўм"}
    | {f"so{mark}m" for mark in "'`\u02bb\u02bc\u2018\u2019"}
)


class InvalidThreshold(ValueError):
    """Not a whole positive number of so'm or SMS below THRESHOLD_MAX."""


@dataclass(frozen=True, slots=True)
class Threshold:
    unit: ThresholdUnit
    value: int


def parse_threshold(text: str) -> Threshold:
    """ "20000", "20 000 so'm", "100 sms", "100 ta SMS"; InvalidThreshold otherwise."""
    text = text.strip()
    if not text or len(text) > THRESHOLD_TEXT_MAX or not text[0].isdecimal():
        raise InvalidThreshold(text[:THRESHOLD_TEXT_MAX])
    end = 0
    while end < len(text) and (text[end].isdecimal() or text[end].isspace()):
        end += 1
    # Any script's decimal digits mean the same number ("٢٠٠٠٠" is 20000).
    digits = "".join(str(unicodedata.decimal(ch)) for ch in text[:end] if ch.isdecimal())
    unit_text = "".join(text[end:].split()).casefold()
    if unit_text in _SMS_UNITS:
        unit: ThresholdUnit = "sms"
    elif unit_text in _SOM_UNITS:
        unit = "som"
    else:
        raise InvalidThreshold(text)
    value = int(digits)
    if not 0 < value < THRESHOLD_MAX:
        raise InvalidThreshold(text)
    return Threshold(unit, value)


# --- Telegram user id (admin commands) ------------------------------------------------------

# Telegram ids are positive and fit a signed 64-bit integer (SQLite's INTEGER): 19 digits.
USER_ID_DIGITS_MAX: Final = 19


class InvalidUserId(ValueError):
    """Not a positive integer of ASCII digits that fits SQLite's integer."""


def parse_user_id(text: str) -> int:
    text = text.strip()
    # ASCII digits only: "²".isdigit() is True, and int() reads "١٢" as 12.
    if not 0 < len(text) <= USER_ID_DIGITS_MAX or not (text.isascii() and text.isdigit()):
        raise InvalidUserId(text[:USER_ID_DIGITS_MAX])
    user_id = int(text)
    if not 0 < user_id <= SQLITE_INT_MAX:
        raise InvalidUserId(text)
    return user_id


# --- Delivery-rate warning (/insights) -----------------------------------------------------

PERCENT_TEXT_MAX: Final = 8


class InvalidPercent(ValueError):
    """Not a whole number of ASCII digits from 0 to 100 (an optional "%" after it)."""


def parse_percent(text: str) -> int:
    """ "90", "90 %" → 90; "0" is allowed (it turns the warning off)."""
    text = text.strip()
    if len(text) > PERCENT_TEXT_MAX:
        raise InvalidPercent(text[:PERCENT_TEXT_MAX])
    text = text.removesuffix("%").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 100):
        raise InvalidPercent(text)
    return int(text)
