"""Updates: the queue a test fills, getUpdates with offsets and long polling, getMe and the
command menu (webhooks: webhook.py)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging

from tests.fakes.telegram.model import (
    _COMMAND_RE,
    _DEFAULT_UPDATE_TYPES_EXCLUDED,
    GET_UPDATES_CONFLICT,
    MAX_POLL_TIMEOUT,
    MAX_UPDATES_LIMIT,
    ApiError,
)
from tests.fakes.telegram.state import TelegramState
from tests.support.telegram_rules import JsonDict, bad_request

logger = logging.getLogger(__name__)


class Polling(TelegramState):
    """The update queue and the methods a bot calls to set itself up and poll."""

    def add_update(self, update: JsonDict) -> int:
        """Queue a raw update for getUpdates; assigns update_id when missing. Returns it."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._updates.append(update)
        self._signal_update()
        return int(update["update_id"])

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def _get_me(self, params: JsonDict) -> JsonDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, params: JsonDict) -> list[JsonDict]:
        if self._webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        if isinstance(offset, int) and offset < 0:
            # A negative offset keeps only the last -offset updates and forgets the rest.
            self._updates = self._updates[offset:]
        elif isinstance(offset, int):
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if isinstance(params.get("allowed_updates"), list):
            # Telegram remembers allowed_updates until a later call changes them.
            self._allowed_updates = params["allowed_updates"]
        limit = params.get("limit") if isinstance(params.get("limit"), int) else None
        limit = min(max(limit or MAX_UPDATES_LIMIT, 1), MAX_UPDATES_LIMIT)
        timeout = params.get("timeout")
        timeout = timeout if isinstance(timeout, int | float) else 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout or 0, 0), MAX_POLL_TIMEOUT)
        self._poll_generation += 1
        generation = self._poll_generation
        # A newer poll (say, a restarted bot process) ends this one with 409, as on Telegram.
        self._signal_update()
        while True:
            signal = self._update_signal
            if generation != self._poll_generation:
                raise ApiError(409, GET_UPDATES_CONFLICT)
            batch = self._deliverable(limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._stopping:
                return batch
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), remaining)

    def _deliverable(self, limit: int) -> list[JsonDict]:
        allowed = set(self._allowed_updates)
        kept: list[JsonDict] = []
        for update in self._updates:
            kind = next((key for key in update if key != "update_id"), "")
            wanted = kind in allowed if allowed else kind not in _DEFAULT_UPDATE_TYPES_EXCLUDED
            # Telegram never stores updates of types the bot did not ask for.
            if wanted:
                kept.append(update)
            else:
                logger.warning(
                    "dropping update %s: %s is not in allowed_updates %s",
                    update["update_id"],
                    kind,
                    self._allowed_updates,
                )
        self._updates = kept
        return copy.deepcopy(kept[:limit])

    def _set_my_commands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("commands must be an array")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(
                str(command.get("command", ""))
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _get_my_commands(self, params: JsonDict) -> list[JsonDict]:
        return self.commands(params.get("scope"), str(params.get("language_code") or ""))

    def _delete_my_commands(self, params: JsonDict) -> bool:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True
