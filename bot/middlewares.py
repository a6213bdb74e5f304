"""Per-update middlewares and the bounded retry for outgoing Bot API calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, cast

from aiogram import BaseMiddleware
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.event.handler import CallableObject
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters.logic import _AndFilter, _InvertFilter, _OrFilter
from aiogram.methods import AnswerCallbackQuery, GetUpdates, Response
from aiogram.types import TelegramObject, Update, User
from aiogram.utils.i18n import I18nMiddleware

from bot.config import Settings
from bot.i18n import language_for
from bot.notices.notifier import SELF_PACED
from bot.telegram_retry import creates_a_message, repeat_is_harmless
from services import metrics
from storage import UserRepo

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher
    from aiogram.methods import TelegramMethod
    from aiogram.methods.base import TelegramType

logger = logging.getLogger(__name__)


class MetricsMiddleware(BaseMiddleware):
    """Counts every update by type and outcome and times its handling (services/metrics.py).

    The outermost middleware, so the time includes the others'. Per update it costs one
    `perf_counter` pair, a dict lookup and three lock-guarded float adds: the label children
    are bound once per update type (scripts/bench.py measures it).
    """

    def __init__(self) -> None:
        self._bound: dict[str, _Bound] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        kind = _update_type(event)
        bound = self._bound.get(kind)
        if bound is None:
            bound = self._bound[kind] = _Bound(kind)
        try:
            result = await handler(event, data)
        except BaseException:
            bound.error.inc()
            bound.seconds.observe(time.perf_counter() - started)
            raise
        (bound.unhandled if result is UNHANDLED else bound.handled).inc()
        bound.seconds.observe(time.perf_counter() - started)
        return result


class _Bound:
    """One update type's metric children."""

    __slots__ = ("error", "handled", "seconds", "unhandled")

    def __init__(self, kind: str) -> None:
        self.handled = metrics.UPDATES.labels(kind, "handled")
        self.unhandled = metrics.UPDATES.labels(kind, "unhandled")
        self.error = metrics.UPDATES.labels(kind, "error")
        self.seconds = metrics.HANDLER_SECONDS.labels(kind)


def _update_type(event: TelegramObject) -> str:
    if not isinstance(event, Update):
        return "other"
    # An update carries one event. aiogram's event_type is lru_cached on the update, so each
    # call hashes the whole update; its two common types are read directly.
    if event.message is not None:
        return "message"
    if event.callback_query is not None:
        return "callback_query"
    try:
        return event.event_type
    except Exception:  # UpdateTypeLookupError: a type newer than this aiogram
        return "unknown"


class UserMiddleware(BaseMiddleware):
    """Records the user (first seen / last seen) and hands their row to handlers as `user_row`.

    A new user's language is settled from Telegram's at first contact and kept, so what the
    bot sends on its own later (alerts, delivery results) speaks the language of the chat.
    """

    def __init__(self, users: UserRepo, settings: Settings) -> None:
        self._users = users
        self._settings = settings

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is not None and not user.is_bot:
            row = await self._users.upsert_seen(user.id, user.first_name, user.username)
            if row.language is None:
                language = language_for(user.language_code, self._settings)
                await self._users.set_language(user.id, language)
                row = replace(row, language=language)
            data["user_row"] = row
        return await handler(event, data)


