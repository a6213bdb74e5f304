"""A file a user sends to a dialog (a /bulk list, a contacts import, a stop-list import): the
one download, with Telegram's limit for bots checked before it and, when the size was not
given, told by the refusal itself. What the file says is read by each dialog in the upload
worker (services.upload_worker)."""

from __future__ import annotations

from typing import Final

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

# Bots may download files of at most 20 MB (https://core.telegram.org/bots/api#getfile).
DOWNLOAD_LIMIT: Final = 20 * 1024 * 1024
FALLBACK_NAME: Final = "file"


def too_big_text(size: int | None) -> str:
    return _(
        "This file is {size} MB; Telegram lets bots download files of at most 20 MB. "
        "Save it as CSV or split it into parts."
    ).format(size=f"{(size or 0) / 1024 / 1024:.1f}" if size else "> 20")


async def download_document(message: Message, bot: Bot) -> tuple[bytes, str] | None:
    """The document's bytes and file name; None when it is over the limit (the user has
    been told, nothing changed)."""
    document = message.document
    assert document is not None
    if document.file_size is not None and document.file_size > DOWNLOAD_LIMIT:
        await message.answer(too_big_text(document.file_size))
        return None
    try:
        downloaded = await bot.download(document)
    except TelegramBadRequest as exc:
        # file_size may be missing; Telegram then refuses big files only here.
        if "too big" not in exc.message:
            raise
        await message.answer(too_big_text(document.file_size))
        return None
    assert downloaded is not None  # without a destination, download returns the bytes
    return downloaded.read(), document.file_name or FALLBACK_NAME
