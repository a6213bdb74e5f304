"""aiogram routers, one module per feature. Only bot/ imports from here."""

from __future__ import annotations

from aiogram import F, Router

from handlers import (
    balance,
    common,
    errors,
    fallback,
    history,
    send,
    settings,
    status,
    token,
)
from handlers.filters import HasToken


def build_router() -> Router:
    """All routers in the order they must see updates."""
    root = Router(name="root")
    # User flows live in private chats only; group messages are not ours to answer.
    root.message.filter(F.chat.type == "private")
    root.callback_query.filter(F.message.chat.type == "private")

    gated = Router(name="gated")
    gated.message.filter(HasToken())
    gated.callback_query.filter(HasToken())
    gated.include_routers(
        send.create_router(),
        settings.create_router(),
        balance.create_router(),
        history.create_router(),
        status.create_router(),
    )

    root.include_routers(
        errors.create_router(),
        common.create_router(),
        token.create_router(),
        gated,
        fallback.create_router(),
    )
    return root
