"""The fake Telegram's data: limits and error texts, the recorded call, a chat message as it
is now, stored files, injected faults, and the form-field decoding."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import web

from tests.support.telegram_rules import JsonDict, TelegramRefusal

T = TypeVar("T")

BOT_USERNAME: Final = "test_bot"
BOT_FIRST_NAME: Final = "Test Bot"
# Telegram accepts uploads up to 50 MB from bots; aiohttp's default body limit is 1 MB.
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
MAX_UPDATES_LIMIT: Final = 100
# The dispatcher's polling request waits this long at most, so stop() never hangs on it.
MAX_POLL_TIMEOUT: Final = 50.0

BLOCKED: Final = "Forbidden: bot was blocked by the user"
MIGRATED: Final = "Bad Request: group chat was upgraded to a supergroup chat"
GET_UPDATES_CONFLICT: Final = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)

# Update types Telegram sends when allowed_updates is empty or was never set.
_DEFAULT_UPDATE_TYPES_EXCLUDED: Final = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
# Methods that write into a chat; a user who blocked the bot makes them fail with 403.
_WRITE_METHOD_PREFIXES: Final = ("send", "edit", "copy", "forward", "pin", "unpin", "stop")
_CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

# aiogram sends every form field as a string: numbers as "123", booleans as "true",
# objects and lists JSON-encoded. These tables turn them back into what the Bot API means.
_INT_FIELDS: Final = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "cache_time",
    }
)
_BOOL_FIELDS: Final = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "revoke_messages",
        "for_channels",
    }
)
_JSON_FIELDS: Final = frozenset(
    {
        "reply_markup",
        "commands",
        "scope",
        "entities",
        "caption_entities",
        "allowed_updates",
        "link_preview_options",
        "reply_parameters",
        "message_ids",
        "media",
        "menu_button",
        "rights",
    }
)

_COMMAND_RE: Final = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(TelegramRefusal):
    """A Bot API error answer: {"ok": false, "error_code": ..., "description": ...}."""

    def __init__(
        self, error_code: int, description: str, parameters: JsonDict | None = None
    ) -> None:
        super().__init__(description, error_code, parameters)


def _payload(error: TelegramRefusal) -> JsonDict:
    body: JsonDict = {
        "ok": False,
        "error_code": error.error_code,
        "description": error.description,
    }
    if error.parameters:
        body["parameters"] = error.parameters
    return body


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, as the bot uploaded it."""

    file_name: str
    content: bytes
    content_type: str | None


@dataclass(frozen=True)
class StoredFile:
    """A file the fake knows by file_id: uploaded by the bot or injected as a user's document."""

    file_id: str
    file_unique_id: str
    file_name: str | None
    mime_type: str | None
    content: bytes
    file_path: str

    def as_document(self) -> JsonDict:
        document: JsonDict = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.content),
        }
        if self.file_name is not None:
            document["file_name"] = self.file_name
        if self.mime_type is not None:
            document["mime_type"] = self.mime_type
        return document


@dataclass
class Call:
    """One request the bot made, kept even when it was answered with an error."""

    method: str
    params: JsonDict
    at: float
    status: int = 0
    description: str | None = None

    def __str__(self) -> str:
        shown = {key: value for key, value in self.params.items() if key != "reply_markup"}
        outcome = "pending" if self.status == 0 else str(self.status)
        if self.description:
            outcome += f" {self.description}"
        return f"{self.method} -> {outcome} {_short(shown, 160)}"


@dataclass(frozen=True)
class ChatMessage:
    """A message as it currently is in a chat (a snapshot; later edits make a new one)."""

    chat_id: int
    message_id: int
    from_bot: bool
    # What the user sees: HTML tags parsed away and entities unescaped (caption for documents).
    text: str | None
    # What the bot sent before parse_mode was applied; None for user messages.
    raw_text: str | None
    parse_mode: str | None
    # The markup as sent: inline keyboards, and reply keyboards (which a Message never carries).
    reply_markup: JsonDict | None
    deleted: bool
    edits: int
    document: StoredFile | None
    # The Bot API Message object the fake would return for it now.
    message: JsonDict

    @property
    def inline_buttons(self) -> list[JsonDict]:
        markup = self.reply_markup or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]

    @property
    def button_texts(self) -> list[str]:
        markup = self.reply_markup or {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        return [
            button if isinstance(button, str) else str(button.get("text", ""))
            for row in rows
            for button in row
        ]

    def button(self, text_contains: str) -> JsonDict:
        """The first inline button whose text contains ``text_contains``."""
        for candidate in self.inline_buttons:
            if text_contains in str(candidate.get("text", "")):
                return candidate
        msg = f"no inline button containing {text_contains!r} in {self.button_texts}"
        raise AssertionError(msg)

    def __str__(self) -> str:
        who = "bot" if self.from_bot else "user"
        flags = ""
        if self.deleted:
            flags += " DELETED"
        if self.edits:
            flags += f" edits={self.edits}"
        if self.document is not None:
            flags += f" document={self.document.file_name!r}"
        buttons = f" buttons={self.button_texts}" if self.button_texts else ""
        content = self.text
        if content is None:
            standard = {"message_id", "date", "chat", "from", "reply_to_message", "edit_date"}
            content = "[" + ", ".join(k for k in self.message if k not in standard) + "]"
        return f"#{self.message_id} {who}{flags}: {_short(content, 200)}{buttons}"


@dataclass
class _Fault:
    remaining: int
    method: str | None
    error_code: int
    description: str
    retry_after: int | None
    drop_connection: bool
    processed: bool = False

    def matches(self, method: str) -> bool:
        if self.method is None:
            # A polling bot calls getUpdates all the time; an unscoped fault meant for the
            # next send would otherwise be swallowed by the poll.
            return method != "getUpdates"
        return self.method.lower() == method.lower()


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _normalize_params(raw: dict[str, Any]) -> JsonDict:
    params: JsonDict = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in _INT_FIELDS:
                with contextlib.suppress(ValueError):
                    value = int(value)
            elif key in _BOOL_FIELDS:
                value = value.lower() == "true"
            elif key in _JSON_FIELDS:
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
        params[key] = value
    return params


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, UploadedFile | StoredFile):
        return {"file_name": value.file_name, "size": len(value.content)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)


def _json_response(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(
        payload, status=status, dumps=lambda obj: json.dumps(obj, default=_json_default)
    )


@dataclass(frozen=True)
class WebhookPost:
    """One POST of an update to the bot's webhook, and how the bot answered."""

    update_id: int
    status: int  # -1: no HTTP answer (connection refused or dropped)
