"""Domain errors become translated messages; anything else is logged and the user told."""

from __future__ import annotations

import logging
from contextlib import suppress

from aiogram import Bot, Router, html
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

from services.accounts import NoToken
from services.devsms import (
    DevsmsError,
    DevsmsGatewayError,
    DevsmsUnauthorized,
    DevsmsUnavailable,
)

logger = logging.getLogger(__name__)


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
    router.errors.register(no_token, ExceptionTypeFilter(NoToken))
    router.errors.register(token_rejected, ExceptionTypeFilter(DevsmsUnauthorized))
    router.errors.register(
        gateway_down, ExceptionTypeFilter(DevsmsUnavailable, DevsmsGatewayError)
    )
    router.errors.register(gateway_refused, ExceptionTypeFilter(DevsmsError))
    router.errors.register(unexpected)
    return router
