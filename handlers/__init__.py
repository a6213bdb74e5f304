"""aiogram routers, one module per feature. Only bot/ imports from here."""

from __future__ import annotations

from aiogram import F, Router

from handlers import (
    access,
    admin,
    balance,
    bulk,
    common,
    errors,
    fallback,
    history,
    send,
    settings,
    status,
    templates,
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
        templates.create_router(),
        bulk.create_router(),
    )

    root.include_routers(
        errors.create_router(),
        # ACCESS_MODE=allowlist: takes every update of a user nobody approved.
        access.create_router(),
        common.create_router(),
        token.create_router(),
        gated,
        fallback.create_router(),
    )

    top = Router(name="top")
    # Admins also work in the admin group, so their router sits outside the private-only root.
    top.include_routers(admin.create_router(), root)
    return top
