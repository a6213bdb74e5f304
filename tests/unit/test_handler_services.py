"""The bot's services skip the routers (bot.middlewares.HandlerServices): a filter still gets
every service it takes by name, a handler every service it takes, before its routers' own
inner middlewares run; error handlers get them all; and a filter or middleware whose wants
cannot be read turns the split off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiogram import Dispatcher, Router
from aiogram.filters import invert_f, or_f
from aiogram.types import Message, TelegramObject, Update

from bot.factory import build_app
from bot.middlewares import HandlerServices
from tests.conftest import make_settings
from tests.support.filter_checks import bot_that_knows_itself, private_message

SERVICES = {"accounts": "accounts", "outbox": "outbox", "traffic": "traffic", "bulk": "bulk"}


def update(text: str) -> Update:
    return Update(update_id=1, message=private_message(text=text))


def dispatcher(router: Router) -> Dispatcher:
    dp = Dispatcher(**SERVICES)
    dp.include_router(router)
    return dp


async def test_filters_and_handlers_get_what_they_take_and_routers_carry_the_rest_no_further() -> (
    None
):
    seen: dict[str, Any] = {}

    async def needs_accounts(message: Message, accounts: str) -> bool:
        seen["filter"] = accounts
        return True

    async def not_bulk(message: Message, bulk: str) -> bool:
        return bulk != "bulk"

    async def inner(handler: Any, event: TelegramObject, data: dict[str, Any]) -> Any:
        seen["inner"] = data["outbox"]
        return await handler(event, data)

    async def answer(message: Message, outbox: str, traffic: str, **data: Any) -> str:
        seen["handler"] = (outbox, traffic, sorted(set(SERVICES) & set(data)))
        return "answered"

    router = Router(name="balance")
    router.message.middleware(inner)
    router.message.register(answer, needs_accounts, invert_f(or_f(not_bulk)))
    dp = dispatcher(router)
    services = HandlerServices.for_dispatcher(dp)

    assert services is not None
    assert services.late == {"outbox", "traffic"}  # accounts and bulk are taken by filters
    assert await dp.feed_update(bot_that_knows_itself(), update("/balance")) == "answered"
    assert seen == {
        "filter": "accounts",
        "inner": "outbox",
        "handler": ("outbox", "traffic", ["accounts", "bulk"]),
    }


async def test_a_service_replaced_after_start_reaches_the_handler() -> None:
    async def answer(message: Message, outbox: str) -> str:
        return outbox

    router = Router(name="history")
    router.message.register(answer)
    dp = dispatcher(router)
    HandlerServices.for_dispatcher(dp)
    dp["outbox"] = "another outbox"

    assert await dp.feed_update(bot_that_knows_itself(), update("/history")) == "another outbox"


async def test_an_error_handler_gets_every_service() -> None:
    async def fail(message: Message) -> None:
        raise RuntimeError("boom")

    async def on_error(event: TelegramObject, outbox: str, traffic: str) -> str:
        return f"told with {outbox} and {traffic}"

    router = Router(name="errors")
    router.message.register(fail)
    router.errors.register(on_error)
    dp = dispatcher(router)
    HandlerServices.for_dispatcher(dp)

    found = await dp.feed_update(bot_that_knows_itself(), update("/send"))
    assert found == "told with outbox and traffic"


async def takes_anything(message: Message, **data: Any) -> bool:
    return "outbox" in data


async def outer(handler: Any, event: TelegramObject, data: dict[str, Any]) -> Any:
    return await handler(event, data) if "outbox" in data else "outbox missing"


def with_kwargs_filter(router: Router) -> None:
    router.message.register(lambda message: "answered", takes_anything)


def with_outer_middleware(router: Router) -> None:
    router.message.outer_middleware(outer)
    router.message.register(lambda message: "answered")


@pytest.mark.parametrize("setup", [with_kwargs_filter, with_outer_middleware])
async def test_unreadable_wants_keep_every_service_on_the_routers(setup: Any) -> None:
    router = Router(name="templates")
    setup(router)
    dp = dispatcher(router)

    assert HandlerServices.for_dispatcher(dp) is None
    assert await dp.feed_update(bot_that_knows_itself(), update("/templates")) == "answered"


def with_dispatcher_outer_middleware(router: Router) -> None:
    router.message.register(lambda message: "answered")
    assert router.parent_router is not None
    router.parent_router.message.outer_middleware(outer)


def with_update_inner_middleware(router: Router) -> None:
    router.message.register(lambda message: "answered")
    assert router.parent_router is not None
    router.parent_router.update.middleware(outer)


@pytest.mark.parametrize("setup", [with_dispatcher_outer_middleware, with_update_inner_middleware])
async def test_middlewares_of_the_dispatcher_that_may_read_services_keep_them_all(
    setup: Any,
) -> None:
    router = Router(name="settings")
    dp = dispatcher(router)
    setup(router)

    assert HandlerServices.for_dispatcher(dp) is None
    assert await dp.feed_update(bot_that_knows_itself(), update("/settings")) == "answered"


async def test_a_key_a_filter_set_keeps_its_value() -> None:
    async def narrow(message: Message) -> dict[str, Any]:
        return {"outbox": "the filter's outbox"}

    async def answer(message: Message, outbox: str) -> str:
        return outbox

    router = Router(name="status")
    router.message.register(answer, narrow)
    dp = dispatcher(router)
    HandlerServices.for_dispatcher(dp)

    assert (
        await dp.feed_update(bot_that_knows_itself(), update("/status")) == "the filter's outbox"
    )


async def test_the_bots_own_dispatcher_holds_back_the_services_no_filter_takes(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, "http://127.0.0.1:9/api")
    async with build_app(settings, bot=bot_that_knows_itself()) as app:
        slim = [each for each in app.dp.update.outer_middleware if hasattr(each, "__self__")]
        [services] = [each.__self__ for each in slim if isinstance(each.__self__, HandlerServices)]
        assert {"outbox", "traffic", "bulk_runner", "templates"} <= services.late
        # HasToken takes accounts, the admin filters settings.
        assert {"accounts", "settings"}.isdisjoint(services.late)
