"""Routers passed over by their Reach check (handlers.reach) are only ever ones whose handlers
would all have turned the message down: checked against aiogram's own filters for every
handler of the bot, every command and menu label it knows, and every dialog state."""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.state import State, StatesGroup, any_state, default_state
from aiogram.types import Contact, Message, PhotoSize
from aiogram.utils.i18n import I18n

from bot.i18n import create_i18n
from handlers import compose_routers
from handlers.filters import MenuButton
from handlers.keyboards import MENU_BUTTONS
from handlers.reach import Junction, Need, Reach, need_of, skip_routers_out_of_reach
from services.languages import LANGUAGES
from tests.support.filter_checks import bot_that_knows_itself, private_message

ODD_TEXTS = (
    "hello",
    "/nope",
    "/balance@devsms_bot",
    "/balance@other_bot",
    "   /history  extra",
    "\n/cancel",
    "/",
    "/ balance",
    "/Balance",
    "+998901234567",
)
FOREIGN_STATE = "Elsewhere:step"
Check = Callable[..., Awaitable[Any]]


def message(
    text: str | None = None,
    caption: str | None = None,
    photo: bool = False,
    contact: bool = False,
) -> Message:
    return private_message(
        text=text,
        caption=caption,
        photo=[PhotoSize(file_id="p", file_unique_id="p", width=1, height=1)] if photo else None,
        contact=Contact(phone_number="+998901234567", first_name="C") if contact else None,
    )


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return create_i18n("en")


@pytest.fixture
async def bot() -> Bot:
    return bot_that_knows_itself()


def walk(
    router: Router, checks: tuple[Check, ...] = ()
) -> Iterator[tuple[Router, tuple[Check, ...]]]:
    """Each router with the Reach checks on the way to it: its own and its parents' filters,
    and its Junction parents' looks."""
    own = tuple(
        flt.callback
        for flt in router.message._handler.filters or ()
        if isinstance(getattr(flt.callback, "__self__", None), Reach)
    )
    yield router, checks + own
    for sub in router.sub_routers:
        looks = router.reach if isinstance(router, Junction) else {}
        parents = (looks[sub].may_take,) if sub in looks else ()
        yield from walk(sub, checks + own + parents)


def readable(check: Any) -> bool:
    return isinstance(check, Command | State | StateFilter | MenuButton) or (
        isinstance(check, type) and issubclass(check, StatesGroup)
    )


async def passes(check: Any, msg: Message, raw_state: str | None, bot: Bot, i18n: I18n) -> bool:
    if isinstance(check, Command):
        return bool(await check(msg, bot))
    if isinstance(check, MenuButton):
        return await check(msg, i18n)
    if isinstance(check, StateFilter):
        return bool(await check(msg, raw_state=raw_state))
    if isinstance(check, type):
        return bool(check()(msg, raw_state=raw_state))
    return bool(check(msg, raw_state=raw_state))


def states_named(check: Any) -> set[str | None]:
    values = check.states if isinstance(check, StateFilter) else (check,)
    named: set[str | None] = set()
    for value in values:
        if isinstance(value, State):
            named.add(value.state)
        elif isinstance(value, type) and issubclass(value, StatesGroup):
            named |= set(value.__all_states_names__)
        elif isinstance(value, str) or value is None:
            named.add(value)
    return named


async def test_no_router_is_passed_over_where_one_of_its_handlers_could_take_the_message(
    bot: Bot, i18n: I18n
) -> None:
    top = compose_routers()
    skip_routers_out_of_reach(top)
    tree = list(walk(top))
    commands = {
        name
        for router, _ in tree
        for handler in router.message.handlers
        for flt in handler.filters or ()
        if isinstance(flt.callback, Command)
        for name in flt.callback.commands
        if isinstance(name, str)
    }
    texts = [f"/{name}" for name in sorted(commands)] + [f"/{name} 42" for name in commands]
    texts += [i18n.gettext(msgid, locale=lang) for msgid in MENU_BUTTONS for lang in LANGUAGES]
    texts += ODD_TEXTS
    messages = [message(text=t) for t in texts] + [message(caption=t, photo=True) for t in texts]
    messages += [message(photo=True), message(contact=True)]

    looked = 0
    for router, checks in tree:
        for handler in router.message.handlers:
            own = [flt.callback for flt in handler.filters or () if readable(flt.callback)]
            states: set[str | None] = {None, FOREIGN_STATE}
            for check in own:
                if not isinstance(check, Command | MenuButton):
                    states |= states_named(check)
            for msg in messages:
                for raw_state in states:
                    looked += 1
                    taken = [await passes(c, msg, raw_state, bot, i18n) for c in own]
                    if not all(taken):
                        continue
                    for check in checks:
                        assert await check(msg, raw_state=raw_state, i18n=i18n), (
                            router.name,
                            handler.callback.__name__,
                            msg.text or msg.caption,
                            raw_state,
                        )
    assert looked > 10_000  # the walk above did look at the whole bot


