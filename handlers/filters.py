"""Filters shared by the feature routers."""

from __future__ import annotations

from functools import lru_cache

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, User
from aiogram.utils.i18n import I18n

from handlers.keyboards import MENU_BUTTONS
from services.accounts import Accounts
from services.languages import LANGUAGES


@lru_cache(maxsize=256)
def button_labels(i18n: I18n, msgids: frozenset[str]) -> frozenset[str]:
    """The labels of these buttons in every language, looked up once: the catalogues do not
    change while the bot runs, and a message passes up to a dozen button filters."""
    return frozenset(i18n.gettext(msgid, locale=lang) for msgid in msgids for lang in LANGUAGES)


class MenuButton(Filter):
    """Matches a reply-keyboard button in any language: a keyboard sent before a language
    switch (or before a restart) keeps working."""

    def __init__(self, msgid: str) -> None:
        self.msgid = msgid
        self._msgids = frozenset({msgid})

    async def __call__(self, message: Message, i18n: I18n) -> bool:
        return bool(message.text) and message.text in button_labels(i18n, self._msgids)


class HasToken(Filter):
    """Lets the update through only for a user with a working devsms token."""

    async def __call__(
        self, event: Message | CallbackQuery, accounts: Accounts, event_from_user: User
    ) -> bool:
        return await accounts.has_token(event_from_user.id)


_MENU = frozenset(MENU_BUTTONS)


class AnyMenuButton(Filter):
    """True for any reply-keyboard label: dialogs waiting for free text let these through."""

    async def __call__(self, message: Message, i18n: I18n) -> bool:
        return bool(message.text) and message.text in button_labels(i18n, _MENU)


class Accessible(Filter):
    """The tapped button's message as `message`, when the bot can still edit it.

    Telegram sends an InaccessibleMessage for messages too old or deleted; their buttons are
    left to the fallback router, which answers "no longer active".
    """

    async def __call__(self, query: CallbackQuery) -> bool | dict[str, Message]:
        if isinstance(query.message, Message):
            return {"message": query.message}
        return False
