"""Phone number normalisation for the gateway, which wants digits only, country code first.

Pure logic, no I/O, no user-facing text: handlers translate ``PhoneError`` reasons.
"""

from __future__ import annotations

import enum
import itertools
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import phonenumbers
    from phonenumbers import NumberParseException

# phonenumbers (about 1 MB with its metadata) is imported by the functions that parse, on the
# first number the bot meets: an idle bot has none (tests/unit/test_lazy_imports.py).

logger = logging.getLogger(__name__)

UZ_COUNTRY_CODE: Final = 998
_UZ_CC_DIGITS: Final = str(UZ_COUNTRY_CODE)
UZ_DIGITS: Final = _UZ_CC_DIGITS
"""How the gateway's digits of every Uzbek number begin."""
# National significant number length in Uzbekistan: operator code (2) + subscriber (7).
_UZ_NSN_LENGTH: Final = 9
# E.164 caps a number at 15 digits including the country code.
_E164_MAX_DIGITS: Final = 15
# The old Soviet-era trunk prefix: "8 90 123 45 67" is still typed from habit. phonenumbers
# does not strip it for UZ, so it is handled here.
_OLD_TRUNK_PREFIX: Final = "8"

# Separators people put between digit groups; anything else (letters, "ext", "#") is not ours.
_SEPARATORS: Final[frozenset[str]] = frozenset(" \t\n\r\u00a0-‐‑‒–—()./")

# Longer than any spelling of a number ("+998 (90) 123-45-67" is 19): refused before reading,
# so a 4096-character message costs nothing to turn down.
_RAW_MAX: Final = 64

# How many whitespace-separated tokens the quick form may spend on the phone:
# "8 ( 90 ) 123 45 67" is the widest realistic spelling.
_MAX_PHONE_TOKENS: Final = 8
_TOKEN: Final = re.compile(r"\S+")


class PhoneError(enum.Enum):
    EMPTY = "empty"
    NOT_A_NUMBER = "not_a_number"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID = "invalid"


class InvalidPhone(ValueError):
    def __init__(self, reason: PhoneError) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class PhoneNumber:
    digits: str
    """Country code first, digits only: what the gateway's ``phone`` field wants."""
    international: str
    """For people: "+998 90 123 45 67"."""
    is_uzbek: bool


def _split_plus_and_digits(raw: str) -> tuple[bool, str]:
    """Return (written with a leading "+", its ASCII digits); raise on anything else."""
    text = raw.strip()
    if not text:
        raise InvalidPhone(PhoneError.EMPTY)
    if len(text) > _RAW_MAX:
        numeric = all(ch.isdecimal() or ch in _SEPARATORS for ch in text[1:_RAW_MAX])
        raise InvalidPhone(PhoneError.TOO_LONG if numeric else PhoneError.NOT_A_NUMBER)
    has_plus = text.startswith("+")
    if has_plus:
        text = text[1:]
    digits: list[str] = []
    for ch in text:
        if ch.isdecimal():
            # Arabic-Indic, fullwidth and other decimal digits mean the same number.
            digits.append(str(unicodedata.decimal(ch)))
        elif ch not in _SEPARATORS:
            raise InvalidPhone(PhoneError.NOT_A_NUMBER)
    if not digits:
        raise InvalidPhone(PhoneError.NOT_A_NUMBER)
    return has_plus, "".join(digits)


def _build(number: phonenumbers.PhoneNumber) -> PhoneNumber:
    import phonenumbers
    from phonenumbers import PhoneNumberFormat

    return PhoneNumber(
        digits=phonenumbers.format_number(number, PhoneNumberFormat.E164).removeprefix("+"),
        international=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        is_uzbek=number.country_code == UZ_COUNTRY_CODE,
    )


def _parse_international(digits: str) -> phonenumbers.PhoneNumber:
    """Parse "+<digits>", raising InvalidPhone with the most telling reason."""
    import phonenumbers
    from phonenumbers import NumberParseException, ValidationResult

    if len(digits) > _E164_MAX_DIGITS:
        raise InvalidPhone(PhoneError.TOO_LONG)
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException as exc:
        raise InvalidPhone(_reason_for_parse_error(exc)) from None
    if phonenumbers.is_valid_number(number):
        return number
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.TOO_SHORT:
        raise InvalidPhone(PhoneError.TOO_SHORT)
    if possible == ValidationResult.TOO_LONG:
        raise InvalidPhone(PhoneError.TOO_LONG)
    raise InvalidPhone(PhoneError.INVALID)


def _reason_for_parse_error(exc: NumberParseException) -> PhoneError:
    from phonenumbers import NumberParseException

    if exc.error_type in (
        NumberParseException.TOO_SHORT_NSN,
        NumberParseException.TOO_SHORT_AFTER_IDD,
    ):
        return PhoneError.TOO_SHORT
    if exc.error_type == NumberParseException.TOO_LONG:
        return PhoneError.TOO_LONG
    if exc.error_type == NumberParseException.NOT_A_NUMBER:
        return PhoneError.NOT_A_NUMBER
    return PhoneError.INVALID