async def test_a_plain_command_of_a_user_in_no_dialog_passes_over_the_dialog_routers(
    i18n: I18n,
) -> None:
    top = compose_routers()
    skip_routers_out_of_reach(top)
    balance = message(text="/balance")
    reached = []
    for router, checks in walk(top):
        if all([await check(balance, raw_state=None, i18n=i18n) for check in checks]):
            reached.append(router.name)
    # The private-chat tree down to /balance's own router, and the routers that take any
    # message (the allowlist's refusal, the fallback); none of the dialogs, admin or /start.
    assert reached == ["top", "root", "access", "gated", "balance", "fallback"]


# aiogram's Router._propagate_event and propagate_event as Junction copies them (aiogram 3.31.0).
AIOGRAM_PROPAGATE_SHA256 = {
    "_propagate_event": "76fc938efce3eacf9dba64d150d6370d4f506adb68ed143a25dddbc752ee0670",
    # Junction.propagate_event and reach._offer
    "propagate_event": "78ee00b916f43e055d2ef074978ae7a6703fe3cb50155e7d046f9852dd3a9908",
}


@pytest.mark.parametrize("name", sorted(AIOGRAM_PROPAGATE_SHA256))
def test_the_junction_copies_the_propagation_of_the_pinned_aiogram(name: str) -> None:
    source = inspect.getsource(getattr(Router, name))
    assert hashlib.sha256(source.encode()).hexdigest() == AIOGRAM_PROPAGATE_SHA256[name], (
        f"aiogram's Router.{name} changed: bring Junction (handlers/reach.py) in line with "
        "it, then update this hash"
    )


class Aliased(Command):
    """A Command subclass that also takes other names: its needs cannot be read."""


class Inbox(StatesGroup):
    waiting = State()
    reading = State()


@pytest.mark.parametrize(
    ("check", "need"),
    [
        (Command("balance", "b"), Need(commands=frozenset({"balance", "b"}))),
        (CommandStart(deep_link=True), Need(commands=frozenset({"start"}))),
        (Command("balance", ignore_case=True), Need()),
        (Command("balance", prefix="/!"), Need()),
        (Command(re.compile(r"bal\w*")), Need()),
        (Aliased("balance"), Need()),
        (Inbox.waiting, Need(states=frozenset({"Inbox:waiting"}))),
        (Inbox, Need(states=frozenset({"Inbox:waiting", "Inbox:reading"}))),
        (Inbox(), Need(states=frozenset({"Inbox:waiting", "Inbox:reading"}))),
        (default_state, Need(states=frozenset({None}))),
        (any_state, Need()),
        (StateFilter(None), Need(states=frozenset({None}))),
        (StateFilter(Inbox.waiting, None), Need(states=frozenset({"Inbox:waiting", None}))),
        (StateFilter("*"), Need()),
        (StateFilter(Inbox.waiting, any_state), Need()),
        (~StateFilter(Inbox.waiting), Need()),
        (MenuButton("💰 Balance"), Need(buttons=frozenset({"💰 Balance"}))),
        (F.text, Need()),
    ],
    ids=lambda value: "" if isinstance(value, Need) else type(value).__name__,
)
def test_what_a_filter_needs_is_read_only_where_it_is_sure(check: Any, need: Need) -> None:
    assert need_of(check) == need


async def test_a_sub_router_with_outer_middlewares_is_offered_every_message() -> None:
    seen: list[str | None] = []

    async def outer(handler: Any, event: Message, data: dict[str, Any]) -> Any:
        seen.append(event.text)
        return await handler(event, data)

    async def balance(message: Message) -> str:
        return "balance"

    top = Junction(name="top")
    plain, watched = Router(name="plain"), Router(name="watched")
    plain.message.register(balance, Command("balance"))
    watched.message.register(balance, Command("balance"))
    watched.message.outer_middleware(outer)
    top.include_routers(plain, watched)
    skip_routers_out_of_reach(top)

    assert set(top.reach) == {plain}
    history = message(text="/history")
    assert await top.propagate_event("message", history, raw_state=None) is UNHANDLED
    assert seen == ["/history"]


async def test_a_handler_under_junctions_sees_its_own_router_and_nothing_a_sibling_added() -> None:
    async def tag(message: Message) -> dict[str, Any]:
        return {"tag": "added by the first router's filter"}

    async def never(message: Message) -> bool:
        return False

    async def answer(message: Message, event_router: Router, **data: Any) -> tuple[str, Any]:
        return event_router.name, data.get("tag")

    top, middle = Junction(name="top"), Junction(name="middle")
    first, second = Router(name="first"), Router(name="second")
    first.message.filter(tag)
    first.message.register(answer, Command("balance"), never)
    second.message.register(answer, Command("balance"))
    middle.include_routers(first, second)
    top.include_router(middle)
    skip_routers_out_of_reach(top)

    balance = message(text="/balance")
    found = await top.propagate_event(
        "message", balance, raw_state=None, bot=bot_that_knows_itself()
    )
    assert found == ("second", None)
    history = message(text="/history")
    assert await top.propagate_event("message", history, raw_state=None) is UNHANDLED
