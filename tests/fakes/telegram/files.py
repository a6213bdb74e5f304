"""Files: sendDocument, sendPhoto, editMessageMedia, getFile and the /file/ download URL."""

from __future__ import annotations

import dataclasses
import mimetypes
from typing import Final

from aiohttp import web

from tests.fakes.telegram.messages import Messages
from tests.fakes.telegram.model import (
    ApiError,
    StoredFile,
    UploadedFile,
    _json_response,
    _payload,
)
from tests.support.telegram_rules import JsonDict, bad_request, check_caption

_PNG: Final = b"\x89PNG\r\n\x1a\n"
_JPEG: Final = b"\xff\xd8\xff"


def _photo_sizes(stored: StoredFile) -> list[JsonDict]:
    """The PhotoSize list of a message: one size, the file as uploaded."""
    return [{**stored.as_document(), "width": 1000, "height": 600}]


class Files(Messages):
    """Documents the bot sends and files it downloads."""

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

    def _send_photo(self, params: JsonDict) -> JsonDict:
        stored = self._photo_file(params.get("photo"), params)
        raw_caption = params.get("caption")
        caption, entities = check_caption(
            raw_caption, params.get("parse_mode"), params.get("caption_entities")
        )
        content: JsonDict = {"photo": _photo_sizes(stored)}
        if caption:
            content["caption"] = caption
            if entities:
                content["caption_entities"] = entities
        return self._new_bot_message(
            params, content, text=caption or None, raw_text=raw_caption, document=stored
        )

    def _edit_message_media(self, params: JsonDict) -> JsonDict:
        """Only photos (what the bot edits in place); the new file replaces the old one."""
        current = self._message_to_edit(params)
        media = params.get("media")
        if not isinstance(media, dict) or media.get("type") != "photo":
            raise bad_request("can't parse InputMedia: photo expected")
        if "text" in current.message:
            raise bad_request("there is no media in the message to edit")
        stored = self._photo_file(media.get("media"), params)
        raw_caption = media.get("caption")
        caption, entities = check_caption(
            raw_caption, media.get("parse_mode"), media.get("caption_entities")
        )
        updated = self._apply_edit(
            current,
            params,
            {
                "photo": _photo_sizes(stored),
                "caption": caption or None,
                "caption_entities": entities,
            },
            text=caption or None,
            raw_text=raw_caption,
        )
        latest = self._existing(current.chat_id, current.message_id)
        assert latest is not None
        self._put(dataclasses.replace(latest, document=stored))
        return updated

    def _photo_file(self, photo: object, params: JsonDict) -> StoredFile:
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = params.get(photo.removeprefix("attach://"))
        if isinstance(photo, UploadedFile):
            if not photo.content:
                raise bad_request("file must be non-empty")
            if not photo.content.startswith(_PNG) and not photo.content.startswith(_JPEG):
                raise bad_request("IMAGE_PROCESS_FAILED")
            return self._store_file(photo.file_name, photo.content, photo.content_type)
        if isinstance(photo, str) and photo in self._files:
            return self._files[photo]
        if not photo:
            raise bad_request("there is no photo in the request")
        raise bad_request("wrong file identifier/HTTP URL specified")

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
