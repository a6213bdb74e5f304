"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests.

The real bot talks to it over HTTP exactly as it talks to api.telegram.org
(``TelegramAPIServer.from_base(fake.url)``); pytest drives it in-process: inject updates
(``send_text``, ``press_button``, ...), then read what the bot did (``calls``,
``chat_messages``) and wait for it with a deadline (``wait_for``, ``wait_for_message``).

It reproduces the Bot API details a bot gets wrong in production: the 4096-character limit
counted after HTML parsing, Telegram's strict HTML subset, 64-byte callback data,
"message is not modified", one answer per callback query, getUpdates offsets, and injected
faults (429 with retry_after, blocked users, chat migrations, dropped connections).

Standalone: ``python -m tests.fakes.fake_telegram --port 8081 --token 123456:ABC...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import inspect
import json
import logging
import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final, TypeVar, cast

from aiohttp import web

from tests.support.telegram_rules import (
    CallbackQueries,
    TelegramRefusal,
    bad_request,
    check_caption,
    check_deletable,
    check_editable,
    check_message_text,
    check_modified,
    check_reply_markup,
    inline_only,
    utf16_len,
)

# JsonDict is re-exported: the e2e harness and the bench import it from here.
from tests.support.telegram_rules import JsonDict as JsonDict

logger = logging.getLogger(__name__)

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