class HandlerServices:
    """The bot's services (the Dispatcher's workflow data: accounts, outbox, the runner, ...)
    reach filters only where some filter takes them by name, and every handler just before it
    runs, as aiogram would have given them.

    aiogram hands every filter and every router level the whole update data as keyword
    arguments, copying it at each step: with 26 services beside aiogram's own keys, each key
    cost about 17,000 instructions per /balance (callgrind), most of the bot's routing. `slim`
    (outer, on the update observer) passes the routers a copy without the services no filter
    takes; `restore` (inner, on every event observer, so before the routers' own inner
    middlewares) puts them back for the handler. Error handlers get the full data from
    aiogram's ErrorsMiddleware, which sits outside `slim`.

    What filters take is read once, when the Dispatcher is complete: a handler registered
    later whose filter takes a held-back service would not get it (nothing registers later).
    """

    def __init__(self, late: frozenset[str]) -> None:
        self.late = late

    @classmethod
    def for_dispatcher(cls, dp: Dispatcher) -> HandlerServices | None:
        """Set up on `dp` once its routers are included; None where it cannot be sure what
        runs between `slim` and `restore` takes: a filter with **kwargs, an outer middleware
        other than aiogram's I18nMiddleware on the Dispatcher's own observers, any below it,
        or more than aiogram's own routing on the update observer."""
        if len(dp.update.middleware) or len(dp.update.handlers) != 1:
            return None
        taken: set[str] = set()
        for router in dp.chain_tail:
            for name, observer in router.observers.items():
                outer = observer.outer_middleware
                if name != "update" and any(
                    router is not dp or not isinstance(each, I18nMiddleware) for each in outer
                ):
                    return None
                for handler in (observer._handler, *observer.handlers):
                    for flt in handler.filters or ():
                        names = _names_taken(flt)
                        if names is None:
                            return None
                        taken |= names
        late = frozenset(dp.workflow_data) - taken
        if not late:
            return None
        services = cls(late)
        dp.update.outer_middleware(services.slim)
        for name, observer in dp.observers.items():
            if name != "update":
                observer.middleware(services.restore)
        return services

    async def slim(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        late = self.late
        routed = {key: value for key, value in data.items() if key not in late}
        routed[_FULL_DATA] = data
        return await handler(event, routed)

    async def restore(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        full = data.pop(_FULL_DATA, None)
        if full is not None:
            for key in self.late:
                # A key a filter's result set on the way keeps its value, as in aiogram.
                if key in full and key not in data:
                    data[key] = full[key]
        return await handler(event, data)


def _names_taken(check: CallableObject) -> set[str] | None:
    """The keyword arguments a filter takes; None for any (**kwargs). aiogram's ~, and_f and
    or_f take any and hand each inner filter what it takes."""
    if not check.varkw:
        return check.params
    inner = check.callback
    if isinstance(inner, _InvertFilter):
        return _names_taken(inner.target)
    if isinstance(inner, _AndFilter | _OrFilter):
        taken: set[str] = set()
        for target in inner.targets:
            names = _names_taken(target)
            if names is None:
                return None
            taken |= names
        return taken
    return None


# Where `slim` keeps the update's whole data for `restore`.
_FULL_DATA: Final = "handler_services_data"


class PinResponseTypes(BaseRequestMiddleware):
    """Keeps the answer model of every Bot API method the bot has called.

    aiogram validates each answer with `Response[method.__returning__]`, a pydantic generic
    model that pydantic caches weakly: once the garbage collector had taken it, the next call
    built it again, 7-11 ms of CPU on the event loop (227 times in a 15 s /balance run, the
    bot's largest single cost and a p99 outlier). One reference per method keeps it built.
    """

    def __init__(self) -> None:
        self._kept: dict[type[Any], Any] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._kept:
            self._kept[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


def _already_done(method: TelegramMethod[Any], exc: TelegramBadRequest) -> bool:
    return method.__api_method__.startswith("edit") and "message is not modified" in exc.message


class RetryRequestMiddleware(BaseRequestMiddleware):
    """aiogram never retries; this waits out 429 `retry_after` and backs off on 5xx/network
    errors, repeating only what is safe to repeat.

    - 429: always retried, Telegram did not carry the request out.
    - 5xx and network errors: edits, deletes, answers and reads are retried (a repeat is
      harmless: a repeated edit that finds its own work done counts as done); methods that
      create a message only when the request provably never reached Telegram. A timeout or
      a 502 after a sendMessage may come after the message was posted, and a retry would
      show it twice.

    answerCallbackQuery is not retried: Telegram forgets the query after ~15 s, and a late
    answer only produces "query is too old". getUpdates has the poller's own backoff.
    """

    NO_RETRY: Final = (AnswerCallbackQuery, GetUpdates)

    def __init__(
        self, attempts: int = 5, base_delay: float = 0.5, max_delay: float = 30.0
    ) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if SELF_PACED.get():
            return await make_request(bot, method)
        if isinstance(method, AnswerCallbackQuery):
            return await self._answer_once(make_request, bot, method)
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramBadRequest as exc:
                if attempt > 1 and _already_done(method, exc):
                    # The lost attempt had made the edit; the repeat only found it done.
                    return cast("Response[TelegramType]", Response[Any](ok=True, result=True))
                raise
            except TelegramRetryAfter as exc:
                if isinstance(method, self.NO_RETRY) or attempt >= self.attempts:
                    raise
                delay = min(float(exc.retry_after), self.max_delay)
                logger.warning("%s: flood control, waiting %.1f s", type(method).__name__, delay)
            except (TelegramServerError, TelegramNetworkError) as exc:
                if isinstance(method, self.NO_RETRY) or attempt >= self.attempts:
                    raise
                if not repeat_is_harmless(creates_a_message(method), exc):
                    logger.warning(
                        "%s failed (%s) and may have been carried out: not repeated",
                        type(method).__name__,
                        type(exc).__name__,
                    )
                    raise
                delay = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
                logger.warning(
                    "%s failed (%s), retry %d in %.1f s",
                    type(method).__name__,
                    type(exc).__name__,
                    attempt,
                    delay,
                )
            await asyncio.sleep(delay)
            attempt += 1

    @staticmethod
    async def _answer_once(
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """A callback answer only stops the button's spinner, and handlers answer first: one
        refused by flood control or a 5xx must not abort the edit or send that follows (the
        user's change is saved by then; the spinner stops by itself)."""
        try:
            return await make_request(bot, method)
        except (TelegramRetryAfter, TelegramServerError, TelegramNetworkError) as exc:
            logger.warning("AnswerCallbackQuery failed (%s), not retried", type(exc).__name__)
            return cast("Response[TelegramType]", Response[bool](ok=True, result=False))
