from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.phones import (
    InvalidPhone,
    PhoneError,
    PhoneNumber,
    extract_phone_and_text,
    mask_phone,
    normalize_phone,
)

UZ_PHONE = PhoneNumber(
    digits="998901234567",
    international="+998 90 123 45 67",
    is_uzbek=True,
)


@pytest.mark.parametrize(
    "raw",
    [
        "998901234567",  # Telegram contact, no "+"
        "+998901234567",
        "+998 90 123-45-67",
        "+998 (90) 123-45-67",
        "  +998 90 123 45 67  ",
        "00998901234567",
        "00 998 90 123 45 67",
        "90 123 45 67",
        "(90) 1234567",
        "901234567",
        "90-123-45-67",
        "8 90 123 45 67",  # the old trunk prefix, still typed from habit
        "8 (90) 123-45-67",
        "٩٠١٢٣٤٥٦٧",  # Arabic-Indic digits
    ],
)
def test_uzbek_number_formats(raw: str) -> None:
    assert normalize_phone(raw) == UZ_PHONE


@pytest.mark.parametrize(
    ("raw", "digits", "international"),
    [
        ("+998 33 123 45 67", "998331234567", "+998 33 123 45 67"),
        ("77 123 45 67", "998771234567", "+998 77 123 45 67"),
        ("+998 71 123 45 67", "998711234567", "+998 71 123 45 67"),  # Tashkent landline
    ],
)
def test_other_uzbek_operators(raw: str, digits: str, international: str) -> None:
    phone = normalize_phone(raw)
    assert (phone.digits, phone.international, phone.is_uzbek) == (digits, international, True)


@pytest.mark.parametrize("raw", ["79161234567", "+7 916 123-45-67", "007 916 123 45 67"])
def test_russian_number_with_or_without_plus(raw: str) -> None:
    assert normalize_phone(raw) == PhoneNumber(
        digits="79161234567",
        international="+7 916 123-45-67",
        is_uzbek=False,
    )


def test_non_geographic_number_is_accepted() -> None:
    phone = normalize_phone("+800 1234 5678")
    assert (phone.digits, phone.is_uzbek) == ("80012345678", False)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", PhoneError.EMPTY),
        ("   ", PhoneError.EMPTY),
        ("hello", PhoneError.NOT_A_NUMBER),
        ("+998 90 abc 45 67", PhoneError.NOT_A_NUMBER),
        ("90 123 45 67 ext. 5", PhoneError.NOT_A_NUMBER),
        ("+", PhoneError.NOT_A_NUMBER),
        ("++998901234567", PhoneError.NOT_A_NUMBER),
        ("12", PhoneError.TOO_SHORT),
        ("90 123 45", PhoneError.TOO_SHORT),
        ("+998 90 123 45", PhoneError.TOO_SHORT),
        ("99890123456", PhoneError.TOO_SHORT),
        ("9989012345678", PhoneError.TOO_LONG),
        ("+998 90 123 45 67 8", PhoneError.TOO_LONG),
        ("1234567890123456", PhoneError.TOO_LONG),
        ("998001234567", PhoneError.INVALID),  # no operator 00
        ("+998 00 123 45 67", PhoneError.INVALID),
        ("001234567", PhoneError.TOO_SHORT),  # "00" makes it international: +1 234567
        ("123456789", PhoneError.INVALID),  # nine digits are local, and 12 is no operator
        ("9012345678", PhoneError.INVALID),  # neither local nor valid as +90
    ],
)
def test_invalid_numbers_say_why(raw: str, reason: PhoneError) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw)
    assert caught.value.reason is reason
    assert isinstance(caught.value, ValueError)


def test_other_default_region() -> None:
    phone = normalize_phone("916 123-45-67", default_region="RU")
    assert phone.digits == "79161234567"
    # Telegram's "+"-less international form still works there.
    assert normalize_phone("998901234567", default_region="RU") == UZ_PHONE


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="+0123456789 -()8", max_size=25),
        st.from_regex(r"\A\+?[0-9]{1,20}\Z"),
    )
)
def test_normalize_phone_raises_only_invalid_phone(raw: str) -> None:
    try:
        phone = normalize_phone(raw)
    except InvalidPhone as exc:
        assert isinstance(exc.reason, PhoneError)
        return
    assert phone.digits.isascii()
    assert phone.digits.isdigit()
    assert phone.international.startswith("+")
    assert normalize_phone("+" + phone.digits) == phone


# --- the quick form: /send <phone> <text> ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ("998901234567 Some text", "Some text"),
        ("+998 90 123 45 67 Hello", "Hello"),
        ("+998 90 123-45-67   Salom,\ndo'stim!  ", "Salom,\ndo'stim!"),
        ("90 123 45 67 Ertaga 10:00 da", "Ertaga 10:00 da"),
        ("8 90 123 45 67 Salom", "Salom"),
        ("901234567\nKo'rishguncha", "Ko'rishguncha"),
    ],
)
def test_quick_form_splits_phone_and_text(args: str, text: str) -> None:
    assert extract_phone_and_text(args) == (UZ_PHONE, text)


def test_quick_form_with_foreign_number() -> None:
    found = extract_phone_and_text("79161234567 Privet")
    assert found is not None
    assert (found[0].digits, found[1]) == ("79161234567", "Privet")


def test_quick_form_prefers_uzbek_reading_when_text_starts_with_digits() -> None:
    # "905123456100" is a valid Turkish number; the user meant 100 so'm, to an Uzbek phone.
    found = extract_phone_and_text("905123456 100 so'm qarzingiz bor")
    assert found is not None
    assert found[0].digits == "998905123456"
    assert found[1] == "100 so'm qarzingiz bor"


def test_quick_form_keeps_digits_that_do_not_extend_the_number() -> None:
    found = extract_phone_and_text("+998 90 123 45 67 2 ta chipta")
    assert found == (UZ_PHONE, "2 ta chipta")


@pytest.mark.parametrize(
    "args",
    ["", "   ", "998901234567", "+998 90 123 45 67   ", "hello 998901234567", "12345 text"],
)
def test_quick_form_needs_a_phone_and_a_text(args: str) -> None:
    assert extract_phone_and_text(args) is None


# --- masking for logs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "masked"),
    [
        ("998901234567", "+998 90 ***-**-67"),
        ("79161234567", "+7 91 ******67"),
        ("", "***"),
        ("not digits", "***"),
    ],
)
def test_mask_phone_hides_the_middle(digits: str, masked: str) -> None:
    assert mask_phone(digits) == masked
    assert "1234" not in mask_phone(digits)
