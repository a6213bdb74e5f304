"""When a failed Bot API call may be repeated: one rule for the session's retry middleware and
the notifier, which paces and retries the messages the bot sends on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.exceptions import TelegramNetworkError
from aiohttp import ClientConnectorError, ConnectionTimeoutError

if TYPE_CHECKING:
    from aiogram.methods import TelegramMethod


def creates_a_message(method: TelegramMethod[Any]) -> bool:
    """sendMessage, sendDocument, copyMessage, forwardMessage, ...: a repeat shows it twice."""
    name = method.__api_method__
    return name.startswith(("send", "copy", "forward")) and name != "sendChatAction"


def never_reached_telegram(exc: BaseException) -> bool:
    """True only when the connection itself failed (refused, DNS, TLS handshake, connect
    timeout): then no byte of the request reached Telegram. aiogram keeps aiohttp's error
    as the cause."""
    return isinstance(exc, TelegramNetworkError) and isinstance(
        exc.__cause__, ClientConnectorError | ConnectionTimeoutError
    )


def repeat_is_harmless(creates_message: bool, exc: BaseException) -> bool:
    """After a 5xx, a timeout or a garbled answer: an edit, a delete or a read may be repeated;
    a call that creates a message only when it provably never reached Telegram, since the
    error may have come after the message was posted."""
    return not creates_message or never_reached_telegram(exc)
