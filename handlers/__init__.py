"""aiogram routers, one module per feature. Only bot/ imports from here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import Message

from handlers import (
    access,
    admin,
    balance,
    bulk,
    common,
    contacts,
    errors,
    fallback,
    history,
    insights,
    otp,
    reports,
    schedule,
    send,
    settings,
    status,
    stoplist,
    templates,
    token,
)
from handlers.filters import HasToken
from handlers.reach import Junction, skip_routers_out_of_reach


def build_router(*, allowlist: bool = True) -> Router:
    """All routers in the order they must see updates, with aiogram's walk made cheaper.
    Without the allowlist (ACCESS_MODE=open) no user is refused: the refusal's router, which
    every private message would enter, is left out."""
    top = compose_routers(allowlist=allowlist)
    # Reads the filters as the feature modules made them, so before the two below wrap them.
    skip_routers_out_of_reach(top)
    run_sync_filters_inline(top)
    reject_other_commands_early(top)
    return top


def compose_routers(*, allowlist: bool = True) -> Router:
    """The router tree as the feature modules build it."""
    root = Junction(name="root")
    # User flows live in private chats only; group messages are not ours to answer.
    root.message.filter(F.chat.type == "private")
    root.callback_query.filter(F.message.chat.type == "private")

    gated = Junction(name="gated")
    gated.message.filter(HasToken())
    gated.callback_query.filter(HasToken())
    gated.include_routers(
        # Before send, bulk and settings: it answers some of their buttons (Send later, the
        # time zone and quiet hours of /settings).
        schedule.create_router(),
        send.create_router(),
        otp.create_router(),
        settings.create_router(),
        insights.create_router(),
        balance.create_router(),
        history.create_router(),
        status.create_router(),
        templates.create_router(),
        bulk.create_router(),
        reports.create_router(),
        stoplist.create_router(),
        contacts.create_router(),
    )

    root.include_routers(
        errors.create_router(),
        # ACCESS_MODE=allowlist: takes every update of a user nobody approved.
        *([access.create_router()] if allowlist else []),
        common.create_router(),
        token.create_router(),
        gated,
        fallback.create_router(),
    )

    top = Junction(name="top")
    # Admins also work in the admin group, so their router sits outside the private-only root.
    top.include_routers(admin.create_router(), root)
    return top


def run_sync_filters_inline(router: Router) -> None:
    """aiogram calls every filter that is not a coroutine (F-expressions, bare States) through
    asyncio.to_thread: a thread hop each, about fifteen per /balance here, measured as most of
    the bot's CPU per update (see `make bench`). Ours only read attributes of the update, so
    they run on the event loop instead."""
    for each in router.chain_tail:
        for observer in each.observers.values():
            # Router-level filters (observer.filter(...)) live on the observer's own handler.
            for handler in (observer._handler, *observer.handlers):
                for flt in handler.filters or ():
                    if not flt.awaitable:
                        flt.callback = _inline(flt.callback)
                        flt.awaitable = True


def _inline(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return run


def reject_other_commands_early(router: Router) -> None:
    """A message walks every `Command` filter of the routers before its own handler (about 25
    before /balance's), and aiogram's rejects a different command by building a CommandObject
    and raising and catching an exception (5 % of the bot's CPU under load, see `make bench`).
    A plain command filter (names only, "/" prefixes, no magic) first compares the command's
    name with a set, and hands only a match to aiogram's own check, which decides as before
    (the bot's mention, the arguments)."""
    for each in router.chain_tail:
        for observer in each.observers.values():
            for handler in (observer._handler, *observer.handlers):
                for flt in handler.filters or ():
                    command = flt.callback
                    if (
                        type(command) is Command
                        and command.magic is None
                        and not command.ignore_case
                        and all(isinstance(name, str) for name in command.commands)
                    ):
                        flt.callback = _names_first(command)


def _names_first(command: Command) -> Callable[[Message, Bot], Awaitable[bool | dict[str, Any]]]:
    names = frozenset(command.commands)
    prefixes = command.prefix

    async def check(message: Message, bot: Bot) -> bool | dict[str, Any]:
        # What Command.extract_command takes apart: "/name@mention args".
        text = message.text or message.caption
        head = text.split(maxsplit=1) if text else None
        if not head or head[0][0] not in prefixes:
            return False
        if head[0][1:].partition("@")[0] not in names:
            return False
        return await command(message, bot)

    return check
