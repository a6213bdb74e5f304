"""The parsers of short typed values: sender id, alert threshold, user id."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from bot.config import Settings
from services.user_input import (
    InvalidSender,
    InvalidThreshold,
    InvalidUserId,
    SenderProblem,
    Threshold,
    effective_sender,
    own_sender,
    parse_sender,
    parse_threshold,
    parse_user_id,
)
from storage.users import UserRow


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("20000", Threshold("som", 20000)),
        ("20 000 so'm", Threshold("som", 20000)),
        ("20\u00a0000 soʻm", Threshold("som", 20000)),
        ("  7000UZS ", Threshold("som", 7000)),
        ("5000 сум", Threshold("som", 5000)),
        ("100 sms", Threshold("sms", 100)),
        ("100sms", Threshold("sms", 100)),
        ("100 ta SMS", Threshold("sms", 100)),
        ("50 смс", Threshold("sms", 50)),
        ("٢٠٠٠٠", Threshold("som", 20000)),
        ("9" * 12, Threshold("som", 10**12 - 1)),
    ],
)
def test_threshold_parsing(typed: str, expected: Threshold) -> None:
    assert parse_threshold(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "0",
        "000 sms",
        "-5",
        "abc",
        "12.5",
        "10 dollars",
        "100 ta",
        "sms 100",
        "1" + "0" * 12,
        "1" + "\n" * 800 + "x",
        "1" + " " * 4094 + "x",
        "²",
    ],
)
def test_bad_thresholds_are_refused(typed: str) -> None:
    with pytest.raises(InvalidThreshold):
        parse_threshold(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("4546", "4546"),
        (" 123456789012345 ", "123456789012345"),
        ("MyShop", "MyShop"),
        ("My Shop.uz", "My Shop.uz"),
        ("A-1_b", "A-1_b"),
        ("12", "12"),
    ],
)
def test_senders_accepted(typed: str, expected: str) -> None:
    assert parse_sender(typed) == expected


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("٤٥٤٦", SenderProblem.NOT_LATIN),  # Arabic-Indic digits: "\d" matched them
        ("４５４６", SenderProblem.NOT_LATIN),  # fullwidth digits
        ("Магазин", SenderProblem.NOT_LATIN),
        ("Shop\u200f", SenderProblem.NOT_LATIN),  # a right-to-left mark
        ("", SenderProblem.SHAPE),
        ("1", SenderProblem.SHAPE),
        ("1234567890123456", SenderProblem.SHAPE),
        ("MyVeryLongShop", SenderProblem.SHAPE),
        ("-shop", SenderProblem.SHAPE),
        ("shop!", SenderProblem.SHAPE),
        ("45\n46", SenderProblem.SHAPE),
    ],
)
def test_senders_refused(typed: str, problem: SenderProblem) -> None:
    with pytest.raises(InvalidSender) as caught:
        parse_sender(typed)
    assert caught.value.problem is problem


def user_with(sender: str | None) -> UserRow:
    return UserRow(1, "en", "Ali", None, sender, True, "", "")


def test_a_stored_sender_is_used_only_when_valid() -> None:
    assert effective_sender(user_with("MyShop"), "4546") == "MyShop"
    assert effective_sender(user_with(None), "4546") == "4546"
    assert effective_sender(user_with("٤٥٤٦"), "4546") == "4546"
    assert effective_sender(None, "4546") == "4546"
    assert own_sender(user_with("MyShop")) == "MyShop"
    assert own_sender(user_with("٤٥٤٦")) is None


@pytest.mark.parametrize("typed", ["", "0", "-1", "12a", "²", "١٢", "9" * 20, str(2**63), "1 2"])
def test_bad_user_ids_are_refused(typed: str) -> None:
    with pytest.raises(InvalidUserId):
        parse_user_id(typed)


def test_user_id() -> None:
    assert parse_user_id(" 123456789 ") == 123456789
    assert parse_user_id(str(2**63 - 1)) == 2**63 - 1


def test_default_sender_setting_follows_the_same_rule() -> None:
    with pytest.raises(ValidationError, match="DEFAULT_SENDER must be"):
        Settings(bot_token=SecretStr("123:" + "a" * 35), default_sender="٤٥٤٦")
    settings = Settings(bot_token=SecretStr("123:" + "a" * 35), default_sender=" Shop ")
    assert settings.default_sender == "Shop"