def _valid_uzbek_local(nsn: str) -> phonenumbers.PhoneNumber | None:
    import phonenumbers
    from phonenumbers import NumberParseException

    try:
        number = phonenumbers.parse(nsn, "UZ")
    except NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def _normalize_bare(digits: str, default_region: str) -> phonenumbers.PhoneNumber:
    """Digits written without "+" or "00": local, old-trunk or international without "+"."""
    import phonenumbers
    from phonenumbers import NumberParseException

    if default_region != "UZ":
        # Elsewhere we have no local rules of our own; trust phonenumbers for the region and
        # still accept Telegram's "+"-less international form.
        try:
            number = phonenumbers.parse(digits, default_region)
        except NumberParseException:
            number = None
        if number is not None and phonenumbers.is_valid_number(number):
            return number
        return _parse_international(digits)

    if len(digits) < _UZ_NSN_LENGTH:
        raise InvalidPhone(PhoneError.TOO_SHORT)
    if len(digits) == _UZ_NSN_LENGTH:
        # Nine digits are always a local Uzbek number, never a short foreign one.
        local = _valid_uzbek_local(digits)
        if local is None:
            raise InvalidPhone(PhoneError.INVALID)
        return local
    if len(digits) == _UZ_NSN_LENGTH + 1 and digits.startswith(_OLD_TRUNK_PREFIX):
        local = _valid_uzbek_local(digits[1:])
        if local is not None:
            return local
    if digits.startswith(_UZ_CC_DIGITS) or len(digits) > _E164_MAX_DIGITS:
        return _parse_international(digits)
    # Ten or more bare digits: an international number without "+", as Telegram sends them.
    try:
        return _parse_international(digits)
    except InvalidPhone:
        # A local number with a digit too many or a foreign one with a digit too few:
        # "too short" or "too long" would be a guess, so say neither.
        raise InvalidPhone(PhoneError.INVALID) from None


def normalize_phone(raw: str, default_region: str = "UZ") -> PhoneNumber:
    """Accept the ways people and Telegram write a number; raise InvalidPhone otherwise.

    "+998 90 123-45-67", "00998901234567", "998901234567", "79161234567" (Telegram contacts
    come without "+"), "90 123 45 67", "(90) 1234567", "901234567", "8 90 123 45 67".
    """
    has_plus, digits = _split_plus_and_digits(raw)
    if has_plus:
        number = _parse_international(digits)
    elif digits.startswith("00"):
        number = _parse_international(digits[2:])
    else:
        number = _normalize_bare(digits, default_region)
    return _build(number)


def extract_phone_and_text(args: str) -> tuple[PhoneNumber, str] | None:
    """Split the quick form "/send +998 90 123 45 67 Hello" into the phone and the text.

    The phone is the longest run of leading tokens that is a valid number, but an Uzbek
    reading wins over a foreign one: in "905123456 100 so'm" the shorter "905123456" is
    Uzbek while "905123456100" would be a valid Turkish number, and the text is about money.
    """
    # Only the leading tokens can be the phone: the rest of a long text is not even split.
    tokens = itertools.islice(_TOKEN.finditer(args), _MAX_PHONE_TOKENS)
    uzbek: tuple[PhoneNumber, int] | None = None
    foreign: tuple[PhoneNumber, int] | None = None
    for match in tokens:
        end = match.end()
        try:
            phone = normalize_phone(args[:end])
        except InvalidPhone:
            continue
        if phone.is_uzbek:
            uzbek = (phone, end)
        else:
            foreign = (phone, end)
    found = uzbek or foreign
    if found is None:
        return None
    phone, end = found
    text = args[end:].strip()
    if not text:
        return None
    return phone, text


def foreign_region(digits: str) -> str | None:
    """The ISO region ("RU", "KZ") of a number outside Uzbekistan, given as the gateway's
    digits; None for an Uzbek number (the cheap common case: no parsing) or one that names
    no single region. Sends abroad are priced by the gateway (services/pricing.py)."""
    import phonenumbers
    from phonenumbers import NumberParseException

    if digits.startswith(_UZ_CC_DIGITS):
        return None
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    if region is None or region in ("ZZ", "001", "UZ"):
        return None
    return str(region)


def is_foreign(digits: str) -> bool:
    """Whether the gateway's digits are a number outside Uzbekistan."""
    return not digits.startswith(_UZ_CC_DIGITS)


def mask_phone(digits: str) -> str:
    """Hide the middle of a number for logs: "+998 90 ***-**-67"."""
    import phonenumbers
    from phonenumbers import NumberParseException

    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return "***"
    nsn = phonenumbers.national_significant_number(number)
    if number.country_code == UZ_COUNTRY_CODE and len(nsn) == _UZ_NSN_LENGTH:
        return f"+{UZ_COUNTRY_CODE} {nsn[:2]} ***-**-{nsn[-2:]}"
    if len(nsn) < 6:
        return f"+{number.country_code} ***"
    return f"+{number.country_code} {nsn[:2]} {'*' * (len(nsn) - 4)}{nsn[-2:]}"


def operator_of(phone: str | None) -> str | None:
    """The mobile operator of a number as phonenumbers' carrier data knows it ("Beeline",
    "Ucell", "MobiUZ", "Uzbektelecom"...), else its prefix ("+998 90"); None when it is no
    phone number at all."""
    if phone is None or len(phone) > 32:
        return None
    try:
        parsed = normalize_phone(phone)
    except InvalidPhone:
        return None
    import phonenumbers
    from phonenumbers import carrier  # its data loads on first use

    number = phonenumbers.parse("+" + parsed.digits)
    name = carrier.name_for_number(number, "en")
    if name:
        return str(name)
    national = phonenumbers.national_significant_number(number)
    return f"+{number.country_code} {national[:2]}"