class FakeTelegram:
    """An in-memory Telegram Bot API for one bot token, served on 127.0.0.1.

    Use from the event loop that runs the tests; nothing here is thread-safe.
    """

    def __init__(self, token: str) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (sep and bot_id.isdigit() and secret):
            msg = f"not a bot token: {token!r}"
            raise ValueError(msg)
        self.token: Final = token
        self.bot_id: Final = int(bot_id)
        self.username: Final = BOT_USERNAME
        self.url = ""
        self.calls: list[Call] = []
        self.left_chats: set[int] = set()

        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._updates: list[JsonDict] = []
        self._next_update_id = 1
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._webhook_url = ""
        # Replaced on every signal, so a waiter that grabbed the old one is woken exactly once.
        self._update_signal = asyncio.Event()
        self._change_signal = asyncio.Event()

        self._users: dict[int, JsonDict] = {}
        self._chats: dict[int, JsonDict] = {}
        self._messages: dict[int, dict[int, ChatMessage]] = {}
        self._last_message_id: dict[int, int] = {}
        self._reply_keyboards: dict[int, JsonDict | None] = {}
        self._files: dict[str, StoredFile] = {}
        self._callback_queries = CallbackQueries()
        self._commands: dict[tuple[str, str], list[JsonDict]] = {}
        self._faults: list[_Fault] = []
        self._blocked: set[int] = set()
        self._migrated: dict[int, int] = {}
        self._counter = 0

        handlers: dict[str, Callable[[JsonDict], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "leaveChat": self._leave_chat,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "sendChatAction": self._send_chat_action,
        }
        # Settings a bot may push at startup; accepted and only recorded in calls.
        for name in (
            "setMyDescription",
            "setMyShortDescription",
            "setMyName",
            "setChatMenuButton",
            "setMyDefaultAdministratorRights",
            "close",
            "logOut",
        ):
            handlers[name] = self._accept
        # Bot API method names are case-insensitive.
        self._methods = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping = False
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_post("/_control/update", self._control_update)
        app.router.add_post("/_control/message", self._control_message)
        app.router.add_post("/_control/press", self._control_press)
        app.router.add_post("/_control/fail", self._control_fail)
        app.router.add_get("/_control/calls", self._control_calls)
        app.router.add_get("/_control/chats/{chat_id}", self._control_chat)
        # access_log=None: the bot token is in every URL, and tests need no request log.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        logger.info("fake Telegram listening on %s", self.url)
        return self.url

    async def stop(self) -> None:
        self._stopping = True
        # Pending long polls return an empty batch at once instead of holding up cleanup.
        self._signal_update()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ----------------------------------------------------------- injecting updates

    def add_update(self, update: JsonDict) -> int:
        """Queue a raw update for getUpdates; assigns update_id when missing. Returns it."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._updates.append(update)
        self._signal_update()
        return int(update["update_id"])

    def send_message(
        self,
        user_id: int,
        fields: JsonDict,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "User",
        language_code: str | None = "en",
        reply_to_message_id: int | None = None,
    ) -> int:
        """Inject a user's message with arbitrary Message fields (text, sticker, ...).

        Returns its message_id.
        """
        user = self._remember_user(user_id, first_name, language_code)
        chat_id = user_id if chat_id is None else chat_id
        chat = self._ensure_chat(chat_id, chat_type, first_name=first_name)
        message_id = self._new_message_id(chat_id)
        message: JsonDict = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            **fields,
        }
        if reply_to_message_id is not None:
            try:
                message["reply_to_message"] = self._reply_target(chat_id, reply_to_message_id)
            except TelegramRefusal:
                msg = f"no message {reply_to_message_id} to reply to in chat {chat_id}"
                raise AssertionError(msg) from None
        text = fields.get("text", fields.get("caption"))
        self._messages.setdefault(chat_id, {})[message_id] = ChatMessage(
            chat_id=chat_id,
            message_id=message_id,
            from_bot=False,
            text=text if isinstance(text, str) else None,
            raw_text=None,
            parse_mode=None,
            reply_markup=None,
            deleted=False,
            edits=0,
            document=self._files.get(fields.get("document", {}).get("file_id", "")),
            message=message,
        )
        self.add_update({"message": message})
        return message_id

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        language_code: str | None = "en",
        first_name: str = "User",
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to_message_id: int | None = None,
    ) -> int:
        fields: JsonDict = {"text": text}
        command = re.match(r"/\S+", text)
        if command:
            # Telegram marks commands; aiogram's filters do not need it, but handlers may.
            fields["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))}
            ]
        return self.send_message(
            user_id,
            fields,
            chat_id=chat_id,
            chat_type=chat_type,
            first_name=first_name,
            language_code=language_code,
            reply_to_message_id=reply_to_message_id,
        )

    def send_contact(
        self,
        user_id: int,
        phone_number: str,
        *,
        contact_user_id: int | None = None,
        first_name: str = "User",
        language_code: str | None = "en",
    ) -> int:
        """A shared contact; pass contact_user_id=user_id for "share my own number"."""
        contact: JsonDict = {"phone_number": phone_number, "first_name": first_name}
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self.send_message(
            user_id,
            {"contact": contact},
            first_name=first_name,
            language_code=language_code,
        )

    def send_sticker(
        self, user_id: int, *, emoji: str = "👍", language_code: str | None = "en"
    ) -> int:
        number = self._next_counter()
        sticker: JsonDict = {
            "file_id": f"sticker-{number}",
            "file_unique_id": f"sticker-unique-{number}",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self.send_message(user_id, {"sticker": sticker}, language_code=language_code)

    def send_document(
        self,
        user_id: int,
        file_name: str,
        content: bytes,
        mime_type: str | None = None,
        *,
        caption: str | None = None,
        language_code: str | None = "en",
    ) -> int:
        """A user's document; its bytes are downloadable through getFile and /file/."""
        stored = self._store_file(file_name, content, mime_type)
        fields: JsonDict = {"document": stored.as_document()}
        if caption is not None:
            fields["caption"] = caption
        return self.send_message(user_id, fields, language_code=language_code)

    def press_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        language_code: str | None = "en",
        first_name: str = "User",
        chat_id: int | None = None,
        check_button: bool = True,
    ) -> str:
        """Press an inline button of a bot message; returns the callback query id.

        With check_button=False any data can be sent, like a button from an older bot version.
        """
        chat_id = user_id if chat_id is None else chat_id
        current = self._messages.get(chat_id, {}).get(message_id)
        if current is None or current.deleted:
            msg = f"no message {message_id} to press in chat {chat_id}\n{self.dump(chat_id)}"
            raise AssertionError(msg)
        offered = [button.get("callback_data") for button in current.inline_buttons]
        if check_button and callback_data not in offered:
            msg = f"message {message_id} has no button with data {callback_data!r}: {offered}"
            raise AssertionError(msg)
        user = self._remember_user(user_id, first_name, language_code)
        query_id = str(4_000_000_000 + self._next_counter())
        self._callback_queries.offer(query_id)
        self.add_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": copy.deepcopy(current.message),
                    "chat_instance": str(abs(chat_id) * 7 + self.bot_id),
                    "data": callback_data,
                }
            }
        )
        return query_id

    def press_button_with_text(
        self, user_id: int, message_id: int, text_contains: str, **kwargs: Any
    ) -> str:
        """Press the inline button whose label contains ``text_contains``."""
        chat_id = kwargs.get("chat_id") or user_id
        current = self._messages.get(chat_id, {}).get(message_id)
        if current is None:
            msg = f"no message {message_id} in chat {chat_id}\n{self.dump(chat_id)}"
            raise AssertionError(msg)
        data = current.button(text_contains).get("callback_data")
        if not isinstance(data, str):
            msg = f"button {text_contains!r} carries no callback_data"
            raise AssertionError(msg)
        return self.press_button(user_id, message_id, data, **kwargs)

    # -------------------------------------------------------- reading the bot's work

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def chat_messages(self, chat_id: int, *, include_user: bool = False) -> list[ChatMessage]:
        """Every bot message in the chat, oldest first, as it is now (deleted ones flagged).

        include_user=True adds the user's messages, deleted ones flagged too.
        """
        return [
            message
            for message in self._messages.get(chat_id, {}).values()
            if include_user or message.from_bot
        ]

    def last_bot_message(
        self, chat_id: int, *, include_deleted: bool = False
    ) -> ChatMessage | None:
        """The newest bot message still visible in the chat (or at all, with include_deleted)."""
        for message in reversed(self.chat_messages(chat_id)):
            if include_deleted or not message.deleted:
                return message
        return None

    def message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        return self._messages.get(chat_id, {}).get(message_id)

    def reply_keyboard(self, chat_id: int) -> JsonDict | None:
        """The reply keyboard the bot last showed in the chat (None once removed)."""
        return self._reply_keyboards.get(chat_id)

    def callback_answer(self, query_id: str) -> JsonDict | None:
        """The answerCallbackQuery params for the query, or None while unanswered."""
        return self._callback_queries.answers.get(query_id)

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        return list(self._commands.get((self._scope_key(scope), language_code), []))

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # A timeout argument rather than asyncio.timeout(): the deadline goes into the failure dump.
    async def wait_for(
        self,
        predicate: Callable[[], T | bool | None],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> T:
        """Poll ``predicate`` until it returns something truthy, and return that.

        Re-checks on every request the bot makes and at least every 50 ms (the predicate may
        look at other state); raises AssertionError with a dump of calls and chats on timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            signal = self._change_signal
            result = predicate()
            if result:
                return cast(T, result)
            remaining = deadline - loop.time()
            if remaining <= 0:
                msg = f"condition not met within {timeout} s\n{self.dump()}"
                raise AssertionError(msg)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(remaining, 0.05))

    async def wait_for_message(
        self,
        chat_id: int,
        *,
        containing: str | None = None,
        after_message_id: int = 0,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> ChatMessage:
        """The first bot message after ``after_message_id`` whose text contains ``containing``.

        Matches the current text (after edits) and also messages deleted since, so a
        short-lived "please wait" message cannot be missed.
        """

        def find() -> ChatMessage | None:
            for message in self.chat_messages(chat_id):
                if message.message_id <= after_message_id:
                    continue
                if containing is None or containing in (message.text or ""):
                    return message
            return None

        try:
            return await self.wait_for(find, timeout)
        except AssertionError as exc:
            msg = (
                f"no bot message in chat {chat_id} after #{after_message_id} "
                f"containing {containing!r}; {exc}"
            )
            raise AssertionError(msg) from None

    def dump(self, chat_id: int | None = None, *, last_calls: int = 30) -> str:
        """A readable summary of recent calls and chat contents, for failure messages."""
        lines = [f"pending updates: {len(self._updates)}", f"last {last_calls} calls:"]
        lines += [f"  {call}" for call in self.calls[-last_calls:]] or ["  (none)"]
        chat_ids = [chat_id] if chat_id is not None else list(self._messages)
        for shown_chat in chat_ids:
            lines.append(f"chat {shown_chat}:")
            lines += [
                f"  {message}" for message in self._messages.get(shown_chat, {}).values()
            ] or ["  (empty)"]
        return "\n".join(lines)

    # ---------------------------------------------------------------------- faults

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

    def block_user(self, user_id: int) -> None:
        self._blocked.add(user_id)

    def unblock_user(self, user_id: int) -> None:
        self._blocked.discard(user_id)

    def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        self._migrated[old_chat_id] = new_chat_id
        self._ensure_chat(new_chat_id, "supergroup")

    # ------------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method_name = request.match_info["method"]
        canonical, handler = self._methods.get(method_name.lower(), (method_name, None))
        try:
            params = await self._read_params(request)
            unreadable = None
        except ValueError as exc:
            params, unreadable = {}, f"can't parse request: {exc}"
        call = Call(method=canonical, params=params, at=time.monotonic())
        self.calls.append(call)
        self._signal_change()
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            fault = self._take_fault(canonical)
            if fault is not None and fault.processed and handler is not None:
                self._check_chat(canonical, params)
                done = handler(params)
                if inspect.isawaitable(done):
                    await done
            if fault is not None and fault.drop_connection:
                call.status = -1
                call.description = "connection dropped"
                if request.transport is not None:
                    request.transport.abort()
                return web.Response()
            if fault is not None:
                parameters = None
                if fault.error_code == 429 and fault.retry_after is not None:
                    parameters = {"retry_after": fault.retry_after}
                raise ApiError(fault.error_code, fault.description, parameters)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            if unreadable is not None:
                raise bad_request(unreadable)
            self._check_chat(canonical, params)
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except TelegramRefusal as error:
            call.status = error.error_code
            call.description = error.description
            self._signal_change()
            return _json_response(_payload(error), status=error.error_code)
        except Exception:
            # A bug in the fake must show up as such, not as a puzzling aiogram decode error.
            logger.exception("fake Telegram failed on %s", canonical)
            call.status = 500
            call.description = "Internal Server Error: the fake itself failed"
            self._signal_change()
            return _json_response(_payload(ApiError(500, call.description)), status=500)
        call.status = 200
        self._signal_change()
        return _json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> JsonDict:
        raw: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    raw.update(body)
            else:
                files: dict[str, UploadedFile] = {}
                for key, value in (await request.post()).items():
                    if isinstance(value, web.FileField):
                        files[key] = UploadedFile(
                            file_name=value.filename,
                            content=value.file.read(),
                            content_type=value.content_type,
                        )
                    else:
                        raw[key] = value
                for key, value in list(raw.items()):
                    # aiogram uploads as field=attach://<random> plus a part named <random>.
                    if isinstance(value, str) and value.startswith("attach://"):
                        attached = files.pop(value.removeprefix("attach://"), None)
                        if attached is not None:
                            raw[key] = attached
                raw.update(files)
        return _normalize_params(raw)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json_response(_payload(ApiError(401, "Unauthorized")), status=401)
        path = request.match_info["path"]
        for stored in self._files.values():
            if stored.file_path == path:
                return web.Response(
                    body=stored.content,
                    content_type=stored.mime_type or "application/octet-stream",
                )
        return _json_response(_payload(ApiError(404, "Not Found")), status=404)

    async def _control_update(self, request: web.Request) -> web.Response:
        update_id = self.add_update(await request.json())
        return _json_response({"ok": True, "result": update_id})

    async def _control_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = self.send_text(
            int(body["user_id"]),
            str(body["text"]),
            language_code=body.get("language_code", "en"),
            chat_id=body.get("chat_id"),
        )
        return _json_response({"ok": True, "result": message_id})

    async def _control_press(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            query_id = self.press_button(
                int(body["user_id"]),
                int(body["message_id"]),
                str(body["callback_data"]),
                check_button=bool(body.get("check_button", True)),
            )
        except AssertionError as exc:
            return _json_response({"ok": False, "description": str(exc)}, status=400)
        return _json_response({"ok": True, "result": query_id})

    async def _control_fail(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail_next(int(body.pop("n", 1)), **body)
        return _json_response({"ok": True, "result": True})

    async def _control_calls(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        calls = self.calls_of(method) if method else self.calls
        return _json_response({"ok": True, "result": [dataclasses.asdict(c) for c in calls]})

    async def _control_chat(self, request: web.Request) -> web.Response:
        chat_id = int(request.match_info["chat_id"])
        messages = self.chat_messages(chat_id, include_user=True)
        return _json_response({"ok": True, "result": [dataclasses.asdict(m) for m in messages]})

    # --------------------------------------------------------------------- helpers

    def _signal_update(self) -> None:
        self._update_signal.set()
        self._update_signal = asyncio.Event()
        self._signal_change()

    def _signal_change(self) -> None:
        self._change_signal.set()
        self._change_signal = asyncio.Event()

    def _next_counter(self) -> int:
        self._counter += 1
        return self._counter

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

    def _bot_user(self) -> JsonDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        }

    def _remember_user(self, user_id: int, first_name: str, language_code: str | None) -> JsonDict:
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        self._users[user_id] = user
        return user

    def _ensure_chat(self, chat_id: int, chat_type: str | None = None, **extra: Any) -> JsonDict:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_type is None:
                chat_type = "private" if chat_id > 0 else "group"
                if str(chat_id).startswith("-100"):
                    chat_type = "supergroup"
            chat = {"id": chat_id, "type": chat_type}
            if chat_type == "private":
                chat["first_name"] = extra.get("first_name", "User")
            else:
                chat["title"] = extra.get("title", f"Chat {chat_id}")
            self._chats[chat_id] = chat
        return dict(chat)

    def _chat_id(self, params: JsonDict) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        if not isinstance(chat_id, int):
            raise bad_request("chat not found")
        return chat_id

    def _new_message_id(self, chat_id: int) -> int:
        # Message ids count per chat, shared by the user's and the bot's messages.
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _reply_target(self, chat_id: int, message_id: int) -> JsonDict:
        target = self._messages.get(chat_id, {}).get(message_id)
        if target is None or target.deleted:
            raise bad_request("message to be replied not found")
        replied = copy.deepcopy(target.message)
        replied.pop("reply_to_message", None)
        return replied

    def _store_file(
        self, file_name: str | None, content: bytes, mime_type: str | None
    ) -> StoredFile:
        number = self._next_counter()
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        suffix = PurePosixPath(file_name).suffix if file_name else ""
        stored = StoredFile(
            file_id=f"BQACAgIAAx{number:06d}",
            file_unique_id=f"AgAD{number:06d}",
            file_name=file_name,
            mime_type=mime_type,
            content=content,
            file_path=f"documents/file_{number}{suffix}",
        )
        self._files[stored.file_id] = stored
        return stored

    def _existing(self, chat_id: int, message_id: Any) -> ChatMessage | None:
        if not isinstance(message_id, int):
            return None
        current = self._messages.get(chat_id, {}).get(message_id)
        return None if current is None or current.deleted else current

    def _put(self, message: ChatMessage) -> ChatMessage:
        self._messages.setdefault(message.chat_id, {})[message.message_id] = message
        return message

    @staticmethod
    def _scope_key(scope: Any) -> str:
        return json.dumps(scope or {"type": "default"}, sort_keys=True)

    def _new_bot_message(
        self,
        params: JsonDict,
        content: JsonDict,
        *,
        text: str | None,
        raw_text: str | None,
        document: StoredFile | None = None,
    ) -> JsonDict:
        chat_id = self._chat_id(params)
        markup = check_reply_markup(params.get("reply_markup"))
        reply_to = params.get("reply_to_message_id")
        reply_parameters = params.get("reply_parameters")
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply_parameters, dict):
            reply_to = reply_parameters.get("message_id")
            allow_missing = bool(reply_parameters.get("allow_sending_without_reply"))
        chat = self._ensure_chat(chat_id)
        message: JsonDict = {
            "message_id": 0,
            "date": int(time.time()),
            "chat": chat,
            "from": self._bot_user(),
            **content,
        }
        if isinstance(reply_to, int):
            try:
                message["reply_to_message"] = self._reply_target(chat_id, reply_to)
            except TelegramRefusal:
                if not allow_missing:
                    raise
        inline = inline_only(markup)
        if inline is not None:
            # A Message only ever carries an inline keyboard; reply keyboards live in the chat.
            message["reply_markup"] = inline
        elif markup is not None:
            keyboard = markup if "keyboard" in markup else None
            if keyboard is not None or "remove_keyboard" in markup:
                self._reply_keyboards[chat_id] = keyboard
        message["message_id"] = self._new_message_id(chat_id)
        self._put(
            ChatMessage(
                chat_id=chat_id,
                message_id=message["message_id"],
                from_bot=True,
                text=text,
                raw_text=raw_text,
                parse_mode=params.get("parse_mode"),
                reply_markup=markup,
                deleted=False,
                edits=0,
                document=document,
                message=message,
            )
        )
        return copy.deepcopy(message)

    def _message_to_edit(self, params: JsonDict) -> ChatMessage:
        if "inline_message_id" in params:
            raise bad_request("message to edit not found")
        chat_id = self._chat_id(params)
        if "message_id" not in params:
            raise bad_request("message identifier is not specified")
        current = self._existing(chat_id, params["message_id"])
        check_editable(current is not None, current is not None and current.from_bot)
        assert current is not None
        return current

    def _apply_edit(
        self,
        current: ChatMessage,
        params: JsonDict,
        changes: JsonDict,
        *,
        text: str | None,
        raw_text: str | None,
    ) -> JsonDict:
        markup = check_reply_markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        # Omitting reply_markup in an edit removes the inline keyboard, as on Telegram.
        old_inline = current.message.get("reply_markup")
        content_keys = ("text", "entities", "caption", "caption_entities")
        old_content = {key: current.message.get(key) for key in content_keys}
        new_message = {**current.message, **changes}
        for key, value in changes.items():
            if value is None or value == []:
                new_message.pop(key, None)
        new_content = {key: new_message.get(key) for key in content_keys}
        check_modified(old_content, new_content, old_inline, markup)
        new_message.pop("reply_markup", None)
        if markup is not None:
            new_message["reply_markup"] = markup
        new_message["edit_date"] = int(time.time())
        kept_markup = current.reply_markup if old_inline is None else None
        updated = self._put(
            dataclasses.replace(
                current,
                text=text,
                raw_text=raw_text,
                parse_mode=params.get("parse_mode", current.parse_mode),
                reply_markup=markup if markup is not None else kept_markup,
                edits=current.edits + 1,
                message=new_message,
            )
        )
        return copy.deepcopy(updated.message)

    # ------------------------------------------------------------- API methods

    def _accept(self, params: JsonDict) -> bool:
        return True

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

    def _set_webhook(self, params: JsonDict) -> bool:
        self._webhook_url = str(params.get("url") or "")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _delete_webhook(self, params: JsonDict) -> bool:
        self._webhook_url = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        return {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

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

    def _send_message(self, params: JsonDict) -> JsonDict:
        raw_text = params.get("text")
        # Telegram counts the limit after entity parsing: tags are free, &lt; is one character.
        text, entities = check_message_text(
            raw_text, params.get("parse_mode"), params.get("entities")
        )
        content: JsonDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._new_bot_message(params, content, text=text, raw_text=raw_text)

    def _edit_message_text(self, params: JsonDict) -> JsonDict:
        current = self._message_to_edit(params)
        raw_text = params.get("text")
        text, entities = check_message_text(
            raw_text, params.get("parse_mode"), params.get("entities")
        )
        if "text" not in current.message:
            raise bad_request("there is no text in the message to edit")
        return self._apply_edit(
            current,
            params,
            {"text": text, "entities": entities},
            text=text,
            raw_text=raw_text,
        )

    def _edit_message_caption(self, params: JsonDict) -> JsonDict:
        current = self._message_to_edit(params)
        raw_caption = params.get("caption")
        caption, entities = check_caption(
            raw_caption, params.get("parse_mode"), params.get("caption_entities")
        )
        if "text" in current.message:
            raise bad_request("there is no caption in the message to edit")
        return self._apply_edit(
            current,
            params,
            {"caption": caption or None, "caption_entities": entities},
            text=caption or None,
            raw_text=raw_caption,
        )

    def _edit_message_reply_markup(self, params: JsonDict) -> JsonDict:
        current = self._message_to_edit(params)
        return self._apply_edit(current, params, {}, text=current.text, raw_text=current.raw_text)

    def _delete_message(self, params: JsonDict) -> bool:
        chat_id = self._chat_id(params)
        current = self._existing(chat_id, params.get("message_id"))
        check_deletable(current is not None)
        assert current is not None
        self._put(dataclasses.replace(current, deleted=True))
        return True

    def _delete_messages(self, params: JsonDict) -> bool:
        chat_id = self._chat_id(params)
        message_ids = params.get("message_ids")
        if not isinstance(message_ids, list) or not message_ids:
            raise bad_request("message_ids is empty")
        for message_id in message_ids:
            current = self._existing(chat_id, message_id)
            if current is not None:
                self._put(dataclasses.replace(current, deleted=True))
        return True

    def _answer_callback_query(self, params: JsonDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        answer = {key: value for key, value in params.items() if key != "callback_query_id"}
        self._callback_queries.answer(query_id, answer)
        return True

    def _send_document(self, params: JsonDict) -> JsonDict:
        document = params.get("document")
        if isinstance(document, UploadedFile):
            if not document.content:
                raise bad_request("file must be non-empty")
            mime_type = mimetypes.guess_type(document.file_name)[0] or document.content_type
            stored = self._store_file(document.file_name, document.content, mime_type)
        elif isinstance(document, str) and document in self._files:
            stored = self._files[document]
        elif not document:
            raise bad_request("there is no document in the request")
        else:
            # No network here: URLs and unknown file_ids cannot be fetched.
            raise bad_request("wrong file identifier/HTTP URL specified")
        raw_caption = params.get("caption")
        caption, entities = check_caption(
            raw_caption, params.get("parse_mode"), params.get("caption_entities")
        )
        content: JsonDict = {"document": stored.as_document()}
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return self._new_bot_message(
            params, content, text=caption or None, raw_text=raw_caption, document=stored
        )

    def _get_file(self, params: JsonDict) -> JsonDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

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


async def _serve(host: str, port: int, token: str) -> None:
    fake = FakeTelegram(token)
    url = await fake.start(host, port)
    print(f"fake Telegram Bot API on {url} (Ctrl+C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123456:" + "A" * 35)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.token))


if __name__ == "__main__":
    main()
