"""Every dispatcher test runs under Telegram's rules (tests/support/telegram_rules.py): a call
Telegram would refuse raises TelegramBadRequest in the handler, as in production. This guard
makes such a refusal fail the test when nothing in the product handled it (it reached the
catch-all error handler, and the user was told "something went wrong")."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiogram.exceptions import TelegramAPIError


class _Refusals(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TelegramAPIError):
            self.found.append(f"{record.getMessage()}: {exc}")


@pytest.fixture(autouse=True)
def telegram_refusals_are_handled() -> Iterator[None]:
    guard = _Refusals()
    root = logging.getLogger()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.removeHandler(guard)
    assert guard.found == [], "Telegram refused a call and nothing handled it:\n" + "\n".join(
        guard.found
    )
