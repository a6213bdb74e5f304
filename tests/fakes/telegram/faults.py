"""Injected faults: errors and dropped connections for the next requests, blocked users,
migrated chats."""

from __future__ import annotations

from tests.fakes.telegram.model import (
    _WRITE_METHOD_PREFIXES,
    BLOCKED,
    MIGRATED,
    ApiError,
    _Fault,
)
from tests.fakes.telegram.state import TelegramState
from tests.support.telegram_rules import JsonDict


class Faults(TelegramState):
    """Faults a test injects, and applying them to a request."""

    def fail_next(
        self,
        n: int,
        *,
        method: str | None = None,
        error_code: int = 429,
        description: str = "Too Many Requests: retry after 1",
        retry_after: int | None = 1,
        drop_connection: bool = False,
        processed: bool = False,
    ) -> None:
        """Answer the next ``n`` matching requests with an error (or drop the connection).

        method=None matches every method except getUpdates, which a polling bot calls
        constantly; name getUpdates explicitly to fault polling. retry_after is only sent
        with error_code 429. ``processed``: the request is carried out first (the message is
        posted), then the error or the dropped connection hides that from the bot.
        """
        self._faults.append(
            _Fault(
                remaining=n,
                method=method,
                error_code=error_code,
                description=description,
                retry_after=retry_after,
                drop_connection=drop_connection,
                processed=processed,
            )
        )

    def slow_down(self, seconds: float) -> None:
        """Answer every request but getUpdates (a long poll's wait is its own) ``seconds``
        late, as a Telegram far from the bot would; 0 answers at once again."""
        self._round_trip = seconds

    def block_user(self, user_id: int) -> None:
        self._blocked.add(user_id)

    def unblock_user(self, user_id: int) -> None:
        self._blocked.discard(user_id)

    def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        self._migrated[old_chat_id] = new_chat_id
        self._ensure_chat(new_chat_id, "supergroup")

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(method):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _check_chat(self, method: str, params: JsonDict) -> None:
        chat_id = params.get("chat_id")
        if chat_id in self._migrated:
            raise ApiError(400, MIGRATED, {"migrate_to_chat_id": self._migrated[chat_id]})
        if chat_id in self._blocked and method.lower().startswith(_WRITE_METHOD_PREFIXES):
            raise ApiError(403, BLOCKED)
