from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.money import Money, parse_money


def uzs(amount: str | int) -> Money:
    return Money(Decimal(amount), "UZS")


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (50, uzs(50)),
        (0, uzs(0)),
        (-250, uzs(-250)),
        (Decimal("12.5"), uzs("12.5")),
        (0.005, uzs("0.005")),
        ("50", uzs(50)),
        ("  950 ", uzs(950)),
        ("50.5", uzs("50.5")),
        ("1 000", uzs(1000)),
        ("1\u00a0000\u00a0000", uzs(1_000_000)),
        ("1,000", uzs(1000)),
        ("1,000.50", uzs("1000.50")),
        ("1 000,50", uzs("1000.50")),
        ("1.000,50", uzs("1000.50")),
        ("1.000.000", uzs(1_000_000)),
        ("1,5", uzs("1.5")),
        ("0,005", uzs("0.005")),
        ("-1 000", uzs(-1000)),
        ("\u2212300", uzs(-300)),
        ("1 250 so'm", uzs(1250)),
        ("1 250 soʻm", uzs(1250)),
        ("500 сум", uzs(500)),
        ("500 sum", uzs(500)),
        ("100 UZS", uzs(100)),
        ("$0.005", usd("0.005")),
        ("0.005$", usd("0.005")),
        ("$1,234.50", usd("1234.50")),
        ("-$5", usd(-5)),
        ("$-5", usd(-5)),
        ("0.5 USD", usd("0.5")),
    ],
)
def test_parse_money_reads_what_the_gateway_and_users_write(
    value: object, expected: Money
) -> None:
    assert parse_money(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "abc",
        "$",
        "so'm",
        "12 34",
        "1,00,000",
        "1..5",
        "5.",
        ".5",
        "1e5",
        "NaN",
        "inf",
        "$5 so'm",
        "$5$",
        "--5",
        "5-",
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        "9" * 40,
        [50],
        {"amount": 50},
        b"50",
    ],
)
def test_parse_money_returns_none_for_anything_that_is_not_money(value: object) -> None:
    assert parse_money(value) is None


def test_negative_zero_is_plain_zero() -> None:
    for value in ("-0", -0.0, Decimal("-0.00"), "-$0"):
        money = parse_money(value)
        assert money is not None
        assert money.amount == 0
        assert not str(money).startswith("-")


def test_default_currency_applies_to_bare_numbers_only() -> None:
    assert parse_money(5, default_currency="USD") == usd("5")
    assert parse_money("5 so'm", default_currency="USD") == uzs(5)


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (uzs(1250), "1 250 so'm"),
        (uzs(50), "50 so'm"),
        (uzs(1_000_000), "1 000 000 so'm"),
        (uzs(-1250), "-1 250 so'm"),
        (uzs("1250.5"), "1 250,50 so'm"),
        (uzs("1250.00"), "1 250 so'm"),
        (uzs("-0.001"), "0 so'm"),
        (usd("0.005"), "$0.005"),
        (usd("1"), "$1.00"),
        (usd("1.5"), "$1.50"),
        (usd("1234.5"), "$1,234.50"),
        (usd("0.0125"), "$0.0125"),
        (usd("0.00001234"), "$0.00001234"),
        (usd("-0.005"), "-$0.005"),
    ],
)
def test_format(money: Money, text: str) -> None:
    assert str(money) == text
    assert money.format() == text


def test_arithmetic_in_one_currency() -> None:
    price = uzs(50)
    assert price * 3 == uzs(150)
    assert 3 * price == uzs(150)
    assert uzs(1000) - price * 3 == uzs(850)
    assert uzs(100) + uzs(-150) == uzs(-50)
    assert price < uzs(51) and price <= uzs(50) and uzs(51) > price and price >= uzs(50)


def test_mixing_currencies_raises() -> None:
    with pytest.raises(ValueError):
        uzs(1) + usd("1")
    with pytest.raises(ValueError):
        uzs(1) - usd("1")
    with pytest.raises(ValueError):
        _ = uzs(1) < usd("1")


def test_money_rejects_unknown_currency_and_non_finite_amounts() -> None:
    with pytest.raises(ValueError):
        Money(Decimal(1), "EUR")
    with pytest.raises(ValueError):
        Money(Decimal("NaN"), "UZS")


@given(st.text())
def test_parse_money_never_raises_on_any_text(text: str) -> None:
    result = parse_money(text)
    assert result is None or isinstance(result.amount, Decimal)


@given(
    st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False),
    st.sampled_from(["UZS", "USD"]),
)
def test_formatted_money_reads_back_as_the_same_amount(amount: Decimal, currency: str) -> None:
    money = Money(amount, currency)
    assert parse_money(str(money)) == money
