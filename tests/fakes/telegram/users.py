"""What users do: messages, commands, contacts, stickers and documents, queued as updates."""

from __future__ import annotations

import re
import time

from tests.fakes.telegram.inspection import Inspection
from tests.fakes.telegram.model import ChatMessage
from tests.fakes.telegram.polling import Polling
from tests.support.telegram_rules import JsonDict, TelegramRefusal, utf16_len


class UserMessages(Polling, Inspection):
    """Injecting what users send."""

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
