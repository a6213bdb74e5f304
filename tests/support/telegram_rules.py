"""Telegram's rules for what a bot sends: one validator for every test level.

The dispatcher-level recording session (tests/support/recording.py) and the e2e fake Bot API
(tests/fakes/fake_telegram.py) both call these functions, so a dialog that passes dispatcher
tests cannot meet a stricter Telegram in the e2e run (or in production), and the other way
round. Each refusal carries the description the real Bot API answers with, so the product's
error handling sees what aiogram would raise (TelegramBadRequest with that text).

What is checked (https://core.telegram.org/bots/api):
- parse_mode=HTML: the documented subset, properly nested, only &lt; &gt; &amp; &quot; and
  numeric character references; anything else is "can't parse entities";
- lengths after entity parsing, in UTF-16 code units as Telegram counts them: message text
  1..4096, captions ≤ 1024, callback answers ≤ 200; buttons need a non-empty text;
- inline keyboards: callback_data 1..64 bytes of UTF-8, at most 8 buttons a row, 100 in all;
- one answer per callback query; "message is not modified"; edits and deletes of messages
  that do not exist (or no longer do) refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

JsonDict: TypeAlias = dict[str, Any]

MAX_TEXT_LENGTH: Final = 4096
MAX_CAPTION_LENGTH: Final = 1024
MAX_CALLBACK_ANSWER_LENGTH: Final = 200
MAX_CALLBACK_DATA_BYTES: Final = 64
MAX_BUTTONS_PER_ROW: Final = 8
MAX_BUTTONS: Final = 100

NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
CALLBACK_TOO_OLD: Final = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
EDIT_NOT_FOUND: Final = "Bad Request: message to edit not found"
DELETE_NOT_FOUND: Final = "Bad Request: message to delete not found"
CANT_EDIT: Final = "Bad Request: message can't be edited"
TEXT_EMPTY: Final = "Bad Request: message text is empty"
TEXT_TOO_LONG: Final = "Bad Request: message is too long"
CAPTION_TOO_LONG: Final = "Bad Request: message caption is too long"
# What answerCallbackQuery says about a text over 200 characters.
ANSWER_TOO_LONG: Final = "Bad Request: MESSAGE_TOO_LONG"
BUTTON_DATA_INVALID: Final = "Bad Request: BUTTON_DATA_INVALID"
BUTTON_TEXT_EMPTY: Final = (
    "Bad Request: can't parse inline keyboard button: Text must be non-empty"
)
MARKUP_TOO_LONG: Final = "Bad Request: reply markup is too long"

# https://core.telegram.org/bots/api#html-style: tag → entity type.
TAG_ENTITY: Final[Mapping[str, str]] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_CHAR_REFS: Final[Mapping[str, str]] = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTR_RE: Final = re.compile(
    r"""\s+([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?"""
)
_CHAR_REF_RE: Final = re.compile(r"&(?:#[xX]([0-9a-fA-F]{1,8})|#([0-9]{1,10})|([A-Za-z0-9]+));")
_INLINE_ACTIONS: Final = frozenset(
    {
        "url",
        "login_url",
        "web_app",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)


class TelegramRefusal(Exception):
    """An error answer of the Bot API: {"ok": false, "error_code": ..., "description": ...}."""

    def __init__(
        self, description: str, error_code: int = 400, parameters: JsonDict | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters


def bad_request(detail: str) -> TelegramRefusal:
    return TelegramRefusal(f"Bad Request: {detail}")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (a character outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


def visible_length(text: str) -> int:
    """What the length limits count: the parsed text without its leading/trailing blanks
    (Telegram trims them before it stores a message)."""
    return utf16_len(text.strip())


# --- HTML -------------------------------------------------------------------------------------


def _entities_error(detail: str) -> TelegramRefusal:
    return bad_request(f"can't parse entities: {detail}")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_char_ref(match: re.Match[str]) -> str | None:
    hex_code, dec_code, name = match.groups()
    if name is not None:
        return _NAMED_CHAR_REFS.get(name)
    code = int(hex_code, 16) if hex_code is not None else int(dec_code)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _parse_attributes(name: str, rest: str, offset: int) -> dict[str, str]:
    """The attributes of a start tag; only the ones the docs list for the tag are allowed."""
    attrs: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _ATTR_RE.match(rest, position)
        if match is None:
            if rest[position:].strip():
                raise _entities_error(
                    f'Unexpected "{rest[position:].strip()[:20]}" in start tag "{name}" '
                    f"at byte offset {offset}"
                )
            break
        value = next((v for v in match.groups()[1:] if v is not None), "")
        attrs[match.group(1).lower()] = value
        position = match.end()
    allowed: set[str] = {
        "a": {"href"},
        "span": {"class"},
        "code": {"class"},
        "blockquote": {"expandable"},
        "tg-emoji": {"emoji-id"},
    }.get(name, set())
    unknown = sorted(set(attrs) - allowed)
    if unknown:
        raise _entities_error(
            f'Unsupported attribute "{unknown[0]}" in start tag "{name}" at byte offset {offset}'
        )
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise _entities_error('Tag "span" must have class "tg-spoiler"')
    if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise _entities_error('Tag "tg-emoji" must have attribute "emoji-id"')
    return attrs


def parse_html(text: str) -> tuple[str, list[JsonDict]]:
    """Applies parse_mode=HTML as Telegram does: the visible text and its entities (offsets
    in UTF-16 units). Raises TelegramRefusal "Bad Request: can't parse entities: ..." for
    what Telegram refuses."""
    out: list[str] = []
    position = 0  # UTF-16 units written so far, the unit entity offsets use
    open_tags: list[tuple[str, int, dict[str, str]]] = []
    entities: list[JsonDict] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "<":
            offset = _byte_offset(text, index)
            end = text.find(">", index)
            if end == -1:
                raise _entities_error(f"Unclosed start tag at byte offset {offset}")
            inner = text[index + 1 : end]
            index = end + 1
            if inner.startswith("/"):
                _close_tag(inner[1:].strip().lower(), offset, open_tags, entities, position)
                continue
            name_match = _TAG_NAME_RE.match(inner)
            name = name_match.group(0).lower() if name_match else inner[:20]
            if name not in TAG_ENTITY or inner.endswith("/"):
                raise _entities_error(f'Unsupported start tag "{name}" at byte offset {offset}')
            attrs = _parse_attributes(name, inner[len(name) :], offset)
            inside_pre = bool(open_tags) and open_tags[-1][0] == "pre"
            language_ok = inside_pre and attrs.get("class", "").startswith("language-")
            if name == "code" and "class" in attrs and not language_ok:
                raise _entities_error(
                    f'Unsupported attribute "class" in start tag "code" at byte offset {offset}'
                )
            open_tags.append((name, position, attrs))
            continue
        piece = char
        index += 1
        if char == "&":
            match = _CHAR_REF_RE.match(text, index - 1)
            decoded = _decode_char_ref(match) if match else None
            if match is None or decoded is None:
                # The docs: every & that is not part of an entity must be written as &amp;.
                raise _entities_error(
                    f"Character '&' at byte offset {_byte_offset(text, index - 1)} must be "
                    "escaped as &amp; (only &lt; &gt; &amp; &quot; and numeric entities exist)"
                )
            piece = decoded
            index = match.end()
        elif char == ">":
            raise _entities_error(
                f"Character '>' at byte offset {_byte_offset(text, index - 1)} must be escaped "
                "as &gt;"
            )
        out.append(piece)
        position += utf16_len(piece)
    if open_tags:
        raise _entities_error(
            f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"'
        )
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _close_tag(
    name: str,
    offset: int,
    open_tags: list[tuple[str, int, dict[str, str]]],
    entities: list[JsonDict],
    position: int,
) -> None:
    if not open_tags:
        raise _entities_error(f'Unexpected end tag "{name}" at byte offset {offset}')
    open_name, start, attrs = open_tags.pop()
    if name != open_name:
        raise _entities_error(
            f'Unmatched end tag at byte offset {offset}, expected "</{open_name}>", '
            f'found "</{name}>"'
        )
    inside_pre = bool(open_tags) and open_tags[-1][0] == "pre"
    if open_name == "code" and inside_pre:
        # <pre><code class="language-x"> is one pre entity with a language.
        language = attrs.get("class", "").removeprefix("language-")
        if language:
            open_tags[-1][2]["language"] = language
        return
    length = position - start
    if length <= 0 or (open_name == "a" and not attrs.get("href")):
        return
    entity: JsonDict = {"type": TAG_ENTITY[open_name], "offset": start, "length": length}
    if open_name == "a":
        entity["url"] = attrs["href"]
    elif open_name == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif open_name == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif open_name == "tg-emoji":
        entity["custom_emoji_id"] = attrs["emoji-id"]
    entities.append(entity)


def parse_text(
    text: str | None, parse_mode: str | None, entities: Any = None
) -> tuple[str, list[JsonDict]]:
    """The visible text and entities of a text or caption as sent with `parse_mode`."""
    raw = text or ""
    if parse_mode and parse_mode.lower() == "html":
        return parse_html(raw)
    # Markdown modes are passed through unchecked: this bot formats with HTML only.
    return raw, entities if isinstance(entities, list) else []


def check_message_text(
    text: str | None, parse_mode: str | None, entities: Any = None
) -> tuple[str, list[JsonDict]]:
    """A message text as sendMessage/editMessageText check it; returns the parsed form."""
    visible, parsed = parse_text(text, parse_mode, entities)
    if not visible.strip():
        raise TelegramRefusal(TEXT_EMPTY)
    if visible_length(visible) > MAX_TEXT_LENGTH:
        raise TelegramRefusal(TEXT_TOO_LONG)
    return visible, parsed


def check_caption(
    caption: str | None, parse_mode: str | None, entities: Any = None
) -> tuple[str, list[JsonDict]]:
    visible, parsed = parse_text(caption, parse_mode, entities)
    if visible_length(visible) > MAX_CAPTION_LENGTH:
        raise TelegramRefusal(CAPTION_TOO_LONG)
    return visible, parsed


def check_callback_answer_text(text: str | None) -> None:
    if text is not None and utf16_len(text) > MAX_CALLBACK_ANSWER_LENGTH:
        raise TelegramRefusal(ANSWER_TOO_LONG)


# --- keyboards --------------------------------------------------------------------------------


def check_reply_markup(markup: Any) -> JsonDict | None:
    """Validates reply_markup (as JSON) like Telegram; returns it, or None when absent."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = _rows(markup["inline_keyboard"], "inline keyboard")
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return markup
    if "keyboard" in markup:
        for row in _rows(markup["keyboard"], "keyboard"):
            for button in row:
                label = button if isinstance(button, str) else None
                if isinstance(button, dict):
                    label = button.get("text")
                if not isinstance(label, str) or not label:
                    raise bad_request("can't parse keyboard button: Text must be non-empty")
        return markup
    if "remove_keyboard" in markup or "force_reply" in markup:
        return markup
    raise bad_request("can't parse reply keyboard markup JSON object")


def _rows(rows: Any, kind: str) -> list[list[Any]]:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f"can't parse {kind} markup JSON object")
    if any(len(row) > MAX_BUTTONS_PER_ROW for row in rows) or (
        sum(len(row) for row in rows) > MAX_BUTTONS
    ):
        raise TelegramRefusal(MARKUP_TOO_LONG)
    return rows


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not button["text"].strip():
        raise TelegramRefusal(BUTTON_TEXT_EMPTY)
    if "callback_data" in button:
        data = button["callback_data"]
        size = len(data.encode("utf-8")) if isinstance(data, str) else 0
        # The limit is in bytes: 33 Cyrillic letters already overflow it.
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            raise TelegramRefusal(BUTTON_DATA_INVALID)
        return
    if not _INLINE_ACTIONS & button.keys():
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "url" in button and not button["url"]:
        raise bad_request("BUTTON_URL_INVALID")


def inline_only(markup: JsonDict | None) -> JsonDict | None:
    """The part of reply_markup a Message carries: inline keyboards only."""
    return markup if markup is not None and "inline_keyboard" in markup else None


# --- state: callback queries and messages ---------------------------------------------------


@dataclass
class CallbackQueries:
    """Callback queries Telegram delivered, and the one answer each may get."""

    answers: dict[str, JsonDict | None] = field(default_factory=dict)

    def offer(self, query_id: str) -> None:
        # The same update delivered twice keeps its query id, and its answered state.
        self.answers.setdefault(query_id, None)

    def answer(self, query_id: str, params: JsonDict) -> None:
        if query_id not in self.answers or self.answers[query_id] is not None:
            raise TelegramRefusal(CALLBACK_TOO_OLD)
        check_callback_answer_text(params.get("text"))
        # Stored as a non-empty dict even for a bare answer, so "answered" is always truthy.
        self.answers[query_id] = {"answered": True, **params}


def check_editable(exists: bool, from_bot: bool) -> None:
    """An edit must target a live message the bot itself sent."""
    if not exists:
        raise TelegramRefusal(EDIT_NOT_FOUND)
    if not from_bot:
        raise TelegramRefusal(CANT_EDIT)


def check_deletable(exists: bool) -> None:
    if not exists:
        raise TelegramRefusal(DELETE_NOT_FOUND)


def check_modified(
    old_content: Mapping[str, Any],
    new_content: Mapping[str, Any],
    old_markup: JsonDict | None,
    new_markup: JsonDict | None,
) -> None:
    """Telegram refuses an edit that changes neither the parsed content nor the inline
    keyboard (compare parsed text and entities: <b> and <strong> are the same edit)."""
    if dict(old_content) == dict(new_content) and (old_markup or None) == (new_markup or None):
        raise TelegramRefusal(NOT_MODIFIED)
