"""Which routers a message can still reach, decided with one look per router.

aiogram offers a message to every handler in router order until one's filters all pass: /balance
walked about 55 handlers (a filter call, keyword preparation and an await each) before its own,
a fifth of the bot's CPU per update under load (make bench, section 1, py-spy). Most of those
handlers cannot match it at all: they need another command, a dialog state the user is not in,
or a menu button the text is not. `skip_routers_out_of_reach` reads those needs off the handlers'
own filters once, at start-up, and a router whose handlers (its sub-routers' included) could
all not take a message is passed over with one look. aiogram's filters still decide everything
else, in the same order, so what handles an update does not change: a router is passed over
only where all its handlers would have said no.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass
from inspect import isclass
from typing import Any, TypeVar

from aiogram import Router
from aiogram.dispatcher.event.bases import REJECTED, UNHANDLED
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message, TelegramObject
from aiogram.utils.i18n import I18n

from handlers.filters import MenuButton, button_labels

_T = TypeVar("_T")
# A dialog state as aiogram stores it ("Group:name"), or None for no dialog.
StateName = str | None


@dataclass(frozen=True)
class Need:
    """What a handler's filters require of a message, as far as they can be read; None where
    they require nothing of that kind (or something this module cannot read)."""

    commands: frozenset[str] | None = None
    states: frozenset[StateName] | None = None
    buttons: frozenset[str] | None = None  # menu buttons' msgids

    @property
    def anything(self) -> bool:
        return self.commands is None and self.states is None and self.buttons is None

    def both(self, other: Need) -> Need:
        """The need of two filters of one handler: each of them must pass."""
        return Need(
            commands=_both(self.commands, other.commands),
            states=_both(self.states, other.states),
            # Two button filters: the text must be a label of each. Either set alone is a
            # need that holds; their intersection of msgids is not (labels may coincide).
            buttons=self.buttons if self.buttons is not None else other.buttons,
        )


def _both(one: frozenset[_T] | None, two: frozenset[_T] | None) -> frozenset[_T] | None:
    if one is None:
        return two
    if two is None:
        return one
    return one & two


def need_of(check: Any) -> Need:
    """What one filter requires; Need() (anything) for filters this module cannot read."""
    # Exact types: a subclass may take more than its base (aliases, its own __call__).
    if type(check) in (Command, CommandStart):
        names = check.commands
        plain = check.prefix == "/" and not check.ignore_case
        if plain and all(isinstance(name, str) for name in names):
            return Need(commands=frozenset(str(name) for name in names))
        return Need()
    if type(check) is MenuButton:
        return Need(buttons=frozenset({check.msgid}))
    if type(check) is StateFilter:
        states: set[StateName] = set()
        for each in check.states:
            named = _state_names(each)
            if named is None:
                return Need()
            states |= named
        return Need(states=frozenset(states))
    named = _state_names(check)
    return Need() if named is None else Need(states=frozenset(named))


def _state_names(state: Any) -> set[StateName] | None:
    """The states a state-like filter value lets through; None for any state (or not one)."""
    if state is None:
        return {None}
    if isinstance(state, str):
        return None if state == "*" else {state}
    if type(state) is State:
        return None if state.state == "*" else {state.state}
    if isinstance(state, StatesGroup):
        state = type(state)
    if isclass(state) and issubclass(state, StatesGroup):
        return set(state.__all_states_names__)
    return None


class Reach:
    """The messages a router and its sub-routers might take, indexed for one quick look."""

    def __init__(self) -> None:
        self.anything = False
        self.by_command: dict[str, list[Need]] = defaultdict(list)
        self.states: set[StateName] = set()
        self.buttons: list[Need] = []

    def add(self, need: Need) -> None:
        if need.anything:
            self.anything = True
        elif need.commands is not None:
            for name in need.commands:
                self.by_command[name].append(need)
        elif need.buttons is not None:
            self.buttons.append(need)
        else:
            assert need.states is not None
            self.states |= need.states

    def include(self, other: Reach) -> None:
        self.anything = self.anything or other.anything
        for name, needs in other.by_command.items():
            self.by_command[name].extend(needs)
        self.states |= other.states
        self.buttons.extend(other.buttons)

    def takes(self, message: Message, raw_state: StateName, i18n: I18n | None) -> bool:
        """False only when no handler under the router could take `message`."""
        if self.anything or raw_state in self.states:
            return True
        # What Command takes apart: "/name@mention args", from the text or a caption.
        text = message.text or message.caption
        head = text.split(maxsplit=1) if text else None
        if head and head[0][0] == "/":
            for need in self.by_command.get(head[0][1:].partition("@")[0], ()):
                # A command's other needs, a button among them, are left to its filters.
                if need.states is None or raw_state in need.states:
                    return True
        if self.buttons and message.text:
            for need in self.buttons:
                if need.states is not None and raw_state not in need.states:
                    continue
                assert need.buttons is not None
                if i18n is None or message.text in button_labels(i18n, need.buttons):
                    return True
        return False

    async def may_take(
        self, message: Message, raw_state: StateName = None, i18n: I18n | None = None
    ) -> bool:
        """`takes` as a router filter (aiogram hands it the dialog state and the I18n)."""
        return self.takes(message, raw_state, i18n)


class Junction(Router):
    """A router that composes others and offers a message only to those of its sub-routers
    whose Reach may take it. A sub-router passed over costs one `takes`, where a router filter
    would first run aiogram's machinery for the sub-router (its middleware chain, the filter
    call with its keyword preparation): /balance passes over ten routers on its way."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.reach: dict[Router, Reach] = {}

    async def propagate_event(self, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        # aiogram 3.31's Router.propagate_event: without outer middlewares, its wrapping of
        # _propagate_event in them is a chain of three calls doing nothing else.
        observer = self.observers.get(update_type)
        if observer is not None and observer.outer_middleware:
            return await super().propagate_event(update_type, event, **kwargs)
        kwargs["event_router"] = self
        return await self._propagate_event(observer, update_type, event, **kwargs)

    async def _propagate_event(
        self,
        observer: TelegramEventObserver | None,
        update_type: str,
        event: TelegramObject,
        **kwargs: Any,
    ) -> Any:
        if update_type != "message" or not isinstance(event, Message):
            return await super()._propagate_event(observer, update_type, event, **kwargs)
        # aiogram 3.31's Router._propagate_event, with the Reach look before each sub-router.
        response = UNHANDLED
        if observer:
            result, data = await observer.check_root_filters(event, **kwargs)
            if not result:
                return UNHANDLED
            kwargs.update(data)
            response = await observer.trigger(event, **kwargs)
            if response is REJECTED:
                return UNHANDLED
            if response is not UNHANDLED:
                return response
        raw_state, i18n = kwargs.get("raw_state"), kwargs.get("i18n")
        for router in self.sub_routers:
            reach = self.reach.get(router)
            if reach is not None and not reach.takes(event, raw_state, i18n):
                continue
            response = await _offer(router, update_type, event, kwargs)
            if response is not UNHANDLED:
                break
        return response


def _offer(
    router: Router, update_type: str, event: TelegramObject, kwargs: dict[str, Any]
) -> Awaitable[Any]:
    """router.propagate_event(update_type, event, **kwargs) as aiogram's Router does it (and
    Junction.propagate_event), for a plain Router or a Junction. `kwargs` is the calling
    Junction's own copy: its `event_router` is changed, and nothing reads it afterwards."""
    observer = router.observers.get(update_type)
    if observer is not None and observer.outer_middleware:
        return router.propagate_event(update_type=update_type, event=event, **kwargs)
    kwargs["event_router"] = router
    return router._propagate_event(observer, update_type, event, **kwargs)


def skip_routers_out_of_reach(router: Router) -> Reach:
    """Makes every router under `router` that no handler of a message could reach be passed
    over with one look: by its Junction parent, or by a filter put first among its own message
    filters where the parent is a plain Router. Returns `router`'s Reach.

    The Reach is read once: call this after the last handler is registered (build_router
    does, and nothing registers a handler later).
    """
    reach = Reach()
    for handler in router.message.handlers:
        need = Need()
        for flt in handler.filters or ():
            need = need.both(need_of(flt.callback))
        reach.add(need)
    for sub in router.sub_routers:
        below = skip_routers_out_of_reach(sub)
        reach.include(below)
        if below.anything:
            continue
        if isinstance(router, Junction) and not sub.message.outer_middleware:
            # With outer middlewares of its own, the sub-router's filter decides, after them:
            # they run for every message offered to it and may answer or change the state.
            router.reach[sub] = below
        else:
            root = sub.message._handler
            root.filters = [FilterObject(below.may_take), *(root.filters or ())]
    return reach
