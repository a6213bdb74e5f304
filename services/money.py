"""Money as the devsms gateway reports it: so'm as integers, dollars as strings like "$0.005".

The Uzbek API docs give ``balance``/``sms_price``/``total_cost`` as integers in so'm, the English
ones as strings such as ``"$0.005"`` (see /work/shared/devsms-api.md, "Money fields"), so
everything that reads a money field goes through :func:`parse_money`, which never raises.
Amounts are :class:`~decimal.Decimal`: floats cannot hold 0.005 exactly.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from services.i18n import N_

logger = logging.getLogger(__name__)

UZS: Final = "UZS"
USD: Final = "USD"
CURRENCIES: Final[frozenset[str]] = frozenset({UZS, USD})

# Nothing the gateway sends is anywhere near this; bigger values are garbage, and refusing them
# keeps formatting from producing megabyte-long strings out of "1e999999".
MAX_ABS_AMOUNT: Final = Decimal(10) ** 15

_UZS_SUFFIX: Final = "so'm"
# Dollar prices are fractions of a cent ("$0.005"): show up to 4 decimals, or 4 significant
# digits for amounts smaller than that, but never more than this many decimals.
_USD_MIN_DECIMALS: Final = 2
_USD_DECIMALS: Final = 4
_USD_SIGNIFICANT: Final = 4
_USD_MAX_DECIMALS: Final = 10

# Spaces people and locales use between thousands: space, no-break, thin, narrow no-break.
_GROUP_SPACES: Final = " \u00a0\u2009\u202f"
_MINUS_SIGNS: Final = "-\u2212\u2013"

# Uzbek Latin "so'm" is typed with many apostrophe look-alikes; Cyrillic "сўм"/"сум" too.
_UZS_MARKERS: Final = re.compile(
    r"(?:so['\u02bb\u02bc\u2018\u2019`]?m|sum|uzs|сўм|сум)\.?",
    re.IGNORECASE,
)
_USD_MARKERS: Final = re.compile(r"\$|usd", re.IGNORECASE)
_NUMBER: Final = re.compile(r"[0-9][0-9 .,]*")


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str  # "UZS" or "USD"

    def __post_init__(self) -> None:
        if self.currency not in CURRENCIES:
            raise ValueError(f"unknown currency {self.currency!r}")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise ValueError(f"amount must be a finite Decimal, got {self.amount!r}")

    @classmethod
    def zero(cls, currency: str = UZS) -> Money:
        return cls(Decimal(0), currency)

    def format(self) -> str:
        """'1 250 so'm', '1 250,50 so'm', '$0.005', '$1,234.50'."""
        if self.currency == USD:
            return _format_usd(self.amount)
        return _format_uzs(self.amount)

    def __str__(self) -> str:
        return self.format()

    def __mul__(self, other: object) -> Money:
        # bool is an int, but "price × True" is a bug, not a quantity.
        if isinstance(other, bool) or not isinstance(other, int | Decimal):
            return NotImplemented
        return Money(self.amount * other, self.currency)

    __rmul__ = __mul__

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(self.amount + other.amount, self._same_currency(other))

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(self.amount - other.amount, self._same_currency(other))

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount >= other.amount

    def _same_currency(self, other: Money) -> str:
        # Adding so'm to dollars would need an exchange rate nobody gave us.
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")
        return self.currency


def _group(integer_digits: str, separator: str) -> str:
    head = len(integer_digits) % 3 or 3
    groups = [integer_digits[:head]]
    groups += [integer_digits[i : i + 3] for i in range(head, len(integer_digits), 3)]
    return separator.join(groups)


def _format_uzs(amount: Decimal) -> str:
    # format() rounds without the context's 28-digit precision limit, unlike quantize().
    integer, _, fraction = format(abs(amount), ".2f").partition(".")
    sign = "-" if amount < 0 and (integer.strip("0") or fraction.strip("0")) else ""
    number = _group(integer, " ")
    # So'm have no coins in circulation: whole amounts show no decimals. When there is a
    # fraction, the Uzbek locale writes it after a comma (1 250,50), like the space grouping.
    if fraction.strip("0"):
        number += "," + fraction
    return f"{sign}{number} {_UZS_SUFFIX}"


def _usd_decimals(amount: Decimal) -> int:
    magnitude = abs(amount)
    if magnitude == 0 or magnitude >= Decimal("0.001"):
        return _USD_DECIMALS
    # adjusted() is the exponent of the first significant digit: -5 for 0.00001234.
    return min(-magnitude.adjusted() + _USD_SIGNIFICANT - 1, _USD_MAX_DECIMALS)


def _format_usd(amount: Decimal) -> str:
    text = format(abs(amount), f".{_usd_decimals(amount)}f")
    integer, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(_USD_MIN_DECIMALS, "0")
    sign = "-" if amount < 0 and (integer.strip("0") or fraction.strip("0")) else ""
    return f"{sign}${_group(integer, ',')}.{fraction}"


def parse_money(value: object, default_currency: str = UZS) -> Money | None:
    """Read a money field of a gateway answer (or user input); None when it is not money.

    Accepts ints, finite floats and Decimals (in ``default_currency``) and strings such as
    "50", "-1 000", "1,000.50", "1 000,50", "$0.005", "0.005 USD", "1 250 so'm", "500 сум".
    Separators: a dot is always the decimal point unless it appears several times
    ("1.000.000"); a comma is a thousands separator when it is followed by exactly three digits
    and the number does not start with "0," (so "1,000" is a thousand but "0,005" and "1,5" are
    fractions); when both appear, the last one is the decimal point. Spaces only group
    thousands. Never raises.
    """
    if default_currency not in CURRENCIES:
        raise ValueError(f"unknown currency {default_currency!r}")
    try:
        amount, currency = _parse(value, default_currency)
    except (InvalidOperation, ValueError, OverflowError):
        return None
    if amount is None or not amount.is_finite() or abs(amount) >= MAX_ABS_AMOUNT:
        return None
    # "-0" is zero; keeping the sign would print "-0 so'm".
    if amount == 0:
        amount = Decimal(0)
    return Money(amount, currency)


def _parse(value: object, currency: str) -> tuple[Decimal | None, str]:
    if isinstance(value, bool) or value is None:
        return None, currency
    if isinstance(value, int):
        return Decimal(value), currency
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, currency
        # repr() is the shortest text that reads back as the same float: 0.005, not 0.00500...
        return Decimal(repr(value)), currency
    if isinstance(value, Decimal):
        return value, currency
    if isinstance(value, str):
        return _parse_text(value, currency)
    return None, currency


def _parse_text(text: str, currency: str) -> tuple[Decimal | None, str]:
    text = text.strip()
    markers = 0
    if _USD_MARKERS.search(text):
        currency = USD
        text, markers = _USD_MARKERS.subn(" ", text)
    elif _UZS_MARKERS.search(text):
        currency = UZS
        text, markers = _UZS_MARKERS.subn(" ", text)
    if markers > 1:
        return None, currency
    text = text.strip()
    negative = False
    if text and text[0] in _MINUS_SIGNS:
        negative, text = True, text[1:].lstrip()
    elif text.startswith("+"):
        text = text[1:].lstrip()
    for space in _GROUP_SPACES:
        text = text.replace(space, " ")
    if not _NUMBER.fullmatch(text) or text.endswith((" ", ".", ",")):
        return None, currency
    digits = _normalise_separators(text)
    if digits is None:
        return None, currency
    amount = Decimal(digits)
    return (-amount if negative else amount), currency


def _normalise_separators(text: str) -> str | None:
    """'1 000,50' -> '1000.50'; None when the separators make no sense as a number."""
    last_dot, last_comma = text.rfind("."), text.rfind(",")
    decimal_mark: str | None
    if last_dot >= 0 and last_comma >= 0:
        decimal_mark = "." if last_dot > last_comma else ","
    elif last_dot >= 0:
        decimal_mark = "." if text.count(".") == 1 else None
    elif last_comma >= 0:
        after = text[last_comma + 1 :]
        thousands = text.count(",") > 1 or (len(after) == 3 and not text.startswith("0,"))
        decimal_mark = None if thousands else ","
    else:
        decimal_mark = None

    if decimal_mark is None:
        integer, fraction = text, ""
    else:
        integer, _, fraction = text.rpartition(decimal_mark)
        if not fraction.isdigit():
            return None
    groups = re.split(r"[ .,]", integer)
    if len(groups) > 1:
        # Grouped digits: 1-3 in front, then exactly three per group ("12 34" is not money).
        if not 1 <= len(groups[0]) <= 3 or any(len(group) != 3 for group in groups[1:]):
            return None
        # One kind of separator between groups, and not the decimal mark.
        separators = set(re.findall(r"[ .,]", integer))
        if len(separators) > 1 or decimal_mark in separators:
            return None
    if not all(group.isdigit() for group in groups):
        return None
    return "".join(groups) + ("." + fraction if fraction else "")


SOM_MSGID: Final = N_("{amount} so'm")


def grouped(amount: Decimal) -> str:
    """'12 500' or '1 250.5', grouped with no-break spaces so Telegram never wraps a number."""
    if amount == amount.to_integral_value():
        text = f"{int(amount):,}"
    else:
        text = f"{amount:,.4f}".rstrip("0").rstrip(".")
    return text.replace(",", "\u00a0")


def spoken(value: Money | None, translate: Callable[[str], str], missing: str = "—") -> str:
    """Money for a person, in their language: "1 250 so'm" / "1 250 сум", or "$0.005"."""
    if value is None:
        return missing
    if value.currency == USD:
        return value.format()
    return translate(SOM_MSGID).format(amount=grouped(value.amount))
