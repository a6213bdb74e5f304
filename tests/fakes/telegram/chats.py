"""Chats and members: leaveChat, getChat, getChatMember, sendChatAction."""

from __future__ import annotations

from tests.fakes.telegram.model import _CHAT_ACTIONS
from tests.fakes.telegram.state import TelegramState
from tests.support.telegram_rules import JsonDict, bad_request


class Chats(TelegramState):
    """Chat and member methods."""

    def _leave_chat(self, params: JsonDict) -> bool:
        self.left_chats.add(self._chat_id(params))
        return True

    def _get_chat(self, params: JsonDict) -> JsonDict:
        chat = self._ensure_chat(self._chat_id(params))
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _get_chat_member(self, params: JsonDict) -> JsonDict:
        self._chat_id(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise bad_request("user not found")
        if user_id == self.bot_id:
            user = self._bot_user()
        else:
            user = self._users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})
        return {"status": "member", "user": dict(user)}

    def _send_chat_action(self, params: JsonDict) -> bool:
        self._chat_id(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True
