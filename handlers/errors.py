"""Domain errors become translated messages; anything else is logged and the user told."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Final

from aiogram import Bot, Router, html
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import ExceptionMessageFilter, ExceptionTypeFilter
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

from services.accounts import NoToken
from services.devsms import (
    DevsmsError,
    DevsmsGatewayError,
    DevsmsUnauthorized,
    DevsmsUnavailable,
)
from services.upload_worker import WorkerBusy

logger = logging.getLogger(__name__)

# What answerCallbackQuery says to a second answer, or to one after the query expired
# (ExceptionMessageFilter matches from the start of "Telegram server says - ...").
STALE_QUERY_PATTERN: Final = r".*query is too old and response timeout expired"
# What editMessageText says when the tapped message is a photo or a file (a /stats chart, an
# export): a button's data that was never under it, since real buttons are edited their way.
NO_TEXT_PATTERN: Final = r".*there is no text in the message to edit"


async def tell_user(event: ErrorEvent, bot: Bot, text: str) -> None:
    update = event.update
    chat_id: int | None = None
    if update.message is not None:
        chat_id = update.message.chat.id
    elif update.callback_query is not None:
        query = update.callback_query
        with suppress(TelegramAPIError):
            await query.answer()
        chat_id = query.message.chat.id if query.message else query.from_user.id
    if chat_id is None:
        return
    try:
        await bot.send_message(chat_id, text)
    except TelegramAPIError:
        logger.warning("could not tell chat %s about an error", chat_id)


async def no_token(event: ErrorEvent, bot: Bot) -> None:
    await tell_user(event, bot, _("First connect your devsms token: /start"))


async def token_rejected(event: ErrorEvent, bot: Bot) -> None:
    await tell_user(
        event,
        bot,
        _("devsms.uz no longer accepts your token. Send /token to connect a new one."),
    )


async def gateway_down(event: ErrorEvent, bot: Bot) -> None:
    logger.warning("gateway problem: %s", type(event.exception).__name__)
    await tell_user(
        event, bot, _("⚠️ devsms.uz is not answering right now. Please try again in a minute.")
    )


async def gateway_refused(event: ErrorEvent, bot: Bot) -> None:
    exc = event.exception
    assert isinstance(exc, DevsmsError)
    text = _("devsms.uz refused the request.")
    if exc.gateway_text:
        text += "\n" + _("Its answer: «{text}»").format(text=html.quote(exc.gateway_text))
    await tell_user(event, bot, text)


async def uploads_busy(event: ErrorEvent, bot: Bot) -> None:
    # Files are parsed one at a time and never queued (services.upload_worker): the file, or
    # the list to read again after a restart, was left as it was.
    await tell_user(
        event, bot, _("Another file is being read right now; send yours again in a minute.")
    )


async def stale_query(event: ErrorEvent) -> None:
    # Telegram takes one answer per callback query, within about 15 s: the same update
    # delivered twice (a restart before the offset was confirmed) or a slow handler gets
    # "query is too old". The user was answered already, or the spinner has timed out; a
    # "something went wrong" message would be the only thing they see of it.
    logger.warning("callback query %s: answer refused as too old", _query_id(event))


async def tap_on_media(event: ErrorEvent) -> None:
    query = event.update.callback_query
    logger.info("callback query %s: its message has no text to edit", _query_id(event))
    if query is not None:
        with suppress(TelegramAPIError):
            await query.answer(_("This button is no longer active."))


def _query_id(event: ErrorEvent) -> str | None:
    query = event.update.callback_query
    return query.id if query is not None else None


async def unexpected(event: ErrorEvent, bot: Bot) -> None:
    logger.error(
        "unhandled error in update %s",
        event.update.update_id,
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
    )
    await tell_user(
        event, bot, _("Something went wrong on our side. It is logged; please try again.")
    )


def create_router() -> Router:
    router = Router(name="errors")
    router.errors.register(
        stale_query,
        ExceptionTypeFilter(TelegramBadRequest),
        ExceptionMessageFilter(STALE_QUERY_PATTERN),
    )
    router.errors.register(
        tap_on_media,
        ExceptionTypeFilter(TelegramBadRequest),
        ExceptionMessageFilter(NO_TEXT_PATTERN),
    )
    router.errors.register(no_token, ExceptionTypeFilter(NoToken))
    router.errors.register(uploads_busy, ExceptionTypeFilter(WorkerBusy))
    router.errors.register(token_rejected, ExceptionTypeFilter(DevsmsUnauthorized))
    router.errors.register(
        gateway_down, ExceptionTypeFilter(DevsmsUnavailable, DevsmsGatewayError)
    )
    router.errors.register(gateway_refused, ExceptionTypeFilter(DevsmsError))
    router.errors.register(unexpected)
    return router
