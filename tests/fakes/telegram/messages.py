"""The bot's messages: sendMessage, the edits and deletes, under Telegram's rules."""

from __future__ import annotations

import copy
import dataclasses
import time

from tests.fakes.telegram.model import ChatMessage, StoredFile
from tests.fakes.telegram.state import TelegramState
from tests.support.telegram_rules import (
    JsonDict,
    TelegramRefusal,
    bad_request,
    check_caption,
    check_deletable,
    check_editable,
    check_message_text,
    check_modified,
    check_reply_markup,
    inline_only,
)


class Messages(TelegramState):
    """sendMessage, editMessage*, deleteMessage(s)."""

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
